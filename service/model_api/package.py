"""`model-api package`: a fitted scikit-learn estimator or pipeline (saved with joblib) → `model.onnx` +
`model-settings.json`, checked for parity with scikit-learn on sample rows; or settings for an existing
ONNX file (`--onnx`).

The settings are also embedded in the ONNX file's metadata (`model_settings`), so the one file that
`model-api fetch` downloads is the whole model. Needs the `train` extra (scikit-learn, skl2onnx, onnx);
serving never imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from model_api import model_settings
from model_api.model_settings import ModelSettings

INPUT_NAME = "input"
DEFAULT_TOLERANCE = 1e-3
DEFAULT_SAMPLE_ROWS = 64
_OPSET = {"": 17, "ai.onnx.ml": 3}


class PackageError(Exception):
    """The inputs cannot be packaged (exit 2); the message says why."""


class ParityError(Exception):
    """The ONNX model disagrees with scikit-learn beyond the tolerance (exit 1)."""


@dataclass(frozen=True)
class Parity:
    """Largest absolute difference between scikit-learn and onnxruntime, per ONNX output."""

    rows: int
    differences: dict[str, float]

    def worst(self) -> float:
        return max(self.differences.values(), default=0.0)


def package_estimator(
    estimator_path: Path,
    out: Path,
    settings: ModelSettings,
    *,
    sample: np.ndarray | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> Parity:
    """Convert, check parity (refused above `tolerance`), write `out/model.onnx` and its settings."""
    import joblib

    try:
        estimator = joblib.load(estimator_path)  # runs code from the file: --help says so
    except Exception as exc:
        raise PackageError(f"{estimator_path}: not a joblib file ({type(exc).__name__}: {exc})") from None
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int):
        raise PackageError(
            f"{estimator_path}: {type(estimator).__name__} is not a fitted scikit-learn estimator"
        )
    settings = _with_estimator_defaults(settings, estimator, n_features, say)
    if sample is None:
        sample = np.random.default_rng(seed).normal(size=(DEFAULT_SAMPLE_ROWS, n_features))
        say(f"no --sample: parity checked on {DEFAULT_SAMPLE_ROWS} random normal rows; pass real rows")
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim != 2 or sample.shape[1] != n_features:
        raise PackageError(
            f"sample rows have shape {list(sample.shape)}, the estimator takes [N, {n_features}]"
        )
    model = _convert(estimator, n_features)
    parity = _parity(estimator, model.SerializeToString(), sample)
    for name, difference in parity.differences.items():
        say(f"parity {name}: max abs difference {difference:.3g} over {parity.rows} rows")
    if parity.worst() > tolerance:
        raise ParityError(
            f"ONNX output differs from scikit-learn by {parity.worst():.3g}, above --tolerance {tolerance:g}"
        )
    write(model, settings, out)
    say(f"wrote {out / model_settings.MODEL_FILE_NAME} and {out / model_settings.FILE_NAME}")
    return parity


def package_onnx(
    onnx_path: Path, out: Path, settings: ModelSettings, say: Callable[[str], None] = print
) -> None:
    """Add settings to an existing ONNX file: check that onnxruntime loads it, write both files to `out`."""
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load(str(onnx_path))
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise PackageError(f"{onnx_path}: onnxruntime cannot load it ({type(exc).__name__}: {exc})") from None
    names = {arg.name for arg in session.get_inputs()}
    unknown = sorted(set(settings.inputs) - names)
    if unknown:
        raise PackageError(
            f"--describe-input names {unknown[0]!r}, not an input ({', '.join(sorted(names))})"
        )
    write(model, settings, out)
    say(f"wrote {out / model_settings.MODEL_FILE_NAME} and {out / model_settings.FILE_NAME}")


def write(model: Any, settings: ModelSettings, out: Path) -> None:
    """`out/model.onnx` with the settings embedded, and `out/model-settings.json`; each written atomically."""
    text = settings.to_json()
    props = [p for p in model.metadata_props if p.key != model_settings.METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = model_settings.METADATA_KEY, json.dumps(json.loads(text))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / model_settings.MODEL_FILE_NAME, model.SerializeToString())
    atomic_write(out / model_settings.FILE_NAME, text.encode())


def read_sample(path: Path) -> np.ndarray:
    """Sample rows from `.npy`, or CSV (a header line of names is skipped)."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        lines = path.read_text().splitlines()
        first = lines[0].split(",") if lines else []
        skip = 1 if first and not _is_number(first[0]) else 0
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    except (OSError, ValueError) as exc:
        raise PackageError(f"--sample {path}: {exc}") from None


def _with_estimator_defaults(
    settings: ModelSettings, estimator: Any, n_features: int, say: Callable[[str], None]
) -> ModelSettings:
    """Feature names from the estimator (fitted on a DataFrame) and class names for index labels."""
    features = settings.features
    if not features and hasattr(estimator, "feature_names_in_"):
        features = tuple(str(name) for name in estimator.feature_names_in_)
    if features and len(features) != n_features:
        raise PackageError(f"{len(features)} feature names for {n_features} features")
    class_names = settings.class_names
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        indices = np.issubdtype(np.asarray(classes).dtype, np.integer) and list(classes) == list(
            range(len(classes))
        )
        if class_names and len(class_names) != len(classes):
            raise PackageError(f"{len(class_names)} class names for {len(classes)} classes")
        if not indices:
            # The ONNX label output then holds the class values themselves, not indices to name.
            say(f"classes {list(classes)[:10]} are not 0..n-1: the label output holds them; no class names")
            class_names = ()
        elif not class_names:
            class_names = tuple(str(c) for c in classes)
    elif class_names:
        raise PackageError(f"--class-names given, but {type(estimator).__name__} is not a classifier")
    return replace(settings, features=features, class_names=class_names)


def _convert(estimator: Any, n_features: int) -> Any:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {"zipmap": False} if hasattr(estimator, "classes_") else None  # plain tensors, not maps
    try:
        return to_onnx(
            estimator,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            target_opset=_OPSET,
            options=options,
        )
    except Exception as exc:
        raise PackageError(f"skl2onnx cannot convert {type(estimator).__name__}: {exc}") from None


def _parity(estimator: Any, onnx_bytes: bytes, sample: np.ndarray) -> Parity:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    results = dict(zip(names, session.run(names, {INPUT_NAME: sample}), strict=True))
    expected: dict[str, np.ndarray] = {}
    if hasattr(estimator, "classes_"):
        expected["label"] = np.asarray(estimator.predict(sample))
        if hasattr(estimator, "predict_proba"):
            expected["probabilities"] = np.asarray(estimator.predict_proba(sample))
    else:
        expected[names[0]] = np.asarray(estimator.predict(sample))
    differences = {}
    for name, want in expected.items():
        got = results.get(name)
        if got is None:
            raise PackageError(
                f"the ONNX model has no output {name!r} to compare (outputs: {', '.join(names)})"
            )
        differences[name] = _max_abs_difference(want, got)
    return Parity(len(sample), differences)


def _max_abs_difference(want: np.ndarray, got: np.ndarray) -> float:
    if want.dtype.kind not in "fiub" or got.dtype.kind not in "fiub":  # class labels as strings
        return 0.0 if np.array_equal(want.ravel().astype(str), got.ravel().astype(str)) else float("inf")
    want = want.astype(np.float64).reshape(len(want), -1)
    got = got.astype(np.float64).reshape(len(got), -1)
    if want.shape != got.shape:
        return float("inf")
    return float(np.abs(want - got).max())


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name beside `path`, then rename: no reader ever sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def settings_from_args(
    *,
    name: str | None,
    version: str | None,
    description: str | None,
    features: Sequence[str],
    class_names: Sequence[str],
    input_descriptions: Sequence[str],
) -> ModelSettings:
    """ModelSettings from the command line (`--describe-input NAME=TEXT`), validated like the file."""
    inputs = {}
    for item in input_descriptions:
        input_name, sep, text = item.partition("=")
        if not sep or not input_name:
            raise PackageError(f"--describe-input {item!r} must be NAME=TEXT")
        inputs[input_name] = text
    data: dict[str, Any] = {"features": list(features), "class_names": list(class_names), "inputs": inputs}
    data |= {k: v for k, v in (("name", name), ("version", version), ("description", description)) if v}
    try:
        return ModelSettings.from_dict(data, "the command line")
    except model_settings.ModelSettingsError as exc:
        raise PackageError(str(exc)) from None
