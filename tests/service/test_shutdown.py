"""SIGTERM with slow requests in flight: readiness 503 at once, serving while draining, exit 0."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
from collections.abc import Callable

import pytest
from model_api.pi import pi_digits

from tests.service.server_process import ServerProcess

pytestmark = pytest.mark.slow
SLOW_NDIGITS = 200_000  # about a second of CPU here: long enough to still be running when SIGTERM lands
CLASSIFY = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2"


def start_slow_request(server: ServerProcess, ndigits: int = SLOW_NDIGITS) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["response"] = server.get(f"/api/v0/pi?ndigits={ndigits}", timeout=120)
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the server counts it in flight
        _, metrics = server.get("/metrics")
        if re.search(r"^model_api_requests_in_flight 1\.0$", metrics, re.M):
            return thread, outcome
        time.sleep(0.02)
    raise AssertionError("the slow request never showed as in flight")


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(MODEL_API_MAX_NDIGITS=str(SLOW_NDIGITS), MODEL_API_DRAIN_SECONDS="1")
    server.wait_until("/readyz", 200)
    thread, outcome = start_slow_request(server)

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
    assert "draining for 1.0 s" in server.log()


def test_without_drain_the_listener_closes_but_in_flight_requests_complete(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(MODEL_API_MAX_NDIGITS=str(SLOW_NDIGITS), MODEL_API_DRAIN_SECONDS="0")
    server.wait_until("/readyz", 200)
    thread, outcome = start_slow_request(server)

    server.process.terminate()
    listener_closed = wait_until_refused(server, "/healthz")
    thread.join(120)
    exit_code = server.process.wait(60)

    assert listener_closed, "new connections were still served 30 s after SIGTERM with no drain"
    assert outcome.get("response", (None,))[0] == 200, outcome
    assert exit_code == 0, server.log()


def wait_until_refused(server: ServerProcess, path: str, timeout: float = 30) -> bool:
    """True once a new connection fails. A busy event loop (pi holds the GIL in long big-int steps) can take
    a while to close the listener; until then the kernel may still accept and then reset the connection."""
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


def test_shutdown_timeout_bounds_the_wait_for_in_flight_requests(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        MODEL_API_MAX_NDIGITS=str(SLOW_NDIGITS * 2), MODEL_API_SHUTDOWN_TIMEOUT_SECONDS="0.2"
    )
    server.wait_until("/readyz", 200)
    thread, outcome = start_slow_request(server, ndigits=SLOW_NDIGITS * 2)

    exit_code = server.terminate(timeout=60)
    thread.join(60)

    assert exit_code == 0, server.log()
    # uvicorn answers a request it cancels at the timeout with 500 (or the connection just closes).
    assert outcome.get("response", (500,))[0] == 500, f"the request outlived the shutdown timeout: {outcome}"
    assert "exiting with 1 worker task(s) still running" in server.log()
