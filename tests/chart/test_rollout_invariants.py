"""Rollout invariants layer: the properties a canary or blue/green release must keep, proven on every render
of every rollout state, and across the upgrade sequence rolling → canary 10 % → canary 50 % → promote →
blue/green → flip → rolling and back, for each router and workload shape.

Per render: weights are integers summing to 100 and never all 0; a candidate with traffic (a weight, a
header rule, blue/green) runs; exactly one slot is active; the preview Service never selects it; every
Service selects a running slot; every running pod template is matched by exactly one workload selector,
one autoscaler target and one PDB, and hook pods by none; the nginx canary Ingress matches the main one;
every metric in a shipped PromQL query is exported by the service.

Per upgrade: no workload selector changes; no Service changes its selector in the same upgrade as the pod
labels it selects; a promotion or flip changes no pod template (no pod restarts).

`python -m tests.chart.test_rollout_invariants` prints the transitions tested.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from loadtest.chart.release import merge_values
from tests.chart import helpers, service_metrics
from tests.chart.helpers import Manifest, label, selects

SLOT_LABEL = "model-api/slot"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
HEADER = "X-Canary"
GATEWAY = {
    "httpRoute": {"parentRefs": [{"name": "gateway", "namespace": "infra"}], "hostnames": ["api.example.com"]}
}
TWO_MODELS = {"slots": {"blue": {"model": {"version": "v1"}}, "green": {"model": {"version": "v2"}}}}


def rollout(**values: Any) -> dict[str, Any]:
    return {"rollout": merge_values(TWO_MODELS, values)}


# The upgrade sequence: each state is the values of one `helm upgrade`, on top of a shape below.
SEQUENCE: list[tuple[str, dict[str, Any]]] = [
    ("rolling", {}),
    ("canary 10 %", rollout(strategy="canary", active="blue", canary={"weight": 10, "header": HEADER})),
    ("canary 50 %", rollout(strategy="canary", active="blue", canary={"weight": 50, "header": HEADER})),
    ("promote (green active, weight 0)", rollout(strategy="canary", active="green", canary={"weight": 0})),
    ("blue/green (green active, blue preview)", rollout(strategy="blueGreen", active="green")),
    ("flip (blue active)", rollout(strategy="blueGreen", active="blue")),
    ("rolling again", {}),
]
# States whose only purpose is to move traffic: they must not restart a pod.
TRAFFIC_ONLY = {"promote (green active, weight 0)", "flip (blue active)"}


def replicas_split(blue: int, green: int, weight: int, active: str = "blue") -> dict[str, Any]:
    return {
        "slots": {"blue": {"replicaCount": blue}, "green": {"replicaCount": green}},
        "canary": {"weight": weight},
    }


# With router replicas the weight is the replica split: each canary state sets both.
REPLICAS_SEQUENCE: list[tuple[str, dict[str, Any]]] = [
    ("rolling", {}),
    ("canary 10 %", rollout(strategy="canary", active="blue", **replicas_split(9, 1, 10))),
    ("canary 50 %", rollout(strategy="canary", active="blue", **replicas_split(2, 2, 50))),
    (
        "promote (green active, weight 0)",
        rollout(strategy="canary", active="green", **replicas_split(0, 2, 0)),
    ),
    (
        "blue/green (green active, blue preview)",
        rollout(strategy="blueGreen", active="green", **replicas_split(2, 2, 0)),
    ),
    ("flip (blue active)", rollout(strategy="blueGreen", active="blue", **replicas_split(2, 2, 0))),
    ("rolling again", {}),
]
FORCED_MONITOR = {"serviceMonitor": {"enabled": True, "forceEnable": True}}
NGINX_INGRESS = {
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
        "hosts": [{"host": "api.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "api-tls", "hosts": ["api.example.com"]}],
    },
    "rollout": {"canary": {"router": "ingressNginx"}},
}
# Shapes the sequence runs on: (values files, values, sequence).
SHAPES: dict[str, tuple[tuple[str, ...], dict[str, Any], list[tuple[str, dict[str, Any]]]]] = {
    "gatewayAPI, Deployment": ((), GATEWAY, SEQUENCE),
    "gatewayAPI, StatefulSet": ((), {**GATEWAY, "workload": {"kind": "StatefulSet"}}, SEQUENCE),
    "gatewayAPI, prod values (HPA, PDB, ServiceMonitor, Ingress)": (
        ("values-prod.yaml",),
        {**GATEWAY, **FORCED_MONITOR},
        SEQUENCE,
    ),
    "gatewayAPI, KEDA on requests": (
        (),
        {
            **GATEWAY,
            "autoscaling": {"enabled": True, "engine": "keda", "targetRequestsPerSecond": 20},
            "pdb": {"enabled": True},
        },
        SEQUENCE,
    ),
    "gatewayAPI, a batch Job beside the slots": (
        (),
        {
            **GATEWAY,
            "batch": {
                "enabled": True,
                "input": "s3://data/iris.csv",
                "allowUnverifiedInput": True,
                "output": "s3://data/scored/",
            },
        },
        SEQUENCE,
    ),
    "ingressNginx, prod values": (("values-prod.yaml",), {**NGINX_INGRESS, **FORCED_MONITOR}, SEQUENCE),
    "replicas, Deployment": ((), {"rollout": {"canary": {"router": "replicas"}}}, REPLICAS_SEQUENCE),
}


def state_values(shape: str, state: dict[str, Any]) -> dict[str, Any]:
    return merge_values(SHAPES[shape][1], state)


def render_state(shape: str, state: dict[str, Any]) -> list[Manifest]:
    return helpers.render(state_values(shape, state), files=SHAPES[shape][0])


def transitions(shape: str) -> list[tuple[str, str]]:
    """Each consecutive pair of the sequence, forward then back."""
    names = [name for name, _ in SHAPES[shape][2]]
    forward = list(itertools.pairwise(names))
    return forward + [(after, before) for before, after in reversed(forward)]


def all_transitions() -> list[tuple[str, str, str]]:
    return [(shape, before, after) for shape in SHAPES for before, after in transitions(shape)]


def all_states() -> list[tuple[str, str]]:
    return [(shape, name) for shape in SHAPES for name, _ in SHAPES[shape][2]]


def state(shape: str, name: str) -> dict[str, Any]:
    return dict(SHAPES[shape][2])[name]


# ---- reading a render ----------------------------------------------------------------------------


def workloads(objects: Iterable[Manifest]) -> list[Manifest]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def runs(workload: Manifest) -> bool:
    """Whether the workload runs pods: replicas above 0, or left to an autoscaler (omitted)."""
    return workload["spec"].get("replicas", 1) > 0


def template_labels(workload: Manifest) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels") or {}


def other_pod_labels(objects: Iterable[Manifest]) -> list[tuple[str, dict[str, str]]]:
    """Pods that are not replicas: hook Pods, Job and CronJob pod templates."""
    found = []
    for o in objects:
        if o["kind"] == "Pod":
            found.append((label(o), o["metadata"].get("labels") or {}))
        elif o["kind"] == "Job":
            found.append((label(o), o["spec"]["template"]["metadata"].get("labels") or {}))
        elif o["kind"] == "CronJob":
            template = o["spec"]["jobTemplate"]["spec"]["template"]
            found.append((label(o), template["metadata"].get("labels") or {}))
    return found


def services(objects: Iterable[Manifest]) -> list[Manifest]:
    return [o for o in objects if o["kind"] == "Service" and not helpers.is_hook(o)]


def service_selected_slots(service: Manifest, objects: list[Manifest]) -> list[str]:
    return [
        template_labels(w).get(SLOT_LABEL, "")
        for w in workloads(objects)
        if runs(w) and selects(service["spec"].get("selector"), template_labels(w))
    ]


def values_of(shape: str, name: str) -> dict[str, Any]:
    return helpers.values_for(SHAPES[shape][0], state_values(shape, state(shape, name)))


# ---- per-render invariants -----------------------------------------------------------------------


def weight_problems(objects: list[Manifest]) -> list[str]:
    problems = []
    for route in helpers.find(objects, "HTTPRoute"):
        for r, rule in enumerate(route["spec"]["rules"]):
            refs = rule.get("backendRefs") or []
            where = f"{label(route)}: spec.rules[{r}].backendRefs"
            missing = [
                f"{where}[{i}] lacks {key}"
                for i, ref in enumerate(refs)
                for key in ("group", "kind", "port", "weight")
                if key not in ref
            ]
            problems += missing
            weights = [ref.get("weight") for ref in refs]
            if not all(isinstance(w, int) for w in weights) or sum(weights) != 100:
                problems.append(f"{where} weights {weights} are not integers summing to 100")
    for ingress in helpers.find(objects, "Ingress"):
        annotations = ingress["metadata"].get("annotations") or {}
        if annotations.get("nginx.ingress.kubernetes.io/canary") == "true":
            weight = annotations.get("nginx.ingress.kubernetes.io/canary-weight", "")
            total = annotations.get("nginx.ingress.kubernetes.io/canary-weight-total", "100")
            if not (weight.isdigit() and 0 <= int(weight) <= 100 and total == "100"):
                problems.append(
                    f"{label(ingress)}: canary-weight {weight!r} of {total!r} is no integer percent"
                )
    return problems


def candidate_problems(objects: list[Manifest], values: Mapping[str, Any]) -> list[str]:
    """A candidate that gets traffic runs: weight > 0, a header rule, or blue/green."""
    r = values.get("rollout") or {}
    strategy = r.get("strategy", "rolling")
    if strategy == "rolling":
        return []
    active = r.get("active", "blue")
    candidate = "green" if active == "blue" else "blue"
    canary = r.get("canary") or {}
    traffic = strategy == "blueGreen" or canary.get("weight", 0) > 0
    routed_by_header = any(
        ref["name"].endswith(f"-{candidate}")
        for route in helpers.find(objects, "HTTPRoute")
        for rule in route["spec"]["rules"]
        for ref in rule.get("backendRefs") or []
        if ref.get("weight", 0) > 0
    )
    running = {template_labels(w).get(SLOT_LABEL) for w in workloads(objects) if runs(w)}
    if (traffic or routed_by_header) and candidate not in running:
        return [f"candidate slot {candidate} gets traffic but runs no replica"]
    if active not in running:
        return [f"active slot {active} runs no replica"]
    return []


def active_slot_problems(objects: list[Manifest], values: Mapping[str, Any]) -> list[str]:
    r = values.get("rollout") or {}
    strategy = r.get("strategy", "rolling")
    main = helpers.get(services(objects), "Service", helpers.FULLNAME)
    selected = service_selected_slots(main, objects)
    problems = []
    replicas_router = strategy == "canary" and (r.get("canary") or {}).get("router") == "replicas"
    if strategy != "rolling" and not replicas_router and len(set(selected)) != 1:
        problems.append(f"{label(main)}: selects slots {selected}, not exactly the active one")
    for preview in helpers.find(objects, "Service", f"{helpers.FULLNAME}-preview"):
        both = set(service_selected_slots(preview, objects)) & set(selected)
        if both:
            problems.append(f"{label(preview)}: selects the active slot {sorted(both)}")
    return problems


def service_problems(objects: list[Manifest]) -> list[str]:
    return [
        f"{label(s)}: spec.selector {s['spec'].get('selector')} selects no running slot"
        for s in services(objects)
        if not service_selected_slots(s, objects)
    ]


def matching_problems(objects: list[Manifest]) -> list[str]:
    """Every running pod template: one workload selector, one autoscaler, one PDB (when any exist); pods
    that are no replicas (hooks, jobs): none of them, and no Service."""
    problems = []
    workload_list = workloads(objects)
    autoscaled = {
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects
        if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    autoscaler_targets = [
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects
        if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    ]
    pdbs = helpers.find(objects, "PodDisruptionBudget")
    for w in workload_list:
        if not runs(w):
            continue
        labels = template_labels(w)
        owners = [label(o) for o in workload_list if selects(o["spec"]["selector"], labels)]
        if owners != [label(w)]:
            problems.append(f"{label(w)}: pod template matched by workload selectors {owners}")
        if autoscaled and autoscaler_targets.count(w["metadata"]["name"]) != 1:
            problems.append(
                f"{label(w)}: targeted by {autoscaler_targets.count(w['metadata']['name'])} autoscalers"
            )
        matched = [label(p) for p in pdbs if selects(p["spec"]["selector"], labels)]
        if pdbs and len(matched) != 1:
            problems.append(f"{label(w)}: pod template matched by PDBs {matched}")
    for owner, labels in other_pod_labels(objects):
        matched = [label(o) for o in [*workload_list, *pdbs] if selects(o["spec"]["selector"], labels)] + [
            label(s) for s in services(objects) if selects(s["spec"].get("selector"), labels)
        ]
        if matched:
            problems.append(f"{owner}: its pods are matched by {matched}, like replicas")
    return problems


def canary_ingress_problems(objects: list[Manifest]) -> list[str]:
    canaries = [
        i
        for i in helpers.find(objects, "Ingress")
        if (i["metadata"].get("annotations") or {}).get("nginx.ingress.kubernetes.io/canary") == "true"
    ]
    if not canaries:
        return []
    main = helpers.get(objects, "Ingress", helpers.FULLNAME)

    def routes(ingress: Manifest) -> Any:
        spec = ingress["spec"]
        paths = [
            (rule.get("host"), p["path"], p["pathType"])
            for rule in spec.get("rules") or []
            for p in rule["http"]["paths"]
        ]
        return spec.get("ingressClassName"), sorted(paths), spec.get("tls")

    return [
        f"{label(c)}: class, hosts, paths or TLS differ from {label(main)}"
        for c in canaries
        if routes(c) != routes(main)
    ]


def render_problems(objects: list[Manifest], values: Mapping[str, Any]) -> list[str]:
    return (
        weight_problems(objects)
        + candidate_problems(objects, values)
        + active_slot_problems(objects, values)
        + service_problems(objects)
        + matching_problems(objects)
        + canary_ingress_problems(objects)
    )


@pytest.mark.parametrize(("shape", "name"), all_states(), ids=[f"{s} | {n}" for s, n in all_states()])
def test_invariants_hold_on_every_rollout_state(shape: str, name: str) -> None:
    objects = render_state(shape, state(shape, name))
    assert render_problems(objects, values_of(shape, name)) == []


def test_invariants_hold_on_every_shipped_values_set(objects: list[Manifest], value_set: str) -> None:
    assert render_problems(objects, helpers.values_for(helpers.VALUE_SETS[value_set])) == []


# ---- per-upgrade invariants ----------------------------------------------------------------------


def by_label(objects: Iterable[Manifest], kinds: tuple[str, ...]) -> dict[str, Manifest]:
    return {label(o): o for o in objects if o["kind"] in kinds}


def upgrade_problems(before: list[Manifest], after: list[Manifest], traffic_only: bool) -> list[str]:
    problems = []
    old_workloads, new_workloads = by_label(before, WORKLOAD_KINDS), by_label(after, WORKLOAD_KINDS)
    both = sorted(set(old_workloads) & set(new_workloads))
    for name in both:
        if old_workloads[name]["spec"]["selector"] != new_workloads[name]["spec"]["selector"]:
            problems.append(f"{name}: spec.selector changes (immutable: helm upgrade is refused)")
        if (
            traffic_only
            and old_workloads[name]["spec"]["template"] != new_workloads[name]["spec"]["template"]
        ):
            problems.append(f"{name}: spec.template changes in a traffic-only step (pods restart)")
    old_services, new_services = by_label(before, ("Service",)), by_label(after, ("Service",))
    for name in sorted(set(old_services) & set(new_services)):
        old_selector = old_services[name]["spec"].get("selector")
        new_selector = new_services[name]["spec"].get("selector")
        if old_selector == new_selector:
            continue
        for workload in both:
            old_labels = template_labels(old_workloads[workload])
            new_labels = template_labels(new_workloads[workload])
            selected = selects(old_selector, old_labels) or selects(new_selector, new_labels)
            if selected and old_labels != new_labels:
                problems.append(
                    f"{name}: spec.selector and the pod labels of {workload}, which it selects, change in "
                    "one upgrade: endpoints may drop to none while the pods roll"
                )
    return problems


@pytest.mark.parametrize(
    ("shape", "before", "after"),
    all_transitions(),
    ids=[f"{s} | {b} -> {a}" for s, b, a in all_transitions()],
)
def test_upgrade_keeps_selectors_and_moves_traffic_without_restarts(
    shape: str, before: str, after: str
) -> None:
    old = render_state(shape, state(shape, before))
    new = render_state(shape, state(shape, after))
    assert upgrade_problems(old, new, traffic_only=after in TRAFFIC_ONLY) == []


def test_the_sequence_goes_there_and_back() -> None:
    names = [name for name, _ in SEQUENCE]
    assert transitions("gatewayAPI, Deployment") == [
        *itertools.pairwise(names),
        *[(b, a) for a, b in reversed(list(itertools.pairwise(names)))],
    ]
    assert len(all_transitions()) == len(SHAPES) * 12


# ---- the checks can fail -------------------------------------------------------------------------


def test_the_upgrade_check_sees_a_selector_and_label_change_in_one_step() -> None:
    """A version label added to the pods and to the Service selector at once (the classic broken upgrade)."""
    before = render_state("gatewayAPI, Deployment", {})
    after = render_state("gatewayAPI, Deployment", {})  # a private copy
    workload = helpers.get(after, "Deployment")
    workload["spec"]["template"]["metadata"]["labels"]["version"] = "v2"
    helpers.get(after, "Service", helpers.FULLNAME)["spec"]["selector"]["version"] = "v2"
    assert upgrade_problems(before, after, traffic_only=False) == [
        f"Service/{helpers.FULLNAME}: spec.selector and the pod labels of "
        f"Deployment/{helpers.FULLNAME}, which it selects, change in one upgrade: "
        "endpoints may drop to none while the pods roll"
    ]


def test_the_render_check_sees_overlapping_selectors_and_bad_weights() -> None:
    objects = render_state("gatewayAPI, Deployment", state("gatewayAPI, Deployment", "canary 10 %"))
    green = helpers.get(objects, "Deployment", f"{helpers.FULLNAME}-green")
    green["spec"]["template"]["metadata"]["labels"][SLOT_LABEL] = "blue"
    route = helpers.get(objects, "HTTPRoute")
    route["spec"]["rules"][-1]["backendRefs"][0]["weight"] = 0
    problems = render_problems(objects, values_of("gatewayAPI, Deployment", "canary 10 %"))
    assert any("weights [0, 10]" in p for p in problems), problems
    assert any("matched by workload selectors" in p for p in problems), problems


# ---- the queries ---------------------------------------------------------------------------------

QUERY_VALUES = [
    merge_values(GATEWAY, rollout(strategy="canary", engine="argo", canary={"weight": 10})),
    merge_values(
        GATEWAY,
        {
            **rollout(strategy="canary", canary={"weight": 10}),
            "autoscaling": {
                "enabled": True,
                "engine": "keda",
                "targetRequestsPerSecond": 5,
                "targetInFlight": 2,
            },
        },
    ),
]


def shipped_queries(objects: list[Manifest]) -> dict[str, str]:
    queries = {}
    for o in helpers.find(objects, "AnalysisTemplate"):
        for metric in o["spec"]["metrics"]:
            queries[f"{label(o)}: metrics[{metric['name']}]"] = metric["provider"]["prometheus"]["query"]
    for o in helpers.find(objects, "ScaledObject"):
        for trigger in o["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                queries[f"{label(o)}: triggers[{trigger['name']}]"] = trigger["metadata"]["query"]
    return queries


def test_every_metric_in_a_shipped_query_is_exported_by_the_service() -> None:
    series = service_metrics.scraped_series()
    queries = {k: q for values in QUERY_VALUES for k, q in shipped_queries(helpers.render(values)).items()}
    unknown = {where: service_metrics.promql_metric_names(q) - series for where, q in queries.items()}
    assert {where: names for where, names in unknown.items() if names} == {}
    assert len(queries) == 2 + 2 * 2  # the analysis' two metrics, two triggers per running slot


def describe_transitions() -> str:
    lines = []
    for shape in SHAPES:
        lines.append(f"{shape}:")
        lines += [f"  {before} -> {after}" for before, after in transitions(shape)]
    return "\n".join(lines)


def test_print_the_transitions_tested(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\nupgrade transitions tested ({len(all_transitions())}):\n{describe_transitions()}")


if __name__ == "__main__":
    print(describe_transitions())


def test_the_shipped_canary_example_keeps_the_invariants() -> None:
    """values-canary.yaml, the rehearsal's example: gatewayAPI at weight 20, a header, two model versions."""
    files = ("values-canary.yaml",)
    objects = helpers.render(files=files)
    assert render_problems(objects, helpers.values_for(files)) == []
    rules = helpers.get(objects, "HTTPRoute")["spec"]["rules"]
    weights = {ref["name"]: ref["weight"] for ref in rules[-1]["backendRefs"]}
    header = rules[0]["matches"][0]["headers"][0]
    versions = {
        w["metadata"]["name"]: template_labels(w).get("model-api/model-version") for w in workloads(objects)
    }
    assert (weights, header["name"], versions) == (
        {f"{helpers.FULLNAME}-blue": 80, f"{helpers.FULLNAME}-green": 20},
        "X-Canary",
        {f"{helpers.FULLNAME}-blue": "1.0.0", f"{helpers.FULLNAME}-green": "2.0.0"},
    )
    assert helpers.find(objects, "AnalysisTemplate") and helpers.find(objects, "ServiceMonitor")
