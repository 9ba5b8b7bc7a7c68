{{/*
"true" when the release runs two slots (rollout.strategy canary or blueGreen), "false" for rolling.
*/}}
{{- define "model-api.slotted" -}}
{{- if and .Values.rollout (ne .Values.rollout.strategy "rolling") }}true{{ else }}false{{ end }}
{{- end }}

{{/*
The slots the workload templates render, as a YAML list: [""] (the one workload) for rolling, else both slots.
Both slot workloads always exist, so scaling a slot down and up again never recreates it.
*/}}
{{- define "model-api.workloadSlots" -}}
{{- if eq (include "model-api.slotted" .) "true" }}{{ toYaml (list "blue" "green") }}{{ else }}{{ toYaml (list "") }}{{ end }}
{{- end }}

{{/*
The candidate slot: the one rollout.active does not name.
*/}}
{{- define "model-api.candidateSlot" -}}
{{- ternary "green" "blue" (eq .Values.rollout.active "blue") }}
{{- end }}

{{/*
A slot's replica count (argument: list root slot): rollout.slots.<slot>.replicaCount, else replicaCount.
*/}}
{{- define "model-api.slotReplicas" -}}
{{- $root := index . 0 }}
{{- $count := (index $root.Values.rollout.slots (index . 1)).replicaCount }}
{{- if kindIs "invalid" $count }}{{ int $root.Values.replicaCount }}{{ else }}{{ int $count }}{{ end }}
{{- end }}

{{/*
The running slots (replica count above zero), blue then green, as a YAML list; empty for rolling.
*/}}
{{- define "model-api.runningSlots" -}}
{{- $running := list }}
{{- if eq (include "model-api.slotted" .) "true" }}
{{- range $slot := list "blue" "green" }}
{{- if gt (int (include "model-api.slotReplicas" (list $ $slot))) 0 }}
{{- $running = append $running $slot }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $running }}
{{- end }}

{{/*
"true" when the slot runs (argument: list root slot).
*/}}
{{- define "model-api.slotRuns" -}}
{{- has (index . 1) (include "model-api.runningSlots" (index . 0) | fromYamlArray) }}
{{- end }}

{{/*
The name of a slot's workload, Service, HPA and PDB (argument: list root slot): "<fullname>-<slot>", the
fullname cut to 57 characters so the name stays a 63-character DNS label; the fullname itself for slot "".
*/}}
{{- define "model-api.slotFullname" -}}
{{- $root := index . 0 }}
{{- $slot := index . 1 }}
{{- if $slot }}
{{- printf "%s-%s" (include "model-api.fullname" $root | trunc 57 | trimSuffix "-") $slot }}
{{- else }}
{{- include "model-api.fullname" $root }}
{{- end }}
{{- end }}

{{/*
The blue/green preview Service's name: "<fullname>-preview" within 63 characters.
*/}}
{{- define "model-api.previewServiceName" -}}
{{- printf "%s-preview" (include "model-api.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/*
A workload's selector labels (argument: list root slot): the release's selector labels, plus the slot label for a
slot. Fixed from the first install: a slot's label value never changes, so no upgrade changes a selector.
*/}}
{{- define "model-api.slotSelectorLabels" -}}
{{ include "model-api.selectorLabels" (index . 0) }}
{{- with index . 1 }}
model-api/slot: {{ . }}
{{- end }}
{{- end }}

{{/*
The main Service's selector: the release's pods (rolling, canary by replicas), else the active slot's only.
*/}}
{{- define "model-api.serviceSelector" -}}
{{- if and (eq (include "model-api.slotted" .) "true") (not (and (eq .Values.rollout.strategy "canary") (eq .Values.rollout.canary.router "replicas"))) }}
{{- include "model-api.slotSelectorLabels" (list . .Values.rollout.active) }}
{{- else }}
{{- include "model-api.selectorLabels" . }}
{{- end }}
{{- end }}

{{/*
A slot's model version (argument: list root slot): rollout.slots.<slot>.model.version, else model.version.
*/}}
{{- define "model-api.slotModelVersion" -}}
{{- $root := index . 0 }}
{{- $model := (index $root.Values.rollout.slots (index . 1)).model | default dict }}
{{- default (($root.Values.model | default dict).version | default "") $model.version }}
{{- end }}

{{/*
The values a slot's workload is rendered with (argument: list root slot), as YAML: the release's values with the
slot's image, model, replica count and autoscaling bounds; the pod template helper gets the slot's image and
model blocks from them (and the slot label), and renders a slot exactly as it renders the one workload.
*/}}
{{- define "model-api.slotValues" -}}
{{- $root := index . 0 }}
{{- $slot := index . 1 }}
{{- $values := deepCopy $root.Values }}
{{- $overrides := index $root.Values.rollout.slots $slot }}
{{- with $overrides.image }}
{{- if .digest }}
{{- $_ := set $values.image "digest" .digest }}
{{- else if .tag }}
{{- $_ := set $values.image "tag" .tag }}
{{- $_ := set $values.image "digest" "" }}
{{- end }}
{{- end }}
{{- $model := deepCopy ($values.model | default dict) }}
{{- range $key, $value := $overrides.model | default dict }}
{{- if $value }}{{ $_ := set $model $key $value }}{{ end }}
{{- end }}
{{- if $model }}{{ $_ := set $values "model" $model }}{{ end }}
{{- $_ := set $values "replicaCount" (int (include "model-api.slotReplicas" (list $root $slot))) }}
{{- with $overrides.autoscaling }}
{{- if not (kindIs "invalid" .minReplicas) }}{{ $_ := set $values.autoscaling "minReplicas" .minReplicas }}{{ end }}
{{- if not (kindIs "invalid" .maxReplicas) }}{{ $_ := set $values.autoscaling "maxReplicas" .maxReplicas }}{{ end }}
{{- end }}
{{- toYaml $values }}
{{- end }}

{{/*
The weights of the candidate and active slots, as YAML {candidate, active}: rollout.canary.weight and the rest.
*/}}
{{- define "model-api.canaryWeights" -}}
{{- $weight := int .Values.rollout.canary.weight }}
candidate: {{ $weight }}
active: {{ sub 100 $weight }}
{{- end }}

{{/*
The headless Service of a StatefulSet (argument: list root slot): "<slot name>-headless" within 63 characters.
*/}}
{{- define "model-api.slotHeadlessServiceName" -}}
{{- if index . 1 }}
{{- printf "%s-headless" (include "model-api.slotFullname" . | trunc 54 | trimSuffix "-") }}
{{- else }}
{{- include "model-api.headlessServiceName" (index . 0) }}
{{- end }}
{{- end }}

{{/*
The slots that get a PodDisruptionBudget, as a YAML list: [""] (the one workload) for rolling, else each running
slot (a PDB over a slot scaled to zero would only block drains' bookkeeping).
*/}}
{{- define "model-api.pdbSlots" -}}
{{- if eq (include "model-api.slotted" .) "true" }}{{ include "model-api.runningSlots" . }}{{ else }}{{ toYaml (list "") }}{{ end }}
{{- end }}
