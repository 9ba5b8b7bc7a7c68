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
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
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
The env entries for the API key (MODEL_API_API_KEY from the Secret), empty when no key is configured.
*/}}
{{- define "model-api.apiKeyEnv" -}}
{{- with include "model-api.secretName" . -}}
- name: MODEL_API_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ ternary $.Values.apiKey.existingSecretKey "api-key" (not (empty $.Values.apiKey.existingSecret)) }}
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
The pod template (metadata + spec) shared by the Deployment and the StatefulSet: one pod spec for both.
*/}}
{{- define "model-api.podTemplate" -}}
metadata:
  labels:
    {{- include "model-api.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* the data only: a new chart version or commonLabels must not roll the pods */}}
    checksum/config: {{ (include (print .Template.BasePath "/configmap.yaml") . | fromYaml).data | toJson | sha256sum }}
    {{- if and .Values.apiKey.value (not .Values.apiKey.existingSecret) }}
    checksum/secret: {{ (include (print .Template.BasePath "/secret.yaml") . | fromYaml).data | toJson | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- include "model-api.podCommonSpec" . | nindent 2 }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: {{ .Chart.Name }}
      image: {{ include "model-api.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      command: ["model-api", "serve"]
      {{- $env := include "model-api.apiKeyEnv" . }}
      {{- if or $env .Values.extraEnv }}
      env:
        {{- with $env }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "model-api.fullname" . }}
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      startupProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.startupProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ .Values.preStopSleepSeconds }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: cache
          mountPath: {{ .Values.cacheVolume.mountPath }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- include "model-api.tmpVolume" . | nindent 4 }}
    {{- if not (include "model-api.usesClaims" .) }}
    - name: cache
      emptyDir:
        sizeLimit: {{ .Values.cacheVolume.sizeLimit }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "model-api.affinity" . }}
  affinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "model-api.topologySpreadConstraints" . }}
  topologySpreadConstraints:
    {{- . | nindent 4 }}
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

{{/*
Cross-value checks the schema cannot express. Collects every problem and fails once; each message names the key
to change. Called from the workload templates.
*/}}
{{- define "model-api.validateValues" -}}
{{- $messages := list }}
{{- $v := .Values }}
{{- $deployment := eq $v.workload.kind "Deployment" }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- $messages = append $messages (printf "autoscaling.minReplicas (%v) must not exceed autoscaling.maxReplicas (%v)" $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) }}
{{- end }}
{{- if and (not $deployment) $v.workload.strategy }}
{{- $messages = append $messages "workload.strategy applies to a Deployment only: use workload.updateStrategy with workload.kind StatefulSet" }}
{{- end }}
{{- if and $deployment $v.workload.updateStrategy }}
{{- $messages = append $messages "workload.updateStrategy applies to a StatefulSet only: use workload.strategy with workload.kind Deployment" }}
{{- end }}
{{- $fullname := include "model-api.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- $messages = append $messages (printf "the object name %s (release name %s) is not a DNS-1035 label, which a Service name must be (lowercase letter first, no dots): set fullnameOverride" $fullname .Release.Name) }}
{{- end }}
{{- if and (not $deployment) (gt (len $fullname) 52) }}
{{- $messages = append $messages (printf "the StatefulSet name %s is %d characters; Kubernetes needs 52 at most (its pods' controller-revision-hash label): set fullnameOverride or a shorter release name" $fullname (len $fullname)) }}
{{- end }}
{{- if and $deployment $v.persistence.enabled }}
{{- $messages = append $messages "persistence.enabled needs workload.kind StatefulSet (Deployment replicas cannot each own a claim); unset persistence.enabled or set workload.kind=StatefulSet" }}
{{- end }}
{{- if and $v.ingress.enabled (empty $v.ingress.hosts) }}
{{- $messages = append $messages "ingress.enabled needs at least one entry in ingress.hosts" }}
{{- end }}
{{- if and $v.apiKey.value $v.apiKey.existingSecret }}
{{- $messages = append $messages "apiKey.value and apiKey.existingSecret are exclusive: keep one (existingSecret outside development)" }}
{{- end }}
{{- $stop := addf $v.preStopSleepSeconds $v.config.drainSeconds $v.config.shutdownTimeoutSeconds }}
{{- if lt (float64 $v.terminationGracePeriodSeconds) $stop }}
{{- $messages = append $messages (printf "terminationGracePeriodSeconds (%v) must be at least preStopSleepSeconds + config.drainSeconds + config.shutdownTimeoutSeconds (%v), or the kubelet kills requests in flight" $v.terminationGracePeriodSeconds $stop) }}
{{- end }}
{{- if and (not (kindIs "invalid" $v.service.nodePort)) (eq $v.service.type "ClusterIP") }}
{{- $messages = append $messages "service.nodePort needs service.type NodePort or LoadBalancer" }}
{{- end }}
{{- range $i, $e := $v.extraEnv }}
{{- if has $e.name (list "MODEL_API_API_KEY" "MODEL_API_PORT") }}
{{- $messages = append $messages (printf "extraEnv[%d].name %s is set by the chart: use apiKey.* or containerPort" $i $e.name) }}
{{- end }}
{{- end }}
{{- $reserved := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "helm.sh/chart" }}
{{- range $key := list "commonLabels" "podLabels" }}
{{- range $label := keys (index $v $key | default dict) | sortAlpha }}
{{- if has $label $reserved }}
{{- $messages = append $messages (printf "%s.%s is set by the chart and cannot be overridden" $key $label) }}
{{- end }}
{{- end }}
{{- end }}
{{- $requests := ($v.resources | default dict).requests | default dict }}
{{- $limits := ($v.resources | default dict).limits | default dict }}
{{- range $resource := keys $limits | sortAlpha }}
{{- if hasKey $requests $resource }}
{{- if gt (float64 (include "model-api.quantityValue" (index $requests $resource))) (float64 (include "model-api.quantityValue" (index $limits $resource))) }}
{{- $messages = append $messages (printf "resources.requests.%s (%v) must not exceed resources.limits.%s (%v)" $resource (index $requests $resource | toYaml) $resource (index $limits $resource | toYaml)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.serviceMonitor.enabled (gt (float64 (include "model-api.durationSeconds" $v.serviceMonitor.scrapeTimeout)) (float64 (include "model-api.durationSeconds" $v.serviceMonitor.interval))) }}
{{- $messages = append $messages (printf "serviceMonitor.scrapeTimeout (%s) must not exceed serviceMonitor.interval (%s)" $v.serviceMonitor.scrapeTimeout $v.serviceMonitor.interval) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- if and (not (kindIs "invalid" $v.autoscaling.targetCPUUtilizationPercentage)) (not $requests.cpu) }}
{{- $messages = append $messages "autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu (utilization is a percentage of the request)" }}
{{- end }}
{{- if and (not (kindIs "invalid" $v.autoscaling.targetMemoryUtilizationPercentage)) (not $requests.memory) }}
{{- $messages = append $messages "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory (utilization is a percentage of the request)" }}
{{- end }}
{{- end }}
{{- if $v.ingress.enabled }}
{{- $hosts := list }}
{{- range $v.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end }}
{{- range $i, $tls := $v.ingress.tls }}
{{- range $tls.hosts }}
{{- if not (has . $hosts) }}
{{- $messages = append $messages (printf "ingress.tls[%d].hosts names %s, which is not in ingress.hosts" $i .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.networkPolicy }}
{{- if and .enabled .allowExternal (or .ingressController.enabled .allowedNamespaces .allowedPods) }}
{{- $messages = append $messages "networkPolicy.allowExternal admits every source: unset it, or drop networkPolicy.ingressController/allowedNamespaces/allowedPods" }}
{{- end }}
{{- end }}
{{- if $v.pdb.enabled }}
{{- $min := $v.pdb.minAvailable }}
{{- $max := $v.pdb.maxUnavailable }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "invalid" $max)) }}
{{- $messages = append $messages "pdb.minAvailable and pdb.maxUnavailable are exclusive: set the other to null" }}
{{- else if and (kindIs "invalid" $min) (kindIs "invalid" $max) }}
{{- $messages = append $messages "pdb.enabled needs pdb.minAvailable or pdb.maxUnavailable" }}
{{- end }}
{{- $replicas := int (include "model-api.minReplicas" .) }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "string" $min)) (ge (int $min) $replicas) }}
{{- $messages = append $messages (printf "pdb.minAvailable (%v) must be below the minimum replica count (%d, autoscaling.minReplicas or replicaCount), or no node drain can evict a pod" $min $replicas) }}
{{- end }}
{{- if eq (toString $min) "100%" }}
{{- $messages = append $messages "pdb.minAvailable 100% blocks every node drain: lower it or use pdb.maxUnavailable" }}
{{- end }}
{{- if has (toString $max) (list "0" "0%") }}
{{- $messages = append $messages "pdb.maxUnavailable 0 blocks every node drain: set at least 1" }}
{{- end }}
{{- end }}
{{- $messages = concat $messages (include "model-api.autoscalingMessages" . | fromYamlArray) }}
{{- if $messages }}
{{- fail (printf "\n\nmodel-api: invalid values:\n  - %s\n" (join "\n  - " $messages)) }}
{{- end }}
{{- end }}
