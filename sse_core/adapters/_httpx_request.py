"""What the httpx drivers share (floor 4): the session's request as a request on the user's
client, blocking (``httpx.Client``) or async (``httpx.AsyncClient``) alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from .._actions import Request

__all__ = ["build_request"]


def build_request(
    client: httpx.Client | httpx.AsyncClient,
    request: Request,
    *,
    trace: Callable[[str, dict[str, Any]], None] | None = None,
) -> httpx.Request:
    """The session's request on the user's client: its default headers, auth and cookies
    merge in, the session's fields win.

    The body is asked for as the session can decode it (``Accept-Encoding: identity`` unless
    the session asked for gzip), and the stream has no read timeout (a quiet stream is not a
    broken one; the session's stall timeout replaces a silent connection); the client's
    connect, write and pool timeouts stay.

    Args:
        client: The user's client.
        request: What the session asks for.
        trace: httpcore's ``trace`` extension for the request, if any.

    Returns:
        The request to send with ``client.send(..., stream=True)``.
    """
    headers = list(request.headers)
    if not any(name.lower() == "accept-encoding" for name, _ in headers):
        headers.append(("Accept-Encoding", "identity"))  # the session decodes the body
    limits = client.timeout
    timeout = httpx.Timeout(connect=limits.connect, read=None, write=limits.write, pool=limits.pool)
    extensions = {} if trace is None else {"trace": trace}
    return client.build_request(
        request.method, request.url, headers=headers, content=request.body, timeout=timeout,
        extensions=extensions,
    )
