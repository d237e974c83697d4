"""The client side of the network-namespace tests: run inside its own namespace.

An asyncio :class:`~sse_core.adapters.asyncio.EventSource` reads ``--url`` with short stall
and backoff settings and prints a JSON line for everything it reports, then exits once it has
the event numbered ``--last`` (see ``stream_server.py``) or at ``--deadline``:

* ``{"kind": "event", "t": <monotonic>, "id": <id>, "n": <n>}``;
* ``{"kind": "status", "t": ..., "state": "connecting" | "streaming" | ..., "reason": ...}``;
* ``{"kind": "gap", "t": ..., "last_event_id": ..., "reason": "too_old" | "unknown"}``;
* ``{"kind": "other", "t": ..., "repr": ...}`` for any other report;
* ``{"kind": "end", "t": ..., "why": "last" | "closed" | "deadline", "metrics": {...}}`` last,
  with the session's :meth:`~sse_core.Metrics.as_dict`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from sse_core import ClientConfig, Deliver, ReportGap, ReportStatus
from sse_core.adapters.asyncio import EventSource
from sse_core.state import BackoffConfig


def emit(kind: str, **fields: Any) -> None:
    """Print one JSON line, stamped with the monotonic clock (the namespaces share it)."""
    print(json.dumps({"kind": kind, "t": time.monotonic(), **fields}), flush=True)


async def read(source: EventSource, last: int) -> str:
    """Print every report until the event numbered ``last``; say why the reading ended."""
    async for report in source.reports():
        if isinstance(report, Deliver):
            n = json.loads(report.event.data)["n"]
            emit("event", id=report.event.id, n=n)
            if n >= last:
                return "last"
        elif isinstance(report, ReportStatus):
            emit("status", state=report.state.value, reason=report.reason)
        elif isinstance(report, ReportGap):
            emit("gap", last_event_id=report.last_event_id, reason=report.reason)
        else:
            emit("other", repr=repr(report))
    return "closed"


async def consume(args: argparse.Namespace) -> None:
    """Read the stream until the last event or the deadline; print the metrics."""
    config = ClientConfig(
        url=args.url,
        stall_timeout=args.stall,
        backoff=BackoffConfig(base_delay=args.backoff_initial, max_delay=args.backoff_max),
    )
    async with EventSource(config) as source:
        try:
            why = await asyncio.wait_for(read(source, args.last), args.deadline)
        except asyncio.TimeoutError:
            why = "deadline"
    emit("end", why=why, metrics=source.metrics.as_dict())


def main() -> None:
    """Parse the arguments and consume."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--last", type=int, required=True, help="n of the last event")
    parser.add_argument("--stall", type=float, required=True)
    parser.add_argument("--backoff-initial", type=float, required=True)
    parser.add_argument("--backoff-max", type=float, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    asyncio.run(consume(parser.parse_args()))


if __name__ == "__main__":
    main()
