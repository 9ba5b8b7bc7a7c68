"""Contract: the rendered model delivery runs as the kubelet would run it, against real servers on loopback.

The fetch init container's command and environment come from the rendered pod spec (S3 credentials from the
Secret its secretKeyRefs name), its volumes are local directories shared with the main container, and the
main container then serves what the init container fetched. The servers are real: rclone's S3 and an HTTP
server that truncates and stalls on cue (tests/servers). Every exit code of `model-api fetch` is produced.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from model_api.settings import DEFAULT_MODEL_PATH

from loadtest.chart import localpod
from loadtest.chart.localpod import LocalPod, free_port
from loadtest.chart.volumes import LocalVolumes, moved_env
from tests.chart import helpers
from tests.servers.flaky_http import FlakyHTTPServer, stall, truncate
from tests.servers.s3_server import S3Server

pytestmark = [pytest.mark.chart, pytest.mark.slow]

CREDENTIALS_SECRET = "model-store"
EXIT_OK, EXIT_TRANSFER, EXIT_INTEGRITY = 0, 3, 4
SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def artifact() -> bytes:
    return DEFAULT_MODEL_PATH.read_bytes()


def s3_values(server: S3Server, uri: str, sha256: str, version: str = "2") -> dict[str, Any]:
    model = {
        "uri": uri,
        "sha256": sha256,
        "version": version,
        "s3": {"endpoint": server.endpoint_url, "existingSecret": CREDENTIALS_SECRET},
        "fetch": {"retries": 1, "backoffSeconds": 0.1, "readTimeoutSeconds": 2, "deadlineSeconds": 20},
    }
    return {"model": model}


class RenderedPod:
    """One rendered serving pod: its volumes under `root`, its init container run to completion, its main
    container started as LocalPod on what the init container left in the shared volume."""

    def __init__(self, values: dict[str, Any], root: Path, secrets: dict[str, dict[str, str]] | None = None):
        self.objects = helpers.render(values)
        self.spec = helpers.pod_spec(helpers.workload(self.objects))
        self.volumes = LocalVolumes(self.objects, self.spec, root, external=secrets)
        self.secrets = secrets or {}

    def init_container(self) -> dict[str, Any]:
        (container,) = self.spec["initContainers"]
        return container

    def fetch(self, timeout: float = 60) -> subprocess.CompletedProcess:
        container = self.init_container()
        argv, env = localpod.container_process(
            self.objects, container, self.volumes.mounts(container), self._secret_env(container)
        )
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)

    def serve(self) -> LocalPod:
        """The main container as LocalPod, its env paths inside the volumes pointed at the local copies."""
        container = helpers.main_container(self.objects)
        moved = moved_env(localpod.container_env(self.objects, container), self.volumes.mounts(container))
        return LocalPod.from_release(self.objects, port=free_port(), env_overrides=moved)

    def cache(self) -> Path:
        """The model volume as the init container left it."""
        (mount,) = [m for m in self.init_container()["volumeMounts"] if m["name"] == "cache"]
        return self.volumes.mounts(self.init_container())[mount["mountPath"]]

    def _secret_env(self, container: dict[str, Any]) -> dict[str, str]:
        """The values of secretKeyRefs to Secrets the release does not render (an existingSecret)."""
        return {
            item["name"]: self.secrets[ref["name"]][ref["key"]]
            for item in container.get("env") or []
            if (ref := (item.get("valueFrom") or {}).get("secretKeyRef")) and ref["name"] in self.secrets
        }


def credentials(server: S3Server) -> dict[str, dict[str, str]]:
    return {
        CREDENTIALS_SECRET: {
            "AWS_ACCESS_KEY_ID": server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
        }
    }


def v2_infer(pod: LocalPod) -> tuple[dict[str, Any], str | None]:
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": SETOSA}]}
    request = urllib.request.Request(
        pod.url("/v2/models/iris/infer"),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()), response.headers.get("X-Model-Version")


def test_the_rendered_init_container_fetches_from_s3_and_the_main_container_serves_it(
    s3_server: S3Server, artifact: bytes, tmp_path: Path
) -> None:
    uri = s3_server.put("delivery/v2/model.onnx", artifact)
    pod = RenderedPod(
        s3_values(s3_server, uri, hashlib.sha256(artifact).hexdigest()), tmp_path, credentials(s3_server)
    )
    fetched = pod.fetch()
    assert fetched.returncode == EXIT_OK, fetched.stderr
    assert (pod.cache() / "model.onnx").read_bytes() == artifact
    assert s3_server.secret_access_key not in fetched.stderr  # credentials never logged

    with pod.serve() as serving:  # started on entering
        serving.wait_ready()
        answer, version = v2_infer(serving)
    labels = next(o for o in answer["outputs"] if o["name"] == "label")["data"]
    assert (labels, version) == ([0], "2")


def test_a_wrong_digest_exits_4_and_leaves_no_file_under_the_final_name(
    s3_server: S3Server, artifact: bytes, tmp_path: Path
) -> None:
    uri = s3_server.put("delivery/wrong/model.onnx", artifact)
    pod = RenderedPod(s3_values(s3_server, uri, "0" * 64), tmp_path, credentials(s3_server))
    result = pod.fetch()
    assert result.returncode == EXIT_INTEGRITY, result.stderr
    assert sorted(p.name for p in pod.cache().iterdir()) == []


def test_a_rerun_with_the_server_stopped_is_a_cache_hit(artifact: bytes, tmp_path: Path) -> None:
    with S3Server(tmp_path / "s3") as server:
        uri = server.put("delivery/cached/model.onnx", artifact)
        pod = RenderedPod(
            s3_values(server, uri, hashlib.sha256(artifact).hexdigest()),
            tmp_path / "pod",
            credentials(server),
        )
        assert pod.fetch().returncode == EXIT_OK
    again = pod.fetch()  # the same volume (a StatefulSet's claim after a restart); nothing listens any more
    assert again.returncode == EXIT_OK, again.stderr
    assert "cache hit" in again.stderr


@pytest.mark.parametrize("answer", [truncate(1000), stall(after=1000)], ids=["truncated", "stalled"])
def test_a_broken_transfer_exits_3_within_the_deadline_and_leaves_no_file(
    tls_certificate, artifact: bytes, tmp_path: Path, answer
) -> None:
    with FlakyHTTPServer(tls=tls_certificate) as server:
        url = server.add("/models/model.onnx", artifact, *[answer] * 10)
        values = {
            "model": {
                "uri": url,
                "sha256": hashlib.sha256(artifact).hexdigest(),
                "fetch": {
                    "retries": 1,
                    "backoffSeconds": 0.1,
                    "readTimeoutSeconds": 1,
                    "deadlineSeconds": 10,
                },
            }
        }
        pod = RenderedPod(values, tmp_path)
        container = pod.init_container()
        argv, env = localpod.container_process(pod.objects, container, pod.volumes.mounts(container))
        env["SSL_CERT_FILE"] = str(tls_certificate.cert)  # the cluster's CA bundle, here the test's own CA
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_TRANSFER, result.stderr
    assert sorted(p.name for p in pod.cache().iterdir()) == []
