"""Prometheus metrics, defined once for the process; the per-request ones as plain numbers read at scrape."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import ClassVar

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Per request: counts by route and status, latency by route, requests in flight. Kept in plain Python
# numbers (see RouteMetrics) and turned into these families at scrape time by _HttpCollector.
REQUESTS_HELP = "HTTP requests answered, by route template and status."
LATENCY_HELP = "Time from request start to response sent, by route template (probes and /metrics excluded)."
IN_FLIGHT_HELP = "Requests being handled now (probes and /metrics excluded)."
# Prediction requests take well under a millisecond; pi requests up to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PREDICTIONS_HELP = "Rows classified, by predicted class."
MODEL_INFO = Gauge(
    "model_api_model_info", "1 for the model artifact loaded and serving.", ["name", "version"]
)
MODEL_LOAD_SECONDS = Gauge("model_api_model_load_seconds", "Seconds it took to load and warm up the model.")
MODEL_READY = Gauge(
    "model_api_model_ready", "1 when the model is loaded and the server is not shutting down."
)
PI_WORKER_JOBS = Gauge(
    "model_api_pi_worker_jobs", "Pi computations handed to the pi worker process and not finished yet."
)
PI_WORKER_DEATHS = Counter(
    "model_api_pi_worker_deaths",
    "Pi worker processes that died unexpectedly (e.g. OOM-killed); the next pi request starts a new one.",
)

LOG_LINES_DROPPED = Counter(
    "model_api_log_lines_dropped",
    "Access-log lines dropped because stderr (a pipe) stayed full: the log collector is not reading.",
)


class RouteMetrics:
    """Requests by status and the latency histogram of one route template, as plain Python numbers.

    prometheus_client's label children take a lock on every update; four of them per request cost about a
    tenth of a whole classify request. The event loop is the only writer here and /metrics is answered on
    the same loop, so the numbers need no lock: _HttpCollector reads them when Prometheus scrapes.
    """

    __slots__ = ("buckets", "by_status", "latency_sum", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # non-cumulative; the last one is +Inf
        self.latency_sum = 0.0

    def count(self, status: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds: le semantics
        self.latency_sum += seconds


class HttpMetrics:
    """The per-request numbers of the process: one RouteMetrics per route template, requests in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.routes: dict[str, RouteMetrics] = {}

    def route(self, template: str) -> RouteMetrics:
        """The template's RouteMetrics, shared by every app of the process (as label children are)."""
        found = self.routes.get(template)
        if found is None:
            found = self.routes[template] = RouteMetrics(template)
        return found


HTTP = HttpMetrics()


class PredictionCounter:
    """Counts predicted rows per class name (plain numbers, like RouteMetrics; exported as
    model_api_predictions_total)."""

    _counts: ClassVar[dict[str, int]] = {}  # by class name, for the whole process

    def __init__(self, class_names: tuple[str, ...]) -> None:
        self._names = class_names
        for name in class_names:
            self._counts.setdefault(name, 0)

    def add(self, labels: np.ndarray) -> None:
        if len(labels) == 1:  # the common case, without numpy
            self._counts[self._names[int(labels[0])]] += 1
            return
        for index, count in enumerate(np.bincount(labels, minlength=len(self._names)).tolist()):
            if count:
                self._counts[self._names[index]] += count


_BOUNDS = [*(floatToGoString(bound) for bound in LATENCY_BUCKETS), "+Inf"]


class _HttpCollector(Collector):
    """Builds the request, latency, in-flight and prediction families from the plain numbers at scrape."""

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("model_api_requests", REQUESTS_HELP, labels=["route", "status"])
        latency = HistogramMetricFamily("model_api_request_duration_seconds", LATENCY_HELP, labels=["route"])
        for template, route in list(HTTP.routes.items()):
            for status, count in list(route.by_status.items()):
                requests.add_metric([template, str(status)], count)
            cumulative = zip(_BOUNDS, accumulate(route.buckets), strict=True)
            latency.add_metric([template], list(cumulative), route.latency_sum)
        predictions = CounterMetricFamily("model_api_predictions", PREDICTIONS_HELP, labels=["class_name"])
        for name, count in list(PredictionCounter._counts.items()):
            predictions.add_metric([name], count)
        yield requests
        yield latency
        yield GaugeMetricFamily("model_api_requests_in_flight", IN_FLIGHT_HELP, value=HTTP.in_flight)
        yield predictions


REGISTRY.register(_HttpCollector())
