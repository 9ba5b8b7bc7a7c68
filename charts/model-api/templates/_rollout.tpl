{{/*
"true" when the release runs two slots (rollout.strategy canary or blueGreen), "false" for rolling.
*/}}
{{- define "model-api.slotted" -}}
{{- if and .Values.rollout (ne .Values.rollout.strategy "rolling") }}true{{ else }}false{{ end }}
{{- end }}
