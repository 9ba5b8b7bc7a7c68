"""The Dockerfile's build steps replayed outside Docker, then its entrypoint run as the container runs it.

The builder stage's COPY and RUN instructions are read from the Dockerfile (so this test cannot drift from
it) and executed in a temporary directory standing for the image: the stage's paths (/opt/venv, /opt/train)
are mapped into it and `python` is the current interpreter. Two deliberate differences: pip may use its
cache (the image build must not keep one, this test must stay quick), and the runtime stage's stdlib
precompilation is left out (it compiles the base image's /usr/local, not ours).

Then the runtime stage's ENTRYPOINT starts with the runtime ENV, as the container's non-root user when this
runs as root (else with the tree made read-only), HOME and the working directory unwritable and only
TMPDIR writable — the read-only root filesystem of the pod.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadtest.chart.localpod import free_port
from loadtest.probe import WaitAborted, WaitTimeout, wait_for_http
from tests.docker.dockerfile import Dockerfile, copy_build_context

pytestmark = pytest.mark.slow

STEP_TIMEOUT_SECONDS = 900  # one pip install of the training extras; the wheels usually come from pip's cache
READY_TIMEOUT_SECONDS = 60
TRAINING_ONLY_MODULES = ("sklearn", "skl2onnx", "onnx", "scipy", "joblib", "threadpoolctl")
IMAGE_PATHS = ("/opt/venv", "/opt/train")


@dataclass
class ReplayedImage:
    root: Path  # stands for the image's filesystem: <root>/opt/venv, <root>/src, ...
    dockerfile: Dockerfile
    log: str

    def path(self, image_path: str) -> str:
        """An image path mapped into the replay tree (only the stage's venv paths move)."""
        for prefix in IMAGE_PATHS:
            image_path = image_path.replace(prefix, str(self.root) + prefix)
        return image_path

    def runtime_env(self, **extra: str) -> dict[str, str]:
        """The runtime stage's ENV with paths mapped, over a minimal host environment."""
        base = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        for key, value in self.dockerfile.final.env().items():
            base[key] = self.path(value).replace("$PATH", base.get("PATH", ""))
        return {**base, **extra}


@pytest.fixture(scope="module")
def image() -> Iterator[ReplayedImage]:
    root = Path(tempfile.mkdtemp(prefix="model-api-image-"))
    root.chmod(0o755)  # traversable by the unprivileged user the service runs as
    try:
        yield _build(root, Dockerfile.load())
    finally:
        _make_writable(root)
        shutil.rmtree(root, ignore_errors=True)


def _build(root: Path, dockerfile: Dockerfile) -> ReplayedImage:
    builder = dockerfile.stages[0]
    workdir = [w.value for w in builder.all("WORKDIR")][-1]
    source = root / workdir.lstrip("/")
    copy_build_context(builder, source)

    interpreter = root / "host-bin"  # `python` in the RUN lines is the interpreter running this test
    interpreter.mkdir()
    (interpreter / "python").symlink_to(sys.executable)
    env = {**os.environ, **builder.env(), "PATH": f"{interpreter}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    replayed = ReplayedImage(root, dockerfile, log="")
    for run in builder.all("RUN"):
        command = replayed.path(run.value).replace(" --no-cache-dir", "")
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
        )
        replayed.log += f"$ {command}\n{result.stdout[-2000:]}{result.stderr[-4000:]}\n"
        assert result.returncode == 0, f"Dockerfile line {run.line} failed:\n{replayed.log}"
    return replayed


def _make_writable(root: Path) -> None:
    for directory, _, names in os.walk(root):
        for entry in [directory, *(os.path.join(directory, n) for n in names)]:
            if not os.path.islink(entry):
                os.chmod(entry, os.stat(entry).st_mode | stat.S_IWUSR)


def _make_read_only(path: Path) -> None:
    for directory, _, names in os.walk(path):
        for entry in [directory, *(os.path.join(directory, n) for n in names)]:
            if not os.path.islink(entry):
                os.chmod(entry, os.stat(entry).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _without_privileges(command: list[str]) -> list[str]:
    """As root, run `command` with no capabilities: file permission bits then bind it like any user."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's capabilities for the read-only check"
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--", *command]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    output: Path

    def tail(self) -> str:
        return self.output.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def served(image: ReplayedImage) -> Iterator[Served]:
    """The ENTRYPOINT running on a free loopback port; the image tree, HOME and cwd read-only, TMPDIR not."""
    home = image.root / "home"
    home.mkdir()
    scratch = image.root / "tmp"
    scratch.mkdir()
    _make_read_only(image.root / "opt")
    _make_read_only(home)
    port = free_port()
    env = image.runtime_env(HOME=str(home), TMPDIR=str(scratch), MODEL_API_PORT=str(port))
    entrypoint = image.dockerfile.final.all("ENTRYPOINT")[-1].exec_form() or []
    command = [shutil.which(entrypoint[0], path=env["PATH"]) or entrypoint[0], *entrypoint[1:]]
    output = image.root / "server.log"  # outside the read-only part; a pipe nobody reads would fill up
    with output.open("wb") as sink:
        process = subprocess.Popen(
            _without_privileges([*command, "--host", "127.0.0.1"]),
            cwd=home,
            env=env,
            stdout=sink,
            stderr=sink,
        )
    try:
        yield Served(process, port, env, output)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _wait_ready(served: Served) -> str:
    """ "ready" once /readyz answers 200 (loadtest.probe's wait), else what was seen last."""

    def exited() -> str | None:
        return None if served.process.poll() is None else f"exited with {served.process.returncode}"

    try:
        wait_for_http(
            f"http://127.0.0.1:{served.port}/readyz",
            timeout=READY_TIMEOUT_SECONDS,
            interval=0.1,
            gave_up=exited,
        )
    except (WaitTimeout, WaitAborted) as error:
        return str(error)
    return "ready"


def _python_in_runtime_venv(image: ReplayedImage, code: str) -> subprocess.CompletedProcess[str]:
    python = image.path("/opt/venv/bin/python")
    return subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=60)


def test_runtime_venv_holds_no_training_package(image: ReplayedImage) -> None:
    probe = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {TRAINING_ONLY_MODULES!r} if importlib.util.find_spec(m)]))"
    )
    result = _python_in_runtime_venv(image, probe)

    installed = json.loads(result.stdout or "null")

    assert installed == [], f"replayed image /opt/venv: training-only modules installed\n{result.stderr}"


def test_model_is_built_at_the_service_default_path(image: ReplayedImage) -> None:
    probe = "from model_api.settings import DEFAULT_MODEL_PATH as p; print(p.is_file(), p.stat().st_size)"
    result = _python_in_runtime_venv(image, probe)

    exists, _, size = result.stdout.strip().partition(" ")

    assert (result.returncode, exists) == (0, "True"), f"replayed image: no model artifact\n{result.stderr}"
    assert int(size) > 0, "replayed image: model artifact is empty"


def test_entrypoint_becomes_ready_without_write_access(served: Served) -> None:
    status = _wait_ready(served)

    assert status == "ready", f"replayed image ENTRYPOINT: {status}\n{served.tail()}"


def test_healthcheck_command_passes_against_the_running_service(image: ReplayedImage, served: Served) -> None:
    assert _wait_ready(served) == "ready", f"replayed image: not ready\n{served.tail()}"
    healthcheck = image.dockerfile.final.all("HEALTHCHECK")[-1].value
    command = json.loads(healthcheck.split(" CMD ", 1)[1])

    result = subprocess.run(
        _without_privileges(command), env=served.env, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, f"Dockerfile HEALTHCHECK {shlex.join(command)}:\n{result.stderr}"


def test_entrypoint_stops_cleanly_on_sigterm(served: Served) -> None:
    assert _wait_ready(served) == "ready", f"replayed image: not ready\n{served.tail()}"

    served.process.send_signal(signal.SIGTERM)
    code = served.process.wait(timeout=60)

    assert code == 0, f"replayed image ENTRYPOINT: exit code after SIGTERM\n{served.tail()}"
