"""What the rendered release says about a canary: the slots (one Deployment each), the Services in front of
them, and the router (an HTTPRoute, a canary Ingress, or replica counts behind one Service).

Everything is read from the rendered objects (DESIGN: the manifest is the single source of truth): a
Service reaches the slots whose pod labels its selector matches, the slot label is the selector key whose
value differs between the slots' Deployments, and the candidate is the slot the header rule sends to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.chart import localpod, release

Manifest = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
VERSION_ENV = "MODEL_API_MODEL_VERSION"
INGRESS_CANARY = "nginx.ingress.kubernetes.io/canary"
INGRESS_ANNOTATION = "nginx.ingress.kubernetes.io/"


class TopologyError(ValueError):
    """The rendered objects do not describe a canary the rehearsal can run; the message names the object."""


@dataclass(frozen=True)
class Slot:
    """One rollout slot: its workload, pod labels, replica count and the model version it serves."""

    name: str
    workload: Manifest
    pod_labels: dict[str, str]
    replicas: int
    version: str | None  # as rendered (MODEL_API_MODEL_VERSION), None when the pod template does not set it

    @property
    def workload_name(self) -> str:
        return self.workload["metadata"]["name"]


@dataclass(frozen=True)
class HeaderRule:
    """Requests whose header `name` matches `value` (exactly, or as a regular expression) go to `service`."""

    name: str
    value: str
    service: str
    regex: bool = False


@dataclass(frozen=True)
class Router:
    """How traffic reaches the slots: weighted Services plus header rules that take precedence."""

    kind: str  # gatewayAPI | ingressNginx | replicas
    source: str  # the object it was read from, e.g. HTTPRoute/model-api
    weighted: tuple[tuple[str, int], ...]  # (Service name, weight)
    header_rules: tuple[HeaderRule, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def total_weight(self) -> int:
        return sum(weight for _, weight in self.weighted)


@dataclass(frozen=True)
class Topology:
    slots: tuple[Slot, ...]
    slot_label: str | None
    services: dict[str, tuple[Slot, ...]]  # Service name → the slots its selector matches
    router: Router
    candidate: Slot
    stable: Slot

    def slot(self, name: str) -> Slot:
        return next(s for s in self.slots if s.name == name)

    def expected_share(self) -> dict[str, float]:
        """Slot name → the fraction of un-headed requests the router should send it. Behind one Service the
        split follows replica counts, as kube-proxy's choice among ready endpoints does on average."""
        share = dict.fromkeys((s.name for s in self.slots), 0.0)
        total = self.router.total_weight
        for service, weight in self.router.weighted:
            behind = self.services[service]
            replicas = sum(s.replicas for s in behind)
            for slot in behind:
                share[slot.name] += (weight / total) * (slot.replicas / replicas) if replicas else 0.0
        return share

    def header_target(self) -> HeaderRule | None:
        """The first header rule that sends to the candidate (the one the rehearsal exercises)."""
        return next((r for r in self.router.header_rules if self.candidate in self.services[r.service]), None)


def _selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _workloads(objects: Iterable[Manifest]) -> list[Manifest]:
    return [o for o in objects if o.get("kind") in WORKLOAD_KINDS and not release.is_hook(o)]


def slot_objects(objects: Sequence[Manifest], slot: Slot) -> list[Manifest]:
    """The release as one slot's pod sees it: every object but the other workloads (LocalPod runs one)."""
    return [o for o in objects if o.get("kind") not in WORKLOAD_KINDS] + [slot.workload]


def _rendered_version(objects: Sequence[Manifest], workload: Manifest) -> str | None:
    containers = workload["spec"]["template"]["spec"]["containers"]
    container = next((c for c in containers if c["name"] == "model-api"), containers[0])
    try:
        env = localpod.container_env(objects, container)
    except localpod.LocalPodError:
        return None  # an external Secret, say: LocalPod names the problem when the slot starts
    return env.get(VERSION_ENV) or None


def _replicas(objects: Sequence[Manifest], workload: Manifest) -> int:
    """The workload's replicas, or those of an Argo Rollout that runs its pod template (workloadRef)."""
    for rollout in release.find(objects, "Rollout"):
        ref = rollout["spec"].get("workloadRef") or {}
        if (ref.get("kind"), ref.get("name")) == (workload["kind"], workload["metadata"]["name"]):
            return int(rollout["spec"].get("replicas", 1))
    return int(workload["spec"].get("replicas", 1))


def read_slots(objects: Sequence[Manifest]) -> tuple[list[Slot], str | None]:
    workloads = _workloads(objects)
    if len(workloads) < 2:
        names = [f"{w['kind']}/{w['metadata']['name']}" for w in workloads]
        raise TopologyError(
            f"a canary needs two slot workloads (blue and green); the release renders {names or 'none'}: "
            "set rollout.strategy=canary and give the candidate slot a replica"
        )
    selectors = [w["spec"]["selector"].get("matchLabels") or {} for w in workloads]
    differing = sorted(
        {k for sel in selectors for k in sel if len({s.get(k) for s in selectors}) == len(workloads)}
    )
    slot_label = differing[0] if differing else None
    slots = []
    for workload, selector in zip(workloads, selectors, strict=True):
        labels = dict(workload["spec"]["template"]["metadata"].get("labels") or {})
        name = selector[slot_label] if slot_label else workload["metadata"]["name"]
        replicas = _replicas(objects, workload)
        slots.append(Slot(name, workload, labels, replicas, _rendered_version(objects, workload)))
    return slots, slot_label


def read_services(objects: Iterable[Manifest], slots: Sequence[Slot]) -> dict[str, tuple[Slot, ...]]:
    services = {}
    for service in release.find(objects, "Service"):
        selector = (service.get("spec") or {}).get("selector") or {}
        services[service["metadata"]["name"]] = tuple(
            s for s in slots if _selector_matches(selector, s.pod_labels)
        )
    return services


def router_from_httproute(route: Manifest) -> Router:
    """Gateway API HTTPRoute: the rule with header matches is the header rule, the one without is weighted."""
    name = f"HTTPRoute/{route['metadata']['name']}"
    weighted: list[tuple[str, int]] | None = None
    rules: list[HeaderRule] = []
    notes: list[str] = []
    for index, rule in enumerate(route["spec"].get("rules") or []):
        refs = [r for r in rule.get("backendRefs") or [] if r.get("kind", "Service") == "Service"]
        if not refs:
            raise TopologyError(f"{name}: rules[{index}] has no Service backendRefs")
        headers = [h for m in rule.get("matches") or [] for h in m.get("headers") or []]
        paths = {(m.get("path") or {}).get("value", "/") for m in rule.get("matches") or []} or {"/"}
        if paths != {"/"}:
            notes.append(f"{name}: rules[{index}] matches paths {sorted(paths)}; the rehearsal sends to /api")
        if headers:
            live = [r for r in refs if int(r.get("weight", 1)) > 0]
            if len(live) != 1:
                raise TopologyError(
                    f"{name}: rules[{index}] matches a header but sends to {len(live)} backends; "
                    "the header rule must name exactly one"
                )
            for header in headers:
                regex = header.get("type", "Exact") == "RegularExpression"
                rules.append(HeaderRule(header["name"], header["value"], live[0]["name"], regex))
        elif weighted is None:
            weighted = [(r["name"], int(r.get("weight", 1))) for r in refs]
        else:
            notes.append(f"{name}: rules[{index}] is a second rule without header matches; ignored")
    if weighted is None:
        raise TopologyError(f"{name}: no rule without header matches: nothing carries the weighted traffic")
    if sum(w for _, w in weighted) <= 0:
        raise TopologyError(f"{name}: every backendRef weight is 0; the route would answer 500")
    return Router("gatewayAPI", name, tuple(weighted), tuple(rules), tuple(notes))


def _ingress_service(ingress: Manifest) -> str:
    spec = ingress["spec"]
    backends = [
        path["backend"]
        for rule in spec.get("rules") or []
        for path in (rule.get("http") or {}).get("paths") or []
    ]
    if spec.get("defaultBackend"):
        backends.append(spec["defaultBackend"])
    names = {b["service"]["name"] for b in backends if "service" in b}
    if len(names) != 1:
        raise TopologyError(
            f"Ingress/{ingress['metadata']['name']}: backends name Services {sorted(names)}; "
            "the rehearsal expects one"
        )
    return names.pop()


def router_from_ingresses(main: Manifest, canary: Manifest) -> Router:
    """ingress-nginx canary annotations, with ingress-nginx's precedence: by-header (always/never, or the
    exact -value, or the -pattern) before by-weight."""
    notes = canary["metadata"].get("annotations") or {}

    def annotation(key: str) -> str | None:
        return notes.get(INGRESS_ANNOTATION + key)

    name = f"Ingress/{canary['metadata']['name']}"
    stable, candidate = _ingress_service(main), _ingress_service(canary)
    weight = int(annotation("canary-weight") or 0)
    total = int(annotation("canary-weight-total") or 100)
    if not 0 <= weight <= total:
        raise TopologyError(f"{name}: canary-weight {weight} is outside 0..canary-weight-total ({total})")
    rules: list[HeaderRule] = []
    header = annotation("canary-by-header")
    if header:
        value, pattern = annotation("canary-by-header-value"), annotation("canary-by-header-pattern")
        if value:
            rules.append(HeaderRule(header, value, candidate))
        elif pattern:
            rules.append(HeaderRule(header, pattern, candidate, regex=True))
        else:
            rules += [HeaderRule(header, "always", candidate), HeaderRule(header, "never", stable)]
    weighted = tuple((s, w) for s, w in ((stable, total - weight), (candidate, weight)))
    return Router("ingressNginx", name, weighted, tuple(rules))


def read_router(objects: Sequence[Manifest], services: Mapping[str, Sequence[Slot]]) -> Router:
    routes = release.find(objects, "HTTPRoute")
    if len(routes) > 1:
        raise TopologyError(f"{len(routes)} HTTPRoutes rendered; the rehearsal routes one")
    if routes:
        return router_from_httproute(routes[0])
    ingresses = release.find(objects, "Ingress")
    canaries = [
        i for i in ingresses if (i["metadata"].get("annotations") or {}).get(INGRESS_CANARY) == "true"
    ]
    mains = [i for i in ingresses if i not in canaries]
    if canaries:
        if len(canaries) != 1 or len(mains) != 1:
            raise TopologyError(
                f"{len(mains)} main and {len(canaries)} canary Ingresses rendered; "
                "ingress-nginx pairs one each"
            )
        return router_from_ingresses(mains[0], canaries[0])
    # Replica split: the Service that reaches every slot carries all the traffic.
    spanning = sorted(n for n, behind in services.items() if len(behind) > 1)
    if not spanning:
        raise TopologyError(
            "no HTTPRoute, no canary Ingress and no Service selecting more than one slot: "
            "nothing routes traffic to the candidate (rollout.canary.router)"
        )
    return Router("replicas", f"Service/{spanning[0]}", ((spanning[0], 100),))


def read_topology(objects: Sequence[Manifest], candidate: str | None = None) -> Topology:
    """The canary as rendered. `candidate` (a slot name) overrides the choice from the router."""
    slots, slot_label = read_slots(objects)
    services = read_services(objects, slots)
    router = read_router(objects, services)
    for service, _ in router.weighted:
        if not services.get(service):
            raise TopologyError(f"{router.source} sends to Service/{service}, which selects no slot's pods")
    for rule in router.header_rules:
        if not services.get(rule.service):
            raise TopologyError(
                f"{router.source}: the {rule.name} rule sends to Service/{rule.service}, "
                "which selects no slot's pods"
            )
    for service, weight in router.weighted:
        idle = [s.name for s in services[service] if s.replicas < 1]
        if weight > 0 and len(idle) == len(services[service]):
            raise TopologyError(
                f"{router.source} gives Service/{service} weight {weight} but its slot {idle} "
                "runs 0 replicas "
                "(rollout.slots.<slot>.replicaCount)"
            )
    names = [s.name for s in slots]
    if candidate is None:
        targeted = [s for r in router.header_rules for s in services[r.service] if r.value != "never"]
        if targeted:
            candidate = targeted[0].name
        else:  # no header rule: the slot with the smaller expected share
            provisional = Topology(tuple(slots), slot_label, services, router, slots[0], slots[1])
            share = provisional.expected_share()
            candidate = min(names, key=lambda n: (share[n], -names.index(n)))
    if candidate not in names:
        raise TopologyError(f"candidate slot {candidate!r} is not one of the rendered slots {names}")
    chosen = next(s for s in slots if s.name == candidate)
    stable = next(s for s in slots if s.name != candidate)
    return Topology(tuple(slots), slot_label, services, router, chosen, stable)
