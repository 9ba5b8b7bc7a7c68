"""A load run as files a person can read: timeline CSV, JSON summary, the PNG figure, Markdown verdicts.

`write_report(out_dir, timeline, text=..., scaling=...)` writes them all into one directory and returns
their paths with the verdicts (verdicts.py); the figure is drawn by figures.py.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtest.report.figures import FigureText, plot_timeline
from loadtest.report.verdicts import Row, Scaling, Verdicts, compute_verdicts, verdict_lines

# The runner's own columns, in this order; anything else (service CPU, watcher fields) follows sorted.
TIMELINE_COLUMNS = (
    "t",
    "users",
    "rps",
    "failures_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "requests",
    "failures",
    "locust_cpu_percent",
)
ENDPOINT_COLUMNS = ("name", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms")


def write_timeline_csv(path: Path, timeline: Sequence[Row]) -> None:
    extra = sorted({key for row in timeline for key in row} - set(TIMELINE_COLUMNS))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*TIMELINE_COLUMNS, *extra], restval="")
        writer.writeheader()
        writer.writerows(timeline)


def write_scaling_csv(path: Path, scaling: Scaling) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["t", "desired", "ready", "utilization", "target"])
        writer.writeheader()
        writer.writerows(asdict(p) for p in scaling.points)


def write_markdown(
    path: Path,
    verdicts: Verdicts,
    scaling: Scaling | None,
    *,
    title: str,
    facts: Mapping[str, Any],
    endpoints: Sequence[Row],
    notes: Sequence[str],
    figure: str,
    errors: Sequence[Row] = (),
) -> None:
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in facts.items()]
    lines += ["", "## Verdicts", "", "| question | answer |", "|---|---|"]
    lines += [f"| {question} | {answer} |" for question, answer in verdict_lines(verdicts, scaling)]
    if verdicts.warnings:
        lines += ["", *[f"> **WARNING**: {w}" for w in verdicts.warnings]]
    lines += ["", f"![timeline]({figure})", ""]
    if endpoints:
        lines += [
            "## Requests by endpoint",
            "",
            "| endpoint | requests | failures | requests/s | p50 ms | p95 ms | p99 ms |",
        ]
        lines += ["|---|---:|---:|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(str(e[key]) for key in ENDPOINT_COLUMNS) + " |" for e in endpoints]
        lines.append("")
    if errors:
        lines += ["## Failures by reason", "", "| count | request | reason |", "|---:|---|---|"]
        lines += [
            f"| {e['occurrences']} | {e.get('method', '')} {e['name']} | {_cell(e['error'])} |"
            for e in sorted(errors, key=lambda e: -int(e["occurrences"]))
        ]
        lines.append("")
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    path.write_text("\n".join(lines))


def _cell(text: object) -> str:
    """One Markdown table cell: no line breaks, no column separators."""
    return " ".join(str(text).split()).replace("|", "\\|")


@dataclass(frozen=True)
class ReportFiles:
    directory: Path
    timeline_csv: Path
    summary_json: Path
    figure_png: Path
    markdown: Path
    scaling_csv: Path | None


def write_report(
    out_dir: Path,
    timeline: Sequence[Row],
    *,
    text: FigureText,
    scaling: Scaling | None = None,
    facts: Mapping[str, Any] | None = None,
    endpoints: Sequence[Row] = (),
    errors: Sequence[Row] = (),
    notes: Sequence[str] = (),
) -> tuple[ReportFiles, Verdicts]:
    """Write every report file into `out_dir` (created); return their paths and the verdicts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        directory=out_dir,
        timeline_csv=out_dir / "timeline.csv",
        summary_json=out_dir / "summary.json",
        figure_png=out_dir / "timeline.png",
        markdown=out_dir / "report.md",
        scaling_csv=out_dir / f"replicas-{scaling.source}.csv" if scaling else None,
    )
    verdicts = compute_verdicts(timeline, scaling)
    write_timeline_csv(files.timeline_csv, timeline)
    if scaling is not None and files.scaling_csv is not None:
        write_scaling_csv(files.scaling_csv, scaling)
    plot_timeline(files.figure_png, timeline, scaling, text=text)
    write_markdown(
        files.markdown,
        verdicts,
        scaling,
        title=text.title,
        facts=facts or {},
        endpoints=endpoints,
        notes=notes,
        figure=files.figure_png.name,
        errors=errors,
    )
    summary = {
        "title": text.title,
        "facts": dict(facts or {}),
        "verdicts": asdict(verdicts),
        "scaling": None
        if scaling is None
        else {k: v for k, v in asdict(scaling).items() if k != "points"} | {"points": len(scaling.points)},
        "endpoints": list(endpoints),
        "errors": list(errors),
        "notes": list(notes),
        "files": {k: v.name for k, v in asdict(files).items() if isinstance(v, Path) and k != "directory"},
    }
    files.summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return files, verdicts


def append_section(markdown: Path, title: str, text: str, *, figure: Path | None = None) -> None:
    """A section at the end of report.md: a preformatted block (a table) and, optionally, a figure."""
    lines = ["", f"## {title}", "", "```", text, "```", ""]
    if figure is not None:
        lines += [f"![{title}]({figure.name})", ""]
    with markdown.open("a") as handle:
        handle.write("\n".join(lines))
