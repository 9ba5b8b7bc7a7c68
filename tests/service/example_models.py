"""Models other than iris, built in the tests from scikit-learn's bundled data and onnx.helper.

- `diabetes`: the second example model, a regressor with 10 features (StandardScaler + Ridge on the
  bundled diabetes data), packaged by `model-api package` into `model.onnx` + `model-settings.json`.
- `two_inputs`: an "off-the-shelf" ONNX file with no custom metadata at all, two inputs (FP32 [N, 3] and
  STRING [N, 1]) and three outputs (FP32, BOOL, FP64), built with onnx.helper; numpy computes the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
DIABETES_VERSION = "2026.11"


@dataclass(frozen=True)
class Diabetes:
    directory: Path  # model.onnx + model-settings.json
    estimator: Any
    rows: np.ndarray  # float32 rows from the data set


def build_diabetes(workdir: Path) -> Diabetes:
    from model_api.package import package_estimator, settings_from_args
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_diabetes()
    estimator = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(data.data, data.target)
    joblib.dump(estimator, workdir / "diabetes.joblib")
    rows = data.data[:40].astype(np.float32)
    settings = settings_from_args(
        name="diabetes",
        version=DIABETES_VERSION,
        description="Disease progression one year after baseline (ridge regression)",
        features=DIABETES_FEATURES,
        class_names=(),
        input_descriptions=("input=ten baseline measurements, standardised as in sklearn's data set",),
    )
    package_estimator(
        workdir / "diabetes.joblib", workdir / "diabetes", settings, sample=rows, say=lambda _: None
    )
    return Diabetes(workdir / "diabetes", estimator, rows)


def build_two_inputs(path: Path) -> Path:
    """total = x.sum(axis=1, keepdims=True); is_a = category == "a"; doubled = 2 * float64(x)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node(
            "Constant", [], ["axes"], value=helper.make_tensor("axes", TensorProto.INT64, [1], [1])
        ),
        helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1),
        helper.make_node(
            "Constant", [], ["a"], value=helper.make_tensor("a", TensorProto.STRING, [], [b"a"])
        ),
        helper.make_node("Equal", ["category", "a"], ["is_a"]),
        helper.make_node("Cast", ["x"], ["x64"], to=TensorProto.DOUBLE),
        helper.make_node(
            "Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.DOUBLE, [], [2.0])
        ),
        helper.make_node("Mul", ["x64", "two"], ["doubled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("category", TensorProto.STRING, ["N", 1]),
        ],
        [
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("is_a", TensorProto.BOOL, ["N", 1]),
            helper.make_tensor_value_info("doubled", TensorProto.DOUBLE, ["N", 3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    assert not model.metadata_props, "the off-the-shelf model carries no custom metadata"
    path.write_bytes(model.SerializeToString())
    return path


def two_inputs_expected(x: np.ndarray, category: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "total": x.sum(axis=1, keepdims=True),
        "is_a": category == "a",
        "doubled": 2.0 * x.astype(np.float64),
    }


# V2 datatype → ONNX element type of the identity model's inputs and outputs.
IDENTITY_TYPES = {"INT32": 6, "INT64": 7, "BOOL": 9, "FP64": 11, "FP32": 1, "BYTES": 8}


def build_identity(path: Path) -> Path:
    """One input per datatype of IDENTITY_TYPES, named after it in lower case, shape [N, 2]; each output
    `<name>_out` is its input unchanged."""
    import onnx
    from onnx import helper

    names = [datatype.lower() for datatype in IDENTITY_TYPES]
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name in names],
        "identity",
        [
            helper.make_tensor_value_info(n, t, ["N", 2])
            for n, t in zip(names, IDENTITY_TYPES.values(), strict=True)
        ],
        [
            helper.make_tensor_value_info(f"{n}_out", t, ["N", 2])
            for n, t in zip(names, IDENTITY_TYPES.values(), strict=True)
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
