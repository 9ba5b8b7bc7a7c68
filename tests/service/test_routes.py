"""Every endpoint's contract, in process: status, body shape and values."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from model_api import __version__
from model_api.train import CLASS_NAMES, FEATURES

from tests.service.asgi_client import AsgiClient
from tests.service.conftest import ServedModel

# One typical flower per class (from the iris data set), with its expected class index.
FLOWERS = [
    ([5.1, 3.5, 1.4, 0.2], 0),
    ([5.9, 3.0, 4.2, 1.5], 1),
    ([6.7, 3.0, 5.2, 2.3], 2),
]


@pytest.mark.parametrize(("row", "label"), FLOWERS)
def test_classify_returns_the_species_name(client: AsgiClient, row: list[float], label: int) -> None:
    expected = (200, {"species": CLASS_NAMES[label]})
    query = "&".join(f"{name}={value}" for name, value in zip(("sl", "sw", "pl", "pw"), row, strict=True))

    result = client.get(f"/api/v01/classify?{query}")

    assert (result.status, result.json()) == expected, f"classify {row}: {result.body!r}"


def test_pi_answers_ndigits_and_the_truncated_digits(client: AsgiClient) -> None:
    result = client.get("/api/v0/pi?ndigits=99")

    body = result.json()
    assert result.status == 200, result.body
    assert body["ndigits"] == 99, "pi response field ndigits"
    assert len(body["pi"]) == 2 + 99, "pi response field pi: '3.' and 99 digits"
    assert body["pi"].endswith("342117067"), "pi response field pi: last digits"


def test_pi_with_zero_digits_is_three(client: AsgiClient) -> None:
    assert client.get("/api/v0/pi?ndigits=0").json() == {"ndigits": 0, "pi": "3"}


def test_pi_beyond_the_inline_limit_runs_in_a_worker_and_is_still_exact(client: AsgiClient) -> None:
    from model_api.pi import pi_digits

    expected = {"ndigits": 3000, "pi": pi_digits(3000)}

    assert client.get("/api/v0/pi?ndigits=3000").json() == expected


def test_v1_model_status(client: AsgiClient) -> None:
    result = client.get("/v1/models/iris")

    assert (result.status, result.json()) == (200, {"name": "iris", "ready": True})


def test_v1_predict_returns_one_class_index_per_instance(client: AsgiClient) -> None:
    expected = {"predictions": [label for _, label in FLOWERS]}

    result = client.post("/v1/models/iris:predict", json={"instances": [row for row, _ in FLOWERS]})

    assert (result.status, result.json()) == (200, expected)


def test_v2_server_metadata(client: AsgiClient) -> None:
    expected = {"name": "model-api", "version": __version__, "extensions": ["binary_tensor_data"]}

    assert client.get("/v2").json() == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/v2/models/iris/ready", {"name": "iris", "ready": True}),
        ("/healthz", {"status": "alive"}),
        ("/readyz", {"status": "ready"}),
    ],
)
def test_health_routes_answer_200_when_ready(client: AsgiClient, path: str, expected: dict) -> None:
    result = client.get(path)

    assert (result.status, result.json()) == (200, expected), path


def test_v2_model_metadata_describes_the_tensors(client: AsgiClient) -> None:
    body = client.get("/v2/models/iris").json()

    expected_io = (
        [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
    )
    assert (body["name"], body["versions"], body["platform"]) == ("iris", [__version__], "onnxruntime_onnx")
    assert (body["inputs"], body["outputs"]) == expected_io, "model metadata inputs/outputs"
    assert body["parameters"]["features"] == list(FEATURES), "model metadata parameters.features"
    assert body["parameters"]["class_names"] == list(CLASS_NAMES), "model metadata parameters.class_names"


def _infer_body(data: list, shape: list[int], datatype: str = "FP32", **extra: object) -> dict:
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}], **extra}


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_v2_infer_returns_labels_and_probabilities(client: AsgiClient, datatype: str, nested: bool) -> None:
    rows = [row for row, _ in FLOWERS]
    data = rows if nested else [value for row in rows for value in row]

    result = client.post("/v2/models/iris/infer", json=_infer_body(data, [3, 4], datatype, id="req-7"))

    body = result.json()
    label, probabilities = body["outputs"]
    assert result.status == 200, result.body
    assert (body["model_name"], body["model_version"], body["id"]) == ("iris", __version__, "req-7")
    assert label == {"name": "label", "datatype": "INT64", "shape": [3], "data": [0, 1, 2]}, "output label"
    assert (probabilities["name"], probabilities["datatype"], probabilities["shape"]) == (
        "probabilities",
        "FP32",
        [3, 3],
    ), "output probabilities header"
    sums = [round(sum(probabilities["data"][i : i + 3]), 4) for i in range(0, 9, 3)]
    assert sums == [1.0, 1.0, 1.0], "output probabilities: each row sums to 1"


@pytest.mark.parametrize(
    "datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]
)
def test_v2_infer_accepts_integer_tensors(client: AsgiClient, datatype: str) -> None:
    result = client.post("/v2/models/iris/infer", json=_infer_body([7, 3, 6, 2], [1, 4], datatype))

    assert result.status == 200, f"{datatype}: {result.body!r}"
    assert result.json()["outputs"][0]["data"] == [2], f"{datatype}: label of a large-petalled flower"


def test_v2_infer_honours_the_requested_outputs(client: AsgiClient) -> None:
    body = _infer_body([5.1, 3.5, 1.4, 0.2], [1, 4], outputs=[{"name": "probabilities"}])

    outputs = client.post("/v2/models/iris/infer", json=body).json()["outputs"]

    assert [o["name"] for o in outputs] == ["probabilities"]


def test_v2_infer_without_id_has_no_id(client: AsgiClient) -> None:
    body = client.post("/v2/models/iris/infer", json=_infer_body([5.1, 3.5, 1.4, 0.2], [1, 4])).json()

    assert "id" not in body


def test_docs_is_a_self_contained_html_page(client: AsgiClient) -> None:
    result = client.get("/docs")

    page = result.body.decode()
    assert (result.status, result.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert "/v2/models/iris/infer" in page, "docs page lists the infer route"
    assert "<script" not in page and "http://" not in page and "https://" not in page, (
        "docs page loads nothing"
    )


def test_every_response_carries_a_request_id_and_honours_the_callers(client: AsgiClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    generated = client.get("/healthz")

    assert given.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32, "generated request id is a uuid4 hex"


@pytest.mark.parametrize(
    "query",
    [
        "sl=5.1&sw=3.5&pl=1.4&pw=0.2",
        "sl=5.1&sw=3.5&pl=1.4&pw=%2B0.2",
        "pw=0.2&pl=1.4&&sw=3.5&sl=5.1",
        "sl=5.1&sw=+3.5&pl=1.4&pw=0.2",
    ],
    ids=["plain", "percent-escaped", "reordered-with-empty-pair", "plus-as-space"],
)
def test_classify_query_string_forms(client: AsgiClient, query: str) -> None:
    result = client.get(f"/api/v01/classify?{query}")

    assert (result.status, result.json()) == (200, {"species": "Iris setosa"}), query


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready"]
)
def test_head_answers_like_get_without_a_body(client: AsgiClient, path: str) -> None:
    get = client.get(path)

    head = client.request("HEAD", path)

    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(get.body))), path


def test_head_on_metrics_has_no_body(client: AsgiClient) -> None:
    result = client.request("HEAD", "/metrics")

    assert (result.status, result.body, result.headers["content-type"].startswith("text/plain")) == (
        200,
        b"",
        True,
    )


def test_head_on_readiness_is_503_when_not_ready(client: AsgiClient) -> None:
    client.app.state.begin_shutdown()

    assert client.request("HEAD", "/readyz").status == 503


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("GET", "/ready", None),
        ("POST", "/infer", _infer_body([5.1, 3.5, 1.4, 0.2], [1, 4])),
    ],
    ids=["metadata", "ready", "infer"],
)
def test_v2_versioned_routes_answer_for_the_models_own_version(
    client: AsgiClient, method: str, suffix: str, body: dict | None
) -> None:
    unversioned = client.request(method, f"/v2/models/iris{suffix}", body=orjson.dumps(body) if body else b"")

    versioned = client.request(
        method, f"/v2/models/iris/versions/{__version__}{suffix}", body=orjson.dumps(body) if body else b""
    )

    assert (versioned.status, versioned.json()) == (unversioned.status, unversioned.json()), suffix
    assert versioned.status == 200, versioned.body


def test_v2_infer_accepts_the_model_name_in_the_body_as_kserves_client_sends_it(client: AsgiClient) -> None:
    body = _infer_body([5.1, 3.5, 1.4, 0.2], [1, 4], model_name="iris", id="k-1")

    result = client.post("/v2/models/iris/infer", json=body)

    assert (result.status, result.json()["outputs"][0]["data"]) == (200, [0]), result.body


@pytest.mark.parametrize(
    ("path", "expected"), [("/", {"status": "alive"}), ("/v1/models", {"models": ["iris"]})]
)
def test_kserve_v1_client_liveness_and_model_list(client: AsgiClient, path: str, expected: dict) -> None:
    result = client.get(path)

    assert (result.status, result.json()) == (200, expected), path


# ---- every example model: metadata, predictions, version header, OpenAPI -----------------------------


def test_every_prediction_response_carries_the_model_version(served: tuple[ServedModel, AsgiClient]) -> None:
    model, client = served
    version = client.get(f"/v2/models/{model.name}").json()["versions"][0]
    responses = {"v2": client.post(model.infer, json={"inputs": model.inputs})}
    if len(model.inputs) == 1:
        responses["v1"] = client.post(model.predict, json={"instances": model.inputs[0]["data"]})
    if model.name == "iris":
        responses["classify"] = client.get("/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2")
    refused = {  # a canary's errors are attributed to its version too
        "v2 refused": client.post(model.infer, json={"inputs": []}),
        "v1 refused": client.post(model.predict, json={}),
        "classify refused": client.get("/api/v01/classify?sl=x"),
    }

    headers = {route: (r.status, r.headers.get("x-model-version")) for route, r in responses.items()}
    refusals = {route: (r.status >= 400, r.headers.get("x-model-version")) for route, r in refused.items()}

    assert headers == {route: (200, version) for route in responses}
    assert refusals == {route: (True, version) for route in refused}


def test_the_version_setting_names_the_version_everywhere(make_app) -> None:
    client = AsgiClient(make_app(model_version="canary-7"))
    body = _infer_body([5.1, 3.5, 1.4, 0.2], [1, 4])

    metadata = client.get("/v2/models/iris").json()
    infer = client.post("/v2/models/iris/versions/canary-7/infer", json=body)

    assert (metadata["versions"], infer.status, infer.json()["model_version"]) == (
        ["canary-7"],
        200,
        "canary-7",
    )
    assert infer.headers["x-model-version"] == "canary-7"


def test_v2_metadata_of_the_packaged_regressor(example_models, make_app) -> None:
    from tests.service.example_models import DIABETES_FEATURES, DIABETES_VERSION

    model = example_models["diabetes"]
    client = AsgiClient(make_app(model_path=model.path, model_name="diabetes"))

    body = client.get("/v2/models/diabetes").json()

    assert body == {
        "name": "diabetes",
        "versions": [DIABETES_VERSION],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 10]}],
        "outputs": [{"name": "variable", "datatype": "FP32", "shape": [-1, 1]}],
        "parameters": {
            "description": "Disease progression one year after baseline (ridge regression)",
            "features": list(DIABETES_FEATURES),
            "input_descriptions": {
                "input": "ten baseline measurements, standardised as in sklearn's data set"
            },
        },
    }


def test_v2_metadata_of_a_model_without_any_metadata(example_models, make_app) -> None:
    model = example_models["two_inputs"]
    client = AsgiClient(make_app(model_path=model.path, model_name="two_inputs"))

    body = client.get("/v2/models/two_inputs").json()

    assert (body["versions"], body["parameters"]) == (["1"], {})
    assert body["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "category", "datatype": "BYTES", "shape": [-1, 1]},
    ]
    assert [(o["name"], o["datatype"]) for o in body["outputs"]] == [
        ("total", "FP32"),
        ("is_a", "BOOL"),
        ("doubled", "FP64"),
    ]


def test_v1_predictions_of_the_regressor_match_scikit_learn(diabetes, example_models, make_app) -> None:
    client = AsgiClient(make_app(model_path=diabetes.directory, model_name="diabetes"))
    rows = diabetes.rows[:5]

    predictions = client.post("/v1/models/diabetes:predict", json={"instances": rows.tolist()}).json()[
        "predictions"
    ]

    np.testing.assert_allclose(predictions, diabetes.estimator.predict(rows), rtol=1e-5)


def test_openapi_lists_every_route_and_the_models_tensors(served: tuple[ServedModel, AsgiClient]) -> None:
    model, client = served
    app = client.app
    version = client.get(f"/v2/models/{model.name}").json()["versions"][0]

    document = client.get("/openapi.json").json()
    paths = {path.replace("{version}", version): item for path, item in document["paths"].items()}
    request = document["paths"][model.infer]["post"]["requestBody"]["content"]["application/json"]["schema"]
    tensors = request["properties"]["inputs"]
    specs = [tensors["items"]] if len(model.inputs) == 1 else tensors["items"]["oneOf"]

    assert sorted(paths) == sorted(app.routes)
    for path, route in app.routes.items():
        assert sorted(m.upper() for m in paths[path]) == list(route.allowed), f"openapi methods of {path}"
    assert [s["properties"]["name"]["const"] for s in specs] == [t["name"] for t in model.inputs]
    assert (tensors["minItems"], tensors["maxItems"]) == (len(model.inputs), len(model.inputs))


IDENTITY_DATA = {
    "INT32": [[-2147483648, 7], [0, 2147483647]],
    "INT64": [[-(2**62), 3], [5, 2**62]],
    "BOOL": [[True, False], [False, True]],
    "FP64": [[1e300, -2.5], [0.1, 3.0]],
    "FP32": [[1.5, -2.0], [3.25, 0.0]],
    "BYTES": [["a", ""], ["ünï", "z"]],
}


def test_every_datatype_round_trips_through_v2_json(make_app, tmp_path) -> None:
    from tests.service.example_models import build_identity

    client = AsgiClient(
        make_app(model_path=build_identity(tmp_path / "identity.onnx"), model_name="identity")
    )
    inputs = [
        {"name": datatype.lower(), "shape": [2, 2], "datatype": datatype, "data": data}
        for datatype, data in IDENTITY_DATA.items()
    ]

    result = client.post("/v2/models/identity/infer", json={"inputs": inputs})

    assert result.status == 200, result.body
    outputs = {o["name"]: (o["datatype"], o["data"]) for o in result.json()["outputs"]}
    expected = {
        f"{datatype.lower()}_out": (datatype, [v for row in data for v in row])
        for datatype, data in IDENTITY_DATA.items()
    }
    assert outputs == expected


def test_a_route_without_an_openapi_operation_is_an_error(settings) -> None:
    from model_api.http import Route
    from model_api.openapi import openapi_document

    async def handler(request):  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(KeyError, match="route /undocumented has no OpenAPI operation"):
        openapi_document(settings, {"/undocumented": Route("/undocumented", {"GET": handler})})
