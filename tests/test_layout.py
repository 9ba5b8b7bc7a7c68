"""The layout stays the one README.md describes ("How the code is laid out"): imports flow one way, each
command imports only what it needs, and the README's table names every subpackage.

The import check reads every module with `ast` (imports inside functions count too), so a module that
imports against the direction fails here with the line to change.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOADTEST = ROOT / "loadtest"

# area -> the loadtest areas it may import (its own area always). `loadtest.canary` is the canary
# rehearsal's room (another change adds it).
ALLOWED: dict[str, set[str]] = {
    "loadtest.probe": set(),
    "loadtest.report": set(),
    "loadtest.chart": {"loadtest.probe"},
    "loadtest.load": {"loadtest.report", "loadtest.probe"},
    "loadtest.autoscaling": {"loadtest.chart", "loadtest.probe"},
    "loadtest.cluster": {"loadtest.chart", "loadtest.autoscaling", "loadtest.report", "loadtest.probe"},
    "loadtest.canary": {"loadtest.chart", "loadtest.load", "loadtest.report", "loadtest.probe"},
    "loadtest.commands": {
        "loadtest.canary",
        "loadtest.chart",
        "loadtest.load",
        "loadtest.autoscaling",
        "loadtest.cluster",
        "loadtest.report",
        "loadtest.probe",
    },
    "loadtest.locustfile": {"loadtest.load"},
    "loadtest.__main__": set(),  # it imports the chosen command by name (importlib), never statically
    "loadtest": set(),
}
# What a command must not import: (command, modules that must stay out of sys.modules).
HEAVY_FOR = {
    None: ("loadtest.commands", "locust", "gevent", "matplotlib", "kubernetes", "helm_python"),
    "predict": ("locust", "gevent", "matplotlib", "kubernetes"),
    "size": ("locust", "gevent", "matplotlib", "kubernetes"),
    "run": ("kubernetes",),
}


def area_of(module: str) -> str:
    """loadtest.chart.release -> loadtest.chart; loadtest.probe -> loadtest.probe; service -> service."""
    parts = module.split(".")
    if parts[0] != "loadtest":
        return parts[0]
    return ".".join(parts[:2])


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for every import statement in `source`, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from loadtest import chart` imports loadtest.chart
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def violations(module: str, source: str) -> list[str]:
    """Each import of `module`'s source that goes against the layout's direction, as "line: why"."""
    own = area_of(module)
    wrong: dict[tuple[int, str], str] = {}  # (line, area imported) -> module named
    for line, target in imported_modules(source):
        if target.split(".")[0] != "loadtest" or target == "loadtest":
            continue
        wanted = area_of(target)
        if own == "service" or (wanted != own and wanted not in ALLOWED[own]):
            wrong.setdefault((line, wanted), target)
    allowed = "nothing of loadtest" if own == "service" else sorted(ALLOWED[own]) or "nothing"
    return [f"{line}: imports {target}; {own} may import {allowed}" for (line, _), target in wrong.items()]


def loadtest_modules() -> list[Path]:
    return sorted(LOADTEST.rglob("*.py"))


@pytest.mark.parametrize("path", loadtest_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_loadtest_module_imports_along_the_layout(path: Path) -> None:
    module = module_name(path)
    assert area_of(module) in ALLOWED, f"{module}: a new area of loadtest; add it to README and ALLOWED"
    actual = violations(module, path.read_text())
    assert actual == [], f"{path.relative_to(ROOT)} imports against the layout: {actual}"


def test_service_imports_nothing_of_loadtest() -> None:
    actual = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "service").rglob("*.py"))
        if (found := violations("service", path.read_text()))
    }
    assert actual == {}, "service modules importing loadtest"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("loadtest.chart.release", "from loadtest.load import runner\n", 1),
        ("loadtest.report.files", "def f():\n    import loadtest.cluster.proxy\n", 1),
        ("loadtest.autoscaling.spec", "from loadtest import commands\n", 1),
        ("service", "from loadtest.chart import release\n", 1),
        ("loadtest.cluster.watch", "from loadtest.autoscaling.watcher import HpaWatcher\n", 0),
        ("loadtest.canary.rehearsal", "from loadtest.load.runner import run_load\n", 0),
        ("loadtest.canary.rehearsal", "from loadtest.commands import demo\n", 1),
    ],
)
def test_the_import_check_catches_what_it_should(module: str, source: str, expected: int) -> None:
    actual = len(violations(module, source))
    assert actual == expected, f"violations found in {module}: {source!r}"


@pytest.mark.parametrize("command", list(HEAVY_FOR), ids=lambda c: c or "no command")
def test_a_command_imports_only_what_it_needs(command: str | None) -> None:
    """`python -m loadtest predict --help` must not pay for locust (and gevent's patching), matplotlib or
    the kubernetes client; `python -m loadtest --help` imports no command."""
    argv = [command, "--help"] if command else ["--help"]
    script = (
        "import contextlib, io, json, sys\n"
        "from loadtest.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(finished.stdout.splitlines()[-1])
    actual = sorted({heavy for heavy in HEAVY_FOR[command] for m in loaded if m.split(".")[0] == heavy
                     or m.startswith(heavy + ".") or m == heavy})  # fmt: skip
    assert actual == [], f"python -m loadtest {' '.join(argv)} imported {actual}"


def readme_layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## How the code is laid out\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, "README.md has no '## How the code is laid out' section"
    return match.group(1)


def test_readme_layout_table_names_every_subpackage() -> None:
    named = set(re.findall(r"`(loadtest/[a-z_]+/)`", readme_layout_section()))
    present = {f"loadtest/{p.parent.name}/" for p in LOADTEST.glob("*/__init__.py")}
    assert present <= named, f"subpackages missing from README's layout table: {sorted(present - named)}"
