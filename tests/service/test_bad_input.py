"""Bad input: every case is a 4xx with {"error": ...} naming the problem, never a 5xx.

The seed, routing and JSON cases run against the iris model; the tensor cases run against every example
model (iris, the diabetes regressor, the two-input model without metadata), derived from its valid request.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import NamedTuple

import orjson
import pytest

from tests.service.asgi_client import AsgiClient
from tests.service.conftest import ServedModel

ROW = [5.1, 3.5, 1.4, 0.2]
INFER = "/v2/models/iris/infer"
PREDICT = "/v1/models/iris:predict"
CLASSIFY = "/api/v01/classify"


def tensor(**fields: object) -> bytes:
    base = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}
    return orjson.dumps({"inputs": [{**base, **fields}]})


class Case(NamedTuple):
    method: str
    path: str
    body: bytes
    status: int
    mentions: str  # a fragment the error message must contain


CASES = {
    # seed API: query parameters
    "classify missing param": Case("GET", f"{CLASSIFY}?sl=1&sw=2&pl=3", b"", 400, "'pw'"),
    "classify empty param": Case("GET", f"{CLASSIFY}?sl=&sw=2&pl=3&pw=1", b"", 400, "'sl'"),
    "classify not a number": Case("GET", f"{CLASSIFY}?sl=abc&sw=2&pl=3&pw=1", b"", 400, "must be a number"),
    "classify nan": Case("GET", f"{CLASSIFY}?sl=nan&sw=2&pl=3&pw=1", b"", 422, "finite"),
    "classify inf": Case("GET", f"{CLASSIFY}?sl=1&sw=-inf&pl=3&pw=1", b"", 422, "finite"),
    "classify beyond float32": Case("GET", f"{CLASSIFY}?sl=1e39&sw=2&pl=3&pw=1", b"", 422, "float32 range"),
    "classify unknown param": Case(
        "GET", f"{CLASSIFY}?sl=1&sw=2&pl=3&pw=1&x=2", b"", 400, "unknown query parameter 'x'"
    ),
    "classify repeated param": Case(
        "GET", f"{CLASSIFY}?sl=1&sl=2&sw=2&pl=3&pw=1", b"", 400, "more than once"
    ),
    "pi missing": Case("GET", "/api/v0/pi", b"", 400, "'ndigits'"),
    "pi not an integer": Case("GET", "/api/v0/pi?ndigits=1.5", b"", 400, "must be an integer"),
    "pi negative": Case("GET", "/api/v0/pi?ndigits=-1", b"", 422, ">= 0"),
    "pi above MAX_NDIGITS": Case("GET", "/api/v0/pi?ndigits=100001", b"", 422, "MAX_NDIGITS=100000"),
    "pi huge number": Case("GET", "/api/v0/pi?ndigits=" + "9" * 5000, b"", 422, "MAX_NDIGITS"),
    # routing
    "unknown route": Case("GET", "/nope", b"", 404, "no route for /nope"),
    "unknown v2 model": Case("POST", "/v2/models/other/infer", tensor(), 404, "model 'other' not found"),
    "unknown v1 model": Case("POST", "/v1/models/other:predict", b"{}", 404, "model 'other' not found"),
    "unknown v2 model version": Case(
        "POST", "/v2/models/iris/versions/1/infer", tensor(), 404, "model 'iris' has no version '1'"
    ),
    "unknown v2 model version metadata": Case(
        "GET", "/v2/models/iris/versions/7", b"", 404, "this server serves version"
    ),
    "v2 body names another model": Case(
        "POST",
        INFER,
        orjson.dumps({"model_name": "other", "inputs": orjson.loads(tensor())["inputs"]}),
        400,
        "model_name 'other'",
    ),
    "wrong method": Case("GET", INFER, b"", 405, "allowed: POST"),
    "wrong method on classify": Case("POST", CLASSIFY, b"", 405, "allowed: GET"),
    # JSON bodies
    "empty body": Case("POST", INFER, b"", 400, "empty"),
    "malformed json": Case("POST", INFER, b'{"inputs": [', 400, "malformed JSON"),
    "nan literal": Case("POST", PREDICT, b'{"instances": [[NaN, 1, 2, 3]]}', 400, "malformed JSON"),
    "overflowing number": Case("POST", PREDICT, b'{"instances": [[1e999, 1, 2, 3]]}', 400, "malformed JSON"),
    "body not an object": Case("POST", INFER, b"[1, 2]", 400, "JSON object"),
    # KServe V1
    "v1 no instances": Case("POST", PREDICT, b'{"rows": []}', 400, "instances"),
    "v1 extra field": Case(
        "POST", PREDICT, orjson.dumps({"instances": [ROW], "x": 1}), 400, "unknown field 'x'"
    ),
    "v1 empty instances": Case("POST", PREDICT, b'{"instances": []}', 400, "non-empty"),
    "v1 short row": Case("POST", PREDICT, b'{"instances": [[1, 2, 3]]}', 400, "instances[0]"),
    "v1 string value": Case("POST", PREDICT, b'{"instances": [[1, "2", 3, 4]]}', 400, "'2'"),
    "v1 bool value": Case("POST", PREDICT, b'{"instances": [[1, true, 3, 4]]}', 400, "True"),
    "v1 null value": Case("POST", PREDICT, b'{"instances": [[1, null, 3, 4]]}', 400, "None"),
    "v1 beyond float32": Case("POST", PREDICT, b'{"instances": [[1e300, 1, 2, 3]]}', 422, "not finite"),
    "v1 too many rows": Case(
        "POST", PREDICT, orjson.dumps({"instances": [ROW] * 10_001}), 422, "MAX_ROWS=10000"
    ),
    # Open Inference Protocol V2
    "v2 no inputs": Case("POST", INFER, b"{}", 400, "'inputs'"),
    "v2 two inputs": Case("POST", INFER, orjson.dumps({"inputs": [{}, {}]}), 400, "exactly 1 tensor"),
    "v2 BOOL datatype": Case("POST", INFER, tensor(datatype="BOOL"), 400, "'BOOL' is not accepted by input"),
    "v2 shape 1-d": Case("POST", INFER, tensor(shape=[4]), 400, "shape must be [N, 4]"),
    "v2 shape floats": Case("POST", INFER, tensor(shape=[1.0, 4]), 400, "shape"),
    "v2 data count mismatch": Case("POST", INFER, tensor(shape=[2, 4]), 400, "needs 8"),
    "v2 string data": Case("POST", INFER, tensor(data=[1, 2, "x", 4]), 400, "'x'"),
    "v2 missing data": Case(
        "POST",
        INFER,
        orjson.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32"}]}),
        400,
        "needs 'data'",
    ),
    "v2 float in INT32": Case("POST", INFER, tensor(datatype="INT32", data=[1, 2.5, 3, 4]), 400, "integers"),
    "v2 INT8 overflow": Case(
        "POST", INFER, tensor(datatype="INT8", data=[1, 300, 3, 4]), 400, "out of range for INT8"
    ),
    "v2 UINT8 negative": Case(
        "POST", INFER, tensor(datatype="UINT8", data=[1, -1, 3, 4]), 400, "out of range for UINT8"
    ),
    "v2 id not a string": Case("POST", INFER, orjson.dumps({**orjson.loads(tensor()), "id": 5}), 400, "'id'"),
    "v2 unknown field": Case(
        "POST", INFER, orjson.dumps({**orjson.loads(tensor()), "extra": 1}), 400, "unknown field 'extra'"
    ),
    "v2 unknown parameter": Case(
        "POST",
        INFER,
        orjson.dumps({**orjson.loads(tensor()), "parameters": {"p": 1}}),
        400,
        "unknown field 'p'",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_a_4xx_naming_the_problem(client: AsgiClient, case: Case) -> None:
    result = client.request(case.method, case.path, body=case.body)

    body = result.json()
    assert result.status == case.status, f"{case.method} {case.path[:80]}: status, body {body}"
    assert case.mentions in body["error"], f"{case.method} {case.path[:80]}: error message {body['error']!r}"


def test_body_larger_than_the_declared_limit_is_413_before_reading(client: AsgiClient) -> None:
    result = client.request("POST", INFER, body=b"{}", headers={"Content-Length": str(1_048_577)})

    assert (result.status, result.json()) == (
        413,
        {"error": "request body of 1048577 bytes exceeds MAX_BODY_BYTES=1048576"},
    )


def test_streamed_body_over_the_limit_is_413(make_app) -> None:
    client = AsgiClient(make_app(max_body_bytes=1000))

    result = client.request("POST", INFER, chunks=[b" " * 600, b" " * 600])

    assert (result.status, result.json()) == (413, {"error": "request body exceeds MAX_BODY_BYTES=1000"})


def test_errors_are_json_with_only_an_error_field(client: AsgiClient) -> None:
    result = client.get("/nope")

    assert (result.headers["content-type"], list(result.json())) == ("application/json", ["error"])


def test_405_lists_the_allowed_methods_in_the_allow_header(client: AsgiClient) -> None:
    assert client.get(INFER).headers["allow"] == "POST"


def test_405_on_a_get_route_also_allows_head(client: AsgiClient) -> None:
    result = client.request("PUT", "/healthz")

    assert (result.status, result.headers["allow"]) == (405, "GET, HEAD")


def test_fp32_value_beyond_float32_is_refused_without_a_numpy_warning(client: AsgiClient) -> None:
    # A RuntimeWarning would print a raw line into the JSON log stream (and be a 500 under -W error).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = client.post(INFER, body=tensor(data=[1e39, 3.5, 1.4, 0.2]))

    assert (result.status, "not finite in FP32" in result.json()["error"]) == (422, True), result.body


# ---- tensor cases for every example model, derived from its valid request -------------------------------

Body = list[dict]  # the request's inputs; a case edits a deep copy
TensorCase = Callable[[Body], tuple[dict, int, str]]  # inputs → (request body, status, mention)


def _first(edit: Callable[[dict], None], status: int, mention: str) -> TensorCase:
    """A case that edits the first input (a float tensor [N, width] in every example model)."""

    def case(inputs: Body) -> tuple[dict, int, str]:
        edit(inputs[0])
        return {"inputs": inputs}, status, mention

    return case


def _rows(tensor: dict, rows: int, value: object = 1.0) -> None:
    width = tensor["shape"][1]
    tensor["shape"], tensor["data"] = [rows, width], [[value] * width for _ in range(rows)]


def _set(**fields: object) -> Callable[[dict], None]:
    return lambda tensor: tensor.update(fields)


def _integers(datatype: str, first: object) -> Callable[[dict], None]:
    """The tensor as integers of `datatype`, its first value replaced by `first`."""

    def edit(tensor: dict) -> None:
        tensor["datatype"] = datatype
        tensor["data"] = [[int(v) for v in row] for row in tensor["data"]]
        tensor["data"][0][0] = first

    return edit


def _one_value(value: object) -> Callable[[dict], None]:
    return lambda tensor: tensor["data"][0].__setitem__(0, value)


TENSOR_CASES: dict[str, TensorCase] = {
    "unknown input name": _first(_set(name="nope"), 400, "'nope' is not an input of model"),
    "missing input": lambda inputs: ({"inputs": inputs[1:]}, 400, "exactly"),
    "extra input": lambda inputs: ({"inputs": [*inputs, inputs[0]]}, 400, "exactly"),
    "BYTES for a float input": _first(_set(datatype="BYTES"), 400, "'BYTES' is not accepted by input"),
    "unknown datatype": _first(_set(datatype="FP8"), 400, "'FP8' is not accepted"),
    "datatype not a string": _first(_set(datatype=3), 400, "not accepted"),
    "datatype a list": _first(_set(datatype=[]), 400, "not accepted"),
    "rank 1 shape": _first(lambda t: t.update(shape=[t["shape"][1]]), 400, "shape must be [N, "),
    "wrong width": _first(lambda t: t.update(shape=[2, t["shape"][1] + 1]), 400, "shape must be [N, "),
    "zero rows": _first(_set(shape=[0, 1], data=[]), 400, "every dimension >= 1"),
    "shape not a list": _first(_set(shape="2x4"), 400, "shape must be"),
    "element count": _first(lambda t: t.update(shape=[3, t["shape"][1]]), 400, "needs 3"),
    "flat count": _first(
        lambda t: t.update(data=[v for row in t["data"] for v in row][1:]), 400, "values, shape"
    ),
    "ragged row": _first(lambda t: t["data"][1].pop(), 400, "inputs[0].data[1] must be a list of"),
    "string element": _first(_one_value("1.5"), 400, "must hold only numbers for input"),
    "bool element": _first(_one_value(True), 400, "found True"),
    "null element": _first(_one_value(None), 400, "found None"),
    "non-finite in float32": _first(_one_value(1e39), 422, "not finite in FP32"),
    "FP64 beyond float32": _first(
        lambda t: (t.update(datatype="FP64"), _one_value(1e300)(t)), 422, "not finite"
    ),
    "integer overflow": _first(_integers("INT8", 300), 400, "out of range for INT8"),
    "float in an integer tensor": _first(_integers("INT32", 2.5), 400, "must hold only integers"),
    "too many rows": _first(lambda t: _rows(t, 10_001), 422, "MAX_ROWS=10000"),
    "no data": _first(lambda t: t.pop("data"), 400, "needs 'data'"),
    "unknown tensor field": _first(_set(extra=1), 400, "unknown field 'extra' in inputs[0]"),
    "unknown output": lambda inputs: (
        {"inputs": inputs, "outputs": [{"name": "nope"}]},
        400,
        "'nope' is not an output",
    ),
    "output twice": lambda inputs: ({"inputs": inputs, "outputs": [{"name": "?"}] * 2}, 400, "not an output"),
    "binary size without bytes": _first(
        lambda t: (t.pop("data"), t.update(parameters={"binary_data_size": 8})), 400, "binary bytes are left"
    ),
}


@pytest.mark.parametrize("make_case", TENSOR_CASES.values(), ids=TENSOR_CASES.keys())
def test_bad_tensor_is_a_4xx_naming_the_input_and_problem(
    served: tuple[ServedModel, AsgiClient], make_case: TensorCase
) -> None:
    model, client = served
    body, status, mentions = make_case(copy.deepcopy(model.inputs))

    result = client.post(model.infer, json=body)

    error = result.json().get("error", "")
    assert result.status == status, f"{model.name}: status {result.status}, body {result.body[:300]!r}"
    assert mentions in error, f"{model.name}: error message {error!r}"


def test_two_inputs_model_refuses_what_does_not_fit_its_string_input(example_models, make_app) -> None:
    model = example_models["two_inputs"]
    client = AsgiClient(make_app(model_path=model.path, model_name=model.name))
    x, category = model.inputs
    cases = {
        "number in a string input": ([x, {**category, "data": [[1], ["b"]]}], 400, "must hold only strings"),
        "FP32 for a string input": ([x, {**category, "datatype": "FP32"}], 400, "use one of BYTES"),
        "input twice": ([x, x], 400, "'x' is given twice"),
        "rows disagree": (
            [x, {**category, "shape": [3, 1], "data": [["a"], ["b"], ["c"]]}],
            400,
            "same number of rows; got 'x' 2, 'category' 3",
        ),
    }
    for name, (inputs, status, mentions) in cases.items():
        result = client.post(model.infer, json={"inputs": inputs})

        assert (result.status, mentions in result.json()["error"]) == (status, True), (
            f"{name}: {result.body!r}"
        )


def test_kserve_v1_refuses_a_multi_input_model_naming_its_inputs(example_models, make_app) -> None:
    model = example_models["two_inputs"]
    client = AsgiClient(make_app(model_path=model.path, model_name=model.name))

    result = client.post(model.predict, json={"instances": [[1.0, 2.0, 3.0]]})

    assert result.status == 404, result.body
    assert "one input; model 'two_inputs' takes 2 (x, category)" in result.json()["error"]


@pytest.mark.parametrize("model_name", ["diabetes", "two_inputs"])
def test_seed_classify_is_404_naming_why_for_a_model_it_does_not_fit(
    example_models, make_app, model_name
) -> None:
    model = example_models[model_name]
    client = AsgiClient(make_app(model_path=model.path, model_name=model.name))

    result = client.get(f"{CLASSIFY}?sl=5.1&sw=3.5&pl=1.4&pw=0.2")

    assert result.status == 404, result.body
    assert result.json()["error"].startswith(f"/api/v01/classify does not fit model {model_name!r}: it needs")
