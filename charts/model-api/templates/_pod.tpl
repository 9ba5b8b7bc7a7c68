{{/*
The pod template (metadata + spec) of every controller of the chart: Deployment, StatefulSet, Job, CronJob —
one pod spec, never two copies. Takes a dict, so a caller can run another model or image (a rollout slot):

  include "model-api.podTemplate" (dict "root" $ "model" .Values.model "image" .Values.image "component" "server")

  root       the chart's root context
  model      the model block (uri, sha256, version, s3, pvc, fetch, allowInsecureHttp): how the model arrives
  image      the image block (repository, tag, digest, pullPolicy) of the service and its fetch init container
  component  "server" (the serving pods: selector labels, port, probes, preStop) or another name such as
             "batch" (run to completion: labels no Service, PDB, NetworkPolicy, HPA or ServiceMonitor selects)
  command    optional: the main container's command (default: model-api serve)
  restartPolicy  optional: the pod's restartPolicy (Never for Jobs)
  labels     optional: extra pod labels (a rollout slot's)
  resources  optional: the main container's resources (default: .Values.resources)
  s3         optional: a model.s3 block whose endpoint and credentials the main container needs (batch on S3)
*/}}
{{- define "model-api.podTemplate" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $server := eq .component "server" }}
metadata:
  labels:
    {{- include "model-api.podLabels" . | nindent 4 }}
  annotations:
    {{- /* the data only: a new chart version or commonLabels must not roll the pods */}}
    checksum/config: {{ (include (print $root.Template.BasePath "/configmap.yaml") $root | fromYaml).data | toJson | sha256sum }}
    {{- if and $server $values.apiKey.value (not $values.apiKey.existingSecret) }}
    checksum/secret: {{ (include (print $root.Template.BasePath "/secret.yaml") $root | fromYaml).data | toJson | sha256sum }}
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- include "model-api.podCommonSpec" $root | nindent 2 }}
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  {{- with $values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
  {{- with include "model-api.fetchContainer" . }}
  initContainers:
    {{- . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ $root.Chart.Name }}
      image: {{ include "model-api.imageRef" (dict "root" $root "image" .image) }}
      imagePullPolicy: {{ .image.pullPolicy }}
      {{- with $values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      command: {{ .command | default (list "model-api" "serve") | toJson }}
      {{- $env := include "model-api.serviceEnv" . }}
      {{- if or $env $values.extraEnv }}
      env:
        {{- with $env }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "model-api.fullname" $root }}
      {{- if $server }}
      ports:
        - name: http
          containerPort: {{ $values.containerPort }}
          protocol: TCP
      startupProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $values.startupProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $values.readinessProbe | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml $values.livenessProbe | nindent 8 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $values.preStopSleepSeconds }}
      {{- end }}
      {{- with .resources | default $values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- include "model-api.modelVolumeMounts" . | nindent 8 }}
        {{- if $server }}
        {{- with include "model-api.apiKeyVolumeMount" $root }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- end }}
        {{- with $values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- include "model-api.tmpVolume" $root | nindent 4 }}
    {{- with include "model-api.modelVolumes" . }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- if $server }}
    {{- with include "model-api.apiKeyVolume" $root }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- end }}
    {{- with $values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- /* spreading and anti-affinity are about serving replicas; other components get the explicit affinity only */}}
  {{- with ternary (include "model-api.affinity" $root) (ternary (toYaml $values.affinity) "" (not (empty $values.affinity))) $server }}
  affinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $server }}
  {{- with include "model-api.topologySpreadConstraints" $root }}
  topologySpreadConstraints:
    {{- . | nindent 4 }}
  {{- end }}
  {{- end }}
{{- end }}

{{/*
The pod labels of a component (the podTemplate dict). "server": the selector labels, so the Services, PDB,
NetworkPolicy, HPA and ServiceMonitor find the pods. Any other component: its own name label
("<name>-<component>") and app.kubernetes.io/component, so none of those selects it (a workload selector is
immutable, so the serving pods' selector cannot gain a component label after install). Then the common labels
(without chart and app version for other components), the model version (never in a selector: it changes
with every model) and podLabels.
*/}}
{{- define "model-api.podLabels" -}}
{{- $root := .root }}
{{- if eq .component "server" }}
{{- include "model-api.selectorLabels" $root }}
{{ include "model-api.commonLabels" $root }}
{{- else }}
{{- /* no chart or app version: a Job's template is immutable, so a chart upgrade alone must not change it */}}
{{- include "model-api.componentSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- with .model.version }}
model-api/model-version: {{ . | quote }}
{{- end }}
{{- with .labels }}
{{ toYaml . }}
{{- end }}
{{- with $root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The selector labels of a component other than the serving pods (dict "root" $ "component" "batch"): name
"<name>-<component>", the instance, app.kubernetes.io/component.
*/}}
{{- define "model-api.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "model-api.name" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-" }}-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Where the model comes from, for a model block: "uri" (fetched by the init container), "pvc" (an existing claim,
read-only) or "" (the model built into the image, or config.modelPath).
*/}}
{{- define "model-api.modelSource" -}}
{{- if .uri }}uri{{ else if (.pvc | default dict).claimName }}pvc{{ end }}
{{- end }}

{{/*
The directory the model volume is mounted on: the fetch destination (the cache volume) for a URI, a fixed
read-only mount for a claim.
*/}}
{{- define "model-api.modelDir" -}}
{{- if eq (include "model-api.modelSource" .model) "pvc" }}/var/lib/model-api/model{{ else }}{{ .root.Values.cacheVolume.mountPath }}{{ end }}
{{- end }}

{{/*
MODEL_API_MODEL_PATH for a model block (podTemplate dict): <dest>/<last path segment of model.uri> for a URI,
<mount>/<model.pvc.path> (or the mount itself) for a claim, empty otherwise.
*/}}
{{- define "model-api.modelPath" -}}
{{- $source := include "model-api.modelSource" .model }}
{{- if eq $source "uri" }}
{{- printf "%s/%s" (include "model-api.modelDir" .) (.model.uri | splitList "?" | first | splitList "/" | last) }}
{{- else if eq $source "pvc" }}
{{- include "model-api.modelDir" . }}{{ with .model.pvc.path }}/{{ . | trimPrefix "/" }}{{ end }}
{{- end }}
{{- end }}

{{/*
The main container's env entries set by the chart (podTemplate dict): the API key file (serving pods), the
model path and version, the S3 settings when the caller passes "s3".
*/}}
{{- define "model-api.serviceEnv" -}}
{{- if eq .component "server" }}
{{- with include "model-api.apiKeyEnv" .root }}
{{ . }}
{{- end }}
{{- end }}
{{- with include "model-api.modelPath" . }}
- name: MODEL_API_MODEL_PATH
  value: {{ . | quote }}
{{- end }}
{{- with .model.version }}
- name: MODEL_API_MODEL_VERSION
  value: {{ . | quote }}
{{- end }}
{{- with .s3 }}
{{- include "model-api.s3Env" . }}
{{- end }}
{{- end }}

{{/*
The main container's model mounts (podTemplate dict): the cache volume (read-only once it holds a fetched
model, writable scratch otherwise) and, for a claim, the claim read-only.
*/}}
{{- define "model-api.modelVolumeMounts" -}}
{{- $source := include "model-api.modelSource" .model -}}
- name: cache
  mountPath: {{ .root.Values.cacheVolume.mountPath }}
  {{- if eq $source "uri" }}
  readOnly: true
  {{- end }}
{{- if eq $source "pvc" }}
- name: model
  mountPath: {{ include "model-api.modelDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The model volumes (podTemplate dict): the cache emptyDir (unless the StatefulSet's claim template provides it)
and, for a claim source, the existing claim read-only.
*/}}
{{- define "model-api.modelVolumes" -}}
{{- if not (and (eq .component "server") (include "model-api.usesClaims" .root)) }}
- name: cache
  emptyDir:
    sizeLimit: {{ .root.Values.cacheVolume.sizeLimit }}
{{- end }}
{{- if eq (include "model-api.modelSource" .model) "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ .model.pvc.claimName }}
    readOnly: true
{{- end }}
{{- end }}

{{/*
The S3 env entries of a model.s3 block: AWS_ENDPOINT_URL, and the credentials as secretKeyRef from its
existingSecret. Only for the containers that read S3: the fetch init container and a batch container whose
input or output is on S3.
*/}}
{{- define "model-api.s3Env" -}}
{{- with .endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{/*
The init container that fetches model.uri into the cache volume with the service's own image (podTemplate
dict), empty unless the model comes from a URI. `model-api fetch` verifies the SHA-256, writes to a temporary
name and renames, and is a no-op when the volume already holds the artifact (a StatefulSet's claim). S3
credentials reach this container only. Exit codes: 0 done, 2 configuration, 3 transfer, 4 integrity.
*/}}
{{- define "model-api.fetchContainer" -}}
{{- $root := .root }}
{{- $model := .model }}
{{- if eq (include "model-api.modelSource" $model) "uri" -}}
{{- $command := list "model-api" "fetch" "--uri" $model.uri }}
{{- with $model.sha256 }}{{ $command = concat $command (list "--sha256" .) }}{{ end }}
{{- $command = concat $command (list "--dest" (include "model-api.modelDir" .)) }}
{{- with $model.fetch }}
{{- $command = concat $command (list "--connect-timeout" (toString .connectTimeoutSeconds) "--read-timeout" (toString .readTimeoutSeconds) "--deadline" (toString .deadlineSeconds) "--retries" (toString (int .retries)) "--backoff" (toString .backoffSeconds)) }}
{{- end }}
{{- if $model.allowInsecureHttp }}{{ $command = append $command "--allow-insecure-http" }}{{ end -}}
- name: fetch-model
  image: {{ include "model-api.imageRef" (dict "root" $root "image" .image) }}
  imagePullPolicy: {{ .image.pullPolicy }}
  {{- with $root.Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  command: {{ $command | toJson }}
  {{- with include "model-api.s3Env" ($model.s3 | default dict) }}
  env:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with $model.fetch.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: cache
      mountPath: {{ $root.Values.cacheVolume.mountPath }}
{{- end }}
{{- end }}
