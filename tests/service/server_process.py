"""A real `model-api serve` process on a free loopback port, for tests that need sockets and signals.

`ServerProcess` is `LocalPod.serve` (loadtest/chart/localpod.py, the one wrapper for the service as a local
process) with the service tests' conveniences: its own process group only when asked (`own_group`), its
output to a pipe the test reads when asked (`pipe_output`), JSON requests, /metrics values, the processes
it started, AssertionError with the server's log when something does not happen, and a kill when the
block ends (a test that wants a graceful stop calls terminate()).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psutil

from loadtest.chart.localpod import LocalPod, LocalPodError, resolve_executable, serve_arguments
from loadtest.probe import WaitTimeout, wait_until

MODEL_API = Path(resolve_executable("model-api"))  # the console script the server runs


class ServerProcess(LocalPod):
    def __init__(
        self, env: dict[str, str], log_path: Path, *, own_group: bool = False, pipe_output: bool = False
    ) -> None:
        super().__init__(*serve_arguments(env), log_path=log_path)
        self.own_group = own_group  # its own process group (and session), which a test may signal whole
        self.new_session = own_group
        self.pipe_output = (
            pipe_output  # stdout and stderr to one pipe (process.stdout) the test reads, or not
        )

    def _output_stream(self) -> Any:
        return subprocess.PIPE if self.pipe_output else super()._output_stream()

    def start(self) -> ServerProcess:
        super().start()
        return self

    def get(
        self, path: str, *, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, Any]:
        return self.request("GET", path, headers=headers, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, Any]:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.url(path), data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def wait_until(self, path: str, status: int, timeout: float = 20) -> None:
        """GET `path` answers `status` (loadtest.probe's wait); AssertionError with the log otherwise."""
        try:
            self.wait_for(self.url(path), status, timeout)
        except LocalPodError as error:
            raise AssertionError(str(error)) from None

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled sample on /metrics; None when it is not exported."""
        _, text = self.get("/metrics")
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else None

    def wait_for_metric(self, name: str, value: float, timeout: float = 60) -> None:
        try:
            wait_until(lambda: self.metric(name) == value, timeout=timeout, interval=0.02, what=name)
        except WaitTimeout:
            raise AssertionError(
                f"{name} did not reach {value} within {timeout} s (last: {self.metric(name)}): {self.log()}"
            ) from None

    def children(self) -> list[psutil.Process]:
        """Every process the server started (pi worker, multiprocessing's resource tracker), recursively."""
        assert self.process is not None
        return psutil.Process(self.process.pid).children(recursive=True)

    def log(self) -> str:
        return self.output()

    def terminate(self, timeout: float = 30) -> int:
        try:
            return super().terminate(timeout)
        except TimeoutError:
            raise AssertionError(f"server ignored SIGTERM for {timeout}s; log: {self.log()}") from None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self.close()


def still_running(processes: list[psutil.Process], timeout: float = 30) -> list[psutil.Process]:
    """Those of `processes` still running once all have exited or `timeout` has passed (zombies are gone:
    an orphan may wait a moment for its new parent to reap it)."""
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: not [p for p in processes if _running(p)], timeout=timeout, what="the processes' exit"
        )
    return [p for p in processes if _running(p)]


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
