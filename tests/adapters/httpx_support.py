"""What the httpx drivers' tests share: a real ``tinyproxy`` on loopback (a fixture), the
chat request the LLM-style tests POST, and the project's asyncio ``FaultProxy`` run in a
thread of its own, for tests whose loop is trio (or none)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest

from sse_core import ClientConfig, ClientState, EndCause, HTTPStatusError, StreamError
from sse_core.adapters import IncomingRequest
from sse_core.state import BackoffConfig
from tests._processes import proxied_requests, tinyproxy
from tests._threads import ProxyThread

from .drivers import WORDS, chat_config, read_chat
from .test_asyncio import field

__all__ = [
    "assert_cut_once",
    "WORDS",
    "ProxyThread",
    "chat_config",
    "gives_up_on_a_refused_port",
    "proxied_requests",
    "raises_for_404",
    "read_chat",
    "recording",
    "tinyproxy",
]

_T = TypeVar("_T")


def assert_cut_once(words: list[str], error: StreamError | None) -> None:
    """A cut chat answer's outcome: a StreamError (NOT_RESUMABLE) after every word, once."""
    assert isinstance(error, StreamError)
    assert error.report.cause is EndCause.NOT_RESUMABLE, error
    assert words == WORDS  # the words came; [DONE] was cut


def recording(
    name: str, seen: list[str | None]
) -> Callable[[IncomingRequest, str | None], str | None]:
    """A server's ``connection_key`` that records request header ``name`` of each stream."""

    def key(request: IncomingRequest, address: str | None) -> str | None:
        seen.append(field(request, name))
        return address

    return key


async def raises_for_404(driver: Any, url: str) -> None:
    """A driver's source (``driver(client, config)``) on a path the server does not serve:
    the plain loop raises HTTPStatusError with the status, the headers and the first bytes
    of the body, after one request."""
    async with httpx.AsyncClient() as client:
        source = driver(client, ClientConfig(url=url.replace("/events", "/nowhere")))
        with pytest.raises(HTTPStatusError) as caught:
            async with source:
                async for _ in source:
                    raise AssertionError("no event expected")
    assert caught.value.status == 404
    assert caught.value.body  # the server's explanation
    assert dict(caught.value.headers)
    # Names in lowercase, as the socket adapters give them (h11).
    assert [n for n, _ in caught.value.headers if n != n.lower()] == []
    assert source.session.state is ClientState.CLOSED
    assert source.metrics.connection_attempts == 1


async def gives_up_on_a_refused_port(driver: Any) -> None:
    """A driver's source on a port nothing listens on: each request fails in the user's
    client (ConnectError), the session reconnects with backoff and gives up after two
    attempts; the plain loop raises StreamError (GAVE_UP) naming the cause."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        backoff = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_attempts=2)
        async with httpx.AsyncClient() as client:
            source = driver(
                client, ClientConfig(url=f"http://127.0.0.1:{port}/events", backoff=backoff)
            )
            with pytest.raises(StreamError) as caught:
                async with source:
                    async for _ in source:
                        raise AssertionError("no event expected")
    assert caught.value.report.cause is EndCause.GAVE_UP
    assert "ConnectError" in caught.value.reason
    assert source.metrics.connection_attempts == 3
