"""The verified download: a URI to `DEST/<last path segment>`, or nothing under that name.

The bytes stream into a temporary file in DEST while being hashed; the file is fsynced, its SHA-256
compared with the pinned digest, and only then renamed to its final name. A marker beside it
(`<name>.fetched.json`: URI, digest, size, time) lets the next run prove from the volume alone that the
file is the one asked for, so a restart on a kept volume does no network I/O at all.

KServe's storage initializer is the shape users know (an init container writing into a shared volume,
credentials given to it alone); unlike it this writes no partial file under the final name, checks a
pinned digest, and bounds every wait (kserve#5611, #5789).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from model_api.storage import (
    CHUNK_BYTES,
    EXIT_CONFIG,
    AtomicFile,
    ByteStream,
    ConfigError,
    Deadline,
    IntegrityError,
    Limits,
    Location,
    StorageError,
    TransferError,
    copy_hashed,
    open_stream,
    parse_uri,
    redact,
    remove_abandoned,
    retrying,
    write_atomically,
)

MARKER_SUFFIX = ".fetched.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")

logger = logging.getLogger("model_api.fetch")


@dataclass(frozen=True)
class FetchResult:
    path: Path
    sha256: str
    size: int
    cache_hit: bool
    attempts: int  # 0 on a cache hit
    seconds: float


def fetch(
    uri: str,
    dest: Path,
    *,
    sha256: str | None = None,
    allow_insecure_http: bool = False,
    allow_unverified: bool = False,
    limits: Limits | None = None,
) -> FetchResult:
    """Download `uri` to `dest/<name>` verified, or confirm from the marker that it is already there.

    Raises ConfigError (exit 2), TransferError (3) or IntegrityError (4); on any of them no new file
    carries the final name and no temporary file is left.
    """
    began = time.monotonic()
    limits = limits or Limits()
    location = parse_uri(uri, allow_insecure_http=allow_insecure_http)
    expected = check_sha256(sha256) if sha256 is not None else None
    if expected is None and location.remote:
        if not allow_unverified:
            raise ConfigError(f"{location.display}: --sha256 is required for a remote URI")
        logger.warning(
            "no --sha256: the download is not verified (development only)", extra={"uri": location.display}
        )
    target = dest / location.name
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--dest {dest}: {error.strerror}") from None

    cached = _cached(target, location, expected)
    if cached is not None:
        return FetchResult(target, cached[0], cached[1], True, 0, time.monotonic() - began)

    remove_abandoned(target)
    deadline = Deadline(limits.deadline)
    (digest, size), attempts = retrying(
        lambda _: _download(location, target, expected, deadline, limits), deadline, limits, location
    )
    marker = {
        "uri": location.display,
        "sha256": digest,
        "size": size,
        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    try:
        write_atomically(marker_path(target), json.dumps(marker, indent=2).encode() + b"\n")
    except OSError as error:
        raise ConfigError(f"cannot write {dest}: {error.strerror or error}") from None
    return FetchResult(target, digest, size, False, attempts, time.monotonic() - began)


def check_sha256(value: str) -> str:
    """A SHA-256 hex digest, lower-cased; ConfigError naming --sha256 otherwise."""
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise ConfigError(f"--sha256 must be 64 hexadecimal digits, not {value!r}")
    return digest


def marker_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + MARKER_SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _cached(target: Path, location: Location, expected: str | None) -> tuple[str, int] | None:
    """(digest, size) when the marker and the file prove the artifact is already in place.

    With a pinned digest the content decides (a new presigned URL for the same bytes is still a hit);
    without one the marker must also name the same URI. The file is hashed again: a volume kept across
    restarts can be damaged, and reading it locally costs far less than downloading it.
    """
    try:
        marker = json.loads(marker_path(target).read_bytes())
        recorded, size = str(marker["sha256"]), int(marker["size"])
        if expected is not None and recorded != expected:
            return None
        if expected is None and marker.get("uri") != location.display:
            return None
        if target.stat().st_size != size or file_sha256(target) != recorded:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded, size


def _download(
    location: Location, target: Path, expected: str | None, deadline: Deadline, limits: Limits
) -> tuple[str, int]:
    stream = open_stream(location, deadline, limits)
    try:
        return _write_verified(stream, location, target, expected, limits)
    except OSError as error:  # the destination, not the transfer: not writable, or full (its sizeLimit)
        raise ConfigError(f"cannot write {target.parent}: {error.strerror or error}") from None
    finally:
        stream.close()


def _write_verified(
    stream: ByteStream, location: Location, target: Path, expected: str | None, limits: Limits
) -> tuple[str, int]:
    if stream.size is not None and stream.size > limits.max_bytes:
        raise IntegrityError(f"{location.display} is {stream.size} bytes, over the {limits.max_bytes} limit")
    with AtomicFile(target) as out:
        actual, size = copy_hashed(stream, out.file, limits.max_bytes, location)
        if stream.size is not None and size != stream.size:
            raise TransferError(
                f"{location.display}: truncated body ({size} of {stream.size} bytes)", transient=True
            )
        if expected is not None and actual != expected:
            raise IntegrityError(
                f"{location.display}: sha256 {actual} ({size} bytes) is not the pinned {expected}"
            )
        out.commit()
    return actual, size


def run(
    uri: str,
    dest: Path,
    *,
    sha256: str | None,
    allow_insecure_http: bool,
    allow_unverified: bool,
    limits: dict[str, float],
) -> int:
    """`model-api fetch`: one log line for the outcome, and the exit code (0, 2, 3 or 4).

    SIGTERM (the kubelet ending the pod) unwinds like an exception, so the temporary file goes too;
    the process then ends with 143, as a default SIGTERM death would be reported.
    """
    began = time.monotonic()
    display = redact(uri)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        result = fetch(
            uri,
            dest,
            sha256=sha256,
            allow_insecure_http=allow_insecure_http,
            allow_unverified=allow_unverified,
            limits=Limits(**limits),
        )
    except StorageError as error:
        logger.error(
            "fetch failed: %s",
            error,
            extra={
                "uri": display,
                "dest": str(dest),
                "exit_code": error.exit_code,
                "attempts": error.attempts if error.exit_code != EXIT_CONFIG else 0,
                "seconds": round(time.monotonic() - began, 3),
            },
        )
        return error.exit_code
    logger.info(
        "%s %s",
        "cache hit:" if result.cache_hit else "fetched",
        result.path,
        extra={
            "uri": display,
            "dest": str(result.path),
            "sha256": result.sha256,
            "size": result.size,
            "cache_hit": result.cache_hit,
            "attempts": result.attempts,
            "seconds": round(result.seconds, 3),
            "exit_code": 0,
        },
    )
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    logger.error("fetch stopped by SIGTERM", extra={"exit_code": 128 + signum})
    raise SystemExit(128 + signum)
