"""The model runtime: a small kserve-like interface (`load()`, `ready`, `signature`, `predict()`) and its
ONNX implementation.

Any ONNX model onnxruntime accepts loads: inputs and outputs are whatever the graph declares (its
`Signature`); what the graph cannot say (version, feature and class names, descriptions) comes from
`model-settings.json` or the ONNX metadata, and nothing of it is required. Serving imports onnxruntime
and numpy only. A missing or broken artifact does not stop the process: `load()` records why, `ready`
stays False and the readiness probes answer 503 until a fixed artifact is deployed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

from model_api import model_settings
from model_api.model_settings import DEFAULT_VERSION, ModelSettings, ModelSettingsError
from model_api.signature import Signature, tensor_spec

log = logging.getLogger(__name__)

PLATFORM = "onnxruntime_onnx"
_ORT_LOG_FATAL_ONLY = 4  # onnxruntime would otherwise print its own lines for a corrupt file
_LABEL_OUTPUT = "label"  # what skl2onnx names a classifier's class output
_PROBABILITIES_OUTPUT = "probabilities"  # and its probabilities with zipmap off


class ModelLoadError(Exception):
    """The artifact cannot serve; the message says why."""


class ModelInputError(ValueError):
    """The runtime refused inputs that match the signature (e.g. inputs with different row counts)."""


@dataclass(frozen=True)
class Classes:
    """A classifier's conveniences: `label_output` holds class indices into `names`."""

    label_output: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What is known about the loaded model besides its signature."""

    version: str
    settings: ModelSettings
    classes: Classes | None  # None unless the model is a classifier with declared class names


class Model(Protocol):
    """What the routes (and the batch scorer) need of a model.

    `predict` takes one array per input, named as `signature.inputs` and of their dtypes, and returns the
    named outputs (all of them, or those asked for) in signature order. `signature` and `info` are set
    once `load()` has succeeded.
    """

    name: str
    ready: bool
    error: str | None
    signature: Signature | None
    info: ModelInfo | None
    load_seconds: float | None

    def load(self) -> bool: ...

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]: ...


class OnnxModel:
    """One ONNX model run by onnxruntime on one thread (one core per pod)."""

    def __init__(self, path: Path, name: str, *, version: str | None = None) -> None:
        self.path = Path(path)
        self.name = name
        self.ready = False
        self.error: str | None = None
        self.signature: Signature | None = None
        self.info: ModelInfo | None = None
        self.load_seconds: float | None = None
        self._version_override = version
        self._session: ort.InferenceSession | None = None
        self._output_names: list[str] = []

    def load(self) -> bool:
        """Load and check the artifact; on failure log one line naming the path and the cause."""
        started = time.perf_counter()
        try:
            self._session, self.signature, self.info = _open(self.path, self._version_override)
            self._output_names = list(self.signature.output_names)
            self.predict(warm_up_inputs(self.signature))  # the first request is not slow
        except (ModelLoadError, ModelSettingsError) as exc:
            self.error = str(exc)
        except Exception as exc:  # onnxruntime raises assorted types for unreadable or invalid files
            self.error = f"{type(exc).__name__}: {_first_line(exc)}"
        else:
            self.ready, self.error = True, None
            self.load_seconds = time.perf_counter() - started
            log.info("model %s loaded from %s in %.3f s", self.name, self.path, self.load_seconds)
            return True
        self._session, self.ready, self.signature, self.info = None, False, None, None
        log.error("model artifact %s not loaded: %s", self.path, self.error)
        return False

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the model; client input is validated upstream, this enforces the contract."""
        if self._session is None or self.signature is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        for spec in self.signature.inputs:
            array = inputs.get(spec.name)
            if array is None or array.dtype != spec.dtype or array.ndim != len(spec.shape):
                got = "nothing" if array is None else f"{array.dtype} {list(array.shape)}"
                raise ValueError(f"input {spec.name!r} needs {spec.datatype} {spec.shape_text()}, got {got}")
        names = self._output_names if outputs is None else list(outputs)
        try:
            return dict(zip(names, self._session.run(names, inputs), strict=True))
        except (InvalidArgument, Fail, RuntimeException) as exc:
            raise ModelInputError(_first_line(exc)) from None


def warm_up_inputs(signature: Signature) -> dict[str, np.ndarray]:
    """One row of zeros (empty strings, False) per input; dynamic dimensions as 1."""
    arrays = {}
    for spec in signature.inputs:
        shape = tuple(1 if d == -1 else d for d in spec.shape)
        arrays[spec.name] = (
            np.full(shape, "", dtype=object)
            if spec.datatype == "BYTES"
            else np.zeros(shape, dtype=spec.dtype)
        )
    return arrays


def _open(path: Path, version: str | None) -> tuple[ort.InferenceSession, Signature, ModelInfo]:
    onnx_path, settings_path = model_settings.resolve_path(path)
    if not onnx_path.is_file():
        raise ModelLoadError("file not found" if not onnx_path.exists() else "not a regular file")
    if onnx_path.stat().st_size == 0:
        raise ModelLoadError("file is empty")
    options = ort.SessionOptions()
    # One core per pod: more threads would only contend with the event loop and the other replicas.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = _ORT_LOG_FATAL_ONLY
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    signature = _signature(session)
    settings = model_settings.from_metadata(session.get_modelmeta().custom_metadata_map)
    if settings_path is not None:
        settings = model_settings.read_file(settings_path).merged_over(settings)
    return (
        session,
        signature,
        ModelInfo(
            version=version or settings.version or DEFAULT_VERSION,
            settings=settings,
            classes=_classes(signature, settings),
        ),
    )


def _signature(session: ort.InferenceSession) -> Signature:
    inputs = []
    for arg in session.get_inputs():
        spec = tensor_spec(arg.name, arg.type, arg.shape)
        if spec is None:
            raise ModelLoadError(f"input {arg.name!r} is {arg.type}; only tensor inputs can be served")
        inputs.append(spec)
    # Non-tensor outputs (a ZipMap's sequence of maps) have no V2 form; the tensors beside them are served.
    outputs = [tensor_spec(o.name, o.type, o.shape) for o in session.get_outputs()]
    served = tuple(spec for spec in outputs if spec is not None)
    if not served:
        raise ModelLoadError(f"no tensor output to serve (found {_describe(session.get_outputs())})")
    return Signature(tuple(inputs), served)


def _classes(signature: Signature, settings: ModelSettings) -> Classes | None:
    """Classifier conveniences apply when class names are declared and an integer class output exists."""
    if not settings.class_names:
        return None
    candidates = [
        spec for spec in signature.outputs if spec.datatype in ("INT32", "INT64") and len(spec.shape) == 1
    ]
    label = signature.output(_LABEL_OUTPUT)
    label = label if label in candidates else (candidates[0] if candidates else None)
    if label is None:
        return None
    probabilities = signature.output(_PROBABILITIES_OUTPUT)
    n_classes = probabilities.shape[-1] if probabilities is not None and probabilities.shape else -1
    if n_classes != -1 and n_classes != len(settings.class_names):
        raise ModelLoadError(f"{len(settings.class_names)} class names for {n_classes} probability columns")
    return Classes(label.name, settings.class_names)


def _describe(args: list[ort.NodeArg]) -> str:
    return ", ".join(f"{a.name} {a.type} {a.shape}" for a in args) or "none"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
