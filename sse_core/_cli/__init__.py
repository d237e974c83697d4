"""The ``sse-core`` command line (edge): ``main(argv)`` dispatches to one module per command.

Each command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import check

__all__ = ["main"]

COMMANDS = (check,)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="sse-core", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code
