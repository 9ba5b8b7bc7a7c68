"""The API key as a file (MODEL_API_API_KEY_FILE, the chart's way): read at start, trailing newline dropped,
an empty or unreadable file refused naming the variable; MODEL_API_API_KEY still works locally; and no
child process of the server (the pi worker, multiprocessing's resource tracker) inherits the key."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from model_api.settings import Settings, SettingsError, api_key_from_env, remove_secrets_from_environ

from tests.service.server_process import MODEL_API, ServerProcess

KEY = "k-7f3a9c"
KEY_FILE = "MODEL_API_API_KEY_FILE"
CLASSIFY = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2"


def key_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "api-key"
    path.write_bytes(content)
    path.chmod(0o400)  # as the chart mounts it: readable by the pod's user only
    return path


@pytest.mark.parametrize("content", [KEY.encode(), f"{KEY}\n".encode(), f"{KEY}\r\n".encode()])
def test_the_key_is_read_from_the_file_without_its_trailing_newline(tmp_path: Path, content: bytes) -> None:
    environ = {KEY_FILE: str(key_file(tmp_path, content))}

    assert Settings.from_env(environ).api_key == KEY
    assert api_key_from_env(environ) == KEY, "model-api check reads it the same way"


@pytest.mark.parametrize("content", [b"", b"\n", b"  \n"], ids=["empty", "newline", "blank"])
def test_an_empty_key_file_is_refused_naming_the_variable(tmp_path: Path, content: bytes) -> None:
    path = key_file(tmp_path, content)

    with pytest.raises(SettingsError) as error:
        Settings.from_env({KEY_FILE: str(path)})

    assert str(error.value) == f"{KEY_FILE}={str(path)!r} is empty; it must hold the API key"


def test_a_missing_key_file_is_refused_naming_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "absent"

    with pytest.raises(SettingsError) as error:
        Settings.from_env({KEY_FILE: str(path)})

    assert str(error.value) == f"{KEY_FILE}={str(path)!r} cannot be read: No such file or directory"


def test_the_key_and_the_key_file_together_are_refused(tmp_path: Path) -> None:
    environ = {"MODEL_API_API_KEY": KEY, KEY_FILE: str(key_file(tmp_path, b"other"))}

    with pytest.raises(SettingsError, match=f"MODEL_API_API_KEY and {KEY_FILE} are both set") as error:
        Settings.from_env(environ)

    assert "other" not in str(error.value) and KEY not in str(error.value), "a key was echoed"


def test_the_key_from_the_environment_still_works_locally() -> None:
    assert Settings.from_env({"MODEL_API_API_KEY": KEY}).api_key == KEY


def test_removing_secrets_leaves_other_variables() -> None:
    environ = {"MODEL_API_API_KEY": KEY, KEY_FILE: "/etc/model-api/api-key", "MODEL_API_PORT": "8080"}

    remove_secrets_from_environ(environ)

    assert environ == {KEY_FILE: "/etc/model-api/api-key", "MODEL_API_PORT": "8080"}


@pytest.mark.slow
def test_serve_refuses_an_empty_key_file_with_exit_2(tmp_path: Path) -> None:
    path = key_file(tmp_path, b"\n")
    env = {**os.environ, KEY_FILE: str(path)}

    result = subprocess.run([str(MODEL_API), "serve"], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        == f"model-api: error: {KEY_FILE}={str(path)!r} is empty; it must hold the API key"
    )


@pytest.mark.slow
def test_a_server_given_a_key_file_requires_that_key(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(MODEL_API_API_KEY_FILE=str(key_file(tmp_path, f"{KEY}\n".encode())))
    server.wait_until("/readyz", 200)

    without = server.get(CLASSIFY)[0]
    wrong = server.get(CLASSIFY, headers={"X-API-Key": "nope"})[0]
    right = server.get(CLASSIFY, headers={"X-API-Key": KEY})
    check = subprocess.run(
        [str(MODEL_API), "check", "--url", server.url("")],
        env={**os.environ, KEY_FILE: str(tmp_path / "api-key")},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (without, wrong) == (401, 401)
    assert right == (200, {"species": "Iris setosa"})
    assert check.returncode == 0, check.stdout + check.stderr
    assert KEY not in server.log(), "the API key was logged"


@pytest.mark.slow
def test_no_child_process_inherits_the_key_from_the_environment(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(MODEL_API_API_KEY=KEY)
    server.wait_until("/readyz", 200)

    pi = server.get("/api/v0/pi?ndigits=3000", headers={"X-API-Key": KEY})  # starts the pi worker process
    children = server.children()
    environments = {child.pid: child.environ() for child in children}
    assert server.process is not None
    own = psutil.Process(server.process.pid).environ()  # what it was started with: /proc keeps it
    exit_code = server.terminate()

    assert pi[0] == 200, pi
    assert exit_code == 0, server.log()
    assert len(children) >= 1, "no pi worker process started"
    assert own.get("MODEL_API_API_KEY") == KEY, "the test did not give the server the key"
    assert {pid: env.get("MODEL_API_API_KEY") for pid, env in environments.items()} == dict.fromkeys(
        environments
    ), "a child process inherited the API key"
    assert all(env.get("MODEL_API_PORT") == str(server.port) for env in environments.values()), (
        "children lost the rest of the environment"
    )
