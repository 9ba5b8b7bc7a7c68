"""Batch scoring vs one row per HTTP request, for the iris model, on this machine.

`python -m tests.bench.batch_bench` (part of `make bench`) times `model-api batch` scoring a 1,000,000-row
CSV as one shard — the whole process: start, model load, read, score, write, commit — and drives the V2
infer route with one row per request under wrk, both on the same single CPU, in interleaved rounds. It
prints rows per CPU-second of each (the scoring process's own CPU time, blind to neighbours on a shared
machine) and per wall-clock second, and their ratio against the goal (batch at least 20 × faster per row).
Figures, not assertions: the ratio depends on the CPU.
"""

# ruff: noqa: RUF001, RUF002 - the printed ratios use the multiplication sign

from __future__ import annotations

import csv
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.service_bench import (
    INFER_PATH,
    ONE_ROW,
    cpu_model,
    infer_body,
    iris_like_rows,
    model_api_server,
    wrk_load,
)

ROWS = 1_000_000  # a modest nightly table: the process start (about 0.2 s) is a cost per shard, not per row
HTTP_SECONDS = 5
GOAL = 20.0
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


ROUNDS = 3  # interleaved: batch, HTTP, batch, HTTP… so neighbours on a shared machine weigh on both alike


@dataclass(frozen=True)
class Rate:
    rows_per_second: float  # wall clock
    rows_per_cpu_second: float  # the scoring process's own CPU time: blind to neighbours


def write_input(path: Path) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(FEATURES)
        writer.writerows(iris_like_rows(ROWS))


def batch_rate(data: Path, output: Path, cpu: int | None) -> Rate:
    """One `model-api batch` process over the whole input: start, model load, read, score, write, commit."""
    shutil.rmtree(output, ignore_errors=True)
    script = Path(sys.executable).parent / "model-api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_API_")}
    command = [str(script), "batch", "--input", str(data), "--output", str(output), "--shard-index", "0"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command,
        env=env,
        check=True,
        capture_output=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Rate(ROWS / wall, ROWS / cpu_seconds)


def http_rate(server, workdir: Path) -> tuple[Rate, int]:
    """One row per V2 request under wrk; the server's CPU time over the run. Returns the rate and errors."""
    cpu_before = server.cpu_seconds()
    load = wrk_load(server.url(INFER_PATH), infer_body(ONE_ROW), HTTP_SECONDS, workdir)
    cpu_seconds = server.cpu_seconds() - cpu_before
    return Rate(load.rps, load.requests / cpu_seconds), load.errors


def main() -> int:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    batch: list[Rate] = []
    http: list[Rate] = []
    errors = 0
    with tempfile.TemporaryDirectory() as tmp, model_api_server(server_cpu, {}).running() as server:
        workdir = Path(tmp)
        write_input(workdir / "rows.csv")
        wrk_load(server.url(INFER_PATH), infer_body(ONE_ROW), 2, workdir)  # warm-up
        for _ in range(ROUNDS):
            batch.append(batch_rate(workdir / "rows.csv", workdir / "out", server_cpu))
            rate, failed = http_rate(server, workdir)
            http.append(rate)
            errors += failed
    wall = [b.rows_per_second for b in batch], [h.rows_per_second for h in http]
    per_cpu = [b.rows_per_cpu_second for b in batch], [h.rows_per_cpu_second for h in http]
    # The goal compares rows per second, each path on one core; per CPU-second is shown beside it because
    # on a shared machine neighbours slow the HTTP path's client and server more than one scoring process.
    ratio = statistics.median(wall[0]) / statistics.median(wall[1])
    cpu_ratio = statistics.median(per_cpu[0]) / statistics.median(per_cpu[1])
    verdict = "met" if ratio >= GOAL else "**MISSED**"
    moment = dt.datetime.now(dt.UTC)
    pinning = (
        f"batch and server on CPU {server_cpu}, wrk on CPU {load_cpu}"
        if server_cpu is not None
        else "unpinned"
    )
    machine = f"{moment:%Y-%m-%d %H:%M} UTC · {cpu_model()} · {os.cpu_count()} cores"
    print()
    print(f"## Batch benchmark ({machine} · {pinning} · median of {ROUNDS} interleaved rounds)")
    print()
    print("| path | rows per CPU-second | rows/s (wall) |")
    print("|---|---|---|")
    print(
        f"| `model-api batch`, {ROWS:,} CSV rows, one shard, whole process | "
        f"{statistics.median(per_cpu[0]):,.0f} | {statistics.median(wall[0]):,.0f} |"
    )
    print(
        f"| V2 infer, one row per request ({errors} errors) | "
        f"{statistics.median(per_cpu[1]):,.0f} | {statistics.median(wall[1]):,.0f} |"
    )
    print()
    print(
        f"Batch vs one row per HTTP request: {ratio:.1f} × the rows per second (goal ≥ {GOAL:.0f} ×: "
        f"{verdict}); {cpu_ratio:.1f} × the rows per CPU-second of the scoring process. Ratios vary by CPU; "
        "both paths ran on one core of this machine in the same run."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
