"""Helpers for tests of the blocking clients: the project's asyncio FaultProxy run by a loop
in a thread of its own, so that a test in the main thread drives it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from sse_core.testing import FaultProxy, ProxyFault

#: Seconds a call into the proxy's loop may take; only a failure waits this long.
TIMEOUT = 10.0

_T = TypeVar("_T")


class ProxyThread:
    """A running :class:`~sse_core.testing.FaultProxy` and the loop thread that runs it."""

    def __init__(self, proxy: FaultProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy = proxy
        self._loop = loop

    def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run one of the proxy's coroutines (``cut_all()`` ...) in its loop; its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(TIMEOUT)


@contextlib.contextmanager
def proxy_thread(upstream: tuple[str, int], *plan: ProxyFault) -> Iterator[ProxyThread]:
    """A FaultProxy in front of ``upstream`` with the faults ``plan``, stopped (with its loop
    and thread) afterwards: an address that outlives the servers behind it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    proxy = FaultProxy(upstream, plan=plan)
    running = ProxyThread(proxy, loop)
    try:
        running.call(proxy.start())
        yield running
    finally:
        running.call(proxy.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
