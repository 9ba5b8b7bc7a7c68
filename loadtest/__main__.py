"""`python -m loadtest <command>`: one module per command under loadtest/commands/.

Only the chosen command's module is imported, so `predict` and `size` never load locust (and its gevent
patching), matplotlib or the kubernetes client; `python -m loadtest --help` imports no command at all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command -> (module defining configure(parser), one-line help). Each module's configure() adds the
# command's arguments and sets `func(args) -> int`.
COMMANDS = {
    "run": ("loadtest.commands.run", "run a load shape against a URL and write a report"),
    "predict": ("loadtest.commands.predict", "predict the HPA's replicas for a load curve (no cluster)"),
    "size": ("loadtest.commands.size", "which CPU target and maxReplicas meet a p95 goal at peak"),
    "demo": (
        "loadtest.commands.demo",
        "render, start, load, measure, predict the prod HPA, write a report (make demo)",
    ),
    "canary": (
        "loadtest.commands.canary",
        "rehearse the canary with real nginx and Prometheus, no cluster (make canary)",
    ),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; `chosen`'s module is imported to configure its sub-parser (the others only list help)."""
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command_parser = subparsers.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module).configure(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(chosen).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
