"""Batch scoring vs one row per HTTP request, for the iris model, on this machine.

`python -m tests.bench.batch_bench` (part of `make bench`) times `model-api batch` scoring a 100,000-row
CSV as one shard — the whole process: start, model load, read, score, write, commit — and drives the V2
infer route with one row per request under wrk, both on the same single CPU. It prints rows per second of
each and their ratio against the goal (batch at least 20 × faster per row). Figures, not assertions: the
ratio depends on the CPU.
"""

# ruff: noqa: RUF001, RUF002 - the printed ratios use the multiplication sign

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
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

ROWS = 100_000
HTTP_SECONDS = 8
GOAL = 20.0
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def batch_rows_per_second(workdir: Path, cpu: int | None) -> float:
    data = workdir / "rows.csv"
    with data.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(FEATURES)
        writer.writerows(iris_like_rows(ROWS))
    script = Path(sys.executable).parent / "model-api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_API_")}
    command = [
        str(script),
        "batch",
        "--input",
        str(data),
        "--output",
        str(workdir / "out"),
        "--shard-index",
        "0",
    ]
    started = time.perf_counter()
    subprocess.run(
        command,
        env=env,
        check=True,
        capture_output=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    return ROWS / (time.perf_counter() - started)


def main() -> int:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        batch = batch_rows_per_second(workdir, server_cpu)
        with model_api_server(server_cpu, {}).running() as server:
            wrk_load(server.url(INFER_PATH), infer_body(ONE_ROW), 2, workdir)  # warm-up
            http = wrk_load(server.url(INFER_PATH), infer_body(ONE_ROW), HTTP_SECONDS, workdir)
    ratio = batch / http.rps
    verdict = "met" if ratio >= GOAL else "**MISSED**"
    print()
    moment = dt.datetime.now(dt.UTC)
    pinning = (
        f"batch and server on CPU {server_cpu}, wrk on CPU {load_cpu}"
        if server_cpu is not None
        else "unpinned"
    )
    machine = f"{moment:%Y-%m-%d %H:%M} UTC · {cpu_model()} · {os.cpu_count()} cores"
    print(f"## Batch benchmark ({machine} · {pinning})")
    print()
    print("| path | rows/s | ratio | goal | verdict |")
    print("|---|---|---|---|---|")
    print(
        f"| `model-api batch`, {ROWS:,} CSV rows, one shard, whole process | {batch:,.0f} | {ratio:.1f} × | "
        f"≥ {GOAL:.0f} × | {verdict} |"
    )
    print(
        f"| V2 infer, one row per request ({http.requests:,} requests, {http.errors} errors) | "
        f"{http.rps:,.0f} | 1 × | | |"
    )
    print()
    print("Ratios vary by CPU; both paths ran on one core of this machine in the same run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
