"""One error hierarchy for everything a client can get wrong; each error carries its HTTP status.

Routes raise these; the app's single handler turns any of them into `{"error": message}` with the status.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the service refuses; `message` names the problem for the client."""

    status = 400

    def __init__(self, message: str, *, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=((b"www-authenticate", b'Bearer realm="model-api"'),))


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405

    def __init__(self, method: str, path: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"method {method} not allowed on {path}; allowed: {', '.join(allowed)}",
            headers=((b"allow", ", ".join(allowed).encode()),),
        )


class PayloadTooLarge(ApiError):
    status = 413


class Unprocessable(ApiError):
    """Well-formed but out of range (too many rows, too many digits, non-finite values)."""

    status = 422


class NotReady(ApiError):
    status = 503


class Unavailable(ApiError):
    """The service could not do this request now, through no fault of the client (a worker process died);
    the same request may succeed on retry."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=((b"retry-after", b"1"),))
