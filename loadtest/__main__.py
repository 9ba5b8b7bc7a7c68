"""`python -m loadtest <command>`: each command lives in its own module, which registers its sub-parser."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines register(subparsers), setting `func(args) -> int` on the parsers it adds.
COMMAND_MODULES = ("loadtest.load.runner", "loadtest.commands.predict", "loadtest.commands.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
