"""The shipped values sets exercise every check that loops over rendered objects.

Many wiring and policy checks run once per object of a kind that the values set renders (`for hpa in
helpers.find(objects, "HorizontalPodAutoscaler")`): where no object of that kind is rendered they pass
without checking anything. So every kind such a loop names must be rendered by at least one shipped values
set (default, dev, prod, ci/*-values.yaml) or by one of the suite's opt-in sets (prod with a CRD-backed
object forced, as on a cluster serving its API). The kinds are read from the test modules themselves, so
a loop added later is covered too.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests.chart import helpers

pytestmark = pytest.mark.chart

CHART_TESTS = Path(__file__).resolve().parent


def looped_kinds(source: str) -> set[str]:
    """Kinds named in `for ... in helpers.find(objects, "Kind", ...)` loops and comprehensions of the tests
    that take the `objects` fixture (one render per shipped values set); tests rendering their own values
    are not concerned."""
    kinds = set()
    for function in ast.walk(ast.parse(source)):
        if not (isinstance(function, ast.FunctionDef) and function.name.startswith("test_")):
            continue
        if "objects" not in {a.arg for a in function.args.args}:
            continue
        for node in ast.walk(function):
            call = node.iter if isinstance(node, ast.For | ast.comprehension) else None
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "find"
                and len(call.args) >= 2
                and isinstance(call.args[0], ast.Name)
                and call.args[0].id == "objects"
                and isinstance(call.args[1], ast.Constant)
                and isinstance(call.args[1].value, str)
            ):
                kinds.add(call.args[1].value)
    return kinds


def kinds_checked_by_loops() -> list[str]:
    return sorted(set().union(*(looped_kinds(p.read_text()) for p in sorted(CHART_TESTS.glob("test_*.py")))))


@functools.cache
def kinds_rendered() -> dict[str, list[str]]:
    """kind -> the shipped values sets that render an object of it."""
    rendered: dict[str, list[str]] = {}
    for set_id in helpers.VALUE_SETS:
        for kind in {obj["kind"] for obj in helpers.render_set(set_id)}:
            rendered.setdefault(kind, []).append(set_id)
    return rendered


def test_loops_over_optional_objects_are_found() -> None:
    """The scan sees the loops it is meant to guard (if it found none, the guard below would be empty)."""
    expected = {"HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "ServiceMonitor", "StatefulSet"}
    actual = expected & set(kinds_checked_by_loops())
    assert actual == expected, f"kinds found in the chart tests' loops: {kinds_checked_by_loops()}"


def test_the_scan_reads_loops_and_comprehensions() -> None:
    source = (
        "def test_a(objects):\n"
        "    for a in helpers.find(objects, 'Ingress'):\n        pass\n"
        "    x = [p for p in helpers.find(objects, 'PodDisruptionBudget', name)]\n"
        "    y = helpers.find(objects, 'Secret')\n"
        "def test_b():\n"
        "    for a in helpers.find(helpers.render(OWN), 'Rollout'):\n        pass\n"
        "def queries(objects):\n"
        "    return [o for o in helpers.find(objects, 'ScaledObject')]\n"
    )
    assert looped_kinds(source) == {"Ingress", "PodDisruptionBudget"}


@pytest.mark.parametrize("kind", kinds_checked_by_loops())
def test_a_shipped_values_set_renders_every_kind_a_check_loops_over(kind: str) -> None:
    actual = kinds_rendered().get(kind, [])
    assert actual, (
        f"no values set renders a {kind}: every check looping over {kind} objects passes without checking "
        "anything; add a charts/model-api/ci/*-values.yaml that renders one, or, for an object no shipped "
        "file may render alone (CRD-backed), an opt-in set in tests/chart/helpers.py OPT_IN_SETS"
    )
