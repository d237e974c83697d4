"""Socket options the adapters share (floor 4): I/O details only, no protocol rules."""

from __future__ import annotations

import contextlib
import socket
from typing import Protocol

__all__ = ["set_send_timeout"]


class _Socket(Protocol):
    """What :func:`set_send_timeout` needs of a socket (stdlib, asyncio or trio)."""

    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


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
