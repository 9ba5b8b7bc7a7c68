"""Locust in library mode, recorded once a second: `run_load(host, shape, users)` -> `LoadRun`.

Environment → create_local_runner() → start_shape(); the shape greenlet ends the load (the runner waits on
it, then quits: joining runner.greenlet would hang). A recorder greenlet samples every second: requests/s,
failures/s, p50/p95/p99 of that one-second window (from the delta of locust's response-time histogram, not
the cumulative percentiles), users, locust's own CPU, and whatever the optional samplers return (the service
process's CPU in the offline demo, the HPA watcher's row with a cluster).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import psutil
from locust import User
from locust.env import Environment
from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

from loadtest.load.samplers import Sample, Sampler
from loadtest.load.shapes import BoundedShape
from loadtest.load.users import USER_CLASSES, ApiUser, pacing
from loadtest.report.load_run import LoadRun
from loadtest.report.verdicts import LOCUST_CPU_WARNING_PERCENT

PERCENTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
PROGRESS_EVERY_S = 10


class WindowStats:
    """Per-interval statistics from locust's cumulative totals: differences between two snapshots."""

    def __init__(self, environment: Environment) -> None:
        self.stats = environment.stats
        self._requests, self._failures, self._times = 0, 0, {}

    def sample(self, interval: float) -> dict[str, float | int | None]:
        total = self.stats.total  # looked up each time: locust replaces it when the test (re)starts
        requests, failures = total.num_requests, total.num_failures
        if requests < self._requests:  # the statistics were reset: count from zero again
            self._requests, self._failures, self._times = 0, 0, {}
        times = dict(total.response_times)
        window = diff_response_time_dicts(times, self._times)
        window_requests = requests - self._requests
        row: dict[str, float | int | None] = {
            "rps": round(window_requests / interval, 3),
            "failures_per_s": round((failures - self._failures) / interval, 3),
            "requests": requests,
            "failures": failures,
        }
        for column, percent in PERCENTILES.items():
            counted = sum(window.values())
            row[column] = calculate_response_time_percentile(window, counted, percent) if counted else None
        self._requests, self._failures, self._times = requests, failures, times
        return row


@dataclass
class Recorder:
    """Samples the run once a second into `rows`, in a greenlet next to locust's."""

    environment: Environment
    samplers: Sequence[Sampler] = ()
    interval: float = 1.0
    progress: Callable[[dict[str, Any]], None] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    sampler_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._window = WindowStats(self.environment)
        self._own = psutil.Process()
        self._greenlet: gevent.Greenlet | None = None
        self._started = 0.0

    def start(self) -> None:
        self._own.cpu_percent(None)  # the first call only sets the reference point
        for sampler in self.samplers:
            self._sample_safely(sampler)
        self._started = time.monotonic()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None

    def _loop(self) -> None:
        ticks, last = 0, 0.0
        while True:
            # The next whole tick; ticks missed while a slow sampler (the cluster API) ran are skipped.
            ticks = max(ticks + 1, math.floor((time.monotonic() - self._started) / self.interval) + 1)
            gevent.sleep(max(0.0, self._started + ticks * self.interval - time.monotonic()))
            now = round(time.monotonic() - self._started, 2)
            row = self.sample(now, now - last)
            last = now
            self.rows.append(row)
            if self.progress is not None:
                self.progress(row)

    def sample(self, t: float, interval: float) -> dict[str, Any]:
        """One row: `t` seconds since the start, rates over the `interval` seconds before it."""
        runner = self.environment.runner
        row: dict[str, Any] = {"t": t, "users": runner.user_count if runner else 0}
        row.update(self._window.sample(max(interval, 1e-3)))
        row["locust_cpu_percent"] = self._own.cpu_percent(None)
        for sampler in self.samplers:
            row.update(self._sample_safely(sampler))
        return row

    def _sample_safely(self, sampler: Sampler) -> Sample:
        # A watcher hiccup (API timeout) must not end the load test; it is reported with the run instead.
        try:
            return sampler()
        except Exception as exc:
            message = (
                f"{getattr(sampler, '__qualname__', type(sampler).__name__)}: {type(exc).__name__}: {exc}"
            )
            if message not in self.sampler_errors:
                self.sampler_errors.append(message)
                print(f"warning: sampler failed (kept running): {message}", file=sys.stderr)
            return {}


def configured_users(
    names: Iterable[str],
    *,
    user_rps: float | None = None,
    pi_ndigits: int | None = None,
    batch_rows: int | None = None,
    api_key: str | None = None,
) -> list[type[User]]:
    """The chosen user classes, subclassed with this run's pacing and request cost (originals untouched)."""
    for option, value, minimum in (
        ("--user-rps", user_rps, 0),
        ("--pi-ndigits", pi_ndigits, 0),
        ("--batch-rows", batch_rows, 1),
    ):
        if value is not None and not (math.isfinite(value) and value >= minimum):
            raise ValueError(f"{option} {value} must be a finite number >= {minimum}")
    chosen = []
    for name in names:
        if name not in USER_CLASSES:
            raise ValueError(f"unknown user {name!r}; choose from {sorted(USER_CLASSES)}")
        base: type[ApiUser] = USER_CLASSES[name]
        overrides: dict[str, Any] = {}
        if user_rps is not None:
            overrides["wait_time"] = pacing(user_rps)
        if pi_ndigits is not None and hasattr(base, "ndigits"):
            overrides["ndigits"] = pi_ndigits
        if batch_rows is not None and hasattr(base, "batch_rows"):
            overrides["batch_rows"] = batch_rows
        if api_key is not None:
            overrides["api_key"] = api_key
        chosen.append(type(base.__name__, (base,), overrides) if overrides else base)
    return chosen


def _endpoint_rows(environment: Environment) -> list[dict[str, Any]]:
    rows = []
    for entry in sorted(environment.stats.entries.values(), key=lambda e: e.name):
        rows.append(
            {
                "name": entry.name,
                "method": entry.method,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "rps": round(entry.total_rps, 2),
                **{col: entry.get_response_time_percentile(p) for col, p in PERCENTILES.items()},
            }
        )
    return rows


def run_load(
    host: str,
    shape: BoundedShape,
    user_classes: Sequence[type[User]],
    *,
    samplers: Sequence[Sampler] = (),
    cooldown: float = 0.0,
    tags: Sequence[str] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> LoadRun:
    """Run `shape` against `host`, then record `cooldown` more seconds with no load (to watch scale-down)."""
    environment = Environment(user_classes=list(user_classes), shape_class=shape, host=host, tags=tags)
    runner = environment.create_local_runner()
    recorder = Recorder(environment, samplers=samplers, progress=progress)
    # Ctrl-C ends the load (or the cooldown) and the run so far is still reported. Handled by a gevent
    # signal watcher, not KeyboardInterrupt, which would land in whichever greenlet runs (the recorder's).
    interrupt = gevent.event.Event()

    def on_ctrl_c() -> None:
        if interrupt.is_set():  # a second Ctrl-C: Python's own handler again, and it raises at once
            on_sigint.cancel()
            os.kill(os.getpid(), signal.SIGINT)
        interrupt.set()

    on_sigint = gevent.signal_handler(signal.SIGINT, on_ctrl_c)
    try:
        recorder.start()
        runner.start_shape()
        if runner.shape_greenlet is not None:  # ends when the shape's tick() gives None (users stopped)
            gevent.wait([runner.shape_greenlet, interrupt], count=1)
        runner.stop()
        interrupt.wait(cooldown)
        if interrupt.is_set():
            print("interrupted: stopping the load and writing the report of the run so far", file=sys.stderr)
        # One more sample after the users stopped, so the timeline ends with the load's true totals.
        gevent.sleep(recorder.interval)
    finally:
        on_sigint.cancel()
        recorder.stop()
        runner.quit()
    return LoadRun(
        timeline=recorder.rows,
        endpoints=_endpoint_rows(environment),
        errors=[
            {"name": e.name, "method": e.method, "error": e.error, "occurrences": e.occurrences}
            for e in environment.stats.errors.values()
        ],
        user_classes=[cls.__name__ for cls in user_classes],
        shape={"shape": type(shape).__name__, **shape.describe()},
        sampler_errors=recorder.sampler_errors,
        interrupted=interrupt.is_set(),
    )


def console_progress(every: int = PROGRESS_EVERY_S) -> Callable[[dict[str, Any]], None]:
    """A progress line every `every` samples, and a loud warning whenever locust's own CPU passes 90 %."""
    count = 0

    def show(row: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        cpu = row.get("locust_cpu_percent") or 0.0
        if cpu > LOCUST_CPU_WARNING_PERCENT:
            print(
                f"WARNING t={row['t']:.0f}s: locust uses {cpu:.0f}% CPU — the load generator is the "
                "bottleneck; use fewer users or a lower --user-rps",
                file=sys.stderr,
            )
        if count % every == 0:
            p95 = row.get("p95_ms")
            print(
                f"  t={row['t']:5.0f}s users={row['users']:3d} rps={row['rps']:7.1f} "
                f"fail/s={row['failures_per_s']:5.1f} p95={'-' if p95 is None else p95}ms "
                f"locust_cpu={cpu:.0f}%",
                flush=True,
            )

    return show
