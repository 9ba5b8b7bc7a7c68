"""Contract: the rendered batch Job runs as the Job controller would run it, on 100,000 rows.

Every index 0..completions-1 runs the rendered container's command and environment with
JOB_COMPLETION_INDEX set, at most `parallelism` at a time, its volumes as local directories; on a local
volume and on a real S3 server (rclone). Then: every input row appears exactly once across the parts, every
prediction equals what the rendered serving container's V2 route answers for that row, a rerun changes no
byte, a shard killed halfway leaves no part under its final name and its rerun completes, a corrupt row
lands in the error file with its row number.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from loadtest.chart import localpod
from loadtest.chart.localpod import LocalPod, free_port
from loadtest.chart.volumes import LocalVolumes
from tests.chart import helpers
from tests.servers.s3_server import S3Server

pytestmark = [pytest.mark.chart, pytest.mark.slow]

ROWS = 100_000
SHARDS, PARALLELISM = 4, 2
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
DATA_VOLUME = {
    "extraVolumes": [{"name": "data", "emptyDir": {}}],
    "extraVolumeMounts": [{"name": "data", "mountPath": "/data"}],
}
CREDENTIALS_SECRET = "batch-store"


def write_rows(path: Path, rows: int, corrupt: dict[int, str] | None = None) -> None:
    rng = random.Random(11)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(FEATURES)
        for number in range(rows):
            cells = [round(rng.uniform(lo, hi), 2) for lo, hi in ((4, 8), (2, 4.5), (1, 7), (0.1, 2.5))]
            writer.writerow([corrupt[number], *cells[1:]] if corrupt and number in corrupt else cells)


class RenderedJob:
    """The rendered Job: its pod's volumes under `root`, each index started as the Job controller would."""

    def __init__(self, values: dict[str, Any], root: Path, env: dict[str, str] | None = None) -> None:
        self.objects = helpers.render({**DATA_VOLUME, **values})
        (self.job,) = helpers.find(self.objects, "Job")
        self.spec = helpers.pod_spec(self.job)
        self.volumes = LocalVolumes(self.objects, self.spec, root)
        (self.container,) = self.spec["containers"]
        self.env = env or {}

    @property
    def data(self) -> Path:
        return self.volumes.mounts(self.container)["/data"]

    def start(self, index: int) -> subprocess.Popen:
        argv, env = localpod.container_process(
            self.objects, self.container, self.volumes.mounts(self.container), self.env
        )
        env["JOB_COMPLETION_INDEX"] = str(index)
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def run_all(self) -> list[int]:
        """Every index, at most spec.parallelism at once; the exit code of each."""
        completions, parallelism = self.job["spec"]["completions"], self.job["spec"]["parallelism"]
        codes: dict[int, int] = {}
        pending = list(range(completions))
        running: dict[int, subprocess.Popen] = {}
        while pending or running:
            while pending and len(running) < parallelism:
                index = pending.pop(0)
                running[index] = self.start(index)
            for index, process in list(running.items()):
                if process.poll() is not None:
                    codes[index] = process.returncode
                    assert process.returncode == 0, process.stderr.read()
                    del running[index]
            time.sleep(0.02)
        return [codes[i] for i in range(completions)]


def parts(directory: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for p in sorted(directory.glob("part-*.jsonl"))
        for line in p.read_bytes().splitlines()
    ]


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
    }


@pytest.fixture(scope="module")
def local_job(tmp_path_factory: pytest.TempPathFactory) -> RenderedJob:
    values = {
        "batch": {
            "enabled": True,
            "input": "/data/in/rows.csv",
            "output": "/data/out",
            "shards": SHARDS,
            "parallelism": PARALLELISM,
        }
    }
    job = RenderedJob(values, tmp_path_factory.mktemp("job"))
    write_rows(job.data / "in" / "rows.csv", ROWS)
    assert job.run_all() == [0] * SHARDS
    return job


@pytest.fixture(scope="module")
def serving(local_job: RenderedJob) -> Iterator[LocalPod]:
    """The same release's serving container: the V2 path the batch predictions must equal."""
    with LocalPod.from_release(local_job.objects, port=free_port()) as pod:
        pod.wait_ready()
        yield pod


def v2_predictions(pod: LocalPod, rows: np.ndarray) -> dict[str, list]:
    body = {
        "inputs": [
            {"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
        ]
    }
    request = urllib.request.Request(
        pod.url("/v2/models/iris/infer"),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]).tolist() for o in answer["outputs"]}


def test_every_row_is_scored_exactly_once_across_the_shards(local_job: RenderedJob) -> None:
    records = parts(local_job.data / "out")
    assert [r["row"] for r in records] == list(range(ROWS))
    markers = sorted(p.name for p in (local_job.data / "out").glob("_SUCCESS-*"))
    assert markers == [f"_SUCCESS-{i:05d}" for i in range(SHARDS)]


def test_every_prediction_equals_the_v2_route_of_the_rendered_service(
    local_job: RenderedJob, serving: LocalPod
) -> None:
    with (local_job.data / "in" / "rows.csv").open() as stream:
        values = np.array([[float(c) for c in row] for row in list(csv.reader(stream))[1:]], dtype=np.float32)
    records = parts(local_job.data / "out")
    for start in range(0, ROWS, 5_000):  # the V2 route's own batches: MAX_ROWS allows 10,000
        expected = v2_predictions(serving, values[start : start + 5_000])
        chunk = records[start : start + 5_000]
        assert [r["label"] for r in chunk] == expected["label"], f"labels of rows {start}..{start + 4_999}"
        np.testing.assert_allclose([r["probabilities"] for r in chunk], expected["probabilities"], rtol=1e-6)


def test_a_rerun_of_every_index_changes_no_byte(local_job: RenderedJob) -> None:
    before = snapshot(local_job.data / "out")
    assert local_job.run_all() == [0] * SHARDS
    assert snapshot(local_job.data / "out") == before


def test_a_shard_killed_halfway_leaves_no_part_and_its_rerun_completes(
    local_job: RenderedJob, tmp_path: Path
) -> None:
    values = {
        "batch": {
            "enabled": True,
            "input": "/data/in/rows.csv",
            "output": "/data/killed",
            "shards": 1,
            "parallelism": 1,
            "batchRows": 64,
        }
    }
    job = RenderedJob(values, tmp_path)
    write_rows(job.data / "in" / "rows.csv", ROWS)
    process = job.start(0)
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 0 for p in (job.data / "killed").glob(".staging-*/part-*")):
        assert process.poll() is None and time.monotonic() < deadline, (
            "the shard ended before it could be killed"
        )
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert sorted(p.name for p in (job.data / "killed").iterdir() if not p.name.startswith(".")) == []
    assert job.run_all() == [0]
    assert len(parts(job.data / "killed")) == ROWS


def test_a_corrupt_row_lands_in_the_error_file_with_its_row_number(tmp_path: Path) -> None:
    values = {
        "batch": {
            "enabled": True,
            "input": "/data/in/rows.csv",
            "output": "/data/out",
            "shards": 2,
            "parallelism": 2,
            "maxErrorRate": 0.01,
        }
    }
    job = RenderedJob(values, tmp_path)
    write_rows(job.data / "in" / "rows.csv", 1_000, corrupt={734: "7,3"})
    assert job.run_all() == [0, 0]
    errors = (job.data / "out" / "errors-00001-of-00002.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["row"] for line in errors] == [734]
    assert not (job.data / "out" / "errors-00000-of-00002.jsonl").exists()
    assert 734 not in {r["row"] for r in parts(job.data / "out")}


def test_input_and_output_on_s3_with_the_rendered_credentials(s3_server: S3Server, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    write_rows(data, 20_000)
    uri = s3_server.put("contract/in/rows.csv", data)
    values = {
        "model": {"s3": {"endpoint": s3_server.endpoint_url, "existingSecret": CREDENTIALS_SECRET}},
        "batch": {
            "enabled": True,
            "input": uri,
            "inputSha256": hashlib.sha256(data.read_bytes()).hexdigest(),
            "output": s3_server.uri("contract/out"),
            "shards": SHARDS,
            "parallelism": PARALLELISM,
        },
    }
    credentials = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_access_key,
    }
    job = RenderedJob(values, tmp_path / "pod", env=credentials)
    assert job.run_all() == [0] * SHARDS
    names = [f"contract/out/part-{i:05d}-of-{SHARDS:05d}.jsonl" for i in range(SHARDS)]
    rows = [orjson.loads(line)["row"] for name in names for line in s3_server.get(name).splitlines()]
    assert rows == list(range(20_000))
    assert all(s3_server.exists(f"contract/out/_SUCCESS-{i:05d}") for i in range(SHARDS))
