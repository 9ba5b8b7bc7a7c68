"""The worker process that computes pi for /api/v0/pi.

Big-int arithmetic holds the GIL for hundreds of milliseconds at a time: in a thread of the server it would
stall the event loop (probes answering late, just while the HPA scales) and could not be stopped at the
shutdown timeout. In its own process it does neither.

One worker (a pod gets one core; the HPA adds pods, not workers), started with `spawn` by the first request
that needs it, so start-up stays fast; never `fork`, which would copy a process running onnxruntime and
uvloop threads. The worker imports model_api.pi and the small `model-api` entry script (spawn re-imports
__main__), not the app. If it dies (OOM-killed, say), the requests it held get 503 and the next request
starts a new one; at shutdown a computation still running is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from model_api import metrics
from model_api.errors import Unavailable
from model_api.pi import pi_digits

log = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")
# The signals the server drains on. They often reach the whole process group, not the server alone (a
# terminal's Ctrl-C, systemd's default KillMode, tini -g, many supervisors): the worker ignores them and
# finishes the computations it holds; the server terminates it itself at the shutdown timeout.
_SHUTDOWN_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class PiWorker:
    """pi_digits in one worker process, started on first use and replaced after it dies."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._process: BaseProcess | None = None
        self._jobs: set[Future[str]] = set()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The worker process's id; None before the first computation, after it died and after close()."""
        return self._process.pid if self._process is not None else None

    async def digits(self, ndigits: int) -> str:
        """pi_digits(ndigits) from the worker process; Unavailable (503) if the process dies meanwhile."""
        executor, process, job = self._submit(ndigits)
        try:
            return await asyncio.wrap_future(job)
        except BrokenProcessPool:
            if self._closed:
                raise Unavailable("the server is shutting down; the pi computation was stopped") from None
            await _reaped(process)
            fate = self._forget(executor, process)
            raise Unavailable(
                f"the {fate} while computing this request; retry: the next request starts a new worker"
            ) from None

    def close(self) -> None:
        """Stop the worker process, terminating a computation still running: by now uvicorn has answered or
        cancelled every request (SHUTDOWN_TIMEOUT_SECONDS), so nobody waits for its result."""
        self._closed = True
        executor, process = self._executor, self._process
        self._executor = self._process = None
        if executor is None:
            return
        unfinished = sum(1 for job in list(self._jobs) if not job.done())
        if unfinished and process is not None:
            log.warning(
                "terminating the pi worker process (pid %d): %d computation(s) unfinished at shutdown",
                process.pid,
                unfinished,
            )
            process.kill()  # SIGKILL: it ignores SIGTERM (see _SHUTDOWN_SIGNALS)
        executor.shutdown(wait=True, cancel_futures=True)  # idle, the worker exits; the pool reaps it

    def _submit(self, ndigits: int) -> tuple[ProcessPoolExecutor, BaseProcess | None, Future[str]]:
        if self._closed:
            raise Unavailable("the server is shutting down; no new pi computations")
        executor = self._executor
        if executor is not None and _dead(self._process):  # since the last request; the pool may not know yet
            self._forget(executor, self._process)
            executor = None
        if executor is not None:
            try:
                return self._track(executor, executor.submit(pi_digits, ndigits))
            except BrokenProcessPool:  # it died since the last request: this one goes to a new worker
                self._forget(executor, self._process)
        executor = self._executor = ProcessPoolExecutor(
            1, mp_context=_SPAWN, initializer=_prepare_worker, initargs=(os.getpid(),)
        )
        with _shutdown_signals_blocked():
            job = executor.submit(pi_digits, ndigits)  # starts the process, which inherits the blocked mask
        self._process = _worker_process(executor)
        log.info("started the pi worker process (pid %s)", self.pid)
        return self._track(executor, job)

    def _track(
        self, executor: ProcessPoolExecutor, job: Future[str]
    ) -> tuple[ProcessPoolExecutor, BaseProcess | None, Future[str]]:
        metrics.PI_WORKER_JOBS.inc()
        self._jobs.add(job)
        job.add_done_callback(self._finished)  # runs on the pool's thread
        return executor, self._process, job

    def _finished(self, job: Future[str]) -> None:
        self._jobs.discard(job)
        metrics.PI_WORKER_JOBS.dec()

    def _forget(self, executor: ProcessPoolExecutor, process: BaseProcess | None) -> str:
        """Drop a pool whose worker died (the first caller to notice logs and counts it); what happened."""
        fate = _fate(process)
        if self._executor is executor:
            self._executor = self._process = None
            metrics.PI_WORKER_DEATHS.inc()
            log.error("the %s; the next pi request starts a new worker", fate)
            executor.shutdown(wait=False)
        return fate


@contextlib.contextmanager
def _shutdown_signals_blocked() -> Iterator[None]:
    """Block the shutdown signals in this thread while it starts the worker, as CPython's resource tracker
    does: the child inherits the mask through fork and exec, so a group signal arriving while it is still
    importing stays pending instead of killing it, and is discarded once it ignores them."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SHUTDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _prepare_worker(server_pid: int) -> None:
    """The worker's initializer. It ignores the shutdown signals, then unblocks them (pending ones are
    dropped). Ignoring SIGTERM, it would outlive a server killed outright (SIGKILL, the OOM killer): the
    pool's queues give it no end of file, since it holds their writing ends too. So it asks Linux for
    SIGKILL when the server dies, and leaves at once if that happened already."""
    for signum in _SHUTDOWN_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SHUTDOWN_SIGNALS)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != server_pid:
        os._exit(1)


def _worker_process(executor: ProcessPoolExecutor) -> BaseProcess | None:
    # The pool starts its process in submit() and keeps it only in `_processes` (no public handle before
    # Python 3.14's terminate_workers()): the pid is for logs, the handle to terminate it at shutdown.
    processes = getattr(executor, "_processes", None) or {}
    return next(iter(processes.values()), None)


def _dead(process: BaseProcess | None) -> bool:
    """Whether the process has exited, whoever reaps it: its sentinel becomes readable at exit."""
    return process is not None and bool(wait([process.sentinel], 0))


async def _reaped(process: BaseProcess | None, timeout: float = 1.0) -> None:
    """Wait (without blocking the loop) until the pool's thread has reaped a dead worker: its exit status
    is known only then, and the request's 503 can say what happened."""
    deadline = time.monotonic() + timeout
    while process is not None and process.exitcode is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _fate(process: BaseProcess | None) -> str:
    """'pi worker process (pid 12) was killed by SIGKILL (out of memory?)', or what is known of it."""
    if process is None:
        return "pi worker process died"
    code = process.exitcode
    what = f"pi worker process (pid {process.pid})"
    if code is None:
        return f"{what} died"
    if code >= 0:
        return f"{what} exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"{what} was killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
