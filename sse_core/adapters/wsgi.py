"""WSGI adapter: one request's event stream for Flask, Django's sync views, any WSGI server
(floor 4).

:class:`StreamResponse` is a WSGI application: a :class:`~sse_core.ServerSession` decides the
head, padding, ``retry:``, the replay, gzip and heartbeats; this module carries out its
actions as the status, the header list and the body's byte strings.

A WSGI body is an iterator the server pulls from: it can hand out bytes only when it is
asked, and it is asked again only when the last bytes went out. For a heartbeat to go out
while the application's generator is busy waiting for its next event, the generator runs
in a thread of its own and hands its items over through a queue of at most ``MAX_AHEAD``
items; the server's thread takes every item queued at once (one write for a burst) or waits
for the next one until the heartbeat's deadline, whichever comes first.

Limits of a thread-per-connection server: each open stream holds one of the server's worker
threads for its whole life, plus the generator's thread. Under gunicorn, use the ``gthread``
worker: a worker with ``--threads N`` serves at most ``N`` streams at once (and nothing else
while they are open), so ``--workers W --threads N`` holds ``W * N`` streams; size ``N`` for
the streams you expect plus the ordinary requests. The ``sync`` worker serves one request at a
time and its ``--timeout`` kills a worker busy longer than that, so it suits no stream. A
client that goes is noticed when a write to it fails -- at the next event or heartbeat --
and the server then closes the body, which closes the generator (its ``finally`` runs).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

from .._actions import Action, Send, SendHead
from ._logging import server_log
from ._response import ResponseBase, SyncSource

__all__ = ["StreamResponse"]

#: The WSGI ``start_response`` callable.
StartResponse = Callable[..., Any]


#: The most items the generator's thread runs ahead of what the server has taken.
MAX_AHEAD = 64


class _Done:
    """The end of the application's items: normal, or what it raised."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class _Handoff:
    """A bounded queue between the generator's thread and the server's: the producer waits
    while it holds ``MAX_AHEAD`` items, the consumer takes every item there is at once or
    waits for one until a timeout; :meth:`stop` releases both for good."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._items: collections.deque[object] = collections.deque()
        self.is_stopped = False

    def put(self, item: object) -> bool:
        """Hand ``item`` over; ``False`` when the consumer stopped."""
        with self._ready:
            while len(self._items) >= MAX_AHEAD and not self.is_stopped:
                self._ready.wait()
            if self.is_stopped:
                return False
            self._items.append(item)
            if len(self._items) == 1:
                self._ready.notify_all()
            return True

    def take(self, timeout: float | None, most: int = MAX_AHEAD) -> list[object]:
        """Every item handed over so far (at most ``most``), waiting up to ``timeout``
        seconds for the first (``[]`` when none came)."""
        with self._ready:
            if not self._items:
                self._ready.wait_for(lambda: self._items, timeout)
            items = [self._items.popleft() for _ in range(min(most, len(self._items)))]
            self._ready.notify_all()
            return items

    def stop(self) -> None:
        """Release the producer: it puts nothing more."""
        with self._ready:
            self.is_stopped = True
            self._ready.notify_all()


class StreamResponse(ResponseBase[SyncSource]):
    """One request's event stream, as a WSGI application.

    Return it from a Flask view (Flask runs a WSGI application it is given), run it under
    any WSGI server, or, for Django and other frameworks with their own response class, take
    the parts from :meth:`start` (``StreamingHttpResponse(body, status=..., headers=...)``).
    Any method is served. Make one per request.

    The items rule, the head, heartbeats, gzip, resume (a function of the last event ID as
    the source, an optional ``replay_log``) are those of the ASGI
    :class:`sse_core.adapters.asgi.StreamResponse`. Differences that come from WSGI:

    - the generator runs in its own thread (a daemon thread, one per stream);
    - a client that goes is noticed at the next write (event or heartbeat), when the
      server closes the body; the generator is then closed in its thread as soon as it
      yields next, or at once when it is waiting for its item to be taken;
    - when the source raises, the client gets a clean end of the stream and the exception
      is logged (``sse_core.adapters.wsgi``, level ERROR), not raised: a WSGI server that
      sees a body raise cuts the connection without ending the chunked body.
    - ``options.send_timeout`` does not apply: the WSGI server owns the socket.

    Args:
        source: An iterable of items, or a function taking the last event ID (``""`` for a
            new client) returning one.
        config: The session's configuration; ``ServerConfig()`` when ``None``.
        options: Unused here but accepted, so that one record serves every adapter.
        replay_log: A log to replay from and append to, or ``None``.
        clock: Monotonic seconds; :func:`time.monotonic` when ``None``.
        counters: A :class:`~sse_core.adapters.ResponseCounters` this response adds its
            figures to (shared by many responses), or ``None``; its own are in
            :attr:`metrics`, its lifecycle in :attr:`audit_trail`.

    Raises:
        InvalidConfigError: a bad argument.
        TypeError: ``source`` is neither an iterable nor callable.
    """

    def __call__(
        self, environ: Mapping[str, Any], start_response: StartResponse
    ) -> Iterator[bytes]:
        """Serve the request as a WSGI application."""
        status, headers, body = self.start(environ)
        start_response(status, headers)
        return body

    def start(
        self, environ: Mapping[str, Any]
    ) -> tuple[str, list[tuple[str, str]], Iterator[bytes]]:
        """Answer the request in ``environ``: the status line's text, the header fields, and
        the body (close it when the client goes; WSGI servers do).

        Raises:
            LocalProtocolError: the response was started before.
        """
        target = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        headers = _headers_of(environ)
        held = self._hold(target, headers)
        if held is None:
            actions = self._begin(target, headers)
            body: Iterator[bytes] = _Body(self, actions[1:])
        else:
            actions = held or self._take_ready()
            body = iter([_bytes_of(actions)])
            self._served()
        head = actions[0]
        assert isinstance(head, SendHead)
        status = f"{head.status} {HTTPStatus(head.status).phrase}"
        return status, list(head.headers), body

    def _take_ready(self) -> list[Action]:
        """A held poll's answer: the items the source's thread hands over, the first within
        the hold and then those ready at once, at most ``long_poll.max_events``; the source is
        let go after (closed in its thread when it next yields)."""
        handoff = _Handoff()
        threading.Thread(
            target=_produce, args=(handoff, self._iterable), name="sse_core event source",
            daemon=True,
        ).start()
        items: list[object] = []
        failure: Exception | None = None
        while len(items) < self._poll_limit:
            taken = handoff.take(self._poll_wait() if not items else 0.0,
                                 most=self._poll_limit - len(items))
            done = next((item for item in taken if isinstance(item, _Done)), None)
            items += [item for item in taken if not isinstance(item, _Done)]
            if not taken or done is not None:
                failure = None if done is None else done.error
                break
        handoff.stop()
        actions, refused = self._answer_poll(items)
        failure = failure or refused
        if failure is not None:
            _source_failed("the event source failed during a long poll", failure)
        return actions


class _Body(Iterator[bytes]):
    """The body the WSGI server pulls: the session's bytes as the generator's thread hands
    over items, and heartbeats in between."""

    def __init__(self, response: StreamResponse, first: list[Action]) -> None:
        self._response = response
        self._pending = _bytes_of(first)
        self._handoff = _Handoff()
        self._thread: threading.Thread | None = None
        self._is_ended = False

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        response = self._response
        while not self._pending:
            if self._is_ended:
                raise StopIteration
            if response._session.is_replaying:
                self._pending = _bytes_of(response._replay_step())
                continue
            if self._thread is None:
                self._thread = threading.Thread(
                    target=_produce, args=(self._handoff, response._iterable),
                    name="sse_core event source", daemon=True,
                )
                self._thread.start()
            items = self._handoff.take(response._delay())
            actions = [] if items else response._heartbeat()
            for item in items:
                try:
                    if isinstance(item, _Done):
                        if item.error is not None:
                            _source_failed("the event source raised", item.error)
                        actions += self._end()
                        break
                    actions += response._send_item(item)
                except Exception as error:  # the items rule, or a field the session refused
                    _source_failed("the event source yielded what cannot be sent", error)
                    actions += self._end()
                    break
            self._pending = _bytes_of(actions)
        data, self._pending = self._pending, b""
        return data

    def close(self) -> None:
        """The server is done with the body (the stream ended or the client went)."""
        self._handoff.stop()
        self._is_ended = True
        self._response._served()

    def _end(self) -> list[Action]:
        self._handoff.stop()
        self._is_ended = True
        return self._response._close()

def _produce(handoff: _Handoff, iterable: Callable[[], Any]) -> None:
    """The generator's thread: hand over each item until the end or a stop."""
    iterator: Iterator[Any] | None = None
    done = _Done(None)
    try:
        iterator = iter(iterable())
        for item in iterator:
            if not handoff.put(item):
                return
    except Exception as error:
        done = _Done(error)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # runs the generator's finally
    handoff.put(done)


def _source_failed(message: str, error: BaseException) -> None:
    """Log (at ``ERROR``, with the traceback) why a stream ended early: a WSGI body cannot
    raise to the application."""
    server_log(logging.ERROR, message, adapter="wsgi", event="source_failed", exc_info=error,
               reason=str(error))


def _bytes_of(actions: Iterable[Action]) -> bytes:
    return b"".join([action.data for action in actions if isinstance(action, Send)])


def _headers_of(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request's header fields from a WSGI environ (PEP 3333: ``HTTP_*`` keys)."""
    headers = [
        (key[5:].replace("_", "-").lower(), value)
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    ]
    if environ.get("CONTENT_TYPE"):
        headers.append(("content-type", environ["CONTENT_TYPE"]))
    return headers
