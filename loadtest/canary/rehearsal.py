"""The rehearsal itself: slots, nginx, Prometheus, locust, then the analysis at each step.

Everything starts from the rendered objects: each slot's pod through LocalPod (command, env, probes), the
router through nginx, the ServiceMonitor through Prometheus. Only the candidate's rehearsal faults
(`MODEL_API_REHEARSAL_*`) and, while the chart does not set it, `MODEL_API_MODEL_VERSION` are added.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent

from loadtest.canary import analysis, nginx, prometheus, share, topology, traffic
from loadtest.chart import release
from loadtest.chart.localpod import LocalPod, free_port
from loadtest.load import runner
from loadtest.load.shapes import SoakShape
from loadtest.report.load_run import LoadRun

SCRAPE_INTERVAL = "1s"
READY_TIMEOUT_S = 60.0


class RehearsalError(RuntimeError):
    """The rehearsal could not run; the message says which step and why."""


@dataclass(frozen=True)
class Options:
    duration_s: float = 30.0
    users: int = 6
    user_rps: float = 8.0
    header_fraction: float = 0.2  # of the users, those that send the canary header
    confidence: float = 0.99
    candidate: str | None = None  # slot name; default: the slot the header rule sends to
    candidate_error_rate: float = 0.0
    candidate_latency_ms: float = 0.0
    args: Mapping[str, str] = field(default_factory=dict)
    steps: int | None = None  # measurements of an unbounded (background) analysis metric
    header_value: str | None = None  # for a header rule that is a regular expression


@dataclass
class Result:
    topology: topology.Topology
    options: Options
    shares: list[share.Share]
    header: tuple[str, str] | None
    header_answers: int
    header_to_candidate: int
    answers: list[share.Answer]
    measurements: dict[str, list[analysis.Measurement]]
    metric_phases: dict[str, str]
    verdict: str
    queries: dict[str, str]
    args: dict[str, str]
    versions: dict[str, str]
    notes: list[str]
    problems: list[str]  # contract violations: the rehearsal fails with these
    load: LoadRun
    nginx_config: str
    prometheus_config: str
    scraped: list[tuple[dict[str, str], float]]  # prediction requests per target-label set, as scraped

    @property
    def header_honoured(self) -> float | None:
        return self.header_to_candidate / self.header_answers if self.header_answers else None

    @property
    def candidate_share(self) -> share.Share:
        return next(s for s in self.shares if s.slot == self.topology.candidate.name)


def _normalized(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def resolve_args(
    objects: Sequence[Mapping[str, Any]],
    template: Mapping[str, Any],
    topo: topology.Topology,
    versions: Mapping[str, str],
    given: Mapping[str, str],
) -> tuple[dict[str, str], list[str]]:
    """The template's args: its defaults, then a rendered Rollout's analysis args, then `given`; an arg
    still without a value is filled from the candidate when its name says what it is (service, version,
    slot, namespace) and reported as such."""
    values = {k: v for k, v in analysis.template_args(template).items() if v is not None}
    for rollout in release.find(list(objects), "Rollout"):
        canary = (rollout.get("spec", {}).get("strategy") or {}).get("canary") or {}
        blocks = [canary.get("analysis") or {}] + [
            s["analysis"] for s in canary.get("steps") or [] if "analysis" in s
        ]
        for block in blocks:
            values.update({a["name"]: str(a["value"]) for a in block.get("args") or [] if "value" in a})
    values.update(given)
    own = [n for n, behind in topo.services.items() if behind == (topo.candidate,)]
    theirs = [n for n, behind in topo.services.items() if behind == (topo.stable,)]
    notes = []
    for name in analysis.template_args(template):
        if name in values:
            continue
        key = _normalized(name)
        stable = "stable" in key
        slot = topo.stable if stable else topo.candidate
        guess = None
        if "service" in key and (theirs if stable else own):
            guess = (theirs if stable else own)[0]
        elif "version" in key:
            guess = versions[slot.name]
        elif "slot" in key:
            guess = slot.name
        elif "namespace" in key:
            guess = release.DEFAULT_NAMESPACE
        if guess is not None:
            values[name] = guess
            notes.append(
                f"analysis arg {name} = {guess!r} (the {'stable' if stable else 'candidate'} slot's)"
            )
    return values, notes


def _start_slots(
    stack: contextlib.ExitStack,
    objects: Sequence[Mapping[str, Any]],
    topo: topology.Topology,
    options: Options,
) -> tuple[dict[str, LocalPod], dict[str, str], list[str]]:
    pods, versions, notes = {}, {}, []
    for slot in topo.slots:
        overrides: dict[str, str] = {}
        version = slot.version
        if version is None:
            version = slot.name
            overrides[topology.VERSION_ENV] = version
            notes.append(
                f"{slot.workload_name} renders no {topology.VERSION_ENV}; the rehearsal set it to {version!r}"
            )
        if slot is topo.candidate:
            if options.candidate_error_rate:
                overrides["MODEL_API_REHEARSAL_ERROR_RATE"] = str(options.candidate_error_rate)
            if options.candidate_latency_ms:
                overrides["MODEL_API_REHEARSAL_LATENCY_MS"] = str(options.candidate_latency_ms)
        pod = LocalPod.from_release(
            topology.slot_objects(list(objects), slot), port=free_port(), env_overrides=overrides
        )
        stack.enter_context(pod)
        pods[slot.name] = pod
        versions[slot.name] = version
    for slot_name, pod in pods.items():
        try:
            pod.wait_ready(timeout=READY_TIMEOUT_S)
        except Exception as error:
            init = topo.slot(slot_name).workload["spec"]["template"]["spec"].get("initContainers") or []
            hint = (
                f" (its pod has init containers {[c['name'] for c in init]}, which the rehearsal "
                "does not run: a model fetched from model.uri is missing locally)"
                if init
                else ""
            )
            raise RehearsalError(f"slot {slot_name} did not become ready{hint}: {error}") from None
    return pods, versions, notes


def _measure(
    prom: prometheus.PrometheusProcess,
    metrics: Sequence[analysis.Metric],
    started: float,
    load_s: float,
    steps: int | None,
) -> dict[str, list[analysis.Measurement]]:
    measured: dict[str, list[analysis.Measurement]] = {}
    for metric in metrics:
        rows = []
        for at in analysis.measurement_times(metric, load_s, steps):
            try:
                value: Any = analysis.prometheus_result(prom.query(metric.query, started + at))
                phase, message = analysis.measurement_phase(metric, value)
            except (prometheus.PrometheusError, analysis.ConditionError) as error:
                value, phase, message = None, analysis.ERROR, str(error)
            rows.append(analysis.Measurement(at, value, phase, message))
        measured[metric.name] = rows
    return measured


def _scraped_requests(
    prom: prometheus.PrometheusProcess, objects: Sequence[Mapping[str, Any]]
) -> list[tuple[dict[str, str], float]]:
    """Prediction requests counted by each slot, as Prometheus labelled them through the ServiceMonitor's
    podTargetLabels: proof that every series splits by slot and version."""
    labels = sorted(
        {
            prometheus.sanitize(label)
            for monitor in release.find(list(objects), "ServiceMonitor")
            for label in monitor["spec"].get("podTargetLabels") or []
        }
    )
    by = ", ".join(["service", *labels])
    query = f'sum by ({by}) (model_api_requests_total{{route!~"/metrics|/healthz|/readyz"}})'
    try:
        data = prom.query(query, time.time())
    except prometheus.PrometheusError:
        return []
    return [(sample["metric"], float(sample["value"][1])) for sample in data["result"]]


def rehearse(objects: Sequence[Mapping[str, Any]], options: Options, workdir: Path) -> Result:
    """Run the rehearsal on the rendered `objects`; every process is stopped before it returns."""
    topo = topology.read_topology(objects, options.candidate)
    template = analysis.merge_templates(release.find(list(objects), "AnalysisTemplate"))
    if not release.find(list(objects), "ServiceMonitor"):
        raise RehearsalError("no ServiceMonitor rendered: nothing tells Prometheus what to scrape")
    notes = list(topo.router.notes)
    with contextlib.ExitStack() as stack:
        pods, versions, slot_notes = _start_slots(stack, objects, topo, options)
        notes += slot_notes
        args, arg_notes = resolve_args(objects, template, topo, versions, options.args)
        notes += arg_notes
        metrics = analysis.metrics_of(template, args)
        ports = {name: pod.port for name, pod in pods.items()}
        used = {s for s, _ in topo.router.weighted} | {r.service for r in topo.router.header_rules}
        backends = {
            s: [(ports[slot.name], slot.replicas) for slot in topo.services[s] if slot.replicas > 0]
            for s in used
        }
        empty = sorted(s for s, servers in backends.items() if not servers)
        if empty:
            raise RehearsalError(f"the router sends to Service/{empty[0]}, whose slots all run 0 replicas")
        nginx_dir = workdir / "nginx"
        nginx_dir.mkdir(parents=True, exist_ok=True)
        proxy_port = free_port()
        nginx_config = nginx.config_text(topo.router, backends, listen_port=proxy_port, workdir=nginx_dir)
        stack.enter_context(nginx.NginxProcess(nginx_config, proxy_port, nginx_dir))
        jobs = prometheus.scrape_configs(objects, topo, ports, interval=SCRAPE_INTERVAL)
        targets = sum(len(group["targets"]) for job in jobs for group in job["static_configs"])
        if not targets:
            raise RehearsalError("the ServiceMonitor selects no Service port in front of a slot")
        prom_dir = workdir / "prometheus"
        prom_dir.mkdir(parents=True, exist_ok=True)
        prometheus_config = prometheus.config_text(jobs, SCRAPE_INTERVAL)
        prom = stack.enter_context(prometheus.PrometheusProcess(prometheus_config, free_port(), prom_dir))
        prom.wait_scraped(targets)

        rule = topo.header_target()
        header = None
        if rule is not None:
            if not rule.regex or options.header_value:
                header = (rule.name, options.header_value or rule.value)
            else:
                notes.append(
                    f"header rule {rule.name} ~ {rule.value!r} is a regex: pass --header-value to test it"
                )
        if options.header_fraction <= 0:
            header = None
        header_users = max(1, round(options.users * options.header_fraction)) if header else 0
        log = traffic.AnswerLog({f"{nginx.LOOPBACK}:{port}": name for name, port in ports.items()})
        api_key = next(iter(pods.values())).env.get("MODEL_API_API_KEY") or None
        users = traffic.users(
            log, header=header, user_rps=options.user_rps, header_weight=header_users,
            weighted_weight=options.users - header_users, api_key=api_key,
        )  # fmt: skip
        shape = SoakShape(users=options.users, duration=options.duration_s, spawn_rate=options.users)
        started = log.origin = time.time()
        load = runner.run_load(f"http://{nginx.LOOPBACK}:{proxy_port}", shape, users)
        gevent.sleep(2 * analysis.seconds(SCRAPE_INTERVAL))  # the last scrapes land before the queries
        measurements = _measure(prom, metrics, started, options.duration_s, options.steps)
        scraped = _scraped_requests(prom, objects)
    metric_phases = {
        m.name: analysis.metric_phase(m, [x.phase for x in measurements[m.name]]) for m in metrics
    }
    answers = log.answers
    problems = []
    if not answers:
        problems.append("no request was answered through nginx")
    if log.missing_version_ok:
        problems.append(
            f"{log.missing_version_ok} successful responses carry no {traffic.VERSION_HEADER} header: "
            "the service must name its model version on every prediction response"
        )
    wrong = [a for a in answers if a.version and a.slot and a.version != versions[a.slot]]
    if wrong:
        problems.append(
            f"{len(wrong)} responses from slot {wrong[0].slot} name version {wrong[0].version!r}, "
            f"not the slot's {versions[wrong[0].slot]!r}"
        )
    if len(set(versions.values())) < len(versions):
        problems.append(
            f"the slots serve the same model version {versions}: the share per version cannot tell "
            "them apart "
            "(give each slot its own model.version)"
        )
    if any(a.slot is None for a in answers):
        problems.append(f"{sum(a.slot is None for a in answers)} responses came from no known slot")
    header_answers = [a for a in answers if a.route == share.HEADER]
    return Result(
        topology=topo,
        options=options,
        shares=share.shares(
            share.uncensored(answers, options.duration_s), topo.expected_share(), versions, options.confidence
        ),
        header=header,
        header_answers=len(header_answers),
        header_to_candidate=sum(a.slot == topo.candidate.name for a in header_answers),
        answers=answers,
        measurements=measurements,
        metric_phases=metric_phases,
        verdict=analysis.verdict(metric_phases),
        queries={m.name: m.query for m in metrics},
        args=args,
        versions=versions,
        notes=notes,
        problems=problems,
        load=load,
        nginx_config=nginx_config,
        prometheus_config=prometheus_config,
        scraped=scraped,
    )
