{{/*
Batch scoring (batch.enabled): an Indexed Job, or a CronJob when batch.schedule is set, built from the same
pod template as the serving pods (image, model delivery init container, security context, service account,
volumes) with component "batch": labels no Service, PDB, NetworkPolicy, HPA or ServiceMonitor selects.
*/}}

{{/*
The batch container's command: model-api batch over the whole input; the shard index comes from
$JOB_COMPLETION_INDEX, which the Job controller sets in every pod of an Indexed Job.
*/}}
{{- define "model-api.batchCommand" -}}
{{- $batch := .Values.batch }}
{{- $command := list "model-api" "batch" "--input" $batch.input "--output" $batch.output "--shard-count" (toString (int $batch.shards)) }}
{{- with $batch.inputFormat }}{{ $command = concat $command (list "--input-format" .) }}{{ end }}
{{- with $batch.inputSha256 }}{{ $command = concat $command (list "--input-sha256" .) }}{{ end }}
{{- if and $batch.allowUnverifiedInput (not $batch.inputSha256) }}{{ $command = append $command "--allow-unverified" }}{{ end }}
{{- $command = concat $command (list "--batch-rows" (toString (int $batch.batchRows)) "--max-error-rate" (toString $batch.maxErrorRate)) }}
{{- toJson $command }}
{{- end }}

{{/*
The batch pod template (metadata + spec): the shared pod template, component "batch", restartPolicy Never; the
S3 settings of model.s3 when the input or the output is on S3.
*/}}
{{- define "model-api.batchPodTemplate" -}}
{{- $pod := dict "root" . "model" .Values.model "image" .Values.image "component" "batch" "restartPolicy" "Never" "command" (include "model-api.batchCommand" . | fromJsonArray) "resources" .Values.batch.resources }}
{{- if or (hasPrefix "s3://" .Values.batch.input) (hasPrefix "s3://" .Values.batch.output) }}
{{- $_ := set $pod "s3" .Values.model.s3 }}
{{- end }}
{{- include "model-api.podTemplate" $pod }}
{{- end }}

{{/*
The Indexed Job spec shared by the Job and the CronJob's jobTemplate. Exit codes of model-api batch (and of the
fetch init container): 2 bad arguments or input, 4 integrity, 5 error rate exceeded fail their index at once
(a retry cannot help); 3 (transient I/O) is retried up to backoffLimitPerIndex; an eviction or preemption
(DisruptionTarget) is not counted.
*/}}
{{- define "model-api.batchJobSpec" -}}
{{- $batch := .Values.batch -}}
completionMode: Indexed
completions: {{ $batch.shards }}
parallelism: {{ $batch.parallelism }}
backoffLimitPerIndex: {{ $batch.backoffLimitPerIndex }}
{{- if not (kindIs "invalid" $batch.maxFailedIndexes) }}
maxFailedIndexes: {{ $batch.maxFailedIndexes }}
{{- end }}
podFailurePolicy:
  rules:
    - action: FailIndex
      onExitCodes:
        operator: In
        values: [2, 4, 5]
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
{{- with $batch.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- if not (kindIs "invalid" $batch.ttlSecondsAfterFinished) }}
ttlSecondsAfterFinished: {{ $batch.ttlSecondsAfterFinished }}
{{- end }}
template:
  {{- include "model-api.batchPodTemplate" . | nindent 2 }}
{{- end }}

{{/*
The one-off Job's name: "<fullname>-batch-<8 hex digits of its spec's hash>". A Job's pod template cannot
change, so a new input, output, model or image makes a new Job (Helm deletes the old one) instead of an
upgrade refused with "field is immutable"; an upgrade that changes nothing of the Job keeps it (no rerun).
*/}}
{{- define "model-api.batchJobName" -}}
{{- printf "%s-batch-%s" (include "model-api.fullname" .) (include "model-api.batchJobSpec" . | sha256sum | trunc 8) }}
{{- end }}

{{/*
The CronJob's name: "<fullname>-batch" (a CronJob's spec can change, so no hash; 52 characters at most, because
its Jobs are named "<name>-<11 digits>").
*/}}
{{- define "model-api.batchCronJobName" -}}
{{- printf "%s-batch" (include "model-api.fullname" .) }}
{{- end }}

{{/*
The labels of the batch objects (Job, CronJob): the batch component's labels, never the serving selector.
*/}}
{{- define "model-api.batchLabels" -}}
{{ include "model-api.componentSelectorLabels" (dict "root" . "component" "batch") }}
{{ include "model-api.commonLabels" . }}
{{- end }}
