"""Where artifacts live: parse a URI, open it as a bounded byte stream, write or upload a file whole.

Schemes: `https://`, `http://` (only when the caller allows plain HTTP), `s3://bucket/key` (any
S3-compatible endpoint, configured as model_api.s3 describes), `file://` and plain paths. Every remote
transfer goes through one stdlib HTTP path, so connect and read timeouts, the overall deadline, the
retry policy and the error classes are the same for every scheme. Errors carry the exit code that
`model-api fetch` and `model-api batch` end with, and their messages never contain credentials, a
presigned query string or URL userinfo: `Location.display` is the form that is safe to log.

    upload_file(Path("part-00000-of-00004.jsonl"), "s3://scores/2026-11-29/part-00000-of-00004.jsonl")

To read a remote object, model_api.fetch.fetch() it into a local directory (verified, cached, retried)
and open the file; open_stream() is one attempt, for code that brings its own retry loop:

    location, limits = parse_uri("s3://models/iris/model.onnx"), Limits(deadline=300)
    deadline = Deadline(limits.deadline)
    stream, attempts = retrying(lambda _: open_stream(location, deadline, limits), deadline, limits, location)
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import random
import re
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from model_api import __version__
from model_api.s3 import S3Config, S3ConfigError, config_from_env, presign

EXIT_CONFIG = 2
EXIT_TRANSFER = 3
EXIT_INTEGRITY = 4

REMOTE_SCHEMES = ("https", "http", "s3")
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
MAX_SINGLE_PUT_BYTES = 5 * 2**30  # S3's limit for one PutObject
CHUNK_BYTES = 1 << 20
BACKOFF_CAP_SECONDS = 30.0

logger = logging.getLogger("model_api.storage")
T = TypeVar("T")


class StorageError(Exception):
    """A storage operation failed; `exit_code` is what a command ends with."""

    exit_code = EXIT_TRANSFER
    attempts = 1


class ConfigError(StorageError):
    """Bad arguments or configuration (URI, scheme, credentials, limits): retrying cannot help."""

    exit_code = EXIT_CONFIG


class TransferError(StorageError):
    """The bytes did not arrive (network, HTTP status, timeout, truncated body); transient ones retry."""

    exit_code = EXIT_TRANSFER

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status  # the HTTP status, when one came back
        self.retry_after: float | None = None  # what a 429 or 503 asked for, in seconds


class IntegrityError(StorageError):
    """The bytes arrived but are not the artifact asked for (digest, or size above the limit)."""

    exit_code = EXIT_INTEGRITY


@dataclass(frozen=True)
class Limits:
    """Bounds on every wait and on the size; `deadline` covers all attempts and the waits between them."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 900.0
    max_bytes: int = 20 * 2**30
    retries: int = 4  # attempts after the first, on transient errors only
    backoff: float = 1.0  # first wait between attempts; doubles each time, capped, with jitter

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "deadline", "max_bytes"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if self.retries < 0 or self.backoff < 0:
            raise ConfigError("retries and backoff must not be negative")


class Deadline:
    """The end of the whole operation; every wait is cut to what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def bound(self, timeout: float) -> float:
        """`timeout` or what is left, whichever is shorter; TransferError when nothing is left."""
        left = self.remaining()
        if left <= 0:
            raise TransferError(f"the {self.seconds:g} s deadline passed", transient=False)
        return min(timeout, left)


@dataclass(frozen=True)
class Location:
    """A parsed URI. `name` is its last path segment; `display` is the URI as it may be logged."""

    scheme: str  # https, http, s3 or file
    uri: str = field(repr=False)  # as given: may hold a presigned query or userinfo, never logged
    name: str
    display: str
    path: Path | None = None  # file
    bucket: str = ""  # s3
    key: str = ""  # s3

    @property
    def remote(self) -> bool:
        return self.scheme in REMOTE_SCHEMES


def redact(uri: str) -> str:
    """The URI without userinfo, query or fragment: what is safe to log or record in a marker."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


def parse_uri(uri: str, *, allow_insecure_http: bool = False) -> Location:
    """Check a URI and name its artifact; ConfigError names what is wrong."""
    if not uri:
        raise ConfigError("the URI is empty")
    display = redact(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if len(scheme) == 1 or not scheme:  # a plain path (a one-letter "scheme" is a Windows drive)
        return _file_location(uri, Path(uri), display)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{display}: a file:// URI names a local path (file:///path)")
        return _file_location(uri, Path(unquote(parts.path)), display)
    if scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not bucket or not key or key.endswith("/"):
            raise ConfigError(f"{display}: an S3 URI is s3://bucket/key, naming one object")
        if parts.query or parts.fragment:
            raise ConfigError(f"{display}: an S3 URI takes no query or fragment")
        return Location("s3", uri, _name(key, display), display, bucket=bucket, key=key)
    if scheme in ("http", "https"):
        if scheme == "http" and not allow_insecure_http:
            raise ConfigError(f"{display}: plain http is refused; use https or pass --allow-insecure-http")
        if not parts.hostname:
            raise ConfigError(f"{display}: no host")
        if parts.username or parts.password:  # never sent as Basic auth, so refused rather than ignored
            raise ConfigError(
                f"{display}: credentials in the URI are not supported (the log never shows them)"
            )
        return Location(scheme, uri, _name(unquote(parts.path), display), display)
    raise ConfigError(f"{display}: unsupported scheme {scheme!r} (https, http, s3, file or a path)")


def _file_location(uri: str, path: Path, display: str) -> Location:
    return Location("file", uri, _name(str(path), display), display, path=path)


def _name(path: str, display: str) -> str:
    name = path.rpartition("/")[2]
    if name in ("", ".", "..") or "\\" in name or "\x00" in name:
        raise ConfigError(f"{display}: the URI must end with a file name (its last path segment)")
    return name


class ByteStream(Protocol):
    """What open_stream returns: `size` from Content-Length or the file (None when the server gave none)."""

    size: int | None

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


def open_stream(location: Location, deadline: Deadline, limits: Limits) -> ByteStream:
    """One attempt at opening the object for reading (no retries: wrap it in `retrying`)."""
    if location.scheme == "file":
        assert location.path is not None
        try:
            handle = location.path.open("rb")
            return _FileStream(handle, os.fstat(handle.fileno()).st_size, location.display)
        except OSError as error:
            raise TransferError(f"{location.display}: {error.strerror or error}", transient=False) from None
    if location.scheme == "s3":
        config, context = _s3(location)
        url = presign(config, "GET", location.bucket, location.key)
        return _http_get(url, location, deadline, limits, context, allow_insecure_http=True)
    return _http_get(
        location.uri, location, deadline, limits, None, allow_insecure_http=location.scheme == "http"
    )


def retrying(
    attempt: Callable[[int], T], deadline: Deadline, limits: Limits, location: Location
) -> tuple[T, int]:
    """Call attempt(1), attempt(2)… until one returns, retrying transient TransferErrors with backoff.

    Returns the result and the number of attempts; the error that ends it carries `attempts`.
    """
    number = 1
    while True:
        try:
            return attempt(number), number
        except StorageError as error:
            error.attempts = number
            if not isinstance(error, TransferError) or not error.transient or number > limits.retries:
                raise
            wait = min(BACKOFF_CAP_SECONDS, limits.backoff * 2 ** (number - 1)) * random.uniform(0.5, 1.0)
            wait = max(wait, error.retry_after or 0.0)  # a server that says when to come back is believed
            if deadline.remaining() <= wait:
                final = TransferError(
                    f"{error}; no time for another attempt within the {deadline.seconds:g} s deadline",
                    transient=False,
                )
                final.attempts = number
                raise final from error
            logger.warning(
                "attempt %d failed, retrying in %.1f s: %s",
                number,
                wait,
                error,
                extra={"uri": location.display, "attempt": number},
            )
            time.sleep(wait)
            number += 1


class AtomicFile:
    """A temporary file beside `target` that takes the target's name only on commit(), after an fsync.

    Leaving the block without commit() removes it, so no partial file ever carries the final name. The
    temporary file is locked while it lives, so remove_abandoned() can tell a killed writer's leftovers
    from a live writer's file.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        while True:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=".part")
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel however this process ends
            if _same_file(fd, name):
                break
            os.close(fd)  # another run's remove_abandoned() took it before it was locked: make another
        self.temp = Path(name)
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a model from a container running as another user
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self._committed = False

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        os.replace(self.temp, self.target)  # before close(), which drops the lock that guards the name
        self._committed = True
        self.file.close()
        fsync_dir(self.target.parent)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._committed:
            self.file.close()
            self.temp.unlink(missing_ok=True)


def temp_prefix(target: Path) -> str:
    """The prefix of AtomicFile's temporary names for `target` (hidden, so a directory scan skips them)."""
    return f".{target.name}."


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def remove_abandoned(target: Path) -> list[Path]:
    """Remove the temporary files for `target` that no live AtomicFile holds (a SIGKILLed writer's)."""
    removed = []
    for temp in target.parent.glob(f"{temp_prefix(target)}*.part"):
        try:
            with temp.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives
                if _same_file(handle.fileno(), str(temp)):  # not renamed away meanwhile
                    temp.unlink()
                    removed.append(temp)
        except OSError:
            continue
    return removed


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(target: Path, data: bytes) -> None:
    with AtomicFile(target) as out:
        out.file.write(data)
        out.commit()


def copy_hashed(stream: ByteStream, out: BinaryIO, max_bytes: int, location: Location) -> tuple[str, int]:
    """Copy `stream` to `out` while hashing it; (SHA-256 hex, size). IntegrityError past `max_bytes`.

    The hash of one chunk runs on a worker thread while the next is received and this one written
    (hashlib, socket reads and file writes all release the GIL), so hashing costs little wall time.
    """
    digest, size = hashlib.sha256(), 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
        hashing: Future[None] | None = None
        while chunk := stream.read(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise IntegrityError(f"{location.display} is over the {max_bytes} byte limit")
            if hashing is not None:
                hashing.result()  # in order: one chunk in flight at a time
            hashing = hasher.submit(digest.update, chunk)
            out.write(chunk)
        if hashing is not None:
            hashing.result()
    return digest.hexdigest(), size


def upload_file(
    source: Path, uri: str, *, limits: Limits | None = None, allow_insecure_http: bool = False
) -> int:
    """Put a finished local file at `uri` (s3://bucket/key, file:// or a path), whole or not at all.

    S3 stores an object only when its whole body has arrived and matches its Content-Length and
    Content-MD5; a local target is written through AtomicFile. Returns the size in bytes.
    """
    limits = limits or Limits()
    location = parse_uri(uri, allow_insecure_http=allow_insecure_http)
    size = source.stat().st_size
    if location.scheme == "file":
        assert location.path is not None
        with source.open("rb") as reader, AtomicFile(location.path) as out:
            shutil.copyfileobj(reader, out.file, CHUNK_BYTES)
            out.commit()
        return size
    if location.scheme != "s3":
        raise ConfigError(f"{location.display}: uploads go to s3:// or a local path")
    if size > MAX_SINGLE_PUT_BYTES:
        raise ConfigError(f"{source} is {size} bytes; one S3 PUT takes at most {MAX_SINGLE_PUT_BYTES}")
    config, context = _s3(location)
    deadline = Deadline(limits.deadline)
    checksum = content_md5(source)

    def put(_: int) -> None:
        url = presign(config, "PUT", location.bucket, location.key)
        with source.open("rb") as body:
            _http_put(url, body, size, checksum, location, deadline, limits, context)

    retrying(put, deadline, limits, location)
    return size


def read_object(uri: str, *, limits: Limits | None = None, max_bytes: int = 2**20) -> bytes | None:
    """A small object's bytes (a marker, a manifest), or None when it does not exist; retried like a fetch."""
    limits = limits or Limits()
    location = parse_uri(uri)
    if location.scheme == "file":
        assert location.path is not None
        return location.path.read_bytes() if location.path.is_file() else None
    deadline = Deadline(limits.deadline)

    def read(_: int) -> bytes | None:
        try:
            stream = open_stream(location, deadline, limits)
        except TransferError as error:
            if error.status == 404:
                return None
            raise
        try:
            data = stream.read(max_bytes + 1)
        finally:
            stream.close()
        if len(data) > max_bytes:
            raise IntegrityError(f"{location.display} is larger than {max_bytes} bytes")
        return data

    return retrying(read, deadline, limits, location)[0]


def object_size(uri: str, *, limits: Limits | None = None) -> int | None:
    """An object's size in bytes (S3 HEAD, or stat), or None when it does not exist."""
    location = parse_uri(uri)
    if location.scheme == "file":
        assert location.path is not None
        return location.path.stat().st_size if location.path.is_file() else None
    response = _s3_request("HEAD", location, limits or Limits())
    return None if response is None else int(response.getheader("Content-Length") or 0)


def delete_object(uri: str, *, limits: Limits | None = None) -> None:
    """Remove an object (s3:// or a local path); one that does not exist is already removed."""
    location = parse_uri(uri)
    if location.scheme == "file":
        assert location.path is not None
        location.path.unlink(missing_ok=True)
        return
    _s3_request("DELETE", location, limits or Limits())


def _s3_request(method: str, location: Location, limits: Limits) -> http.client.HTTPResponse | None:
    """One bodiless S3 request (HEAD, DELETE) with retries; None when the object does not exist."""
    if location.scheme != "s3":
        raise ConfigError(f"{location.display}: {method} needs an s3:// URI or a local path")
    config, context = _s3(location)
    deadline = Deadline(limits.deadline)

    def attempt(_: int) -> http.client.HTTPResponse | None:
        url = presign(config, method, location.bucket, location.key)
        connection = _connect(url, location, deadline, limits, context)
        with _transfer_errors(location, "no response", connection.http):
            connection.http.request(method, connection.target, headers=_headers())
            response = connection.http.getresponse()
            if response.status not in (200, 204, 404):
                raise _status_error(response, connection.http, location)
            response.read()
        connection.http.close()
        return None if response.status == 404 else response

    return retrying(attempt, deadline, limits, location)[0]


def content_md5(path: Path) -> str:
    """The Content-MD5 header of a file's body: S3 refuses a PUT whose body does not match (BadDigest)."""
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as reader:
        while chunk := reader.read(CHUNK_BYTES):
            md5.update(chunk)
    return base64.b64encode(md5.digest()).decode()


# --- HTTP: one code path for https, http and S3 --------------------------------------------------------


class _FileStream:
    def __init__(self, handle: BinaryIO, size: int, display: str) -> None:
        self._handle = handle
        self._display = display
        self.size: int | None = size

    def read(self, n: int) -> bytes:
        try:
            return self._handle.read(n)
        except OSError as error:
            raise TransferError(f"{self._display}: {error.strerror or error}", transient=False) from None

    def close(self) -> None:
        self._handle.close()


class _HttpStream:
    """A response body read with each recv bounded by the read timeout and the deadline."""

    def __init__(
        self,
        connection: _Connection,
        response: http.client.HTTPResponse,
        location: Location,
        deadline: Deadline,
        limits: Limits,
    ) -> None:
        self._connection = connection
        self._response = response
        self._location = location
        self._deadline = deadline
        self._read_timeout = limits.read_timeout
        length = response.getheader("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() else None

    def read(self, n: int) -> bytes:
        """Up to `n` bytes (fewer only at the end): whole chunks keep the per-chunk work rare."""
        parts: list[bytes] = []
        wanted = n
        while wanted > 0:
            timeout = self._deadline.bound(self._read_timeout)
            with _transfer_errors(self._location, f"no data for {timeout:g} s"):
                self._connection.socket.settimeout(timeout)
                part = self._response.read1(wanted)  # one recv: a slow drip cannot outlast the deadline
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._response.close()
        self._connection.http.close()


def _http_get(
    url: str,
    location: Location,
    deadline: Deadline,
    limits: Limits,
    context: ssl.SSLContext | None,
    *,
    allow_insecure_http: bool,
) -> ByteStream:
    for _ in range(MAX_REDIRECTS + 1):
        connection = _connect(url, location, deadline, limits, context)
        with _transfer_errors(location, "no response", connection.http):
            connection.http.request("GET", connection.target, headers=_headers())
            response = connection.http.getresponse()
        if response.status == 200:
            return _HttpStream(connection, response, location, deadline, limits)
        redirect = response.getheader("Location") if response.status in (301, 302, 303, 307, 308) else None
        if redirect is None:
            raise _status_error(response, connection.http, location)
        connection.http.close()
        url = urljoin(url, redirect)
        scheme = urlsplit(url).scheme
        if scheme not in ("https", "http") or (scheme == "http" and not allow_insecure_http):
            raise TransferError(f"{location.display}: redirected to a {scheme} URL, refused", transient=False)
    raise TransferError(f"{location.display}: more than {MAX_REDIRECTS} redirects", transient=False)


def _http_put(
    url: str,
    body: BinaryIO,
    size: int,
    checksum: str,
    location: Location,
    deadline: Deadline,
    limits: Limits,
    context: ssl.SSLContext | None,
) -> None:
    connection = _connect(url, location, deadline, limits, context)
    client = connection.http
    try:
        with _transfer_errors(location, "upload stalled", client):
            client.putrequest("PUT", connection.target, skip_accept_encoding=True)
            for name, value in {**_headers(), "Content-Length": str(size), "Content-MD5": checksum}.items():
                client.putheader(name, value)
            client.endheaders()
            while chunk := body.read(CHUNK_BYTES):
                connection.socket.settimeout(deadline.bound(limits.read_timeout))
                client.send(chunk)
            connection.socket.settimeout(deadline.bound(limits.read_timeout))
            response = client.getresponse()
            if response.status not in (200, 201, 204):
                raise _status_error(response, client, location)
            response.read()
    finally:
        client.close()


@dataclass(frozen=True)
class _Connection:
    http: http.client.HTTPConnection
    # Kept apart: http.client drops `http.sock` once a response will close the connection, yet the
    # response goes on reading from this socket, whose timeout is set before every read.
    socket: socket.socket
    target: str  # path and query to request


def _connect(
    url: str, location: Location, deadline: Deadline, limits: Limits, context: ssl.SSLContext | None
) -> _Connection:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = deadline.bound(limits.connect_timeout)
    client: http.client.HTTPConnection
    if parts.scheme == "https":
        client = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context or ssl.create_default_context()
        )
    else:
        client = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    with _transfer_errors(location, f"no connection within {timeout:g} s", client):
        client.connect()
        assert client.sock is not None
        client.sock.settimeout(deadline.bound(limits.read_timeout))
    return _Connection(client, client.sock, target)


def _headers() -> dict[str, str]:
    return {"User-Agent": f"model-api/{__version__}", "Accept-Encoding": "identity"}


@contextlib.contextmanager
def _transfer_errors(
    location: Location, timeout_message: str, connection: http.client.HTTPConnection | None = None
) -> Iterator[None]:
    """Socket, TLS and protocol failures as TransferError (closing the connection); the message names
    the URI as it may be logged, never the request's URL."""
    try:
        yield
    except BaseException as error:
        if connection is not None:
            connection.close()
        translated = _transfer_error(error, location, timeout_message)
        if translated is None:
            raise
        raise translated from None


def _transfer_error(error: BaseException, location: Location, timeout_message: str) -> TransferError | None:
    if isinstance(error, StorageError | KeyboardInterrupt | SystemExit):
        return None
    if isinstance(error, TimeoutError):
        return TransferError(f"{location.display}: {timeout_message}", transient=True)
    if isinstance(error, ssl.SSLCertVerificationError):
        return TransferError(
            f"{location.display}: TLS certificate not trusted: {error.verify_message}", transient=False
        )
    if isinstance(error, http.client.IncompleteRead):
        return TransferError(f"{location.display}: truncated body", transient=True)
    if isinstance(error, OSError | http.client.HTTPException):
        reason = getattr(error, "strerror", None) or error.__class__.__name__
        return TransferError(f"{location.display}: {reason}", transient=True)
    return None


_S3_ERROR_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


def _status_error(
    response: http.client.HTTPResponse, connection: http.client.HTTPConnection, location: Location
) -> TransferError:
    # Only S3's error <Code> is quoted from the body: other elements can echo the request's credentials.
    try:
        head = response.read(4096)
    except (OSError, http.client.HTTPException):
        head = b""
    connection.close()
    code = _S3_ERROR_CODE.search(head)
    detail = f" ({code.group(1).decode()})" if code else ""
    error = TransferError(
        f"{location.display}: HTTP {response.status} {response.reason}{detail}",
        transient=response.status in TRANSIENT_STATUSES,
        status=response.status,
    )
    retry_after = (response.getheader("Retry-After") or "").strip()
    if retry_after.isdigit():  # the seconds form; an HTTP date is rare from object stores and ignored
        error.retry_after = float(retry_after)
    return error


def _s3(location: Location) -> tuple[S3Config, ssl.SSLContext | None]:
    try:
        config = config_from_env()
    except S3ConfigError as error:
        raise ConfigError(f"{location.display}: {error}") from None
    plain_http = (config.endpoint_url or "").startswith("http://")
    context = (
        ssl.create_default_context(cafile=config.ca_bundle) if config.ca_bundle and not plain_http else None
    )
    return config, context
