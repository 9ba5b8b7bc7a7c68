"""The model runtime: an ONNX artifact behind a small kserve-like interface (`load()`, `predict()`, `ready`).

Serving imports onnxruntime and numpy only (training libraries stay out of the start-up path). A missing
or broken artifact does not stop the process: `load()` records why, `ready` stays False and the
readiness probes answer 503 until a fixed artifact is deployed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

N_FEATURES = 4
_ORT_LOG_FATAL_ONLY = 4  # onnxruntime would otherwise print its own lines for a corrupt file


class ModelLoadError(Exception):
    """The artifact cannot serve; the message says why."""


@dataclass(frozen=True)
class ModelMetadata:
    """What the artifact says about itself (stored in the ONNX metadata_props at training time)."""

    name: str
    version: str
    input_name: str
    features: tuple[str, ...]
    class_names: tuple[str, ...]
    training_accuracy: float
    libraries: dict[str, str] = field(default_factory=dict)
    trained_at: str = ""


@dataclass(frozen=True)
class Prediction:
    labels: np.ndarray  # int64 [N]: class index per row
    probabilities: np.ndarray  # float32 [N, n_classes]


class OnnxModel:
    """One ONNX classifier: float32 [N, 4] in; `label` int64 [N] and `probabilities` float32 [N, C] out."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = Path(path)
        self.name = name
        self.ready = False
        self.error: str | None = None
        self.metadata: ModelMetadata | None = None
        self.load_seconds: float | None = None
        self._session: ort.InferenceSession | None = None
        self._output_names: list[str] = []

    def load(self) -> bool:
        """Load and check the artifact; on failure log one line naming the path and the cause."""
        started = time.perf_counter()
        try:
            self._session, self.metadata = _open(self.path)
            self._output_names = ["label", "probabilities"]
            self.predict(np.zeros((1, N_FEATURES), dtype=np.float32))  # warm-up: first request is not slow
        except ModelLoadError as exc:
            self.error = str(exc)
        except Exception as exc:  # onnxruntime raises assorted types for unreadable or invalid files
            self.error = f"{type(exc).__name__}: {_first_line(exc)}"
        else:
            self.ready, self.error = True, None
            self.load_seconds = time.perf_counter() - started
            log.info("model %s loaded from %s in %.3f s", self.name, self.path, self.load_seconds)
            return True
        self._session, self.ready = None, False
        log.error("model artifact %s not loaded: %s", self.path, self.error)
        return False

    def predict(self, batch: np.ndarray) -> Prediction:
        """Classify a float32 [N, 4] batch; client input is validated upstream, this enforces the contract."""
        if self._session is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        if batch.dtype != np.float32 or batch.ndim != 2 or batch.shape[1] != N_FEATURES:
            raise ValueError(
                f"predict needs float32 [N, {N_FEATURES}], got {batch.dtype} {list(batch.shape)}"
            )
        assert self.metadata is not None
        labels, probabilities = self._session.run(self._output_names, {self.metadata.input_name: batch})
        return Prediction(labels=labels, probabilities=probabilities)


def _open(path: Path) -> tuple[ort.InferenceSession, ModelMetadata]:
    if not path.is_file():
        raise ModelLoadError("file not found" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise ModelLoadError("file is empty")
    options = ort.SessionOptions()
    # One core per pod: more threads would only contend with the event loop and the other replicas.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = _ORT_LOG_FATAL_ONLY
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return session, _check(session)


def _check(session: ort.InferenceSession) -> ModelMetadata:
    """The artifact must match what the routes promise: one [N, 4] float input, label + probabilities."""
    inputs, outputs = session.get_inputs(), {o.name: o for o in session.get_outputs()}
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or inputs[0].shape[-1] != N_FEATURES:
        raise ModelLoadError(
            f"expected one float input of shape [N, {N_FEATURES}], found {_describe(inputs)}"
        )
    if outputs.get("label") is None or outputs.get("probabilities") is None:
        raise ModelLoadError(f"expected outputs 'label' and 'probabilities', found {sorted(outputs)}")
    props = session.get_modelmeta().custom_metadata_map
    try:
        metadata = ModelMetadata(
            name=props["name"],
            version=props["version"],
            input_name=inputs[0].name,
            features=tuple(json.loads(props["features"])),
            class_names=tuple(json.loads(props["class_names"])),
            training_accuracy=float(props["training_accuracy"]),
            libraries=json.loads(props.get("libraries", "{}")),
            trained_at=props.get("trained_at", ""),
        )
    except KeyError as exc:
        raise ModelLoadError(f"metadata_props lacks {exc.args[0]!r} (train with `model-api train`)") from None
    except ValueError as exc:
        raise ModelLoadError(f"metadata_props is not valid: {exc}") from None
    if len(metadata.features) != N_FEATURES:
        raise ModelLoadError(f"metadata lists {len(metadata.features)} features, the input has {N_FEATURES}")
    n_classes = outputs["probabilities"].shape[-1]
    if isinstance(n_classes, int) and n_classes != len(metadata.class_names):
        raise ModelLoadError(f"{len(metadata.class_names)} class names for {n_classes} probability columns")
    return metadata


def _describe(args: list[ort.NodeArg]) -> str:
    return ", ".join(f"{a.name} {a.type} {a.shape}" for a in args) or "none"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
