"""`model-api batch` as a Job runs it: real processes, real files, every exit code, crashes and reruns."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pytest
from model_api.model import OnnxModel
from model_api.settings import DEFAULT_MODEL_PATH

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
BIN = Path(sys.executable).parent / "model-api"


def write_iris_csv(path: Path, rows: int, seed: int = 7) -> np.ndarray:
    """A random iris-like table with a header; returns the values as float32 for reference predictions."""
    rng = random.Random(seed)
    values = [
        [round(rng.uniform(lo, hi), 2) for lo, hi in ((4, 8), (2, 4.5), (1, 7), (0.1, 2.5))]
        for _ in range(rows)
    ]
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(FEATURES)
        writer.writerows(values)
    return np.array(values, dtype=np.float32)


def batch(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MODEL_API_MODEL_PATH": str(DEFAULT_MODEL_PATH), **(env or {})}
    return subprocess.run(
        [str(BIN), "batch", *args], env=environ, capture_output=True, text=True, timeout=120
    )


def start_batch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    environ = {**os.environ, "MODEL_API_MODEL_PATH": str(DEFAULT_MODEL_PATH), **(env or {})}
    return subprocess.Popen(
        [str(BIN), "batch", *args], env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def read_parts(output: Path) -> list[dict]:
    return [
        orjson.loads(line)
        for part in sorted(output.glob("part-*.jsonl"))
        for line in part.read_bytes().splitlines()
    ]


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
    }


@pytest.fixture(scope="module")
def iris_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("batch-input") / "rows.csv"
    return path, write_iris_csv(path, 5_000)


@pytest.fixture(scope="module")
def reference() -> OnnxModel:
    model = OnnxModel(DEFAULT_MODEL_PATH, "iris")
    assert model.load(), model.error
    return model


def test_shards_in_parallel_score_every_row_exactly_once_like_the_model(
    iris_input: tuple[Path, np.ndarray], reference: OnnxModel, tmp_path: Path
) -> None:
    path, values = iris_input
    shards = 4
    env = lambda i: {"JOB_COMPLETION_INDEX": str(i)}  # noqa: E731 - the Job controller's only difference per pod
    procs = [
        start_batch("--input", str(path), "--output", str(tmp_path), "--shard-count", str(shards), env=env(i))
        for i in range(shards)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * shards, [p.stderr.read() for p in procs]

    records = read_parts(tmp_path)
    expected = reference.predict({"input": values})
    assert [r["row"] for r in records] == list(range(len(values)))
    assert [r["label"] for r in records] == expected["label"].tolist()
    np.testing.assert_allclose([r["probabilities"] for r in records], expected["probabilities"], rtol=1e-6)
    assert {r["class_name"] for r in records} <= {"Iris setosa", "Iris versicolor", "Iris virginica"}
    markers = sorted(p.name for p in tmp_path.glob("_SUCCESS-*"))
    assert markers == [f"_SUCCESS-{i:05d}" for i in range(shards)]


def test_a_rerun_of_a_complete_shard_changes_no_byte(
    iris_input: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, _ = iris_input
    args = ("--input", str(path), "--output", str(tmp_path), "--shard-index", "1", "--shard-count", "3")
    assert batch(*args).returncode == 0
    before = snapshot(tmp_path)
    rerun = batch(*args)
    assert (rerun.returncode, snapshot(tmp_path)) == (0, before)
    assert "already complete" in rerun.stderr


def test_a_changed_input_rewrites_the_shard(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    write_iris_csv(path, 100, seed=1)
    args = ("--input", str(path), "--output", str(tmp_path / "out"), "--shard-index", "0")
    assert batch(*args).returncode == 0
    first = (tmp_path / "out" / "part-00000-of-00001.jsonl").read_bytes()
    write_iris_csv(path, 100, seed=2)
    assert batch(*args).returncode == 0
    assert (tmp_path / "out" / "part-00000-of-00001.jsonl").read_bytes() != first


def test_a_shard_killed_halfway_leaves_no_part_and_its_rerun_completes(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    write_iris_csv(path, 200_000)
    output = tmp_path / "out"
    args = ("--input", str(path), "--output", str(output), "--shard-index", "0", "--batch-rows", "64")
    proc = start_batch(*args)
    deadline = time.monotonic() + 60
    # Halfway: the staged part has rows in it, so the shard is genuinely mid-write when the kill lands.
    while not any(p.stat().st_size > 0 for p in output.glob(".staging-*/part-*")):
        assert proc.poll() is None and time.monotonic() < deadline, (
            "the shard ended before it could be killed"
        )
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert sorted(p.name for p in output.glob("part-*")) == []
    assert sorted(p.name for p in output.glob("_SUCCESS-*")) == []

    assert batch(*args).returncode == 0
    assert len(read_parts(output)) == 200_000
    assert sorted(p.name for p in output.iterdir() if p.name.startswith(".")) == []  # the dead attempt's too


def test_bad_rows_go_to_the_error_file_with_their_row_number(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n5.1,oops,1.4,0.2\n6.0,3.0,4.8,1.8\n")
    failed = batch("--input", str(path), "--output", str(tmp_path / "strict"), "--shard-index", "0")
    assert failed.returncode == 5, failed.stderr
    assert "--max-error-rate" in failed.stderr
    assert sorted(p.name for p in (tmp_path / "strict").iterdir()) == ["errors-00000-of-00001.jsonl"]

    tolerant = tmp_path / "tolerant"
    ok = batch(
        "--input", str(path), "--output", str(tolerant), "--shard-index", "0", "--max-error-rate", "0.5"
    )
    assert ok.returncode == 0, ok.stderr
    errors = [
        orjson.loads(line) for line in (tolerant / "errors-00000-of-00001.jsonl").read_bytes().splitlines()
    ]
    assert errors == [{"row": 1, "reason": "column 'sepal_width': could not convert string to float: 'oops'"}]
    assert [r["row"] for r in read_parts(tolerant)] == [0, 2]
    marker = orjson.loads((tolerant / "_SUCCESS-00000").read_bytes())
    assert marker["counts"] == {"rows": 3, "scored": 2, "errors": 1}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--shard-count", "2"), {}, "pass --shard-index or set $JOB_COMPLETION_INDEX"),
        (("--shard-index", "2", "--shard-count", "2"), {}, "--shard-index must be in 0..1"),
        (("--shard-index", "0", "--input-format", "xml"), {}, "invalid choice"),
        (("--shard-index", "0", "--batch-rows", "0"), {}, "--batch-rows must be at least 1"),
        (("--shard-index", "0", "--max-error-rate", "2"), {}, "--max-error-rate must be in [0, 1]"),
        (
            (
                "--shard-index",
                "0",
            ),
            {"MODEL_API_MODEL_PATH": "/nonexistent.onnx"},
            "cannot be loaded: file not found",
        ),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(
    iris_input: tuple[Path, np.ndarray], tmp_path: Path, args: Sequence[str], env: dict, message: str
) -> None:
    path, _ = iris_input
    result = batch("--input", str(path), "--output", str(tmp_path), *args, env=env)
    assert (result.returncode, message in result.stderr) == (2, True), result.stderr


def test_an_input_that_does_not_fit_the_model_exits_2(tmp_path: Path) -> None:
    for name, text, message in [
        ("in.csv", "a,b\n1,2\n", "lacks sepal_length"),
        ("in.txt", "a,b,c,d\n", "cannot tell the format of in.txt"),
        ("missing.csv", None, "no such file"),
    ]:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        result = batch("--input", str(path), "--output", str(tmp_path / "out"), "--shard-index", "0")
        assert (result.returncode, message in result.stderr) == (2, True), (name, result.stderr)


def test_digest_mismatches_exit_4(iris_input: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = iris_input
    common = ("--input", str(path), "--output", str(tmp_path), "--shard-index", "0")
    wrong = "0" * 64
    for flag, what in (("--input-sha256", "input digest"), ("--model-sha256", "model digest")):
        result = batch(*common, flag, wrong)
        assert (result.returncode, what in result.stderr) == (4, True), result.stderr
    assert list(tmp_path.glob("part-*")) == []


def test_an_output_that_cannot_be_written_is_transient_exit_3(
    iris_input: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, _ = iris_input
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = batch("--input", str(path), "--output", str(blocker / "out"), "--shard-index", "0")
    assert (result.returncode, "I/O error while" in result.stderr) == (3, True), result.stderr


class TestS3:
    """Input from and output to a real S3-compatible server (rclone) on loopback, as a Job on AWS would."""

    def test_input_and_output_on_s3_score_once_and_a_rerun_does_nothing(
        self, s3_server, tmp_path: Path
    ) -> None:
        data = tmp_path / "rows.csv"
        write_iris_csv(data, 1_000)
        digest = hashlib.sha256(data.read_bytes()).hexdigest()
        uri = s3_server.put("batch/in/rows.csv", data)
        args = ("--input", uri, "--input-sha256", digest, "--output", s3_server.uri("batch/out"))
        for index in (0, 1):
            done = batch(*args, "--shard-index", str(index), "--shard-count", "2", env=s3_server.env())
            assert done.returncode == 0, done.stderr
        parts = [s3_server.get(f"batch/out/part-{i:05d}-of-00002.jsonl") for i in (0, 1)]
        rows = [orjson.loads(line)["row"] for part in parts for line in part.splitlines()]
        assert rows == list(range(1_000))
        marker = s3_server.get("batch/out/_SUCCESS-00001")

        rerun = batch(*args, "--shard-index", "1", "--shard-count", "2", env=s3_server.env())
        assert (rerun.returncode, "already complete" in rerun.stderr) == (0, True), rerun.stderr
        assert s3_server.get("batch/out/_SUCCESS-00001") == marker

    def test_a_remote_input_needs_its_digest_and_a_wrong_one_is_exit_4(
        self, s3_server, tmp_path: Path
    ) -> None:
        data = tmp_path / "rows.csv"
        write_iris_csv(data, 10)
        uri = s3_server.put("batch/digest/rows.csv", data)
        out = str(tmp_path / "out")
        unverified = batch("--input", uri, "--output", out, "--shard-index", "0", env=s3_server.env())
        assert (unverified.returncode, "--sha256 is required" in unverified.stderr) == (2, True), (
            unverified.stderr
        )
        wrong = batch(
            "--input",
            uri,
            "--input-sha256",
            "0" * 64,
            "--output",
            out,
            "--shard-index",
            "0",
            env=s3_server.env(),
        )
        assert wrong.returncode == 4, wrong.stderr
        assert not (tmp_path / "out").exists()

    def test_an_unreachable_output_is_transient_exit_3(self, tmp_path: Path) -> None:
        from tests.servers.s3_server import S3Server

        data = tmp_path / "rows.csv"
        write_iris_csv(data, 10)
        with S3Server(tmp_path / "s3") as server:
            env = server.env()
        result = batch(
            "--input", str(data), "--output", "s3://models/out", "--shard-index", "0", env=env
        )  # the server has stopped: nothing listens at its endpoint any more
        assert (result.returncode, "out/_SUCCESS-00000" in result.stderr) == (3, True), result.stderr


def test_any_model_any_datatype_through_json_lines(tmp_path: Path) -> None:
    """The identity model (INT32, INT64, BOOL, FP64, FP32 and BYTES in and out, [N, 2]) scores JSON Lines rows
    into the same values: the string output takes the per-row writer, the others the batch-wide one."""
    from tests.service.example_models import build_identity

    model = build_identity(tmp_path / "identity.onnx")
    rows = [
        {"int32": [i, -i], "int64": [2**40 + i, 0], "bool": [True, i % 2 == 0], "fp64": [0.5 * i, 1e-300],
         "fp32": [1.5, -2.25], "bytes": [f"row {i}", "é"]}
        for i in range(5)
    ]  # fmt: skip
    data = tmp_path / "rows.jsonl"
    data.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    result = batch(
        "--input", str(data), "--output", str(tmp_path / "out"), "--shard-index", "0",
        env={"MODEL_API_MODEL_PATH": str(model)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = read_parts(tmp_path / "out")
    expected = [
        {"row": i, **{f"{name}_out": value for name, value in row.items()}} for i, row in enumerate(rows)
    ]
    assert records == expected


def test_a_two_input_model_without_metadata_scores_like_numpy(tmp_path: Path) -> None:
    from tests.service.example_models import build_two_inputs, two_inputs_expected

    model = build_two_inputs(tmp_path / "two.onnx")
    x = np.array([[1.5, 2.0, -3.0], [0.25, 0.5, 0.125], [10.0, 20.0, 30.0]], dtype=np.float32)
    category = np.array([["a"], ["b"], ["a"]], dtype=object)
    data = tmp_path / "rows.jsonl"
    data.write_bytes(
        b"".join(
            orjson.dumps({"x": row.tolist(), "category": c[0]}) + b"\n"
            for row, c in zip(x, category, strict=True)
        )
    )
    result = batch(
        "--input", str(data), "--output", str(tmp_path / "out"), "--shard-index", "0",
        env={"MODEL_API_MODEL_PATH": str(model)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = read_parts(tmp_path / "out")
    reference = two_inputs_expected(x, category)
    actual = {name: np.array([r[name] for r in records]) for name in reference}
    for name, values in reference.items():
        np.testing.assert_allclose(actual[name], values, rtol=1e-6, err_msg=name)
