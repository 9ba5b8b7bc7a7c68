"""Interoperability with an existing Open Inference Protocol client: tritonclient's HTTP client, on the
iris model, the packaged diabetes regressor and an off-the-shelf two-input ONNX file without metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from model_api.train import CLASS_NAMES

from tests.service.example_models import DIABETES_VERSION, Diabetes, build_identity, two_inputs_expected
from tests.service.server_process import ServerProcess

pytestmark = pytest.mark.slow
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


@pytest.fixture(scope="module")
def triton_client(live_server: ServerProcess) -> triton.InferenceServerClient:
    client = triton.InferenceServerClient(f"127.0.0.1:{live_server.port}")
    yield client
    client.close()


def test_server_live_and_ready(triton_client: triton.InferenceServerClient) -> None:
    expected = (True, True, True)

    assert (
        triton_client.is_server_live(),
        triton_client.is_server_ready(),
        triton_client.is_model_ready("iris"),
    ) == expected


def test_model_metadata(triton_client: triton.InferenceServerClient) -> None:
    metadata = triton_client.get_model_metadata("iris")

    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]
    assert metadata["parameters"]["class_names"] == list(CLASS_NAMES)


def test_server_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.get_server_metadata()["name"] == "model-api"


@pytest.mark.parametrize("binary_input", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_output", [True, False, None], ids=["binary-out", "json-out", "default-out"])
def test_infer(
    triton_client: triton.InferenceServerClient, binary_input: bool, binary_output: bool | None
) -> None:
    tensor = triton.InferInput("input", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=binary_input)
    outputs = (
        None
        if binary_output is None
        else [
            triton.InferRequestedOutput(name, binary_data=binary_output)
            for name in ("label", "probabilities")
        ]
    )

    result = triton_client.infer("iris", [tensor], outputs=outputs, request_id="triton-1")

    labels, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
    assert labels.tolist() == [0, 1, 2], "label output"
    assert (probabilities.dtype, probabilities.shape) == (np.float32, (3, 3)), "probabilities output"
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert result.get_response()["id"] == "triton-1"


def test_infer_only_the_requested_output(triton_client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROWS[:1].astype(np.float64))

    result = triton_client.infer("iris", [tensor], outputs=[triton.InferRequestedOutput("label")])

    assert ([o["name"] for o in result.get_response()["outputs"]], result.as_numpy("label").tolist()) == (
        ["label"],
        [0],
    )


def test_unknown_model_is_an_error_for_the_client(triton_client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(ROWS[:1])

    with pytest.raises(triton.InferenceServerException, match="model 'other' not found"):
        triton_client.infer("other", [tensor])


def test_versioned_calls_with_the_models_version(triton_client: triton.InferenceServerClient) -> None:
    version = triton_client.get_model_metadata("iris")["versions"][0]
    tensor = triton.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(ROWS[:1])

    ready = triton_client.is_model_ready("iris", model_version=version)
    metadata = triton_client.get_model_metadata("iris", model_version=version)
    result = triton_client.infer("iris", [tensor], model_version=version)

    assert (ready, metadata["versions"], result.as_numpy("label").tolist()) == (True, [version], [0])


def test_another_version_is_an_error_naming_the_served_one(
    triton_client: triton.InferenceServerClient,
) -> None:
    tensor = triton.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(ROWS[:1])

    with pytest.raises(triton.InferenceServerException, match=r"has no version '1'.*serves version"):
        triton_client.infer("iris", [tensor], model_version="1")
    assert triton_client.is_model_ready("iris", model_version="1") is False


# ---- models other than iris, end to end through tritonclient -----------------------------------------


@pytest.fixture(scope="module")
def serve_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """Start `model-api serve` on a model path and name; each is stopped at the end of the module."""
    servers: list[ServerProcess] = []

    def start(path: Path, name: str) -> ServerProcess:
        log = tmp_path_factory.mktemp(name) / "server.log"
        server = ServerProcess({"MODEL_API_MODEL_PATH": str(path), "MODEL_API_MODEL_NAME": name}, log).start()
        servers.append(server)
        server.wait_until("/readyz", 200)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def test_the_packaged_regressor_answers_tritonclient_like_scikit_learn(
    serve_model: Callable[..., ServerProcess], diabetes: Diabetes
) -> None:
    server = serve_model(diabetes.directory, "diabetes")
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    rows = diabetes.rows[:8]
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)

    metadata = client.get_model_metadata("diabetes")
    result = client.infer("diabetes", [tensor], model_version=DIABETES_VERSION)

    assert (metadata["inputs"], metadata["versions"]) == (
        [{"name": "input", "datatype": "FP32", "shape": [-1, 10]}],
        [DIABETES_VERSION],
    )
    np.testing.assert_allclose(result.as_numpy("variable")[:, 0], diabetes.estimator.predict(rows), rtol=1e-5)
    client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_an_off_the_shelf_model_with_two_inputs_and_three_outputs_matches_numpy(
    serve_model: Callable[..., ServerProcess], two_inputs_path: Path, binary: bool
) -> None:
    server = serve_model(two_inputs_path, "two_inputs")
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    x = np.array([[1.5, 2.0, -3.0], [4.0, 5.0, 6.25], [0.0, 0.0, 1e-3]], dtype=np.float32)
    category = np.array([["a"], ["b"], ["a"]], dtype=object)
    inputs = [triton.InferInput("x", [3, 3], "FP32"), triton.InferInput("category", [3, 1], "BYTES")]
    inputs[0].set_data_from_numpy(x, binary_data=binary)
    inputs[1].set_data_from_numpy(category, binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("total", "is_a", "doubled")]

    result = client.infer("two_inputs", inputs, outputs=outputs)

    expected = two_inputs_expected(x, category)
    np.testing.assert_allclose(result.as_numpy("total"), expected["total"], rtol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("is_a"), expected["is_a"])
    np.testing.assert_array_equal(result.as_numpy("doubled"), expected["doubled"])
    assert result.as_numpy("doubled").dtype == np.float64
    client.close()


def test_every_datatype_round_trips_as_binary_tensors(
    serve_model: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = build_identity(tmp_path_factory.mktemp("identity") / "identity.onnx")
    server = serve_model(path, "identity")
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    arrays = {
        "int32": np.array([[-(2**31), 7], [0, 2**31 - 1]], dtype=np.int32),
        "int64": np.array([[-(2**62), 3], [5, 2**62]], dtype=np.int64),
        "bool": np.array([[True, False], [False, True]]),
        "fp64": np.array([[1e300, -2.5], [0.1, 3.0]]),
        "fp32": np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32),
        "bytes": np.array([[b"a", b""], ["ünï".encode(), b"z"]], dtype=object),
    }
    inputs = []
    for name, array in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), name.upper())
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(f"{name}_out", binary_data=True) for name in arrays]

    result = client.infer("identity", inputs, outputs=outputs)

    for name, array in arrays.items():
        np.testing.assert_array_equal(result.as_numpy(f"{name}_out"), array, err_msg=name)
    client.close()
