"""The command line: ``python -m metarec_core <command>`` (also installed as ``metarec``).

Each command group lives in its own module with a ``register(subparsers)`` function; handlers
import heavy engine code lazily so ``--help`` stays fast. Handlers return an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from metarec_core.errors import MetaRecError

_COMMAND_MODULES = (
    "metarec_core.cli.data_cmds",
    "metarec_core.cli.coldstart_cmds",
    "metarec_core.cli.category_cmds",
    "metarec_core.cli.model_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command group registered."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="metarec",
        description="MetaRec: few-shot adaptation for cold-start users and new product categories.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument(
        "--db", default=None, help="path of the DuckDB store (default data/metarec.duckdb)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 2 user error, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MetaRecError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 1
