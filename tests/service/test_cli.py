"""The `model-api` command: serve --help, settings errors, train, check; and a live server without a model."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from model_api.settings import describe

from loadtest.chart.localpod import free_port
from tests.service.example_models import Diabetes
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
        ({"MODEL_API_MODEL_VERSION": "v 2"}, "MODEL_API_MODEL_VERSION='v 2' must be letters"),
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
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [
        "PASS readiness",
        "PASS model list",
        "PASS metadata",
        "PASS infer",
        "PASS classify",
    ]


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
    assert "FAIL infer" in without_key.stdout and "401" in without_key.stdout
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


def test_check_passes_against_a_model_other_than_iris(
    start_server: Callable[..., ServerProcess], two_inputs_path: Path
) -> None:
    server = start_server(MODEL_API_MODEL_PATH=str(two_inputs_path), MODEL_API_MODEL_NAME="two")
    server.wait_until("/readyz", 200)

    result = run("check", "--url", server.url(""))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()][-1] == "PASS infer"


def test_package_help_warns_that_loading_a_pickle_runs_code() -> None:
    result = run("package", "--help")

    assert "runs code" in " ".join(result.stdout.split()), result.stdout


def test_package_converts_a_joblib_estimator_and_prints_parity(tmp_path: Path, diabetes: Diabetes) -> None:
    import numpy as np
    from model_api.model import OnnxModel

    estimator = diabetes.directory.parent / "diabetes.joblib"
    np.save(tmp_path / "rows.npy", diabetes.rows)
    out = tmp_path / "out"

    result = run(
        "package", str(estimator), "--out", str(out), "--version", "5", "--sample", str(tmp_path / "rows.npy")
    )

    assert result.returncode == 0, result.stderr
    assert re.search(r"parity variable: max abs difference [0-9.e-]+ over 40 rows", result.stdout), (
        result.stdout
    )
    served = OnnxModel(out / "model.onnx", "d")  # the file alone: the settings travel inside it
    assert served.load(), served.error
    assert served.info is not None and served.info.version == "5"
    assert orjson.loads((out / "model-settings.json").read_bytes()) == {"version": "5"}


def test_package_refuses_above_the_tolerance_and_writes_nothing(tmp_path: Path, diabetes: Diabetes) -> None:
    estimator = diabetes.directory.parent / "diabetes.joblib"
    out = tmp_path / "out"

    result = run("package", str(estimator), "--out", str(out), "--tolerance", "0")

    assert (result.returncode, out.exists()) == (1, False), result.stdout + result.stderr
    assert "above --tolerance 0" in result.stderr


def test_package_onnx_adds_settings_to_an_existing_file(tmp_path: Path, two_inputs_path: Path) -> None:
    from model_api.model import OnnxModel

    out = tmp_path / "out"

    result = run(
        "package", "--onnx", str(two_inputs_path), "--out", str(out), "--version", "3",
        "--describe-input", "x=three measurements", "--description", "sums and flags",
    )  # fmt: skip

    served = OnnxModel(out, "two")
    assert result.returncode == 0, result.stderr
    assert served.load(), served.error
    assert served.info is not None
    assert (served.info.version, served.info.settings.inputs, served.info.settings.description) == (
        "3",
        {"x": "three measurements"},
        "sums and flags",
    )


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        ((), "give an estimator file or --onnx FILE"),
        (("--onnx", "missing.onnx"), "onnxruntime cannot load it"),
        (("--onnx", "{two}", "--describe-input", "y=nope"), "--describe-input names 'y', not an input"),
        (("--onnx", "{two}", "--version", "a/b"), "version 'a/b' must be letters"),
        (("{junk}",), "not a joblib file"),
    ],
    ids=["nothing", "missing-onnx", "unknown-input", "bad-version", "not-joblib"],
)
def test_package_usage_errors_exit_2_naming_the_problem(
    tmp_path: Path, two_inputs_path: Path, args: tuple[str, ...], mentions: str
) -> None:
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a pickle")
    filled = [a.format(two=two_inputs_path, junk=junk) for a in args]

    result = run("package", *filled, "--out", str(tmp_path / "out"))

    assert result.returncode == 2, result.stdout + result.stderr
    assert mentions in result.stderr, result.stderr


def test_the_readme_package_commands_work_as_written(tmp_path: Path, diabetes: Diabetes) -> None:
    """ "Deploy your own model" in the README: its package commands, run with its own arguments."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```sh\n.venv/bin/model-api package ", 1)[1].split("\n", 2)
    first = shlex.split((block[0] + block[1]).replace("\\", " "))
    onnx_command = shlex.split(re.search(r"`model-api package (--onnx [^`]+)`", readme).group(1))
    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(",".join(map(str, row)) for row in diabetes.rows))
    estimator = diabetes.directory.parent / "diabetes.joblib"
    (tmp_path / "build").mkdir()
    os.symlink(estimator, tmp_path / "diabetes.joblib")

    packaged = subprocess.run(
        [str(MODEL_API), "package", *first], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    shutil.copy(tmp_path / "build/diabetes/model.onnx", tmp_path / "model.onnx")
    with_settings = subprocess.run(
        [str(MODEL_API), "package", *onnx_command], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert (packaged.returncode, with_settings.returncode) == (0, 0), packaged.stderr + with_settings.stderr
    assert "parity variable: max abs difference" in packaged.stdout, packaged.stdout
    settings = orjson.loads((tmp_path / "build/diabetes/model-settings.json").read_bytes())
    assert (settings["version"], settings["description"], len(settings["features"])) == (
        "3",
        "disease progression",
        10,
    )
