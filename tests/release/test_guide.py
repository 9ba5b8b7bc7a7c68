"""The chart README's production guide: every command in it is either run here or marked as needing a
cluster or a registry, and the section starts from the image.

Blocks marked `# run by the suite` are executed as written with bash, in a scratch directory that holds
the repository's chart and values files, with `helm` being tests/release/helm_shim.py (Helm's own engine,
in-process). Their output is checked against what the block asks for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.chart import helpers
from tests.release.support import ROOT

README = helpers.CHART_DIR / "README.md"
MARKERS = ("# run by the suite", "# needs a cluster", "# needs a registry")
COMMANDS = ("helm", "kubectl", "docker", "aws", "gcloud", "az", "cosign", "curl", "oras", "openssl")
BLOCK = re.compile(r"^```console\n(?P<body>.*?)^```$", re.M | re.S)


def production_section() -> str:
    text = README.read_text()
    match = re.search(r"^### Production\n(?P<body>.*?)(?=^### |^## )", text, re.M | re.S)
    assert match, f"{README.name}: no '### Production' section"
    return match["body"]


def blocks() -> list[str]:
    return [m["body"] for m in BLOCK.finditer(production_section())]


def suite_blocks() -> list[str]:
    return [b for b in blocks() if b.startswith(MARKERS[0])]


def block_id(block: str) -> str:
    return block.splitlines()[0].split(":", 1)[-1].strip()[:50] or "block"


def test_every_block_says_what_it_needs() -> None:
    unmarked = [b.splitlines()[0] for b in blocks() if not b.startswith(MARKERS)]
    assert (len(blocks()) >= 5, unmarked) == (True, []), f"blocks without one of {MARKERS}: {unmarked}"


def test_no_command_outside_a_block() -> None:
    prose = BLOCK.sub("", production_section())
    inline = [span for span in re.findall(r"`([^`]+)`", prose) if span.split()[0] in COMMANDS]
    assert inline == [], (
        f"commands in the prose of the production guide (put them in a marked block): {inline}"
    )


def test_guide_starts_from_the_image_then_pull_secrets_then_the_key_then_install() -> None:
    headings = re.findall(r"^#### (.+)$", production_section(), re.M)
    assert headings == [
        "1. The image",
        "2. Pull credentials for a private registry",
        "3. The API key Secret",
        "4. Install",
    ]
    section = production_section()
    wanted = [
        "docker buildx build --platform linux/amd64,linux/arm64",
        "--push",
        "aws ecr get-login-password",
        "gcloud auth configure-docker",
        "az acr login",
        "docker login",
        "kubectl --namespace model-api create secret docker-registry regcred",
        "MODEL_API_API_KEY_FILE",
        "helm install model-api oci://ghcr.io/model-api/charts/model-api",
        "helm install model-api charts/model-api",
    ]
    assert [w for w in wanted if w not in section] == []


def test_guide_names_the_secret_values_prod_expects() -> None:
    prod = yaml.safe_load((ROOT / "values-prod.yaml").read_text())["apiKey"]
    section = production_section()
    create = f"create secret generic {prod['existingSecret']}"
    assert (create in section, f"--from-literal={prod['existingSecretKey']}=" in section) == (True, True)


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A directory laid out like the repository root for the guide's relative paths, and an environment
    whose `helm` is the suite's shim."""
    for name in ("charts", "values-prod.yaml", "values-dev.yaml"):
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "helm"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.release.helm_shim "$@"\n')
    shim.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    return tmp_path, env


def run_block(block: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", block],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("block", suite_blocks(), ids=block_id)
def test_suite_block_runs_and_shows_what_it_promises(
    block: str, scratch: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = scratch
    done = run_block(block, cwd, env)
    assert done.returncode == 0, (
        f"guide block failed:\n{block}\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    )
    lines = {line.strip() for line in done.stdout.splitlines() if line.strip()}
    if "image.digest=" in block:
        repository = re.search(r"image\.repository=(\S+)", block)[1]
        digest = re.search(r"image\.digest=(sha256:[0-9a-f]{64})", block)[1]
        assert lines == {f"image: {repository}@{digest}"}
    elif "imagePullSecrets" in block:
        assert lines == {"imagePullSecrets:", "- name: regcred", "--"}
    elif "helm package" in block:
        version = yaml.safe_load((helpers.CHART_DIR / "Chart.yaml").read_text())["version"]
        archive = cwd / "dist" / f"model-api-{version}.tgz"
        assert (archive.is_file(), "1 chart(s) linted, 0 chart(s) failed" in lines) == (True, True), (
            done.stdout
        )
    else:
        pytest.fail(f"a `run by the suite` block this test has no expectation for:\n{block}")


def test_the_shim_refuses_what_it_cannot_run(scratch: tuple[Path, dict[str, str]]) -> None:
    """A cluster command marked `run by the suite` would fail here, not pass silently."""
    cwd, env = scratch
    done = run_block("helm install model-api charts/model-api -f values-prod.yaml", cwd, env)
    assert (done.returncode, "unsupported command line" in done.stderr) == (64, True)
