"""Shared by the `predict` and `size` command tests: the command line in-process, a values file."""

from __future__ import annotations

from pathlib import Path

import yaml

from loadtest.__main__ import main


def run_cli(argv: list[str]) -> int:
    """`python -m loadtest <argv>` in this process: only the chosen command's module is imported, so
    `predict` and `size` never load locust here."""
    return main(argv)


def write_hpa_values(directory: Path) -> Path:
    """A values file enabling the HPA (1..10 replicas), on top of the chart's defaults."""
    path = directory / "hpa-values.yaml"
    path.write_text(yaml.safe_dump({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 10}}))
    return path
