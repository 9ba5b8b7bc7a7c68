{{/*
The workloads the autoscaler scales, as a YAML list of {name, service, minReplicas, maxReplicas}: the release's
workload, or one entry per running rollout slot. `service` is the Service whose endpoints are exactly that
workload's pods: the ServiceMonitor's `service` label in the Prometheus queries.
*/}}
{{- define "model-api.scaleTargets" -}}
{{- $targets := list }}
{{- if eq (include "model-api.slotted" .) "true" }}
{{- range $slot := include "model-api.runningSlots" . | fromYamlArray }}
{{- $overrides := (index $.Values.rollout.slots $slot).autoscaling | default dict }}
{{- $targets = append $targets (dict "name" (include "model-api.slotFullname" (list $ $slot)) "service" (include "model-api.slotFullname" (list $ $slot)) "minReplicas" (default $.Values.autoscaling.minReplicas $overrides.minReplicas) "maxReplicas" (default $.Values.autoscaling.maxReplicas $overrides.maxReplicas)) }}
{{- end }}
{{- else }}
{{- $name := include "model-api.fullname" . }}
{{- $targets = append $targets (dict "name" $name "service" $name "minReplicas" .Values.autoscaling.minReplicas "maxReplicas" .Values.autoscaling.maxReplicas) }}
{{- end }}
{{- toYaml $targets }}
{{- end }}

{{/*
The scaling behavior: autoscaling.behavior, with autoscaling.tolerance.<direction> as <direction>.tolerance.
*/}}
{{- define "model-api.autoscalingBehavior" -}}
{{- $behavior := deepCopy (.Values.autoscaling.behavior | default dict) }}
{{- range $direction := list "scaleUp" "scaleDown" }}
{{- $tolerance := index ($.Values.autoscaling.tolerance | default dict) $direction }}
{{- if not (kindIs "invalid" $tolerance) }}
{{- $rules := index $behavior $direction | default dict }}
{{- $_ := set $rules "tolerance" (toString $tolerance) }}
{{- $_ := set $behavior $direction $rules }}
{{- end }}
{{- end }}
{{- with $behavior }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
The label matcher that leaves the kubelet's probes and Prometheus' scrapes out of the request counter.
*/}}
{{- define "model-api.servedRoutes" -}}
route!~"/healthz|/readyz|/metrics"
{{- end }}

{{/*
PromQL: requests per second answered by the pods behind a Service (argument: list root serviceName).
*/}}
{{- define "model-api.requestsPerSecondQuery" -}}
{{- $root := index . 0 }}
{{- printf "sum(rate(model_api_requests_total{namespace=%q,service=%q,%s}[%s]))" $root.Release.Namespace (index . 1) (include "model-api.servedRoutes" $root) $root.Values.autoscaling.keda.rateWindow }}
{{- end }}

{{/*
PromQL: requests in flight in the pods behind a Service (argument: list root serviceName).
*/}}
{{- define "model-api.inFlightQuery" -}}
{{- $root := index . 0 }}
{{- printf "sum(model_api_requests_in_flight{namespace=%q,service=%q})" $root.Release.Namespace (index . 1) }}
{{- end }}

{{/*
PromQL: requests per second arriving in front of the pods (ingress, gateway, mesh), which KEDA reads to wake a
workload scaled to zero: autoscaling.keda.activation.query, or the request counter of the chart's own Ingress
when ingress-nginx serves it (ingress.className nginx; a rolling release, whose Ingress reaches the one
workload). Empty when neither.
*/}}
{{- define "model-api.kedaActivationQuery" -}}
{{- $keda := .Values.autoscaling.keda }}
{{- if $keda.activation.query }}
{{- $keda.activation.query }}
{{- else if and .Values.ingress.enabled (eq .Values.ingress.className "nginx") (ne (include "model-api.slotted" .) "true") }}
{{- printf "sum(rate(nginx_ingress_controller_requests{ingress=%q}[%s]))" (include "model-api.fullname" .) $keda.rateWindow }}
{{- end }}
{{- end }}
