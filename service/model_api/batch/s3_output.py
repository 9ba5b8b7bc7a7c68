"""A shard's output under an `s3://bucket/prefix`: staged on local disk, each file uploaded whole.

An S3 object becomes visible only when its upload completes (and the storage client sends Content-MD5, so
a damaged body is refused), so publishing is one PUT; the marker goes last, as on a local directory.
Credentials and endpoint come from the standard AWS variables, as for `model-api fetch`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from model_api import storage


class S3Prefix:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        storage.parse_uri(self._uri("probe"))  # a malformed prefix fails before any work

    def _uri(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def read(self, name: str) -> bytes | None:
        return storage.read_object(self._uri(name))

    def size(self, name: str) -> int | None:
        return storage.object_size(self._uri(name))

    @contextlib.contextmanager
    def staging(self, owner: str) -> Iterator[Path]:
        path = Path(tempfile.mkdtemp(prefix=f"model-api-batch-{owner}-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(self, staged: Path, name: str) -> None:
        storage.upload_file(staged, self._uri(name))

    def remove(self, name: str) -> None:
        storage.delete_object(self._uri(name))
