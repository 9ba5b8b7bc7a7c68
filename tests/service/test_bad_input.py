"""Bad input: every case is a 4xx with {"error": ...} naming the problem, never a 5xx."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import orjson
import pytest

from tests.service.asgi_client import AsgiClient

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
    "v2 two inputs": Case("POST", INFER, orjson.dumps({"inputs": [{}, {}]}), 400, "exactly one tensor"),
    "v2 wrong input name": Case("POST", INFER, tensor(name="x"), 400, "inputs[0].name"),
    "v2 BYTES datatype": Case("POST", INFER, tensor(datatype="BYTES"), 400, "'BYTES' is not supported"),
    "v2 BOOL datatype": Case("POST", INFER, tensor(datatype="BOOL"), 400, "'BOOL' is not supported"),
    "v2 shape 1-d": Case("POST", INFER, tensor(shape=[4]), 400, "shape must be [N, 4]"),
    "v2 shape wrong width": Case("POST", INFER, tensor(shape=[1, 5], data=[1, 2, 3, 4, 5]), 400, "shape"),
    "v2 shape zero rows": Case("POST", INFER, tensor(shape=[0, 4], data=[]), 400, "N >= 1"),
    "v2 shape floats": Case("POST", INFER, tensor(shape=[1.0, 4]), 400, "shape"),
    "v2 data count mismatch": Case("POST", INFER, tensor(shape=[2, 4]), 400, "needs 8"),
    "v2 nested rows mismatch": Case("POST", INFER, tensor(shape=[2, 4], data=[ROW]), 400, "needs 2"),
    "v2 nested ragged": Case("POST", INFER, tensor(shape=[2, 4], data=[ROW, [1, 2]]), 400, "data[1]"),
    "v2 string data": Case("POST", INFER, tensor(data=[1, 2, "x", 4]), 400, "'x'"),
    "v2 bool data": Case("POST", INFER, tensor(data=[1, 2, False, 4]), 400, "False"),
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
    "v2 FP64 beyond float32": Case(
        "POST", INFER, tensor(datatype="FP64", data=[1e300, 1, 2, 3]), 422, "not finite"
    ),
    "v2 too many rows": Case(
        "POST", INFER, tensor(shape=[10_001, 4], data=ROW * 10_001), 422, "MAX_ROWS=10000"
    ),
    "v2 unknown output": Case(
        "POST",
        INFER,
        orjson.dumps({"inputs": orjson.loads(tensor())["inputs"], "outputs": [{"name": "x"}]}),
        400,
        "'x' is not an output",
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

    assert (result.status, "not finite in float32" in result.json()["error"]) == (422, True), result.body
