"""Fixtures for the service tests: the model artifact, in-process apps and live server processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from model_api.app import App, create_app
from model_api.settings import DEFAULT_MODEL_PATH, Settings

from tests.service.asgi_client import AsgiClient
from tests.service.server_process import ServerProcess


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The packaged artifact, trained once if `make setup` has not built it yet."""
    if not DEFAULT_MODEL_PATH.is_file():
        from model_api.train import train

        train(DEFAULT_MODEL_PATH)
    return DEFAULT_MODEL_PATH


@pytest.fixture(scope="session")
def settings(model_path: Path) -> Settings:
    return Settings(model_path=model_path)


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., App]]:
    """Build an app with some settings changed and run its startup (model load), like the lifespan would."""
    apps: list[App] = []

    def build(**overrides: object) -> App:
        app = create_app(replace(settings, **overrides))
        app.startup()
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.shutdown()


@pytest.fixture
def client(make_app: Callable[..., App]) -> AsgiClient:
    return AsgiClient(make_app())


@pytest.fixture(scope="module")
def live_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ready server process shared by a module's tests."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with ServerProcess(
        {"MODEL_API_MODEL_PATH": str(model_path), "MODEL_API_MAX_NDIGITS": "5000"}, log
    ) as server:
        server.wait_until("/readyz", 200)
        yield server
        server.terminate()


@pytest.fixture
def start_server(model_path: Path, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a server with extra environment; every one started is killed at teardown if still running."""
    servers: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        env.setdefault("MODEL_API_MODEL_PATH", str(model_path))
        server = ServerProcess(env, tmp_path / f"server-{len(servers)}.log").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
