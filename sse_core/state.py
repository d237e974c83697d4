"""The state objects sse_core's sessions are built from, for building your own.

Each is a pure object: inputs carry ``now`` (and a random source where there is chance), and
outputs are plain records. The sessions in :mod:`sse_core` combine them; use them directly to
give another transport the same resilience, or to test a policy alone. Also here: the
sessions' transition tables and state enums, the records they hand out that applications
rarely name (a broadcaster's ``Subscriber``, a long-poll answer), and the library's wire
constants and defaults.
"""

from ._actions import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, ReadyState
from ._audit import DEFAULT_MAX_AUDIT_RECORDS, AuditKind, AuditRecord
from ._backoff import Backoff, BackoffConfig, BackoffState, GiveUp, GiveUpReason, Jitter, Reconnect
from ._batching import BatchConfig, Batcher
from ._broadcast import Fanout, Poller, Subscriber
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
from ._client import TRANSITIONS, ClientInput
from ._compression import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    Compressor,
    Decompressor,
    negotiate_encoding,
)
from ._dedup import DedupConfig, DedupWindow
from ._errors import IdempotencyConflictError, LogUnavailableError
from ._health import HealthConfig, HealthMonitor, HealthRule, RaiseAlert, ResolveAlert
from ._longpoll import (
    DEFAULT_MAX_RESPONSE_SIZE,
    LONG_POLL_CONTENT_TYPE,
    AnswerCache,
    LongPollResponse,
    LongPollState,
)
from ._metrics import (
    CONNECTION_DURATION_BOUNDS,
    LATENCY_BOUNDS,
    TIME_TO_RECONNECT_BOUNDS,
    Histogram,
    ServerMetrics,
)
from ._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, MAX_RETRY_MILLISECONDS
from ._replay import Replay, ReplayConfig, ReplayLog, ReplayResult, StoredEvent, TooOld, UnknownId
from ._sequencer import GapReason, Released, Sequencer, SequencerConfig, SequencerRecord, Skipped
from ._server import ServerState
from ._shared_log import AsyncSharedLog, SharedLog
from ._timers import HeartbeatScheduler, StallDetector
from ._transport import LEG_TRANSITIONS, Leg, LegInput
from ._types import Headers

__all__ = [
    # reconnection backoff
    "Backoff",
    "BackoffConfig",
    "BackoffState",
    "Jitter",
    "Reconnect",
    "GiveUp",
    "GiveUpReason",
    # delivery batching
    "Batcher",
    "BatchConfig",
    # dedup window
    "DedupWindow",
    "DedupConfig",
    # sequencer
    "Sequencer",
    "SequencerConfig",
    "SequencerRecord",
    "Released",
    "Skipped",
    "GapReason",
    # replay log
    "ReplayLog",
    "ReplayConfig",
    "ReplayResult",
    "Replay",
    "StoredEvent",
    "TooOld",
    "UnknownId",
    # the contract every resumption log keeps (ReplayLog, and a log shared in Redis)
    "SharedLog",
    "AsyncSharedLog",
    "LogUnavailableError",
    "IdempotencyConflictError",
    # chunked messages
    "split_message",
    "ChunkAssembler",
    "ChunkConfig",
    "ChunkLimitExceeded",
    "MessageDropped",
    "DropReason",
    "AssemblerOutput",
    "CHUNK_EVENT",
    # timers
    "StallDetector",
    "HeartbeatScheduler",
    # compression
    "Compressor",
    "Decompressor",
    "negotiate_encoding",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    # metrics
    "Histogram",
    "ServerMetrics",
    "CONNECTION_DURATION_BOUNDS",
    "TIME_TO_RECONNECT_BOUNDS",
    "LATENCY_BOUNDS",
    # health alerts
    "HealthMonitor",
    "HealthConfig",
    "HealthRule",
    "RaiseAlert",
    "ResolveAlert",
    # the client session's audit trail
    "AuditRecord",
    "AuditKind",
    "DEFAULT_MAX_AUDIT_RECORDS",
    # what the sessions hand out, and the types of their inputs
    "Subscriber",
    "Poller",
    "Fanout",
    "AnswerCache",
    "LongPollResponse",
    "ReadyState",
    "Headers",
    # the sessions' machines
    "ClientInput",
    "TRANSITIONS",
    "Leg",
    "LegInput",
    "LEG_TRANSITIONS",
    "ServerState",
    "LongPollState",
    # wire constants and defaults
    "GAP_EVENT_TYPE",
    "POSITION_EVENT_TYPE",
    "LONG_POLL_CONTENT_TYPE",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_EVENT_SIZE",
    "MAX_RETRY_MILLISECONDS",
    "DEFAULT_MAX_RESPONSE_SIZE",
]
