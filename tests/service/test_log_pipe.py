"""A full log pipe (the log collector stalled): the server keeps answering requests and probes, drops
access-log lines beyond its buffer and counts them, and logs again once the pipe is read."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path

import pytest

from tests.service.server_process import ServerProcess

pytestmark = pytest.mark.slow
CLASSIFY = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2"
DROPPED = "model_api_log_lines_dropped_total"
# A pipe holds 64 KiB, the writer keeps 1 MiB pending: at ~250 bytes a line, lines are dropped after ~4,500.
MAX_REQUESTS = 20_000


def classify_until_lines_are_dropped(server: ServerProcess) -> int:
    """Classify requests on one keep-alive connection until the server reports dropped log lines; how many.
    A server that blocked on the full pipe would stop answering here (the request times out)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for sent in range(1, MAX_REQUESTS + 1):
            connection.request("GET", CLASSIFY)
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b'{"species":"Iris setosa"}'), sent
            if sent % 500 == 0 and (server.metric(DROPPED) or 0) > 0:
                return sent
    finally:
        connection.close()
    raise AssertionError(f"no log line dropped after {MAX_REQUESTS} requests: is stderr a pipe?")


def test_a_full_log_pipe_neither_stops_requests_nor_probes(model_path: Path, tmp_path: Path) -> None:
    env = {"MODEL_API_MODEL_PATH": str(model_path), "MODEL_API_LOG_FORMAT": "json"}
    with ServerProcess(env, tmp_path / "unused.log", pipe_output=True) as server:
        server.wait_until("/readyz", 200)  # the start-up lines fit in the pipe

        sent = classify_until_lines_are_dropped(server)
        probes = [server.get(path, timeout=5)[0] for path in ("/healthz", "/readyz")]
        dropped = server.metric(DROPPED)

        assert server.process is not None and server.process.stdout is not None
        output: list[bytes] = []
        reader = threading.Thread(target=lambda: output.extend(server.process.stdout), daemon=True)
        reader.start()  # the collector is back
        server.get(CLASSIFY, headers={"X-Request-ID": "after-the-stall"})
        exit_code = server.terminate()
        reader.join(30)

    assert probes == [200, 200], "probes while the log pipe is full"
    assert dropped is not None and 0 < dropped < sent, f"{dropped} of {sent} lines dropped"
    assert any(b'"request_id":"after-the-stall"' in line for line in output), "no access log after the stall"
    assert [line for line in output if not (line.startswith(b"{") and line.endswith(b"}\n"))] == [], (
        "a log line was cut or interleaved with another"
    )
    assert exit_code == 0
