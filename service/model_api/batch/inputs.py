"""Readers: rows of a CSV, JSON Lines or Parquet file → per-row model inputs, or the reason a row is bad.

The layout maps table columns to the model's inputs once (by the feature names of `model-settings.json`,
by input names, or by position) and then converts every row alike, so the three formats differ only in
how they produce raw cells; `convert` turns a batch of them into arrays. A bad row never stops the
shard: it comes back as a `RowError` for the errors file. A file the layout cannot map at all (wrong
header, unreadable Parquet) is an `InputFormatError`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from model_api.signature import Signature, TensorSpec

FORMATS = ("csv", "jsonl", "parquet")
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


class InputFormatError(ValueError):
    """The input cannot be read as the chosen format for this model (exit 2, never retried)."""


# slots, not frozen: one of these is made per input row, and a frozen dataclass's __init__ costs ~1 µs more.
@dataclass(slots=True)
class RowError:
    row: int
    reason: str


@dataclass(slots=True)
class Row:
    row: int
    cells: tuple[list[Any], ...]  # one flat list of cells per model input, in signature order


@dataclass(frozen=True)
class InputColumns:
    """Which table columns feed one model input, in the input's row-major element order."""

    spec: TensorSpec
    columns: tuple[str, ...]

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.spec.shape[1:])


def layout(signature: Signature, features: Sequence[str], fmt: str = "csv") -> tuple[InputColumns, ...]:
    """Column names per input: a single input takes the declared features (or f0..fk), several inputs
    one table column each named after the input; JSON Lines name inputs, so any number of them may take
    tensors. Every input must be batched with static row dimensions."""
    for spec in signature.inputs:
        if not spec.batched or any(d < 0 for d in spec.shape[1:]):
            raise InputFormatError(
                f"input {spec.name!r} has shape {spec.shape_text()}: batch scoring needs a dynamic first "
                "dimension (rows) and fixed dimensions after it"
            )
    if len(signature.inputs) == 1:
        spec = signature.inputs[0]
        width = math.prod(spec.shape[1:])
        if features and len(features) != width:
            raise InputFormatError(
                f"model-settings.json names {len(features)} features, input {spec.name!r} takes {width}"
            )
        names = tuple(features) if features else tuple(f"{spec.name}_{i}" for i in range(width))
        return (InputColumns(spec, names),)
    if fmt == "jsonl":  # one element name per value, for the shape check of each record
        return tuple(
            InputColumns(spec, tuple(f"{spec.name}[{i}]" for i in range(math.prod(spec.shape[1:]))))
            for spec in signature.inputs
        )
    for spec in signature.inputs:
        if math.prod(spec.shape[1:]) != 1:
            raise InputFormatError(
                f"input {spec.name!r} has shape {spec.shape_text()}: a table can feed several inputs only "
                "when each takes one value per row (use JSON Lines for tensor-valued inputs)"
            )
    return tuple(InputColumns(spec, (spec.name,)) for spec in signature.inputs)


def count_rows(path: Path, fmt: str) -> int:
    """Rows in the whole input: the shard ranges depend on it, so every shard counts the same way."""
    if fmt == "parquet":
        return _parquet_file(path).metadata.num_rows
    lines, plain = _lines(path)
    if fmt == "jsonl":
        return lines  # one record per line, as _jsonl_rows reads them
    if plain:  # every newline ends one record, as csv.reader would read them
        if lines == 0:
            raise InputFormatError(f"{path.name} is empty: a CSV input needs a header line")
        return lines - 1
    with _open_text(path) as stream:
        reader = csv.reader(stream)
        if next(reader, None) is None:
            raise InputFormatError(f"{path.name} is empty: a CSV input needs a header line")
        return sum(1 for _ in reader)


def _lines(path: Path) -> tuple[int, bool]:
    """(lines, plain): newline-ended lines plus an unterminated last one, counted on bytes; `plain` when the
    file has no quote and no carriage return outside CRLF, so no CSV record spans lines."""
    lines, plain, last = 0, True, b"\n"
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            if last == b"\r" and not chunk.startswith(b"\n"):
                plain = False  # the previous chunk ended in a CR that no LF follows
            lines += chunk.count(b"\n")
            # CRLF endings (csv.writer's default) are plain; a lone CR is not (a CR ending the chunk is
            # checked against the next one)
            lone_crs = chunk.count(b"\r") - chunk.count(b"\r\n") - chunk.endswith(b"\r")
            plain = plain and b'"' not in chunk and lone_crs == 0
            last = chunk[-1:]
    return lines + (last != b"\n"), plain and last != b"\r"


def read_rows(
    path: Path, fmt: str, columns: tuple[InputColumns, ...], start: int, stop: int
) -> Iterator[Row | RowError]:
    """Rows start..stop-1 (0-based over the whole input), converted for the model."""
    if fmt == "csv":
        yield from _csv_rows(path, columns, start, stop)
    elif fmt == "jsonl":
        yield from _jsonl_rows(path, columns, start, stop)
    elif fmt == "parquet":
        yield from _parquet_rows(path, columns, start, stop)
    else:
        raise InputFormatError(f"--input-format must be one of {', '.join(FORMATS)}, got {fmt!r}")


@dataclass(frozen=True)
class Batch:
    """Rows converted for the model: one array per input over `rows`; the rows that would not convert."""

    arrays: dict[str, np.ndarray]
    rows: list[Row]
    errors: list[RowError]


def convert(rows: Sequence[Row], columns: tuple[InputColumns, ...]) -> Batch:
    """The batch as arrays shaped [rows, *row_shape]. Float inputs convert in one numpy call; a batch where
    that fails (or yields a non-finite value) falls back to the per-cell rules for the rows at fault only."""
    suspect: set[int] = set()
    fast: dict[str, np.ndarray] = {}
    for position, spec_columns in enumerate(columns):
        if spec_columns.spec.dtype.kind != "f":
            suspect = set(range(len(rows)))  # integers, booleans, strings: the per-cell rules decide
            break
        try:
            array = np.array([row.cells[position] for row in rows], dtype=spec_columns.spec.dtype)
        except (ValueError, TypeError):
            suspect = set(range(len(rows)))
            break
        finite = np.isfinite(array.reshape(len(rows), -1)).all(axis=1)
        suspect.update(np.flatnonzero(~finite).tolist())
        fast[spec_columns.spec.name] = array
    if not suspect:
        shaped = {c.spec.name: fast[c.spec.name].reshape((len(rows), *c.row_shape)) for c in columns}
        return Batch(shaped, list(rows), [])
    good: list[Row] = []
    errors: list[RowError] = []
    for index, row in enumerate(rows):
        item = _convert(row.row, row.cells, columns) if index in suspect else row
        if isinstance(item, RowError):
            errors.append(item)
        else:
            good.append(item)
    return Batch(_arrays(good, columns), good, errors)


def _arrays(rows: Sequence[Row], columns: tuple[InputColumns, ...]) -> dict[str, np.ndarray]:
    """Arrays from cells that are already valid for their inputs."""
    arrays = {}
    for position, spec_columns in enumerate(columns):
        spec = spec_columns.spec
        flat = [row.cells[position] for row in rows]
        dtype = spec.dtype if spec.datatype != "BYTES" else object
        arrays[spec.name] = np.array(flat, dtype=dtype).reshape((len(rows), *spec_columns.row_shape))
    return arrays


def _csv_rows(
    path: Path, columns: tuple[InputColumns, ...], start: int, stop: int
) -> Iterator[Row | RowError]:
    with _open_text(path) as stream:
        reader = csv.reader(stream)
        header = next(reader, None) or []
        positions = _header_positions(header, columns, path.name)
        in_order = positions == [list(range(len(header)))]  # one input fed by every column as they stand
        for number, cells in enumerate(reader):
            if number < start:
                continue
            if number >= stop:
                return
            if len(cells) != len(header):
                yield RowError(number, f"{len(cells)} columns, the header has {len(header)}")
            elif in_order:
                yield Row(number, (cells,))
            else:
                yield Row(number, tuple([cells[i] for i in where] for where in positions))


def _header_positions(header: list[str], columns: tuple[InputColumns, ...], name: str) -> list[list[int]]:
    """Column indices per input: by name when the header has every name, else by position."""
    wanted = [c for spec_columns in columns for c in spec_columns.columns]
    index = {column: i for i, column in enumerate(header)}
    if all(column in index for column in wanted):
        return [[index[c] for c in spec_columns.columns] for spec_columns in columns]
    if len(header) != len(wanted):
        missing = [c for c in wanted if c not in index]
        raise InputFormatError(
            f"{name}: the header has {len(header)} columns and lacks {', '.join(missing[:5])}; the model "
            f"needs {len(wanted)} columns, named {', '.join(wanted)} or given in that order"
        )
    positions, offset = [], 0
    for spec_columns in columns:
        positions.append(list(range(offset, offset + len(spec_columns.columns))))
        offset += len(spec_columns.columns)
    return positions


def _jsonl_rows(
    path: Path, columns: tuple[InputColumns, ...], start: int, stop: int
) -> Iterator[Row | RowError]:
    names = [spec_columns.spec.name for spec_columns in columns]
    with path.open("rb") as stream:
        for number, line in enumerate(stream):
            if number < start:
                continue
            if number >= stop:
                return
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield RowError(number, f"not JSON: {exc}")
                continue
            if not isinstance(record, dict):
                yield RowError(number, "a line must be a JSON object of named inputs")
                continue
            missing = [name for name in names if name not in record]
            if missing:
                yield RowError(number, f"missing input {missing[0]!r} (inputs: {', '.join(names)})")
                continue
            cells = _json_cells(record, columns)
            yield RowError(number, cells) if isinstance(cells, str) else Row(number, tuple(cells))


def _json_cells(record: dict[str, Any], columns: tuple[InputColumns, ...]) -> list[list[Any]] | str:
    """Each input's value flattened row-major, or the reason the record does not fit the signature."""
    cells = []
    for spec_columns in columns:
        name, shape = spec_columns.spec.name, list(spec_columns.row_shape)
        try:
            value = np.asarray(record[name], dtype=object)
        except ValueError:
            return f"input {name!r} is a ragged list; it needs shape {shape} per row"
        if value.size != len(spec_columns.columns) or value.ndim not in (0, len(shape)):
            return f"input {name!r} has shape {list(value.shape)}; it needs {shape} per row"
        cells.append(value.reshape(-1).tolist())
    return cells


def _parquet_rows(
    path: Path, columns: tuple[InputColumns, ...], start: int, stop: int
) -> Iterator[Row | RowError]:
    parquet = _parquet_file(path)
    available = set(parquet.schema_arrow.names)
    wanted = [c for spec_columns in columns for c in spec_columns.columns]
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputFormatError(f"{path.name}: no column {missing[0]!r} (the model needs {', '.join(wanted)})")
    number = 0
    for batch in parquet.iter_batches(columns=wanted, batch_size=8192):
        if number + batch.num_rows <= start:
            number += batch.num_rows
            continue
        table = batch.to_pydict()
        for offset in range(batch.num_rows):
            if number >= stop:
                return
            if number >= start:
                cells = [[table[c][offset] for c in spec_columns.columns] for spec_columns in columns]
                yield Row(number, tuple(cells))
            number += 1


def _convert(number: int, cells: Sequence[list[Any]], columns: tuple[InputColumns, ...]) -> Row | RowError:
    converted = []
    for raw, spec_columns in zip(cells, columns, strict=True):
        values = []
        for value, column in zip(raw, spec_columns.columns, strict=True):
            try:
                values.append(_cell(value, spec_columns.spec))
            except ValueError as exc:
                return RowError(number, f"column {column!r}: {exc}")
        converted.append(values)
    return Row(number, tuple(converted))


def _cell(value: Any, spec: TensorSpec) -> Any:
    """One cell in the input's type; the same rules as the V2 route (finite floats, no silent truncation)."""
    if value is None or value == "":
        raise ValueError("empty value")
    kind = spec.dtype.kind
    if kind == "f":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return number
    if kind in "iu":
        if isinstance(value, float) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if kind == "b":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"{value!r} is not a boolean (true/false/1/0)")
    return value if isinstance(value, str) else str(value)


def _open_text(path: Path):
    # newline='' is what the csv module needs for quoted fields with line breaks.
    return path.open(encoding="utf-8", newline="")


def _parquet_file(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputFormatError("--input-format parquet needs pyarrow: install model-api[batch]") from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for a file that is not Parquet
        raise InputFormatError(f"{path.name} is not a readable Parquet file: {exc}") from None
