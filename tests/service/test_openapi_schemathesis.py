"""Schemathesis against live servers: generated requests from the OpenAPI document never get a 5xx, and
every response (status, content type, headers, body) conforms to the document.

The document is generated from the route table and the loaded model's signature, so it is checked for two
models: iris, and an off-the-shelf ONNX file with two inputs (FP32 and STRING) and three outputs. Each
schema is built in process by the same code the server runs (schemathesis' fixture-based lazy loading
does not work with pytest 9), and a test checks that each live /openapi.json is exactly that document.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from model_api.app import create_app
from model_api.openapi import openapi_document
from model_api.settings import DEFAULT_MODEL_PATH, Settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service.example_models import build_two_inputs
from tests.service.server_process import ServerProcess

pytestmark = pytest.mark.slow
_TWO_INPUTS = build_two_inputs(Path(tempfile.mkdtemp(prefix="two-inputs-")) / "two_inputs.onnx")
ENVIRONMENTS = {
    "iris": {"MODEL_API_MODEL_PATH": str(DEFAULT_MODEL_PATH), "MODEL_API_MAX_NDIGITS": "5000"},
    "two_inputs": {
        "MODEL_API_MODEL_PATH": str(_TWO_INPUTS),
        "MODEL_API_MODEL_NAME": "two",
        "MODEL_API_MAX_NDIGITS": "5000",
    },
}


def _document(environment: dict[str, str]) -> dict:
    app = create_app(Settings.from_env(environment))
    app.startup()
    app.shutdown()
    return openapi_document(app.state.settings, app.routes, app.state.model)


DOCUMENTS = {name: _document(env) for name, env in ENVIRONMENTS.items()}
iris_schema = schemathesis.openapi.from_dict(DOCUMENTS["iris"])
two_inputs_schema = schemathesis.openapi.from_dict(DOCUMENTS["two_inputs"])


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_live_document_is_the_one_under_test(name: str, request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue(f"{name}_server")

    assert server.get("/openapi.json") == (200, DOCUMENTS[name])


def _call(case: schemathesis.Case, server: ServerProcess) -> None:
    # A V2 tensor's data length must equal the product of its shape, which JSON Schema cannot state;
    # schema-valid bodies may be refused with 400 on that route, so "valid data is accepted" is not checked.
    excluded = [positive_data_acceptance] if case.path.endswith("/infer") else []
    case.call_and_validate(base_url=server.url(""), excluded_checks=excluded)


@iris_schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_iris_api_conforms_to_its_openapi_document(
    case: schemathesis.Case, iris_server: ServerProcess
) -> None:
    _call(case, iris_server)


@two_inputs_schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_two_input_api_conforms_to_its_openapi_document(
    case: schemathesis.Case, two_inputs_server: ServerProcess
) -> None:
    _call(case, two_inputs_server)


def _start(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(ENVIRONMENTS[name], tmp_path_factory.mktemp(name) / "server.log") as running:
        running.wait_until("/readyz", 200)
        yield running
        running.terminate()


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _start("iris", tmp_path_factory)


@pytest.fixture(scope="module")
def two_inputs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _start("two_inputs", tmp_path_factory)
