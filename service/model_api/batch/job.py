"""One shard from start to marker: resolve the input, count rows, score in batches, commit, or exit with a
code a Job's `podFailurePolicy` can act on.

Exit codes: 0 success (or the shard was already complete), 2 bad arguments or input format (never retried),
3 transient I/O (retried), 4 integrity (model or input digest mismatch, never retried), 5 the share of bad
rows exceeded `--max-error-rate`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from model_api import model_settings
from model_api.batch.inputs import (
    FORMATS,
    InputColumns,
    InputFormatError,
    Row,
    RowError,
    convert,
    count_rows,
    layout,
    read_rows,
)
from model_api.batch.outputs import Destination, LocalDirectory, read_marker, write_json
from model_api.batch.shards import PAD, Shard, shard_of
from model_api.fetch import fetch, file_sha256
from model_api.model import Model, OnnxModel
from model_api.storage import StorageError, redact

log = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE, EXIT_TRANSIENT, EXIT_INTEGRITY, EXIT_ERROR_RATE = 0, 2, 3, 4, 5
CLASS_NAME_FIELD = "class_name"
_SUFFIX_FORMATS = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl", "parquet": "parquet", "pq": "parquet"}
_MARKER_IDENTITY = ("shard", "shards", "start", "stop", "input_sha256", "model_version")


class BatchError(Exception):
    """Ends the shard with `exit_code`; the message names the problem."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class BatchOptions:
    input: str
    input_format: str | None
    output: str
    shard_index: int
    shard_count: int
    model_path: Path
    model_name: str
    model_version: str | None = None
    batch_rows: int = 1024
    max_error_rate: float = 0.0
    input_sha256: str | None = None
    model_sha256: str | None = None
    allow_insecure_http: bool = False
    allow_unverified: bool = False


@dataclass(frozen=True)
class ShardResult:
    shard: Shard
    scored: int
    errors: int
    skipped: bool  # the marker already described this shard: nothing was done
    seconds: float


def run(options: BatchOptions) -> int:
    """Score one shard and log one line with the outcome; return the exit code."""
    try:
        result = score_shard(options)
    except BatchError as error:
        log.error("batch shard %s/%s failed: %s", options.shard_index, options.shard_count, error)
        return error.exit_code
    shard = result.shard
    if result.skipped:
        log.info(
            "batch shard %s already complete (%s matches): nothing to do", shard.index, shard.marker_name
        )
    else:
        rate = result.scored / result.seconds if result.seconds > 0 else float("inf")
        log.info(
            "batch shard %s of %s: rows %s..%s, %s scored, %s errors, %.0f rows/s",
            shard.index, shard.count, shard.start, shard.stop - 1, result.scored, result.errors, rate,
        )  # fmt: skip
    return EXIT_OK


def score_shard(options: BatchOptions) -> ShardResult:
    started = time.perf_counter()
    _check_options(options)
    model = _load_model(options)
    assert model.signature is not None and model.info is not None
    try:
        destination = _destination(options.output)
        with _resolved_input(options) as input_path:
            return _score_input(options, model, destination, input_path, started)
    except StorageError as error:
        raise BatchError(error.exit_code, str(error)) from None


def _score_input(
    options: BatchOptions,
    model: Model,
    destination: Destination,
    input_path: Path,
    started: float,
) -> ShardResult:
    assert model.info is not None
    fmt = options.input_format or _format_from_suffix(input_path)
    columns = _layout(model, fmt)
    input_sha256 = file_sha256(input_path)
    if options.input_sha256 and input_sha256 != options.input_sha256.lower():
        raise BatchError(
            EXIT_INTEGRITY,
            f"input digest sha256:{input_sha256} does not match --input-sha256 {options.input_sha256}",
        )
    total = _io(lambda: count_rows(input_path, fmt), "counting the input rows")
    try:
        shard = shard_of(options.shard_index, options.shard_count, total)
    except ValueError as error:
        raise BatchError(EXIT_USAGE, str(error)) from None
    identity = {
        "shard": shard.index,
        "shards": shard.count,
        "start": shard.start,
        "stop": shard.stop,
        "input_sha256": input_sha256,
        "model_version": model.info.version,
    }
    try:
        if _already_complete(destination, shard, identity):
            return ShardResult(shard, 0, 0, True, time.perf_counter() - started)
        destination.remove(shard.marker_name)  # from here on the old marker no longer describes the part
        scored, errors = _score_and_commit(
            options, model, columns, input_path, fmt, shard, destination, identity
        )
    except InputFormatError as error:
        raise BatchError(EXIT_USAGE, str(error)) from None
    except OSError as error:
        raise BatchError(EXIT_TRANSIENT, f"I/O error while scoring the shard: {error}") from None
    return ShardResult(shard, scored, errors, False, time.perf_counter() - started)


def _score_and_commit(
    options: BatchOptions,
    model: Model,
    columns: tuple[InputColumns, ...],
    input_path: Path,
    fmt: str,
    shard: Shard,
    destination: Destination,
    identity: dict[str, Any],
) -> tuple[int, int]:
    error_budget = options.max_error_rate * shard.rows
    with destination.staging(f"{shard.index:0{PAD}d}") as staging:
        part_path, errors_path = staging / shard.part_name, staging / shard.errors_name
        scored = errors = 0
        with part_path.open("wb") as part, errors_path.open("wb") as bad:
            pending: list[Row] = []
            for item in read_rows(input_path, fmt, columns, shard.start, shard.stop):
                if isinstance(item, RowError):
                    errors += _write_errors(bad, [item])
                    if errors > error_budget:
                        break  # the shard fails whatever the remaining rows hold
                    continue
                pending.append(item)
                if len(pending) >= options.batch_rows:
                    written, rejected = _score(model, columns, pending, part)
                    scored, errors, pending = scored + written, errors + _write_errors(bad, rejected), []
            if pending and errors <= error_budget:
                written, rejected = _score(model, columns, pending, part)
                scored, errors = scored + written, errors + _write_errors(bad, rejected)
        if errors:
            destination.publish(errors_path, shard.errors_name)
        else:
            destination.remove(shard.errors_name)  # left by an earlier attempt on other data
        if errors > error_budget:
            destination.remove(shard.part_name)
            raise BatchError(
                EXIT_ERROR_RATE,
                f"{errors} bad rows of {shard.rows} exceed --max-error-rate {options.max_error_rate} "
                f"(reasons in {shard.errors_name})",
            )
        part_bytes, part_sha256 = part_path.stat().st_size, file_sha256(part_path)
        destination.publish(part_path, shard.part_name)
        marker = {
            **identity,
            "input": redact(options.input),
            "model_sha256": file_sha256(model_settings.resolve_path(options.model_path)[0]),
            "counts": {"rows": shard.rows, "scored": scored, "errors": errors},
            "part": shard.part_name,
            "part_bytes": part_bytes,
            "part_sha256": part_sha256,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        destination.publish(write_json(staging / shard.marker_name, marker), shard.marker_name)
    return scored, errors


def _score(
    model: Model, columns: tuple[InputColumns, ...], rows: list[Row], part: Any
) -> tuple[int, list[RowError]]:
    """Score a batch; if the model refuses it, score row by row so only the rows at fault are set aside."""
    batch = convert(rows, columns)
    if not batch.rows:
        return 0, batch.errors
    try:
        outputs = model.predict(batch.arrays)
    except Exception as exc:  # onnxruntime raises assorted types; one row at a time names the bad rows
        if len(batch.rows) == 1:
            return 0, [
                *batch.errors,
                RowError(batch.rows[0].row, f"the model refused the row: {_first_line(exc)}"),
            ]
        written, rejected = 0, list(batch.errors)
        for row in batch.rows:
            count, more = _score(model, columns, [row], part)
            written, rejected = written + count, rejected + more
        return written, rejected
    _write_predictions(model, batch.rows, outputs, part)
    return len(batch.rows), batch.errors


def _write_predictions(model: Model, rows: list[Row], outputs: dict[str, Any], part: Any) -> None:
    """One JSON object per row: `row`, each output by name, `class_name` for classifiers. Each output is
    serialized once for the whole batch and split into rows; an output that cannot be split safely (strings,
    more than two dimensions) takes the per-row path."""
    keys = list(outputs)
    columns = [_json_cells(array) for array in outputs.values()]
    if any(column is None for column in columns):
        _write_predictions_per_row(model, rows, outputs, part)
        return
    classes = model.info.classes if model.info is not None else None
    if classes is not None:
        names = [orjson.dumps(name) for name in classes.names]
        labels = outputs[classes.label_output].tolist()
        keys.append(CLASS_NAME_FIELD)
        columns.append([names[label] if 0 <= label < len(names) else b"null" for label in labels])
    template = b'{"row":%d' + b"".join(b"," + orjson.dumps(key) + b":%b" for key in keys) + b"}"
    numbers = [row.row for row in rows]
    part.write(b"\n".join([template % values for values in zip(numbers, *columns, strict=True)]))
    part.write(b"\n")


def _json_cells(array: Any) -> list[bytes] | None:
    """Each row's value of a numeric or boolean output of one or two dimensions as JSON, from one orjson
    call over the whole column (its text holds no quote, so splitting on its separators is safe)."""
    if array.dtype.kind not in "biuf" or array.ndim not in (1, 2) or len(array) == 0:
        return None
    try:
        text = orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    except orjson.JSONEncodeError:  # a dtype orjson does not serialize natively
        return None
    if array.ndim == 1:
        return text.split(b",")
    return [b"[" + cell + b"]" for cell in text[1:-1].split(b"],[")]


def _write_predictions_per_row(model: Model, rows: list[Row], outputs: dict[str, Any], part: Any) -> None:
    keys = ["row", *outputs]
    columns = [[row.row for row in rows], *(array.tolist() for array in outputs.values())]
    classes = model.info.classes if model.info is not None else None
    if classes is not None:
        names, labels = classes.names, outputs[classes.label_output].tolist()
        keys.append(CLASS_NAME_FIELD)
        columns.append([names[label] if 0 <= label < len(names) else None for label in labels])
    dumps = orjson.dumps
    part.write(
        b"\n".join([dumps(dict(zip(keys, values, strict=True))) for values in zip(*columns, strict=True)])
    )
    part.write(b"\n")


def _write_errors(stream: Any, errors: list[RowError]) -> int:
    for error in errors:
        stream.write(orjson.dumps({"row": error.row, "reason": error.reason}) + b"\n")
    return len(errors)


def _already_complete(destination: Destination, shard: Shard, identity: dict[str, Any]) -> bool:
    marker = read_marker(destination, shard.marker_name)
    if marker is None or any(marker.get(key) != identity[key] for key in _MARKER_IDENTITY):
        return False
    return destination.size(shard.part_name) == marker.get("part_bytes")


def _check_options(options: BatchOptions) -> None:
    if options.input_format is not None and options.input_format not in FORMATS:
        raise BatchError(EXIT_USAGE, f"--input-format must be one of {FORMATS}, got {options.input_format!r}")
    if options.batch_rows < 1:
        raise BatchError(EXIT_USAGE, f"--batch-rows must be at least 1, got {options.batch_rows}")
    if not 0 <= options.max_error_rate <= 1:
        raise BatchError(EXIT_USAGE, f"--max-error-rate must be in [0, 1], got {options.max_error_rate}")


def _load_model(options: BatchOptions) -> OnnxModel:
    onnx_file = model_settings.resolve_path(options.model_path)[0]
    if options.model_sha256 and onnx_file.is_file():
        actual = file_sha256(onnx_file)
        if actual != options.model_sha256.lower():
            raise BatchError(EXIT_INTEGRITY, f"model digest sha256:{actual} does not match --model-sha256")
    model = OnnxModel(options.model_path, options.model_name, version=options.model_version)
    if not model.load():
        raise BatchError(EXIT_USAGE, f"model {options.model_path} cannot be loaded: {model.error}")
    return model


def _layout(model: Model, fmt: str) -> tuple[InputColumns, ...]:
    assert model.signature is not None and model.info is not None
    try:
        return layout(model.signature, model.info.settings.features, fmt)
    except InputFormatError as error:
        raise BatchError(EXIT_USAGE, str(error)) from None


def _destination(output: str) -> Destination:
    if output.startswith("s3://"):
        from model_api.batch.s3_output import S3Prefix

        return S3Prefix(output)
    if "://" in output and not output.startswith("file://"):
        raise BatchError(EXIT_USAGE, f"--output must be a directory or s3:// prefix, got {redact(output)}")
    return LocalDirectory(Path(output.removeprefix("file://")))


@contextlib.contextmanager
def _resolved_input(options: BatchOptions) -> Iterator[Path]:
    """A local path to read: the input itself, or a verified download into a private temporary directory
    (the same fetch as a model's: --input-sha256 required for a remote URI unless --allow-unverified)."""
    uri = options.input
    if "://" not in uri or uri.startswith("file://"):
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise BatchError(EXIT_USAGE, f"--input {uri}: no such file")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="model-api-batch-input-") as directory:
        result = fetch(
            uri,
            Path(directory),
            sha256=options.input_sha256,
            allow_insecure_http=options.allow_insecure_http,
            allow_unverified=options.allow_unverified,
        )
        yield result.path


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = _SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        raise BatchError(EXIT_USAGE, f"cannot tell the format of {path.name}: pass --input-format")
    return fmt


def _io(action, doing: str):
    """Run `action`; an unreadable format is exit 2, any other OS error is transient (exit 3)."""
    try:
        return action()
    except BatchError:
        raise
    except InputFormatError as error:
        raise BatchError(EXIT_USAGE, str(error)) from None
    except UnicodeDecodeError as error:
        raise BatchError(
            EXIT_USAGE, f"the input is not UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise BatchError(EXIT_TRANSIENT, f"I/O error while {doing}: {error}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
