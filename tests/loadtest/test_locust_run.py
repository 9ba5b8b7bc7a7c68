"""Headless locust runs (`python -m loadtest run`, seconds long, loopback only), the locustfile's checks, and
the loopback relay a cluster run sends its requests through.

The runs happen in subprocesses: locust gevent-patches the process that imports it, which must not be
pytest's. One run goes against the real service on a free port (no failures, sane statistics, every user
class exercised); one against a stub that answers a wrong species, which must count as failures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from loadtest.cluster.proxy import ServiceProxy
from loadtest.probe import wait_until
from tests.loadtest import loadtest_process
from tests.loadtest.loadtest_process import LoadRun
from tests.loadtest.stub_http import serving
from tests.service.server_process import ServerProcess

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")  # only the check functions are used in this process

from loadtest.load.users import KNOWN_ROWS, SPECIES, check_pi, check_species, check_v2_infer

RUN_TIMEOUT_S = 90  # a hung run fails the test instead of hanging the suite
ENDPOINTS = {
    "/api/v01/classify",
    "/v2/models/iris/infer [1 row]",
    "/v2/models/iris/infer [batch]",
    "/api/v0/pi",
}


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real service, one process on a free loopback port."""
    log = tmp_path_factory.mktemp("service") / "server.log"
    with ServerProcess({"MODEL_API_LOG_LEVEL": "warning", "MODEL_API_API_KEY": ""}, log) as server:
        server.wait_until("/readyz", 200, timeout=30)
        yield server.url("")
        server.terminate()


def run_loadtest(host: str, out: Path, *options: str) -> LoadRun:
    """A bounded run with no API key (the local service has none)."""
    return loadtest_process.run_loadtest(
        host, out, *options, timeout=RUN_TIMEOUT_S, env={"MODEL_API_API_KEY": ""}
    )


@pytest.mark.slow
def test_headless_run_against_the_service(service_url: str, tmp_path: Path) -> None:
    # 3 users for 3 user classes of equal weight: each class runs from the first second.
    finished, summary, timeline = run_loadtest(
        service_url,
        tmp_path,
        *("--shape", "step", "--step-users", "3", "--step-seconds", "5", "--steps", "2", "--duration", "10"),
        *("--user-rps", "4", "--pi-ndigits", "2000", "--batch-rows", "8"),
    )
    assert finished.returncode == 0, f"loadtest run exit {finished.returncode}:\n{finished.stderr[-3000:]}"
    endpoints = {e["name"]: e for e in summary["endpoints"]}
    assert set(endpoints) == ENDPOINTS, "summary.json endpoints: every user class and task must have run"
    failures = {name: e["failures"] for name, e in endpoints.items()}
    assert failures == dict.fromkeys(ENDPOINTS, 0), f"failures by endpoint; errors: {summary['errors']}"
    for name, e in endpoints.items():
        assert e["requests"] > 0 and e["rps"] > 0, f"endpoint {name}: requests/rps"
        assert e["p50_ms"] <= e["p95_ms"] <= e["p99_ms"], f"endpoint {name}: p50 <= p95 <= p99"
    loaded = [row for row in timeline if float(row["rps"]) > 0]
    assert len(loaded) >= 5, "timeline.csv: seconds with requests"
    for row in loaded:
        p50, p95, p99 = (float(row[c]) for c in ("p50_ms", "p95_ms", "p99_ms"))
        assert p50 <= p95 <= p99, f"timeline.csv t={row['t']}: window p50 <= p95 <= p99"
    assert max(int(row["users"]) for row in timeline) == 6, "timeline.csv users: two steps of 3"
    expected_requests = sum(e["requests"] for e in endpoints.values())
    assert summary["verdicts"]["requests"] == expected_requests, "summary.json verdicts.requests vs endpoints"


class ReadyStub(BaseHTTPRequestHandler):
    """Passes the run's pre-load check as the service would (/readyz 200, /v1/models lists iris); what it
    answers to the load is each subclass's `answer_load`."""

    load_requests: ClassVar[list[str]] = []  # paths of the load's requests, in arrival order

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path == "/readyz":
            self.reply({"status": "ready"})
        elif path == "/v1/models":
            self.reply({"models": ["iris"]})
        else:
            self.load_requests.append(path)
            self.answer_load()

    def answer_load(self) -> None:
        self.reply({"error": "this stub serves no load"}, status=503)

    def reply(self, payload: Any, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


class WrongSpeciesHandler(ReadyStub):
    """Answers every classify request with a real but wrong species (the next class of the known row)."""

    def answer_load(self) -> None:
        query = {key: float(values[0]) for key, values in parse_qs(urlparse(self.path).query).items()}
        features = (query["sl"], query["sw"], query["pl"], query["pw"])
        species = next(label for row, label in KNOWN_ROWS if row == features)
        self.reply({"species": SPECIES[(species + 1) % len(SPECIES)]})


@pytest.fixture(scope="module")
def wrong_species_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadRun, Path]:
    """One classify run against a stub that answers a wrong species: (the run, its report directory)."""
    out = tmp_path_factory.mktemp("wrong-species")
    options = ("--user", "classify", "--shape", "soak", "--users", "1", "--duration", "3")
    with serving(WrongSpeciesHandler) as server:
        run = run_loadtest(f"http://127.0.0.1:{server.server_address[1]}", out, *options)
    return run, next(out.iterdir())


@pytest.mark.slow
def test_a_wrong_species_is_a_failure(wrong_species_run: tuple[LoadRun, Path]) -> None:
    (finished, summary, _), _ = wrong_species_run
    classify = next(e for e in summary["endpoints"] if e["name"] == "/api/v01/classify")
    assert classify["requests"] > 0, "the stub received no request"
    assert classify["failures"] == classify["requests"], "every wrong species must count as a failure"
    assert finished.returncode == 1, "a run with failures must exit 1"
    assert any("expected species" in e["error"] for e in summary["errors"]), f"errors: {summary['errors']}"


@pytest.mark.slow
def test_failure_reasons_are_listed_with_their_counts(wrong_species_run: tuple[LoadRun, Path]) -> None:
    """The report and the console name why requests failed and how often (locust groups them)."""
    (finished, summary, _), report = wrong_species_run
    classify = next(e for e in summary["endpoints"] if e["name"] == "/api/v01/classify")
    table = report.joinpath("report.md").read_text().split("## Failures by reason", 1)[-1].split("##", 1)[0]
    counted = sum(
        int(line.split("|")[1]) for line in table.splitlines() if line.startswith("| ") and "species" in line
    )
    expected = (classify["failures"], True, True)
    actual = (
        counted,
        "failures by reason" in finished.stdout,
        "expected species" in finished.stdout,
    )
    assert actual == expected, (
        f"(failures in report.md's reasons, console heading, console reason); {finished.stdout[-1500:]!r}"
    )


def test_a_host_that_does_not_answer_fails_fast_naming_it(tmp_path: Path) -> None:
    """Issue 9.8: a dead host is named with the error after a few seconds of readiness retries, before any
    load (the step shape would otherwise run for a minute of connection failures)."""
    host = "http://127.0.0.1:1"
    command = [
        sys.executable,
        "-m",
        "loadtest",
        "run",
        "--host",
        host,
        "--out",
        str(tmp_path),
        "--shape",
        "step",
    ]
    finished = subprocess.run(command, cwd=loadtest_process.ROOT, capture_output=True, text=True, timeout=50)
    lines = finished.stderr.splitlines()
    expected = (1, [True], [])
    actual = (
        finished.returncode,
        [
            line.startswith(f"error: {host} is not ready") and "ConnectionRefusedError" in line
            for line in lines
        ],
        list(tmp_path.iterdir()),
    )
    assert actual == expected, f"(exit status, stderr names host and error, report files); stderr {lines}"


@pytest.mark.slow
def test_v2_users_request_the_model_the_service_serves(tmp_path: Path) -> None:
    """config.modelName is a chart value: a service serving `flowers` gets no request for `iris`."""
    log = tmp_path / "server.log"
    env = {"MODEL_API_LOG_LEVEL": "warning", "MODEL_API_API_KEY": "", "MODEL_API_MODEL_NAME": "flowers"}
    with ServerProcess(env, log) as server:
        server.wait_until("/readyz", 200, timeout=30)
        finished, summary, _ = run_loadtest(
            server.url(""),
            tmp_path / "out",
            "--user",
            "v2",
            "--shape",
            "soak",
            "--users",
            "1",
            "--duration",
            "3",
        )
        server.terminate()
    infer = {e["name"]: e["failures"] for e in summary["endpoints"] if "infer" in e["name"]}
    expected = (0, True, 0)
    actual = (
        finished.returncode,
        bool(infer) and all(name.startswith("/v2/models/flowers/infer") for name in infer),
        sum(infer.values()),
    )
    assert actual == expected, f"(exit, every infer asks for flowers, failures): {infer}; {summary['errors']}"


# ---- the checks themselves, on hand-made bodies ----

SETOSA_ROW_PROBABILITIES = [0.98, 0.02, 0.0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"species": "Iris setosa"}, None),
        ({"species": "Iris virginica"}, "expected species 'Iris setosa'"),
        ({"error": "bad"}, "got None"),
        ([], "got None"),
    ],
)
def test_check_species(body: Any, problem: str | None) -> None:
    actual = check_species(body, 0)
    assert (actual is None) == (problem is None) and (problem is None or problem in actual), (
        f"check_species: {actual}"
    )


def v2_body(labels: list[int], probabilities: list[float], rows: int) -> dict[str, Any]:
    return {
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [rows], "data": labels},
            {"name": "probabilities", "datatype": "FP32", "shape": [rows, 3], "data": probabilities},
        ]
    }


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (v2_body([0], SETOSA_ROW_PROBABILITIES, 1), None),
        (v2_body([1], SETOSA_ROW_PROBABILITIES, 1), "labels [1] != expected [0]"),
        (v2_body([0], [0.5, 0.2, 0.2], 1), "is not a distribution"),
        (v2_body([0], [0.1, 0.9, 0.0], 1), "disagree with label 0"),
        (v2_body([0, 0], SETOSA_ROW_PROBABILITIES * 2, 2), "expected [1] / [1, 3]"),
        ({"outputs": [{"name": "output_label"}]}, "outputs 'label' and 'probabilities' expected"),
        ({"error": "no model"}, "no 'outputs' list"),
    ],
)
def test_check_v2_infer(body: Any, problem: str | None) -> None:
    actual = check_v2_infer(body, [0])
    assert (actual is None) == (problem is None) and (problem is None or problem in actual), (
        f"check_v2_infer: {actual}"
    )


@pytest.mark.parametrize(
    ("body", "ndigits", "problem"),
    [
        ({"ndigits": 10, "pi": "3.1415926535"}, 10, None),
        ({"ndigits": 0, "pi": "3"}, 0, None),
        ({"ndigits": 10, "pi": "3.1415926536"}, 10, None),  # beyond the checked prefix only the length counts
        ({"ndigits": 10, "pi": "3.141592653"}, 10, "(11 chars)"),
        ({"ndigits": 10, "pi": "3.2415926535"}, 10, "expected 3.14159"),
        ({"ndigits": 9, "pi": "3.1415926535"}, 10, "'ndigits' is 9"),
        ({"digits": "3.14"}, 2, "no 'pi' string"),
    ],
)
def test_check_pi(body: Any, ndigits: int, problem: str | None) -> None:
    actual = check_pi(body, ndigits)
    assert (actual is None) == (problem is None) and (problem is None or problem in actual), (
        f"check_pi: {actual}"
    )


# ---- the relay a cluster run travels by (loadtest.cluster.proxy), against a stand-in API server ----

SERVICE_PATH = "/api/v1/namespaces/load/services/model-api:http/proxy"


class StandInApiServer(BaseHTTPRequestHandler):
    """Answers like the API server's service proxy would, echoing what it received."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = {
            "method": self.command,
            "path": self.path,
            "authorization": self.headers.get("Authorization"),
            "api_key": self.headers.get("X-API-Key"),
            "body": self.rfile.read(length).decode() if length else None,
        }
        payload = json.dumps(seen).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api_client() -> Iterator[client.ApiClient]:
    with serving(StandInApiServer) as server:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
        configuration.api_key = {"authorization": "cluster-token"}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        yield client.ApiClient(configuration)


def fetch(url: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"X-API-Key": "service-key"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_service_proxy_relays_path_body_and_credentials(api_client: client.ApiClient) -> None:
    with ServiceProxy(api_client, SERVICE_PATH) as url:
        get_status, got = fetch(url + "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2")
        post_status, posted = fetch(url + "/v2/models/iris/infer", body=b'{"inputs": []}')
    expected_get = {
        "method": "GET",
        "path": SERVICE_PATH + "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2",
        "authorization": "Bearer cluster-token",
        "api_key": "service-key",
        "body": None,
    }
    assert (get_status, got) == (200, expected_get), "GET as the API server received it"
    expected_post = {**expected_get, "method": "POST", "path": SERVICE_PATH + "/v2/models/iris/infer"}
    expected_post["body"] = '{"inputs": []}'
    assert (post_status, posted) == (201, expected_post), "POST as the API server received it"


def test_service_proxy_answers_502_when_the_api_server_is_down() -> None:
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard port: nothing listens
    with (
        ServiceProxy(client.ApiClient(configuration), SERVICE_PATH, timeout=2) as url,
        pytest.raises(urllib.error.HTTPError) as caught,
    ):
        fetch(url + "/readyz")
    assert caught.value.code == 502, "relay status when the API server is unreachable"
    assert "service proxy" in json.loads(caught.value.read())["error"], "relay error body"


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "not a url", "http://127.0.0.1:99999", "ftp://127.0.0.1"])
def test_a_host_that_is_not_a_base_url_is_one_clear_error(host: str, tmp_path: Path) -> None:
    """Rejected before any load: not a run of connection failures, nor a traceback."""
    command = [sys.executable, "-m", "loadtest", "run", "--host", host, "--out", str(tmp_path),
               "--shape", "soak", "--users", "1", "--duration", "2"]  # fmt: skip
    finished = subprocess.run(command, cwd=loadtest_process.ROOT, capture_output=True, text=True, timeout=60)
    expected = (2, [f"error: --host {host!r} must be a base URL such as http://127.0.0.1:8080"], [])
    actual = (finished.returncode, finished.stderr.splitlines(), list(tmp_path.iterdir()))
    assert actual == expected, "(exit status, stderr lines, report files) of a run with a bad --host"


class SilentLoadHandler(ReadyStub):
    """Ready, and then never answers a load request (until the test lets it go)."""

    release = threading.Event()

    def answer_load(self) -> None:
        self.release.wait(RUN_TIMEOUT_S)


def test_a_run_where_no_request_completes_fails(tmp_path: Path) -> None:
    """A server that passes the readiness check and never answers the load: the run still ends at its
    duration, and it is a failed run (exit 1, said on stderr), not a clean 0 requests / 0 failures."""
    with serving(SilentLoadHandler) as server:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        options = ("--shape", "soak", "--users", "2", "--duration", "2")
        try:
            finished, summary, _ = run_loadtest(host, tmp_path, *options)
        finally:
            SilentLoadHandler.release.set()
    expected = (1, 0, True)
    actual = (
        finished.returncode,
        summary["verdicts"]["requests"],
        f"error: no request to {host} completed" in finished.stderr,
    )
    assert actual == expected, f"(exit status, requests, stderr message); stderr {finished.stderr[-2000:]!r}"


@pytest.fixture
def ready_stub() -> Iterator[str]:
    """A host that passes the pre-load check, then answers the load 503 (failures that do not matter)."""
    ReadyStub.load_requests.clear()
    with serving(ReadyStub) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def test_ctrl_c_stops_the_load_and_still_writes_the_report(ready_stub: str, tmp_path: Path) -> None:
    """SIGINT in the middle of a 60 s shape: the load stops, the run so far is reported (with a note), the
    exit status is 130, and there is no traceback. The signal goes once the load has reached the host."""
    host = ready_stub
    command = [sys.executable, "-m", "loadtest", "run", "--host", host, "--out", str(tmp_path),
               "--shape", "soak", "--users", "1", "--duration", "60"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    process = subprocess.Popen(
        command,
        cwd=loadtest_process.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job inherits SIGINT ignored; the child must get Python's default handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the run's first line: the load is about to start
        wait_until(lambda: ReadyStub.load_requests, timeout=30, what="the load's first request")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reports = list(tmp_path.iterdir())
    summary = json.loads((reports[0] / "summary.json").read_text()) if len(reports) == 1 else {}
    expected = (130, 1, True, False)
    actual = (
        process.returncode,
        len(reports),
        any("interrupted" in note for note in summary.get("notes", [])),
        "Traceback" in stderr,
    )
    assert actual == expected, (
        f"(exit status, reports, note, traceback) after Ctrl-C; stderr {stderr[-2000:]!r}"
    )
