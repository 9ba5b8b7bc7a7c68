"""SIGTERM or SIGINT sent to the server's whole process group, as a terminal's Ctrl-C, systemd's default
KillMode, tini -g and many supervisors do: the pi worker gets the signal too, ignores it, and every pi
request it holds still completes while the server drains and exits 0.

The requests are genuinely in flight when the signal lands: all of them have been handed to the worker
(model_api_pi_worker_jobs counts them) and most are still queued behind the first.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
from pathlib import Path

import pytest
from model_api.pi import pi_digits

from tests.service.server_process import ServerProcess, still_running

pytestmark = pytest.mark.slow
REQUESTS = 8
NDIGITS = 100_000  # about half a second of CPU each here: the last is queued for seconds behind the others
DRAIN_SECONDS = 5  # long enough to see readiness 503 on a busy machine; the queue outlasts it or not
PI_JOBS = "model_api_pi_worker_jobs"


@pytest.fixture
def server(model_path: Path, tmp_path: Path) -> ServerProcess:
    env = {
        "MODEL_API_MODEL_PATH": str(model_path),
        "MODEL_API_MAX_NDIGITS": str(NDIGITS),
        "MODEL_API_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "MODEL_API_SHUTDOWN_TIMEOUT_SECONDS": "300",  # the queue finishes first, however slow the machine
    }
    with ServerProcess(env, tmp_path / "server.log", own_group=True) as started:
        started.wait_until("/readyz", 200)
        yield started


def queue_pi_requests(server: ServerProcess) -> tuple[list[threading.Thread], list[dict]]:
    """REQUESTS pi requests, returned once every one of them is held by the worker and none has finished."""
    outcomes: list[dict] = [{} for _ in range(REQUESTS)]

    def call(outcome: dict) -> None:
        try:
            outcome["response"] = server.get(f"/api/v0/pi?ndigits={NDIGITS}", timeout=300)
        except (OSError, http.client.HTTPException) as error:
            outcome["error"] = error

    threads = [threading.Thread(target=call, args=(outcome,), daemon=True) for outcome in outcomes]
    for thread in threads:
        thread.start()
    server.wait_for_metric(PI_JOBS, float(REQUESTS))
    return threads, outcomes


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_process_group_lets_queued_pi_requests_finish(
    server: ServerProcess, signum: signal.Signals
) -> None:
    threads, outcomes = queue_pi_requests(server)
    children = server.children()
    assert server.process is not None

    os.killpg(server.process.pid, signum)  # the server leads its own group: itself, the worker, the tracker
    readiness = server.get("/readyz")
    for thread in threads:
        thread.join(300)
    exit_code = server.process.wait(60)

    expected = {"response": (200, {"ndigits": NDIGITS, "pi": pi_digits(NDIGITS)})}
    assert readiness == (503, {"error": "not ready: shutting down"}), f"readiness after {signum.name}"
    assert [o == expected for o in outcomes] == [True] * REQUESTS, [
        o.get("error") or o["response"][1] for o in outcomes if o != expected
    ]
    assert exit_code == 0, server.log()
    assert f"received {signum.name}: readiness is 503" in server.log()
    assert "pi worker process" not in server.log().split(f"received {signum.name}")[1], server.log()
    assert still_running(children) == [], "processes the server started outlived it"
