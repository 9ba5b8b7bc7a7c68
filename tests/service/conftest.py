"""Fixtures for the service tests: the model artifact, in-process apps and live server processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from model_api.app import App, create_app
from model_api.settings import DEFAULT_MODEL_PATH, Settings

from tests.service.asgi_client import AsgiClient
from tests.service.example_models import Diabetes, build_diabetes, build_two_inputs
from tests.service.server_process import ServerProcess

# The models every generic route test runs against: the iris classifier, the packaged diabetes
# regressor, and an off-the-shelf two-input ONNX file without metadata.
MODELS = ("iris", "diabetes", "two_inputs")


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


@dataclass(frozen=True)
class ServedModel:
    """A model the tests serve, with one valid V2 request for it (two rows per input)."""

    name: str
    path: Path
    inputs: list[dict]  # one valid V2 JSON tensor per model input

    @property
    def infer(self) -> str:
        return f"/v2/models/{self.name}/infer"

    @property
    def predict(self) -> str:
        return f"/v1/models/{self.name}:predict"


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Diabetes:
    return build_diabetes(tmp_path_factory.mktemp("diabetes"))


@pytest.fixture(scope="session")
def two_inputs_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_two_inputs(tmp_path_factory.mktemp("two_inputs") / "two_inputs.onnx")


@pytest.fixture(scope="session")
def example_models(model_path: Path, diabetes: Diabetes, two_inputs_path: Path) -> dict[str, ServedModel]:
    def tensor(name: str, datatype: str, rows: list) -> dict:
        return {"name": name, "shape": [len(rows), len(rows[0])], "datatype": datatype, "data": rows}

    return {
        "iris": ServedModel(
            "iris", model_path, [tensor("input", "FP32", [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])]
        ),
        "diabetes": ServedModel(
            "diabetes", diabetes.directory, [tensor("input", "FP32", diabetes.rows[:2].tolist())]
        ),
        "two_inputs": ServedModel(
            "two_inputs",
            two_inputs_path,
            [
                tensor("x", "FP32", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]]),
                tensor("category", "BYTES", [["a"], ["b"]]),
            ],
        ),
    }


@pytest.fixture(params=MODELS)
def served(
    request: pytest.FixtureRequest, example_models: dict[str, ServedModel], make_app: Callable[..., App]
) -> tuple[ServedModel, AsgiClient]:
    """Each example model served in process (parametrized: tests using it run once per model)."""
    model = example_models[request.param]
    return model, AsgiClient(make_app(model_path=model.path, model_name=model.name))
