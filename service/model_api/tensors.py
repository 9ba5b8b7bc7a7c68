"""Client data → the arrays a model's inputs take, refusing anything that does not plainly fit.

Each input's `TensorSpec` (from the model's signature) says what fits: its datatype, its rank and fixed
dimensions. numpy alone would quietly turn "1.5" into 1.5 and True into 1, so element types are checked
first; the checks run over C iterators (`map(type, values)`) to stay cheap for large batches. Every
refusal names the field, the input and the problem: 400 for a malformed or mismatched tensor, 422 for a
well-formed one out of range (too many rows, a value not finite in the model's float type).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from model_api.errors import BadRequest, Unprocessable
from model_api.signature import NUMERIC, V2_DTYPES, TensorSpec

# Largest finite float32: the seed routes' bound for query parameters of a float32 model.
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBERS = frozenset((int, float))
_INTEGERS = frozenset((int,))
_KINDS = {
    "f": (_NUMBERS, "numbers"),
    "i": (_INTEGERS, "integers"),
    "u": (_INTEGERS, "integers"),
    "b": (frozenset((bool,)), "booleans"),
    "O": (frozenset((str,)), "strings"),
}
_INTEGER_TYPES = tuple(name for name in NUMERIC if V2_DTYPES[name].kind in "iu")
_FEW = 64  # up to this many JSON numbers, the float range check runs in Python
_LENGTH_PREFIX = 4  # the binary extension's BYTES elements: little-endian uint32 length, then the bytes


def accepted_datatypes(spec: TensorSpec) -> tuple[str, ...]:
    """Request datatypes an input takes: any number for a float input (cast), integers for an integer
    input (range-checked), BOOL and BYTES only as themselves."""
    kind = spec.dtype.kind
    if kind == "f":
        return tuple(sorted(NUMERIC))
    if kind in "iu":
        return tuple(sorted(_INTEGER_TYPES))
    return (spec.datatype,)


@dataclass(frozen=True)
class _Rules:
    """What one input accepts, worked out once per input rather than per request."""

    spec: TensorSpec
    accepted: frozenset[str]
    accepted_text: str
    float_bound: float  # the largest finite value of a float input's dtype (0 for other inputs)


_RULES: dict[int, _Rules] = {}


def _rules(spec: TensorSpec) -> _Rules:
    rules = _RULES.get(id(spec))
    if rules is None or rules.spec is not spec:
        accepted = accepted_datatypes(spec)
        bound = float(np.finfo(spec.dtype).max) if spec.dtype.kind == "f" else 0.0
        rules = _RULES[id(spec)] = _Rules(spec, frozenset(accepted), ", ".join(accepted), bound)
    return rules


def float_bound(spec: TensorSpec) -> float:
    """The largest finite value of a float input's dtype: the range accepted for it."""
    return _rules(spec).float_bound


def check_datatype(spec: TensorSpec, datatype: Any, field: str) -> np.dtype:
    rules = _rules(spec)
    if type(datatype) is not str or datatype not in rules.accepted:  # a list would not even hash
        shown = datatype if isinstance(datatype, str) else repr(datatype)
        raise BadRequest(
            f"{field}.datatype {shown!r:.40} is not accepted by input {spec.name!r} ({spec.datatype}); "
            f"use one of {rules.accepted_text}"
        )
    return V2_DTYPES[datatype]


def check_shape(spec: TensorSpec, shape: Any, *, field: str, max_rows: int) -> tuple[int, ...]:
    """A valid request shape for `spec`: same rank, fixed dimensions equal, every dimension >= 1."""
    valid = type(shape) is list and len(shape) == len(spec.shape)
    if valid:
        for want, got in zip(spec.shape, shape, strict=True):
            if type(got) is not int or got < 1 or (want != -1 and want != got):
                valid = False
                break
    if not valid:
        raise BadRequest(
            f"{field}.shape must be {spec.shape_text()} for input {spec.name!r} "
            f"(every dimension >= 1), got {shape!r:.60}"
        )
    if spec.batched and shape[0] > max_rows:
        raise Unprocessable(f"{field} has {shape[0]} rows, more than MAX_ROWS={max_rows}")
    return tuple(shape)


def json_tensor(
    spec: TensorSpec, data: Any, shape: Any, datatype: Any, *, field: str, max_rows: int
) -> np.ndarray:
    """V2 JSON tensor data (flat row-major or nested to the tensor's rank) → the input's array."""
    dtype = check_datatype(spec, datatype, field)
    dims = check_shape(spec, shape, field=field, max_rows=max_rows)
    return _from_json(spec, data, dims, dtype, datatype, field, ".data")


def binary_tensor(
    spec: TensorSpec, raw: bytes, shape: Any, datatype: Any, *, field: str, max_rows: int
) -> np.ndarray:
    """A tensor sent with the binary data extension (raw little-endian values, row-major) → the array."""
    dtype = check_datatype(spec, datatype, field)
    dims = check_shape(spec, shape, field=field, max_rows=max_rows)
    count = _count(dims)
    if dtype.kind == "O":
        return np.array(_split_bytes(raw, count, field), dtype=object).reshape(dims)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"{field} has {len(raw)} bytes of binary data, {datatype} shape {list(dims)} needs {expected}"
        )
    if dtype.kind == "b":  # any non-zero byte is True, as in C
        return (np.frombuffer(raw, dtype=np.uint8) != 0).reshape(dims)
    return _convert(spec, np.frombuffer(raw, dtype=dtype).reshape(dims), datatype, field)


def instances(spec: TensorSpec, rows: Any, *, field: str, max_rows: int) -> np.ndarray:
    """KServe V1 `instances`: a JSON list with one entry per row, each shaped like the input's row."""
    if not isinstance(rows, list) or not rows:
        raise BadRequest(
            f"'{field}' must be a non-empty list of rows, each {_row_text(spec)} for input {spec.name!r}"
        )
    if len(rows) > max_rows:
        raise Unprocessable(f"{field} has {len(rows)} rows, more than MAX_ROWS={max_rows}")
    dims = [len(rows)]
    first = rows[0]
    for want in spec.shape[1:]:  # dynamic dimensions inside a row: as long as the first row's
        size = len(first) if type(first) is list else 0
        dims.append(want if want != -1 else max(size, 1))
        first = first[0] if size else None
    if spec.shape and spec.shape[0] not in (-1, len(rows)):
        raise BadRequest(f"'{field}' must hold exactly {spec.shape[0]} rows for input {spec.name!r}")
    return _from_json(spec, rows, tuple(dims), spec.dtype, spec.datatype, field, "")


def _from_json(
    spec: TensorSpec, data: Any, dims: tuple[int, ...], dtype: np.dtype, datatype: str, field: str, part: str
) -> np.ndarray:
    """`field + part` names the data in messages (joined only when there is one to give)."""
    allowed, kind = _KINDS[dtype.kind]
    if not isinstance(data, list) or not data:
        raise BadRequest(f"{field}{part} must be a non-empty list of {kind}")
    if type(data[0]) is list and len(dims) > 1:
        values = _flatten(data, dims, field + part, kind)
    else:
        values = data
        count = _count(dims)
        if len(values) != count:
            raise BadRequest(f"{field}{part} has {len(values)} values, shape {list(dims)} needs {count}")
    if not allowed.issuperset(map(type, values)):
        raise BadRequest(
            f"{field}{part} must hold only {kind} for input {spec.name!r}, found {_odd_one(values, allowed)}"
        )
    if dtype.kind in "bO":
        return np.array(values, dtype=dtype).reshape(dims)
    if dtype.kind == "f" and len(values) <= _FEW and spec.dtype.kind == "f":
        # A row or two: the range check in Python is a fraction of numpy's two ufunc calls. A NaN fails
        # it too; JSON floats are doubles, so a value too large for the model's float is refused here
        # rather than overflowing (with a RuntimeWarning) in the cast.
        bound = _rules(spec).float_bound
        for value in values:
            if not -bound <= value <= bound:
                raise _not_finite(spec, field + part, bound)
        return np.array(values, dtype=spec.dtype).reshape(dims)
    try:
        # As above: doubles until the range check (in _convert).
        array = np.array(values, dtype=np.float64 if dtype.kind == "f" else dtype)
    except OverflowError:
        raise BadRequest(f"{field}{part} has a value out of range for {datatype}") from None
    return _convert(spec, array.reshape(dims), datatype, field + part)


def _convert(spec: TensorSpec, array: np.ndarray, datatype: str, field: str) -> np.ndarray:
    """Cast to the input's dtype, refusing what the cast would not keep (non-finite, out of range)."""
    target = spec.dtype
    kind = array.dtype.kind
    if target.kind == "f":
        if kind == "f":
            bound = _rules(spec).float_bound
            if not np.abs(array).max() <= bound:  # a NaN max fails too
                raise _not_finite(spec, field, bound)
        elif target.itemsize == 2 and np.abs(array.astype(np.float64)).max() > np.finfo(target).max:
            raise Unprocessable(f"{field} has a value beyond the FP16 range of input {spec.name!r}")
        return array.astype(target)
    if array.dtype != target:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise Unprocessable(
                f"{field} has a {datatype} value out of range for input {spec.name!r} ({spec.datatype})"
            )
        return array.astype(target)
    return array


def _not_finite(spec: TensorSpec, field: str, bound: float) -> Unprocessable:
    return Unprocessable(
        f"{field} has a value that is not finite in {spec.datatype} for input {spec.name!r} "
        f"(NaN, Inf or beyond ±{bound:.7g})"
    )


def _flatten(data: list, dims: tuple[int, ...], field: str, kind: str) -> list:
    """Nested lists, one level per dimension, checked against `dims` → one flat list."""
    if len(data) != dims[0]:
        raise BadRequest(f"{field} has {len(data)} rows, shape {list(dims)} needs {dims[0]}")
    inner, flat = dims[1:], []
    for index, item in enumerate(data):
        if type(item) is not list or len(item) != inner[0]:
            raise BadRequest(f"{field}[{index}] must be a list of {inner[0]} {kind}, got {_short(item)}")
        if len(inner) > 1:
            flat.extend(_flatten(item, inner, f"{field}[{index}]", kind))
        else:
            flat.extend(item)
    return flat


def _split_bytes(raw: bytes, count: int, field: str) -> list[str]:
    values, offset = [], 0
    view = memoryview(raw)
    while offset < len(raw):
        if offset + _LENGTH_PREFIX > len(raw):
            raise BadRequest(f"{field}: binary BYTES data ends inside a length prefix")
        length = int.from_bytes(view[offset : offset + _LENGTH_PREFIX], "little")
        offset += _LENGTH_PREFIX
        if offset + length > len(raw):
            raise BadRequest(f"{field}: binary BYTES element {len(values)} runs past the end of the data")
        try:
            values.append(str(view[offset : offset + length], "utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(f"{field}: binary BYTES element {len(values)} is not UTF-8") from None
        offset += length
    if len(values) != count:
        raise BadRequest(f"{field} has {len(values)} binary BYTES elements, its shape needs {count}")
    return values


def encode_bytes(array: np.ndarray) -> bytes:
    """BYTES output for the binary extension: each element as a uint32 length and its UTF-8 bytes."""
    parts = []
    for value in array.ravel().tolist():
        data = value.encode() if isinstance(value, str) else bytes(value)
        parts += (len(data).to_bytes(_LENGTH_PREFIX, "little"), data)
    return b"".join(parts)


def _count(dims: tuple[int, ...]) -> int:
    count = 1
    for n in dims:
        count *= n
    return count


def _row_text(spec: TensorSpec) -> str:
    rest = spec.shape[1:]
    if not rest:
        return f"one {_KINDS[spec.dtype.kind][1][:-1]}"
    return "a list shaped [" + ", ".join("*" if d == -1 else str(d) for d in rest) + "]"


def _odd_one(values: list, allowed: frozenset) -> str:
    return next(_short(v) for v in values if type(v) not in allowed)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
