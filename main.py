"""Lucida launcher: sub-commands go to the engine CLI, everything else opens the GUI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the engine CLI or the GUI and return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    from engine.cli import COMMANDS

    if argv and argv[0] in COMMANDS:
        from engine.cli import main as cli_main

        return cli_main(argv)
    from gui.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
