"""Waiting on a condition, and on an HTTP endpoint's answer: the one way the toolkit and its tests wait.

`wait_until(condition, timeout=..., what=...)` polls until `condition()` is truthy and returns it;
`wait_for_http(url, status=200, timeout=...)` polls a GET (a readiness probe) until it answers `status`.
Both give up early when `gave_up()` names a reason (the process under test exited), and raise
`WaitTimeout` naming what was awaited and the last thing seen. Nothing here imports the rest of loadtest,
so every subpackage and every test may use it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited did not happen in time; `last` is the last answer or error seen."""

    def __init__(self, message: str, last: object = None) -> None:
        super().__init__(message)
        self.last = last


class WaitAborted(RuntimeError):
    """`gave_up()` named a reason to stop waiting (the awaited process exited, say)."""


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    gave_up: Callable[[], str | None] | None = None,
) -> T:
    """`condition()`'s first truthy result, polled every `interval` s; WaitTimeout after `timeout` s.

    An exception raised by `condition` ends the wait at once (it is the caller's way to say "never").
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if gave_up is not None and (reason := gave_up()):
            raise WaitAborted(f"stopped waiting for {what}: {reason}")
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:g} s (last: {last!r})", last)
        time.sleep(interval)


def http_get(
    url: str, *, timeout: float = 1.0, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """(status, body) of GET `url`; an error status is an answer, not an exception. OSError (URLError,
    ConnectionError, TimeoutError) when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def describe_error(error: BaseException) -> str:
    """An error as one line a person can act on, URLError unwrapped: "ConnectionRefusedError: ..."."""
    reason = getattr(error, "reason", None)
    if isinstance(error, urllib.error.URLError) and isinstance(reason, BaseException):
        error = reason
    return f"{type(error).__name__}: {error}"


def wait_for_http(
    url: str,
    *,
    status: int = 200,
    timeout: float,
    interval: float = 0.05,
    request_timeout: float = 1.0,
    headers: Mapping[str, str] | None = None,
    gave_up: Callable[[], str | None] | None = None,
) -> float:
    """Poll GET `url` until it answers `status`; the seconds it took. WaitTimeout names the url and the last
    answer (status and body start) or connection error; WaitAborted when `gave_up()` names a reason."""
    began = time.monotonic()
    last: list[str] = ["no answer yet"]

    def answered() -> bool:
        try:
            got, body = http_get(url, timeout=request_timeout, headers=headers)
        except OSError as error:  # not listening yet, refused, reset, timed out
            last[0] = describe_error(error)
            return False
        last[0] = f"HTTP {got} {body[:200].decode(errors='replace')!r}"
        return got == status

    try:
        wait_until(
            answered, timeout=timeout, what=f"GET {url} -> {status}", interval=interval, gave_up=gave_up
        )
    except WaitTimeout:
        raise WaitTimeout(
            f"GET {url} did not answer {status} within {timeout:g} s (last: {last[0]})", last[0]
        ) from None
    return time.monotonic() - began
