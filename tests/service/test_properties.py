"""Property tests: arbitrary bodies and query strings never give a 5xx; valid rows always give a class."""

from __future__ import annotations

import json
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.asgi_client import AsgiClient
from tests.service.conftest import ServedModel

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
tensor_like = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input", "x"]),
        "shape": st.lists(st.integers(-2, 6), max_size=3),
        "datatype": st.sampled_from(["FP32", "FP64", "INT8", "UINT8", "INT64", "BYTES", "FP16"])
        | json_values,
        "data": json_values,
    }
)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
rows = st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=20)


def _mutated(model: ServedModel) -> st.SearchStrategy:
    """The model's valid request with one field of one tensor replaced by anything."""
    return st.tuples(
        st.integers(0, len(model.inputs) - 1),
        st.sampled_from(["name", "shape", "datatype", "data"]),
        json_values,
    ).map(lambda edit: [{**t, edit[1]: edit[2]} if i == edit[0] else t for i, t in enumerate(model.inputs)])


@FAST
@given(data=st.data())
def test_any_body_to_infer_or_predict_is_never_a_server_error(
    served: tuple[ServedModel, AsgiClient], data: st.DataObject
) -> None:
    model, client = served
    body = data.draw(
        json_values
        | st.fixed_dictionaries({"inputs": st.lists(tensor_like, max_size=2)})
        | st.fixed_dictionaries({"inputs": _mutated(model)})
        | st.binary(max_size=64)
    )
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # stdlib: big ints too
    for path in (model.infer, model.predict):
        result = client.request("POST", path, body=raw)

        assert result.status < 500, f"{model.name} {path} {raw[:200]!r} -> {result.status} {result.body!r}"
        if result.status >= 400:
            assert orjson.loads(result.body)["error"], f"{path}: error message"


@FAST
@given(data=st.data())
def test_valid_inputs_always_get_every_output_with_one_row_each(
    served: tuple[ServedModel, AsgiClient], data: st.DataObject
) -> None:
    model, client = served
    n = data.draw(st.integers(1, 20), label="rows")
    inputs = []
    for tensor in model.inputs:
        width = tensor["shape"][1]
        element = st.text(max_size=3) if tensor["datatype"] == "BYTES" else finite
        rows = data.draw(st.lists(st.lists(element, min_size=width, max_size=width), min_size=n, max_size=n))
        inputs.append({**tensor, "shape": [n, width], "data": rows})

    result = client.post(model.infer, json={"inputs": inputs})

    assert result.status == 200, result.body
    metadata = client.get(f"/v2/models/{model.name}").json()
    outputs = result.json()["outputs"]
    assert [o["name"] for o in outputs] == [o["name"] for o in metadata["outputs"]]
    assert all(o["shape"][0] == n for o in outputs), outputs


@FAST
@given(
    query=st.dictionaries(st.sampled_from(["sl", "sw", "pl", "pw", "ndigits", "zz"]), st.text(max_size=12))
)
def test_any_query_string_is_never_a_server_error(client: AsgiClient, query: dict[str, str]) -> None:
    encoded = "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
    for path in ("/api/v01/classify", "/api/v0/pi"):
        result = client.get(f"{path}?{encoded}")

        assert result.status < 500, f"{path}?{encoded} -> {result.status} {result.body!r}"


@FAST
@given(rows=rows)
def test_valid_rows_always_get_a_class_in_0_to_2(client: AsgiClient, rows: list[list[float]]) -> None:
    flat = [value for row in rows for value in row]
    tensor = {"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}

    v1 = client.post("/v1/models/iris:predict", json={"instances": rows}).json()["predictions"]
    v2 = client.post("/v2/models/iris/infer", json={"inputs": [tensor]}).json()["outputs"][0]["data"]

    assert all(label in (0, 1, 2) for label in v1), v1
    assert v1 == v2, "V1 and V2 disagree on the same rows"
