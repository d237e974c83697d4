"""The one rule for ``now`` (docs/state/clock.rst), checked on every public object that takes it.

The objects are found by introspection: every public class of ``sse_core`` (and of
``sse_core.state`` once it exists) with a public method that has a ``now`` parameter. Each
needs a recipe below -- how to build one whose clock stands at ``LATEST``, and how to call
each such method -- so a new object or method cannot slip past the rule: the coverage test
fails until it has a recipe, and the rule is then checked on it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

import sse_core
from sse_core import (
    Broadcaster,
    ClientConfig,
    ClientSession,
    ClockError,
    Deliver,
    Event,
    LongPollConfig,
    LongPollSession,
    ServerConfig,
    ServerSession,
    SSEError,
)


def _public_modules() -> Iterator[Any]:
    yield sse_core
    with contextlib.suppress(ModuleNotFoundError):  # the state objects' namespace, if any
        yield importlib.import_module("sse_core.state")


def _public(name: str) -> Any:
    """A public name, from the root or from ``sse_core.state`` (where the state objects go)."""
    for module in _public_modules():
        if name in module.__all__:
            return getattr(module, name)
    raise LookupError(name)


Backoff = _public("Backoff")
BackoffConfig = _public("BackoffConfig")
Batcher = _public("Batcher")
HealthMonitor = _public("HealthMonitor")
BatchConfig = _public("BatchConfig")
ChunkAssembler = _public("ChunkAssembler")
DedupWindow = _public("DedupWindow")
HeartbeatScheduler = _public("HeartbeatScheduler")
ReplayLog = _public("ReplayLog")
Sequencer = _public("Sequencer")
StallDetector = _public("StallDetector")

LATEST = 100.0
EARLIER = 50.0

SSE_HEADERS = [("Content-Type", "text/event-stream")]
POLL_TARGET = "/poll?lastEventId=start&timeout=20"

Call = Callable[[Any, float], object]


@attrs.frozen
class Recipe:
    """How to get an object whose clock stands at LATEST, and how to call its methods."""

    make: Callable[[], Any]
    calls: dict[str, Call]


def _backoff() -> Any:
    backoff = Backoff(BackoffConfig(), rng=random.Random(1))
    backoff.on_disconnected(LATEST)
    return backoff


def _batcher() -> Any:
    batcher = Batcher(BatchConfig(max_delay=1000.0))
    batcher.feed([Deliver(event=Event(data="a"))], LATEST)
    return batcher


def _dedup() -> Any:
    window = DedupWindow()
    window.check("a", LATEST)
    return window


def _sequencer() -> Any:
    sequencer = Sequencer()
    sequencer.push(1, "a", LATEST)
    return sequencer


def _replay_log() -> Any:
    log = ReplayLog()
    log.append(Event(data="a"), LATEST)
    return log


def _assembler() -> Any:
    assembler = ChunkAssembler()
    assembler.poll(LATEST)
    return assembler


def _stall() -> Any:
    stall = StallDetector(5.0)
    stall.start(LATEST)
    return stall


def _heartbeat() -> Any:
    heartbeat = HeartbeatScheduler(5.0)
    heartbeat.start(LATEST)
    return heartbeat


def _broadcaster() -> Broadcaster:
    hub = Broadcaster(ReplayLog())
    hub.publish(Event(data="a"), LATEST)
    return hub


def _subscriber() -> Any:
    hub = Broadcaster(ReplayLog(), config=ServerConfig(heartbeat_interval=5.0))
    subscriber = hub.subscribe("/events", [], LATEST)
    subscriber.take(LATEST)
    return subscriber


def _poller() -> Any:
    hub = Broadcaster(ReplayLog())
    poller = hub.hold("/poll?timeout=20", [], LATEST)
    poller.take(LATEST)
    return poller


def _client() -> ClientSession:
    client = ClientSession(ClientConfig(url="http://example.test/events"), rng=random.Random(1))
    client.start(LATEST)
    client.on_response(200, SSE_HEADERS, LATEST)
    return client


def _server() -> ServerSession:
    server = ServerSession(ServerConfig(heartbeat_interval=5.0), ReplayLog())
    server.on_request("/events", [], LATEST)
    return server


def _long_poll() -> LongPollSession:
    session = LongPollSession(LongPollConfig(), None)
    session.on_request(POLL_TARGET, [], LATEST)
    return session


def _health() -> Any:
    monitor = HealthMonitor()
    monitor.check(sse_core.Metrics(), LATEST)
    return monitor


RECIPES: dict[str, Recipe] = {
    "Backoff": Recipe(_backoff, {
        "on_connected": lambda o, now: o.on_connected(now),
        "on_disconnected": lambda o, now: o.on_disconnected(now),
        "on_dropped": lambda o, now: o.on_dropped(now),
    }),
    "Batcher": Recipe(_batcher, {
        "feed": lambda o, now: o.feed([Deliver(event=Event(data="b"))], now),
        "poll": lambda o, now: o.poll(now),
    }),
    "HealthMonitor": Recipe(_health, {
        "check": lambda o, now: o.check(sse_core.Metrics(), now),
    }),
    "DedupWindow": Recipe(_dedup, {
        "check": lambda o, now: o.check("b", now),
        "check_all": lambda o, now: o.check_all(["b", "c"], now),
        "expire": lambda o, now: o.expire(now),
    }),
    "Sequencer": Recipe(_sequencer, {
        "push": lambda o, now: o.push(2, "b", now),
        "poll": lambda o, now: o.poll(now),
    }),
    "ReplayLog": Recipe(_replay_log, {
        "append": lambda o, now: o.append(Event(data="b"), now),
        "expire": lambda o, now: o.expire(now),
        "resume": lambda o, now: o.resume("0", now),
    }),
    "ChunkAssembler": Recipe(_assembler, {
        "feed": lambda o, now: o.feed(Event(data="a 0 2 2 t\nx", event="sse-chunk"), now),
        "poll": lambda o, now: o.poll(now),
    }),
    "StallDetector": Recipe(_stall, {
        "activity": lambda o, now: o.activity(now),
        "is_stalled": lambda o, now: o.is_stalled(now),
        "received": lambda o, now: o.received(b"data: x\n", now),
        "start": lambda o, now: o.start(now),
    }),
    "HeartbeatScheduler": Recipe(_heartbeat, {
        "is_due": lambda o, now: o.is_due(now),
        "sent": lambda o, now: o.sent(now),
        "start": lambda o, now: o.start(now),
    }),
    "Broadcaster": Recipe(_broadcaster, {
        "close": lambda o, now: o.close(now),
        "publish": lambda o, now: o.publish(Event(data="b"), now),
        "fan_out": lambda o, now: o.fan_out([Event(data="b")], now, set(o)),
        "subscribe": lambda o, now: o.subscribe("/events", [], now),
        "hold": lambda o, now: o.hold("/poll?timeout=20", [], now),
        "count_send_timeout": lambda o, now: o.count_send_timeout(None, now),
    }),
    "Poller": Recipe(_poller, {
        "poll": lambda o, now: o.poll(now),
        "take": lambda o, now: o.take(now),
        "take_bytes": lambda o, now: o.take_bytes(now),
    }),
    "Subscriber": Recipe(_subscriber, {
        "poll": lambda o, now: o.poll(now),
        "take": lambda o, now: o.take(now),
        "take_bytes": lambda o, now: o.take_bytes(now),
    }),
    "ClientSession": Recipe(_client, {
        "close": lambda o, now: o.close(now),
        "on_connection_lost": lambda o, now: o.on_connection_lost(now),
        "on_data": lambda o, now: o.on_data(b"data: x\n\n", now),
        "on_eof": lambda o, now: o.on_eof(now),
        "on_network_changed": lambda o, now: o.on_network_changed(now),
        "on_offline": lambda o, now: o.on_offline(now),
        "on_online": lambda o, now: o.on_online(now),
        "on_response": lambda o, now: o.on_response(200, SSE_HEADERS, now),
        "on_timer": lambda o, now: o.on_timer(now),
        "start": lambda o, now: o.start(now),
    }),
    "ServerSession": Recipe(_server, {
        "close": lambda o, now: o.close(now),
        "continue_replay": lambda o, now: o.continue_replay(now),
        "is_heartbeat_due": lambda o, now: o.is_heartbeat_due(now),
        "on_request": lambda o, now: o.on_request("/events", [], now),
        "on_timer": lambda o, now: o.on_timer(now),
        "send": lambda o, now: o.send(Event(data="b"), now),
        "note_failure": lambda o, now: o.note_failure("stuck", now),
    }),
    "LongPollSession": Recipe(_long_poll, {
        "close": lambda o, now: o.close(now),
        "on_events": lambda o, now: o.on_events([], now),
        "on_published": lambda o, now: o.on_published(now),
        "on_request": lambda o, now: o.on_request(POLL_TARGET, [], now),
        "on_timer": lambda o, now: o.on_timer(now),
        "note_failure": lambda o, now: o.note_failure("stuck", now),
    }),
}

def objects_taking_now() -> list[tuple[str, str]]:
    """Every (public class, public method) of the package whose method takes ``now``."""
    found: set[tuple[str, str]] = set()
    for module in _public_modules():
        for name in module.__all__:
            cls = getattr(module, name)
            if not inspect.isclass(cls) or issubclass(cls, BaseException):
                continue
            if getattr(cls, "_is_protocol", False):
                continue  # a contract (SharedLog ...): its implementations are walked
            for method_name, method in inspect.getmembers(cls, inspect.isfunction):
                if method_name.startswith("_"):
                    continue
                if "now" in inspect.signature(method).parameters:
                    found.add((cls.__name__, method_name))
    return sorted(found)


def _snapshot(obj: Any) -> tuple[object, ...]:
    """What a refused call must not change, as far as public queries tell."""
    values: list[object] = []
    for name in ("state", "next_deadline", "__len__", "attempts", "buffered_count",
                 "delivered_count", "total_bytes", "is_running", "queued_bytes",
                 "has_pending", "ready_state", "last_event_id"):
        value = getattr(obj, name, None)
        if callable(value):
            value = value()
        values.append(value)
    return tuple(values)


def _cases() -> list[Any]:
    return [
        pytest.param(cls_name, method, id=f"{cls_name}.{method}")
        for cls_name, method in objects_taking_now()
    ]


def test_every_object_taking_now_has_a_recipe() -> None:
    """Each public method with a ``now`` is walked below (a new one needs a recipe), and no
    recipe or exemption names a method that no longer exists."""
    found = set(objects_taking_now())
    known = {(cls, method) for cls, recipe in RECIPES.items() for method in recipe.calls}
    assert found - known == set(), "add a recipe to RECIPES"
    assert known - found == set(), "remove the stale recipe"
    # The walk is not vacuous: it covers the state objects and the sessions.
    assert {"Backoff", "ReplayLog", "Sequencer", "ClientSession", "ServerSession"} <= {
        cls for cls, _ in found
    }


@pytest.mark.parametrize(("cls_name", "method"), _cases())
def test_now_going_backwards_is_refused(cls_name: str, method: str) -> None:
    """A ``now`` earlier than the object's clock raises ClockError, before anything changed;
    the same ``now`` as the clock is not refused for the clock."""
    recipe = RECIPES[cls_name]
    call = recipe.calls[method]
    obj = recipe.make()
    before = _snapshot(obj)
    with pytest.raises(ClockError) as info:
        call(obj, EARLIER)
    assert (info.value.now, info.value.latest) == (EARLIER, LATEST)
    assert _snapshot(obj) == before
    try:
        call(obj, LATEST)
    except ClockError:  # pragma: no cover - the failure this test exists to report
        pytest.fail(f"{cls_name}.{method} refused a now equal to its clock")
    except SSEError:
        pass  # refused for another reason (a state misuse): not the clock


@pytest.mark.parametrize(("cls_name", "method"), _cases())
def test_now_that_is_not_finite_is_refused(cls_name: str, method: str) -> None:
    """A ``now`` that is NaN, +inf or -inf raises ClockError (``latest`` is then ``None``)."""
    recipe = RECIPES[cls_name]
    for bad in (math.nan, math.inf, -math.inf):
        obj = recipe.make()
        with pytest.raises(ClockError) as info:
            recipe.calls[method](obj, bad)
        assert info.value.latest is None
