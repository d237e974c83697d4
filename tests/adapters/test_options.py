"""The adapters' options records: every field checked on construction, with the field named."""

from __future__ import annotations

import math
import ssl
from typing import Any

import pytest

from sse_core import InvalidConfigError
from sse_core.adapters import ClientOptions, ServerOptions

BAD_CLIENT: list[tuple[str, Any]] = [
    ("ssl_context", "tls"),
    ("connect_timeout", 0),
    ("connect_timeout", -1.0),
    ("connect_timeout", math.nan),
    ("connect_timeout", True),
    ("max_redirects", -1),
    ("max_redirects", 1.0),
    ("read_size", 0),
    ("max_head_size", 1023),
]
BAD_SERVER: list[tuple[str, Any]] = [
    ("path", "events"),
    ("path", b"/events"),
    ("max_queued_bytes", 0),
    ("max_subscribers", 0),
    ("max_subscribers_per_key", -1),
    ("connection_key", "address"),
    ("max_replays", -1),
    ("max_replay_time", 0.0),
    ("max_replay_time", math.inf),
    ("busy_retry_delay", -0.5),
    ("request_timeout", None),
    ("send_timeout", 0),
]


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [(ClientOptions, *case) for case in BAD_CLIENT]
    + [(ServerOptions, *case) for case in BAD_SERVER],
)
def test_bad_options_are_refused(options: type, field: str, value: Any) -> None:
    """An option out of range or of the wrong type is an InvalidConfigError (also a
    ValueError) whose message names the field."""
    with pytest.raises(InvalidConfigError, match=field) as info:
        options(**{field: value})
    assert isinstance(info.value, ValueError)


def test_edge_values_are_accepted() -> None:
    """The smallest values each field allows, and None where it means "no bound"."""
    client = ClientOptions(ssl_context=ssl.create_default_context(), connect_timeout=None,
                           max_redirects=0, read_size=1, max_head_size=1024)
    assert client.max_head_size == 1024
    server = ServerOptions(path=None, max_queued_bytes=1, max_subscribers=None,
                           max_subscribers_per_key=1, connection_key=lambda r, a: None,
                           max_replays=0, max_replay_time=0.001, busy_retry_delay=0,
                           request_timeout=0.5, send_timeout=None)
    assert server.retry_after == 0
    assert ServerOptions(busy_retry_delay=2.1).retry_after == 3
