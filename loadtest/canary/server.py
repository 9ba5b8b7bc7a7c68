"""A server the rehearsal runs in the background (nginx, Prometheus): its own session, its output in a log
file, stopped with SIGTERM and, past a bound, SIGKILL."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from loadtest import probe


class BackgroundServer:
    stop_timeout_s = 15.0

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def spawn(self, command: Sequence[str], cwd: Path | None = None) -> None:
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                list(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
            )

    def exit_code(self) -> int | None:
        """None while running (or before spawn), else the exit status."""
        return None if self._process is None else self._process.poll()

    def wait_ready(self, url: str, timeout: float) -> None:
        """Until GET `url` answers 200; RuntimeError with the log when the process exits first or the wait
        times out."""
        exited = lambda: None if self.exit_code() is None else f"exited with {self.exit_code()}"  # noqa: E731
        try:
            probe.wait_for_http(url, timeout=timeout, gave_up=exited)
        except (probe.WaitTimeout, probe.WaitAborted) as error:
            raise RuntimeError(f"{error}\n{self.log_tail()}") from None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
