"""Command-line entry point: one sub-command per module in this package.

Every module in this package is a sub-command named after it (``_`` becomes ``-``). It defines
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed namespace and returning an exit code. Errors the
user can act on leave as one line on stderr with exit code 2, never as a traceback; an internal
error leaves one line that says where its traceback was logged, with exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from engine.core.errors import LucidaError
from engine.core.log import TRACEBACK_NOTE, internal_error_line

#: Sub-command names, found without importing the modules, so ``main.py`` starts fast.
COMMANDS: tuple[str, ...] = tuple(
    sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.ispkg)
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="Lucida: see why an image classifier decided what it decided.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"engine.cli.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command and return its exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on bad input or usage, 1 when some inputs of many failed.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LucidaError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("LUCIDA_DEBUG"):
            raise
        # The traceback goes to the log file (engine.core.log), the user gets one line.
        line = internal_error_line(exc, f"command {args.command}")
        fix = ("report it with that file" if TRACEBACK_NOTE in line
               else "rerun with LUCIDA_DEBUG=1 and report the traceback")
        print(f"error: {line}. Fix: {fix}", file=sys.stderr)
        return 1
