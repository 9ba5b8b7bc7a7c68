"""Shared by the `predict` and `size` command tests: a parser with only those commands, a values file."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from loadtest.commands import predict as predict_cli


def run_cli(argv: list[str]) -> int:
    """`python -m loadtest <argv>` for the predictor's commands, without importing locust."""
    parser = argparse.ArgumentParser(prog="python -m loadtest")
    predict_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def write_hpa_values(directory: Path) -> Path:
    """A values file enabling the HPA (1..10 replicas), on top of the chart's defaults."""
    path = directory / "hpa-values.yaml"
    path.write_text(yaml.safe_dump({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 10}}))
    return path
