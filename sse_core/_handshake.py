"""The client's side of each HTTP exchange: the request it makes, the verdict on the
response head (floor 3).

Pure functions of the :class:`~sse_core.ClientConfig` and the client's last event ID, used by
:class:`~sse_core.ClientSession` for both transports: the event stream (WHATWG HTML 9.2,
"EventSource constructor" and "reestablish the connection") and a long poll (the wire format
of :mod:`sse_core._longpoll`).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

import attrs

from ._actions import Request
from ._compression import Decompressor
from ._config import ClientConfig, add_query
from ._errors import InvalidConfigError
from ._longpoll import LONG_POLL_CONTENT_TYPE
from ._types import header_value

__all__ = ["Refusal", "judge_response", "poll_request", "stream_request"]


@attrs.frozen
class Refusal:
    """Why a response head does not open the stream (or answer the poll).

    Attributes:
        reason: What was wrong, for the reports.
        is_retryable: The status is one of ``retry_statuses``: reconnect with backoff
            instead of failing for good.
        is_failure: The refusal is a failure to report (:class:`~sse_core.ReportFailure`);
            ``False`` for 204, the server's way to say "stop reconnecting".
    """

    reason: str
    is_retryable: bool = False
    is_failure: bool = True


def _essence(content_type: str | None) -> str | None:
    """A Content-Type's MIME type essence (lowercase, no parameters)."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def judge_response(
    config: ClientConfig,
    status: int,
    headers: Sequence[tuple[str | bytes, str | bytes]],
    *,
    is_poll: bool,
) -> Decompressor | Refusal:
    """Accept a response head -- the decoder for its body -- or say why not.

    As the spec's "announce the connection" / "fail the connection": 200 with a
    ``Content-Type`` whose essence is ``text/event-stream`` (``application/json`` for a poll)
    is accepted; anything else is refused, but for a status in ``retry_statuses``. The
    body's decoder follows ``Content-Encoding``, unless ``is_body_decoded`` says the HTTP
    client decoded it already (RFC 9110 section 8.4: the coding describes the body as sent,
    not as the client hands it over).
    """
    content_type = header_value(headers, "content-type")
    expected = LONG_POLL_CONTENT_TYPE if is_poll else "text/event-stream"
    if status == 200 and _essence(content_type) == expected:
        encoding = header_value(headers, "content-encoding") or ""
        if config.is_body_decoded:
            encoding = ""  # the HTTP client decoded the body: hand it on as it is
        try:
            return Decompressor(encoding, max_output=config.max_decompressed_size)
        except InvalidConfigError:
            return Refusal(f"unsupported Content-Encoding {encoding!r}")
    if status in config.retry_statuses:
        return Refusal(f"HTTP {status}, retrying", is_retryable=True)
    if status == 204:
        return Refusal(
            "HTTP 204 No Content: the server asked not to reconnect", is_failure=False
        )
    if status == 200:
        return Refusal(f"wrong Content-Type {content_type!r}")
    return Refusal(f"HTTP {status}")


def stream_request(config: ClientConfig, url: str, last_event_id: str) -> Request:
    """The event stream's request.

    Args:
        config: The client's configuration (method, body or JSON, headers, gzip).
        url: The stream's URL (``config.url``, with the cache-busting parameter when set).
        last_event_id: The last event ID string, sent as ``Last-Event-ID`` when not empty.
    """
    headers: dict[str, tuple[str, str]] = {
        "accept": ("Accept", "text/event-stream"),
        "cache-control": ("Cache-Control", "no-cache"),
    }
    if config.is_gzip_accepted:
        headers["accept-encoding"] = ("Accept-Encoding", "gzip")
    if config.json is not None:
        # RFC 8259 section 11: JSON's media type; a user's Content-Type below replaces it.
        headers["content-type"] = ("Content-Type", "application/json")
    for name, value in config.headers:
        headers[name.lower()] = (name, value)
    if last_event_id:
        # "If the event source's last event ID string is not the empty string, set
        # `Last-Event-ID`/last event ID string, encoded as UTF-8."
        headers["last-event-id"] = ("Last-Event-ID", last_event_id)
    return Request(
        method=config.method, url=url, headers=tuple(headers.values()), body=config.request_body
    )


def poll_request(
    config: ClientConfig, poll_url: str, last_event_id: str, cache_bust: tuple[str, str] | None
) -> Request:
    """One poll's request: ``GET <poll_url>?lastEventId=<id>&timeout=<seconds>``.

    Args:
        config: The client's configuration (``long_poll_timeout``, headers, gzip).
        poll_url: ``config.long_poll_url``.
        last_event_id: The last event ID string (``lastEventId`` is left out while empty).
        cache_bust: The cache-busting ``(name, value)`` query parameter, or ``None``.
    """
    params = [("lastEventId", last_event_id)] if last_event_id else []
    params.append(("timeout", format(config.long_poll_timeout, "g")))
    if cache_bust is not None:
        params.append(cache_bust)
    headers: dict[str, tuple[str, str]] = {
        "accept": ("Accept", LONG_POLL_CONTENT_TYPE),
        "cache-control": ("Cache-Control", "no-cache"),
    }
    if config.is_gzip_accepted:
        headers["accept-encoding"] = ("Accept-Encoding", "gzip")
    for name, value in config.headers:
        if name.lower() != "accept":
            headers[name.lower()] = (name, value)
    url = add_query(poll_url, urlencode(params, quote_via=quote))
    return Request(method="GET", url=url, headers=tuple(headers.values()))
