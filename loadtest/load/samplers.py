"""Samplers the runner calls once a second next to locust's statistics: each returns a dict of columns.

`ProcessCpuSampler` reads a local process tree's CPU (the service and its pi worker in the offline demo);
the HPA watcher's `sample` (loadtest.autoscaling.watcher) is the other kind, with a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

Sample = Mapping[str, Any]
Sampler = Callable[[], Sample]


class ProcessCpuSampler:
    """CPU of a process and all its descendants (a local service and its pi worker process), as % of one
    core over each interval. A descendant counts from the first sample that sees it, and keeps counting with
    the CPU last read once it has exited (a replaced worker), so the total never goes down."""

    def __init__(self, pid: int, prefix: str = "service") -> None:
        self.process = psutil.Process(pid)
        self.prefix = prefix
        self._last: tuple[float, float] | None = None
        self._descendants: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU seconds

    def cpu_seconds(self) -> float:
        """CPU seconds so far; psutil.NoSuchProcess once the process itself has exited."""
        own = self.process.cpu_times()  # without children_user/system: exited descendants are counted below
        for child in self.process.children(recursive=True):
            try:
                times = child.cpu_times()
                self._descendants[(child.pid, child.create_time())] = times.user + times.system
            except psutil.NoSuchProcess:  # exited between listing and reading: keeps its last reading
                continue
        return own.user + own.system + sum(self._descendants.values())

    def __call__(self) -> Sample:
        now, used = time.monotonic(), self.cpu_seconds()
        last, self._last = self._last, (now, used)
        percent = None if last is None else round(100.0 * (used - last[1]) / max(now - last[0], 1e-6), 1)
        return {f"{self.prefix}_cpu_percent": percent, f"{self.prefix}_cpu_seconds": round(used, 3)}
