"""sse_core: sans-IO Server-Sent Events.

A spec-exact incremental ``text/event-stream`` parser, an injection-safe serializer, and pure
state objects for reliable streaming. No I/O, no clocks, no randomness inside: the caller
passes bytes, ``now`` and a random source, and carries out what comes back.
"""

from ._accelerator import ACCELERATED
from ._actions import (
    GAP_EVENT_TYPE,
    POSITION_EVENT_TYPE,
    Action,
    ClientState,
    Connect,
    Deliver,
    Disconnect,
    ReadyState,
    ReportDropped,
    ReportGap,
    ReportSequenceGap,
    ReportStatus,
    ReportTransport,
    Request,
    Send,
    SendHead,
    Transport,
)
from ._backoff import (
    Backoff,
    BackoffConfig,
    BackoffState,
    GiveUp,
    GiveUpReason,
    Jitter,
    Reconnect,
)
from ._broadcast import Broadcaster, Subscriber
from ._chunking import (
    CHUNK_EVENT,
    AssemblerOutput,
    ChunkAssembler,
    ChunkConfig,
    ChunkLimitExceeded,
    DropReason,
    MessageDropped,
    split_message,
)
from ._client import TRANSITIONS, ClientConfig, ClientInput, ClientSession
from ._compression import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    Compressor,
    Decompressor,
    negotiate_encoding,
)
from ._dedup import DedupConfig, DedupWindow
from ._errors import (
    InvalidConfigError,
    InvalidFieldError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    SSEError,
)
from ._events import Comment, Event, Retry, StreamItem
from ._longpoll import (
    DEFAULT_MAX_RESPONSE_SIZE,
    LONG_POLL_CONTENT_TYPE,
    LongPollConfig,
    LongPollResponse,
    LongPollSession,
    LongPollState,
)
from ._metrics import BufferGauge, DurationSummary, Metrics
from ._parser import (
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_LINE_LENGTH,
    MAX_RETRY_MILLISECONDS,
    EndOfStream,
    Parser,
)
from ._replay import Replay, ReplayConfig, ReplayLog, ReplayResult, StoredEvent, TooOld, UnknownId
from ._sequencer import Delivery, Gap, GapReason, Sequencer, SequencerConfig, SequencerRecord
from ._serializer import HEARTBEAT, serialize, serialize_event, serialize_many
from ._server import ServerConfig, ServerSession, ServerState
from ._timers import HeartbeatScheduler, StallDetector
from ._types import Headers, RandomSource
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
    # shared types
    "Headers",
    "RandomSource",
    # wire records
    "Event",
    "Comment",
    "Retry",
    "StreamItem",
    # parser
    "Parser",
    "EndOfStream",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_EVENT_SIZE",
    "MAX_RETRY_MILLISECONDS",
    # serializer
    "serialize",
    "serialize_event",
    "serialize_many",
    "HEARTBEAT",
    # state objects: reconnection backoff
    "Backoff",
    "BackoffConfig",
    "BackoffState",
    "Broadcaster",
    "Jitter",
    "Reconnect",
    "GiveUp",
    "GiveUpReason",
    # state objects: dedup window
    "DedupWindow",
    "DedupConfig",
    # state objects: sequencer
    "Sequencer",
    "SequencerConfig",
    "SequencerRecord",
    "Delivery",
    "Gap",
    "GapReason",
    # state objects: replay log
    "ReplayLog",
    "ReplayConfig",
    "ReplayResult",
    "Replay",
    "StoredEvent",
    "TooOld",
    "UnknownId",
    # state objects: chunked messages
    "split_message",
    "ChunkAssembler",
    "ChunkConfig",
    "ChunkLimitExceeded",
    "MessageDropped",
    "DropReason",
    "AssemblerOutput",
    "CHUNK_EVENT",
    # state objects: timers
    "StallDetector",
    "HeartbeatScheduler",
    # state objects: metrics
    "Metrics",
    "DurationSummary",
    "BufferGauge",
    # sessions: actions
    "Action",
    "Connect",
    "Disconnect",
    "Deliver",
    "ReportStatus",
    "ReportGap",
    "ReportSequenceGap",
    "ReportDropped",
    "ReportTransport",
    "Transport",
    "Request",
    "Send",
    "SendHead",
    "ClientState",
    "ReadyState",
    "GAP_EVENT_TYPE",
    "POSITION_EVENT_TYPE",
    # sessions: client
    "ClientSession",
    "ClientConfig",
    "ClientInput",
    "TRANSITIONS",
    # sessions: server
    "ServerSession",
    "ServerConfig",
    "ServerState",
    "Subscriber",
    # sessions: long-polling fallback
    "LongPollSession",
    "LongPollConfig",
    "LongPollState",
    "LongPollResponse",
    "LONG_POLL_CONTENT_TYPE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    # sessions: compression
    "Compressor",
    "Decompressor",
    "negotiate_encoding",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
]
