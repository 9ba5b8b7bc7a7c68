"""Logging: JSON lines (or plain text) carrying the id of the request being served."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import select
import stat
import sys
import time
from collections.abc import Callable

import orjson

# Set by the app for each request; every log line emitted while serving it carries the id.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

ACCESS_LOGGER = "model_api.access"

# color_message: uvicorn adds an ANSI-coloured copy of the message for its own console formatter.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s%(request_suffix)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = request_id_var.get()
        record.request_suffix = f" request_id={request_id}" if request_id else ""
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _RESERVED | {"request_suffix"}
        )
        text = super().format(record)
        return f"{text} {extras}" if extras else text


def configure_logging(level: str, fmt: str) -> None:
    """Route every logger (ours and uvicorn's) to one stderr handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our access log replaces it
    logging.captureWarnings(True)  # a library's warning becomes a log line in the format, not raw stderr text


class AccessLog:
    """One line per API request, written to stderr in the configured format, in batches.

    Building a logging.LogRecord, finding the caller and formatting cost about as much as serving a
    prediction; this writer keeps the same fields (and the same JSON shape as JsonFormatter) for a
    fraction of that. Lines are gathered while the event loop runs the requests that are ready and written
    with one system call per loop iteration: under load that is one write for many requests, when idle one
    per request as before. Outside an event loop each line is written at once.
    """

    def __init__(self, fmt: str, write: Callable[[bytes], object] | None = None) -> None:
        self._json = fmt == "json"
        self._write = write if write is not None else stderr_writer()
        self._second = -1
        self._stamp = ""
        self._lines: list[bytes] = []
        self._flush_scheduled = False

    def log(self, method: str, path: str, status: int, duration_ms: float, request_id: str) -> None:
        now = time.time()
        if int(now) != self._second:  # strftime once per second, milliseconds appended per line
            self._second = int(now)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        ts = f"{self._stamp}.{int(now % 1 * 1000):03d}Z"
        if self._json:
            entry = {
                "ts": ts,
                "level": "info",
                "logger": ACCESS_LOGGER,
                "message": f"{method} {path} {status}",
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
            }
            line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
        else:
            safe_path = ascii(path)[1:-1]  # no control characters from a client's path in a text log
            line = (
                f"{ts} INFO {ACCESS_LOGGER} {method} {safe_path} {status} "
                f"request_id={request_id} duration_ms={duration_ms}\n"
            ).encode()
        self._lines.append(line)
        if not self._flush_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop: nothing would flush later
                self.flush()
                return
            loop.call_soon(self.flush)  # after the requests already queued in this loop iteration
            self._flush_scheduled = True

    def flush(self) -> None:
        """Write the gathered lines."""
        self._flush_scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            self._write(lines[0] if len(lines) == 1 else b"".join(lines))

    def close(self, timeout: float = 1.0) -> None:
        """At shutdown: write what is gathered, waiting up to `timeout` s for a pipe that is full."""
        self.flush()
        drain = getattr(self._write, "drain", None)
        if drain is not None:
            drain(timeout)


class StderrWriter:
    """Writes access-log batches to stderr, never blocking the event loop on a pipe nobody drains.

    When stderr is a pipe (as a container runtime gives it), it is opened a second time non-blocking, for
    this writer alone: a full pipe (a stalled log collector) then leaves the batch pending, retried on the
    next batch, instead of stopping every request and probe. Pending data beyond PENDING_LIMIT_BYTES is
    dropped and counted (model_api_log_lines_dropped_total). Any other stderr (a file, a terminal) is
    written as it is. Other log lines (rare: start, shutdown, errors) still go through `logging`.
    """

    PENDING_LIMIT_BYTES = 1 << 20
    RETRY_SECONDS = 0.1

    def __init__(self, fd: int = 2) -> None:
        self._fd = _nonblocking_pipe(fd)
        self._piece = select.PIPE_BUF if self._fd != fd else None  # bytes per write(); None: no limit
        self._pending = b""
        self._retry: asyncio.TimerHandle | None = None

    def __call__(self, data: bytes) -> None:
        if self._pending:
            self._pending = self._write(self._pending)
            if len(self._pending) + len(data) > self.PENDING_LIMIT_BYTES:
                # imported here: fetch and batch log through this module and never load the metrics
                from model_api import metrics

                metrics.LOG_LINES_DROPPED.inc(data.count(b"\n"))
                return
            if self._pending:
                self._pending += data
                return
        self._pending = self._write(data)
        if self._pending and self._retry is None:
            self._schedule_retry()

    def drain(self, timeout: float) -> None:
        """At shutdown: wait up to `timeout` seconds for the pipe to take what is pending."""
        deadline = time.monotonic() + timeout
        while self._pending and (remaining := deadline - time.monotonic()) > 0:
            select.select([], [self._fd], [], remaining)
            self._pending = self._write(self._pending)

    def _write(self, data: bytes) -> bytes:
        """What of `data` the pipe did not take. On the non-blocking pipe, whole lines of at most PIPE_BUF
        bytes per write(), which the kernel writes whole or not at all: another writer's line never lands
        inside one of these."""
        start = 0
        while start < len(data):
            end = len(data)
            if self._piece is not None and end - start > self._piece:
                end = data.rfind(b"\n", start, start + self._piece) + 1
                if end <= start:  # one line longer than PIPE_BUF: it cannot be atomic anyway
                    end = start + self._piece
            try:
                written = os.write(self._fd, data[start:end])
            except BlockingIOError:
                break
            except OSError:  # like logging.Handler.handleError: a lost log line must not fail the request
                return b""
            start += written
            if start < end:
                break
        return data[start:]

    def _schedule_retry(self) -> None:
        """Retry pending data from the event loop, so that it is written once the pipe drains even when no
        new line comes (none outside an event loop: the next line retries then)."""
        try:
            self._retry = asyncio.get_running_loop().call_later(self.RETRY_SECONDS, self._retry_pending)
        except RuntimeError:
            self._retry = None

    def _retry_pending(self) -> None:
        self._retry = None
        self._pending = self._write(self._pending)
        if self._pending:
            self._schedule_retry()


@functools.cache
def stderr_writer() -> StderrWriter:
    """The process's one StderrWriter (one stderr; each app built, in tests many, shares its descriptor)."""
    return StderrWriter()


def _nonblocking_pipe(fd: int) -> int:
    """A non-blocking descriptor of the same pipe when `fd` is one (a new open file description, so the
    flag does not leak to other users of `fd`), else `fd` itself."""
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return fd
        return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no /proc, or the pipe is not ours to reopen: write as before
        return fd
