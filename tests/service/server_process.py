"""A real `model-api serve` process on a free loopback port, for tests that need sockets and signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psutil

from loadtest.chart.localpod import free_port

MODEL_API = Path(sys.executable).parent / "model-api"


class ServerProcess:
    def __init__(
        self, env: dict[str, str], log_path: Path, *, own_group: bool = False, pipe_output: bool = False
    ) -> None:
        self.port = free_port()
        self.own_group = own_group  # its own process group (and session), which a test may signal whole
        self.pipe_output = (
            pipe_output  # stdout and stderr to one pipe (process.stdout) the test reads, or not
        )
        self.log_path = log_path
        self.env = {**os.environ, **env, "MODEL_API_HOST": "127.0.0.1", "MODEL_API_PORT": str(self.port)}
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(MODEL_API), "serve"],
                env=self.env,
                stdout=subprocess.PIPE if self.pipe_output else log,
                stderr=subprocess.STDOUT if self.pipe_output else log,
                start_new_session=self.own_group,
            )
        return self

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

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
        deadline = time.monotonic() + timeout
        last: Any = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                last = self.get(path, timeout=1)
                if last[0] == status:
                    return
            except OSError as error:
                last = error
            time.sleep(0.05)
        raise AssertionError(
            f"{path} did not answer {status} within {timeout}s (last: {last}); log: {self.log()}"
        )

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled sample on /metrics; None when it is not exported."""
        _, text = self.get("/metrics")
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else None

    def wait_for_metric(self, name: str, value: float, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.metric(name)
            if last == value:
                return
            time.sleep(0.02)
        raise AssertionError(f"{name} did not reach {value} within {timeout} s (last: {last}): {self.log()}")

    def children(self) -> list[psutil.Process]:
        """Every process the server started (pi worker, multiprocessing's resource tracker), recursively."""
        assert self.process is not None
        return psutil.Process(self.process.pid).children(recursive=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server ignored SIGTERM for {timeout}s; log: {self.log()}") from None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def still_running(processes: list[psutil.Process], timeout: float = 30) -> list[psutil.Process]:
    """Those of `processes` still running once all have exited or `timeout` has passed (zombies are gone:
    an orphan may wait a moment for its new parent to reap it)."""
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in processes if _running(p)]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
