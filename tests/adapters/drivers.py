"""What the tests of the drivers over the user's HTTP client share (httpx, aiohttp): each
driver with its client's settings (:class:`Driver`, the ``driver`` fixture), the chat
request of the LLM case and small waits; a real ``tinyproxy`` on loopback comes from
``tests/_processes.py``."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from sse_core import ClientConfig, Deliver, StreamError
from sse_core.adapters._client_base import AsyncClientBase
from tests._processes import free_port, proxied_requests, tinyproxy

from .test_asyncio import config

#: The words the chat endpoint of ``response_apps.py`` (``POST /chat``) streams back, one
#: event each.
WORDS = ["Hello", ", ", "wörld"]

__all__ = ["WORDS", "Driver", "chat", "chat_config", "driver", "free_port", "proxied_requests",
           "read_chat", "settle", "tinyproxy"]


@dataclasses.dataclass(frozen=True)
class Driver:
    """A driver over the user's HTTP client, and how its client is set up for a test.

    Attributes:
        name: ``"httpx"`` or ``"aiohttp"``: the library, and the driver's module.
        library: The imported library.
        source: The driver's ``EventSource``.
        cut_error: What the client raises for a body cut short (named in the reason).
        connect_error: What the client raises for a refused connection.
    """

    name: str
    library: Any
    source: Any
    cut_error: str
    connect_error: str

    def client(self, **kwargs: Any) -> Any:
        """A new client (an async context manager) with these settings."""
        if self.name == "httpx":
            return self.library.AsyncClient(**kwargs)
        return self.library.ClientSession(**kwargs)

    def is_closed(self, client: Any) -> bool:
        """Whether ``client`` was closed."""
        return bool(client.is_closed if self.name == "httpx" else client.closed)

    def short_timeouts(self) -> dict[str, Any]:
        """Client settings whose timeouts would cut a stream quiet for a second."""
        if self.name == "httpx":
            return {"timeout": 0.2}
        return {"timeout": self.library.ClientTimeout(total=0.5, sock_read=0.2)}

    def one_connection_per_request(self) -> dict[str, Any]:
        """Client settings that open a new connection for each request."""
        if self.name == "httpx":
            return {"limits": self.library.Limits(max_keepalive_connections=0)}
        return {"connector": self.library.TCPConnector(force_close=True)}

    def raising_for_status(self) -> dict[str, Any]:
        """Client settings that raise for an error status where the client can (aiohttp's
        ``raise_for_status``): the driver must judge the status itself all the same."""
        return {} if self.name == "httpx" else {"raise_for_status": True}

    def decoding(self, is_body_decoded: bool) -> dict[str, Any]:
        """Client settings that decode the body the other way round from the config, where
        the client has such a setting (aiohttp's ``auto_decompress``): the driver's
        per-request choice must win."""
        return {} if self.name == "httpx" else {"auto_decompress": not is_body_decoded}


_DRIVERS = {
    "httpx": ("incomplete chunked read", "ConnectError"),
    "aiohttp": ("ClientPayloadError", "ClientConnectorError"),
}


@pytest.fixture(params=list(_DRIVERS))
def driver(request: pytest.FixtureRequest) -> Driver:
    """Each driver in turn (its library in the peers extra)."""
    name = request.param
    library = pytest.importorskip(name, reason=f"{name} is in the peers extra")
    source = importlib.import_module(f"sse_core.adapters.{name}").EventSource
    return Driver(name, library, source, *_DRIVERS[name])




def chat_config(config: Callable[..., ClientConfig], url: str, **kwargs: Any) -> ClientConfig:
    """The chat request as a driver sends it: a JSON ``POST`` of :data:`WORDS`, made by the
    test module's ``config`` (its backoff)."""
    return config(
        url, method="POST", body=json.dumps({"words": WORDS}).encode(),
        headers=(("Content-Type", "application/json"),), **kwargs,
    )


async def read_chat(source: Any) -> tuple[list[str], StreamError | None]:
    """Read a chat answer from an async driver's source (asyncio or trio) inside its
    ``async with`` block: the words it got, and what it raised."""
    words: list[str] = []
    try:
        async with source:
            reports = source.reports()
            try:
                async for report in reports:
                    if not isinstance(report, Deliver):
                        continue
                    if report.event.event == "done":
                        break
                    words.append(json.loads(report.event.data)["delta"])
            finally:
                closing = getattr(reports, "aclose", None)  # an async generator (asyncio)
                if closing is not None:
                    await closing()
    except StreamError as error:
        return words, error
    return words, None


async def chat(
    source_of: Callable[[ClientConfig], AsyncClientBase], url: str, **kwargs: object
) -> tuple[list[str], StreamError | None]:
    """POST the chat request through a driver's source; the words it got, and what it
    raised."""
    return await read_chat(source_of(chat_config(config, url, **kwargs)))


async def settle() -> None:
    """Give a reconnection that should not happen the time to happen (the backoff's first
    delay is at most 0.05 s here)."""
    await asyncio.sleep(0.5)
