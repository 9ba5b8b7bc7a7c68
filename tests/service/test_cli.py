"""The `model-api` command: serve --help, settings errors, train, check; and a live server without a model."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from model_api.settings import describe

from loadtest.chart.localpod import free_port
from tests.service.server_process import MODEL_API, ServerProcess

pytestmark = pytest.mark.slow


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MODEL_API), *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60
    )


def test_serve_help_lists_every_variable_with_its_default() -> None:
    result = run("serve", "--help")

    assert result.returncode == 0, result.stderr
    for name, default, _ in describe():
        line = next(
            (line for line in result.stdout.splitlines() if line.strip().startswith(f"{name} ")), None
        )
        assert line is not None, f"serve --help does not list {name}"
        assert f"[{default or 'unset'}]" in line, f"serve --help: default of {name} in {line!r}"


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"MODEL_API_PORT": "http"}, "MODEL_API_PORT='http' is not a valid int"),
        ({"MODEL_API_LOG_LEVEL": "loud"}, "MODEL_API_LOG_LEVEL='loud' must be one of"),
        ({"MODEL_API_MAX_ROWS": "0"}, "MODEL_API_MAX_ROWS='0' must be >= 1"),
        ({"MODEL_API_DRAIN_SECONDS": "nan"}, "MODEL_API_DRAIN_SECONDS='nan' must be a finite number"),
        ({"MODEL_API_MODEL_NAME": "a/b"}, "MODEL_API_MODEL_NAME='a/b' must be letters"),
    ],
)
def test_bad_settings_exit_2_with_one_line_naming_the_variable(env: dict[str, str], mentions: str) -> None:
    result = run("serve", env=env)

    assert (result.returncode, len(result.stderr.strip().splitlines())) == (2, 1), result.stderr
    assert mentions in result.stderr, result.stderr


def test_train_writes_the_artifact(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "model.onnx"

    result = run("train", "--out", str(out))

    assert (result.returncode, out.is_file()) == (0, True), result.stderr
    assert "training accuracy" in result.stdout


def test_check_passes_against_a_ready_server(live_server: ServerProcess) -> None:
    result = run("check", "--url", live_server.url(""))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["PASS readiness", "PASS classify"]


def test_check_fails_when_nothing_listens() -> None:
    result = run("check", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")

    assert result.returncode == 1
    assert result.stdout.startswith("FAIL readiness"), result.stdout


def test_check_sends_the_api_key_from_the_environment(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(MODEL_API_API_KEY="k-123")
    server.wait_until("/readyz", 200)

    with_key = run("check", "--url", server.url(""), env={"MODEL_API_API_KEY": "k-123"})
    without_key = run("check", "--url", server.url(""), env={"MODEL_API_API_KEY": ""})

    assert (with_key.returncode, without_key.returncode) == (0, 1), with_key.stdout + without_key.stdout
    assert "FAIL classify" in without_key.stdout and "401" in without_key.stdout
    assert "k-123" not in server.log(), "the API key was logged"


def test_a_key_mounted_from_a_file_with_its_newline_works(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(MODEL_API_API_KEY="k-123\n")
    server.wait_until("/readyz", 200)

    result = run("check", "--url", server.url(""), env={"MODEL_API_API_KEY": "k-123\n"})

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("content", [None, b"corrupt \x00 bytes"], ids=["missing", "corrupt"])
def test_server_without_a_loadable_model_stays_up_alive_not_ready(
    start_server: Callable[..., ServerProcess], tmp_path: Path, content: bytes | None
) -> None:
    artifact = tmp_path / "broken.onnx"
    if content is not None:
        artifact.write_bytes(content)
    server = start_server(MODEL_API_MODEL_PATH=str(artifact))
    server.wait_until("/healthz", 200)

    readiness, v2_ready = server.get("/readyz"), server.get("/v2/health/ready")
    still_running = server.process.poll() is None
    lines = [orjson.loads(line) for line in server.log().splitlines() if str(artifact) in line]

    assert (readiness[0], v2_ready[0], v2_ready[1]["ready"], still_running) == (503, 503, False, True)
    assert len(lines) == 1, f"log lines naming {artifact}: {lines}"
    assert lines[0]["level"] == "error" and "not loaded" in lines[0]["message"], lines[0]
    assert server.terminate() == 0
