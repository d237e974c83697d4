"""What the httpx drivers share (floor 4): the session's request as an ``httpx.Request`` on
the user's client. No I/O here."""

from __future__ import annotations

import httpx

from .._actions import Request

__all__ = ["build_request"]


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
