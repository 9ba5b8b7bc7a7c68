"""The `model-api` command: serve, train, check."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from model_api import __version__
from model_api.settings import DEFAULT_MODEL_PATH, Settings, SettingsError, describe


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return args.func(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-api", description="The iris model service.")
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

    check = commands.add_parser(
        "check",
        help="smoke-test a running service (readiness, then one classification)",
        description="GET /readyz, then the reference classification; sends the API key when "
        "MODEL_API_API_KEY_FILE or MODEL_API_API_KEY is set.",
    )
    check.add_argument("--url", required=True, help="base URL, e.g. http://model-api:8080")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default: 5)")
    check.set_defaults(func=_check)
    return parser


def _settings_table() -> str:
    rows = describe()
    width = max(len(name) for name, _, _ in rows)
    lines = ["environment variables (defaults in brackets):"]
    for name, default, text in rows:
        lines.append(f"  {name:<{width}}  {text} [{default or 'unset'}]")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"model-api: error: {error}", file=sys.stderr)
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


def _check(args: argparse.Namespace) -> int:
    from model_api.check import run_checks

    return run_checks(args.url, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
