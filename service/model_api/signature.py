"""A model's signature: the name, datatype and shape of every input and output tensor.

Read from the ONNX graph as onnxruntime reports it; datatypes are the Open Inference Protocol (V2) names,
shapes use -1 for a dynamic dimension. The routes, the OpenAPI document and the load tests derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# ONNX tensor element type (as onnxruntime spells it) → V2 datatype.
ONNX_TO_V2 = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}
# V2 datatype → numpy dtype (little-endian, as the binary data extension carries it); BYTES is object.
V2_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code).newbyteorder("<") if code not in ("?", "O") else np.dtype(code)
    for name, code in {
        "FP16": "f2",
        "FP32": "f4",
        "FP64": "f8",
        "INT8": "i1",
        "INT16": "i2",
        "INT32": "i4",
        "INT64": "i8",
        "UINT8": "u1",
        "UINT16": "u2",
        "UINT32": "u4",
        "UINT64": "u8",
        "BOOL": "?",
        "BYTES": "O",
    }.items()
}
NUMERIC = frozenset(name for name, dtype in V2_DTYPES.items() if dtype.kind in "fiu")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: `shape` has -1 for each dynamic dimension (usually the first, the batch)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @cached_property
    def dtype(self) -> np.dtype:
        return V2_DTYPES[self.datatype]

    @property
    def is_float(self) -> bool:
        return self.datatype in ("FP16", "FP32", "FP64")

    @property
    def batched(self) -> bool:
        """True when the first dimension is dynamic: rows, limited by MAX_ROWS."""
        return bool(self.shape) and self.shape[0] == -1

    def as_metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def shape_text(self) -> str:
        """`[N, 4]` for a batched [-1, 4]; other dynamic dimensions as `*`."""
        dims = ["N" if i == 0 and d == -1 else "*" if d == -1 else str(d) for i, d in enumerate(self.shape)]
        return "[" + ", ".join(dims) + "]"


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return self._inputs_by_name.get(name)

    @cached_property
    def _inputs_by_name(self) -> dict[str, TensorSpec]:
        return {spec.name: spec for spec in self.inputs}

    def output(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.outputs if spec.name == name), None)

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @cached_property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    @cached_property
    def output_datatypes(self) -> dict[str, str]:
        return {spec.name: spec.datatype for spec in self.outputs}


def tensor_spec(name: str, onnx_type: str, shape: list) -> TensorSpec | None:
    """The spec of one onnxruntime NodeArg, or None when it is not a tensor (e.g. a ZipMap sequence)."""
    datatype = ONNX_TO_V2.get(onnx_type)
    if datatype is None:
        return None
    # onnxruntime reports a dynamic dimension as None or as a symbolic name such as 'N' or 'batch_size'.
    dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (shape or ()))
    return TensorSpec(name, datatype, dims)
