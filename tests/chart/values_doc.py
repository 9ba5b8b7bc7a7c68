"""The chart's values documentation: bitnami-style comments in values.yaml, checked and turned into a table.

`## @section Title` starts a group; `## @param dotted.key Description` documents a key (and everything under
it, for objects passed through to Kubernetes). Every leaf of values.yaml must be documented, every @param
must name a real key, and the README's parameters block is generated from the comments:

    python -m tests.chart.values_doc            # check; exit 1 listing every problem
    python -m tests.chart.values_doc --write    # rewrite the README block between the markers
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "model-api"
VALUES_FILE = CHART_DIR / "values.yaml"
README_FILE = CHART_DIR / "README.md"
START_MARKER = "<!-- parameters:start -->"
END_MARKER = "<!-- parameters:end -->"

_SECTION = re.compile(r"^\s*## @section\s+(?P<title>.+?)\s*$")
_PARAM = re.compile(r"^\s*## @param\s+(?P<key>\S+)(?:\s+(?P<description>.*?))?\s*$")
_MISSING = object()


class ValuesDocError(ValueError):
    """The README cannot take a generated table (its markers are missing or out of order)."""


@dataclass(frozen=True)
class Param:
    key: str
    description: str
    section: str
    line: int


def parse_params(values_text: str) -> list[Param]:
    """Every `## @param` comment, in file order, with the `## @section` it falls under."""
    params: list[Param] = []
    section = ""
    for number, line in enumerate(values_text.splitlines(), start=1):
        if match := _SECTION.match(line):
            section = match["title"]
        elif match := _PARAM.match(line):
            params.append(Param(match["key"], match["description"] or "", section, number))
    return params


def leaf_keys(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the values' leaves: scalars, lists and empty maps (non-empty maps are descended)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaf_keys(value, f"{path}.")
        else:
            yield path


def lookup(values: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key, or _MISSING."""
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _covered(key: str, documented: set[str]) -> bool:
    """A key is documented by its own @param or by one on an object containing it."""
    parts = key.split(".")
    return any(".".join(parts[:end]) in documented for end in range(len(parts), 0, -1))


def find_problems(values_text: str) -> list[str]:
    """Every documentation problem in values.yaml's text, each naming the key and the line."""
    values = yaml.safe_load(values_text) or {}
    params = parse_params(values_text)
    problems: list[str] = []
    seen: dict[str, int] = {}
    for param in params:
        where = f"values.yaml:{param.line}"
        if param.key in seen:
            problems.append(f"{where}: @param {param.key} repeats the one on line {seen[param.key]}")
        seen.setdefault(param.key, param.line)
        if lookup(values, param.key) is _MISSING:
            problems.append(f"{where}: @param {param.key} names no key of values.yaml")
        if not param.description:
            problems.append(f"{where}: @param {param.key} has no description")
        if not param.section:
            problems.append(f"{where}: @param {param.key} comes before any @section")
    documented = set(seen)
    problems.extend(
        f"values.yaml: key {key} has no ## @param comment"
        for key in leaf_keys(values)
        if not _covered(key, documented)
    )
    return problems


def format_default(value: Any) -> str:
    """A default value as a Markdown code span (JSON notation; `null` for none)."""
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    return "`" + text.replace("|", "\\|") + "`"


def render_table(values_text: str) -> str:
    """The Markdown parameters block: one `###` heading and one table per section."""
    values = yaml.safe_load(values_text) or {}
    lines: list[str] = []
    section = None
    for param in parse_params(values_text):
        if param.section != section:
            section = param.section
            if lines:
                lines.append("")
            lines += [f"### {section}", "", "| Name | Description | Default |", "| --- | --- | --- |"]
        description = param.description.replace("|", "\\|")
        lines.append(f"| `{param.key}` | {description} | {format_default(lookup(values, param.key))} |")
    return "\n".join(lines) + "\n"


def replace_block(readme_text: str, table: str) -> str:
    """The README with the text between the parameters markers replaced by `table`."""
    start = readme_text.find(START_MARKER)
    end = readme_text.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise ValuesDocError(f"README.md needs {START_MARKER} followed by {END_MARKER}")
    head = readme_text[: start + len(START_MARKER)]
    return f"{head}\n\n{table}\n{readme_text[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chart.values_doc", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--write", action="store_true", help="rewrite the README parameters block")
    args = parser.parse_args(argv)
    values_text = VALUES_FILE.read_text()
    problems = find_problems(values_text)
    readme_text = README_FILE.read_text()
    expected = replace_block(readme_text, render_table(values_text))
    if args.write and expected != readme_text:
        README_FILE.write_text(expected)
        print(f"rewrote the parameters block of {README_FILE}")
    elif expected != readme_text:
        problems.append("README.md: the parameters block differs from values.yaml; run with --write")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
