"""The record of one load run (what the runner fills in) and its report: facts, files, console summary."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.report.figures import FigureText
from loadtest.report.files import ReportFiles, write_report
from loadtest.report.verdicts import Scaling, Verdicts, verdict_lines


@dataclass
class LoadRun:
    """What a run produced: the per-second timeline and locust's totals per endpoint and per error."""

    timeline: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    errors: list[dict[str, Any]]  # {"name", "method", "error", "occurrences"}, as locust groups failures
    user_classes: list[str]
    shape: dict[str, float]
    sampler_errors: list[str]
    interrupted: bool = False  # stopped by Ctrl-C before the shape's end

    @property
    def requests(self) -> int:
        return sum(e["requests"] for e in self.endpoints)

    @property
    def failures(self) -> int:
        return sum(e["failures"] for e in self.endpoints)


def report_dir(out: Path) -> Path:
    """reports/<UTC timestamp>/ (new each run)."""
    return out / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def run_facts(run: LoadRun, host: str) -> dict[str, Any]:
    duration = run.timeline[-1]["t"] if run.timeline else 0
    return {
        "target": host,
        "shape": ", ".join(f"{k}={v}" for k, v in run.shape.items()),
        "users": ", ".join(run.user_classes),
        "duration": f"{duration:.0f} s",
        "requests": run.requests,
        "failures": run.failures,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def write_run_report(
    out_dir: Path,
    run: LoadRun,
    *,
    host: str,
    scaling: Scaling | None = None,
    text: FigureText | None = None,
    extra_facts: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    timeline: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[ReportFiles, Verdicts]:
    """The report of `run`; `timeline` replaces the run's own (e.g. on a stretched clock)."""
    return write_report(
        out_dir,
        run.timeline if timeline is None else timeline,
        text=text or FigureText(f"Load test: {run.shape['shape']} against {host}"),
        scaling=scaling,
        facts={**run_facts(run, host), **(extra_facts or {})},
        endpoints=run.endpoints,
        errors=run.errors,
        notes=[*notes, *(f"sampler error: {e}" for e in run.sampler_errors)],
    )


def print_summary(
    verdicts: Verdicts,
    scaling: Scaling | None,
    files: ReportFiles,
    *,
    errors: Sequence[Mapping[str, Any]] = (),
    shown_errors: int = 5,
) -> None:
    """The verdicts, the most frequent failure reasons with their counts, the report's path."""
    for question, answer in verdict_lines(verdicts, scaling):
        print(f"  {question}: {answer}")
    ranked = sorted(errors, key=lambda e: -int(e["occurrences"]))
    if ranked:
        print(f"  failures by reason ({len(ranked)}):")
    for error in ranked[:shown_errors]:
        print(f"    {error['occurrences']} x {error.get('method', '')} {error['name']}: {error['error']}")
    if len(ranked) > shown_errors:
        print(f"    ... {len(ranked) - shown_errors} more in {files.markdown}")
    for warning in verdicts.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"report: {files.markdown}")
