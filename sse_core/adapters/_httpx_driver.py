"""What the httpx drivers share (floor 4): the user's client as the source's transport, and
the session's request as a request on that client, blocking (``httpx.Client``) or async
(``httpx.AsyncClient``) alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import httpx

from .. import ClientConfig, ClientSession
from .._actions import Request
from .._errors import InvalidConfigError
from ._client_base import ClientBase, RequestDriver, SourceArgs, request_headers
from ._options import ClientOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["HttpxDriver", "build_request", "head_fields"]

_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


class HttpxDriver(ClientBase, Generic[_Client]):
    """An ``EventSource`` whose every request goes out on the user's httpx client.

    The client carries the request (proxies, HTTP/2, auth, cookies, TLS, pooling, the
    connect, write and pool timeouts, ``follow_redirects``); the session decides the rest
    through a :class:`~sse_core.adapters._client_base.RequestDriver`. Of
    :class:`~sse_core.adapters.ClientOptions` only ``timeout`` applies: the rest describes
    sockets, which are the client's here. The client is not closed with the source.
    """

    #: The client class the driver takes.
    _client_type: ClassVar[type[httpx.Client] | type[httpx.AsyncClient]]

    def __init__(
        self, client: _Client, config: ClientConfig | str, **kwargs: Unpack[SourceArgs]
    ) -> None:
        """Drive a session over ``client`` (the httpx client that sends every request:
        yours, it stays open); the other arguments as for every adapter, of whose options
        only ``timeout`` applies.

        Raises:
            InvalidConfigError: a bad argument (a client of the other kind among them).
        """
        if not isinstance(client, self._client_type):
            name = self._client_type.__name__
            raise InvalidConfigError(f"client must be an httpx.{name}, got {client!r}")
        self._client: _Client = client
        super().__init__(config, **kwargs)

    def _glue(self, session: ClientSession, options: ClientOptions) -> RequestDriver:
        return RequestDriver(session)

    def _build(
        self, request: Request, trace: Callable[[str, dict[str, Any]], None] | None = None
    ) -> httpx.Request:
        """The session's request on the user's client (:func:`build_request`)."""
        return build_request(self._client, request, trace)


def build_request(
    client: httpx.Client | httpx.AsyncClient,
    request: Request,
    trace: Callable[[str, dict[str, Any]], None] | None = None,
) -> httpx.Request:
    """The session's request on the user's client: its default headers, auth and cookies
    merge in, the session's fields win (:func:`request_headers`: only the codings the
    session was told about are asked for).

    The stream has no read timeout (a quiet stream is not a broken one; the session's stall
    timeout replaces a silent connection); the client's connect, write and pool timeouts
    stay. ``trace`` is httpcore's ``trace`` extension for the request, if any.
    """
    limits = client.timeout
    timeout = httpx.Timeout(connect=limits.connect, read=None, write=limits.write, pool=limits.pool)
    extensions = {} if trace is None else {"trace": trace}
    return client.build_request(
        request.method, request.url, headers=request_headers(request), content=request.body,
        timeout=timeout, extensions=extensions,
    )


def head_fields(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The response's header fields for the session, names in lowercase as h11 hands them
    to the socket adapters (field names are case-insensitive: RFC 9110, section 5.1), so
    that an :class:`~sse_core.HTTPStatusError` carries the same headers on every path."""
    return [(name.lower(), value) for name, value in response.headers.raw]
