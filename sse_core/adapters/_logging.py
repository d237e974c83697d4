"""The adapters' log records (floor 4): the two loggers, their levels and the ``extra`` keys.

The core logs nothing (its actions carry everything); the adapters say what they carried out
through the standard :mod:`logging` module, on two loggers under ``sse_core``:

* ``sse_core.client`` -- every client adapter and driver (asyncio, trio, sync, httpx,
  aiohttp ...): the connection's lifecycle at ``INFO``, a refused response at ``WARNING``;
* ``sse_core.server`` -- the servers and the per-request responses (ASGI, WSGI, aiohttp):
  refused requests, clients let go (a send timeout, falling behind) at ``WARNING``; clients
  coming and going at ``DEBUG``.

Nothing is logged per event above ``DEBUG``. Every record carries the ``extra`` keys below
(``None`` when they do not apply), stable for JSON formatters and structlog; see the
logging docs page for the list.
"""

from __future__ import annotations

import logging

from .. import _actions
from .._actions import ClientState, EndCause
from .._client import ClientSession

__all__ = [
    "CLIENT_LOGGER", "LOGGED", "SERVER_LOGGER", "adapter_name", "client_extra",
    "log_client_report", "server_log",
]

#: The client adapters' and drivers' logger.
CLIENT_LOGGER = logging.getLogger("sse_core.client")
#: The servers' and per-request responses' logger.
SERVER_LOGGER = logging.getLogger("sse_core.server")

#: The reports a client logs as the application gets them (a failure is logged where the
#: iteration notes it).
LOGGED = (
    _actions.ReportStatus, _actions.ReportGap, _actions.ReportTransport, _actions.ReportStale,
    _actions.ReportDropped, _actions.DeliverBatch,
)

_INFO = logging.INFO
_DEBUG = logging.DEBUG
_WARNING = logging.WARNING

# Every client record's keys, in this order (None when a key does not apply).
_CLIENT_KEYS = (
    "sse_event", "sse_adapter", "sse_url", "sse_state", "sse_reason", "sse_last_event_id",
    "sse_delay", "sse_status", "sse_gap_size", "sse_transport", "sse_is_stale",
)
# Every server record's keys.
_SERVER_KEYS = (
    "sse_event", "sse_adapter", "sse_path", "sse_peer", "sse_reason", "sse_last_event_id",
    "sse_status", "sse_timeout",
)


# The shared modules: a record names the adapter module below them.
_SHARED = frozenset({
    "sse_core.adapters._base", "sse_core.adapters._client_base",
    "sse_core.adapters._asyncio_client", "sse_core.adapters._trio_client",
    "sse_core.adapters._sync_client",
    "sse_core.adapters._server_base", "sse_core.adapters._response",
    "sse_core.adapters._async_response",
})


def adapter_name(source: object) -> str:
    """The adapter ``source``'s class comes from: its module under ``sse_core.adapters``,
    a private ``_<adapter>_<part>`` module named by its adapter (``"asyncio"``, ``"trio"``,
    ``"sync"``, ``"httpx"``, ``"aiohttp"``, ``"asgi"``, ``"wsgi"``); an application's
    subclass names the adapter it extends."""
    for cls in type(source).__mro__:
        module = cls.__module__
        if module.startswith("sse_core.adapters.") and module not in _SHARED:
            name = module.rsplit(".", 1)[-1]
            return name.lstrip("_").split("_")[0] if name.startswith("_") else name
    return type(source).__module__


def client_extra(
    session: ClientSession, adapter: str, event: str, **fields: object
) -> dict[str, object]:
    """The ``extra`` mapping of a client record: every key of the scheme, ``fields`` set.

    Args:
        session: The client's session (its URL, state and last event ID are read).
        adapter: The adapter's module name (``"asyncio"``, ``"httpx"`` ...).
        event: What the record says (``"connecting"``, ``"gap"`` ...).
        fields: Keys of the scheme without their ``sse_`` prefix.
    """
    extra: dict[str, object] = dict.fromkeys(_CLIENT_KEYS)
    extra["sse_event"] = event
    extra["sse_adapter"] = adapter
    extra["sse_url"] = session.config.url
    extra["sse_state"] = session.state.value
    extra["sse_last_event_id"] = session.last_event_id
    for name, value in fields.items():
        extra["sse_" + name] = value
    return extra


def log_client_report(session: ClientSession, adapter: str, report: object) -> None:
    """Log one of the session's reports as the application gets it (deliveries are not
    logged: a batch only at ``DEBUG``, a single event never)."""
    logger = CLIENT_LOGGER
    match report:
        case _actions.ReportStatus(state=state, since=since, reason=reason):
            _log_status(session, adapter, state, since, reason)
        case _actions.ReportGap(reason=reason, last_event_id=last_event_id):
            if logger.isEnabledFor(_INFO):
                size = report.count
                told = f"{size} events" if size is not None else "events"
                logger.info(
                    "%s lost (%s); the stream goes on", told, reason,
                    extra=client_extra(session, adapter, "gap", reason=reason,
                                       gap_size=size, last_event_id=last_event_id),
                )
        case _actions.ReportFailure():
            _log_failure(session, adapter, report)
        case _actions.ReportTransport(transport=transport, reason=reason):
            if logger.isEnabledFor(_INFO):
                logger.info(
                    "switched to %s: %s", transport.value, reason,
                    extra=client_extra(session, adapter, "transport", reason=reason,
                                       transport=transport.value),
                )
        case _actions.ReportStale(is_stale=is_stale, since=since):
            if logger.isEnabledFor(_INFO):
                what = f"data may be stale (no byte since {since:.3f})" if is_stale else "fresh"
                logger.info(what, extra=client_extra(session, adapter, "stale",
                                                     is_stale=is_stale))
        case _actions.ReportDropped(reason=reason, detail=detail):
            if logger.isEnabledFor(_INFO):
                logger.info("chunked message dropped: %s", detail,
                            extra=client_extra(session, adapter, "dropped", reason=reason))
        case _actions.DeliverBatch(events=events):
            if logger.isEnabledFor(_DEBUG):
                logger.debug("batch of %d events", len(events),
                             extra=client_extra(session, adapter, "batch"))


def _log_status(
    session: ClientSession, adapter: str, state: ClientState, since: float, reason: str | None
) -> None:
    logger = CLIENT_LOGGER
    url = session.config.url
    last_id = session.last_event_id
    resume = f", resuming from id {last_id!r}" if last_id else ""
    match state:
        case ClientState.CONNECTING:
            level, message = _INFO, f"connecting to {url}{resume}"
            if reason is not None:
                message += f" ({reason})"
            fields: dict[str, object] = {"reason": reason}
        case ClientState.CONNECTED:
            level, message, fields = _INFO, f"connected to {url}", {}
        case ClientState.STREAMING:
            level, message, fields = _DEBUG, f"streaming from {url}", {}
        case ClientState.RECONNECTING:
            at = session.reconnect_at
            delay = None if at is None else max(0.0, at - since)
            wait = "" if delay is None else f" in {delay:.3f} s"
            level, message = _INFO, f"connection lost ({reason}): reconnecting{wait}{resume}"
            fields = {"reason": reason, "delay": delay}
        case ClientState.OFFLINE:
            level, message, fields = _INFO, f"offline ({reason})", {"reason": reason}
        case ClientState.CLOSED:
            message = "closed" if reason is None else f"closed: {reason}"
            level, fields = _INFO, {"reason": reason}
    if logger.isEnabledFor(level):
        logger.log(level, message, extra=client_extra(session, adapter, state.value, **fields))


def _log_failure(session: ClientSession, adapter: str, failure: _actions.ReportFailure) -> None:
    """A refused response at ``WARNING``; giving up (and a request that may not be sent
    again) at ``INFO``: the ``CLOSED`` record follows."""
    logger = CLIENT_LOGGER
    level = _WARNING if failure.cause is EndCause.REFUSED else _INFO
    if logger.isEnabledFor(level):
        logger.log(
            level, "%s: %s", failure.cause.value, failure.reason,
            extra=client_extra(session, adapter, failure.cause.value.replace(" ", "_"),
                               reason=failure.reason, status=failure.status),
        )


def server_log(
    level: int,
    message: str,
    *,
    adapter: str,
    event: str,
    exc_info: BaseException | None = None,
    **fields: object,
) -> None:
    """Log a server record with every key of the scheme (``fields`` without their ``sse_``
    prefix; the rest ``None``), with ``exc_info``'s traceback when given."""
    logger = SERVER_LOGGER
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, object] = dict.fromkeys(_SERVER_KEYS)
    extra["sse_event"] = event
    extra["sse_adapter"] = adapter
    for name, value in fields.items():
        extra["sse_" + name] = value
    logger.log(level, message, exc_info=exc_info, extra=extra)
