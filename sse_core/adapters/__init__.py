"""Adapters (floor 4): the I/O edges that carry out what the sans-IO sessions decide.

Import one by name: :mod:`sse_core.adapters.asyncio`, :mod:`sse_core.adapters.trio`,
:mod:`sse_core.adapters.sync`, :mod:`sse_core.adapters.asgi` or :mod:`sse_core.adapters.wsgi`
(the last two also hold ``StreamResponse``, one request's stream in a web framework), or
the drivers over your own HTTP client, :mod:`sse_core.adapters.httpx` and
:mod:`sse_core.adapters.aiohttp`; they never import each other.
What they share is here: one options record per side (:class:`ClientOptions` for every
``EventSource``, :class:`ServerOptions` for every server), the counters many
``StreamResponse`` objects add to (:class:`ResponseCounters`), and the sans-IO HTTP/1.1 glue
(h11) that turns the sessions' actions into socket work, so that no adapter writes HTTP or
makes a protocol decision.
"""

from ._base import Report
from ._http import (
    BUSY_RETRY_AFTER,
    REDIRECT_STATUSES,
    STREAM_METHODS,
    ClientOutput,
    CloseConnection,
    Endpoint,
    HTTPClient,
    IncomingRequest,
    OpenConnection,
    Refusal,
    RequestRefused,
    ServerConnection,
    Write,
    endpoint_of,
    refusal_for,
)
from ._options import ClientOptions, ConnectionKey, ServerOptions, client_address
from ._response import ResponseCounters

__all__ = [
    "BUSY_RETRY_AFTER",
    "REDIRECT_STATUSES",
    "STREAM_METHODS",
    "ClientOptions",
    "ClientOutput",
    "CloseConnection",
    "ConnectionKey",
    "Endpoint",
    "HTTPClient",
    "IncomingRequest",
    "OpenConnection",
    "Refusal",
    "Report",
    "RequestRefused",
    "ResponseCounters",
    "ServerConnection",
    "ServerOptions",
    "Write",
    "client_address",
    "endpoint_of",
    "refusal_for",
]
