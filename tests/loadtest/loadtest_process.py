"""`python -m loadtest run` in a subprocess, and the report it leaves.

Locust gevent-patches the process that imports it, which must not be pytest's: every load run is a child
process, with the patch allowed back on.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

LoadRun = tuple[subprocess.CompletedProcess[str], dict[str, Any], list[dict[str, str]]]


def run_loadtest(
    host: str, out: Path, *options: str, timeout: float, env: Mapping[str, str] | None = None
) -> LoadRun:
    """Run the load against `host`, writing under `out`; (its exit, summary.json, timeline.csv rows)."""
    child_env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    child_env.update(env or {})
    command = [sys.executable, "-m", "loadtest", "run", "--host", host, "--out", str(out), *options]
    finished = subprocess.run(
        command, cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=timeout
    )
    reports = sorted(out.iterdir()) if out.exists() else []
    assert len(reports) == 1, f"expected one report directory in {out}; stderr:\n{finished.stderr[-3000:]}"
    summary = json.loads((reports[0] / "summary.json").read_text())
    with (reports[0] / "timeline.csv").open() as handle:
        timeline = list(csv.DictReader(handle))
    return finished, summary, timeline
