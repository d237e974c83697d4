"""Socket options the adapters share (floor 4): I/O details only, no protocol rules."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import sys
from typing import Protocol

try:
    import fcntl
    import termios
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]
    termios = None  # type: ignore[assignment]

__all__ = [
    "MAX_REPLAY_UNSENT",
    "REPLAY_RECHECK_DELAY",
    "is_replay_held_back",
    "is_send_timeout",
    "peer_host",
    "set_reset_on_close",
    "set_send_timeout",
    "unsent_bytes",
]

# struct linger {int l_onoff; int l_linger;}: on, zero seconds.
_LINGER_ZERO = struct.pack("ii", 1, 0)


class _Socket(Protocol):
    """What these functions need of a socket (stdlib, asyncio's or trio's)."""

    def setsockopt(self, level: int, option: int, value: int | bytes, /) -> None: ...


def set_send_timeout(sock: _Socket, timeout: float) -> None:
    """Let the kernel drop a connection whose peer stopped acknowledging (best effort).

    ``TCP_USER_TIMEOUT`` (Linux) bounds how long sent bytes -- events, heartbeats -- may stay
    unacknowledged; keepalive probes catch a silent peer on an idle connection. Options the
    platform lacks are skipped.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(timeout / 2)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(timeout / 6)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, int(timeout * 1000))
            )


def is_send_timeout(error: BaseException | None) -> bool:
    """Whether a transport error is the kernel giving up on the peer (``ETIMEDOUT``): what
    :func:`set_send_timeout` asks for, reported by the next send or receive on the socket.

    Looks through the errors a framework wraps it in (trio's ``BrokenResourceError`` ``from``
    the ``OSError``), a few levels deep.
    """
    for _ in range(4):
        if error is None:
            return False
        if isinstance(error, OSError) and error.errno == errno.ETIMEDOUT:
            return True
        error = error.__cause__ or error.__context__
    return False


def set_reset_on_close(sock: _Socket) -> None:
    """Make the coming close a reset: ``SO_LINGER`` on with a zero timeout (best effort).

    For a client the server lets go of (it fell behind, or never sent its request): the
    kernel sends RST and frees the socket and its unsent bytes at once, instead of holding
    them in FIN-WAIT-1 while it probes a peer that does not read (30 s, with megabytes
    queued, for a non-reader on Linux), and the client sees the drop at once. Call it just
    before closing (or aborting) the socket.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


#: The most bytes a replay may leave unacknowledged in the kernel before the adapter asks for
#: its next step. Without it, the kernel's send buffer (megabytes on loopback, growing with
#: the connection) takes a whole replay for a client that never reads.
MAX_REPLAY_UNSENT = 64 * 1024
#: Seconds between looks at a socket whose replay waits for the client to read.
REPLAY_RECHECK_DELAY = 0.05


class _Descriptor(Protocol):
    """A socket whose file descriptor :func:`unsent_bytes` can ask the kernel about."""

    def fileno(self) -> int: ...


def unsent_bytes(sock: _Descriptor | None) -> int | None:
    """Bytes written to ``sock`` that its peer has not acknowledged yet (Linux ``SIOCOUTQ``),
    or ``None`` where the platform cannot say."""
    if sock is None or fcntl is None or not hasattr(termios, "TIOCOUTQ"):
        return None
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ
    except (OSError, ValueError):
        return None
    return int.from_bytes(raw, sys.byteorder, signed=True)


def is_replay_held_back(sock: _Descriptor | None) -> bool:
    """Whether a replay's next step should wait: the client has not read what the kernel
    holds for it yet."""
    unsent = unsent_bytes(sock)
    return unsent is not None and unsent > MAX_REPLAY_UNSENT


class _Connected(Protocol):
    """A connected socket whose peer :func:`peer_host` can name (stdlib or trio)."""

    def getpeername(self) -> object: ...


def peer_host(sock: _Connected | None) -> str | None:
    """The peer's address (IP) of a connected socket, or ``None`` when it cannot say (a
    socket already closed, a Unix socket)."""
    if sock is None:
        return None
    try:
        name = sock.getpeername()
    except OSError:
        return None
    if isinstance(name, tuple) and name and isinstance(name[0], str):
        return name[0]
    return None
