"""The launchdarkly-eventsource client (``SSEClient``), driven by tests/peers/test_launchdarkly.py.

Usage: python ld_eventsource_client.py URL COUNT

Prints one JSON line per happening: ``{"open": true}`` for each connection, ``{"type", "id",
"data"}`` for each event it yields (it yields every event, whatever its type: the
application filters), ``{"error": ...}`` for each fault. Reconnects after every fault, and
exits 0 after COUNT events of the types ``message`` and ``tick``.
"""

from __future__ import annotations

import json
import sys

from ld_eventsource import SSEClient
from ld_eventsource.actions import Event, Fault, Start
from ld_eventsource.config import ConnectStrategy, ErrorStrategy


def main() -> int:
    """Read the stream at ``argv[1]`` until ``argv[2]`` application events came."""
    url, count = sys.argv[1], int(sys.argv[2])
    client = SSEClient(
        connect=ConnectStrategy.http(url),
        initial_retry_delay=0.1,
        error_strategy=ErrorStrategy.always_continue(),
    )
    received = 0
    try:
        for item in client.all:
            if isinstance(item, Start):
                record: dict[str, object] = {"open": True}
            elif isinstance(item, Fault):
                record = {"error": repr(item.error)}
            elif isinstance(item, Event):
                record = {"type": item.event, "id": item.last_event_id or "", "data": item.data}
            else:
                continue
            print(json.dumps(record), flush=True)
            if isinstance(item, Event) and item.event in ("message", "tick"):
                received += 1
                if received >= count:
                    return 0
    finally:
        client.close()
    return 1


if __name__ == "__main__":
    sys.exit(main())
