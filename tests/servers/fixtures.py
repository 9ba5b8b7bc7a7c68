"""pytest fixtures for the real servers (registered suite-wide by tests/conftest.py).

    def test_something(s3_server, flaky_http): ...

`s3_server` is one rclone per module (objects from earlier tests stay: use distinct keys); a test that
stops its server builds its own `S3Server(tmp_path)` instead. `flaky_http` is fresh per test.
`tls_certificate` is a self-signed certificate for 127.0.0.1: pass it as `tls=` to either server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.flaky_http import FlakyHTTPServer
from tests.servers.s3_server import S3Server
from tests.servers.tls import Certificate, self_signed


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def flaky_http() -> Iterator[FlakyHTTPServer]:
    with FlakyHTTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))
