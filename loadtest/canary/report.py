"""The rehearsal as files: `canary.md` (routing, header rule, analysis per step, verdict), `canary.png`
(share per version, error ratio and p99 per version on one time axis), `canary.csv` (the per-second
series), `summary.json`, and the generated `nginx.conf` and `prometheus.yml` for review."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt

from loadtest.canary import analysis, share
from loadtest.canary.rehearsal import Result

PHASE_COLOURS = {
    analysis.SUCCESSFUL: "tab:green",
    analysis.FAILED: "tab:red",
    analysis.INCONCLUSIVE: "tab:orange",
    analysis.ERROR: "tab:purple",
}
SLOT_COLOURS = ("tab:blue", "tab:green", "tab:orange", "tab:purple")


@dataclass(frozen=True)
class CanaryFiles:
    directory: Path
    markdown: Path
    figure: Path
    timeline: Path
    summary: Path


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def _value(value: Any) -> str:
    if value is None:
        return "query failed"
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]" if value else "[] (no data)"
    return f"{value:.4g}"


def routing_ok(result: Result) -> bool:
    honoured = result.header_honoured
    return (
        result.candidate_share.agrees and (result.header is None or honoured == 1.0) and not result.problems
    )


def markdown(result: Result, figure: str) -> str:
    topo, options = result.topology, result.options
    lines = [
        f"# Canary rehearsal: {result.verdict.upper()}",
        "",
        f"- **router**: {topo.router.kind} from {topo.router.source}",
        f"- **stable**: slot {topo.stable.name}, version {result.versions[topo.stable.name]}",
        f"- **candidate**: slot {topo.candidate.name}, version {result.versions[topo.candidate.name]}"
        + (
            f", rehearsal faults: error rate {options.candidate_error_rate}"
            if options.candidate_error_rate
            else ""
        )
        + (f", latency {options.candidate_latency_ms:g} ms" if options.candidate_latency_ms else ""),
        f"- **load**: {options.users} users x {options.user_rps:g} requests/s for {options.duration_s:g} s "
        "through "
        f"a real nginx; {result.load.requests} requests, {result.load.failures} failures",
        f"- **generated**: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        "",
        "## Traffic share (requests without the canary header, sent early enough to be answered before the "
        "load ended)",
        "",
        f"| slot | version | requests | observed | {100 * options.confidence:g} % Wilson interval "
        "| configured | agrees |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for s in result.shares:
        lines.append(
            f"| {s.slot} | {s.version} | {s.requests} / {s.total} | {_percent(s.observed)} | "
            f"{_percent(s.low)} - {_percent(s.high)} | {_percent(s.expected)} | "
            f"{'yes' if s.agrees else '**no**'} |"
        )
    lines += ["", "## Header rule", ""]
    if result.header is None:
        lines.append(
            "The router has no header rule for the candidate (or it is a regex without --header-value)."
        )
    else:
        name, value = result.header
        lines.append(
            f"`{name}: {value}` → {result.header_to_candidate} of {result.header_answers} requests "
            "answered by "
            f"the candidate ({_percent(result.header_honoured)}; required: 100 %)."
        )
    if result.scraped:
        lines += ["", "## As Prometheus scraped them (ServiceMonitor target labels)", ""]
        names = sorted({k for labels, _ in result.scraped for k in labels})
        lines += ["| " + " | ".join(names) + " | requests |", "|" + "---|" * len(names) + "---:|"]
        for labels, value in sorted(result.scraped, key=lambda item: sorted(item[0].items())):
            lines.append("| " + " | ".join(labels.get(n, "") for n in names) + f" | {value:g} |")
    lines += ["", "## Analysis (the AnalysisTemplate's PromQL, evaluated by the rehearsal's Prometheus)", ""]
    lines += [f"- arg `{k}` = `{v}`" for k, v in result.args.items()]
    for name, rows in result.measurements.items():
        lines += [
            "",
            f"### {name}: {result.metric_phases[name]}",
            "",
            "```promql",
            result.queries[name],
            "```",
            "",
        ]
        lines += ["| step | at (s) | result | phase | note |", "|---:|---:|---|---|---|"]
        lines += [
            f"| {i + 1} | {m.at:g} | {_value(m.value)} | {m.phase} | {m.message} |"
            for i, m in enumerate(rows)
        ]
    lines += [
        "",
        f"**Verdict: {result.verdict}** (Argo Rollouts: a Failed or Error metric aborts, an Inconclusive one "
        "pauses for a human, all Successful promotes).",
        "",
        f"![canary]({figure})",
        "",
    ]
    notes = [
        *result.notes,
        "measurements are spread evenly over the load (the template's interval is minutes in a cluster); "
        "Prometheus scrapes every second here",
    ]
    if result.problems:
        lines += ["## Problems", "", *[f"- **{p}**" for p in result.problems], ""]
    lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def _percents(values: list[Any]) -> list[float]:
    return [math.nan if v is None else 100 * v for v in values]


def plot(path: Path, result: Result, rows: list[dict[str, Any]]) -> None:
    """Three panels on one time axis: share per version (with the configured weight), error ratio, p99;
    the analysis steps as vertical lines coloured by their worst phase."""
    fig, (share_ax, error_ax, p99_ax) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    fig.suptitle(
        f"Canary rehearsal ({result.topology.router.kind}): verdict {result.verdict}",
        fontsize=13,
        fontweight="bold",
    )
    times = [r["t"] for r in rows]
    for index, s in enumerate(result.shares):
        colour = SLOT_COLOURS[index % len(SLOT_COLOURS)]
        label = f"{s.version} ({s.slot})"
        per_second = _percents([r[f"share_{s.slot}"] for r in rows])
        share_ax.plot(times, per_second, color=colour, lw=0.8, alpha=0.5, label=f"{label}, per second")
        so_far = _percents([r[f"cumulative_share_{s.slot}"] for r in rows])
        share_ax.plot(times, so_far, color=colour, lw=2.2, label=f"{label}, so far")
        share_ax.axhline(
            100 * s.expected, color=colour, ls="--", lw=1, label=f"configured {100 * s.expected:g} %"
        )
        error_ax.plot(
            times, _percents([r[f"error_ratio_{s.slot}"] for r in rows]), color=colour, lw=1.4, label=label
        )
        p99 = [math.nan if r[f"p99_ms_{s.slot}"] is None else r[f"p99_ms_{s.slot}"] for r in rows]
        p99_ax.plot(times, p99, color=colour, lw=1.4, label=label)
    worst_error = max(
        (100 * v for r in rows for k, v in r.items() if k.startswith("error_ratio") and v), default=0
    )
    error_ax.set_ylim(0, max(5.0, 1.2 * worst_error))
    share_ax.set_title("(a) share of requests without the canary header, per second", loc="left", fontsize=11)
    share_ax.set_ylabel("% of requests")
    share_ax.set_ylim(0, 100)
    error_ax.set_title("(b) error ratio per version (client side)", loc="left", fontsize=11)
    error_ax.set_ylabel("% failed")
    p99_ax.set_title("(c) p99 latency per version through nginx (client side)", loc="left", fontsize=11)
    p99_ax.set_ylabel("ms")
    p99_ax.set_yscale("log")
    p99_ax.set_xlabel("seconds since the load started")
    steps: dict[float, str] = {}
    order = [analysis.SUCCESSFUL, analysis.INCONCLUSIVE, analysis.ERROR, analysis.FAILED]
    for measurements in result.measurements.values():
        for m in measurements:
            worst = max(steps.get(m.at, analysis.SUCCESSFUL), m.phase, key=order.index)
            steps[m.at] = worst
    for ax in (share_ax, error_ax, p99_ax):
        for at, phase in steps.items():
            ax.axvline(at, color=PHASE_COLOURS[phase], lw=1.2, alpha=0.6)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    share_ax.text(0.01, 0.95, "vertical lines: analysis steps (green ok, red failed, orange inconclusive)",
                  transform=share_ax.transAxes, fontsize=8, va="top")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out_dir: Path, result: Result) -> CanaryFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = CanaryFiles(
        out_dir,
        out_dir / "canary.md",
        out_dir / "canary.png",
        out_dir / "canary.csv",
        out_dir / "summary.json",
    )
    slots = [s.slot for s in result.shares]
    rows = share.timeline(result.answers, slots, result.options.duration_s)
    with files.timeline.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["t"])
        writer.writeheader()
        writer.writerows(rows)
    plot(files.figure, result, rows)
    files.markdown.write_text(markdown(result, files.figure.name))
    (out_dir / "nginx.conf").write_text(result.nginx_config)
    (out_dir / "prometheus.yml").write_text(result.prometheus_config)
    summary = {
        "verdict": result.verdict,
        "router": {"kind": result.topology.router.kind, "source": result.topology.router.source},
        "candidate": {
            "slot": result.topology.candidate.name,
            "version": result.versions[result.topology.candidate.name],
        },
        "stable": {
            "slot": result.topology.stable.name,
            "version": result.versions[result.topology.stable.name],
        },
        "load": {"requests": result.load.requests, "failures": result.load.failures},
        "metric_phases": result.metric_phases,
        "shares": [
            {
                "slot": s.slot,
                "version": s.version,
                "requests": s.requests,
                "total": s.total,
                "observed": s.observed,
                "low": s.low,
                "high": s.high,
                "expected": s.expected,
                "agrees": s.agrees,
            }
            for s in result.shares
        ],
        "header": {
            "rule": result.header,
            "answers": result.header_answers,
            "to_candidate": result.header_to_candidate,
        },
        "measurements": {
            name: [{"at": m.at, "value": m.value, "phase": m.phase, "message": m.message} for m in rows_]
            for name, rows_ in result.measurements.items()
        },
        "args": result.args,
        "scraped": [{"labels": labels, "requests": value} for labels, value in result.scraped],
        "problems": result.problems,
        "notes": result.notes,
    }
    files.summary.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return files


def print_summary(result: Result, files: CanaryFiles) -> None:
    candidate = result.candidate_share
    print(
        f"  candidate {candidate.version}: {_percent(candidate.observed)} of {candidate.total} requests, "
        f"{100 * candidate.confidence:g} % interval {_percent(candidate.low)} - {_percent(candidate.high)}, "
        f"configured {_percent(candidate.expected)}: {'agrees' if candidate.agrees else 'DISAGREES'}"
    )
    if result.header is not None:
        print(
            f"  header {result.header[0]}: {result.header_to_candidate}/{result.header_answers} "
            "to the candidate"
        )
    for name, phase in result.metric_phases.items():
        print(f"  analysis {name}: {phase}")
    print(f"  verdict: {result.verdict}")
    for problem in result.problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    print(f"report: {files.markdown}")
