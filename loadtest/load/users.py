"""Locust users for the model-api service: one FastHttpUser per API, one short task per endpoint.

Every response is checked for correctness with `catch_response`: a wrong species, a malformed V2 answer or a
wrong digit of pi is a failure, not a success. Run it directly with
`locust -f loadtest/locustfile.py --host http://127.0.0.1:8080`, or through `python -m loadtest run`.

Environment (read when this module is imported; `python -m loadtest run` overrides them per run):
  MODEL_API_API_KEY     sent as `X-API-Key` when set
  LOADTEST_USER_RPS     requests per second each user aims for (default 1; 0: no wait, as fast as it answers)
  LOADTEST_PI_NDIGITS   digits of pi per /api/v0/pi request, the CPU cost of one request (default 10000)
  LOADTEST_BATCH_ROWS   rows per batched V2 infer request (default 16)
"""

from __future__ import annotations

import json
import math
import os
import random
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from locust import FastHttpUser, constant, constant_throughput, tag, task

API_KEY_ENV = "MODEL_API_API_KEY"
SPECIES = ("Iris setosa", "Iris versicolor", "Iris virginica")
PI_PREFIX = "3.14159"
PROBABILITY_TOLERANCE = 1e-3

# Rows of Fisher's iris data (UCI row = index + 1), far from the class boundaries (every sound classifier,
# including the project's logistic regression at >= 0.9 confidence, agrees), so a wrong answer is a bug.
KNOWN_ROWS: tuple[tuple[tuple[float, float, float, float], int], ...] = (
    ((5.1, 3.5, 1.4, 0.2), 0),  # row 1
    ((4.4, 2.9, 1.4, 0.2), 0),  # row 9
    ((5.4, 3.9, 1.3, 0.4), 0),  # row 17
    ((4.8, 3.4, 1.9, 0.2), 0),  # row 25
    ((5.2, 4.1, 1.5, 0.1), 0),  # row 33
    ((5.0, 3.5, 1.3, 0.3), 0),  # row 41
    ((5.5, 2.3, 4.0, 1.3), 1),  # row 54
    ((6.0, 2.2, 4.0, 1.0), 1),  # row 63
    ((5.6, 2.5, 3.9, 1.1), 1),  # row 70
    ((6.4, 2.9, 4.3, 1.3), 1),  # row 75
    ((5.5, 2.4, 3.8, 1.1), 1),  # row 81
    ((5.8, 2.7, 3.9, 1.2), 1),  # row 83
    ((6.3, 3.3, 6.0, 2.5), 2),  # row 101
    ((7.3, 2.9, 6.3, 1.8), 2),  # row 108
    ((5.8, 2.8, 5.1, 2.4), 2),  # row 115
    ((6.9, 3.2, 5.7, 2.3), 2),  # row 121
    ((7.4, 2.8, 6.1, 1.9), 2),  # row 131
    ((6.3, 3.4, 5.6, 2.4), 2),  # row 137
)

Check = Callable[[Any], str | None]


def env_number(name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    """A number from the environment, `default` when unset; a clear error naming the variable otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}={raw!r} is not {kind}") from None
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}={raw!r} must be a finite number >= {minimum}")
    return value


def api_key_headers(environ: Mapping[str, str]) -> dict[str, str]:
    key = environ.get(API_KEY_ENV, "")
    return {"X-API-Key": key} if key else {}


def pacing(requests_per_second: float) -> Callable[..., float]:
    """Locust wait_time for a per-user request rate; 0 means no wait (closed loop at full speed)."""
    return constant_throughput(requests_per_second) if requests_per_second > 0 else constant(0)


# ---- correctness checks: parsed JSON body in, None when right or the problem in one sentence ----


def check_species(body: Any, expected: int) -> str | None:
    species = body.get("species") if isinstance(body, dict) else None
    if species != SPECIES[expected]:
        return f"classify: expected species {SPECIES[expected]!r}, got {species!r}"
    return None


def _v2_output(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((o for o in body.get("outputs", []) if isinstance(o, dict) and o.get("name") == name), None)


def _rows_of(data: Sequence[Any], width: int) -> list[list[Any]]:
    flat = [x for row in data for x in row] if data and isinstance(data[0], list) else list(data)
    return [flat[i : i + width] for i in range(0, len(flat), width)]


def check_v2_infer(body: Any, expected: Sequence[int]) -> str | None:
    """V2 response: `label` [N] equal to the known classes, `probabilities` [N, 3] rows summing to 1."""
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        return f"v2 infer: no 'outputs' list in {str(body)[:120]!r}"
    label, probabilities = _v2_output(body, "label"), _v2_output(body, "probabilities")
    if label is None or probabilities is None:
        names = [o.get("name") for o in body["outputs"] if isinstance(o, dict)]
        return f"v2 infer: outputs 'label' and 'probabilities' expected, got {names}"
    rows, classes = len(expected), len(SPECIES)
    if label.get("shape") != [rows] or probabilities.get("shape") != [rows, classes]:
        return (
            f"v2 infer: shapes label {label.get('shape')} / probabilities {probabilities.get('shape')}, "
            f"expected [{rows}] / [{rows}, {classes}]"
        )
    if list(label.get("data", [])) != list(expected):
        return f"v2 infer: labels {label.get('data')} != expected {list(expected)}"
    for index, row in enumerate(_rows_of(probabilities.get("data", []), classes)):
        if (
            len(row) != classes
            or any(not 0.0 <= p <= 1.0 for p in row)
            or abs(sum(row) - 1.0) > PROBABILITY_TOLERANCE
        ):
            return f"v2 infer: probabilities row {index} {row} is not a distribution over {classes} classes"
        if max(range(classes), key=row.__getitem__) != expected[index]:
            return f"v2 infer: probabilities row {index} {row} disagree with label {expected[index]}"
    return None


def check_pi(body: Any, ndigits: int) -> str | None:
    """`pi` starts 3.14159 (as far as it goes) and has exactly `ndigits` digits after the point."""
    pi = body.get("pi") if isinstance(body, dict) else None
    if not isinstance(pi, str):
        return f"pi: no 'pi' string in {str(body)[:120]!r}"
    expected_length = 1 + (1 + ndigits if ndigits > 0 else 0)
    if not pi.startswith(PI_PREFIX[:expected_length]) or len(pi) != expected_length:
        return (
            f"pi: expected 3.14159… with {ndigits} digits after the point, got {pi[:20]!r} ({len(pi)} chars)"
        )
    if body.get("ndigits") != ndigits:
        return f"pi: 'ndigits' is {body.get('ndigits')!r}, expected {ndigits}"
    return None


@dataclass(frozen=True)
class ModelPlan:
    """What a V2 user needs of the served model: its name and its signature (V2 metadata tensors)."""

    name: str
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    iris: bool  # the iris classifier: known rows with known classes can be checked exactly


_PLANS: dict[str, ModelPlan] = {}


def model_plan(host: str, headers: Mapping[str, str], timeout: float = 10.0) -> ModelPlan:
    """The served model's plan, read once per host: GET /v1/models for the name, then its V2 metadata.
    Read outside locust's client so that the set-up requests are not counted as load."""
    plan = _PLANS.get(host)
    if plan is None:
        name = _get_json(f"{host}/v1/models", headers, timeout)["models"][0]
        metadata = _get_json(f"{host}/v2/models/{name}", headers, timeout)
        inputs, outputs = tuple(metadata["inputs"]), tuple(metadata["outputs"])
        iris = (
            len(inputs) == 1
            and inputs[0]["shape"] in ([-1, 4], [1, 4])
            and inputs[0]["datatype"] in ("FP32", "FP64")
            and tuple(metadata.get("parameters", {}).get("class_names", ())) == SPECIES
            and {o["name"] for o in outputs} >= {"label", "probabilities"}
        )
        plan = _PLANS[host] = ModelPlan(name, inputs, outputs, iris)
    return plan


def _get_json(url: str, headers: Mapping[str, str], timeout: float) -> Any:
    request = urllib.request.Request(url, headers=dict(headers))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def random_tensor(spec: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """A V2 JSON tensor for an input of the metadata: `rows` rows, other dynamic dimensions 1."""
    shape = [
        rows if i == 0 and dim == -1 else (1 if dim == -1 else dim) for i, dim in enumerate(spec["shape"])
    ]
    count = math.prod(shape)
    datatype = spec["datatype"]
    if datatype == "BYTES":
        data: list[Any] = [random.choice("abc") for _ in range(count)]
    elif datatype == "BOOL":
        data = [random.random() < 0.5 for _ in range(count)]
    elif datatype.startswith(("INT", "UINT")):
        data = [random.randint(0, 3) for _ in range(count)]
    else:
        data = [round(random.gauss(0.0, 1.0), 4) for _ in range(count)]
    return {"name": spec["name"], "shape": shape, "datatype": datatype, "data": data}


def check_v2_outputs(body: Any, outputs: Sequence[Mapping[str, Any]], rows: int) -> str | None:
    """Any model's V2 response: every output of its metadata, with its datatype, `rows` rows and as many
    values as its shape says."""
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        return f"v2 infer: no 'outputs' list in {str(body)[:120]!r}"
    for spec in outputs:
        got = _v2_output(body, spec["name"])
        if got is None:
            return f"v2 infer: output {spec['name']!r} missing"
        shape = got.get("shape")
        if got.get("datatype") != spec["datatype"] or not shape or shape[0] != rows:
            return (
                f"v2 infer: output {spec['name']!r} is {got.get('datatype')} {shape}, "
                f"expected {spec['datatype']} [{rows}, ...]"
            )
        if len(got.get("data", [])) != math.prod(shape):
            return (
                f"v2 infer: output {spec['name']!r} has {len(got.get('data', []))} values for shape {shape}"
            )
    return None


def judge(response: Any, check: Check) -> None:
    """Mark a catch_response response: a non-200 status, a non-JSON body or a wrong answer is a failure."""
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
        return
    try:
        body = response.json()
    except ValueError:
        response.failure(f"response is not JSON: {(response.text or '')[:200]!r}")
        return
    problem = check(body)
    if problem:
        response.failure(problem)
    else:
        response.success()


# ---- users ----


class ApiUser(FastHttpUser):
    """Shared by the users below: request pacing and the API key header."""

    abstract = True
    wait_time = pacing(env_number("LOADTEST_USER_RPS", 1.0, minimum=0.0))
    api_key: str | None = None  # None: MODEL_API_API_KEY from the environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The client copies default_headers when it is built: set them before FastHttpUser.__init__.
        source = os.environ if self.api_key is None else {API_KEY_ENV: self.api_key}
        self.default_headers = api_key_headers(source)
        super().__init__(*args, **kwargs)


class ClassifyUser(ApiUser):
    """The seed API: GET /api/v01/classify with a known iris row."""

    @tag("classify", "seed")
    @task
    def classify(self) -> None:
        (sl, sw, pl, pw), species = random.choice(KNOWN_ROWS)
        params = f"sl={sl}&sw={sw}&pl={pl}&pw={pw}"
        with self.client.get(
            f"/api/v01/classify?{params}", name="/api/v01/classify", catch_response=True
        ) as response:
            judge(response, lambda body: check_species(body, species))


class V2InferUser(ApiUser):
    """Open Inference Protocol V2: POST /v2/models/<name>/infer with one row and with batches.

    The request is built from the served model's signature (its V2 metadata, read once per host when the
    user starts): known iris rows with their expected classes for the iris model, random rows of the right
    names, datatypes and shapes for any other model, whose answers are checked against its outputs.
    """

    batch_rows = int(env_number("LOADTEST_BATCH_ROWS", 16, minimum=1, integer=True))
    model: ModelPlan | None = None

    def on_start(self) -> None:
        self.model = model_plan((self.host or "").rstrip("/"), self.default_headers)

    def _infer(self, rows: int, label: str) -> None:
        model = self.model
        assert model is not None
        if model.iris:
            sample = random.choices(KNOWN_ROWS, k=rows)
            tensor = {"name": model.inputs[0]["name"], "shape": [rows, 4], "datatype": "FP32"}
            payload = {
                "inputs": [{**tensor, "data": [value for features, _ in sample for value in features]}]
            }
            expected = [species for _, species in sample]
            check: Check = lambda body: check_v2_infer(body, expected)  # noqa: E731
        else:
            payload = {"inputs": [random_tensor(spec, rows) for spec in model.inputs]}
            check = lambda body: check_v2_outputs(body, model.outputs, rows)  # noqa: E731
        with self.client.post(
            f"/v2/models/{model.name}/infer", json=payload, name=f"/v2/models/{model.name}/infer [{label}]",
            catch_response=True,
        ) as response:  # fmt: skip
            judge(response, check)

    @tag("v2", "infer")
    @task(3)
    def infer_one_row(self) -> None:
        self._infer(1, "1 row")

    @tag("v2", "infer", "batch")
    @task
    def infer_batch(self) -> None:
        self._infer(self.batch_rows, "batch")


class PiUser(ApiUser):
    """The CPU-bound workload: GET /api/v0/pi; `ndigits` sets the cost of one request."""

    ndigits = int(env_number("LOADTEST_PI_NDIGITS", 10000, minimum=0, integer=True))

    @tag("pi", "cpu")
    @task
    def pi(self) -> None:
        ndigits = self.ndigits
        with self.client.get(
            f"/api/v0/pi?ndigits={ndigits}", name="/api/v0/pi", catch_response=True
        ) as response:
            judge(response, lambda body: check_pi(body, ndigits))


USER_CLASSES: dict[str, type[ApiUser]] = {"classify": ClassifyUser, "v2": V2InferUser, "pi": PiUser}
