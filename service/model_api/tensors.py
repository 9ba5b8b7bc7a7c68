"""Client data → the float32 [N, 4] batch the model takes, refusing anything that is not plainly numbers.

numpy alone would quietly turn "1.5" into 1.5 and True into 1, so element types are checked first;
the checks run over C iterators (`map(type, row)`) to stay cheap for large batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_api.errors import BadRequest, Unprocessable
from model_api.model import N_FEATURES

# Largest finite float32; the model computes in float32, so larger magnitudes are refused (422).
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBERS = frozenset((int, float))
_INTEGERS = frozenset((int,))

# Open Inference Protocol datatypes accepted for the input tensor, with their little-endian dtypes.
V2_DATATYPES: dict[str, np.dtype] = {
    name: np.dtype(code).newbyteorder("<")
    for name, code in {
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
    }.items()
}


def rows_to_batch(rows: Any, *, field: str, max_rows: int) -> np.ndarray:
    """A JSON list of rows of 4 numbers (KServe V1 `instances`) → float32 [N, 4]."""
    if not isinstance(rows, list) or not rows:
        raise BadRequest(f"'{field}' must be a non-empty list of rows of {N_FEATURES} numbers")
    _check_row_count(len(rows), field, max_rows)
    _check_rows(rows, field, _NUMBERS, "numbers")
    return _finite_float32(np.array(rows, dtype=np.float64), field)


def tensor_to_batch(data: Any, shape: list[int], datatype: str, *, field: str, max_rows: int) -> np.ndarray:
    """V2 JSON tensor data (flat row-major or nested rows) of `datatype`, `shape` [N, 4] → float32 [N, 4]."""
    rows = check_shape(shape, field=field, max_rows=max_rows)
    dtype = V2_DATATYPES[datatype]
    allowed, kind = (_NUMBERS, "numbers") if dtype.kind == "f" else (_INTEGERS, "integers")
    if not isinstance(data, list) or not data:
        raise BadRequest(f"{field}.data must be a non-empty list of {kind}")
    if isinstance(data[0], list):
        if len(data) != rows:
            raise BadRequest(f"{field}.data has {len(data)} rows, shape {shape} needs {rows}")
        _check_rows(data, f"{field}.data", allowed, kind)
    else:
        if len(data) != rows * N_FEATURES:
            raise BadRequest(f"{field}.data has {len(data)} values, shape {shape} needs {rows * N_FEATURES}")
        if not allowed.issuperset(map(type, data)):
            raise BadRequest(
                f"{field}.data must hold only {kind} for {datatype}, found {_odd_one(data, allowed)}"
            )
    try:
        # JSON floats are doubles: kept as such until the float32 range check, so that a too-large FP32 value
        # is refused by that check rather than overflowing (with a RuntimeWarning) in the conversion.
        array = np.array(data, dtype=np.float64 if dtype.kind == "f" else dtype)
    except OverflowError:
        raise BadRequest(f"{field}.data has a value out of range for {datatype}") from None
    return _finite_float32(array.reshape(rows, N_FEATURES), field)


def bytes_to_batch(raw: bytes, shape: list[int], datatype: str, *, field: str, max_rows: int) -> np.ndarray:
    """A tensor sent with the binary data extension (raw little-endian values, row-major) → float32 [N, 4]."""
    rows = check_shape(shape, field=field, max_rows=max_rows)
    dtype = V2_DATATYPES[datatype]
    expected = rows * N_FEATURES * dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"{field} has {len(raw)} bytes of binary data, {datatype} shape {shape} needs {expected}"
        )
    return _finite_float32(np.frombuffer(raw, dtype=dtype).reshape(rows, N_FEATURES), field)


def check_shape(shape: Any, *, field: str, max_rows: int) -> int:
    """The number of rows of a valid [N, 4] shape."""
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or any(type(n) is not int for n in shape)
        or shape[1] != N_FEATURES
        or shape[0] < 1
    ):
        raise BadRequest(f"{field}.shape must be [N, {N_FEATURES}] with N >= 1, got {shape!r}")
    _check_row_count(shape[0], field, max_rows)
    return shape[0]


def _check_row_count(rows: int, field: str, max_rows: int) -> None:
    if rows > max_rows:
        raise Unprocessable(f"{field} has {rows} rows, more than MAX_ROWS={max_rows}")


def _check_rows(rows: list, field: str, allowed: frozenset, kind: str) -> None:
    for index, row in enumerate(rows):
        if type(row) is not list or len(row) != N_FEATURES:
            raise BadRequest(f"{field}[{index}] must be a list of {N_FEATURES} {kind}, got {_short(row)}")
        if not allowed.issuperset(map(type, row)):
            raise BadRequest(f"{field}[{index}] must hold only {kind}, found {_odd_one(row, allowed)}")


def _finite_float32(array: np.ndarray, field: str) -> np.ndarray:
    # Checked before the cast, so the bound is exactly the one /openapi.json states (NaN fails it too).
    if array.dtype.kind == "f" and not np.abs(array).max() <= FLOAT32_MAX:  # a NaN max fails too
        raise Unprocessable(
            f"{field} has a value that is not finite in float32 (NaN, Inf or beyond ±{FLOAT32_MAX:.7g})"
        )
    return array.astype(np.float32)


def _odd_one(values: list, allowed: frozenset) -> str:
    return next(_short(v) for v in values if type(v) not in allowed)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
