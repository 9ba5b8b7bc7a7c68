"""The artifact (training + ONNX metadata) and the runtime (load, predict, failure modes)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from model_api.model import Classes, OnnxModel
from model_api.signature import Signature, TensorSpec
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

    outputs = model.predict(
        {"input": np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)}
    )

    assert list(outputs) == ["label", "probabilities"]
    assert outputs["label"].tolist() == [0, 2]
    assert (outputs["label"].dtype, outputs["probabilities"].dtype, outputs["probabilities"].shape) == (
        np.int64,
        np.float32,
        (2, 3),
    )
    assert model.info is not None and model.info.classes == Classes("label", CLASS_NAMES)


def test_signature_is_read_from_the_graph(
    trained: tuple[Path, dict[str, str]], two_inputs_path: Path
) -> None:
    iris, other = OnnxModel(trained[0], "iris"), OnnxModel(two_inputs_path, "two")
    assert iris.load() and other.load(), (iris.error, other.error)

    assert iris.signature == Signature(
        (TensorSpec("input", "FP32", (-1, 4)),),
        (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3))),
    )
    assert other.signature == Signature(
        (TensorSpec("x", "FP32", (-1, 3)), TensorSpec("category", "BYTES", (-1, 1))),
        (
            TensorSpec("total", "FP32", (-1, 1)),
            TensorSpec("is_a", "BOOL", (-1, 1)),
            TensorSpec("doubled", "FP64", (-1, 3)),
        ),
    )


def test_predict_returns_only_the_outputs_asked_for(two_inputs_path: Path) -> None:
    model = OnnxModel(two_inputs_path, "two")
    model.load()
    x, category = np.array([[1, 2, 3]], dtype=np.float32), np.array([["a"]], dtype=object)

    outputs = model.predict({"x": x, "category": category}, ["is_a"])

    assert {name: value.tolist() for name, value in outputs.items()} == {"is_a": [[True]]}


def test_predict_refuses_a_batch_outside_the_contract(trained: tuple[Path, dict[str, str]]) -> None:
    model = OnnxModel(trained[0], "iris")
    model.load()

    with pytest.raises(ValueError, match=r"input 'input' needs FP32 \[N, 4\], got float64 \[1, 4\]"):
        model.predict({"input": np.zeros((1, 4))})


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


def test_an_onnx_model_without_metadata_loads_as_version_1_without_classes(
    tmp_path: Path, trained: tuple[Path, dict[str, str]]
) -> None:
    stripped = onnx.load(str(trained[0]))
    del stripped.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(stripped, str(path))
    model = OnnxModel(path, "iris")

    assert model.load(), model.error
    assert model.info is not None and (model.info.version, model.info.classes) == ("1", None)


def test_a_directory_with_model_settings_json_overrides_the_embedded_settings(
    tmp_path: Path, trained: tuple[Path, dict[str, str]]
) -> None:
    (tmp_path / "model.onnx").write_bytes(trained[0].read_bytes())
    settings = {"version": "7", "description": "iris, relabelled", "class_names": ["a", "b", "c"]}
    (tmp_path / "model-settings.json").write_text(json.dumps(settings))
    model = OnnxModel(tmp_path, "iris")

    assert model.load(), model.error
    assert model.info is not None
    assert (model.info.version, model.info.settings.description, model.info.classes) == (
        "7",
        "iris, relabelled",
        Classes("label", ("a", "b", "c")),
    )
    assert model.info.settings.features == FEATURES, "features still from the embedded metadata"


def test_the_version_setting_wins_over_the_artifacts(
    tmp_path: Path, trained: tuple[Path, dict[str, str]]
) -> None:
    model = OnnxModel(trained[0], "iris", version="canary-2")

    assert model.load(), model.error
    assert model.info is not None and model.info.version == "canary-2"


@pytest.mark.parametrize(
    ("settings", "cause"),
    [
        ("{not json", "model-settings.json is not readable JSON"),
        ('{"class_names": "a,b,c"}', "'class_names' must be a list of strings"),
        ('{"version": "1/2"}', "version '1/2' must be letters"),
        ('{"labels": []}', "unknown field 'labels'"),
        ('{"class_names": ["a", "b"]}', "2 class names for 3 probability columns"),
    ],
    ids=["malformed", "class-names-type", "version-unsafe", "unknown-field", "class-count"],
)
def test_bad_model_settings_leave_the_model_not_ready_naming_the_field(
    tmp_path: Path, trained: tuple[Path, dict[str, str]], settings: str, cause: str
) -> None:
    (tmp_path / "model.onnx").write_bytes(trained[0].read_bytes())
    (tmp_path / "model-settings.json").write_text(settings)
    model = OnnxModel(tmp_path, "iris")

    assert not model.load()
    assert cause in (model.error or ""), model.error


def test_a_directory_without_model_onnx_is_not_found(tmp_path: Path) -> None:
    model = OnnxModel(tmp_path, "iris")

    assert not model.load()
    assert model.error == "file not found"


def test_a_zipmap_classifier_serves_its_tensor_outputs(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    data = load_wine()
    classifier = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    path = tmp_path / "wine.onnx"
    path.write_bytes(to_onnx(classifier, data.data[:1].astype(np.float32)).SerializeToString())  # zipmap on
    model = OnnxModel(path, "wine")

    assert model.load(), model.error
    assert model.signature is not None and model.signature.output_names == ("output_label",)
    rows = data.data[:5].astype(np.float32)
    assert model.predict({"X": rows})["output_label"].tolist() == classifier.predict(rows).tolist()


TRAINING_MODULES = ("model_api.train", "model_api.package", "sklearn", "skl2onnx", "onnx", "joblib")


def test_serving_imports_no_training_code(model_path: Path) -> None:
    """`model-api serve` starts with onnxruntime and numpy: training and packaging stay out of it."""
    script = (
        "import sys\n"
        "from model_api.app import create_app\n"
        "from model_api.server import serve\n"
        "from model_api.settings import Settings\n"
        f"app = create_app(Settings(model_path={str(model_path)!r}))\n"
        "app.startup()\n"
        "app.shutdown()\n"
        f"print(sorted(m for m in {TRAINING_MODULES!r} if m in sys.modules))\n"
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr[-2000:]
