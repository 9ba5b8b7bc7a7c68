"""tests/conftest.py asks the kube context for a cluster only when cluster tests are selected: with
`-m "not cluster"` (what `make test` and CI's offline job run) nothing talks to a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.loadtest.stub_http import serving

ROOT = Path(__file__).resolve().parents[1]


class CountingApiServer(BaseHTTPRequestHandler):
    """Stands in for an API server: counts requests, answers 404."""

    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def kubeconfig_for(url: str, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stub", "cluster": {"server": url}}],
                "users": [{"name": "stub", "user": {"token": "t"}}],
                "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
                "current-context": "stub",
            }
        )
    )
    return path


@pytest.mark.slow
def test_cluster_probe_runs_only_when_cluster_tests_are_selected(tmp_path: Path) -> None:
    requests = {}
    with serving(CountingApiServer) as server:
        kubeconfig = kubeconfig_for(f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        for selection in ("not cluster", "cluster"):
            CountingApiServer.paths.clear()
            command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                       "-m", selection, "tests/cluster"]  # fmt: skip
            subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
            )
            requests[selection] = len(CountingApiServer.paths)
    expected = {"not cluster": 0, "cluster": True}
    actual = {"not cluster": requests["not cluster"], "cluster": requests["cluster"] > 0}
    assert actual == expected, f"requests to the kube context's API server by selection: {requests}"
