"""Model delivery (issue 10 item 4): model.uri fetched by an init container running the service's own image,
model.pvc mounted read-only, neither → the model built into the image. Credentials reach the init container
only; the model version labels the pods (never a selector) and reaches the service; a new model rolls the
pods; validateValues refuses what cannot work."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest

from tests.chart import helpers
from tests.chart.helpers import Manifest, get, merge_values, render
from tests.chart.test_policy import POD_CHECKS

DIGEST = "0" * 63 + "1"
OTHER_DIGEST = "f" * 64
S3 = {"uri": "s3://models/iris/v2/model.onnx", "sha256": DIGEST, "version": "2.0.1"}
S3_SECRET = {"existingSecret": "s3-credentials", "endpoint": "http://seaweedfs.storage:8333"}
MODEL_DIR = "/var/cache/model-api"  # cacheVolume.mountPath
CLAIM_DIR = "/var/lib/model-api/model"
STATEFULSET = {"workload": {"kind": "StatefulSet"}, "persistence": {"enabled": True}}


def pod_spec(objects: list[Manifest]) -> Manifest:
    return helpers.pod_spec(helpers.workload(objects))


def env_of(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def mounts_of(container: Manifest) -> dict[str, tuple[str, bool]]:
    return {
        m["name"]: (m["mountPath"], m.get("readOnly", False)) for m in container.get("volumeMounts") or []
    }


def fetch_container(objects: list[Manifest]) -> Manifest:
    containers = pod_spec(objects).get("initContainers") or []
    assert [c["name"] for c in containers] == ["fetch-model"], (
        f"{helpers.label(helpers.workload(objects))}: spec.template.spec.initContainers"
    )
    return containers[0]


# --- off by default: the model built into the image ----------------------------------------------------


def test_no_model_source_means_no_init_container_and_no_model_env() -> None:
    objects = render()
    spec, container = pod_spec(objects), helpers.main_container(objects)
    actual = (
        spec.get("initContainers", []),
        sorted(set(env_of(container)) & {"MODEL_API_MODEL_PATH", "MODEL_API_MODEL_VERSION"}),
        mounts_of(container)["cache"],
        [v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v],
        "model-api/model-version" in helpers.pod_template_labels(helpers.workload(objects)),
    )
    assert actual == ([], [], (MODEL_DIR, False), [], False), (
        f"{helpers.label(helpers.workload(objects))}: spec.template.spec without model.uri or model.pvc"
    )


# --- model.uri: the fetch init container ---------------------------------------------------------------


# The default bounds of every wait (model.fetch): a stalled download fails the pod, never hangs it.
BOUNDS = [
    "--connect-timeout",
    "10",
    "--read-timeout",
    "30",
    "--deadline",
    "600",
    "--retries",
    "4",
    "--backoff",
    "1",
]


def test_uri_adds_the_fetch_init_container_with_the_services_image() -> None:
    objects = render({"model": S3, "image": {"tag": "1.2.3"}})
    fetch, main = fetch_container(objects), helpers.main_container(objects)
    actual = {
        "image": fetch["image"],
        "imagePullPolicy": fetch["imagePullPolicy"],
        "command": fetch["command"],
        "securityContext": fetch["securityContext"],
        "resources": fetch["resources"],
        "volumeMounts": mounts_of(fetch),
    }
    expected = {
        "image": main["image"],
        "imagePullPolicy": main["imagePullPolicy"],
        "command": [
            "model-api",
            "fetch",
            "--uri",
            S3["uri"],
            "--sha256",
            DIGEST,
            "--dest",
            MODEL_DIR,
            *BOUNDS,
        ],
        "securityContext": main["securityContext"],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": {"tmp": ("/tmp", False), "cache": (MODEL_DIR, False)},
    }
    assert actual == expected, f"{helpers.label(helpers.workload(objects))}: initContainers[fetch-model]"


def test_fetch_container_is_restricted_with_a_read_only_root() -> None:
    context = fetch_container(render({"model": S3}))["securityContext"]
    actual = {
        k: context.get(k) for k in ("readOnlyRootFilesystem", "allowPrivilegeEscalation", "runAsNonRoot")
    }
    expected = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "runAsNonRoot": True}
    assert (actual, context["capabilities"]["drop"]) == (expected, ["ALL"]), (
        "initContainers[fetch-model].securityContext"
    )


@pytest.mark.parametrize(
    ("uri", "expected_path"),
    [
        ("s3://models/iris/v2/model.onnx", f"{MODEL_DIR}/model.onnx"),
        ("https://example.com/a/b/iris-v3.onnx", f"{MODEL_DIR}/iris-v3.onnx"),
        ("https://example.com/m/regressor.onnx?X-Amz-Signature=abc", f"{MODEL_DIR}/regressor.onnx"),
        ("file:///opt/models/local.onnx", f"{MODEL_DIR}/local.onnx"),
    ],
)
def test_service_reads_the_fetched_file_from_a_read_only_mount(uri: str, expected_path: str) -> None:
    main = helpers.main_container(render({"model": {"uri": uri, "sha256": DIGEST}}))
    actual = (env_of(main).get("MODEL_API_MODEL_PATH"), mounts_of(main)["cache"])
    assert actual == (expected_path, (MODEL_DIR, True)), (
        f"containers[{main['name']}]: env MODEL_API_MODEL_PATH / volumeMounts[cache] for model.uri {uri}"
    )


def test_fetch_writes_into_a_size_limited_empty_dir() -> None:
    spec = pod_spec(render({"model": S3, "cacheVolume": {"sizeLimit": "3Gi"}}))
    volume = next(v for v in spec["volumes"] if v["name"] == "cache")
    assert volume == {"name": "cache", "emptyDir": {"sizeLimit": "3Gi"}}, "spec.template.spec.volumes[cache]"


def test_statefulset_fetches_into_its_claim_which_caches_across_restarts() -> None:
    objects = render(merge_values(STATEFULSET, {"model": S3}))
    statefulset = get(objects, "StatefulSet", helpers.FULLNAME)
    actual = (
        [v["name"] for v in pod_spec(objects)["volumes"]],
        [t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]],
        mounts_of(fetch_container(objects))["cache"],
    )
    assert actual == (["tmp"], ["cache"], (MODEL_DIR, False)), (
        f"{helpers.label(statefulset)}: the fetch writes into the claim template `cache`, not an emptyDir"
    )


def test_s3_credentials_reach_the_init_container_only() -> None:
    objects = render({"model": {**S3, "s3": S3_SECRET}})
    spec = pod_spec(objects)
    fetch_env = env_of(fetch_container(objects))
    expected_fetch = {
        "AWS_ENDPOINT_URL": S3_SECRET["endpoint"],
        "AWS_ACCESS_KEY_ID": {"secretKeyRef": {"name": "s3-credentials", "key": "AWS_ACCESS_KEY_ID"}},
        "AWS_SECRET_ACCESS_KEY": {"secretKeyRef": {"name": "s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"}},
    }
    leaking = [
        f"containers[{c['name']}]"
        for c in spec["containers"]
        if "s3-credentials" in str(c.get("env")) + str(c.get("envFrom")) + str(spec.get("volumes"))
    ]
    assert (fetch_env, leaking) == (expected_fetch, []), (
        "S3 credentials: initContainers[fetch-model].env only"
    )


def test_s3_secret_keys_are_configurable() -> None:
    keys = {"accessKeyIdKey": "id", "secretAccessKeyKey": "secret"}
    env = env_of(fetch_container(render({"model": {**S3, "s3": {**S3_SECRET, **keys}}})))
    actual = (
        env["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["key"],
        env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["key"],
    )
    assert actual == ("id", "secret"), "initContainers[fetch-model].env secretKeyRef keys"


def test_allow_insecure_http_passes_the_flag() -> None:
    model = {"uri": "http://models.internal/iris.onnx", "sha256": DIGEST, "allowInsecureHttp": True}
    command = fetch_container(render({"model": model}))["command"]
    assert command[-1] == "--allow-insecure-http", "initContainers[fetch-model].command"


# --- model.pvc: an existing claim, read-only ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"), [("", CLAIM_DIR), ("iris/v2/model.onnx", f"{CLAIM_DIR}/iris/v2/model.onnx")]
)
def test_claim_is_mounted_read_only_without_an_init_container(path: str, expected: str) -> None:
    objects = render({"model": {"pvc": {"claimName": "models", "path": path}}})
    spec, main = pod_spec(objects), helpers.main_container(objects)
    actual = (
        spec.get("initContainers", []),
        next(v for v in spec["volumes"] if v["name"] == "model"),
        mounts_of(main)["model"],
        env_of(main)["MODEL_API_MODEL_PATH"],
    )
    volume = {"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}
    assert actual == ([], volume, (CLAIM_DIR, True), expected), (
        f"{helpers.label(helpers.workload(objects))}: spec.template.spec for model.pvc"
    )


# --- model.version: labels, env, rolling -----------------------------------------------------------------


def test_version_labels_the_pods_and_reaches_the_service() -> None:
    objects = render({"model": S3})
    labels = helpers.workload(objects)["spec"]["template"]["metadata"]["labels"]
    actual = (
        labels.get("model-api/model-version"),
        env_of(helpers.main_container(objects))["MODEL_API_MODEL_VERSION"],
    )
    assert actual == ("2.0.1", "2.0.1"), "spec.template.metadata.labels / env MODEL_API_MODEL_VERSION"


def test_version_is_in_no_selector() -> None:
    """Selectors are immutable (workloads) or would drop old pods mid-rollout (Service, PDB, policies)."""
    values = {"model": S3, "pdb": {"enabled": True}, "replicaCount": 2, "networkPolicy": {"enabled": True}}
    objects = render(values)
    selectors = {
        f"{helpers.label(o)}": str(o["spec"].get("selector") or o["spec"].get("podSelector"))
        for o in objects
        if o["kind"] in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy")
    }
    assert [name for name, selector in selectors.items() if "model-version" in selector] == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("uri", "s3://models/iris/v3/model.onnx"),
        ("sha256", OTHER_DIGEST),
        ("version", "3.0.0"),
    ],
)
def test_a_new_model_rolls_the_pods_and_keeps_the_selector(key: str, value: str) -> None:
    before = helpers.workload(render({"model": S3}))
    after = helpers.workload(render({"model": {**S3, key: value}}))
    actual = (
        before["spec"]["template"] != after["spec"]["template"],
        before["spec"]["selector"] == after["spec"]["selector"],
    )
    assert actual == (True, True), (
        f"{helpers.label(before)}: spec.template must change (a rollout) and spec.selector must not "
        f"when model.{key} changes"
    )


def test_the_same_model_does_not_roll_the_pods() -> None:
    before = helpers.workload(render({"model": S3}))
    after = helpers.workload(render({"model": dict(S3)}, files=()))
    assert before["spec"]["template"] == after["spec"]["template"]


# --- validateValues ---------------------------------------------------------------------------------------


REFUSED = [
    ("remote uri without digest", {"uri": "https://example.com/m.onnx"}, "model.sha256"),
    ("s3 uri without digest", {"uri": "s3://bucket/m.onnx"}, "model.sha256"),
    ("plain http", {"uri": "http://example.com/m.onnx", "sha256": DIGEST}, "model.allowInsecureHttp"),
    (
        "s3 credentials with an https uri",
        {"uri": "https://example.com/m.onnx", "sha256": DIGEST, "s3": {"existingSecret": "creds"}},
        "model.s3.existingSecret",
    ),
    ("s3 endpoint without a uri", {"s3": {"endpoint": "http://minio:9000"}}, "model.s3.endpoint"),
    (
        "uri and claim",
        {"uri": "s3://bucket/m.onnx", "sha256": DIGEST, "pvc": {"claimName": "models"}},
        "model.pvc.claimName",
    ),
    ("digest without uri", {"sha256": DIGEST}, "model.sha256"),
    ("claim path without claim", {"pvc": {"path": "m.onnx"}}, "model.pvc.claimName"),
]


@pytest.mark.parametrize(("case", "model", "key"), REFUSED, ids=[c for c, *_ in REFUSED])
def test_validate_values_refuses_naming_the_key(case: str, model: dict[str, Any], key: str) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render({"model": model})
    assert key in str(refused.value), f"{case}: the refusal does not name {key}: {refused.value}"


def test_config_model_path_and_a_model_source_are_exclusive() -> None:
    with pytest.raises(helm_python.HelmError, match=r"config\.modelPath and model\.uri"):
        render({"model": S3, "config": {"modelPath": "/opt/iris.onnx"}})


@pytest.mark.parametrize(
    ("key", "model"),
    [
        ("/model/sha256", {"sha256": "ABC"}),
        ("/model/version", {"version": "not a label"}),
        ("/model/uri", {"uri": "ftp://example.com/m.onnx"}),
        ("/model/uri", {"uri": "https://example.com/dir/"}),
        ("/model/pvc/path", {"pvc": {"claimName": "c", "path": "../escape"}}),
        ("/model", {"unknown": True}),
    ],
)
def test_schema_refuses_malformed_model_values(key: str, model: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render({"model": model})
    assert key in str(refused.value), f"model {model}: the schema error does not name {key}: {refused.value}"


# --- the seam for rollout slots: another model and image through the same pod template -------------------

SLOT_TEMPLATE = """{{- $slot := dict "uri" "s3://models/iris/v9/model.onnx" "sha256" "DIGEST" "version" "9" }}
{{- $model := merge $slot .Values.model }}
{{- $image := merge (dict "tag" "9.9.9") .Values.image }}
{{- $pod := dict "root" $ "model" $model "image" $image "component" "server" "labels" (dict "slot" "green") }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: slot
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels:
      slot: green
  template:
    {{- include "model-api.podTemplate" $pod | nindent 4 }}
""".replace("DIGEST", OTHER_DIGEST)


def test_pod_template_takes_its_model_and_image_from_the_caller(tmp_path: Path) -> None:
    chart = tmp_path / "model-api"
    shutil.copytree(helpers.CHART_DIR, chart)
    (chart / "templates" / "slot.yaml").write_text(SLOT_TEMPLATE)
    objects = [o for _, o in helpers.render_uncached(chart_dir=chart, minors=("1.33",))]
    slot = get(objects, "Deployment", "slot")
    spec = slot["spec"]["template"]["spec"]
    actual = (
        spec["initContainers"][0]["command"][3],
        spec["containers"][0]["image"],
        slot["spec"]["template"]["metadata"]["labels"]["model-api/model-version"],
        slot["spec"]["template"]["metadata"]["labels"]["slot"],
        get(objects, "Deployment", helpers.FULLNAME)["spec"]["template"]["spec"].get("initContainers"),
    )
    assert actual == (
        "s3://models/iris/v9/model.onnx",
        "ghcr.io/model-api/model-api:9.9.9",
        "9",
        "green",
        None,
    )


@pytest.mark.parametrize(
    "model",
    [{**S3, "s3": S3_SECRET}, {"pvc": {"claimName": "models"}}],
    ids=["uri", "pvc"],
)
def test_model_delivery_pods_pass_the_pod_policy(model: dict[str, Any]) -> None:
    """The restricted Pod Security Standard, requests and memory limits, pinned images, no literal secrets —
    for the fetch init container too."""
    owners = helpers.pod_owners(render({"model": model}))
    findings = [f for owner in owners for check in POD_CHECKS.values() for f in check(owner)]
    assert findings == []
