"""The Dockerfile without a Docker engine: hadolint, the image contract read from the file, the build
context .dockerignore leaves, and agreement with what the chart renders."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from loadtest.chart import release
from tests.docker.dockerfile import DOCKERFILE, ROOT, Dockerfile, build_context_files

CONTAINER_COMMAND = ["model-api", "serve"]
CONTAINER_USER = "10001:10001"
CONTAINER_PORT = 8080
# A precise patch release and Debian codename, optionally a digest: never `latest` or a moving minor tag.
PINNED_PYTHON_SLIM = re.compile(r"^python:3\.12\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?$")
TRAINING_ONLY = ("scikit-learn", "skl2onnx", "onnx", "scipy", "joblib", "threadpoolctl")
RUNTIME_VENV = "/opt/venv"


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.load()


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_hadolint_reports_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    config = ROOT / ".hadolint.yaml"
    command = [str(hadolint), *(["--config", str(config)] if config.exists() else []), str(DOCKERFILE)]

    result = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, f"hadolint Dockerfile:\n{result.stdout}{result.stderr}"


def test_build_is_multi_stage_and_runtime_copies_only_the_venv(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stages[0].name
    expected = [f"--from={builder} {RUNTIME_VENV} {RUNTIME_VENV}"]

    actual = [copy.value for copy in dockerfile.final.all("COPY")]

    assert len(dockerfile.stages) >= 2, "Dockerfile: expected a builder stage and a runtime stage"
    assert actual == expected, "Dockerfile runtime stage: COPY instructions"


def test_every_stage_uses_the_same_pinned_python_slim_base(dockerfile: Dockerfile) -> None:
    bases = [dockerfile.resolve(stage.base) for stage in dockerfile.stages]

    unpinned = [base for base in bases if not PINNED_PYTHON_SLIM.match(base)]

    assert unpinned == [], f"Dockerfile FROM: not a pinned python:3.12.<patch>-slim-<debian>: {unpinned}"
    # The runtime venv's python is a symlink into the base image: both stages must be the same image.
    assert len(set(bases)) == 1, f"Dockerfile FROM: stages use different base images: {bases}"


def test_runtime_runs_as_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    users = [user.value for user in dockerfile.final.all("USER")]

    assert users[-1:] == [CONTAINER_USER], f"Dockerfile runtime stage: USER is {users}"


def test_runtime_exposes_the_service_port(dockerfile: Dockerfile) -> None:
    exposed = [expose.value for expose in dockerfile.final.all("EXPOSE")]

    assert exposed == [str(CONTAINER_PORT)], "Dockerfile runtime stage: EXPOSE"


def test_entrypoint_is_exec_form_model_api_serve_without_cmd(dockerfile: Dockerfile) -> None:
    entrypoints = [entry.exec_form() for entry in dockerfile.final.all("ENTRYPOINT")]

    assert entrypoints == [CONTAINER_COMMAND], "Dockerfile runtime stage: ENTRYPOINT (exec form)"
    # A CMD would append its words to every `docker run` of the entrypoint.
    assert dockerfile.final.all("CMD") == [], "Dockerfile runtime stage: unexpected CMD"


def test_runtime_environment_serves_from_the_venv_without_writing_bytecode(dockerfile: Dockerfile) -> None:
    expected = {"PATH": f"{RUNTIME_VENV}/bin:$PATH", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}

    actual = dockerfile.final.env()

    assert actual == expected, "Dockerfile runtime stage: ENV"


def test_no_add_instructions(dockerfile: Dockerfile) -> None:
    # ADD fetches URLs and unpacks archives implicitly; COPY says what it does.
    adds = [f"line {add.line}: ADD {add.value}" for stage in dockerfile.stages for add in stage.all("ADD")]

    assert adds == [], "Dockerfile: ADD instructions"


def test_every_pip_install_is_pinned_by_the_constraints_file_without_cache(dockerfile: Dockerfile) -> None:
    installs = [run for stage in dockerfile.stages for run in stage.all("RUN") if "pip install" in run.value]

    unpinned = [run.line for run in installs if "-c service/constraints.txt" not in run.value]
    cached = [run.line for run in installs if "--no-cache-dir" not in run.value]

    assert len(installs) >= 1, "Dockerfile: no pip install found"
    assert unpinned == [], "Dockerfile RUN pip install without `-c service/constraints.txt` at lines"
    assert cached == [], "Dockerfile RUN pip install without --no-cache-dir at lines"
    assert (ROOT / "service" / "constraints.txt").is_file(), "service/constraints.txt is missing"


def test_training_extras_are_installed_outside_the_runtime_venv(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stages[0]

    runtime_pip = f"{RUNTIME_VENV}/bin/pip install"
    runtime_installs = [run.value for run in builder.all("RUN") if runtime_pip in run.value]

    assert runtime_installs, f"Dockerfile builder: no pip install into {RUNTIME_VENV}"
    assert not any("[train]" in run for run in runtime_installs), (
        f"Dockerfile builder: the training extras ({', '.join(TRAINING_ONLY)}) go into {RUNTIME_VENV}"
    )


def test_labels_name_the_project_version_and_license(dockerfile: Dockerfile, pyproject: dict) -> None:
    project = pyproject["project"]
    expected = {
        "org.opencontainers.image.title": project["name"],
        "org.opencontainers.image.version": project["version"],
        "org.opencontainers.image.licenses": project["license"],
    }
    labels: dict[str, str] = {}
    for label in dockerfile.final.all("LABEL"):
        labels.update(label.pairs())
    args: dict[str, str] = {}
    for arg in dockerfile.final.all("ARG"):
        args.update(arg.pairs())

    actual = {key: labels.get(key, "").replace("${VERSION}", args.get("VERSION", "")) for key in expected}

    assert actual == expected, "Dockerfile runtime stage: LABEL org.opencontainers.image.*"


def test_healthcheck_probes_readiness_in_exec_form(dockerfile: Dockerfile) -> None:
    healthchecks = [check.value for check in dockerfile.final.all("HEALTHCHECK")]

    command = healthchecks[0].split(" CMD ", 1)[1] if len(healthchecks) == 1 else ""

    assert command.startswith("["), f"Dockerfile HEALTHCHECK: expected one in exec form, found {healthchecks}"
    assert "/readyz" in command, "Dockerfile HEALTHCHECK: must probe /readyz"


def test_build_context_holds_the_sources_and_not_the_local_artifact_or_venv() -> None:
    context = build_context_files()

    missing = [f for f in ("pyproject.toml", "README.md", "service/constraints.txt") if f not in context]
    leaked = [
        f
        for f in context
        if f.startswith((".venv/", ".git/", "tests/", "reports/", "service/model_api/artifacts/"))
        or "__pycache__" in f
    ]

    assert missing == [], "build context (.dockerignore): required files missing"
    assert leaked == [], "build context (.dockerignore): files that must stay out"


def test_chart_runs_the_image_as_the_dockerfile_declares(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    expected = {
        "command": final.all("ENTRYPOINT")[-1].exec_form(),
        "user": final.all("USER")[-1].value,
        "port": int(final.all("EXPOSE")[-1].value),
        "readOnlyRootFilesystem": True,
    }
    objects = release.render()
    container = release.main_container(objects)
    pod_security = release.workload(objects)["spec"]["template"]["spec"].get("securityContext", {})
    security = {**pod_security, **container.get("securityContext", {})}

    actual = {
        "command": container.get("command"),
        "user": f"{security.get('runAsUser')}:{security.get('runAsGroup')}",
        "port": next((p["containerPort"] for p in container.get("ports", []) if p["name"] == "http"), None),
        "readOnlyRootFilesystem": security.get("readOnlyRootFilesystem"),
    }

    assert actual == expected, "chart workload container model-api vs Dockerfile (command/USER/EXPOSE/rootfs)"
