"""Wiring layer: the references between rendered objects resolve — selectors select the pods, ports and
probe paths exist where they point, the HPA, Ingress, PDB, NetworkPolicy, ServiceMonitor and the test hook
aim at objects of this release, and every ConfigMap/Secret/volume reference names something real.

Most broken installs are here: each object is schema-valid on its own, and the release still does nothing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from model_api.openapi import openapi_document
from model_api.settings import Settings, SettingsError, env_name

from loadtest.chart import localpod
from tests.chart import helpers
from tests.chart.helpers import Manifest, label, merge_values, selects

SELECTOR_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance")
SERVICE_SETTINGS = {env_name(name) for name in Settings.__dataclass_fields__}
ANY_ADDRESS = {"0.0.0.0", "::", ""}


def pod_labels(objects: list[Manifest]) -> dict[str, str]:
    return helpers.workload(objects)["spec"]["template"]["metadata"].get("labels") or {}


def release_services(objects: list[Manifest]) -> list[Manifest]:
    return [s for s in helpers.find(objects, "Service") if not helpers.is_hook(s)]


def port_exists(port: int | str, container: Manifest) -> bool:
    """Whether a Service targetPort or probe port names or numbers one of the container's ports."""
    ports = container.get("ports") or []
    if isinstance(port, str) and not port.isdigit():
        return any(p.get("name") == port for p in ports)
    return any(p["containerPort"] == int(port) for p in ports)


def pod_containers(objects: list[Manifest]) -> list[Manifest]:
    return helpers.workload(objects)["spec"]["template"]["spec"]["containers"]


@functools.cache
def served_paths(config_items: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """The paths the service serves with these settings: its own /openapi.json document, built offline."""
    return frozenset(openapi_document(Settings.from_env(dict(config_items)))["paths"])


def rendered_config(objects: list[Manifest]) -> dict[str, str]:
    return {
        k: str(v) for k, v in (helpers.get(objects, "ConfigMap", helpers.FULLNAME).get("data") or {}).items()
    }


def test_workload_selector_is_the_selector_labels_and_matches_its_pods(objects: list[Manifest]) -> None:
    workload = helpers.workload(objects)
    selector = workload["spec"]["selector"]
    expected = {key: pod_labels(objects).get(key) for key in SELECTOR_LABELS}
    assert selector == {"matchLabels": expected}, (
        f"{label(workload)}: spec.selector must be exactly the selector labels {SELECTOR_LABELS} of the pods "
        "(selectors are immutable; extra labels break upgrades)"
    )
    assert selects(selector, pod_labels(objects)), (
        f"{label(workload)}: spec.selector does not select its template"
    )
    assert all(expected.values()), f"{label(workload)}: spec.template.metadata.labels miss {SELECTOR_LABELS}"


def test_services_select_the_pods_and_not_the_test_hook(objects: list[Manifest]) -> None:
    hook_labels = [h["metadata"].get("labels") or {} for h in helpers.find(objects, "Pod")]
    for service in release_services(objects):
        selector = service["spec"].get("selector") or {}
        assert selector and selects(selector, pod_labels(objects)), (
            f"{label(service)}: spec.selector {selector} does not select the pods' labels "
            f"{pod_labels(objects)}"
        )
        assert not any(selects(selector, labels) for labels in hook_labels), (
            f"{label(service)}: spec.selector also selects the helm test Pod: it would receive traffic"
        )


def test_service_target_ports_exist_on_the_container(objects: list[Manifest]) -> None:
    missing = [
        f"{label(service)}: spec.ports[{i}].targetPort {port.get('targetPort', port['port'])!r} is no port "
        "of "
        "any container"
        for service in release_services(objects)
        for i, port in enumerate(service["spec"]["ports"])
        if not any(port_exists(port.get("targetPort", port["port"]), c) for c in pod_containers(objects))
    ]
    assert missing == [], "\n".join(missing)


def probes_of(container: Manifest) -> list[tuple[str, Manifest]]:
    return [
        (key, container[key])
        for key in ("startupProbe", "readinessProbe", "livenessProbe")
        if container.get(key)
    ]


def test_probe_ports_exist_on_their_container(objects: list[Manifest]) -> None:
    missing = [
        f"{label(helpers.workload(objects))}: containers[{c['name']}].{key}.{handler}.port "
        f"{probe[handler]['port']!r} "
        "is not a port of the container"
        for c in pod_containers(objects)
        for key, probe in probes_of(c)
        for handler in ("httpGet", "tcpSocket", "grpc")
        if handler in probe and not port_exists(probe[handler]["port"], c)
    ]
    assert missing == [], "\n".join(missing)


def test_probe_paths_are_served_by_the_service(objects: list[Manifest]) -> None:
    paths = served_paths(tuple(sorted(rendered_config(objects).items())))
    unserved = [
        f"{label(helpers.workload(objects))}: containers[{c['name']}].{key}.httpGet.path "
        f"{probe['httpGet'].get('path')!r}"
        f" is not served (the service's /openapi.json lists {sorted(paths)})"
        for c in pod_containers(objects)
        for key, probe in probes_of(c)
        if "httpGet" in probe and urlsplit(probe["httpGet"].get("path", "/")).path not in paths
    ]
    assert unserved == [], "\n".join(unserved)


def test_readiness_and_liveness_use_the_services_health_endpoints(objects: list[Manifest]) -> None:
    container = helpers.main_container(objects)
    actual = {key: (probe.get("httpGet") or {}).get("path") for key, probe in probes_of(container)}
    expected = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    assert actual == expected, (
        f"{label(helpers.workload(objects))}: containers[{container['name']}] probe paths"
    )


def test_config_map_holds_only_settings_the_service_reads(objects: list[Manifest]) -> None:
    config = rendered_config(objects)
    unknown = sorted(set(config) - SERVICE_SETTINGS)
    assert unknown == [], (
        f"ConfigMap/{helpers.FULLNAME}: data keys {unknown} are no setting of the service (typo?)"
    )
    try:
        Settings.from_env(config)
    except SettingsError as error:
        pytest.fail(f"ConfigMap/{helpers.FULLNAME}: data: the service would refuse to start: {error}")


def test_kubelet_built_environment_is_valid_settings(objects: list[Manifest], tmp_path: Path) -> None:
    """With service links on, the kubelet adds <SERVICE>_PORT=tcp://... for every Service: a Service named
    model-api would feed MODEL_API_PORT=tcp://... to the service unless the pod turns links off. The
    mounted files (the API key) exist, as in the pod."""
    container = helpers.main_container(objects)
    env, moved = helpers.local_pod_env(objects, tmp_path, "external")
    env.update(moved)
    if helpers.workload(objects)["spec"]["template"]["spec"].get("enableServiceLinks", True):
        env = {**localpod.service_link_env(objects), **env}
    try:
        settings = Settings.from_env(env)
    except SettingsError as error:
        pytest.fail(
            f"{label(helpers.workload(objects))}: containers[{container['name']}]: the environment the "
            f"kubelet "
            f"builds is refused by the service: {error} (spec.template.spec.enableServiceLinks?)"
        )
    http = next(p["containerPort"] for p in container.get("ports") or [] if p.get("name") == "http")
    assert settings.port == http, (
        f"{label(helpers.workload(objects))}: the kubelet-built environment makes the service listen on "
        f"{settings.port}, not on ports[http].containerPort {http}"
    )


def test_service_listens_where_the_pod_says(objects: list[Manifest]) -> None:
    config, container = rendered_config(objects), helpers.main_container(objects)
    http = [p for p in container.get("ports") or [] if p.get("name") == "http"]
    assert len(http) == 1, (
        f"{label(helpers.workload(objects))}: containers[{container['name']}].ports has no 'http'"
    )
    settings = Settings.from_env(config)
    assert settings.port == http[0]["containerPort"], (
        f"ConfigMap/{helpers.FULLNAME}: data.MODEL_API_PORT {settings.port} != "
        f"containers[{container['name']}]"
        f".ports[http].containerPort {http[0]['containerPort']}"
    )
    assert config.get("MODEL_API_HOST", "") in ANY_ADDRESS, (
        f"ConfigMap/{helpers.FULLNAME}: data.MODEL_API_HOST {config['MODEL_API_HOST']!r}: the kubelet's "
        "probes and "
        "the Service reach the pod IP, so the service must listen on all addresses"
    )


def test_hpa_targets_this_release_workload(objects: list[Manifest]) -> None:
    workload = helpers.workload(objects)
    for hpa in helpers.find(objects, "HorizontalPodAutoscaler"):
        expected = {k: workload[k] for k in ("apiVersion", "kind")} | {"name": workload["metadata"]["name"]}
        assert hpa["spec"]["scaleTargetRef"] == expected, f"{label(hpa)}: spec.scaleTargetRef"
        assert "replicas" not in workload["spec"], (
            f"{label(workload)}: spec.replicas is set while {label(hpa)} scales it: "
            "every upgrade resets the scale"
        )
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], (
            f"{label(hpa)}: spec.minReplicas > maxReplicas"
        )


def test_hpa_resource_metrics_have_requests(objects: list[Manifest]) -> None:
    """Utilization targets are percentages of the request: without one the HPA cannot compute them."""
    requests = (helpers.main_container(objects).get("resources") or {}).get("requests") or {}
    missing = [
        f"{label(hpa)}: spec.metrics[{i}] targets {m['resource']['name']} utilization, "
        "but the container requests none"
        for hpa in helpers.find(objects, "HorizontalPodAutoscaler")
        for i, m in enumerate(hpa["spec"].get("metrics") or [])
        if m["type"] == "Resource"
        and m["resource"]["target"]["type"] == "Utilization"
        and m["resource"]["name"] not in requests
    ]
    assert missing == [], "\n".join(missing)


def service_port_exists(service: Manifest, port: Manifest) -> bool:
    if "name" in port:
        return any(p.get("name") == port["name"] for p in service["spec"]["ports"])
    return any(p["port"] == port.get("number") for p in service["spec"]["ports"])


def test_ingress_backends_exist(objects: list[Manifest]) -> None:
    services = {s["metadata"]["name"]: s for s in release_services(objects)}
    for ingress in helpers.find(objects, "Ingress"):
        for r, rule in enumerate(ingress["spec"].get("rules") or []):
            for p, path in enumerate(rule["http"]["paths"]):
                backend = path["backend"]["service"]
                where = f"{label(ingress)}: spec.rules[{r}].http.paths[{p}].backend.service"
                assert backend["name"] in services, (
                    f"{where}.name {backend['name']!r} is no Service of the release"
                )
                assert service_port_exists(services[backend["name"]], backend["port"]), (
                    f"{where}.port {backend['port']} is not a port of Service/{backend['name']}"
                )


def test_ingress_tls_hosts_have_rules(objects: list[Manifest]) -> None:
    for ingress in helpers.find(objects, "Ingress"):
        rule_hosts = {rule.get("host") for rule in ingress["spec"].get("rules") or []}
        tls_hosts = {host for tls in ingress["spec"].get("tls") or [] for host in tls.get("hosts") or []}
        assert tls_hosts <= rule_hosts, (
            f"{label(ingress)}: spec.tls hosts {sorted(tls_hosts - rule_hosts)} have no rule"
        )


def test_pdbs_select_the_pods(objects: list[Manifest]) -> None:
    unselected = [
        f"{label(pdb)}: spec.selector does not select the pods' labels"
        for pdb in helpers.find(objects, "PodDisruptionBudget")
        if not selects(pdb["spec"].get("selector"), pod_labels(objects))
    ]
    assert unselected == [], "\n".join(unselected)


def policy_admits(policy: Manifest, labels: dict[str, str], port: Manifest) -> bool:
    """Whether a NetworkPolicy lets a pod with `labels` in the release namespace reach `port` of its pods."""
    for rule in policy["spec"].get("ingress") or []:
        ports = rule.get("ports")
        port_ok = not ports or any(
            p.get("port") in (port["name"], port["containerPort"], None) for p in ports
        )
        sources = rule.get("from")
        source_ok = not sources or any(
            "podSelector" in s and "namespaceSelector" not in s and selects(s["podSelector"], labels)
            for s in sources
        )
        if port_ok and source_ok:
            return True
    return False


def http_port(objects: list[Manifest]) -> Manifest:
    return next(p for p in helpers.main_container(objects)["ports"] if p.get("name") == "http")


def hook_pod_labels(objects: list[Manifest]) -> dict[str, str]:
    return helpers.helm_test_pod(objects)["metadata"].get("labels") or {}


def service_policies(objects: list[Manifest]) -> list[Manifest]:
    """The NetworkPolicies of the service's pods: every one but the helm test pod's."""
    hooks = [h["metadata"].get("labels") or {} for h in helpers.find(objects, "Pod")]
    return [
        p
        for p in helpers.find(objects, "NetworkPolicy")
        if not any(selects(p["spec"]["podSelector"], labels) for labels in hooks)
    ]


def network_policy_enabled(value_set: str) -> bool:
    return bool((helpers.values_for(helpers.VALUE_SETS[value_set]).get("networkPolicy") or {}).get("enabled"))


def test_network_policies_select_the_pods_and_open_the_http_port(objects: list[Manifest]) -> None:
    for policy in service_policies(objects):
        assert selects(policy["spec"]["podSelector"], pod_labels(objects)), (
            f"{label(policy)}: spec.podSelector does not select the pods' labels"
        )
        opened = [
            p.get("port")
            for rule in policy["spec"].get("ingress") or []
            for p in rule.get("ports") or [{"port": None}]
        ]
        assert {None, "http", http_port(objects)["containerPort"]} & set(opened), (
            f"{label(policy)}: spec.ingress[*].ports {opened} never open the http port: "
            "the Service gets nothing"
        )


def test_network_policies_let_the_helm_test_pod_in(objects: list[Manifest]) -> None:
    hooks = helpers.find(objects, "Pod")
    for policy in service_policies(objects):
        for hook in hooks:
            assert policy_admits(policy, hook["metadata"].get("labels") or {}, http_port(objects)), (
                f"{label(policy)}: spec.ingress has no rule admitting {label(hook)}'s labels: "
                "`helm test` would time out"
            )


def test_every_pod_is_covered_by_a_network_policy(objects: list[Manifest], value_set: str) -> None:
    """checkov CKV2_K8S_6: with networkPolicy.enabled, no pod of the release (test hook included) is left
    without a policy; without it, the chart renders none."""
    policies = helpers.find(objects, "NetworkPolicy")
    owners = helpers.pod_owners(objects)
    uncovered = [
        label(owner)
        for owner in owners
        if not any(selects(p["spec"]["podSelector"], helpers.pod_template_labels(owner)) for p in policies)
    ]
    expected = [] if network_policy_enabled(value_set) else [label(o) for o in owners]
    assert uncovered == expected, f"{value_set}: pods no NetworkPolicy selects"


def service_target_port(objects: list[Manifest]) -> int:
    """The container port the release Service's http port reaches (what egress rules see after DNAT)."""
    service = helpers.get(objects, "Service", helpers.FULLNAME)
    target = next(p for p in service["spec"]["ports"] if p["name"] == "http")["targetPort"]
    ports = helpers.main_container(objects)["ports"]
    return next(p["containerPort"] for p in ports if target in (p.get("name"), p["containerPort"]))


def test_helm_test_pod_policy_allows_only_the_service_and_dns(
    objects: list[Manifest], value_set: str
) -> None:
    """issue 9: the hook pod takes no ingress and reaches only the service's pods (on their port) and DNS."""
    if not network_policy_enabled(value_set):
        assert [p for p in helpers.find(objects, "NetworkPolicy")] == []
        return
    hook_labels = hook_pod_labels(objects)
    policy = next(
        p for p in helpers.find(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"], hook_labels)
    )
    spec = policy["spec"]
    reaches = sorted(
        (
            "service pods"
            if all(
                "podSelector" in peer
                and "namespaceSelector" not in peer
                and selects(peer["podSelector"], pod_labels(objects))
                for peer in rule.get("to") or [{}]
            )
            else "kube-dns"
            if all(
                (peer.get("podSelector") or {}).get("matchLabels") == {"k8s-app": "kube-dns"}
                for peer in rule.get("to") or [{}]
            )
            else "elsewhere",
            tuple(sorted((p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports") or [])),
        )
        for rule in spec.get("egress") or []
    )
    actual = (sorted(spec["policyTypes"]), spec.get("ingress") or [], reaches)
    expected = (
        ["Egress", "Ingress"],
        [],
        [
            ("kube-dns", (("TCP", 53), ("UDP", 53))),
            ("service pods", (("TCP", service_target_port(objects)),)),
        ],
    )
    assert actual == expected, f"{label(policy)}: spec.policyTypes / spec.ingress / spec.egress"


def external_secret(value_set: str) -> tuple[str, str] | None:
    """(name, key) of the Secret the values declare as made outside the chart (apiKey.existingSecret)."""
    api_key = helpers.values_for(helpers.VALUE_SETS[value_set]).get("apiKey") or {}
    if not api_key.get("existingSecret"):
        return None
    return api_key["existingSecret"], api_key.get("existingSecretKey", "api-key")


def rendered_keys(objects: list[Manifest], kind: str, name: str) -> set[str] | None:
    found = [o for o in helpers.find(objects, kind, name) if not helpers.is_hook(o)]
    if not found:
        return None
    return set(found[0].get("data") or {}) | set(found[0].get("stringData") or {})


def reference_problems(objects: list[Manifest], external: tuple[str, str] | None) -> list[str]:
    problems = []
    for owner in helpers.pod_owners(objects):
        for c in helpers.containers(helpers.pod_spec(owner)):
            where = f"{label(owner)}: containers[{c['name']}]"
            for i, source in enumerate(c.get("envFrom") or []):
                kind, ref = (
                    ("ConfigMap", source["configMapRef"])
                    if "configMapRef" in source
                    else ("Secret", source["secretRef"])
                )
                if rendered_keys(objects, kind, ref["name"]) is None and not ref.get("optional"):
                    problems.append(f"{where}.envFrom[{i}]: {kind}/{ref['name']} is not rendered")
            for item in c.get("env") or []:
                for ref_key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    ref = (item.get("valueFrom") or {}).get(ref_key)
                    if ref is None or ref.get("optional"):
                        continue
                    keys = rendered_keys(objects, kind, ref["name"])
                    if (ref["name"], ref["key"]) == external and kind == "Secret" and keys is None:
                        continue
                    if keys is None or ref["key"] not in keys:
                        problems.append(
                            f"{where}.env[{item['name']}].valueFrom.{ref_key}: {kind}/{ref['name']} "
                            f"key {ref['key']!r} "
                            "is neither rendered nor the declared apiKey.existingSecret"
                        )
    return problems


def test_config_and_secret_references_resolve(objects: list[Manifest], value_set: str) -> None:
    problems = reference_problems(objects, external_secret(value_set))
    assert problems == [], "\n".join(problems)


def test_volume_mounts_have_volumes(objects: list[Manifest], value_set: str) -> None:
    external = external_secret(value_set)
    problems = []
    for owner in helpers.pod_owners(objects):
        spec = helpers.pod_spec(owner)
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        claims = {t["metadata"]["name"] for t in owner["spec"].get("volumeClaimTemplates") or []}
        for c in helpers.containers(spec):
            problems += [
                f"{label(owner)}: containers[{c['name']}].volumeMounts[{m['name']}]: "
                "no volume or claim template of that name"
                for m in c.get("volumeMounts") or []
                if m["name"] not in volumes and m["name"] not in claims
            ]
        for name, volume in volumes.items():
            for key, kind, field in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")):
                if key not in volume:
                    continue
                keys = rendered_keys(objects, kind, volume[key][field])
                if keys is None and kind == "Secret" and external and volume[key][field] == external[0]:
                    keys = {external[1]}
                items = {item["key"] for item in volume[key].get("items") or []}
                if keys is None or not items <= keys:
                    problems.append(
                        f"{label(owner)}: volumes[{name}].{key}: {kind}/{volume[key][field]} "
                        f"keys {sorted(items)} are neither rendered nor the declared apiKey.existingSecret"
                    )
    assert problems == [], "\n".join(problems)


WRITABLE_VOLUME_TYPES = ("emptyDir", "ephemeral", "persistentVolumeClaim")


def test_read_only_root_filesystem_leaves_a_writable_tmp(objects: list[Manifest]) -> None:
    """The service writes only to /tmp (the contract); the root filesystem is read-only (policy), so /tmp
    must be a writable volume."""
    workload, container = helpers.workload(objects), helpers.main_container(objects)
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes") or []}
    tmp = [
        m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp" and not m.get("readOnly")
    ]
    assert tmp and any(kind in volumes.get(tmp[0]["name"], {}) for kind in WRITABLE_VOLUME_TYPES), (
        f"{label(workload)}: containers[{container['name']}].volumeMounts: no writable emptyDir at /tmp "
        "under a read-only root filesystem"
    )


def test_statefulset_service_name_is_a_headless_service_of_the_release(objects: list[Manifest]) -> None:
    for statefulset in helpers.find(objects, "StatefulSet"):
        name = statefulset["spec"].get("serviceName")
        services = helpers.find(release_services(objects), "Service", name)
        assert services, f"{label(statefulset)}: spec.serviceName {name!r} is no Service of the release"
        assert services[0]["spec"].get("clusterIP") == "None", (
            f"Service/{name}: spec.clusterIP must be None (headless)"
        )
        assert selects(services[0]["spec"].get("selector"), pod_labels(objects)), (
            f"Service/{name}: spec.selector"
        )


def test_service_monitors_scrape_a_named_service_port(objects: list[Manifest]) -> None:
    paths = served_paths(tuple(sorted(rendered_config(objects).items())))
    for monitor in helpers.find(objects, "ServiceMonitor"):
        targets = [
            s
            for s in release_services(objects)
            if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert targets, f"{label(monitor)}: spec.selector selects no Service of the release"
        names = {p.get("name") for s in targets for p in s["spec"]["ports"]}
        for i, endpoint in enumerate(monitor["spec"]["endpoints"]):
            assert endpoint.get("port") in names, (
                f"{label(monitor)}: spec.endpoints[{i}].port {endpoint.get('port')!r} not in {names}"
            )
            assert endpoint.get("path", "/metrics") in paths, (
                f"{label(monitor)}: spec.endpoints[{i}].path is not served"
            )
        namespace = monitor["metadata"].get("namespace", helpers.NAMESPACE)
        if namespace != helpers.NAMESPACE:
            match_names = (monitor["spec"].get("namespaceSelector") or {}).get("matchNames") or []
            assert helpers.NAMESPACE in match_names, (
                f"{label(monitor)}: spec.namespaceSelector misses {helpers.NAMESPACE}"
            )


def test_spread_and_anti_affinity_select_the_pods(objects: list[Manifest]) -> None:
    spec = helpers.workload(objects)["spec"]["template"]["spec"]
    terms: list[tuple[str, Any]] = [
        (f"topologySpreadConstraints[{i}].labelSelector", c.get("labelSelector"))
        for i, c in enumerate(spec.get("topologySpreadConstraints") or [])
    ]
    anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
    for kind in (
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ):
        for i, term in enumerate(anti.get(kind) or []):
            terms.append(
                (
                    f"affinity.podAntiAffinity.{kind}[{i}]",
                    term.get("podAffinityTerm", term).get("labelSelector"),
                )
            )
    unselected = [path for path, selector in terms if not selects(selector, pod_labels(objects))]
    assert unselected == [], (
        f"{label(helpers.workload(objects))}: spec.template.spec.{unselected} select no pod"
    )


def test_pods_use_a_rendered_or_declared_service_account(objects: list[Manifest], value_set: str) -> None:
    values = helpers.values_for(helpers.VALUE_SETS[value_set])
    creates = (values.get("serviceAccount") or {}).get("create", True)
    for owner in helpers.pod_owners(objects):
        name = helpers.pod_spec(owner).get("serviceAccountName", "default")
        if creates:
            assert helpers.find(objects, "ServiceAccount", name), (
                f"{label(owner)}: serviceAccountName {name!r} is not the ServiceAccount the chart creates"
            )


def test_helm_test_hook_targets_the_release_service(objects: list[Manifest]) -> None:
    hook = helpers.helm_test_pod(objects)
    command = [
        *hook["spec"]["containers"][0].get("command", []),
        *hook["spec"]["containers"][0].get("args", []),
    ]
    urls = [part for part in command if part.startswith("http://")]
    assert len(urls) == 1, f"{label(hook)}: containers[0].command has no http:// URL: {command}"
    target = urlsplit(urls[0])
    services = {s["metadata"]["name"]: s for s in release_services(objects)}
    host = target.hostname.split(".")[0] if target.hostname else ""
    assert host in services, (
        f"{label(hook)}: containers[0].command URL host {target.hostname!r} is no Service"
    )
    ports = [p["port"] for p in services[host]["spec"]["ports"]]
    assert (target.port or 80) in ports, (
        f"{label(hook)}: containers[0].command URL port {target.port} not in Service/{host} {ports}"
    )


def test_helm_test_hook_runs_to_completion_and_can_run_again(objects: list[Manifest]) -> None:
    """`helm test` waits for the Pod to succeed (a restarting Pod never does) and creates it anew on the
    next run (a Pod left behind makes that create fail with AlreadyExists)."""
    hook = helpers.helm_test_pod(objects)
    policies = str(hook["metadata"]["annotations"].get("helm.sh/hook-delete-policy", "")).split(",")
    actual = {
        "spec.restartPolicy": hook["spec"].get("restartPolicy", "Always"),
        "before-hook-creation in helm.sh/hook-delete-policy": "before-hook-creation" in policies,
    }
    expected = {"spec.restartPolicy": "Never", "before-hook-creation in helm.sh/hook-delete-policy": True}
    assert actual == expected, f"{label(hook)}: metadata.annotations / spec.restartPolicy"


# --- batch pods stay out of everything that serves -------------------------------------------------------

EVERYTHING_ON = {
    "batch": {
        "enabled": True,
        "input": "s3://data/iris.csv",
        "allowUnverifiedInput": True,
        "output": "s3://data/scored/",
    },
    "autoscaling": {"enabled": True},
    "pdb": {"enabled": True},
    "networkPolicy": {"enabled": True},  # its ingress admits the chart's clients by a pod label
    "serviceMonitor": {"enabled": True, "forceEnable": True},
    "workload": {"kind": "StatefulSet"},
}


def pod_selectors(objects: list[Manifest]) -> dict[str, Any]:
    """Every selector of the release that picks pods (or the Services a ServiceMonitor scrapes), by place."""
    selectors: dict[str, Any] = {}
    for obj in objects:
        where, spec = label(obj), obj.get("spec") or {}
        if (
            obj["kind"] == "Service"
            or obj["kind"] in (*helpers.POD_KINDS, "PodDisruptionBudget")
            or obj["kind"] == "ServiceMonitor"
        ):
            selectors[f"{where}: spec.selector"] = spec.get("selector")
        elif obj["kind"] == "HorizontalPodAutoscaler":  # counts the pods its target's selector picks
            target = helpers.get(objects, spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"])
            selectors[f"{where}: spec.scaleTargetRef selector"] = target["spec"]["selector"]
        elif obj["kind"] == "NetworkPolicy":
            if spec.get(
                "ingress"
            ):  # a policy opening ports to the pods it selects (the batch one opens none)
                selectors[f"{where}: spec.podSelector"] = spec.get("podSelector")
            for i, rule in enumerate(spec.get("ingress") or []):
                for j, peer in enumerate(rule.get("from") or []):
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        selectors[f"{where}: spec.ingress[{i}].from[{j}].podSelector"] = peer["podSelector"]
    return selectors


@pytest.mark.parametrize("schedule", ["", "0 2 * * *"], ids=["Job", "CronJob"])
def test_batch_pods_are_selected_by_nothing_that_serves(schedule: str) -> None:
    """issue 12: a Service, PDB, NetworkPolicy ingress rule, HPA or ServiceMonitor that picked up the batch
    pods would send them traffic, count them as replicas or let them through; the workload's own selector
    would adopt them."""
    values = merge_values(EVERYTHING_ON, {"batch": {"schedule": schedule}})
    objects = helpers.render(values)
    batch = next(o for o in objects if o["kind"] in helpers.JOB_KINDS)
    labels = helpers.pod_template_labels(batch)
    selected_by = [where for where, selector in pod_selectors(objects).items() if selects(selector, labels)]
    kinds = {where.split("/")[0] for where in pod_selectors(objects)}
    expected_kinds = {
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "HorizontalPodAutoscaler",
    }
    assert (selected_by, expected_kinds | {"NetworkPolicy"} <= kinds) == ([], True), (
        f"{label(batch)}: pod labels {labels} selected"
    )


def test_batch_pods_are_covered_by_a_network_policy() -> None:
    objects = helpers.render(EVERYTHING_ON)
    policies = helpers.find(objects, "NetworkPolicy")
    uncovered = [
        label(o)
        for o in helpers.pod_owners(objects)
        if not any(selects(p["spec"]["podSelector"], helpers.pod_template_labels(o)) for p in policies)
    ]
    assert uncovered == [], "pods no NetworkPolicy selects with networkPolicy.enabled"


def test_the_selector_check_sees_a_selected_pod() -> None:
    """The check itself can fail: the serving pods' labels are selected by the Service."""
    objects = helpers.render(EVERYTHING_ON)
    selected_by = [w for w, s in pod_selectors(objects).items() if selects(s, pod_labels(objects))]
    assert f"Service/{helpers.FULLNAME}: spec.selector" in selected_by
