"""Lint layer: what `ct lint --config ct.yaml` runs, in-process — helm lint --strict per values set,
yamllint with the chart's lintconf, yamale on Chart.yaml, and ct.yaml's own settings honoured."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yamale
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from loadtest.chart import kube_schema, release
from tests.chart import helpers

CT_CONFIG = release.ROOT / "ct.yaml"
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


@functools.cache
def ct_config() -> dict[str, Any]:
    """ct.yaml, parsed; the lint tests use its paths rather than restating them."""
    return yaml.safe_load(CT_CONFIG.read_text()) or {}


def ct_path(key: str) -> Path:
    """A file ct.yaml names (relative to the repo root, where ct runs)."""
    value = ct_config().get(key)
    assert isinstance(value, str) and value, f"ct.yaml: {key} must name a file, got {value!r}"
    return release.ROOT / value


def lint_targets() -> list[Path]:
    """The YAML files ct lint runs yamllint on: Chart.yaml, values.yaml, ci values, and our env files."""
    return [
        helpers.CHART_DIR / "Chart.yaml",
        helpers.CHART_DIR / "values.yaml",
        *sorted((helpers.CHART_DIR / "ci").glob("*.yaml")),
        helpers.VALUES_DIR / "values-dev.yaml",
        helpers.VALUES_DIR / "values-prod.yaml",
    ]


@pytest.mark.parametrize(
    "minor", [kube_schema.kube_version_floor(helpers.CHART_DIR), kube_schema.supported_minors()[-1]]
)
def test_helm_lint_strict_passes(value_set: str, minor: str) -> None:
    values = helpers.values_for(helpers.VALUE_SETS[value_set])
    report = helm_python.lint(str(helpers.CHART_DIR), values, strict=True, kube_version=f"v{minor}.0")
    findings = [
        f"{SEVERITY.get(m['severity'], m['severity'])}: {m['path']}: {m['error']}"
        for m in report["messages"]
        if m["severity"] >= 2
    ] + list(report["errors"])
    assert findings == [], f"helm lint --strict ({value_set}, Kubernetes {minor}):\n" + "\n".join(findings)


def test_ct_yaml_names_this_chart_and_existing_files() -> None:
    config = ct_config()
    chart_dirs = [release.ROOT / d for d in config.get("chart-dirs") or []]
    assert release.CHART_DIR.parent in chart_dirs, (
        f"ct.yaml: chart-dirs {config.get('chart-dirs')} miss charts/"
    )
    for key in ("lint-conf", "chart-yaml-schema"):
        assert ct_path(key).is_file(), f"ct.yaml: {key} names {ct_path(key)}, which does not exist"
    assert config.get("target-branch"), "ct.yaml: target-branch is unset (version-increment needs it)"
    assert config.get("validate-maintainers") is False, (
        "ct.yaml: validate-maintainers needs network; set false"
    )


@pytest.mark.parametrize(
    "path", lint_targets(), ids=lambda p: p.name if p.parent != helpers.CHART_DIR / "ci" else f"ci/{p.name}"
)
def test_yamllint_with_the_charts_lintconf(path: Path) -> None:
    config = YamlLintConfig(file=str(ct_path("lint-conf")))
    problems = [
        f"{path.name}:{p.line}:{p.column}: [{p.level}] {p.desc} ({p.rule})"
        for p in linter.run(path.read_text(), config, str(path))
    ]
    assert problems == [], "yamllint (lint-conf from ct.yaml):\n" + "\n".join(problems)


def test_chart_yaml_matches_the_chart_schema() -> None:
    schema = yamale.make_schema(str(ct_path("chart-yaml-schema")))
    data = yamale.make_data(str(helpers.CHART_DIR / "Chart.yaml"))
    try:
        yamale.validate(schema, data, strict=True)
    except yamale.YamaleError as error:
        pytest.fail(f"Chart.yaml does not match {ct_path('chart-yaml-schema').name}:\n{error}")


def test_yamale_schema_refuses_a_broken_chart_yaml(tmp_path: Path) -> None:
    """The chart schema must be able to fail: a Chart.yaml without a version is refused."""
    chart = yaml.safe_load((helpers.CHART_DIR / "Chart.yaml").read_text())
    del chart["version"]
    broken = tmp_path / "Chart.yaml"
    broken.write_text(yaml.safe_dump(chart))
    schema = yamale.make_schema(str(ct_path("chart-yaml-schema")))
    with pytest.raises(yamale.YamaleError, match="version"):
        yamale.validate(schema, yamale.make_data(str(broken)), strict=True)


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(release.ROOT), *args], capture_output=True, text=True, check=False
    )


def semver_key(version: str) -> tuple[int, ...]:
    core = version.split("-")[0].split("+")[0]
    return tuple(int(part) for part in core.split("."))


def test_chart_version_incremented_against_target_branch() -> None:
    if not ct_config().get("check-version-increment", True):
        pytest.skip("ct.yaml: check-version-increment is false")
    branch = str(ct_config().get("target-branch", "main"))
    base = next(
        (
            ref
            for ref in (f"origin/{branch}", branch)
            if git("rev-parse", "--verify", "-q", ref).returncode == 0
        ),
        None,
    )
    if base is None:
        pytest.skip(
            f"git history has no {branch!r} or 'origin/{branch}' branch to compare the chart version with"
        )
    chart_path = release.CHART_DIR.relative_to(release.ROOT)
    if git("diff", "--quiet", base, "--", str(chart_path)).returncode == 0:
        pytest.skip(f"the chart is unchanged against {base}: no version increment needed")
    old_chart = git("show", f"{base}:{chart_path}/Chart.yaml")
    if old_chart.returncode != 0:
        pytest.skip(f"{base} has no {chart_path}/Chart.yaml: the chart is new")
    old_version = yaml.safe_load(old_chart.stdout)["version"]
    new_version = yaml.safe_load((helpers.CHART_DIR / "Chart.yaml").read_text())["version"]
    assert semver_key(new_version) > semver_key(old_version), (
        f"Chart.yaml: version {new_version} must be above {old_version} on {base}: the chart changed"
    )
