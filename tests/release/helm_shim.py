"""A `helm` command for the offline suite: `template`, `package` and `lint` with the flags the chart README's
production guide uses, carried out by Helm's own Go code in-process (helm-python-sdk), output as the helm
CLI prints it. Any other command or flag is refused (exit 64): a guide command the suite cannot run must be
marked as needing a cluster or a registry instead.

    python -m tests.release.helm_shim template NAME CHART [--namespace NS] [-f FILE]... [--set K=V]...
    python -m tests.release.helm_shim package CHART [--destination DIR]
    python -m tests.release.helm_shim lint CHART [--strict] [-f FILE]...
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import helm_python
import yaml

from loadtest.chart.release import merge_values

UNSUPPORTED = 64


def user_values(files: list[str], sets: list[str]) -> dict[str, Any]:
    """-f files in order, then --set expressions in order, as helm merges them."""
    values: dict[str, Any] = {}
    for path in files:
        with open(path) as handle:
            values = merge_values(values, yaml.safe_load(handle) or {})
    for expression in sets:
        values = merge_values(values, helm_python.parse_set_string(expression))
    return values


def template(args: argparse.Namespace) -> int:
    chart = helm_python.Chart.load(args.chart)
    try:
        rendered = chart.render(
            user_values(args.values, args.set), name=args.name, namespace=args.namespace, is_install=True
        )
    finally:
        chart.close()
    for path in sorted(rendered):
        if path.endswith("NOTES.txt") or not rendered[path].strip():
            continue
        print(f"---\n# Source: {path}\n{rendered[path].strip()}")
    return 0


def package(args: argparse.Namespace) -> int:
    archive = helm_python.package(args.chart, destination=args.destination)
    print(f"Successfully packaged chart and saved it to: {archive}")
    return 0


def lint(args: argparse.Namespace) -> int:
    report = helm_python.lint(args.chart, user_values(args.values, []) or None, strict=args.strict)
    worst = 2 if args.strict else 3
    failures = [m for m in report["messages"] if m["severity"] >= worst] + [
        {"severity": 3, "path": args.chart, "error": e} for e in report.get("errors") or []
    ]
    for message in report["messages"]:
        severity = ("UNKNOWN", "INFO", "WARNING", "ERROR")[message["severity"]]
        print(f"[{severity}] {message['path']}: {message['error']}")
    print(
        f"1 chart(s) linted, {len(failures)} chart(s) failed"
        if failures
        else "1 chart(s) linted, 0 chart(s) failed"
    )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helm", description=__doc__.splitlines()[0], exit_on_error=False)
    commands = parser.add_subparsers(dest="command", required=True)
    template_cmd = commands.add_parser("template")
    template_cmd.add_argument("name")
    template_cmd.add_argument("chart")
    template_cmd.add_argument("--namespace", "-n", default="default")
    package_cmd = commands.add_parser("package")
    package_cmd.add_argument("chart")
    package_cmd.add_argument("--destination", "-d", default=".")
    lint_cmd = commands.add_parser("lint")
    lint_cmd.add_argument("chart")
    lint_cmd.add_argument("--strict", action="store_true")
    for sub in (template_cmd, lint_cmd):
        sub.add_argument("--values", "-f", action="append", default=[])
    template_cmd.add_argument("--set", action="append", default=[])
    try:
        args = parser.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as error:
        print(f"helm (suite shim): unsupported command line {argv or sys.argv[1:]}: {error}", file=sys.stderr)
        return UNSUPPORTED
    return {"template": template, "package": package, "lint": lint}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
