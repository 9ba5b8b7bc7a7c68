"""The live HPA during a load run: connect the watcher, wait for its metrics, turn its rows into the
report's replica series and a list of the problems it saw. Nothing here imports locust: the cluster test
drives the load in a subprocess (`python -m loadtest run --watch-hpa`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loadtest.autoscaling.watcher import HpaWatcher, problems
from loadtest.chart.release import Manifest
from loadtest.cluster.context import ClusterError
from loadtest.probe import WaitTimeout, wait_until
from loadtest.report.verdicts import Scaling, ScalingPoint

METRICS_TIMEOUT_S = 180  # metrics-server needs a scrape or two after the pods start


def connect_watcher(
    namespace: str | None,
    release_name: str,
    context: str | None = None,
    objects: Iterable[Manifest] | None = None,
) -> HpaWatcher:
    """The watcher of the release's HPA; names from the rendered `objects` when given (HpaWatcher.connect)."""
    try:
        return HpaWatcher.connect(namespace, release_name, context=context, objects=objects)
    except Exception as exc:
        raise ClusterError(f"cannot watch the HPA of {release_name}: {type(exc).__name__}: {exc}") from None


def wait_for_metrics(
    watcher: HpaWatcher, timeout: float = METRICS_TIMEOUT_S, poll: float = 5.0
) -> dict[str, Any]:
    """Sample until the HPA exists and has CPU metrics; ClusterError listing what is wrong after `timeout`,
    at once when there is no HPA at all."""
    seen: list[str] = []

    def metrics_ready() -> dict[str, Any] | None:
        row = watcher.sample()
        seen[:] = problems(row)
        if seen and not row.get("hpa_found"):
            raise ClusterError("the HPA is not ready to scale:\n  " + "\n  ".join(seen))
        return None if seen else row

    try:
        return wait_until(metrics_ready, timeout=timeout, interval=poll, what="the HPA's CPU metrics")
    except WaitTimeout:
        raise ClusterError("the HPA is not ready to scale:\n  " + "\n  ".join(seen)) from None


def live_scaling(timeline: Sequence[Mapping[str, Any]], description: str) -> Scaling | None:
    """The watcher's columns in the timeline as the report's replica series (None when it saw no HPA)."""
    points = [
        ScalingPoint(
            t=float(row["t"]),
            desired=int(row["hpa_desired_replicas"]),
            ready=int(row.get("workload_ready_replicas") or 0),
            utilization=row.get("hpa_cpu_utilization"),
            target=row.get("hpa_cpu_target"),
        )
        for row in timeline
        if row.get("hpa_desired_replicas") is not None
    ]
    if not points:
        return None
    last = next(row for row in reversed(timeline) if row.get("hpa_desired_replicas") is not None)
    return Scaling(
        source="live",
        points=points,
        description=description,
        min_replicas=last.get("hpa_min_replicas"),
        max_replicas=last.get("hpa_max_replicas"),
    )


def problems_seen(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each distinct problem the watcher's rows showed during the run, with the time it began."""
    first_seen: dict[str, float] = {}
    for row in timeline:
        if "hpa_found" in row:
            for problem in problems(row):
                first_seen.setdefault(problem, float(row["t"]))
    return [f"from t={t:.0f} s: {problem}" for problem, t in first_seen.items()]
