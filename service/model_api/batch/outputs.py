"""Where a shard's files land, committed so that no reader ever sees half of one.

A file is written under a temporary name and published whole: renamed into place on a local directory (the
same filesystem, so the rename is atomic), uploaded in one piece to an S3 prefix (an object is visible only
once its upload completes). The `_SUCCESS-<i>` marker is published last and removed first on a rewrite,
so a marker always describes the part beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from model_api.storage import fsync_dir


class Destination(Protocol):
    def read(self, name: str) -> bytes | None:
        """The published file's bytes, or None when there is none."""

    def size(self, name: str) -> int | None:
        """The published file's size, or None when there is none."""

    def staging(self, owner: str) -> contextlib.AbstractContextManager[Path]:
        """A private directory for `owner`'s temporary files, removed afterwards (with what was not
        published); entering it clears what an earlier, killed attempt of the same owner left."""

    def publish(self, staged: Path, name: str) -> None:
        """Make `staged` visible as `name`, whole or not at all."""

    def remove(self, name: str) -> None:
        """Unpublish `name` if it exists."""


class LocalDirectory:
    """A directory on a mounted volume; temporaries live inside it so the final rename stays atomic."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def size(self, name: str) -> int | None:
        try:
            return (self.root / name).stat().st_size
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def staging(self, owner: str) -> Iterator[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        # A dot-directory per attempt: a killed shard leaves only this behind, never a file with a final
        # name, and its next attempt clears it. Other shards, running beside it, keep theirs.
        for stale in self.root.glob(f".staging-{owner}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix=f".staging-{owner}-", dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(self, staged: Path, name: str) -> None:
        _fsync(staged)
        os.replace(staged, self.root / name)
        fsync_dir(self.root)

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


def read_marker(destination: Destination, name: str) -> dict[str, Any] | None:
    """A marker's content, or None when absent or unreadable (an unreadable marker is rewritten)."""
    data = destination.read(name)
    if data is None:
        return None
    try:
        marker = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return marker if isinstance(marker, dict) else None


def write_json(path: Path, content: dict[str, Any]) -> Path:
    path.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return path


def _fsync(path: Path) -> None:
    with path.open("rb") as stream:
        os.fsync(stream.fileno())
