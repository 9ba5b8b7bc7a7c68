"""Policy layer: the restricted Pod Security Standard on every pod the chart runs (the helm test hook
included), resources, probes, pinned images, no secrets in plain sight, token automount off, and the
availability rules kube-score/kube-linter apply by default, for prod.

Each check returns findings "Kind/name: field.path: problem"; an empty list passes. Exceptions are
allowed only through EXCEPTIONS below, each with its justification.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from kubernetes.utils.quantity import parse_quantity

from tests.chart import helpers

Finding = str
PodCheck = Callable[[helpers.Manifest], list[Finding]]

# (check name, "Kind/name") → why this object may break the rule. Keep it short and justified.
EXCEPTIONS: dict[tuple[str, str], str] = {}

RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"
}  # fmt: skip
ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|api[-_]?key|credential|private[-_]?key", re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[baprs]-"
)
PROD_SET = "prod"


def spec_path(owner: helpers.Manifest) -> str:
    template = helpers.pod_template_path(owner)
    return f"{template}.spec" if template else "spec"


def each_container(owner: helpers.Manifest) -> list[tuple[str, helpers.Manifest]]:
    """(field path, container) for init and regular containers of a pod owner."""
    spec = helpers.pod_spec(owner)
    return [
        (f"{spec_path(owner)}.{group}[{index}]", container)
        for group in ("initContainers", "containers")
        for index, container in enumerate(spec.get(group) or [])
    ]


def effective(owner: helpers.Manifest, container: Mapping[str, Any], key: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    container_value = (container.get("securityContext") or {}).get(key)
    return (
        container_value
        if container_value is not None
        else (helpers.pod_spec(owner).get("securityContext") or {}).get(key)
    )


POD_CHECKS: dict[str, PodCheck] = {}


def pod_check(function: PodCheck) -> PodCheck:
    POD_CHECKS[function.__name__] = function
    return function


@pod_check
def run_as_non_root(owner: helpers.Manifest) -> list[Finding]:
    return [
        f"{helpers.label(owner)}: {path}.securityContext.runAsNonRoot: must be true (container or pod), got "
        f"{effective(owner, c, 'runAsNonRoot')!r}"
        for path, c in each_container(owner)
        if effective(owner, c, "runAsNonRoot") is not True
    ]


@pod_check
def run_as_numeric_non_zero_user(owner: helpers.Manifest) -> list[Finding]:
    findings = []
    for path, c in each_container(owner):
        for key in ("runAsUser", "runAsGroup"):
            value = effective(owner, c, key)
            if not isinstance(value, int) or isinstance(value, bool) or value == 0:
                findings.append(
                    f"{helpers.label(owner)}: {path}.securityContext.{key}: must be a non-zero number, "
                    f"got {value!r}"
                )
    return findings


@pod_check
def no_privilege_escalation(owner: helpers.Manifest) -> list[Finding]:
    return [
        f"{helpers.label(owner)}: {path}.securityContext.allowPrivilegeEscalation: must be false"
        for path, c in each_container(owner)
        if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]


@pod_check
def capabilities_dropped(owner: helpers.Manifest) -> list[Finding]:
    findings = []
    for path, c in each_container(owner):
        capabilities = (c.get("securityContext") or {}).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            findings.append(
                f"{helpers.label(owner)}: {path}.securityContext.capabilities.drop: must contain ALL"
            )
        extra = set(capabilities.get("add") or []) - ALLOWED_ADDED_CAPABILITIES
        if extra:
            findings.append(
                f"{helpers.label(owner)}: {path}.securityContext.capabilities.add: "
                f"{sorted(extra)} not allowed"
            )
    return findings


@pod_check
def seccomp_profile(owner: helpers.Manifest) -> list[Finding]:
    return [
        f"{helpers.label(owner)}: {path}.securityContext.seccompProfile.type: must be RuntimeDefault or "
        f"Localhost (container or pod), got {(effective(owner, c, 'seccompProfile') or {}).get('type')!r}"
        for path, c in each_container(owner)
        if (effective(owner, c, "seccompProfile") or {}).get("type") not in ALLOWED_SECCOMP
    ]


@pod_check
def no_host_access(owner: helpers.Manifest) -> list[Finding]:
    spec, where = helpers.pod_spec(owner), spec_path(owner)
    findings = [
        f"{helpers.label(owner)}: {where}.{key}: must not be true"
        for key in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(key) is True
    ]
    for index, volume in enumerate(spec.get("volumes") or []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            findings.append(
                f"{helpers.label(owner)}: {where}.volumes[{index}] ({volume['name']}): "
                f"type {sorted(kinds)} not allowed"
            )
    for path, c in each_container(owner):
        context = c.get("securityContext") or {}
        if context.get("privileged"):
            findings.append(f"{helpers.label(owner)}: {path}.securityContext.privileged: must not be true")
        if context.get("procMount", "Default") != "Default":
            findings.append(f"{helpers.label(owner)}: {path}.securityContext.procMount: must be Default")
        if (context.get("windowsOptions") or {}).get("hostProcess"):
            findings.append(
                f"{helpers.label(owner)}: {path}.securityContext.windowsOptions.hostProcess: must not be true"
            )
        findings += [
            f"{helpers.label(owner)}: {path}.ports[{i}].hostPort: must not be set"
            for i, port in enumerate(c.get("ports") or [])
            if port.get("hostPort")
        ]
    return findings


@pod_check
def read_only_root_filesystem(owner: helpers.Manifest) -> list[Finding]:
    return [
        f"{helpers.label(owner)}: {path}.securityContext.readOnlyRootFilesystem: must be true"
        for path, c in each_container(owner)
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True
    ]


@pod_check
def requests_and_memory_limit(owner: helpers.Manifest) -> list[Finding]:
    findings = []
    for path, c in each_container(owner):
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        findings += [
            f"{helpers.label(owner)}: {path}.resources.requests.{r}: must be set"
            for r in ("cpu", "memory")
            if r not in requests
        ]
        if "memory" not in limits:
            findings.append(f"{helpers.label(owner)}: {path}.resources.limits.memory: must be set")
        for resource in set(requests) & set(limits):
            if parse_quantity(requests[resource]) > parse_quantity(limits[resource]):
                findings.append(
                    f"{helpers.label(owner)}: {path}.resources.requests.{resource}: {requests[resource]} "
                    f"exceeds the limit {limits[resource]} (the API server refuses the pod)"
                )
    return findings


def image_problem(image: str) -> str | None:
    """Why an image reference is mutable, or None when it is pinned by tag or digest."""
    if "@sha256:" in image:
        return None if re.fullmatch(r".+@sha256:[0-9a-f]{64}", image) else "malformed digest"
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return "no tag (means :latest)"
    tag = name.split(":", 1)[1]
    return "the mutable tag :latest" if tag == "latest" or not tag else None


@pod_check
def pinned_images(owner: helpers.Manifest) -> list[Finding]:
    return [
        f"{helpers.label(owner)}: {path}.image: {c.get('image')!r} has {image_problem(str(c.get('image')))}"
        for path, c in each_container(owner)
        if image_problem(str(c.get("image")))
    ]


@pod_check
def token_automount_off(owner: helpers.Manifest) -> list[Finding]:
    spec = helpers.pod_spec(owner)
    if spec.get("automountServiceAccountToken") is False:
        return []
    return [f"{helpers.label(owner)}: {spec_path(owner)}.automountServiceAccountToken: must be false"]


def is_file_reference(item: Mapping[str, Any]) -> bool:
    """`<NAME>_FILE=/absolute/path`: where a mounted secret is, not the secret."""
    return item["name"].endswith("_FILE") and str(item["value"]).startswith("/")


@pod_check
def no_secret_in_literal_env(owner: helpers.Manifest) -> list[Finding]:
    return [
        f"{helpers.label(owner)}: {path}.env[{i}] ({item['name']}): a secret-looking literal value; "
        "use secretKeyRef"
        for path, c in each_container(owner)
        for i, item in enumerate(c.get("env") or [])
        if "value" in item
        and item["value"]
        and not is_file_reference(item)
        and (SECRET_NAME.search(item["name"]) or SECRET_VALUE.search(str(item["value"])))
    ]


def unexcepted(check: str, findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if (check, f.split(":", 1)[0]) not in EXCEPTIONS]


@pytest.mark.parametrize("check", list(POD_CHECKS))
def test_pod_policy(objects: list[helpers.Manifest], check: str) -> None:
    owners = helpers.pod_owners(objects)  # the workload and the helm test hook Pod
    findings = [finding for owner in owners for finding in POD_CHECKS[check](owner)]
    problems = unexcepted(check, findings)
    assert problems == [], "\n".join(problems)


def test_service_container_has_distinct_probes(objects: list[helpers.Manifest]) -> None:
    container = helpers.main_container(objects)
    missing = [p for p in ("startupProbe", "readinessProbe", "livenessProbe") if not container.get(p)]
    assert missing == [], (
        f"{helpers.label(helpers.workload(objects))}: container {container['name']}: missing {missing}"
    )
    assert container["livenessProbe"] != container["readinessProbe"], (
        f"{helpers.label(helpers.workload(objects))}: livenessProbe equals readinessProbe: a slow "
        "dependency would restart pods instead of taking them out of the Service"
    )


def test_service_account_does_not_automount_token(objects: list[helpers.Manifest]) -> None:
    accounts = helpers.find(objects, "ServiceAccount")
    actual = {helpers.label(a): a.get("automountServiceAccountToken") for a in accounts}
    expected = {helpers.label(a): False for a in accounts}
    assert actual == expected, "ServiceAccount.automountServiceAccountToken must be false"


def test_no_secret_material_in_config_maps(objects: list[helpers.Manifest]) -> None:
    findings = [
        f"{helpers.label(cm)}: data.{key}: looks like secret material; put it in a Secret"
        for cm in helpers.find(objects, "ConfigMap")
        for key, value in (cm.get("data") or {}).items()
        if (SECRET_NAME.search(key) and str(value)) or SECRET_VALUE.search(str(value))
    ]
    assert findings == [], "\n".join(findings)


def config_seconds(objects: list[helpers.Manifest], key: str, default: float) -> float:
    """A duration setting as the service will read it: the rendered ConfigMap's MODEL_API_* value."""
    config = helpers.get(objects, "ConfigMap", helpers.FULLNAME).get("data") or {}
    return float(config.get(key, default))


def test_grace_period_covers_prestop_drain_and_shutdown(objects: list[helpers.Manifest]) -> None:
    workload = helpers.workload(objects)
    spec, container = workload["spec"]["template"]["spec"], helpers.main_container(objects)
    pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds")
    assert isinstance(pre_stop, int) and pre_stop > 0, (
        f"{helpers.label(workload)}: containers[{container['name']}].lifecycle.preStop.sleep.seconds "
        f"must be > 0 (endpoints must drop the pod before SIGTERM), got {pre_stop!r}"
    )
    needed = (
        pre_stop
        + config_seconds(objects, "MODEL_API_DRAIN_SECONDS", 0)
        + config_seconds(objects, "MODEL_API_SHUTDOWN_TIMEOUT_SECONDS", 20)
    )
    grace = spec.get("terminationGracePeriodSeconds", 30)
    assert grace >= needed, (
        f"{helpers.label(workload)}: spec.template.spec.terminationGracePeriodSeconds {grace} < "
        f"preStop {pre_stop} + drain + shutdown = {needed}: the kubelet would SIGKILL in-flight requests"
    )


# --- prod availability (kube-score / kube-linter defaults) -------------------------------------------


@pytest.fixture
def prod() -> list[helpers.Manifest]:
    return helpers.render_set(PROD_SET)


def minimum_replicas(objects: list[helpers.Manifest]) -> int:
    """The fewest pods the release runs: the HPA's minReplicas, else the workload's replicas (default 1)."""
    hpas = helpers.find(objects, "HorizontalPodAutoscaler")
    if hpas:
        return int(hpas[0]["spec"].get("minReplicas", 1))
    return int(helpers.workload(objects)["spec"].get("replicas", 1))


def allowed_disruptions(pdb: helpers.Manifest, replicas: int) -> int:
    """Evictions the PDB allows when exactly `replicas` healthy pods run (the controller's rounding: up)."""
    spec = pdb["spec"]

    def scaled(value: int | str) -> int:
        return math.ceil(replicas * int(value[:-1]) / 100) if isinstance(value, str) else int(value)

    if "minAvailable" in spec:
        return replicas - scaled(spec["minAvailable"])
    return scaled(spec.get("maxUnavailable", 0))


def test_prod_runs_at_least_two_replicas(prod: list[helpers.Manifest]) -> None:
    assert minimum_replicas(prod) >= 2, (
        f"{helpers.label(helpers.workload(prod))}: prod must run ≥ 2 pods "
        f"(HorizontalPodAutoscaler.spec.minReplicas or spec.replicas), got {minimum_replicas(prod)}"
    )


def test_every_pdb_allows_an_eviction(value_set: str, objects: list[helpers.Manifest]) -> None:
    """A PDB that allows no eviction at the minimum replica count blocks node drains forever."""
    replicas = minimum_replicas(objects)
    blocked = [
        f"{helpers.label(pdb)}: spec allows {allowed_disruptions(pdb, replicas)} evictions "
        f"with {replicas} replicas"
        for pdb in helpers.find(objects, "PodDisruptionBudget")
        if allowed_disruptions(pdb, replicas) < 1
    ]
    assert blocked == [], f"{value_set}: {blocked}"


def test_prod_has_a_pdb(prod: list[helpers.Manifest]) -> None:
    assert len(helpers.find(prod, "PodDisruptionBudget")) == 1, (
        "prod: no PodDisruptionBudget rendered (pdb.enabled)"
    )


def test_prod_spreads_pods(prod: list[helpers.Manifest]) -> None:
    spec = helpers.workload(prod)["spec"]["template"]["spec"]
    spread = spec.get("topologySpreadConstraints") or []
    anti_affinity = (spec.get("affinity") or {}).get("podAntiAffinity")
    assert spread or anti_affinity, (
        f"{helpers.label(helpers.workload(prod))}: spec.template.spec has neither "
        "topologySpreadConstraints nor affinity.podAntiAffinity: all replicas may land on one node"
    )


def test_prod_rolls_out_without_losing_capacity(prod: list[helpers.Manifest]) -> None:
    workload = helpers.workload(prod)
    if workload["kind"] != "Deployment":
        pytest.skip("maxUnavailable applies to the Deployment's rolling update")
    rolling = workload["spec"].get("strategy", {}).get("rollingUpdate") or {}
    assert workload["spec"].get("strategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
    assert rolling.get("maxUnavailable") in (0, "0%"), (
        f"{helpers.label(workload)}: spec.strategy.rollingUpdate.maxUnavailable must be 0, "
        f"got {rolling.get('maxUnavailable')!r}"
    )


def test_prod_profile(prod: list[helpers.Manifest]) -> None:
    """What values-prod.yaml promises (issue 3): locked network, TLS ingress, external API key, JSON logs."""
    spec, container = helpers.pod_spec(helpers.workload(prod)), helpers.main_container(prod)
    key_file = next(e["value"] for e in container.get("env") or [] if e["name"] == "MODEL_API_API_KEY_FILE")
    mounted = {m["name"] for m in container.get("volumeMounts") or [] if key_file.startswith(m["mountPath"])}
    key_refs = [v["secret"]["secretName"] for v in spec.get("volumes") or [] if v["name"] in mounted]
    forced = helpers.render_set("prod", {"serviceMonitor": {"forceEnable": True}})
    actual = {
        "NetworkPolicy": len(helpers.find(prod, "NetworkPolicy")),
        "Ingress with TLS": sum(bool(i["spec"].get("tls")) for i in helpers.find(prod, "Ingress")),
        "ServiceMonitor where the API is served (forced here)": len(helpers.find(forced, "ServiceMonitor")),
        "ServiceMonitor in an offline render": len(helpers.find(prod, "ServiceMonitor")),
        "API key from a Secret outside the chart": sum(
            not helpers.find(prod, "Secret", name) for name in key_refs
        ),
        "MODEL_API_LOG_FORMAT": helpers.get(prod, "ConfigMap", helpers.FULLNAME)["data"].get(
            "MODEL_API_LOG_FORMAT"
        ),
    }
    expected = {
        "NetworkPolicy": 2,  # the service pods' and the helm test pod's
        "Ingress with TLS": 1,
        "ServiceMonitor where the API is served (forced here)": 1,
        "ServiceMonitor in an offline render": 0,
        "API key from a Secret outside the chart": 1,
        "MODEL_API_LOG_FORMAT": "json",
    }
    assert actual == expected, "values-prod.yaml render"


def test_exceptions_are_justified() -> None:
    unjustified = [
        key for key, reason in EXCEPTIONS.items() if len(reason.split()) < 5 or key[0] not in POD_CHECKS
    ]
    assert unjustified == [], "\n".join(unjustified)


def _container(owner: helpers.Manifest) -> helpers.Manifest:
    return helpers.pod_spec(owner)["containers"][0]


# check → (how to break a compliant Deployment, the field the finding must name). Proves each check can fail.
BREAKAGES: dict[str, tuple[Callable[[helpers.Manifest], None], str]] = {
    "run_as_non_root": (
        lambda o: _container(o)["securityContext"].update(runAsNonRoot=False),
        "runAsNonRoot",
    ),
    "run_as_numeric_non_zero_user": (
        lambda o: _container(o)["securityContext"].update(runAsUser=0),
        "runAsUser",
    ),
    "no_privilege_escalation": (
        lambda o: _container(o)["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    "capabilities_dropped": (
        lambda o: _container(o)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        "capabilities.add",
    ),
    "seccomp_profile": (
        lambda o: helpers.pod_spec(o)["securityContext"]["seccompProfile"].update(type="Unconfined"),
        "seccompProfile",
    ),
    "no_host_access": (
        lambda o: helpers.pod_spec(o)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "volumes[",
    ),
    "read_only_root_filesystem": (
        lambda o: _container(o)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem",
    ),
    "requests_and_memory_limit": (lambda o: _container(o)["resources"].pop("limits"), "limits.memory"),
    "pinned_images": (lambda o: _container(o).update(image="ghcr.io/model-api/model-api:latest"), "image"),
    "token_automount_off": (
        lambda o: helpers.pod_spec(o).update(automountServiceAccountToken=True),
        "automountServiceAccountToken",
    ),
    "no_secret_in_literal_env": (
        lambda o: _container(o).setdefault("env", []).append({"name": "DB_PASSWORD", "value": "hunter2"}),
        "DB_PASSWORD",
    ),
}


@pytest.mark.parametrize("check", list(POD_CHECKS))
def test_policy_check_can_fail(check: str) -> None:
    deployment = helpers.get(helpers.render(), "Deployment")
    assert POD_CHECKS[check](deployment) == [], f"{check}: the default render must comply"
    breakage, field = BREAKAGES[check]
    breakage(deployment)
    findings = POD_CHECKS[check](deployment)
    assert len(findings) >= 1 and all("Deployment/model-api" in f and field in f for f in findings), findings
