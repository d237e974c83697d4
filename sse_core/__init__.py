"""sse_core: sans-IO Server-Sent Events.

A spec-exact incremental ``text/event-stream`` parser, an injection-safe serializer, and
sessions that make a stream reliable. No I/O, no clocks, no randomness inside: the caller
passes bytes, ``now`` and a random source, and carries out what comes back.

The root holds what most users need: the records, the parser and the serializer, the errors,
the sessions with their configs and actions. The state objects the sessions are built from
(backoff, dedup, sequencer, replay log, chunking, timers, compression) and the sessions'
tables and constants are in :mod:`sse_core.state`; the I/O edges in :mod:`sse_core.adapters`;
test tooling in :mod:`sse_core.testing`.
"""

from ._accelerator import ACCELERATED
from ._actions import (
    Action,
    ClientState,
    Connect,
    Deliver,
    DeliverBatch,
    Disconnect,
    EndCause,
    ReportDropped,
    ReportFailure,
    ReportGap,
    ReportStale,
    ReportStatus,
    ReportTransport,
    Request,
    Send,
    SendHead,
    Transport,
)
from ._audit import AuditTrail
from ._broadcast import Broadcaster
from ._client import ClientSession
from ._config import ClientConfig, LongPollConfig, ServerConfig
from ._errors import (
    ClockError,
    GapError,
    HTTPStatusError,
    InvalidConfigError,
    InvalidFieldError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    SSEError,
    StreamError,
)
from ._events import Comment, Event, Retry, StreamItem
from ._longpoll import LongPollSession
from ._metrics import Metrics
from ._parser import EndOfStream, Parser
from ._serializer import HEARTBEAT, serialize, serialize_event, serialize_many
from ._server import ServerSession
from ._types import RandomSource
from ._version import __version__

__all__ = [
    "__version__",
    "ACCELERATED",
    # errors
    "SSEError",
    "LocalProtocolError",
    "InvalidFieldError",
    "InvalidConfigError",
    "RemoteProtocolError",
    "LimitExceeded",
    "ClockError",
    "StreamError",
    "HTTPStatusError",
    "GapError",
    # wire records
    "Event",
    "Comment",
    "Retry",
    "StreamItem",
    # parser and serializer
    "Parser",
    "EndOfStream",
    "serialize",
    "serialize_event",
    "serialize_many",
    "HEARTBEAT",
    # sessions
    "ClientSession",
    "ClientConfig",
    "ServerSession",
    "ServerConfig",
    "Broadcaster",
    "LongPollSession",
    "LongPollConfig",
    "Metrics",
    "AuditTrail",
    # what sessions return
    "Action",
    "Connect",
    "Disconnect",
    "Deliver",
    "DeliverBatch",
    "ReportStatus",
    "ReportGap",
    "ReportDropped",
    "ReportStale",
    "ReportTransport",
    "ReportFailure",
    "EndCause",
    "Request",
    "Send",
    "SendHead",
    "ClientState",
    "Transport",
    # the random source a client session takes
    "RandomSource",
]
