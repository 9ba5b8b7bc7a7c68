"""The V2 locust user derives its requests from the served model's signature: a headless run against a model
that is not iris (two inputs, FP32 and STRING, three outputs, no metadata) has no failures, and its checks
catch an answer that does not fit the model's outputs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadtest import loadtest_process
from tests.service.example_models import build_two_inputs
from tests.service.server_process import ServerProcess

os.environ.setdefault(
    "LOCUST_SKIP_MONKEY_PATCH", "1"
)  # only the plan and check functions run in this process

from loadtest.load.users import check_v2_outputs, model_plan, random_tensor


@pytest.fixture(scope="module")
def two_inputs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("two-inputs")
    model = build_two_inputs(workdir / "two_inputs.onnx")
    environment = {"MODEL_API_MODEL_PATH": str(model), "MODEL_API_MODEL_NAME": "two", "MODEL_API_API_KEY": ""}
    with ServerProcess(environment | {"MODEL_API_LOG_LEVEL": "warning"}, workdir / "server.log") as server:
        server.wait_until("/readyz", 200)
        yield server
        server.terminate()


def test_requests_built_from_the_metadata_are_answered_as_the_outputs_say(
    two_inputs_server: ServerProcess,
) -> None:
    plan = model_plan(two_inputs_server.url("").rstrip("/"), {})
    body = {"inputs": [random_tensor(spec, 5) for spec in plan.inputs]}

    status, answer = two_inputs_server.request("POST", "/v2/models/two/infer", body=body)

    assert (plan.name, plan.iris, [s["name"] for s in plan.inputs]) == ("two", False, ["x", "category"])
    assert (status, check_v2_outputs(answer, plan.outputs, 5)) == (200, None), answer


def test_an_answer_that_does_not_fit_the_outputs_is_a_failure(two_inputs_server: ServerProcess) -> None:
    plan = model_plan(two_inputs_server.url("").rstrip("/"), {})
    short = {"outputs": [{"name": "total", "datatype": "FP32", "shape": [5, 1], "data": [0.0] * 5}]}

    assert check_v2_outputs(short, plan.outputs, 5) == "v2 infer: output 'is_a' missing"


@pytest.mark.slow
def test_headless_v2_run_against_a_model_other_than_iris(
    two_inputs_server: ServerProcess, tmp_path: Path
) -> None:
    finished, summary, _ = loadtest_process.run_loadtest(
        two_inputs_server.url(""),
        tmp_path,
        # 20 requests/s per user: both tasks run within the 3 s (at 1 request/s one could draw no batch task)
        *("--user", "v2", "--shape", "soak", "--users", "2", "--duration", "3", "--batch-rows", "4"),
        *("--user-rps", "20"),
        timeout=90,
        env={"MODEL_API_API_KEY": ""},
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    endpoints = {e["name"]: (e["requests"] > 0, e["failures"]) for e in summary["endpoints"]}
    assert endpoints == {
        "/v2/models/two/infer [1 row]": (True, 0),
        "/v2/models/two/infer [batch]": (True, 0),
    }, summary["errors"]
