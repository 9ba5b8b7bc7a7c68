"""The `model-api batch` subcommand: arguments and help. Heavy imports wait until the command runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in every pod of an Indexed Job

EPILOG = """\
exit codes (what a Job's podFailurePolicy acts on):
  0  the shard is complete (or was already: its _SUCCESS marker matched, nothing was redone)
  2  bad arguments, model or input format: never retried
  3  transient I/O (reading the input, writing the output): retried
  4  integrity: the model or input digest does not match --model-sha256 / --input-sha256: never retried
  5  the share of bad rows exceeded --max-error-rate (reasons in errors-<i>-of-<n>.jsonl)

The model is MODEL_API_MODEL_PATH (an .onnx file or a directory with model.onnx and model-settings.json),
as for `model-api serve`. Shard i of n scores the contiguous rows [i*N/n, (i+1)*N/n) and writes
part-<i>-of-<n>.jsonl (one JSON object per row: "row", one field per model output, "class_name" for
classifiers), then the _SUCCESS-<i> marker, each written whole under a temporary name first.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch",
        help="score one shard of a dataset (CSV, JSON Lines, Parquet) with the model",
        description="Score one contiguous shard of a dataset, exactly once, with the served model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument(
        "--input",
        required=True,
        help="a path, file://, https:// or s3:// URI (remote: fetched and verified as by `model-api fetch`)",
    )
    batch.add_argument(
        "--input-format", choices=("csv", "jsonl", "parquet"), help="default: from the file name's suffix"
    )
    batch.add_argument("--input-sha256", help="expected SHA-256 of the input (exit 4 on mismatch)")
    batch.add_argument("--output", required=True, help="a directory or an s3://bucket/prefix")
    batch.add_argument("--shard-index", type=int, help=f"this shard, 0-based (default: ${SHARD_INDEX_ENV})")
    batch.add_argument("--shard-count", type=int, default=1, help="number of shards (default: 1)")
    batch.add_argument("--batch-rows", type=int, default=1024, help="rows per model call (default: 1024)")
    batch.add_argument(
        "--max-error-rate",
        type=float,
        default=0.0,
        help="largest share of bad rows a shard may set aside and still succeed (default: 0)",
    )
    batch.add_argument("--model-sha256", help="expected SHA-256 of the ONNX file (exit 4 on mismatch)")
    batch.add_argument(
        "--allow-insecure-http", action="store_true", help="accept an http:// input (default: https only)"
    )
    batch.add_argument(
        "--allow-unverified",
        action="store_true",
        help="read a remote input without --input-sha256 (development only; logged as a warning)",
    )
    batch.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model_api.batch.job import EXIT_USAGE, BatchOptions
    from model_api.batch.job import run as run_shard
    from model_api.logs import configure_logging
    from model_api.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"model-api batch: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format)
    index = args.shard_index
    if index is None:
        raw = os.environ.get(SHARD_INDEX_ENV)
        if raw is None or not raw.isdigit():
            print(f"model-api batch: error: pass --shard-index or set ${SHARD_INDEX_ENV}", file=sys.stderr)
            return EXIT_USAGE
        index = int(raw)
    options = BatchOptions(
        input=args.input,
        input_format=args.input_format,
        output=args.output,
        shard_index=index,
        shard_count=args.shard_count,
        model_path=Path(settings.model_path),
        model_name=settings.model_name,
        model_version=getattr(settings, "model_version", None),
        batch_rows=args.batch_rows,
        max_error_rate=args.max_error_rate,
        input_sha256=args.input_sha256,
        model_sha256=args.model_sha256,
        allow_insecure_http=args.allow_insecure_http,
        allow_unverified=args.allow_unverified,
    )
    return run_shard(options)
