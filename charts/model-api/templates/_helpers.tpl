{{/*
The chart name, or nameOverride.
*/}}
{{- define "model-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified object name (63 characters at most: DNS label rules): fullnameOverride, else the release
name when it already contains the chart name, else "<release>-<chart name>".
*/}}
{{- define "model-api.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The chart label value: "<name>-<version>" ("+" is not allowed in label values).
*/}}
{{- define "model-api.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries, apart from the selector labels: chart, version, manager, commonLabels.
*/}}
{{- define "model-api.commonLabels" -}}
helm.sh/chart: {{ include "model-api.chart" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The recommended labels of the release's objects: selector labels plus the common labels.
*/}}
{{- define "model-api.labels" -}}
{{ include "model-api.selectorLabels" . }}
{{ include "model-api.commonLabels" . }}
{{- end }}

{{/*
Selector labels: name and instance only, because a workload's selector cannot change after install.
*/}}
{{- define "model-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The label that lets a pod through the NetworkPolicy (the helm test pod carries it). The fullname is the value,
not part of the key, because a label key's name is limited to 63 characters.
*/}}
{{- define "model-api.clientLabel" -}}
model-api/client-of: {{ include "model-api.fullname" . }}
{{- end }}

{{/*
The labels that identify the helm test pod (and that its NetworkPolicy selects): not the selector labels, so
the Service, PDB and HPA never count it as a replica.
*/}}
{{- define "model-api.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "model-api.name" . | trunc 58 | trimSuffix "-" }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{/*
The name of the helm test pod and of its NetworkPolicy (63 characters at most).
*/}}
{{- define "model-api.testName" -}}
{{- include "model-api.fullname" . | trunc 47 | trimSuffix "-" }}-test-connection
{{- end }}

{{/*
A NetworkPolicy egress rule: DNS (53 UDP/TCP) to kube-dns in kube-system.
*/}}
{{- define "model-api.dnsEgressRule" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/*
"true" when a CRD-backed object may be rendered, else empty. Takes (dict "root" $ "api" "<group/version/Kind>"
"force" <bool>): rendered where the cluster serves the API (discovered on a live install) or where the user
forced it (offline renders, helm template). A shipped environment file never forces one: an install on a
cluster without the CRD would fail with "no matches for kind". Every CRD-backed object uses this guard, and
NOTES.txt says what was skipped.
*/}}
{{- define "model-api.apiServed" -}}
{{- if or .force (.root.Capabilities.APIVersions.Has .api) }}true{{ end }}
{{- end }}

{{/*
The headless Service's name (StatefulSet): the fullname cut to 54 characters plus "-headless", so it stays a
63-character DNS label and never collides with the main Service.
*/}}
{{- define "model-api.headlessServiceName" -}}
{{- printf "%s-headless" (include "model-api.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "model-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-api.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when image.digest is set, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "model-api.image" -}}
{{- include "model-api.imageRef" (dict "root" . "image" .Values.image) }}
{{- end }}

{{/*
The reference of a given image block (repository, tag, digest): (dict "root" $ "image" <image values>), so a
pod that runs another image (a rollout slot) uses the same rule.
*/}}
{{- define "model-api.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/*
The name of the Secret holding the API key (apiKey.existingSecret or the chart's own), empty when no key is configured.
*/}}
{{- define "model-api.secretName" -}}
{{- if .Values.apiKey.existingSecret }}
{{- .Values.apiKey.existingSecret }}
{{- else if .Values.apiKey.value }}
{{- include "model-api.fullname" . }}
{{- end }}
{{- end }}

{{/*
The key of the API key inside its Secret: apiKey.existingSecretKey for an existing Secret, else "api-key".
*/}}
{{- define "model-api.secretKey" -}}
{{- ternary .Values.apiKey.existingSecretKey "api-key" (not (empty .Values.apiKey.existingSecret)) }}
{{- end }}

{{/*
The directory the API key Secret is mounted on (read-only) and the file the service reads, in every pod that
needs the key. A file, not an environment variable: environment variables leak through /proc/<pid>/environ,
crash reports and every child process.
*/}}
{{- define "model-api.apiKeyDir" -}}
/var/run/secrets/model-api
{{- end }}

{{/*
The env entries for the API key (MODEL_API_API_KEY_FILE, the mounted Secret's file), empty when no key is configured.
*/}}
{{- define "model-api.apiKeyEnv" -}}
{{- if include "model-api.secretName" . -}}
- name: MODEL_API_API_KEY_FILE
  value: {{ include "model-api.apiKeyDir" . }}/api-key
{{- end }}
{{- end }}

{{/*
The volumeMounts entry of the API key Secret (read-only), empty when no key is configured.
*/}}
{{- define "model-api.apiKeyVolumeMount" -}}
{{- if include "model-api.secretName" . -}}
- name: api-key
  mountPath: {{ include "model-api.apiKeyDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The volumes entry of the API key Secret: only its key, as the file "api-key", mode 0440 (owner root, group
fsGroup: readable by the pod's user through fsGroup, by nobody else). Empty when no key is configured.
*/}}
{{- define "model-api.apiKeyVolume" -}}
{{- with include "model-api.secretName" . -}}
- name: api-key
  secret:
    secretName: {{ . }}
    # 0440 octal: read for the owner and the group only
    defaultMode: 288
    items:
      - key: {{ include "model-api.secretKey" $ }}
        path: api-key
{{- end }}
{{- end }}

{{/*
The pod-level fields shared by the workload pod and the test hook pod: pull secrets, service account, token
automount, service links, security context. Service links are off because a Service named "model-api" would
inject MODEL_API_PORT=tcp://... and other MODEL_API_* variables into the service's settings namespace.
*/}}
{{- define "model-api.podCommonSpec" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{ end -}}
serviceAccountName: {{ include "model-api.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
enableServiceLinks: false
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The /tmp emptyDir volume (the root filesystem is read-only).
*/}}
{{- define "model-api.tmpVolume" -}}
- name: tmp
  emptyDir:
    {{- with .Values.tmpVolume.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- end }}

{{/*
The pod affinity: .Values.affinity when set, else the podAntiAffinityPreset (soft: prefer one replica per node,
hard: require it) built on the selector labels, else empty.
*/}}
{{- define "model-api.affinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if .Values.podAntiAffinityPreset }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "model-api.selectorLabels" . | fromYaml)) -}}
podAntiAffinity:
{{- if eq .Values.podAntiAffinityPreset "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list $term) | nindent 4 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list (dict "weight" 100 "podAffinityTerm" $term)) | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
topologySpreadConstraints with the release's selector labels filled in where a constraint has no labelSelector.
*/}}
{{- define "model-api.topologySpreadConstraints" -}}
{{- $selector := include "model-api.selectorLabels" . | fromYaml }}
{{- $constraints := list }}
{{- range .Values.topologySpreadConstraints }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- with $constraints }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
"true" when the cache volume is a per-replica PersistentVolumeClaim (StatefulSet with persistence), else empty.
*/}}
{{- define "model-api.usesClaims" -}}
{{- if and (eq .Values.workload.kind "StatefulSet") .Values.persistence.enabled }}true{{ end }}
{{- end }}

{{/*
The replica count the release can fall to (HPA minimum, else replicaCount): what a PodDisruptionBudget must leave room in.
*/}}
{{- define "model-api.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
A Kubernetes quantity (250m, 0.5, 128Mi, 1G, 134217728) as a plain number, for comparisons in validateValues.
*/}}
{{- define "model-api.quantityValue" -}}
{{- if kindIs "string" . }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $scale := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 }}
{{- mulf (float64 $number) (get $scale (trimPrefix $number .)) }}
{{- else }}
{{- float64 . }}
{{- end }}
{{- end }}

{{/*
A Prometheus duration (500ms, 30s, 1m30s, 2h) in seconds, for comparisons in validateValues.
*/}}
{{- define "model-api.durationSeconds" -}}
{{- $scale := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9.]+(ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $total = addf $total (mulf (float64 $number) (get $scale (trimPrefix $number .))) }}
{{- end }}
{{- $total }}
{{- end }}
