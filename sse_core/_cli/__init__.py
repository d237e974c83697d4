"""The ``sse-core`` command line (floor 4, an edge: it reads stdin, writes the terminal and
opens sockets).

Each command is a module of this package with ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them, and the command's name is its module's.
The modules import the adapters only inside ``run``, so that ``--help`` and
``python -m sse_core`` work on an install without the ``http`` extra.

Exit codes: 0 the command did what was asked; 1 the stream or the input failed (a refused
response, the backoff gave up, a command that exited non-zero); 2 a usage error (argparse's
own code, also for an option the installed extras cannot honour); 130 interrupted (Ctrl-C).
A command may define more (``check`` grades with 0, 1 and 2; see ``docs/cli.rst``).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from .._version import __version__
from . import check, listen, serve
from ._common import Exit

__all__ = ["COMMANDS", "Exit", "build_parser", "command_name", "main"]

#: The command modules, in the order ``--help`` lists them.
COMMANDS: tuple[ModuleType, ...] = (listen, serve, check)


def command_name(module: ModuleType) -> str:
    """The name a command module is called by: its module's own name."""
    return module.__name__.rsplit(".", 1)[-1]


def build_parser(prog: str = "sse-core") -> argparse.ArgumentParser:
    """The parser of every command, each one's options on its subparser."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Server-Sent Events on the command line: listen to a stream, serve "
        "lines as one, check an endpoint against the spec. Exit codes: 0 ok, 1 the stream "
        "failed (check: warnings with --strict), 2 usage (check: a failure), 130 Ctrl-C.",
    )
    parser.add_argument("--version", action="version", version=f"sse_core {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None, *, prog: str = "sse-core") -> int:
    """Run one command: ``sse-core COMMAND [options]`` (the console script).

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).
        prog: The program name shown in usage and errors.

    Returns:
        The process exit status (see the module's docstring).
    """
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.subcommand is None:
        parser.print_help(sys.stderr)
        return Exit.USAGE
    for module in COMMANDS:
        if command_name(module) == args.subcommand:
            status: int = module.run(args)
            return status
    raise AssertionError(f"unknown command {args.subcommand!r}")  # argparse refused it already
