"""What each metric pipeline shows the autoscaler, and when: the delays between the load and the number.

``MetricPipeline`` holds the delays as parameters with their defaults:

- CPU and memory (Resource metrics) come from metrics-server: the usage averaged over its
  ``metrics_server_window`` (15 s, its ``--metric-resolution``) before the sync.
- The service's own series (Pods metrics through Prometheus Adapter, KEDA's Prometheus triggers) come from
  Prometheus, which scrapes each pod every ``scrape_interval`` (30 s: the chart's
  ``serviceMonitor.interval``). The newest sample is on average half an interval old (``sample_age``). A
  ``rate(...[w])`` needs two samples in its window and averages the counter between the first and the
  last of them, a span of ``w - scrape_interval`` (the rate window, ``[1m]`` in the chart's adapter rule
  and its ``autoscaling.keda.rateWindow``, is read from the rendered query); a gauge (requests in flight)
  is the newest sample. A pod's series exists from its start: a pod that is Running but not Ready reports
  zero traffic, and the controller averages that zero in for a Pods metric (groupPods ignores readiness
  for everything but CPU).
- KEDA's operator polls its triggers every ``pollingInterval`` (the ScaledObject's, default 30 s) for its
  own 0 <-> 1 step; the HPA it made reads the same queries at every 15 s sync through KEDA's metrics server.

``ServiceCosts`` is the load model shared by the replay and the strategy comparison: the Service sends
requests to Ready pods only, evenly; a pod's busy fraction is its requests/s x CPU ms per request over its
capacity (one core for the service's single worker, or its CPU limit if lower); queueing inflates the
measured low-load latency as an M/M/1 queue does, ``latency / (1 - rho)``; in-flight requests per pod are
requests/s x that latency (Little's law).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

METRICS_SERVER_WINDOW = 15.0  # metrics-server --metric-resolution
SCRAPE_INTERVAL = 30.0  # the chart's serviceMonitor.interval
BUSY_CAP = 0.99  # an overloaded pod's queue grows without bound; its in-flight count is read at this load
ONE_CORE_MILLICORES = 1000


@dataclass(frozen=True)
class MetricPipeline:
    metrics_server_window: float = METRICS_SERVER_WINDOW
    scrape_interval: float = SCRAPE_INTERVAL

    def __post_init__(self) -> None:
        for name in ("metrics_server_window", "scrape_interval"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")

    @property
    def sample_age(self) -> float:
        """The mean age of the newest scraped sample when a query runs."""
        return self.scrape_interval / 2

    def rate_span(self, rate_window: float) -> float:
        """The span between the first and last sample inside a rate() window (what the rate averages)."""
        return max(rate_window - self.scrape_interval, self.scrape_interval)

    def describe(self) -> str:
        return (
            f"metrics-server window {self.metrics_server_window:g} s; Prometheus scrape every "
            f"{self.scrape_interval:g} s (newest sample {self.sample_age:g} s old on average)"
        )


@dataclass(frozen=True)
class ServiceCosts:
    """The service's measured costs: CPU per request, latency and p95 at low load, one pod's capacity."""

    cpu_ms_per_request: float
    latency_ms: float | None = None  # mean latency at low load (needed for in-flight metrics)
    p95_ms: float | None = None  # p95 at low load (needed to judge a p95 goal)
    capacity_millicores: float = ONE_CORE_MILLICORES
    idle_millicores: float = 0.0

    @property
    def throughput(self) -> float:
        """The most requests/s one pod completes (its CPU capacity over the CPU per request)."""
        return self.capacity_millicores / self.cpu_ms_per_request if self.cpu_ms_per_request else math.inf

    def busy_fraction(self, rps_per_pod: float) -> float:
        return rps_per_pod * self.cpu_ms_per_request / self.capacity_millicores

    def in_flight(self, rps_per_pod: float) -> float:
        """Requests in flight in one pod serving `rps_per_pod` (Little's law with queueing)."""
        if self.latency_ms is None:
            raise ValueError("in-flight metrics need the measured latency per request (latency_ms)")
        rho = min(self.busy_fraction(rps_per_pod), BUSY_CAP)
        return rps_per_pod * self.latency_ms / 1000.0 / (1.0 - rho)

    def p95(self, rps_per_pod: float) -> float:
        """The p95 latency of a pod at this load (M/M/1 inflation; infinite at or above saturation)."""
        if self.p95_ms is None:
            raise ValueError("a p95 goal needs the p95 measured at low load (p95_ms)")
        rho = self.busy_fraction(rps_per_pod)
        return math.inf if rho >= 1 else self.p95_ms / (1.0 - rho)

    def rps_per_pod_for_in_flight(self, in_flight: float) -> float:
        """The requests/s per pod at which a pod holds `in_flight` requests (inverse of `in_flight`)."""
        low, high = 0.0, self.capacity_millicores / self.cpu_ms_per_request * BUSY_CAP
        if self.in_flight(high) <= in_flight:
            return high
        for _ in range(60):  # bisection: in_flight() increases with the load
            middle = (low + high) / 2
            low, high = (middle, high) if self.in_flight(middle) < in_flight else (low, middle)
        return low


DEFAULT_PIPELINE = MetricPipeline()
