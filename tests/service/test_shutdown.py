"""SIGTERM with slow requests in flight: readiness 503 at once, serving while draining, exit 0, no child left.

Written for a loaded 2-core machine: every wait is on a condition with a generous deadline, never a fixed
sleep, and the drain is long enough for the requests a test sends during it.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
from collections.abc import Callable

import psutil
import pytest
from model_api.pi import pi_digits

from tests.service.server_process import ServerProcess, still_running

pytestmark = pytest.mark.slow
SLOW_NDIGITS = 200_000  # seconds of CPU in the pi worker: still running when SIGTERM lands
DRAIN_SECONDS = 5  # the three requests sent during the drain need a fraction of it, even on a busy machine
CLASSIFY = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2"
PI_JOBS = "model_api_pi_worker_jobs"


def start_slow_request(
    server: ServerProcess, ndigits: int = SLOW_NDIGITS
) -> tuple[threading.Thread, dict, list[psutil.Process]]:
    """A pi request in a thread, returned once the pi worker is computing it, with the server's children."""
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["response"] = server.get(f"/api/v0/pi?ndigits={ndigits}", timeout=120)
        except (OSError, http.client.HTTPException) as error:
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    server.wait_for_metric(PI_JOBS, 1.0)
    return thread, outcome, server.children()


def cut_off(outcome: dict) -> bool:
    """uvicorn answers a request it cancels at the shutdown timeout with 500, or the connection closes."""
    if "response" in outcome:
        return outcome["response"][0] == 500
    error = outcome.get("error")
    reason = getattr(error, "reason", error)  # urllib wraps connection errors in URLError
    return isinstance(reason, ConnectionError | http.client.HTTPException)


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(MODEL_API_MAX_NDIGITS=str(SLOW_NDIGITS), MODEL_API_DRAIN_SECONDS=str(DRAIN_SECONDS))
    server.wait_until("/readyz", 200)
    thread, outcome, children = start_slow_request(server)

    server.process.terminate()  # SIGTERM
    readiness = server.get("/readyz")
    v2_readiness = server.get("/v2/health/ready")
    during_drain = server.get(CLASSIFY)
    thread.join(120)
    exit_code = server.process.wait(60)

    assert readiness == (503, {"error": "not ready: shutting down"}), "readiness right after SIGTERM"
    assert v2_readiness[0] == 503 and v2_readiness[1]["ready"] is False, "V2 readiness after SIGTERM"
    assert during_drain == (200, {"species": "Iris setosa"}), "requests are served while draining"
    assert outcome.get("response") == (200, {"ndigits": SLOW_NDIGITS, "pi": pi_digits(SLOW_NDIGITS)}), outcome
    assert exit_code == 0, server.log()
    assert f"draining for {DRAIN_SECONDS:.1f} s" in server.log()
    assert still_running(children) == [], "processes the server started outlived it"


def test_without_drain_the_listener_closes_but_in_flight_requests_complete(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(MODEL_API_MAX_NDIGITS=str(SLOW_NDIGITS), MODEL_API_DRAIN_SECONDS="0")
    server.wait_until("/readyz", 200)
    thread, outcome, _ = start_slow_request(server)

    server.process.terminate()
    listener_closed = wait_until_refused(server, "/healthz")
    thread.join(120)
    exit_code = server.process.wait(60)

    assert listener_closed, "new connections were still served 30 s after SIGTERM with no drain"
    assert outcome.get("response", (None,))[0] == 200, outcome
    assert exit_code == 0, server.log()


def wait_until_refused(server: ServerProcess, path: str, timeout: float = 30) -> bool:
    """True once a new connection fails. Until uvicorn has closed the listener, the kernel may still
    accept and then reset a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            server.get(path, timeout=5)
        except (urllib.error.URLError, ConnectionError):
            return True
        time.sleep(0.05)
    return False


def test_idle_server_exits_0_promptly_on_sigterm(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    server.wait_until("/readyz", 200)

    assert server.terminate(timeout=10) == 0, server.log()


def test_shutdown_timeout_cuts_off_in_flight_pi_and_terminates_the_worker(
    start_server: Callable[..., ServerProcess],
) -> None:
    ndigits = SLOW_NDIGITS * 2  # several seconds of CPU: far more than the 0.2 s timeout
    server = start_server(MODEL_API_MAX_NDIGITS=str(ndigits), MODEL_API_SHUTDOWN_TIMEOUT_SECONDS="0.2")
    server.wait_until("/readyz", 200)
    thread, outcome, children = start_slow_request(server, ndigits)

    exit_code = server.terminate(timeout=60)
    thread.join(60)

    assert exit_code == 0, server.log()
    assert cut_off(outcome), f"the request outlived the shutdown timeout: {outcome}"
    assert "terminating the pi worker process" in server.log()
    assert children, "the server showed no pi worker process while computing"
    assert still_running(children) == [], "processes the server started outlived it"
