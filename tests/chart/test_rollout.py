"""Rollout behaviour layer: what each rollout value renders — the two slots and their names, Services and
selectors, the canary routers (HTTPRoute, nginx canary Ingress, replica split), blue/green's preview, per-slot
overrides, one HPA and PDB per running slot, the ServiceMonitor's variant labels, the opt-in Argo objects —
the default's absence of all of it, and each refusal naming its key."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from loadtest.chart.release import merge_values
from tests.chart import helpers
from tests.chart.helpers import Manifest
from tests.chart.test_install import dry_run_install

GATEWAY = {
    "httpRoute": {"parentRefs": [{"name": "gateway", "namespace": "infra"}], "hostnames": ["api.example.com"]}
}
SLOT_KINDS = ("Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
ROLLOUT_KINDS = ("HTTPRoute", "Rollout", "AnalysisTemplate", "ScaledObject")


def canary(**values: Any) -> dict[str, Any]:
    return merge_values(GATEWAY, {"rollout": merge_values({"strategy": "canary"}, values)})


def blue_green(**values: Any) -> dict[str, Any]:
    return {"rollout": merge_values({"strategy": "blueGreen"}, values)}


def names(objects: list[Manifest], kinds: tuple[str, ...] = SLOT_KINDS) -> list[str]:
    return sorted(helpers.label(o) for o in objects if o["kind"] in kinds and not helpers.is_hook(o))


def selector(objects: list[Manifest], name: str) -> dict[str, str]:
    return helpers.get(objects, "Service", name)["spec"]["selector"]


RELEASE_SELECTOR = {"app.kubernetes.io/name": "model-api", "app.kubernetes.io/instance": helpers.RELEASE}


def slot_selector(slot: str) -> dict[str, str]:
    return {**RELEASE_SELECTOR, "model-api/slot": slot}


# ---- the default is today's release ---------------------------------------------------------------------


def test_rolling_renders_no_slot_and_no_rollout_object(value_set: str, objects: list[Manifest]) -> None:
    assert [n for n in names(objects, (*SLOT_KINDS, *ROLLOUT_KINDS)) if "-blue" in n or "-green" in n] == []
    assert names(objects, ROLLOUT_KINDS) == []


@pytest.mark.parametrize(
    ("case", "values", "expected"),
    [
        (
            "canary",
            canary(canary={"weight": 10}),
            [
                "Deployment/model-api-blue",
                "Deployment/model-api-green",
                "Service/model-api",
                "Service/model-api-blue",
                "Service/model-api-green",
            ],
        ),
        (
            "blue/green",
            blue_green(),
            [
                "Deployment/model-api-blue",
                "Deployment/model-api-green",
                "Service/model-api",
                "Service/model-api-blue",
                "Service/model-api-green",
                "Service/model-api-preview",
            ],
        ),
        (
            "StatefulSet slots",
            {**blue_green(), "workload": {"kind": "StatefulSet"}},
            [
                "Service/model-api",
                "Service/model-api-blue",
                "Service/model-api-blue-headless",
                "Service/model-api-green",
                "Service/model-api-green-headless",
                "Service/model-api-preview",
                "StatefulSet/model-api-blue",
                "StatefulSet/model-api-green",
            ],
        ),
        (
            "autoscaled, PDB, retired green slot",
            merge_values(
                canary(slots={"green": {"replicaCount": 0}}),
                {"autoscaling": {"enabled": True}, "pdb": {"enabled": True}},
            ),
            [
                "Deployment/model-api-blue",
                "Deployment/model-api-green",
                "HorizontalPodAutoscaler/model-api-blue",
                "PodDisruptionBudget/model-api-blue",
                "Service/model-api",
                "Service/model-api-blue",
            ],
        ),
    ],
)
def test_slot_objects(case: str, values: dict, expected: list[str]) -> None:
    assert names(helpers.render(values)) == expected, case


def test_slot_workload_selectors_carry_the_fixed_slot_label() -> None:
    objects = helpers.render(canary(canary={"weight": 10}))
    actual = {
        w["metadata"]["name"]: w["spec"]["selector"]["matchLabels"]
        for w in helpers.find(objects, "Deployment")
    }
    assert actual == {"model-api-blue": slot_selector("blue"), "model-api-green": slot_selector("green")}


@pytest.mark.parametrize(
    ("case", "values", "expected"),
    [
        ("canary: the active slot", canary(active="green", canary={"weight": 10}), slot_selector("green")),
        ("blue/green: the active slot", blue_green(active="blue"), slot_selector("blue")),
        (
            "canary by replicas: both slots",
            canary(canary={"router": "replicas", "weight": 50}),
            RELEASE_SELECTOR,
        ),
    ],
)
def test_main_service_selector(case: str, values: dict, expected: dict) -> None:
    assert selector(helpers.render(values), "model-api") == expected, case


def test_preview_selects_the_candidate() -> None:
    objects = helpers.render(blue_green(active="green"))
    assert selector(objects, "model-api-preview") == slot_selector("blue")


def test_promotion_changes_only_service_selectors_and_route_weights() -> None:
    before = helpers.render(canary(active="blue", canary={"weight": 50}))
    after = helpers.render(canary(active="green", canary={"weight": 0}))
    changed = sorted(
        helpers.label(o)
        for o in after
        if o["kind"] not in ("Pod",) and [b for b in before if helpers.label(b) == helpers.label(o)] != [o]
    )
    assert changed == ["HTTPRoute/model-api", "Service/model-api"]


# ---- per-slot overrides --------------------------------------------------------------------------

SLOTS = {
    "blue": {"replicaCount": 3, "model": {"version": "v1"}},
    "green": {
        "replicaCount": 1,
        "image": {"tag": "2.0.0"},
        "model": {"uri": "https://models.example/iris-2.onnx", "sha256": "a" * 64, "version": "v2"},
    },
}


def pod(objects: list[Manifest], slot: str) -> Manifest:
    return helpers.get(objects, "Deployment", f"model-api-{slot}")["spec"]["template"]


def test_slot_overrides_image_model_and_replicas() -> None:
    objects = helpers.render(canary(canary={"weight": 25}, slots=SLOTS))

    def seen(slot: str) -> dict[str, Any]:
        template = pod(objects, slot)
        container = template["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        return {
            "replicas": helpers.get(objects, "Deployment", f"model-api-{slot}")["spec"]["replicas"],
            "image": container["image"],
            "version env": env.get("MODEL_API_MODEL_VERSION"),
            "version label": template["metadata"]["labels"].get("model-api/model-version"),
            "fetches": [c["name"] for c in template["spec"].get("initContainers") or []],
        }

    assert {slot: seen(slot) for slot in ("blue", "green")} == {
        "blue": {
            "replicas": 3,
            "image": "ghcr.io/model-api/model-api:0.1.0",
            "version env": "v1",
            "version label": "v1",
            "fetches": [],
        },
        "green": {
            "replicas": 1,
            "image": "ghcr.io/model-api/model-api:2.0.0",
            "version env": "v2",
            "version label": "v2",
            "fetches": ["fetch-model"],
        },
    }


def test_slot_digest_replaces_the_tag() -> None:
    digest = "sha256:" + "b" * 64
    objects = helpers.render(
        canary(canary={"weight": 0}, slots={"green": {"image": {"tag": "2.0.0", "digest": digest}}})
    )
    assert pod(objects, "green")["spec"]["containers"][0]["image"] == f"ghcr.io/model-api/model-api@{digest}"


def test_one_hpa_per_running_slot_with_its_own_bounds() -> None:
    values = merge_values(
        canary(canary={"weight": 10}, slots={"green": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}}),
        {"autoscaling": {"enabled": True}},
    )
    objects = helpers.render(values)
    actual = {
        h["metadata"]["name"]: (
            h["spec"]["scaleTargetRef"]["name"],
            h["spec"]["minReplicas"],
            h["spec"]["maxReplicas"],
        )
        for h in helpers.find(objects, "HorizontalPodAutoscaler")
    }
    assert actual == {
        "model-api-blue": ("model-api-blue", 2, 10),
        "model-api-green": ("model-api-green", 1, 3),
    }
    assert [d for d in helpers.find(objects, "Deployment") if "replicas" in d["spec"]] == []


def test_keda_queries_target_each_slot_service() -> None:
    values = merge_values(
        canary(canary={"weight": 10}),
        {"autoscaling": {"enabled": True, "engine": "keda", "targetInFlight": 3}},
    )
    queries = {
        o["metadata"]["name"]: o["spec"]["triggers"][-1]["metadata"]["query"]
        for o in helpers.find(helpers.render(values), "ScaledObject")
    }
    assert queries == {
        slot: f'sum(model_api_requests_in_flight{{namespace="{helpers.NAMESPACE}",service="{slot}"}})'
        for slot in ("model-api-blue", "model-api-green")
    }


def test_one_pdb_per_running_slot() -> None:
    objects = helpers.render({**canary(canary={"weight": 10}), "pdb": {"enabled": True}})
    actual = {
        p["metadata"]["name"]: p["spec"]["selector"]["matchLabels"]
        for p in helpers.find(objects, "PodDisruptionBudget")
    }
    assert actual == {"model-api-blue": slot_selector("blue"), "model-api-green": slot_selector("green")}


def test_service_monitor_scrapes_the_slot_services_with_variant_labels() -> None:
    values = {**canary(canary={"weight": 10}), "serviceMonitor": {"enabled": True, "forceEnable": True}}
    objects = helpers.render(values)
    spec = helpers.get(objects, "ServiceMonitor")["spec"]
    scraped = sorted(
        s["metadata"]["name"]
        for s in helpers.find(objects, "Service")
        if helpers.selects(spec["selector"], s["metadata"]["labels"])
    )
    assert (scraped, spec["podTargetLabels"]) == (
        ["model-api-blue", "model-api-green"],
        ["model-api/slot", "model-api/model-version"],
    )


# ---- routers -------------------------------------------------------------------------------------


def backend(name: str, weight: int) -> Manifest:
    return {"group": "", "kind": "Service", "name": name, "port": 80, "weight": weight}


def test_http_route_splits_by_weight_and_routes_the_header_to_the_candidate() -> None:
    objects = helpers.render(canary(canary={"weight": 20, "header": "X-Canary"}))
    route = helpers.get(objects, "HTTPRoute", "model-api")
    prefix = {"path": {"type": "PathPrefix", "value": "/"}}
    expected = {
        "parentRefs": [{"name": "gateway", "namespace": "infra"}],
        "hostnames": ["api.example.com"],
        "rules": [
            {
                "matches": [
                    {**prefix, "headers": [{"type": "Exact", "name": "X-Canary", "value": "always"}]}
                ],
                "backendRefs": [backend("model-api-green", 100)],
            },
            {
                "matches": [prefix],
                "backendRefs": [backend("model-api-blue", 80), backend("model-api-green", 20)],
            },
        ],
    }
    assert (route["apiVersion"], route["spec"]) == ("gateway.networking.k8s.io/v1", expected)


def test_http_route_without_a_running_candidate_sends_everything_to_the_active_slot() -> None:
    objects = helpers.render(
        canary(active="green", canary={"weight": 0}, slots={"blue": {"replicaCount": 0}})
    )
    rules = helpers.get(objects, "HTTPRoute")["spec"]["rules"]
    assert [rule["backendRefs"] for rule in rules] == [[backend("model-api-green", 100)]]


INGRESS = {
    "enabled": True,
    "className": "nginx",
    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
    "hosts": [{"host": "api.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
    "tls": [{"secretName": "api-tls", "hosts": ["api.example.com"]}],
}


def test_nginx_canary_ingress() -> None:
    values = {
        **canary(canary={"router": "ingressNginx", "weight": 30, "header": "X-Canary"}),
        "ingress": INGRESS,
    }
    objects = helpers.render(values)
    main, canary_ingress = (
        helpers.get(objects, "Ingress", "model-api"),
        helpers.get(objects, "Ingress", "model-api-canary"),
    )
    backends = [
        p["backend"]["service"]["name"] for r in canary_ingress["spec"]["rules"] for p in r["http"]["paths"]
    ]
    assert canary_ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "30",
        "nginx.ingress.kubernetes.io/canary-weight-total": "100",
        "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
        "nginx.ingress.kubernetes.io/canary-by-header-value": "always",
    }
    assert backends == ["model-api-green"]
    assert main["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "model-api"


@pytest.mark.parametrize(
    ("case", "values"),
    [
        ("rolling", {"ingress": INGRESS}),
        ("gatewayAPI router", {**canary(canary={"weight": 10}), "ingress": INGRESS}),
        ("blue/green", {**blue_green(), "ingress": INGRESS}),
    ],
)
def test_no_canary_ingress_or_route_without_their_router(case: str, values: dict) -> None:
    objects = helpers.render(values)
    assert helpers.find(objects, "Ingress", "model-api-canary") == [], case
    if case != "gatewayAPI router":
        assert helpers.find(objects, "HTTPRoute") == [], case


def test_replicas_router_splits_by_replica_counts() -> None:
    objects = helpers.render(
        canary(
            canary={"router": "replicas", "weight": 25},
            slots={"blue": {"replicaCount": 3}, "green": {"replicaCount": 1}},
        )
    )
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in helpers.find(objects, "Deployment")}
    assert (replicas, names(objects, ROLLOUT_KINDS)) == ({"model-api-blue": 3, "model-api-green": 1}, [])


# ---- Argo Rollouts (opt-in) ----------------------------------------------------------------------


def argo_objects() -> list[Manifest]:
    return helpers.render(
        canary(engine="argo", canary={"weight": 20}, slots={"green": {"model": {"version": "v2"}}})
    )


def test_argo_rollout_references_the_candidate_deployment() -> None:
    objects = argo_objects()
    spec = helpers.get(objects, "Rollout", "model-api")["spec"]
    assert spec["workloadRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "model-api-green",
        "scaleDown": "progressively",
    }
    assert spec["strategy"]["canary"]["steps"] == [
        {"setWeight": 20},
        {
            "analysis": {
                "templates": [{"templateName": "model-api"}],
                "args": [{"name": "service", "value": "model-api-green"}],
            }
        },
    ]
    assert "replicas" not in helpers.get(objects, "Deployment", "model-api-green")["spec"], (
        "Deployment/model-api-green: spec.replicas is Argo's to scale down"
    )


def test_analysis_template_keeps_argo_placeholders_and_needs_data_to_succeed() -> None:
    template = helpers.get(argo_objects(), "AnalysisTemplate", "model-api")["spec"]
    assert [a["name"] for a in template["args"]] == ["service", "namespace"]
    for metric in template["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        where = f"AnalysisTemplate/model-api: metrics[{metric['name']}]"
        assert 'service="{{args.service}}"' in query and 'namespace="{{args.namespace}}"' in query, where
        for condition in ("successCondition", "failureCondition"):
            assert metric[condition].startswith("len(result) > 0 && !isNaN(result[0]) && "), (
                f"{where}.{condition}"
            )
    queries = {m["name"]: m["provider"]["prometheus"]["query"] for m in template["metrics"]}
    assert 'status=~"5.."' in queries["error-ratio"] and "or vector(0)" in queries["error-ratio"]
    assert queries["p99-latency"].startswith(
        "histogram_quantile(0.99, sum by (le) (rate(model_api_request_duration_seconds_bucket{"
    )


def test_no_argo_objects_without_the_opt_in() -> None:
    assert names(helpers.render(canary(canary={"weight": 20})), ("Rollout", "AnalysisTemplate")) == []


# ---- refusals ------------------------------------------------------------------------------------

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("gatewayAPI without parentRefs", {"rollout": {"strategy": "canary"}}, "httpRoute.parentRefs"),
    (
        "ingressNginx without an Ingress",
        canary(canary={"router": "ingressNginx", "weight": 10}),
        "rollout.canary.router ingressNginx needs ingress.enabled",
    ),
    (
        "replicas router with autoscaling",
        merge_values(canary(canary={"router": "replicas", "weight": 50}), {"autoscaling": {"enabled": True}}),
        "autoscaling.enabled with rollout.canary.router replicas",
    ),
    (
        "replicas router with a header",
        canary(canary={"router": "replicas", "weight": 50, "header": "X-Canary"}),
        "rollout.canary.header",
    ),
    (
        "replicas router, weight off the split",
        canary(canary={"router": "replicas", "weight": 10}),
        "rollout.canary.weight (10) must equal the replica split",
    ),
    (
        "weight to a stopped candidate",
        canary(canary={"weight": 10}, slots={"green": {"replicaCount": 0}}),
        "rollout.slots.green.replicaCount is 0 while rollout.canary.weight is 10",
    ),
    (
        "header to a stopped candidate",
        canary(canary={"header": "X-Canary"}, slots={"green": {"replicaCount": 0}}),
        "rollout.slots.green.replicaCount is 0 while rollout.canary.header",
    ),
    (
        "blue/green with a stopped candidate",
        blue_green(slots={"green": {"replicaCount": 0}}),
        "rollout.slots.green.replicaCount is 0 with rollout.strategy blueGreen",
    ),
    (
        "stopped active slot",
        canary(active="green", slots={"green": {"replicaCount": 0}}),
        "rollout.slots.green.replicaCount is 0, but rollout.active is green",
    ),
    ("argo with blue/green", blue_green(engine="argo"), "rollout.engine argo needs rollout.strategy canary"),
    (
        "argo with autoscaling",
        merge_values(canary(engine="argo"), {"autoscaling": {"enabled": True}}),
        "autoscaling.enabled with rollout.engine argo",
    ),
    (
        "slot StatefulSet name too long",
        {**blue_green(), "workload": {"kind": "StatefulSet"}, "fullnameOverride": "m" * 48},
        "the slot StatefulSet name",
    ),
    ("slot label in podLabels", {"podLabels": {"model-api/slot": "x"}}, "podLabels.model-api/slot"),
    (
        "slot model without digest",
        canary(slots={"green": {"model": {"uri": "https://models.example/m.onnx"}}}),
        "rollout.slots.green.model.sha256",
    ),
]


@pytest.mark.parametrize(("case", "values", "expected"), REFUSED, ids=[c for c, _, _ in REFUSED])
def test_bad_rollout_is_refused_naming_the_key(case: str, values: dict, expected: str) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        helpers.render(values)
    assert expected in str(refused.value), f"{case}: {refused.value}"


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("rollout/strategy", {"rollout": {"strategy": "shadow"}}),
        ("rollout/canary/weight", {"rollout": {"canary": {"weight": 101}}}),
        ("rollout/canary/weight", {"rollout": {"canary": {"weight": 12.5}}}),
        ("rollout/active", {"rollout": {"active": "red"}}),
        (
            "rollout/slots/green/model/version",
            {"rollout": {"slots": {"green": {"model": {"version": "v 2"}}}}},
        ),
    ],
)
def test_bad_rollout_value_is_refused_by_the_schema(key: str, values: dict) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        helpers.render(values)
    assert f"/{key}" in str(refused.value)


@pytest.mark.parametrize(
    ("case", "values", "expected"),
    [
        (
            "canary",
            canary(canary={"weight": 20, "header": "X-Canary"}),
            "--set rollout.active=green --set rollout.canary.weight=0",
        ),
        ("blue/green", blue_green(active="green"), "port-forward service/model-api-preview"),
    ],
)
def test_notes_name_the_promotion(case: str, values: dict, expected: str) -> None:
    notes = dry_run_install(helpers.values_for((), values))["notes"]
    assert expected in notes, f"NOTES.txt for {case}:\n{notes}"
