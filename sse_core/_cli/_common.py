"""What the commands share (floor 4): the exit codes, ``-H`` header parsing, and status
lines on stderr."""

from __future__ import annotations

import argparse
import enum
import ssl
import sys
import time

__all__ = [
    "Exit",
    "Status",
    "header",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "tls_context",
]

class Exit(enum.IntEnum):
    """The exit codes every command shares (a command may add its own meanings)."""

    #: The command did what was asked.
    OK = 0
    #: The stream or the input failed (refused, gave up, the fed command failed).
    FAILED = 1
    #: A usage error: argparse's own code, also for an option the installed extras lack.
    USAGE = 2
    #: Interrupted by Ctrl-C (SIGINT), as shells report it (128 + 2).
    INTERRUPTED = 130


def header(text: str) -> tuple[str, str]:
    """An ``-H 'Name: value'`` option as a ``(name, value)`` pair.

    Raises:
        argparse.ArgumentTypeError: no colon, or an empty name.
    """
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', got {text!r}")
    return name.strip(), value.strip()


class Status:
    """Status lines on stderr, each stamped with the seconds since the command started."""

    def __init__(self, *, is_quiet: bool = False) -> None:
        self._started = time.monotonic()
        self._is_quiet = is_quiet

    def __call__(self, text: str) -> None:
        """Write one status line (unless quiet)."""
        if not self._is_quiet:
            elapsed = time.monotonic() - self._started
            print(f"[{elapsed:7.2f}s] {text}", file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    """An option's whole number, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An option's number of seconds, more than 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An option's number of seconds, 0 or more."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number, 0 or more, got {text}")
    return value


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context ``--insecure`` / ``--cacert`` ask for, or ``None`` (the system's).

    Raises:
        OSError: the CA file cannot be read.
        ssl.SSLError: it holds no certificate.
    """
    if not args.insecure and args.cacert is None:
        return None
    context = ssl.create_default_context(cafile=args.cacert)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
