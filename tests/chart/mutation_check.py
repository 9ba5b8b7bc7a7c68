"""Mutation check of the chart suite: plant one deployment-breaking or hardening-weakening mistake at a time
in a copy of the chart, values files and Dockerfile, and confirm `pytest -m chart` fails naming it.

    .venv/bin/python -m tests.chart.mutation_check [--only NAME ...] [--list]

The real chart is never touched: the suite is pointed at the copy with MODEL_API_CHART_DIR,
MODEL_API_VALUES_DIR and MODEL_API_DOCKERFILE. The golden layer is left out (it catches every rendered
change by construction, so it would hide whether a real check fired). Not collected by pytest (slow:
one suite run per mutation).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.chart import release


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # in the sandbox: chart/..., values/values-*.yaml or Dockerfile
    old: str
    new: str


POD = "chart/templates/_pod.tpl"
HELPERS = "chart/templates/_helpers.tpl"
VALIDATE = "chart/templates/_validate.tpl"
VALUES = "chart/values.yaml"
PROD = "values/values-prod.yaml"

MUTATIONS = [
    Mutation(
        "Service targetPort no container has",
        "chart/templates/service.yaml",
        "targetPort: http",
        "targetPort: web",
    ),
    Mutation("liveness probe path the service does not serve", POD, "path: /healthz", "path: /health"),
    Mutation(
        "readiness probe on a port the container lacks",
        POD,
        "path: /readyz\n          port: http\n        {{- toYaml $values.readinessProbe",
        "path: /readyz\n          port: 8081\n        {{- toYaml $values.readinessProbe",
    ),
    Mutation(
        "selector label dropped from the pods",
        POD,
        '{{- if eq .component "server" }}\n{{- include "model-api.selectorLabels" $root }}',
        '{{- if eq .component "server" }}\n{{- include "model-api.componentSelectorLabels" . }}',
    ),
    Mutation(
        "workload selector carries mutable labels",
        "chart/templates/deployment.yaml",
        'matchLabels:\n      {{- include "model-api.slotSelectorLabels" (list $ $slot) | nindent 6 }}',
        'matchLabels:\n      {{- include "model-api.labels" . | nindent 6 }}',
    ),
    Mutation(
        "HPA aimed at the wrong workload name",
        "chart/templates/hpa.yaml",
        "kind: {{ .Values.workload.kind }}\n    name: {{ $target.name }}",
        "kind: {{ .Values.workload.kind }}\n    name: {{ $target.name }}-app",
    ),
    Mutation(
        "HPA kind fixed to Deployment",
        "chart/templates/hpa.yaml",
        "kind: {{ .Values.workload.kind }}",
        "kind: Deployment",
    ),
    Mutation(
        "HPA on a removed API version",
        "chart/templates/hpa.yaml",
        "apiVersion: autoscaling/v2",
        "apiVersion: autoscaling/v2beta2",
    ),
    Mutation(
        "replicas kept while the HPA scales",
        "chart/templates/deployment.yaml",
        "(and $slot (eq (int .Values.replicaCount) 0))) }}\n  replicas:",
        "true) }}\n  replicas:",
    ),
    Mutation(
        "rolling update may drop capacity",
        "chart/templates/deployment.yaml",
        '"maxUnavailable" 0',
        '"maxUnavailable" 1',
    ),
    Mutation(
        "runAsNonRoot switched off",
        VALUES,
        "readOnlyRootFilesystem: true\n  runAsNonRoot: true",
        "readOnlyRootFilesystem: true\n  runAsNonRoot: false",
    ),
    Mutation(
        "allowPrivilegeEscalation on",
        VALUES,
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    ),
    Mutation("capabilities no longer drop ALL", VALUES, "drop:\n      - ALL", "drop:\n      - NET_RAW"),
    Mutation(
        "writable root filesystem", VALUES, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"
    ),
    Mutation("seccomp Unconfined", VALUES, "type: RuntimeDefault", "type: Unconfined"),
    Mutation("service account token mounted", VALUES, "automount: false", "automount: true"),
    Mutation(
        "hostNetwork on", HELPERS, "enableServiceLinks: false", "enableServiceLinks: false\nhostNetwork: true"
    ),
    Mutation("no memory limit by default", VALUES, "  limits:\n    memory: 256Mi", "  limits: {}"),
    Mutation(
        "preStop longer than the grace period",
        POD,
        "seconds: {{ $values.preStopSleepSeconds }}",
        "seconds: 60",
    ),
    Mutation(
        "ConfigMap key typo", "chart/templates/configmap.yaml", "MODEL_API_LOG_LEVEL", "MODEL_API_LOGLEVEL"
    ),
    Mutation(
        "service told to listen on loopback",
        "chart/templates/configmap.yaml",
        "\ndata:\n",
        '\ndata:\n  MODEL_API_HOST: "127.0.0.1"\n',
    ),
    Mutation(
        "envFrom names a ConfigMap not rendered",
        POD,
        'configMapRef:\n            name: {{ include "model-api.fullname" $root }}',
        'configMapRef:\n            name: {{ include "model-api.fullname" $root }}-config',
    ),
    Mutation("API key volume item naming a key the Secret lacks", HELPERS, '"api-key" (not', '"apikey" (not'),
    Mutation(
        "volumeMount without a volume",
        POD,
        "- name: tmp\n          mountPath: /tmp",
        "- name: scratch\n          mountPath: /tmp",
    ),
    Mutation("checksum annotation dropped", POD, "checksum/config:", "config-hash-unused:"),
    Mutation(
        "StatefulSet serviceName not the headless Service",
        "chart/templates/statefulset.yaml",
        'serviceName: {{ include "model-api.slotHeadlessServiceName" (list $ $slot) }}',
        'serviceName: {{ include "model-api.fullname" . }}',
    ),
    Mutation(
        "ServiceMonitor port name absent from the Service",
        "chart/templates/servicemonitor.yaml",
        "- port: http",
        "- port: metrics",
    ),
    Mutation(
        "Ingress backend port absent from the Service",
        "chart/templates/ingress.yaml",
        "name: http",
        "name: web",
    ),
    Mutation(
        "NetworkPolicy opens the wrong port",
        "chart/templates/networkpolicy.yaml",
        "- port: http",
        "- port: metrics",
    ),
    Mutation(
        "NetworkPolicy shuts out the helm test pod",
        "chart/templates/tests/test-connection.yaml",
        '    {{- include "model-api.clientLabel" . | nindent 4 }}\n',
        "",
    ),
    Mutation(
        "test hook calls the container port via the Service",
        "chart/templates/tests/test-connection.yaml",
        ":{{ .Values.service.port }}",
        ":{{ .Values.containerPort }}",
    ),
    Mutation(
        "test hook image unpinned",
        "chart/templates/tests/test-connection.yaml",
        'image: {{ include "model-api.image" . }}',
        "image: busybox",
    ),
    Mutation(
        "PDB selects nothing",
        "chart/templates/poddisruptionbudget.yaml",
        'matchLabels:\n      {{- include "model-api.slotSelectorLabels" (list $ $slot) | nindent 6 }}',
        "matchLabels:\n      app: model-api",
    ),
    Mutation("prod on a mutable tag", PROD, 'tag: "0.1.0"', 'tag: "latest"'),
    Mutation("prod down to one replica", PROD, "minReplicas: 3", "minReplicas: 1"),
    Mutation("prod PDB off", PROD, "pdb:\n  enabled: true", "pdb:\n  enabled: false"),
    Mutation(
        "prod without spread",
        PROD,
        "topologySpreadConstraints:\n"
        "  - maxSkew: 1\n    topologyKey: topology.kubernetes.io/zone\n"
        "    whenUnsatisfiable: ScheduleAnyway\n"
        "  - maxSkew: 1\n    topologyKey: kubernetes.io/hostname\n    whenUnsatisfiable: DoNotSchedule\n",
        'topologySpreadConstraints: []\npodAntiAffinityPreset: ""\n',
    ),
    Mutation(
        "helm test pod counted as a replica (selector labels)",
        HELPERS,
        'app.kubernetes.io/name: {{ include "model-api.name" . | trunc 58 | trimSuffix "-" }}-test',
        'app.kubernetes.io/name: {{ include "model-api.name" . }}',
    ),
    Mutation("liveness probe same as readiness", POD, "path: /healthz", "path: /readyz"),
    Mutation(
        "NetworkPolicy selects other pods",
        "chart/templates/networkpolicy.yaml",
        'podSelector:\n    matchLabels:\n      {{- include "model-api.selectorLabels" . | nindent 6 }}',
        "podSelector:\n    matchLabels:\n      app: model-api",
    ),
    Mutation("API key stored without base64", "chart/templates/secret.yaml", " | b64enc", ""),
    Mutation(
        "ConfigMap port differs from the container port",
        "chart/templates/configmap.yaml",
        "MODEL_API_PORT: {{ .Values.containerPort | quote }}",
        'MODEL_API_PORT: "8000"',
    ),
    Mutation(
        "read-only root without a writable /tmp", POD, "        - name: tmp\n          mountPath: /tmp\n", ""
    ),
    Mutation(
        "prod grace period shorter than preStop + drain",
        PROD,
        "terminationGracePeriodSeconds: 45",
        "terminationGracePeriodSeconds: 20",
    ),
    Mutation(
        "claim template labels carry the chart version (upgrade refused)",
        "chart/templates/statefulset.yaml",
        '{{- include "model-api.slotSelectorLabels" (list $ $slot) | nindent 10 }}',
        '{{- include "model-api.labels" . | nindent 10 }}',
    ),
    Mutation(
        "imagePullSecrets with indent instead of nindent",
        HELPERS,
        "imagePullSecrets:\n  {{- toYaml . | nindent 2 }}",
        "imagePullSecrets:\n  {{- toYaml . | indent 2 }}",
    ),
    Mutation(
        "ServiceAccount annotations from the Service's values",
        "chart/templates/serviceaccount.yaml",
        "with .Values.serviceAccount.annotations",
        "with .Values.service.annotations",
    ),
    Mutation(
        "test hook Pod never deleted (the next helm test fails)",
        "chart/templates/tests/test-connection.yaml",
        "    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded\n",
        "",
    ),
    Mutation(
        "test hook Pod restarts forever",
        "chart/templates/tests/test-connection.yaml",
        "  restartPolicy: Never\n",
        "",
    ),
    Mutation(
        "ServiceMonitor looks in its own namespace",
        "chart/templates/servicemonitor.yaml",
        "- {{ .Release.Namespace }}",
        "- {{ default .Release.Namespace .Values.serviceMonitor.namespace }}",
    ),
    Mutation(
        "fullname no longer cut to 63 characters",
        HELPERS,
        '{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}',
        '{{- printf "%s-%s" .Release.Name $name }}',
    ),
    Mutation(
        "test hook name label over 63 characters",
        HELPERS,
        '{{ include "model-api.name" . | trunc 58 | trimSuffix "-" }}-test',
        '{{ include "model-api.name" . }}-test',
    ),
    Mutation(
        "Ingress host unquoted (a wildcard host is a YAML alias)",
        "chart/templates/ingress.yaml",
        "{{ .host | quote }}",
        "{{ .host }}",
    ),
    Mutation(
        "DNS egress to kube-dns in the release namespace",
        HELPERS,
        "- to:\n    - namespaceSelector:\n        matchLabels:\n"
        "          kubernetes.io/metadata.name: kube-system\n      podSelector:",
        "- to:\n    - podSelector:",
    ),
    Mutation(
        "ingress controller's namespace and pods OR-ed",
        "chart/templates/networkpolicy.yaml",
        "          {{- with .podLabels }}\n          podSelector:",
        "          {{- with .podLabels }}\n        - podSelector:",
    ),
    Mutation(
        "release name with a dot accepted",
        VALIDATE,
        'regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname',
        'regexMatch "^[a-z0-9.]([-a-z0-9.]*[a-z0-9])?$" $fullname',
    ),
    Mutation(
        "checksum over the whole ConfigMap (a chart bump rolls every pod)",
        POD,
        '(include (print $root.Template.BasePath "/configmap.yaml") $root'
        " | fromYaml).data | toJson | sha256sum",
        'include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum',
    ),
    Mutation("service links back on", HELPERS, "enableServiceLinks: false\n", ""),
    Mutation(
        "NOTES: LoadBalancer address as IP only (empty on AWS)",
        "chart/templates/NOTES.txt",
        "['ip','hostname']",
        ".ip",
    ),
    Mutation(
        "NOTES: curl without the API key",
        "chart/templates/NOTES.txt",
        '{{- $header = "-H \\"X-API-Key: $API_KEY\\" " }}',
        "",
    ),
    Mutation("Dockerfile USER differs from runAsUser", "Dockerfile", "USER 10001:10001", "USER 1000:1000"),
    Mutation("Dockerfile EXPOSE differs from the container port", "Dockerfile", "EXPOSE 8080", "EXPOSE 8000"),
    Mutation(
        "Dockerfile ENTRYPOINT differs from the command",
        "Dockerfile",
        'ENTRYPOINT ["model-api", "serve"]',
        'ENTRYPOINT ["python", "-m", "model_api", "serve"]',
    ),
    Mutation(
        "slot selectors without the slot label (the slots overlap)",
        "chart/templates/_rollout.tpl",
        "{{- with index . 1 }}\nmodel-api/slot: {{ . }}",
        "{{- with index . 1 }}\nmodel-api/slot-unused: {{ . }}",
    ),
    Mutation(
        "canary route weights that do not sum to 100",
        "chart/templates/httproute.yaml",
        "weight: {{ $weights.active }}",
        "weight: 100",
    ),
    Mutation(
        "preview Service selects the active slot",
        "chart/templates/service-preview.yaml",
        "(list . $candidate)",
        "(list . .Values.rollout.active)",
    ),
    Mutation(
        "analysis query on a metric the service does not export",
        "chart/templates/analysistemplate.yaml",
        "rate(model_api_request_duration_seconds_bucket{",
        "rate(model_api_request_latency_seconds_bucket{",
    ),
    Mutation(
        "KEDA in-flight query on a metric the service does not export",
        "chart/templates/_autoscaling.tpl",
        "sum(model_api_requests_in_flight{",
        "sum(model_api_in_flight{",
    ),
    # --- issue 9: the API key as a file, the test hook's network, CRD-backed objects, utilization targets
    Mutation("API key file readable by every user", HELPERS, "defaultMode: 288", "defaultMode: 420"),
    Mutation(
        "API key mount writable",
        HELPERS,
        'mountPath: {{ include "model-api.apiKeyDir" . }}\n  readOnly: true',
        'mountPath: {{ include "model-api.apiKeyDir" . }}\n  readOnly: false',
    ),
    Mutation(
        "helm test pod's NetworkPolicy admits ingress",
        "chart/templates/tests/networkpolicy.yaml",
        "  ingress: []\n",
        "  ingress:\n    - {}\n",
    ),
    Mutation(
        "values-prod.yaml forces the ServiceMonitor",
        PROD,
        "  enabled: true\n  labels:\n    release: kube-prometheus-stack",
        "  enabled: true\n  forceEnable: true\n  labels:\n    release: kube-prometheus-stack",
    ),
    Mutation(
        "utilization targets capped at 100 %",
        "chart/values.schema.json",
        '"null"\n      ],\n      "minimum": 1\n    },\n    "duration"',
        '"null"\n      ],\n      "minimum": 1,\n      "maximum": 100\n    },\n    "duration"',
    ),
    # --- issue 10: model delivery
    Mutation(
        "fetched model mounted writable in the service container",
        POD,
        '  {{- if eq $source "uri" }}\n  readOnly: true',
        '  {{- if eq $source "uri" }}\n  readOnly: false',
    ),
    Mutation(
        "remote model.uri accepted without a digest",
        VALIDATE,
        '(has $scheme (list "https" "http" "s3"))',
        '(has $scheme (list "ftp"))',
    ),
    # --- issue 12: batch
    Mutation(
        "batch pods carry the serving selector labels",
        POD,
        '{{- include "model-api.componentSelectorLabels" . }}\napp.kubernetes.io/managed-by',
        '{{- include "model-api.selectorLabels" $root }}\napp.kubernetes.io/managed-by',
    ),
    Mutation(
        "Job name without its spec hash (an upgrade patches an immutable template)",
        "chart/templates/_batch.tpl",
        '(include "model-api.batchJobSpec" . | sha256sum | trunc 8)',
        '"batch"',
    ),
    Mutation(
        "batch exit code 3 fails its index without a retry",
        "chart/templates/_batch.tpl",
        "values: [2, 4, 5]",
        "values: [2, 3, 4, 5]",
    ),
    Mutation("CronJob runs overlap", VALUES, "concurrencyPolicy: Forbid", "concurrencyPolicy: Allow"),
]


def make_sandbox(root: Path) -> dict[str, str]:
    """Copy chart, root values files and Dockerfile into `root`; the env that points the suite at them."""
    shutil.copytree(release.CHART_DIR, root / "chart")
    (root / "values").mkdir()
    for name in ("values-dev.yaml", "values-prod.yaml", "values-canary.yaml"):
        shutil.copy(release.ROOT / name, root / "values" / name)
    shutil.copy(release.ROOT / "Dockerfile", root / "Dockerfile")
    return {
        "MODEL_API_CHART_DIR": str(root / "chart"),
        "MODEL_API_VALUES_DIR": str(root / "values"),
        "MODEL_API_DOCKERFILE": str(root / "Dockerfile"),
    }


def run_suite(env: dict[str, str]) -> tuple[int, str]:
    """Run the chart layers (golden left out), stopping at the first failures; (exit code, output)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/chart",
        "-m",
        "chart",
        "-k",
        "not golden",
        "-q",
        "--maxfail=2",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-rf",
        "--tb=short",
    ]
    finished = subprocess.run(
        command,
        cwd=release.ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return finished.returncode, finished.stdout + finished.stderr


def first_failure(output: str) -> str:
    """`test id: first error line` of the first failure (pytest's short summary and its E lines)."""
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    errors = [line[1:].strip() for line in output.splitlines() if line.startswith("E ") and len(line) > 4]
    if not failed:
        return output.strip().splitlines()[-1] if output.strip() else "no output"
    return f"{failed[0].split('/')[-1]}: {(errors or [''])[0][:300]}"


def apply(mutation: Mutation, root: Path) -> None:
    target = root / mutation.path
    text = target.read_text()
    if mutation.old not in text:
        raise SystemExit(f"mutation {mutation.name!r}: {mutation.path} no longer contains {mutation.old!r}")
    target.write_text(text.replace(mutation.old, mutation.new, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only mutations whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(word in m.name for word in args.only)]
    if args.list:
        print("\n".join(m.name for m in chosen))
        return 0
    with tempfile.TemporaryDirectory(prefix="model-api-baseline-") as tmp:
        code, output = run_suite(make_sandbox(Path(tmp)))
    if code != 0:
        print(f"baseline: the unmutated copy already fails, fix that first:\n{first_failure(output)}")
        return 2
    missed = 0
    for mutation in chosen:
        with tempfile.TemporaryDirectory(prefix="model-api-mutant-") as tmp:
            env = make_sandbox(Path(tmp))
            apply(mutation, Path(tmp))
            began = time.monotonic()
            code, output = run_suite(env)
        caught = code != 0
        missed += not caught
        verdict = "CAUGHT" if caught else "MISSED"
        detail = first_failure(output) if caught else "no chart test failed"
        print(f"{verdict:7} {mutation.name} ({time.monotonic() - began:.0f} s)\n        {detail}")
    print(f"\n{len(chosen) - missed}/{len(chosen)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
