"""Send timeouts counted by the socket servers (asyncio, trio, sync): a real client on
127.0.0.1 with a small receive buffer stops reading, the server fills its socket, and the
kernel gives up on it after ``send_timeout`` (``TCP_USER_TIMEOUT``); the server lets it go,
counts it in ``ServerMetrics.send_timeouts`` and logs it at ``WARNING``."""

from __future__ import annotations

import errno
import logging

import pytest
import trio

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters._sockets import is_send_timeout
from sse_core.state import AuditKind
from tests.adapters.test_server_limits import connect, running, until

QUIET = ServerConfig(heartbeat_interval=None, is_compression_enabled=False)
#: A queue far larger than what the kernel holds: the client is let go for its stuck
#: writes, never for falling behind.
OPTIONS = ServerOptions(send_timeout=1.0, max_queued_bytes=64 << 20)


#: What the server publishes: twice the most a Linux send buffer grows to (4 MiB), so the
#: socket is full whatever the kernel's autotuning did, and far below ``max_queued_bytes``.
PUBLISHED = 8 << 20
EVENT_SIZE = 8000


@pytest.mark.parametrize("kind", ["asyncio", "trio", "sync"])
def test_a_client_that_stops_reading_is_counted_as_a_send_timeout(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The client reads the head and stops; once the kernel's buffers are full nothing is
    acknowledged, and after send_timeout (1 s; the kernel's probes make it one to a few
    seconds) the connection times out: the subscriber is gone, send_timeouts is 1, its audit
    trail notes the failure, and a WARNING says why."""
    caplog.set_level(logging.WARNING, logger="sse_core.server")
    with running(kind, config=QUIET, options=OPTIONS) as server:
        sock = connect(server, receive_buffer=4096)
        with sock:
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            until(lambda: server.read(lambda: len(server.hub)) == 1, "the subscription")
            (subscriber,) = server.read(lambda: list(server.hub))
            assert server.read(lambda: server.hub.metrics.send_timeouts) == 0
            for n in range(PUBLISHED // EVENT_SIZE):
                server.publish(Event(data=f"{n} " + "z" * EVENT_SIZE))
            until(lambda: server.read(lambda: server.hub.metrics.send_timeouts) == 1,
                  "the send timeout", timeout=60.0)
            until(lambda: server.read(lambda: len(server.hub)) == 0, "the client let go")
            metrics = server.read(lambda: server.hub.metrics)
            assert (metrics.send_timeouts, metrics.queue_drops) == (1, 0)
            trail = server.read(lambda: subscriber.session.audit_trail)
    assert [r.reason for r in trail.of_kind(AuditKind.FAILURE)] == ["send timeout"]
    [record] = [r for r in caplog.records if getattr(r, "sse_event", None) == "send_timeout"]
    assert record.levelno == logging.WARNING
    assert record.sse_timeout == 1.0  # type: ignore[attr-defined]
    assert "send_timeout" in record.getMessage()


def test_only_a_timed_out_connection_is_a_send_timeout() -> None:
    """ETIMEDOUT is, bare (the stdlib's TimeoutError) or wrapped as trio wraps it; another
    transport error (a reset, a broken pipe) or none is not."""
    timed_out = OSError(errno.ETIMEDOUT, "Connection timed out")
    assert is_send_timeout(timed_out)
    assert isinstance(timed_out, TimeoutError)
    try:
        raise trio.BrokenResourceError("socket connection broken") from timed_out
    except trio.BrokenResourceError as wrapped:
        assert is_send_timeout(wrapped)
    assert not is_send_timeout(ConnectionResetError(errno.ECONNRESET, "reset"))
    assert not is_send_timeout(trio.BrokenResourceError("closed"))
    assert not is_send_timeout(None)
