"""The artifact (training + ONNX metadata) and the runtime (load, predict, failure modes)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from model_api.model import OnnxModel
from model_api.train import CLASS_NAMES, FEATURES, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("artifact") / "iris.onnx"
    return path, train(path)


def test_artifact_metadata_props_describe_the_model(trained: tuple[Path, dict[str, str]]) -> None:
    path, _ = trained

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}

    assert (props["name"], json.loads(props["features"]), json.loads(props["class_names"])) == (
        "iris",
        list(FEATURES),
        list(CLASS_NAMES),
    )
    assert float(props["training_accuracy"]) > 0.9, "metadata training_accuracy"
    assert set(json.loads(props["libraries"])) == {"scikit-learn", "skl2onnx", "onnx"}, "metadata libraries"
    assert props["trained_at"], "metadata trained_at"


def test_training_is_deterministic(trained: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    first, _ = trained
    second = tmp_path / "again.onnx"
    train(second)

    graphs = [onnx.load(str(p)).graph.SerializeToString() for p in (first, second)]

    assert graphs[0] == graphs[1], "two trainings give different ONNX graphs (weights)"


def test_loaded_model_predicts_labels_and_probabilities(trained: tuple[Path, dict[str, str]]) -> None:
    model = OnnxModel(trained[0], "iris")
    assert model.load() and model.ready, model.error

    prediction = model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32))

    assert prediction.labels.tolist() == [0, 2]
    assert (prediction.labels.dtype, prediction.probabilities.dtype, prediction.probabilities.shape) == (
        np.int64,
        np.float32,
        (2, 3),
    )
    assert model.metadata is not None and model.metadata.class_names == CLASS_NAMES


def test_predict_refuses_a_batch_outside_the_contract(trained: tuple[Path, dict[str, str]]) -> None:
    model = OnnxModel(trained[0], "iris")
    model.load()

    with pytest.raises(ValueError, match=r"float32 \[N, 4\]"):
        model.predict(np.zeros((1, 3), dtype=np.float32))


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (None, "file not found"),
        (b"this is not an onnx model", "InvalidProtobuf"),
        (b"", "file is empty"),
    ],
    ids=["missing", "garbage", "empty"],
)
def test_unloadable_artifact_leaves_the_model_not_ready_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes | None, cause: str
) -> None:
    path = tmp_path / "iris.onnx"
    if content is not None:
        path.write_bytes(content)
    model = OnnxModel(path, "iris")

    with caplog.at_level(logging.INFO, logger="model_api.model"):
        loaded = model.load()

    assert (loaded, model.ready) == (False, False)
    assert [r.getMessage() for r in caplog.records] == [f"model artifact {path} not loaded: {model.error}"]
    assert cause in (model.error or ""), f"load error {model.error!r}"


def test_an_onnx_model_without_metadata_is_refused(
    tmp_path: Path, trained: tuple[Path, dict[str, str]]
) -> None:
    stripped = onnx.load(str(trained[0]))
    del stripped.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(stripped, str(path))
    model = OnnxModel(path, "iris")

    assert not model.load()
    assert "metadata_props lacks" in (model.error or ""), model.error
