"""Prometheus metrics, defined once for the process; the app binds label children once per route."""

from __future__ import annotations

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "model_api_requests", "HTTP requests answered, by route template and status.", ["route", "status"]
)
LATENCY = Histogram(
    "model_api_request_duration_seconds",
    "Time from request start to response sent, by route template (probes and /metrics excluded).",
    ["route"],
    # Prediction requests take well under a millisecond; pi requests up to seconds.
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
IN_FLIGHT = Gauge(
    "model_api_requests_in_flight", "Requests being handled now (probes and /metrics excluded)."
)
PREDICTIONS = Counter(
    "model_api_predictions", "Rows classified, by predicted class (classifiers only).", ["class_name"]
)
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


class RouteMetrics:
    """Label children for one route template, resolved once: `.labels()` costs a dict lookup and a lock."""

    __slots__ = ("_by_status", "latency", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        self.latency = LATENCY.labels(template)
        self._by_status: dict[int, object] = {}

    def count(self, status: int) -> None:
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = REQUESTS.labels(self.template, str(status))
        child.inc()


class PredictionCounter:
    """Counts predicted rows per class name."""

    def __init__(self, class_names: tuple[str, ...]) -> None:
        self._children = [PREDICTIONS.labels(name) for name in class_names]

    def add(self, labels: np.ndarray) -> None:
        """Count class indices; one outside the declared class names (a model/settings mismatch) is not."""
        n = len(self._children)
        if len(labels) == 1:  # the common case, without numpy
            label = int(labels[0])
            if 0 <= label < n:
                self._children[label].inc()
            return
        known = labels[(labels >= 0) & (labels < n)]
        for index, count in enumerate(np.bincount(known, minlength=n).tolist()):
            if count:
                self._children[index].inc(count)
