"""What the release tests share: the stamping script as a module, the workflow files as data, and a step of
a workflow run as the runner would run it (bash, the step's `env:`, GITHUB_OUTPUT collected)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPT = ROOT / ".github" / "scripts" / "release_chart.py"
RELEASE_WORKFLOW = WORKFLOWS / "release.yaml"
CI_WORKFLOW = WORKFLOWS / "ci.yaml"


def release_chart() -> ModuleType:
    """.github/scripts/release_chart.py imported as a module (it is not in a package)."""
    spec = importlib.util.spec_from_file_location("release_chart", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("release_chart", module)
    spec.loader.exec_module(module)
    return module


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yaml"), *WORKFLOWS.glob("*.yml")])


def load_workflow(path: Path) -> dict[str, Any]:
    """A workflow as data. PyYAML reads the key `on` as the boolean True (YAML 1.1); it is put back."""
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def step(workflow: Mapping[str, Any], job: str, step_id: str) -> dict[str, Any]:
    """The step with `id: step_id` of `job`; LookupError naming both otherwise."""
    steps = [s for s in workflow["jobs"][job]["steps"] if s.get("id") == step_id]
    if len(steps) != 1:
        raise LookupError(f"job {job!r}: expected one step with id {step_id!r}, found {len(steps)}")
    return steps[0]


def steps_using(workflow: Mapping[str, Any], job: str, action: str) -> list[dict[str, Any]]:
    """The steps of `job` that use `action` (owner/name, any ref)."""
    return [s for s in workflow["jobs"][job]["steps"] if str(s.get("uses", "")).split("@")[0] == action]


def run_step(
    run: str, env: Mapping[str, str], tmp: Path, *, cwd: Path = ROOT
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run a step's `run:` script as GitHub's runner does for `shell: bash` (bash -eo pipefail), with the
    step's `env`, RUNNER_TEMP and GITHUB_OUTPUT in `tmp`, and this interpreter's environment first on PATH
    (the workflow's setup-python). Returns the process and the outputs the step wrote."""
    output = tmp / "github_output"
    output.write_text("")
    full_env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(tmp)),
        "LANG": "C.UTF-8",
        "RUNNER_TEMP": str(tmp),
        "GITHUB_OUTPUT": str(output),
        **env,
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return done, outputs
