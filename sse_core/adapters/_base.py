"""What every adapter shares (floor 4): the records of options, the application's view of a
client's reports, and the setup hooks. The clients' dispatch is in ``_client_base``, the
asyncio clients' loop in ``_asyncio_client``, the servers' admission in ``_server_base``."""

from __future__ import annotations

import time
from typing import TypeVar

from .._actions import (
    Deliver,
    DeliverBatch,
    ReportDropped,
    ReportGap,
    ReportStale,
    ReportStatus,
    ReportTransport,
)
from .._errors import InvalidConfigError
from ._options import ClientOptions, ServerOptions

__all__ = ["AdapterBase", "Report", "options_or_default"]

#: What an ``EventSource``'s ``reports()`` yields: every record meant for the application,
#: ready for a ``match`` statement (``case Deliver(event=event):``, ``case ReportGap():`` ...).
Report = (
    Deliver | DeliverBatch | ReportStatus | ReportGap | ReportDropped | ReportTransport
    | ReportStale
)

Options = TypeVar("Options", ClientOptions, ServerOptions)


def options_or_default(options: Options | None, kind: type[Options]) -> Options:
    """``options``, or the defaults when ``None``.

    Raises:
        InvalidConfigError: ``options`` is of another type.
    """
    if options is None:
        return kind()
    if not isinstance(options, kind):
        raise InvalidConfigError(f"options must be a {kind.__name__}, got {options!r}")
    return options


class AdapterBase:
    """What an adapter's client or server sets up itself."""

    def _setup(self) -> None:
        """Make the adapter's own state (the last step of ``__init__``)."""

    def _default_clock(self) -> float:
        """The clock when none is given: monotonic seconds."""
        return time.monotonic()
