"""What the httpx drivers share (floor 4): taking the user's client, the session's actions
untranslated (:class:`RequestDriver`), and the session's request as an ``httpx.Request`` on
that client. No I/O here."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .. import ClientConfig, ClientSession
from .._actions import ReportStatus, Request
from .._errors import InvalidConfigError
from .._types import RandomSource
from ._client_base import AsyncClientBase, RequestDriver
from ._options import ClientOptions

__all__ = ["AsyncClientDriver", "build_request"]


class AsyncClientDriver(AsyncClientBase):
    """An ``EventSource`` over the user's ``httpx.AsyncClient`` (asyncio or trio: the loop
    comes from the class after this one in the bases).

    Takes the arguments of :class:`sse_core.adapters.httpx.EventSource`.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: ClientConfig | str,
        *,
        options: ClientOptions | None = None,
        on_status: Callable[[ReportStatus], object] | None = None,
        rng: RandomSource | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(client, httpx.AsyncClient):
            raise InvalidConfigError(f"client must be an httpx.AsyncClient, got {client!r}")
        self._client = client
        super().__init__(config, options=options, on_status=on_status, rng=rng, clock=clock)

    def _glue(self, session: ClientSession, options: ClientOptions) -> RequestDriver:
        return RequestDriver(session)


def build_request(client: httpx.AsyncClient | httpx.Client, request: Request) -> httpx.Request:
    """The session's request on the user's client: its default headers, auth and cookies
    merge in, the session's fields win.

    The body is read as sent and decoded by the session, so the request asks only for what
    the session decodes (``Accept-Encoding: identity`` unless the session asked for gzip).
    The stream gets no read timeout (a quiet stream is not a broken one: the session's stall
    timeout replaces a silent connection); the client's connect, write and pool timeouts stay.
    """
    headers = list(request.headers)
    if not any(name.lower() == "accept-encoding" for name, _ in headers):
        headers.append(("Accept-Encoding", "identity"))  # the session decodes the body
    limits = client.timeout
    timeout = httpx.Timeout(connect=limits.connect, read=None, write=limits.write, pool=limits.pool)
    return client.build_request(
        request.method, request.url, headers=headers, content=request.body, timeout=timeout
    )
