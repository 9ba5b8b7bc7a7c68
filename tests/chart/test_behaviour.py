"""Behaviour layer: each documented value does what values.yaml says it does, and each optional object
renders nothing when disabled. Workload tests run for both Deployment and StatefulSet (shared base class)."""

from __future__ import annotations

import base64
from typing import Any

import helm_python
import pytest
import yaml

from loadtest.chart.release import merge_values
from tests.chart import helpers
from tests.chart.helpers import Manifest, find, get, render

HOST = "api.example.com"
ROUTE = {"host": HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}
DIGEST = "sha256:" + "ab" * 32
SELECTOR = {"app.kubernetes.io/name": "model-api", "app.kubernetes.io/instance": "model-api"}


def chart_yaml() -> dict[str, Any]:
    return yaml.safe_load((helpers.CHART_DIR / "Chart.yaml").read_text())


def pod_annotations(objects: list[Manifest]) -> dict[str, str]:
    return helpers.workload(objects)["spec"]["template"]["metadata"].get("annotations") or {}


def checksums(objects: list[Manifest]) -> dict[str, str]:
    return {k: v for k, v in pod_annotations(objects).items() if k.startswith("checksum/")}


# --- optional objects: on when asked, nothing at all when not ------------------------------------------

OPTIONAL_OBJECTS = [
    # (kind, template, values that turn it on)
    ("Ingress", "templates/ingress.yaml", {"ingress": {"enabled": True, "hosts": [ROUTE]}}),
    ("HorizontalPodAutoscaler", "templates/hpa.yaml", {"autoscaling": {"enabled": True}}),
    (
        "PodDisruptionBudget",
        "templates/poddisruptionbudget.yaml",
        {"replicaCount": 2, "pdb": {"enabled": True}},
    ),
    ("NetworkPolicy", "templates/networkpolicy.yaml", {"networkPolicy": {"enabled": True}}),
    ("NetworkPolicy", "templates/tests/networkpolicy.yaml", {"networkPolicy": {"enabled": True}}),
    (
        "ServiceMonitor",
        "templates/servicemonitor.yaml",
        {"serviceMonitor": {"enabled": True, "forceEnable": True}},
    ),
    ("StatefulSet", "templates/statefulset.yaml", {"workload": {"kind": "StatefulSet"}}),
    ("Service", "templates/service-headless.yaml", {"workload": {"kind": "StatefulSet"}}),
    ("Secret", "templates/secret.yaml", {"apiKey": {"value": "dev-key"}}),
    ("Pod", "templates/tests/test-connection.yaml", {"tests": {"enabled": True}}),
    ("ServiceAccount", "templates/serviceaccount.yaml", {"serviceAccount": {"create": True}}),
]
DISABLED = {
    "templates/ingress.yaml": {"ingress": {"enabled": False}},
    "templates/hpa.yaml": {"autoscaling": {"enabled": False}},
    "templates/poddisruptionbudget.yaml": {"pdb": {"enabled": False}},
    "templates/networkpolicy.yaml": {"networkPolicy": {"enabled": False}},
    "templates/servicemonitor.yaml": {"serviceMonitor": {"enabled": False}},
    "templates/statefulset.yaml": {"workload": {"kind": "Deployment"}},
    "templates/service-headless.yaml": {"workload": {"kind": "Deployment"}},
    "templates/secret.yaml": {"apiKey": {"value": ""}},
    "templates/tests/test-connection.yaml": {"tests": {"enabled": False}},
    "templates/tests/networkpolicy.yaml": {"networkPolicy": {"enabled": True}, "tests": {"enabled": False}},
    "templates/serviceaccount.yaml": {"serviceAccount": {"create": False}},
}


@pytest.mark.parametrize(
    ("kind", "template", "values"), OPTIONAL_OBJECTS, ids=[t for _, t, _ in OPTIONAL_OBJECTS]
)
def test_optional_object_renders_when_enabled(kind: str, template: str, values: dict[str, Any]) -> None:
    docs = render(values, show_only=[template])
    assert [d["kind"] for d in docs] == [kind], f"{template} with {values}"


@pytest.mark.parametrize("template", list(DISABLED))
def test_optional_object_renders_nothing_when_disabled(template: str) -> None:
    docs = render(DISABLED[template], show_only=[template])
    assert docs == [], f"{template} with {DISABLED[template]}"


def test_test_hook_network_policy_needs_the_network_policy() -> None:
    docs = render({"networkPolicy": {"enabled": False}}, show_only=["templates/tests/networkpolicy.yaml"])
    assert docs == [], "templates/tests/networkpolicy.yaml with networkPolicy.enabled false"


def test_service_monitor_needs_the_api_or_force_enable() -> None:
    """Offline there is no monitoring.coreos.com/v1 API: enabled alone must not render a CRD object."""
    docs = render({"serviceMonitor": {"enabled": True}}, show_only=["templates/servicemonitor.yaml"])
    assert docs == []


# --- the workload, for both kinds --------------------------------------------------------------------


class WorkloadBehaviour:
    """Tests every workload kind must pass; subclasses set `kind`."""

    kind: str

    def render_workload(self, values: dict[str, Any] | None = None) -> list[Manifest]:
        return render(merge_values({"workload": {"kind": self.kind}}, values or {}))

    def pod(self, values: dict[str, Any] | None = None) -> Manifest:
        return helpers.workload(self.render_workload(values))["spec"]["template"]

    def container(self, values: dict[str, Any] | None = None) -> Manifest:
        return helpers.main_container(self.render_workload(values))

    def test_kind_is_rendered_alone(self) -> None:
        objects = self.render_workload()
        assert [o["kind"] for o in objects if o["kind"] in helpers.POD_KINDS] == [self.kind]

    def test_replica_count_without_hpa(self) -> None:
        workload = helpers.workload(self.render_workload({"replicaCount": 3}))
        assert workload["spec"].get("replicas") == 3, f"{helpers.label(workload)}: spec.replicas"

    def test_hpa_owns_replicas(self) -> None:
        objects = self.render_workload({"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 7}})
        hpa, workload = get(objects, "HorizontalPodAutoscaler"), helpers.workload(objects)
        expected = {"kind": self.kind, "min": 3, "max": 7, "replicas set": False}
        actual = {
            "kind": hpa["spec"]["scaleTargetRef"]["kind"],
            "min": hpa["spec"]["minReplicas"],
            "max": hpa["spec"]["maxReplicas"],
            "replicas set": "replicas" in workload["spec"],
        }
        assert actual == expected

    def test_digest_replaces_tag(self) -> None:
        actual = self.container({"image": {"tag": "9.9.9", "digest": DIGEST}})["image"]
        assert actual == f"ghcr.io/model-api/model-api@{DIGEST}"

    def test_tag_defaults_to_app_version(self) -> None:
        actual = self.container({"image": {"tag": ""}})["image"]
        assert actual == f"ghcr.io/model-api/model-api:{chart_yaml()['appVersion']}"

    def test_resources_pass_through(self) -> None:
        resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
        assert self.container({"resources": resources})["resources"] == resources

    def test_extra_env_is_appended(self) -> None:
        extra = {"name": "EXTRA", "value": "1"}
        assert extra in (self.container({"extraEnv": [extra]}).get("env") or [])

    def test_pod_annotations_and_labels(self) -> None:
        pod = self.pod({"podAnnotations": {"a": "b"}, "podLabels": {"team": "ml"}})
        actual = (pod["metadata"]["annotations"].get("a"), pod["metadata"]["labels"].get("team"))
        assert actual == ("b", "ml")

    def test_placement_passes_through(self) -> None:
        values = {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "high",
        }
        spec = self.pod(values)["spec"]
        actual = {k: spec.get(k) for k in values}
        assert actual == values

    def test_spread_constraint_gets_the_selector_labels(self) -> None:
        constraint = {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
        }
        spec = self.pod({"topologySpreadConstraints": [constraint]})["spec"]
        actual = spec["topologySpreadConstraints"][0]
        assert actual == {**constraint, "labelSelector": {"matchLabels": SELECTOR}}

    def test_probe_timings_pass_through(self) -> None:
        probe = self.container({"readinessProbe": {"periodSeconds": 7, "failureThreshold": 4}})[
            "readinessProbe"
        ]
        assert (probe["periodSeconds"], probe["failureThreshold"]) == (7, 4)

    def test_graceful_stop_values(self) -> None:
        values = {"preStopSleepSeconds": 3, "terminationGracePeriodSeconds": 60}
        pod = self.pod(values)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "model-api")
        actual = (
            container["lifecycle"]["preStop"]["sleep"]["seconds"],
            pod["spec"]["terminationGracePeriodSeconds"],
        )
        assert actual == (3, 60)

    def test_container_port_moves_everything(self) -> None:
        objects = self.render_workload({"containerPort": 9000})
        container = helpers.main_container(objects)
        actual = {
            "containerPort": container["ports"][0]["containerPort"],
            "MODEL_API_PORT": get(objects, "ConfigMap", helpers.FULLNAME)["data"]["MODEL_API_PORT"],
        }
        assert actual == {"containerPort": 9000, "MODEL_API_PORT": "9000"}

    def test_service_account_not_created(self) -> None:
        objects = self.render_workload({"serviceAccount": {"create": False, "name": "shared"}})
        actual = (
            find(objects, "ServiceAccount"),
            helpers.workload(objects)["spec"]["template"]["spec"]["serviceAccountName"],
        )
        assert actual == ([], "shared")

    def test_checksum_changes_with_config_only(self) -> None:
        base = checksums(self.render_workload())
        changed_config = checksums(self.render_workload({"config": {"logLevel": "debug"}}))
        unrelated = checksums(
            self.render_workload({"replicaCount": 4, "podLabels": {"x": "y"}, "commonLabels": {"team": "ml"}})
        )
        assert base.get("checksum/config"), (
            f"{self.kind}: spec.template.metadata.annotations has no checksum/config"
        )
        assert changed_config["checksum/config"] != base["checksum/config"], (
            "config change must roll the pods"
        )
        assert unrelated == base, "a change outside the ConfigMap/Secret must not roll the pods"

    def test_checksum_changes_with_the_secret(self) -> None:
        first = checksums(self.render_workload({"apiKey": {"value": "one"}}))
        second = checksums(self.render_workload({"apiKey": {"value": "two"}}))
        assert first.get("checksum/secret") and first["checksum/secret"] != second.get("checksum/secret"), (
            f"{self.kind}: a new API key must roll the pods (checksum/secret)"
        )
        assert first["checksum/config"] == second["checksum/config"], (
            "the API key must not touch checksum/config"
        )


class TestDeployment(WorkloadBehaviour):
    kind = "Deployment"

    def test_rolling_update_keeps_capacity(self) -> None:
        strategy = helpers.workload(self.render_workload())["spec"]["strategy"]
        assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


class TestStatefulSet(WorkloadBehaviour):
    kind = "StatefulSet"

    def test_headless_service_and_parallel_pods(self) -> None:
        objects = self.render_workload()
        statefulset = get(objects, "StatefulSet")
        headless = get(objects, "Service", statefulset["spec"]["serviceName"])
        actual = (headless["spec"].get("clusterIP"), statefulset["spec"].get("podManagementPolicy"))
        assert actual == ("None", "Parallel")

    def test_persistence_adds_a_claim_template_for_the_cache(self) -> None:
        objects = self.render_workload(
            {"persistence": {"enabled": True, "size": "2Gi", "storageClass": "fast"}}
        )
        statefulset = get(objects, "StatefulSet")
        claim = statefulset["spec"]["volumeClaimTemplates"][0]
        volumes = [v["name"] for v in statefulset["spec"]["template"]["spec"].get("volumes") or []]
        actual = (
            claim["spec"]["resources"]["requests"]["storage"],
            claim["spec"].get("storageClassName"),
            claim["metadata"]["name"] in volumes,
        )
        assert actual == ("2Gi", "fast", False), "the claim replaces the cache emptyDir"

    def test_no_claims_without_persistence(self) -> None:
        statefulset = get(self.render_workload({"persistence": {"enabled": False}}), "StatefulSet")
        assert statefulset["spec"].get("volumeClaimTemplates") in (None, [])


# --- configuration, secrets, exposure ----------------------------------------------------------------

CONFIG_CASES = [
    ("logLevel", "warning", "MODEL_API_LOG_LEVEL", "warning"),
    ("logFormat", "text", "MODEL_API_LOG_FORMAT", "text"),
    ("modelName", "flowers", "MODEL_API_MODEL_NAME", "flowers"),
    ("modelPath", "/models/iris.onnx", "MODEL_API_MODEL_PATH", "/models/iris.onnx"),
    ("maxBodyBytes", 2048, "MODEL_API_MAX_BODY_BYTES", "2048"),
    ("maxRows", 5, "MODEL_API_MAX_ROWS", "5"),
    ("maxNdigits", 10, "MODEL_API_MAX_NDIGITS", "10"),
    ("drainSeconds", 7, "MODEL_API_DRAIN_SECONDS", "7"),
    ("keepaliveSeconds", 90, "MODEL_API_KEEPALIVE_SECONDS", "90"),
    ("shutdownTimeoutSeconds", 15, "MODEL_API_SHUTDOWN_TIMEOUT_SECONDS", "15"),
]


@pytest.mark.parametrize(
    ("key", "value", "variable", "expected"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_config_value_reaches_the_service_environment(
    key: str, value: Any, variable: str, expected: str
) -> None:
    values = {"config": {key: value}, "terminationGracePeriodSeconds": 200}
    data = get(render(values), "ConfigMap", helpers.FULLNAME)["data"]
    assert data.get(variable) == expected, (
        f"ConfigMap/{helpers.FULLNAME}: data.{variable} for config.{key}={value!r}"
    )


API_KEY_DIR = "/var/run/secrets/model-api"
API_KEY_FILE = f"{API_KEY_DIR}/api-key"


def api_key_file(spec: Manifest, container: Manifest) -> tuple[Any, ...]:
    """(MODEL_API_API_KEY_FILE, its mount, the mounted volume's secret) of a container; None where absent."""
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    mounts = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == API_KEY_DIR]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    mount = mounts[0] if mounts else None
    secret = volumes.get(mount["name"], {}).get("secret") if mount else None
    return env.get("MODEL_API_API_KEY_FILE"), mount, secret


def expected_api_key_file(secret: str, key: str) -> tuple[Any, ...]:
    mount = {"name": "api-key", "mountPath": API_KEY_DIR, "readOnly": True}
    volume = {"secretName": secret, "defaultMode": 0o440, "items": [{"key": key, "path": "api-key"}]}
    return API_KEY_FILE, mount, volume


def test_api_key_value_goes_to_a_chart_secret_mounted_as_a_file() -> None:
    objects = render({"apiKey": {"value": "dev-key"}})
    secret = get(objects, "Secret", helpers.FULLNAME)
    actual = (
        base64.b64decode(secret["data"]["api-key"]).decode(),
        api_key_file(helpers.pod_spec(helpers.workload(objects)), helpers.main_container(objects)),
    )
    assert actual == ("dev-key", expected_api_key_file(helpers.FULLNAME, "api-key")), (
        f"Deployment/{helpers.FULLNAME}: spec.template.spec volumes/volumeMounts/env for the API key file"
    )


def test_existing_secret_is_mounted_and_not_rendered() -> None:
    objects = render({"apiKey": {"existingSecret": "vault-synced", "existingSecretKey": "token"}})
    actual = (
        find(objects, "Secret"),
        api_key_file(helpers.pod_spec(helpers.workload(objects)), helpers.main_container(objects)),
        "checksum/secret" in checksums(objects),
    )
    assert actual == ([], expected_api_key_file("vault-synced", "token"), False)


def test_api_key_never_reaches_an_environment_variable(objects: list[Manifest]) -> None:
    """issue 9: environment variables leak (/proc/<pid>/environ, crash reports, child processes): no
    serving or test container takes a Secret through env (only the model fetch init container may)."""
    leaking = [
        f"{helpers.label(owner)}: containers[{c['name']}].env[{e['name']}]"
        for owner in helpers.pod_owners(objects)
        for c in helpers.pod_spec(owner)["containers"]
        for e in c.get("env") or []
        if e["name"] == "MODEL_API_API_KEY" or "secretKeyRef" in (e.get("valueFrom") or {})
    ]
    assert leaking == []


def test_no_api_key_means_no_secret_no_volume_and_no_env() -> None:
    objects = render({"apiKey": {"value": "", "existingSecret": ""}})
    spec, container = helpers.pod_spec(helpers.workload(objects)), helpers.main_container(objects)
    assert (find(objects, "Secret"), api_key_file(spec, container)) == ([], (None, None, None))


def test_test_hook_reads_the_api_key_file() -> None:
    hook = helpers.helm_test_pod(render({"apiKey": {"existingSecret": "vault-synced"}}))
    actual = api_key_file(hook["spec"], hook["spec"]["containers"][0])
    assert actual == expected_api_key_file("vault-synced", "api-key"), (
        f"{helpers.label(hook)}: spec.containers[0] env/volumeMounts for the API key: the check would get 401"
    )


def test_ingress_values() -> None:
    values = {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"a": "b"},
            "hosts": [ROUTE],
            "tls": [{"secretName": "tls", "hosts": [HOST]}],
        }
    }
    ingress = get(render(values), "Ingress")
    actual = {
        "className": ingress["spec"].get("ingressClassName"),
        "annotation": ingress["metadata"].get("annotations", {}).get("a"),
        "host": ingress["spec"]["rules"][0]["host"],
        "tls": ingress["spec"]["tls"],
    }
    assert actual == {
        "className": "nginx",
        "annotation": "b",
        "host": HOST,
        "tls": [{"secretName": "tls", "hosts": [HOST]}],
    }


def test_node_port_service() -> None:
    service = get(
        render({"service": {"type": "NodePort", "port": 8081, "nodePort": 30080}}),
        "Service",
        helpers.FULLNAME,
    )
    actual = (
        service["spec"]["type"],
        service["spec"]["ports"][0]["port"],
        service["spec"]["ports"][0].get("nodePort"),
    )
    assert actual == ("NodePort", 8081, 30080)


def test_hpa_metrics_follow_the_targets() -> None:
    values = {
        "autoscaling": {
            "enabled": True,
            "targetCPUUtilizationPercentage": 60,
            "targetMemoryUtilizationPercentage": 75,
        }
    }
    metrics = get(render(values), "HorizontalPodAutoscaler")["spec"]["metrics"]
    actual = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in metrics}
    assert actual == {"cpu": 60, "memory": 75}


def test_pdb_values() -> None:
    values = {
        "replicaCount": 3,
        "pdb": {"enabled": True, "maxUnavailable": 2, "unhealthyPodEvictionPolicy": "IfHealthyBudget"},
    }
    spec = get(render(values), "PodDisruptionBudget")["spec"]
    assert (spec.get("maxUnavailable"), spec.get("minAvailable"), spec["unhealthyPodEvictionPolicy"]) == (
        2,
        None,
        "IfHealthyBudget",
    )


def test_network_policy_egress_toggle() -> None:
    closed = get(
        render({"networkPolicy": {"enabled": True, "egress": {"enabled": True}}}), "NetworkPolicy", NP
    )["spec"]
    opened = get(
        render({"networkPolicy": {"enabled": True, "egress": {"enabled": False}}}), "NetworkPolicy", NP
    )["spec"]
    dns_ports = {p["port"] for rule in closed.get("egress") or [] for p in rule.get("ports") or []}
    actual = ("Egress" in closed["policyTypes"], 53 in dns_ports, "Egress" in opened["policyTypes"])
    assert actual == (True, True, False)


def test_network_policy_allow_external_opens_the_port_to_all() -> None:
    spec = get(render({"networkPolicy": {"enabled": True, "allowExternal": True}}), "NetworkPolicy", NP)[
        "spec"
    ]
    assert all(not rule.get("from") for rule in spec["ingress"]), (
        "allowExternal must drop every `from` restriction"
    )


def test_service_monitor_values() -> None:
    monitor_values = {"enabled": True, "forceEnable": True, "interval": "15s", "scrapeTimeout": "5s"}
    values = {"serviceMonitor": {**monitor_values, "labels": {"release": "prom"}}}
    monitor = get(render(values), "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    actual = (endpoint["interval"], endpoint["scrapeTimeout"], monitor["metadata"]["labels"].get("release"))
    assert actual == ("15s", "5s", "prom")


def test_common_labels_reach_every_object() -> None:
    objects = render({"commonLabels": {"team": "ml"}})
    missing = [helpers.label(o) for o in objects if (o["metadata"].get("labels") or {}).get("team") != "ml"]
    assert missing == [], "\n".join(missing)


@pytest.mark.parametrize(
    ("release_name", "values", "expected"),
    [
        ("model-api", {}, "model-api"),
        ("prod", {}, "prod-model-api"),
        ("my-model-api", {}, "my-model-api"),
        ("prod", {"fullnameOverride": "iris"}, "iris"),
    ],
)
def test_fullname(release_name: str, values: dict[str, Any], expected: str) -> None:
    objects = render(values, release_name=release_name)
    names = {o["metadata"]["name"] for o in objects if o["kind"] in ("Deployment", "Service", "ConfigMap")}
    assert names == {expected}


# --- optional blocks: each one lands where Kubernetes reads it (an indentation slip moves or drops it) -----

STS = {"workload": {"kind": "StatefulSet"}}
POD_SPEC = ("spec", "template", "spec")
SELECTOR_TERM = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": SELECTOR}}
CUSTOM_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["cpu"]}]}
            ]
        }
    }
}
EGRESS_RULE = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
PODS_METRIC = {
    "type": "Pods",
    "pods": {
        "metric": {"name": "requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "10"},
    },
}
RELABEL = [{"action": "labeldrop", "regex": "pod_template_hash"}]
NP_ON = {"networkPolicy": {"enabled": True}}
NP = helpers.FULLNAME  # the service pods' NetworkPolicy (the helm test pod has its own)
MONITOR_ON = {"serviceMonitor": {"enabled": True, "forceEnable": True}}

# (case, values, kind, name or None, path in the object, expected value there)
OPTIONAL_BLOCKS: list[tuple[str, dict[str, Any], str, str | None, tuple[Any, ...], Any]] = [
    (
        "imagePullSecrets (workload)",
        {"imagePullSecrets": [{"name": "regcred"}]},
        "Deployment",
        None,
        (*POD_SPEC, "imagePullSecrets"),
        [{"name": "regcred"}],
    ),
    (
        "imagePullSecrets (test hook)",
        {"imagePullSecrets": [{"name": "regcred"}]},
        "Pod",
        None,
        ("spec", "imagePullSecrets"),
        [{"name": "regcred"}],
    ),
    (
        "service.annotations",
        {"service": {"annotations": {"lb": "internal"}}},
        "Service",
        helpers.FULLNAME,
        ("metadata", "annotations"),
        {"lb": "internal"},
    ),
    (
        "service.loadBalancerSourceRanges",
        {"service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}},
        "Service",
        helpers.FULLNAME,
        ("spec", "loadBalancerSourceRanges"),
        ["10.0.0.0/8"],
    ),
    (
        "serviceAccount.annotations",
        {"serviceAccount": {"annotations": {"iam": "role"}}},
        "ServiceAccount",
        None,
        ("metadata", "annotations"),
        {"iam": "role"},
    ),
    (
        "persistence.annotations",
        merge_values(STS, {"persistence": {"enabled": True, "annotations": {"backup": "no"}}}),
        "StatefulSet",
        None,
        ("spec", "volumeClaimTemplates", 0, "metadata", "annotations"),
        {"backup": "no"},
    ),
    (
        "workload.updateStrategy",
        merge_values(STS, {"workload": {"updateStrategy": {"type": "OnDelete"}}}),
        "StatefulSet",
        None,
        ("spec", "updateStrategy"),
        {"type": "OnDelete"},
    ),
    (
        "workload.strategy",
        {"workload": {"strategy": {"type": "Recreate"}}},
        "Deployment",
        None,
        ("spec", "strategy"),
        {"type": "Recreate"},
    ),
    ("affinity", {"affinity": CUSTOM_AFFINITY}, "Deployment", None, (*POD_SPEC, "affinity"), CUSTOM_AFFINITY),
    (
        "podAntiAffinityPreset hard",
        {"podAntiAffinityPreset": "hard"},
        "Deployment",
        None,
        (*POD_SPEC, "affinity", "podAntiAffinity"),
        {"requiredDuringSchedulingIgnoredDuringExecution": [SELECTOR_TERM]},
    ),
    (
        "extraVolumes",
        {
            "extraVolumes": [{"name": "models", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "models", "mountPath": "/models"}],
        },
        "Deployment",
        None,
        (*POD_SPEC, "volumes", -1),
        {"name": "models", "emptyDir": {}},
    ),
    (
        "extraVolumeMounts",
        {
            "extraVolumes": [{"name": "models", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "models", "mountPath": "/models"}],
        },
        "Deployment",
        None,
        (*POD_SPEC, "containers", 0, "volumeMounts", -1),
        {"name": "models", "mountPath": "/models"},
    ),
    (
        "tmpVolume.medium",
        {"tmpVolume": {"medium": "Memory"}},
        "Deployment",
        None,
        (*POD_SPEC, "volumes", 0, "emptyDir", "medium"),
        "Memory",
    ),
    (
        "autoscaling.metrics",
        {"autoscaling": {"enabled": True, "metrics": [PODS_METRIC]}},
        "HorizontalPodAutoscaler",
        None,
        ("spec", "metrics", -1),
        PODS_METRIC,
    ),
    (
        "networkPolicy.egress.extraRules",
        merge_values(NP_ON, {"networkPolicy": {"egress": {"enabled": True, "extraRules": [EGRESS_RULE]}}}),
        "NetworkPolicy",
        NP,
        ("spec", "egress", -1),
        EGRESS_RULE,
    ),
    (
        "networkPolicy.allowedPods",
        merge_values(NP_ON, {"networkPolicy": {"allowedPods": [{"matchLabels": {"app": "client"}}]}}),
        "NetworkPolicy",
        NP,
        ("spec", "ingress", 0, "from", -1),
        {"podSelector": {"matchLabels": {"app": "client"}}},
    ),
    (
        "networkPolicy.ingressController.podLabels (namespace AND pods, one peer)",
        merge_values(
            NP_ON,
            {"networkPolicy": {"ingressController": {"enabled": True, "podLabels": {"app": "ingress"}}}},
        ),
        "NetworkPolicy",
        NP,
        ("spec", "ingress", 0, "from", -1),
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
            "podSelector": {"matchLabels": {"app": "ingress"}},
        },
    ),
    (
        "serviceMonitor.relabelings",
        merge_values(MONITOR_ON, {"serviceMonitor": {"relabelings": RELABEL}}),
        "ServiceMonitor",
        None,
        ("spec", "endpoints", 0, "relabelings"),
        RELABEL,
    ),
    (
        "serviceMonitor.metricRelabelings",
        merge_values(MONITOR_ON, {"serviceMonitor": {"metricRelabelings": RELABEL}}),
        "ServiceMonitor",
        None,
        ("spec", "endpoints", 0, "metricRelabelings"),
        RELABEL,
    ),
]


def at(obj: Any, path: tuple[Any, ...]) -> Any:
    """The value at `path` (keys and list indices), or None where the path leads nowhere."""
    for part in path:
        try:
            obj = obj[part]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


@pytest.mark.parametrize(
    ("case", "values", "kind", "name", "path", "expected"),
    OPTIONAL_BLOCKS,
    ids=[case for case, *_ in OPTIONAL_BLOCKS],
)
def test_optional_block_lands_in_place(
    case: str, values: dict[str, Any], kind: str, name: str | None, path: tuple[Any, ...], expected: Any
) -> None:
    obj = get(render(values), kind, name)
    field = ".".join(str(p) for p in path)
    assert at(obj, path) == expected, f"{helpers.label(obj)}: {field} for {case}"


def test_service_monitor_in_another_namespace_watches_the_release_namespace() -> None:
    monitor = get(
        render(merge_values(MONITOR_ON, {"serviceMonitor": {"namespace": "monitoring"}})), "ServiceMonitor"
    )
    actual = (monitor["metadata"]["namespace"], monitor["spec"]["namespaceSelector"])
    assert actual == ("monitoring", {"matchNames": [helpers.NAMESPACE]}), (
        f"{helpers.label(monitor)}: metadata.namespace / spec.namespaceSelector: Prometheus must look for "
        "the Service in the release namespace"
    )


def test_dns_egress_reaches_kube_dns_in_kube_system() -> None:
    spec = get(
        render(merge_values(NP_ON, {"networkPolicy": {"egress": {"enabled": True}}})), "NetworkPolicy", NP
    )["spec"]
    dns_peers = [
        peer
        for rule in spec["egress"]
        if {p["port"] for p in rule.get("ports") or []} == {53}
        for peer in rule.get("to") or []
    ]
    expected = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns_peers == expected, (
        f"NetworkPolicy/{helpers.FULLNAME}: spec.egress DNS rule's `to` must be kube-dns in kube-system "
        "(one peer: namespace AND pods), or every lookup times out"
    )


# --- names: the longest release and override names still make valid objects -------------------------------


def test_longest_release_name_makes_valid_names() -> None:
    release_name = "r" * 53  # Helm's limit
    objects = render(release_name=release_name)  # each name and label checked by the Kubernetes schema
    too_long = [helpers.label(o) for o in objects if len(o["metadata"]["name"]) > 63]
    assert too_long == [], f"metadata.name over 63 characters with release {release_name}"


def test_longest_name_override_makes_valid_labels() -> None:
    objects = render({"nameOverride": "n" * 63})  # the schema check refuses label values over 63
    hook = helpers.helm_test_pod(objects)
    assert len(hook["metadata"]["labels"]["app.kubernetes.io/name"]) <= 63, (
        f"{helpers.label(hook)}: metadata.labels[app.kubernetes.io/name]"
    )


@pytest.mark.parametrize("release_name", ["my.release", "1st"])
def test_release_name_that_is_no_service_name_is_refused(release_name: str) -> None:
    with pytest.raises(helm_python.HelmError, match="fullnameOverride"):
        render(release_name=release_name)
