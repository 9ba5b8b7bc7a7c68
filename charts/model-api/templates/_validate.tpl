{{/*
Cross-value checks the schema cannot express, one helper per area. Collects every problem and fails once; each
message names the key to change. Called from the workload templates.

Every area helper receives the same dict, {"root": <the chart's root context>, "messages": <list>}, collects
its own messages in a local list and concatenates them onto .messages at its end. To add an area, define
"model-api.validateValues.<area>" the same way and add <area> to the list below.
*/}}
{{- define "model-api.validateValues" -}}
{{- $check := dict "root" . "messages" list }}
{{- range $area := list "autoscaling" "workload" "naming" "security" "lifecycle" "networking" "labels" "resources" "monitoring" "availability" "model" "rollout" "batch" }}
{{- include (printf "model-api.validateValues.%s" $area) $check }}
{{- end }}
{{- with $check.messages }}
{{- fail (printf "\n\nmodel-api: invalid values:\n  - %s\n" (join "\n  - " .)) }}
{{- end }}
{{- end }}

{{/*
Autoscaling: one engine, replica bounds (zero only where something can wake the workload), a metric to scale on,
and the requests a utilization target is measured against.
*/}}
{{- define "model-api.validateValues.autoscaling" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $m := list }}
{{- $requests := ($v.resources | default dict).requests | default dict }}
{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- $m = append $m (printf "autoscaling.minReplicas (%v) must not exceed autoscaling.maxReplicas (%v)" $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) }}
{{- end }}
{{- with $v.autoscaling }}
{{- $cpu := not (kindIs "invalid" .targetCPUUtilizationPercentage) }}
{{- $memory := not (kindIs "invalid" .targetMemoryUtilizationPercentage) }}
{{- $requestBased := or (not (kindIs "invalid" .targetRequestsPerSecond)) (not (kindIs "invalid" .targetInFlight)) }}
{{- if not (has .engine (list "hpa" "keda")) }}
{{- $m = append $m (printf "autoscaling.engine %v: set exactly one engine, hpa or keda (two autoscalers on one workload fight over its replicas)" .engine) }}
{{- end }}
{{- if and (eq .engine "keda") .metrics }}
{{- $m = append $m "autoscaling.metrics are HPA MetricSpecs, but autoscaling.engine is keda: two engines would scale the workload; drop autoscaling.metrics or use engine hpa" }}
{{- end }}
{{- if not (or $cpu $memory $requestBased .metrics) }}
{{- $m = append $m "autoscaling.enabled needs a metric: set autoscaling.targetCPUUtilizationPercentage, autoscaling.targetMemoryUtilizationPercentage, autoscaling.targetRequestsPerSecond, autoscaling.targetInFlight or autoscaling.metrics" }}
{{- end }}
{{- if eq (int .minReplicas) 0 }}
{{- if ne .engine "keda" }}
{{- $m = append $m "autoscaling.minReplicas 0 needs autoscaling.engine keda with autoscaling.targetRequestsPerSecond and autoscaling.keda.activation.query (an HPA cannot scale to zero)" }}
{{- else }}
{{- if kindIs "invalid" .targetRequestsPerSecond }}
{{- $m = append $m "autoscaling.minReplicas 0 with engine keda needs autoscaling.targetRequestsPerSecond: the trigger that wakes the workload counts requests per second in front of the pods and scales on that target per pod (CPU, memory and in-flight come from pods, which do not exist at zero)" }}
{{- end }}
{{- if not (include "model-api.kedaActivationQuery" $root) }}
{{- $m = append $m "autoscaling.minReplicas 0 with engine keda needs autoscaling.keda.activation.query: PromQL for the requests per second arriving in front of the pods, e.g. sum(rate(nginx_ingress_controller_requests{ingress=\"<fullname>\"}[1m])) (derived when the chart's Ingress has ingress.className nginx); the pods' own counters read 0 with no pod, so the workload would never wake" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (not (kindIs "invalid" $v.autoscaling.targetCPUUtilizationPercentage)) (not $requests.cpu) }}
{{- $m = append $m "autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu (utilization is a percentage of the request)" }}
{{- end }}
{{- if and (not (kindIs "invalid" $v.autoscaling.targetMemoryUtilizationPercentage)) (not $requests.memory) }}
{{- $m = append $m "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory (utilization is a percentage of the request)" }}
{{- end }}
{{- $limits := ($v.resources | default dict).limits | default dict }}
{{- range $resource, $key := dict "cpu" "targetCPUUtilizationPercentage" "memory" "targetMemoryUtilizationPercentage" }}
{{- $target := index $v.autoscaling $key }}
{{- if and (not (kindIs "invalid" $target)) (index $requests $resource) (index $limits $resource) }}
{{- $reachable := mulf 100.0 (divf (float64 (include "model-api.quantityValue" (index $limits $resource))) (float64 (include "model-api.quantityValue" (index $requests $resource)))) }}
{{- if gt (float64 $target) $reachable }}
{{- $m = append $m (printf "autoscaling.%s (%v) is above what resources.limits.%s lets a pod reach (%v %% of the request): lower the target or raise the limit" $key $target $resource (floor $reachable)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Workload: the strategy field of the chosen kind, persistence only where replicas can own claims.
*/}}
{{- define "model-api.validateValues.workload" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- $deployment := eq $v.workload.kind "Deployment" }}
{{- if and (not $deployment) $v.workload.strategy }}
{{- $m = append $m "workload.strategy applies to a Deployment only: use workload.updateStrategy with workload.kind StatefulSet" }}
{{- end }}
{{- if and $deployment $v.workload.updateStrategy }}
{{- $m = append $m "workload.updateStrategy applies to a StatefulSet only: use workload.strategy with workload.kind Deployment" }}
{{- end }}
{{- if and $deployment $v.persistence.enabled }}
{{- $m = append $m "persistence.enabled needs workload.kind StatefulSet (Deployment replicas cannot each own a claim); unset persistence.enabled or set workload.kind=StatefulSet" }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Naming: object names the API server accepts (Service names, the StatefulSet's pod label limit).
*/}}
{{- define "model-api.validateValues.naming" -}}
{{- $m := list }}
{{- $fullname := include "model-api.fullname" .root }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- $m = append $m (printf "the object name %s (release name %s) is not a DNS-1035 label, which a Service name must be (lowercase letter first, no dots): set fullnameOverride" $fullname .root.Release.Name) }}
{{- end }}
{{- if and (eq .root.Values.workload.kind "StatefulSet") (gt (len $fullname) 52) }}
{{- $m = append $m (printf "the StatefulSet name %s is %d characters; Kubernetes needs 52 at most (its pods' controller-revision-hash label): set fullnameOverride or a shorter release name" $fullname (len $fullname)) }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Security: one source for the API key, no environment variable that would shadow what the chart sets.
*/}}
{{- define "model-api.validateValues.security" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- if and $v.apiKey.value $v.apiKey.existingSecret }}
{{- $m = append $m "apiKey.value and apiKey.existingSecret are exclusive: keep one (existingSecret outside development)" }}
{{- end }}
{{- range $i, $e := $v.extraEnv }}
{{- if has $e.name (list "MODEL_API_API_KEY" "MODEL_API_API_KEY_FILE" "MODEL_API_PORT" "MODEL_API_MODEL_PATH" "MODEL_API_MODEL_VERSION") }}
{{- $m = append $m (printf "extraEnv[%d].name %s is set by the chart: use apiKey.*, containerPort, config.modelPath or model.*" $i $e.name) }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Lifecycle: the grace period covers preStop, drain and shutdown.
*/}}
{{- define "model-api.validateValues.lifecycle" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- $stop := addf $v.preStopSleepSeconds $v.config.drainSeconds $v.config.shutdownTimeoutSeconds }}
{{- if lt (float64 $v.terminationGracePeriodSeconds) $stop }}
{{- $m = append $m (printf "terminationGracePeriodSeconds (%v) must be at least preStopSleepSeconds + config.drainSeconds + config.shutdownTimeoutSeconds (%v), or the kubelet kills requests in flight" $v.terminationGracePeriodSeconds $stop) }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Networking: Service, Ingress and NetworkPolicy values that contradict each other.
*/}}
{{- define "model-api.validateValues.networking" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- if and (not (kindIs "invalid" $v.service.nodePort)) (eq $v.service.type "ClusterIP") }}
{{- $m = append $m "service.nodePort needs service.type NodePort or LoadBalancer" }}
{{- end }}
{{- if $v.ingress.enabled }}
{{- if empty $v.ingress.hosts }}
{{- $m = append $m "ingress.enabled needs at least one entry in ingress.hosts" }}
{{- end }}
{{- $hosts := list }}
{{- range $v.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end }}
{{- range $i, $tls := $v.ingress.tls }}
{{- range $tls.hosts }}
{{- if not (has . $hosts) }}
{{- $m = append $m (printf "ingress.tls[%d].hosts names %s, which is not in ingress.hosts" $i .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.networkPolicy }}
{{- if and .enabled .allowExternal (or .ingressController.enabled .allowedNamespaces .allowedPods) }}
{{- $m = append $m "networkPolicy.allowExternal admits every source: unset it, or drop networkPolicy.ingressController/allowedNamespaces/allowedPods" }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Labels: the chart's own labels cannot be overridden through commonLabels or podLabels.
*/}}
{{- define "model-api.validateValues.labels" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- $reserved := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "helm.sh/chart" }}
{{- range $key := list "commonLabels" "podLabels" }}
{{- range $label := keys (index $v $key | default dict) | sortAlpha }}
{{- if has $label $reserved }}
{{- $m = append $m (printf "%s.%s is set by the chart and cannot be overridden" $key $label) }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Resources: no request above its limit.
*/}}
{{- define "model-api.validateValues.resources" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- $requests := ($v.resources | default dict).requests | default dict }}
{{- $limits := ($v.resources | default dict).limits | default dict }}
{{- range $resource := keys $limits | sortAlpha }}
{{- if hasKey $requests $resource }}
{{- if gt (float64 (include "model-api.quantityValue" (index $requests $resource))) (float64 (include "model-api.quantityValue" (index $limits $resource))) }}
{{- $m = append $m (printf "resources.requests.%s (%v) must not exceed resources.limits.%s (%v)" $resource (index $requests $resource | toYaml) $resource (index $limits $resource | toYaml)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Monitoring: a scrape must end before the next one starts.
*/}}
{{- define "model-api.validateValues.monitoring" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- if and $v.serviceMonitor.enabled (gt (float64 (include "model-api.durationSeconds" $v.serviceMonitor.scrapeTimeout)) (float64 (include "model-api.durationSeconds" $v.serviceMonitor.interval))) }}
{{- $m = append $m (printf "serviceMonitor.scrapeTimeout (%s) must not exceed serviceMonitor.interval (%s)" $v.serviceMonitor.scrapeTimeout $v.serviceMonitor.interval) }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Availability: a PodDisruptionBudget that names one bound and still lets a node drain evict a pod.
*/}}
{{- define "model-api.validateValues.availability" -}}
{{- $v := .root.Values }}
{{- $m := list }}
{{- if $v.pdb.enabled }}
{{- $min := $v.pdb.minAvailable }}
{{- $max := $v.pdb.maxUnavailable }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "invalid" $max)) }}
{{- $m = append $m "pdb.minAvailable and pdb.maxUnavailable are exclusive: set the other to null" }}
{{- else if and (kindIs "invalid" $min) (kindIs "invalid" $max) }}
{{- $m = append $m "pdb.enabled needs pdb.minAvailable or pdb.maxUnavailable" }}
{{- end }}
{{- $replicas := int (include "model-api.minReplicas" .root) }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "string" $min)) (ge (int $min) $replicas) }}
{{- $m = append $m (printf "pdb.minAvailable (%v) must be below the minimum replica count (%d, autoscaling.minReplicas or replicaCount), or no node drain can evict a pod" $min $replicas) }}
{{- end }}
{{- if eq (toString $min) "100%" }}
{{- $m = append $m "pdb.minAvailable 100% blocks every node drain: lower it or use pdb.maxUnavailable" }}
{{- end }}
{{- if has (toString $max) (list "0" "0%") }}
{{- $m = append $m "pdb.maxUnavailable 0 blocks every node drain: set at least 1" }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Rollout: the active slot runs; the candidate runs whenever it gets traffic; each router has what it routes with;
the slot labels are the chart's.
*/}}
{{- define "model-api.validateValues.rollout" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $m := list }}
{{- range $key := list "commonLabels" "podLabels" }}
{{- range $label := list "model-api/slot" "model-api/model-version" }}
{{- if hasKey (index $v $key | default dict) $label }}
{{- $m = append $m (printf "%s.%s is set by the chart (rollout slots) and cannot be overridden" $key $label) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq (include "model-api.slotted" $root) "true" }}
{{- $r := $v.rollout }}
{{- range $slot := list "blue" "green" }}
{{- $overrides := (index $r.slots $slot).model | default dict }}
{{- if or $overrides.uri $overrides.sha256 }}
{{- $model := (include "model-api.slotValues" (list $root $slot) | fromYaml).model }}
{{- $m = concat $m (include "model-api.validateModel" (dict "model" $model "key" (printf "rollout.slots.%s.model" $slot) "root" $root) | fromYamlArray) }}
{{- end }}
{{- end }}
{{- $active := $r.active }}
{{- $candidate := include "model-api.candidateSlot" $root }}
{{- $activeReplicas := int (include "model-api.slotReplicas" (list $root $active)) }}
{{- $candidateReplicas := int (include "model-api.slotReplicas" (list $root $candidate)) }}
{{- $canary := eq $r.strategy "canary" }}
{{- $green := include "model-api.slotFullname" (list $root "green") }}
{{- if and (eq $v.workload.kind "StatefulSet") (gt (len $green) 52) }}
{{- $m = append $m (printf "the slot StatefulSet name %s is %d characters; Kubernetes needs 52 at most: set fullnameOverride (46 characters at most with rollout slots) or a shorter release name" $green (len $green)) }}
{{- end }}
{{- if eq $activeReplicas 0 }}
{{- $m = append $m (printf "rollout.slots.%s.replicaCount is 0, but rollout.active is %s: the active slot must run (set its replicaCount, or promote the other slot first)" $active $active) }}
{{- end }}
{{- if eq $candidateReplicas 0 }}
{{- if eq $r.strategy "blueGreen" }}
{{- $m = append $m (printf "rollout.slots.%s.replicaCount is 0 with rollout.strategy blueGreen: the preview Service needs the candidate running (retire the old slot with rollout.strategy canary and weight 0)" $candidate) }}
{{- else if gt (int $r.canary.weight) 0 }}
{{- $m = append $m (printf "rollout.slots.%s.replicaCount is 0 while rollout.canary.weight is %d: the candidate slot must run to take traffic" $candidate (int $r.canary.weight)) }}
{{- else if and $r.canary.header (ne $r.canary.router "replicas") }}
{{- $m = append $m (printf "rollout.slots.%s.replicaCount is 0 while rollout.canary.header routes to it: unset the header or run the slot" $candidate) }}
{{- end }}
{{- end }}
{{- if $canary }}
{{- if and (eq $r.canary.router "gatewayAPI") (empty $v.httpRoute.parentRefs) }}
{{- $m = append $m "httpRoute.parentRefs is empty: rollout.canary.router gatewayAPI needs the Gateway the HTTPRoute attaches to" }}
{{- end }}
{{- if and (eq $r.canary.router "ingressNginx") (not $v.ingress.enabled) }}
{{- $m = append $m "rollout.canary.router ingressNginx needs ingress.enabled (the canary Ingress copies the main Ingress' hosts and paths)" }}
{{- end }}
{{- if eq $r.canary.router "replicas" }}
{{- if $v.autoscaling.enabled }}
{{- $m = append $m "autoscaling.enabled with rollout.canary.router replicas: the split is the replica counts, which autoscalers would change; disable autoscaling or use router gatewayAPI" }}
{{- end }}
{{- if $r.canary.header }}
{{- $m = append $m "rollout.canary.header needs a router that reads headers (gatewayAPI or ingressNginx), not replicas" }}
{{- end }}
{{- $total := add $activeReplicas $candidateReplicas }}
{{- $split := ternary (div (add (mul $candidateReplicas 100) (div $total 2)) $total) 0 (gt $total 0) }}
{{- if ne (int $split) (int $r.canary.weight) }}
{{- $m = append $m (printf "rollout.canary.weight (%d) must equal the replica split with router replicas: %s %d, %s %d is %d%% (set rollout.slots.<slot>.replicaCount or the weight)" (int $r.canary.weight) $active $activeReplicas $candidate $candidateReplicas (int $split)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $v.rollout.engine "argo" }}
{{- if ne $v.rollout.strategy "canary" }}
{{- $m = append $m "rollout.engine argo needs rollout.strategy canary (the Rollout runs the candidate's canary steps and analysis)" }}
{{- end }}
{{- if ne $v.workload.kind "Deployment" }}
{{- $m = append $m "rollout.engine argo needs workload.kind Deployment (the Rollout's workloadRef)" }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- $m = append $m "autoscaling.enabled with rollout.engine argo: the autoscaler would scale the Deployment that Argo Rollouts scales down; disable autoscaling or use rollout.engine helm" }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}

{{/*
Model delivery: a verified fetch for every remote URI, one source, credentials only where they are used.
*/}}
{{- define "model-api.validateValues.model" -}}
{{- $_ := set . "messages" (concat .messages (include "model-api.validateModel" (dict "model" .root.Values.model "key" "model" "root" .root) | fromYamlArray)) }}
{{- end }}

{{/*
The checks of one model block, as a YAML list of messages: (dict "model" <model values> "key" "<its values
key>" "root" $). A rollout slot with its own model block runs the same checks under its own key.
*/}}
{{- define "model-api.validateModel" -}}
{{- $model := .model }}
{{- $key := .key }}
{{- $m := list }}
{{- $scheme := regexFind "^[a-z0-9]+://" $model.uri | trimSuffix "://" }}
{{- if and (has $scheme (list "https" "http" "s3")) (not $model.sha256) }}
{{- $m = append $m (printf "%s.uri %s is remote: set %s.sha256 to the artifact's SHA-256 so the fetch is verified (sha256sum <file>)" $key $model.uri $key) }}
{{- end }}
{{- if and (eq $scheme "http") (not $model.allowInsecureHttp) }}
{{- $m = append $m (printf "%s.uri %s is plain HTTP: use https://, or set %s.allowInsecureHttp" $key $model.uri $key) }}
{{- end }}
{{- if and $model.sha256 (not $model.uri) }}
{{- $m = append $m (printf "%s.sha256 needs %s.uri (the digest verifies the fetched artifact)" $key $key) }}
{{- end }}
{{- $batchOnS3 := and (eq $key "model") .root.Values.batch.enabled (or (hasPrefix "s3://" .root.Values.batch.input) (hasPrefix "s3://" .root.Values.batch.output)) }}
{{- if and (or $model.s3.existingSecret $model.s3.endpoint) (ne $scheme "s3") (not $batchOnS3) }}
{{- $m = append $m (printf "%s.s3.existingSecret and %s.s3.endpoint apply to an s3:// %s.uri (or batch input/output) only (the URI is %q)" $key $key $key $model.uri) }}
{{- end }}
{{- if and $model.uri $model.pvc.claimName }}
{{- $m = append $m (printf "%s.uri and %s.pvc.claimName are exclusive: fetch the model or mount the claim" $key $key) }}
{{- end }}
{{- if and $model.pvc.path (not $model.pvc.claimName) }}
{{- $m = append $m (printf "%s.pvc.path needs %s.pvc.claimName" $key $key) }}
{{- end }}
{{- if and (or $model.uri $model.pvc.claimName) .root.Values.config.modelPath }}
{{- $m = append $m (printf "config.modelPath and %s.uri/%s.pvc.claimName are exclusive: the chart sets MODEL_API_MODEL_PATH to the fetched or mounted model" $key $key) }}
{{- end }}
{{- toYaml $m }}
{{- end }}

{{/*
Batch: what the API server would refuse (an Indexed Job's pod hostnames, a CronJob's name, the time zone) and
a Job with nothing to read or write.
*/}}
{{- define "model-api.validateValues.batch" -}}
{{- $batch := .root.Values.batch }}
{{- $m := list }}
{{- if $batch.enabled }}
{{- if not $batch.input }}
{{- $m = append $m "batch.enabled needs batch.input (the dataset to score)" }}
{{- end }}
{{- if and (or (hasPrefix "https://" $batch.input) (hasPrefix "s3://" $batch.input)) (not $batch.inputSha256) (not $batch.allowUnverifiedInput) }}
{{- $m = append $m (printf "batch.inputSha256 is required for a remote batch.input (%s); for an input that changes every run (a nightly CronJob) set batch.allowUnverifiedInput=true" $batch.input) }}
{{- end }}
{{- if hasPrefix "http://" $batch.input }}
{{- $m = append $m (printf "batch.input %s: plain http is refused; use https:// or s3://" $batch.input) }}
{{- end }}
{{- if not $batch.output }}
{{- $m = append $m "batch.enabled needs batch.output (where the shards are written)" }}
{{- end }}
{{- if and (not (kindIs "invalid" $batch.maxFailedIndexes)) (gt (int $batch.maxFailedIndexes) (int $batch.shards)) }}
{{- $m = append $m (printf "batch.maxFailedIndexes (%v) must not exceed batch.shards (%v), the Job's completions" $batch.maxFailedIndexes $batch.shards) }}
{{- end }}
{{- if $batch.schedule }}
{{- $name := include "model-api.batchCronJobName" .root }}
{{- if gt (len $name) 52 }}
{{- $m = append $m (printf "the CronJob name %s is %d characters; Kubernetes needs 52 at most (its Jobs add 11): set fullnameOverride or a shorter release name" $name (len $name)) }}
{{- end }}
{{- if and $batch.timeZone (not (has $batch.timeZone (include "model-api.timeZones" .root | splitList "\n"))) }}
{{- $m = append $m (printf "batch.timeZone %s is no IANA time zone the API server knows (e.g. Europe/Berlin, America/New_York, UTC)" $batch.timeZone) }}
{{- end }}
{{- else }}
{{- $host := printf "%s-%d" (include "model-api.batchJobName" .root) (sub (int $batch.shards) 1) }}
{{- if or (gt (len $host) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $host)) }}
{{- $m = append $m (printf "the Indexed Job's last pod hostname %s (Job name - (batch.shards - 1)) is not a DNS label of 63 characters at most: set fullnameOverride, a shorter release name or fewer batch.shards" $host) }}
{{- end }}
{{- end }}
{{- if and $batch.timeZone (not $batch.schedule) }}
{{- $m = append $m "batch.timeZone applies to a CronJob only: set batch.schedule or unset batch.timeZone" }}
{{- end }}
{{- end }}
{{- $_ := set . "messages" (concat .messages $m) }}
{{- end }}
