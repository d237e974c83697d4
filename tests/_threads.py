"""Helpers for tests whose loop is not the proxy's (trio, blocking clients): the project's
asyncio FaultProxy run by a loop in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sse_core.testing import FaultProxy, ProxyFault, ProxyStats

#: Seconds a call into the proxy's loop may take; only a failure waits this long.
TIMEOUT = 10.0

_T = TypeVar("_T")


class ProxyThread:
    """A :class:`~sse_core.testing.FaultProxy` run by an asyncio loop in a thread of its own
    (the proxy is asyncio; the test's loop may be trio). Use as a ``with`` block; every
    call blocks the caller until the proxy's loop has done it (a few milliseconds)."""

    def __init__(self, upstream: tuple[str, int], plan: list[ProxyFault] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._proxy = FaultProxy(upstream, plan=plan or [])

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        self.call(self._proxy.start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.call(self._proxy.close)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(TIMEOUT)
            self._loop.close()

    def call(self, work: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``work()`` on the proxy's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result(TIMEOUT)

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return self._proxy.address

    @property
    def upstream(self) -> tuple[str, int]:
        """Where the proxy connects; set it to send the next connections elsewhere."""
        return self._proxy.upstream

    @upstream.setter
    def upstream(self, address: tuple[str, int]) -> None:
        async def move() -> None:
            self._proxy.upstream = address

        self.call(move)

    @property
    def stats(self) -> ProxyStats:
        """The proxy's counters (a snapshot)."""

        async def snapshot() -> ProxyStats:
            return self._proxy.stats

        return self.call(snapshot)

    def schedule(self, *faults: ProxyFault) -> None:
        """Faults for the next connections, in order."""

        async def schedule() -> None:
            self._proxy.schedule(*faults)

        self.call(schedule)

    def cut_all(self) -> int:
        """Cut every connection now (a clean FIN to the client); how many."""
        return self.call(self._proxy.cut_all)
