"""The `model-api` command: serve, train, package, check, fetch, batch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from model_api import __version__
from model_api.batch import command as batch_command
from model_api.settings import DEFAULT_MODEL_PATH, Settings, SettingsError, describe


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return args.func(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-api", description="The model service.")
    parser.add_argument("--version", action="version", version=f"model-api {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API",
        description="Serve the seed API, KServe V1, Open Inference Protocol V2 and the operations routes.",
        epilog=_settings_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to bind (default: MODEL_API_HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default: MODEL_API_PORT, PORT or 8080)")
    serve.set_defaults(func=_serve)

    train = commands.add_parser("train", help="train the classifier and export the ONNX artifact")
    train.add_argument(
        "--out", type=Path, default=DEFAULT_MODEL_PATH, help=f"output path (default: {DEFAULT_MODEL_PATH})"
    )
    train.set_defaults(func=_train)

    _add_package(commands)

    check = commands.add_parser(
        "check",
        help="smoke-test a running service (readiness, model metadata, one inference)",
        description="GET /readyz, the V2 model metadata, then one V2 inference of zeros shaped by that "
        "metadata (and the reference classification for the iris model); sends the API key when "
        "MODEL_API_API_KEY_FILE or MODEL_API_API_KEY is set.",
    )
    check.add_argument("--url", required=True, help="base URL, e.g. http://model-api:8080")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default: 5)")
    check.set_defaults(func=_check)

    _add_fetch(commands)
    batch_command.add_parser(commands)
    return parser


def _settings_table() -> str:
    rows = describe()
    width = max(len(name) for name, _, _ in rows)
    lines = ["environment variables (defaults in brackets):"]
    for name, default, text in rows:
        lines.append(f"  {name:<{width}}  {text} [{default or 'unset'}]")
    return "\n".join(lines)


def _settings_from_env() -> Settings | None:
    """The settings, or None once the bad variable is named on stderr (the command then exits 2)."""
    try:
        return Settings.from_env()
    except SettingsError as error:
        print(f"model-api: error: {error}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    settings = _settings_from_env()
    if settings is None:
        return 2
    if args.port is not None and not 1 <= args.port <= 65535:
        print(f"model-api: error: --port {args.port} must be between 1 and 65535", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = replace(settings, **overrides)

    from model_api.logs import configure_logging  # imported here: train and check stay light
    from model_api.server import serve

    configure_logging(settings.log_level, settings.log_format)
    return serve(settings)


def _train(args: argparse.Namespace) -> int:
    from model_api.train import train

    metadata = train(args.out)
    print(f"wrote {args.out} (training accuracy {metadata['training_accuracy']})")
    return 0


def _add_package(commands: argparse._SubParsersAction) -> None:
    package = commands.add_parser(
        "package",
        help="package a scikit-learn model (or an ONNX file) as model.onnx + model-settings.json",
        description=(
            "Convert a fitted scikit-learn estimator or pipeline saved with joblib to ONNX, check that "
            "onnxruntime gives scikit-learn's answers on sample rows (the max abs difference of every output "
            "is printed; above --tolerance nothing is written, exit 1), and write DIR/model.onnx (settings "
            "embedded) and DIR/model-settings.json. With --onnx, add settings to an existing ONNX file. "
            "WARNING: loading a joblib/pickle file runs code from it; package only files you made or trust."
        ),
    )
    package.add_argument("estimator", nargs="?", type=Path, help="the joblib file of a fitted estimator")
    package.add_argument("--onnx", type=Path, help="an existing ONNX file to add settings to (no estimator)")
    package.add_argument("--out", type=Path, required=True, help="output directory")
    package.add_argument("--name", help="model name recorded in the settings")
    package.add_argument("--version", dest="model_version", help="model version (letters, digits, . _ -)")
    package.add_argument("--description", help="one line saying what the model does")
    package.add_argument("--features", default="", help="comma-separated feature names")
    package.add_argument("--class-names", default="", help="comma-separated class names, by class index")
    package.add_argument(
        "--describe-input", action="append", default=[], metavar="NAME=TEXT", help="describe one input"
    )
    package.add_argument("--sample", type=Path, help="rows for the parity check: .npy, or CSV")
    package.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest max abs difference accepted (default: 1e-3)"
    )
    package.set_defaults(func=_package)


def _package(args: argparse.Namespace) -> int:
    from model_api import package

    if (args.estimator is None) == (args.onnx is None):
        print(
            "model-api package: error: give an estimator file or --onnx FILE (one of them)", file=sys.stderr
        )
        return 2
    try:
        settings = package.settings_from_args(
            name=args.name,
            version=args.model_version,
            description=args.description,
            features=[f.strip() for f in args.features.split(",") if f.strip()],
            class_names=[c.strip() for c in args.class_names.split(",") if c.strip()],
            input_descriptions=args.describe_input,
        )
        if args.onnx is not None:
            package.package_onnx(args.onnx, args.out, settings)
            return 0
        sample = package.read_sample(args.sample) if args.sample is not None else None
        package.package_estimator(args.estimator, args.out, settings, sample=sample, tolerance=args.tolerance)
    except package.PackageError as error:
        print(f"model-api package: error: {error}", file=sys.stderr)
        return 2
    except package.ParityError as error:
        print(f"model-api package: refused: {error}", file=sys.stderr)
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    from model_api.check import run_checks

    return run_checks(args.url, timeout=args.timeout)


def _add_fetch(commands: argparse._SubParsersAction) -> None:
    fetch = commands.add_parser(
        "fetch",
        help="download a model artifact, verified, into a directory (the chart's init container)",
        description="Download URI to DEST/<last path segment of URI>: streamed into a temporary file in DEST "
        "while hashed, fsynced, compared with --sha256, then renamed, so no partial or unverified file ever "
        "carries the final name. A marker beside it (<name>.fetched.json) makes a rerun on the same volume "
        "a cache hit with no network I/O. URI: https://..., http://... (with --allow-insecure-http), "
        "s3://bucket/key (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE in "
        "~/.aws/credentials, endpoint from AWS_ENDPOINT_URL, CA bundle from AWS_CA_BUNDLE), file:///path "
        "or a plain path. Logs one line for the outcome (MODEL_API_LOG_FORMAT, MODEL_API_LOG_LEVEL).",
        epilog="exit codes: 0 done or cache hit; 2 bad arguments or configuration; 3 transfer failed after "
        "retries (network, HTTP status, timeout, truncated body); 4 integrity (digest mismatch, size over "
        "--max-bytes); 143 stopped by SIGTERM (no temporary file left)",
    )
    fetch.add_argument("--uri", required=True, help="where the artifact is")
    fetch.add_argument("--dest", required=True, type=Path, help="directory to write it into")
    fetch.add_argument("--sha256", help="expected SHA-256 (hex); required for remote URIs")
    fetch.add_argument(
        "--allow-unverified",
        action="store_true",
        help="fetch a remote URI with no --sha256 (development only; logged as a warning)",
    )
    fetch.add_argument("--allow-insecure-http", action="store_true", help="accept plain http:// URIs")
    fetch.add_argument("--connect-timeout", type=float, default=10.0, help="seconds (default: 10)")
    fetch.add_argument("--read-timeout", type=float, default=30.0, help="seconds without data (default: 30)")
    fetch.add_argument(
        "--deadline",
        type=float,
        default=900.0,
        help="seconds for everything, retries included (default: 900)",
    )
    fetch.add_argument(
        "--max-bytes",
        type=_quantity,
        default="20Gi",
        help="size limit; k/M/G/Ki/Mi/Gi suffixes (default: 20Gi)",
    )
    fetch.add_argument("--retries", type=int, default=4, help="retries on transient errors (default: 4)")
    fetch.add_argument(
        "--backoff", type=float, default=1.0, help="first wait between attempts, doubling (default: 1)"
    )
    fetch.set_defaults(func=_fetch)


_QUANTITY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantity(text: str) -> int:
    """A byte count written as Kubernetes writes one (an emptyDir sizeLimit such as 2Gi)."""
    number = text.rstrip("kKMGi")
    unit = text[len(number) :]
    if not number.isdigit() or unit not in _QUANTITY_UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte count such as 500Mi or 2Gi")
    return int(number) * _QUANTITY_UNITS[unit]


def _fetch(args: argparse.Namespace) -> int:
    settings = _settings_from_env()  # for the log level and format
    if settings is None:
        return 2
    from model_api.fetch import run
    from model_api.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    limits = {
        "connect_timeout": args.connect_timeout,
        "read_timeout": args.read_timeout,
        "deadline": args.deadline,
        "max_bytes": args.max_bytes,
        "retries": args.retries,
        "backoff": args.backoff,
    }
    return run(
        args.uri,
        args.dest,
        sha256=args.sha256 or None,  # an empty value (a template with no digest) is no pin
        allow_insecure_http=args.allow_insecure_http,
        allow_unverified=args.allow_unverified,
        limits=limits,
    )


if __name__ == "__main__":
    sys.exit(main())
