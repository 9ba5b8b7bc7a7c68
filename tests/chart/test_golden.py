"""Golden layer: reviewed, readable snapshots of the dev and prod renders (tests/chart/golden/*.yaml).

Any change to what the chart renders for these values shows up as a diff to review. A missing snapshot
fails (never written silently); after an intended change, rewrite them with

    make golden        # = UPDATE_GOLDEN=1 pytest tests/chart/test_golden.py

and review `git diff tests/chart/golden/` before committing.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
import yaml

from tests.chart import helpers

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_SETS = ("dev", "prod")
UPDATE_COMMAND = "make golden  (= UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart/test_golden.py)"


def snapshot_text(value_set: str) -> str:
    """The render of `value_set` as one YAML stream, one document per object, in template order."""
    header = (
        f"# Golden render of values set {value_set!r} "
        f"(release {helpers.RELEASE!r}, namespace {helpers.NAMESPACE!r}).\n"
        f"# Generated; review diffs, then update with: {UPDATE_COMMAND}\n"
    )
    documents = [
        yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=120)
        for obj in helpers.render_set(value_set)
    ]
    return header + "---\n" + "---\n".join(documents)


@pytest.mark.parametrize("value_set", GOLDEN_SETS)
def test_render_matches_golden(value_set: str) -> None:
    golden = GOLDEN_DIR / f"{value_set}.yaml"
    actual = snapshot_text(value_set)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden.write_text(actual)
    if not golden.is_file():
        pytest.fail(
            f"missing golden snapshot {golden}; review the render and create it with: {UPDATE_COMMAND}"
        )
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                str(golden),
                "render",
                n=2,
            )
        )
        pytest.fail(
            f"the {value_set} render differs from {golden.name}; if intended: {UPDATE_COMMAND}\n{diff}"
        )
