"""The async per-request responses' loop (floor 4), shared by the ASGI
(:mod:`sse_core.adapters.asgi`) and the aiohttp (:mod:`sse_core.adapters.aiohttp`)
``StreamResponse``: iterate the application's async iterable in the request's task and send
each item, while a second task sends heartbeats and lets go of a client whose send waits too
long, and a third, the framework's own, watches for the client's going.

The framework gives two coroutines: ``write``, which carries out one of the session's actions
(and raises :class:`OSError` when the client is gone), and ``watch``, which cancels the scope
it is given when the client goes. Written with anyio, so the ASGI response runs under trio
servers too; aiohttp runs it on asyncio.

A long poll (see ``_response``) takes the place of the stream: no heartbeats, one answer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._actions import Action
from ._logging import adapter_name, server_log
from ._response import ResponseBase, Source

__all__ = ["CLOSE_TIMEOUT", "AsyncResponseBase", "Watch", "Write"]

#: Seconds the application's generator has to run its ``finally`` once the stream ended.
CLOSE_TIMEOUT = 5.0

#: Carries out one action of the session: the head, bytes, or the end of the body; raises
#: :class:`OSError` when the client is gone.
Write = Callable[[Action], Awaitable[None]]
#: Watches for the client's going and then cancels the scope it is given.
Watch = Callable[[anyio.CancelScope], Coroutine[Any, Any, None]]



class AsyncResponseBase(ResponseBase[Source]):
    """What the async ``StreamResponse`` classes share: the loop that streams one request.

    The subclasses document the arguments (those of ``ResponseBase``) and the behaviour.
    """

    def _setup(self) -> None:
        self._failure: Exception | None = None
        self._sending_since: float | None = None  # when the write under way began
        self._beat: anyio.Event | None = None  # set while a heartbeat is being written

    async def _stream(
        self,
        target: str,
        headers: Sequence[tuple[Any, Any]],
        write: Write,
        watch: Watch,
    ) -> None:
        """Serve the request: stream until the source ends, raises, or the client goes.

        Raises:
            LocalProtocolError: the response was served before.
            Exception: what the source raised, after the clean end of the stream.
        """
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch, tasks.cancel_scope)
            try:
                held = self._hold(target, headers)
                if held is None:
                    await self._serve(target, headers, write, tasks)
                else:
                    await self._serve_poll(held, write)
            finally:
                tasks.cancel_scope.cancel()
                self._served()
        if self._failure is not None:
            raise self._failure

    def _let_go(self) -> None:
        """The client took nothing for ``send_timeout``: drop its connection if the framework
        lets us (called before the stream's task is cancelled)."""

    async def _serve(
        self, target: str, headers: Sequence[tuple[Any, Any]], write: Write, tasks: TaskGroup
    ) -> None:
        tasks.start_soon(self._tick, write, tasks.cancel_scope)
        if not await self._carry(write, self._begin(target, headers)):
            return
        while self._session.is_replaying:
            if not await self._carry(write, self._replay_step()):
                return
        try:
            iterator = aiter(self._iterable())
        except Exception as error:  # the application's function of the last event ID
            self._failure = error
            await self._carry(write, self._close())
            return
        try:
            # The source runs in this task, so nothing but the client's going (or a stuck
            # write, seen by _tick) cancels it; each item goes out as soon as it comes.
            async for item in iterator:
                actions = self._send_item(item)
                if self._beat is not None:
                    await self._beat.wait()  # a heartbeat is on its way out: keep the order
                if not await self._carry(write, actions):
                    return
        except Exception as error:  # from the source, or an item against the rule
            self._failure = error
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                # Runs the generator's finally now, even when this task was cancelled.
                with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    await aclose()
        if self._beat is not None:
            await self._beat.wait()
        await self._carry(write, self._close())

    async def _serve_poll(self, held: list[Action], write: Write) -> None:
        """Answer a long poll: from the log at once (``held``), or with the events the source
        has ready once its first came, or with none when the hold runs out first."""
        if not held:
            items, failure = await self._take_ready()
            held, refused = self._answer_poll(items)
            self._failure = failure or refused
        timeout = self._options.send_timeout
        with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
            await self._carry(write, held)
        if scope.cancelled_caught:  # the client took nothing for send_timeout
            assert timeout is not None
            self._log_send_timeout(timeout)
            self._let_go()

    async def _take_ready(self) -> tuple[list[object], Exception | None]:
        """The source's items for a held poll: the first within the hold, then those it yields
        without waiting, at most ``long_poll.max_events``; the source is closed after.

        A wait cut short cancels the source where it waits (as the client's going does): it
        gave nothing there, and the next poll starts it again from the answer's id.
        """
        items: list[object] = []
        try:
            iterator = aiter(self._iterable())
        except Exception as error:  # the application's function of the last event ID
            return items, error
        failure = None
        try:
            while len(items) < self._poll_limit:
                with anyio.move_on_after(self._poll_wait() if not items else 0.0):
                    try:
                        items.append(await anext(iterator))
                        continue
                    except StopAsyncIteration:
                        pass
                break  # the source ended, the hold ran out, or nothing more is ready
        except Exception as error:  # from the source
            failure = error
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    await aclose()
        return items, failure

    async def _tick(self, write: Write, scope: anyio.CancelScope) -> None:
        """The timers: a heartbeat when the source is silent for its interval, and letting
        go of a client whose write has waited ``send_timeout`` (checked every half of it, so
        a stuck client goes between one and one and a half times ``send_timeout``)."""
        timeout = self._options.send_timeout
        while True:
            since = self._sending_since
            if timeout is not None and since is not None and self._clock() - since >= timeout:
                self._log_send_timeout(timeout)
                self._let_go()
                scope.cancel()
                return
            delay = self._delay() if since is None else None
            if delay == 0.0:
                actions = self._heartbeat()
                if actions:
                    self._beat = anyio.Event()
                    is_sent = False  # unless the write finishes within send_timeout
                    try:
                        with anyio.move_on_after(math.inf if timeout is None else timeout):
                            is_sent = await self._carry(write, actions)
                    finally:
                        self._beat.set()
                        self._beat = None
                    if self._sending_since is not None:
                        assert timeout is not None
                        self._log_send_timeout(timeout)
                        self._let_go()  # stuck past send_timeout
                    if not is_sent:  # gone, or stuck
                        scope.cancel()
                        return
                continue
            if timeout is not None:
                delay = timeout / 2 if delay is None else min(delay, timeout / 2)
            if delay is None:
                await anyio.sleep_forever()
            else:
                await anyio.sleep(delay)

    def _log_send_timeout(self, timeout: float) -> None:
        self._count_send_timeout()
        server_log(
            logging.WARNING, f"a client took no bytes for {timeout:g} s (send_timeout): let go",
            adapter=adapter_name(self), event="send_timeout", timeout=timeout,
            last_event_id=self.last_event_id,
        )

    async def _carry(self, write: Write, actions: list[Action]) -> bool:
        """Carry out the actions; ``False`` when the client is gone."""
        for action in actions:
            self._sending_since = self._clock()
            try:
                await write(action)
            except OSError:  # the connection is gone (ASGI 2.4 servers raise this too)
                self._sending_since = None
                return False
            self._sending_since = None
        return True
