"""The pi worker process: exact digits, started on first use, replaced after it dies (503 for the requests it
held), terminated at close; and, live, probes that keep answering while it computes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml
from model_api.errors import Unavailable
from model_api.pi import pi_digits
from model_api.pi_worker import PiWorker
from prometheus_client import REGISTRY

from tests.service.server_process import ServerProcess, still_running

VALUES = Path(__file__).parents[2] / "charts" / "model-api" / "values.yaml"
LONG_NDIGITS = 400_000  # several seconds of CPU here: still computing while a test acts on the worker
DEATHS = "model_api_pi_worker_deaths_total"


def deaths() -> float:
    return REGISTRY.get_sample_value(DEATHS) or 0.0


async def started(worker: PiWorker, ndigits: int) -> tuple[asyncio.Task, int]:
    """A computation handed to the worker (digits() submits before its first await), and the worker's pid."""
    task = asyncio.ensure_future(worker.digits(ndigits))
    await asyncio.sleep(0)
    assert worker.pid is not None, "no worker process after the first computation was submitted"
    return task, worker.pid


def test_the_worker_starts_on_first_use_and_computes_exact_digits() -> None:
    worker = PiWorker()
    before = worker.pid
    try:
        digits = asyncio.run(worker.digits(3000))
    finally:
        worker.close()

    assert before is None, "a worker process before any request"
    assert digits == pi_digits(3000)


def test_a_killed_worker_gives_503_naming_it_and_the_next_request_gets_a_new_one() -> None:
    worker = PiWorker()
    deaths_before = deaths()

    async def scenario() -> tuple[Unavailable, int, str, int | None]:
        task, pid = await started(worker, LONG_NDIGITS)
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
        with pytest.raises(Unavailable) as failure:
            await task
        return failure.value, pid, await worker.digits(3000), worker.pid

    try:
        error, killed, digits, replacement = asyncio.run(scenario())
    finally:
        worker.close()

    assert (error.status, error.message) == (
        503,
        f"the pi worker process (pid {killed}) was killed by SIGKILL (out of memory?) while computing this "
        "request; retry: the next request starts a new worker",
    )
    assert digits == pi_digits(3000), "the request after the death"
    assert replacement not in (None, killed), "a new worker process"
    assert deaths() - deaths_before == 1.0, DEATHS


def test_a_worker_that_died_idle_is_replaced_without_failing_the_next_request() -> None:
    worker = PiWorker()
    deaths_before = deaths()
    try:
        asyncio.run(worker.digits(2000))
        idle = psutil.Process(worker.pid)
        idle.kill()
        idle.wait(30)
        digits = asyncio.run(worker.digits(3000))
    finally:
        worker.close()

    assert digits == pi_digits(3000)
    assert deaths() - deaths_before == 1.0, DEATHS


def test_close_terminates_a_running_computation() -> None:
    worker = PiWorker()

    async def scenario() -> tuple[Unavailable, int]:
        task, pid = await started(worker, LONG_NDIGITS)
        worker.close()
        with pytest.raises(Unavailable) as failure:
            await task
        return failure.value, pid

    error, pid = asyncio.run(scenario())

    assert "shutting down" in error.message
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
def test_probes_answer_within_the_probe_timeout_while_pi_computes(
    start_server: Callable[..., ServerProcess],
) -> None:
    values = yaml.safe_load(VALUES.read_text())
    # The kubelet's own bound on an answer (not a speed target): a late liveness answer restarts the pod.
    probe_timeout = min(values[probe]["timeoutSeconds"] for probe in ("livenessProbe", "readinessProbe"))
    server = start_server(MODEL_API_MAX_NDIGITS=str(LONG_NDIGITS), MODEL_API_SHUTDOWN_TIMEOUT_SECONDS="0.2")
    server.wait_until("/readyz", 200)
    pi = threading.Thread(target=lambda: get_quietly(server, f"/api/v0/pi?ndigits={LONG_NDIGITS}"))
    pi.start()
    server.wait_for_metric("model_api_pi_worker_jobs", 1.0)

    probes = ("/healthz", "/readyz") * 5
    answers = [server.get(path, timeout=probe_timeout)[0] for path in probes]
    still_computing = server.metric("model_api_pi_worker_jobs")
    workers = server.children()
    exit_code = server.terminate(timeout=60)
    pi.join(60)

    assert answers == [200] * len(probes), "probe answers while pi computes"
    assert still_computing == 1.0, "pi finished before the probes: they did not overlap it"
    assert exit_code == 0, server.log()
    assert still_running(workers) == [], "processes the server started outlived it"


@pytest.mark.slow
def test_a_killed_worker_gives_503_and_the_server_keeps_serving(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(MODEL_API_MAX_NDIGITS=str(LONG_NDIGITS))
    server.wait_until("/readyz", 200)
    outcome: dict = {}
    pi = threading.Thread(
        target=lambda: outcome.update(response=server.get(f"/api/v0/pi?ndigits={LONG_NDIGITS}", timeout=120))
    )
    pi.start()
    server.wait_for_metric("model_api_pi_worker_jobs", 1.0)
    worker = worker_pid(server)
    libraries = [m.path for m in psutil.Process(worker).memory_maps() if "site-packages" in m.path]

    os.kill(worker, signal.SIGKILL)  # as the OOM killer would
    pi.join(120)
    alive = server.get("/healthz")
    after = server.get("/api/v0/pi?ndigits=3000")
    died = server.metric(DEATHS)
    exit_code = server.terminate(timeout=60)

    status, body = outcome.get("response", (None, None))
    assert status == 503, outcome
    assert f"pi worker process (pid {worker}) was killed by SIGKILL" in body["error"], body
    assert alive == (200, {"status": "alive"}), "liveness after the worker died"
    assert after == (200, {"ndigits": 3000, "pi": pi_digits(3000)}), "a new worker serves the next request"
    assert died == 1.0, DEATHS
    assert libraries == [], "the worker loaded libraries of the app (onnxruntime, numpy, ...)"
    assert exit_code == 0, server.log()


def worker_pid(server: ServerProcess) -> int:
    started_lines = re.findall(r"started the pi worker process \(pid (\d+)\)", server.log())
    assert started_lines, f"no worker start logged: {server.log()}"
    return int(started_lines[-1])


def get_quietly(server: ServerProcess, path: str) -> None:
    """A request whose answer does not matter (it is cut off at shutdown)."""
    with contextlib.suppress(OSError):
        server.get(path, timeout=120)


@pytest.mark.slow
def test_the_worker_dies_with_a_server_killed_outright(start_server: Callable[..., ServerProcess]) -> None:
    # It ignores SIGTERM and SIGINT (a group signal must not stop it), so nothing else would end it.
    server = start_server()
    server.wait_until("/readyz", 200)
    assert server.get("/api/v0/pi?ndigits=3000")[0] == 200  # starts the worker
    children = server.children()
    assert server.process is not None

    server.process.kill()  # SIGKILL, as the OOM killer would
    server.process.wait(30)

    assert children, "no pi worker process started"
    assert still_running(children) == [], "processes the server started outlived it"
