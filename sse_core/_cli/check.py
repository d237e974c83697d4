"""``sse-core check URL``: grade an SSE endpoint against the spec, item by item (edge).

It connects several times within ``--duration`` seconds (:mod:`._check_probe`), judges what
it saw (:mod:`._check_judge`) and prints one finding per item -- pass, warn or fail, with the
bytes or header fields seen and a one-line fix -- then a score. Exit code: 0 when nothing
failed (and, with ``--strict``, nothing warned), 1 for warnings with ``--strict``, 2 for a
failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import ssl
import sys
from urllib.parse import urlsplit

from ._check_judge import judge
from ._check_records import Report
from ._common import Exit, header, positive_float, tls_context

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` command to the command line's subcommands."""
    parser = subparsers.add_parser(
        "check",
        help="grade an SSE endpoint: headers, buffering, heartbeats, resumption, wire",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("url", help="the event stream's http:// or https:// URL")
    parser.add_argument("--duration", type=positive_float, default=10.0, metavar="SECONDS",
                        help="bound on the whole check (default 10)")
    parser.add_argument("--idle-timeout", type=positive_float, default=30.0, metavar="SECONDS",
                        help="the proxy idle timeout heartbeats are judged against "
                        "(default 30)")
    parser.add_argument("--origin", help="check CORS for a page on this origin")
    parser.add_argument("-H", "--header", dest="headers", action="append", type=header,
                        default=[], metavar="'NAME: VALUE'",
                        help="add a header field to every request (repeatable)")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the server's TLS certificate")
    parser.add_argument("--cacert", metavar="FILE", help="trust the CA certificates in FILE")
    parser.add_argument("--http2", action="store_true",
                        help="make every request over HTTP/2 (needs h2): offered by ALPN "
                        "over https, with prior knowledge (h2c) over http")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit with 1 when an item warns")


def run(args: argparse.Namespace) -> int:
    """Check ``args.url`` and print the report.

    Returns:
        The exit code: 0, 1 (warnings with ``--strict``) or 2 (a failure, or bad arguments).
    """
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(f"sse-core check: not an http(s) URL: {args.url!r}", file=sys.stderr)
        return Exit.USAGE
    try:
        from ._check_probe import probe  # h11: the http extra
    except ModuleNotFoundError as error:
        print(f"sse-core check needs the http extra (pip install 'sse-core[http]'): {error}",
              file=sys.stderr)
        return Exit.USAGE
    if args.http2 and importlib.util.find_spec("h2") is None:
        print("sse-core check: --http2 needs h2 (pip install h2)", file=sys.stderr)
        return Exit.USAGE
    try:
        context = None
        if parts.scheme == "https":  # the system's trust store unless told otherwise
            context = tls_context(args) or ssl.create_default_context()
            if args.http2:
                context.set_alpn_protocols(["h2"])
    except OSError as error:
        print(f"sse-core check: --cacert: {error}", file=sys.stderr)
        return Exit.USAGE
    observation = probe(
        args.url, duration=args.duration, idle_timeout=args.idle_timeout,
        origin=args.origin, headers=args.headers, context=context, is_http2=args.http2,
    )
    report = Report(url=args.url, duration=args.duration, findings=judge(observation))
    print(report.to_json(is_strict=args.strict) if args.json else report.to_text())
    return report.exit_code(is_strict=args.strict)
