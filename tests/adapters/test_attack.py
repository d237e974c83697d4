"""Replay amplification (issue 9, item 1): a made-up or stale ``Last-Event-ID`` must not buy
each non-reading client a copy of the replay log, nor stall the publisher.

Every server (asyncio, trio, sync, and the ASGI app under uvicorn) runs with its defaults in
a process of its own (``benchmarks/_attack_servers.py``, shared with
``benchmarks/bench_attack.py``), its replay log full (1,000 events of about 1 KiB), publishing
one event every 0.1 s. 1,000 clients then connect with an id the log cannot place and never
read: with a made-up id, and with ids of the previous server start's epoch (a deploy). The
server must hold well under 100 MiB more for them (its RSS growth plus what the kernel holds
in its connections' send queues), no publish may be held up for long (the event loop, or
the sync server's lock, stays free), and a client that connects in the middle of the attack
and reads must get every event once, in order.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks._attack_servers import (
    SSE_CORE_SERVERS,
    AttackResult,
    Reader,
    ServerProcess,
    attacked,
    raise_fd_limit,
    request_bytes,
    run_attack,
)

pytest.importorskip("h11", reason="the adapters need the http extra")

#: Non-reading connections per attack (the issue's figure).
CONNECTIONS = 1000
#: What the attack may make the server hold: RSS growth plus its kernel send queues. Today
#: 1,000 such connections hold about 1 GiB; a bounded replay needs a few KiB per connection.
MAX_HELD_MIB = 100
#: How long one publish may be held up (from when it could start to its end: see
#: ``_Schedule`` in ``benchmarks/_attack_servers.py``). The same 1,000 connections without the
#: header hold a publish up 0.1-0.3 s at worst on a loaded 2-core machine, 0.2-0.6 s under
#: uvicorn; the eager replay holds it up for 1.5-4 s (asyncio, ASGI). Lateness against the
#: schedule is not bounded: 1,000 plain clients at 10 events/s already put uvicorn up to 3 s
#: behind there with no attack at all (sse-starlette too), which is capacity, not this attack.
MAX_STALL = 1.0
#: Seconds the reader may take to get the last event published before the check.
READER_TIMEOUT = 15.0


@pytest.fixture(autouse=True)
def _many_sockets() -> None:
    raise_fd_limit()


@pytest.fixture(params=SSE_CORE_SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    if request.param == "asgi":
        pytest.importorskip("uvicorn", reason="the ASGI variant runs under uvicorn")
    if request.param == "trio":
        pytest.importorskip("trio", reason="the trio extra is not installed")
    return str(request.param)


def attack(server: ServerProcess, request_for: Callable[[int], bytes]) -> list[str]:
    """Run the attack with a reading client joining half-way; what went wrong (or ``[]``)."""
    readers: list[Reader] = []

    def join_half_way(opened: int) -> None:
        if not readers and opened >= CONNECTIONS // 2:
            readers.append(Reader(server.port))

    result, sockets = run_attack(
        server, CONNECTIONS, request_for, settle=2.0, during=join_half_way, others=1
    )
    with attacked(sockets):
        (reader,) = readers
        try:
            last_id = server.stats()["last_id"]
            has_last = reader.wait_for(last_id, READER_TIMEOUT)
        finally:
            reader.close()
    problems = check(result)
    if not has_last:
        problems.append(f"the reading client did not get {last_id} within {READER_TIMEOUT} s"
                        f" (it got {len(reader.ids)} events)")
    problems += [f"the reading client: {problem}" for problem in reader.problems()]
    return problems


def check(result: AttackResult) -> list[str]:
    """The bounds one attack must stay within, as messages with the figures seen."""
    row = result.row()
    figures = (
        f"[{result.server}: {row['connected']} connections; RSS {row['rss_before_mib']:.0f}"
        f" -> {row['rss_after_mib']:.0f} MiB (peak {row['peak_mib']:.0f}), kernel send"
        f" queues {row['send_queue_mib']:.0f} MiB; a publish held up {row['stall_max_ms']:.0f} ms"
        f" at most (p99 {row['stall_p99_ms']:.0f} ms), up to {row['late_max_ms']:.0f} ms behind"
        f" schedule]"
    )
    print(figures)  # shown with -s or -rA, to compare runs
    problems = []
    if result.connected < CONNECTIONS * 0.95:
        problems.append(f"the attack opened only {result.connected} connections {figures}")
    if row["held_mib"] >= MAX_HELD_MIB:
        problems.append(
            f"the attack holds {row['held_mib']:.0f} MiB >= {MAX_HELD_MIB} MiB {figures}"
        )
    if row["stall_max_ms"] >= MAX_STALL * 1000:
        problems.append(
            f"a publish was held up {row['stall_max_ms']:.0f} ms >= {MAX_STALL * 1000:.0f} ms"
            f" {figures}"
        )
    return problems


def test_made_up_last_event_id(server_name: str) -> None:
    """1,000 non-readers sending ``Last-Event-ID: bogus-1`` (about 100 bytes each) hold well
    under 100 MiB of the server's memory, no publish is held up for long, and a client that
    connects meanwhile gets every event once, in order."""
    request = request_bytes(last_event_id="bogus-1")
    with ServerProcess(server_name) as server:
        problems = attack(server, lambda i: request)
    assert not problems, "\n".join(problems)


def test_ids_of_the_previous_epoch_after_a_deploy(server_name: str) -> None:
    """After a restart (a new epoch, the log full again), 1,000 non-readers coming back with
    ids of the old epoch hold well under 100 MiB, no publish is held up for long, and a new
    client gets every event once, in order."""
    with ServerProcess(server_name) as old:
        old_last = old.stats()["last_id"]
    epoch, _, newest = old_last.rpartition("-")
    old_ids = [f"{epoch}-{int(newest) - k}" for k in range(CONNECTIONS)]
    with ServerProcess(server_name) as server:
        assert server.epoch != epoch  # a deploy: the ids of before cannot be placed
        problems = attack(server, lambda i: request_bytes(last_event_id=old_ids[i]))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("socket_server", ["asyncio", "trio", "sync"])
def test_legitimate_looking_full_replays(socket_server: str) -> None:
    """1,000 non-readers resuming from an id near the start of the log (a real, full replay
    of about 900 KiB each) hold well under 100 MiB: at most ``max_replays`` replays run at
    once (each read from the log as the client takes it), the others are told to come back
    later; no publish is held up for long, and a new client gets every event once, in
    order.

    The socket servers take a replay's next step only once the kernel holds less than one
    step the client has not acknowledged (``SIOCOUTQ``). An ASGI app cannot see the socket:
    under uvicorn a replay handed to the server goes into the kernel's send buffer whether
    or not the client reads (documented in docs/limits.rst), so the ASGI app is not held to
    this bound.
    """
    with ServerProcess(socket_server) as server:
        epoch, _, newest = server.stats()["last_id"].rpartition("-")
        request = request_bytes(last_event_id=f"{epoch}-{int(newest) - 900}")
        problems = attack(server, lambda i: request)
    assert not problems, "\n".join(problems)


def test_the_reading_client_notices_a_lost_or_repeated_event() -> None:
    """The check on the reading client can fail: with no attack it gets every event from its
    position on; with one event taken out, or one repeated, it reports the first wrong one."""
    with ServerProcess("asyncio") as server:
        reader = Reader(server.port)
        try:
            last_id = server.stats()["last_id"]
            epoch, _, n = last_id.rpartition("-")
            # The reader may be subscribed a publish or two after that id.
            assert reader.wait_for(f"{epoch}-{int(n) + 8}", READER_TIMEOUT)
        finally:
            reader.close()
    assert reader.problems() == []
    assert len(reader.ids) >= 5
    position = reader.position
    assert position is not None
    complete = list(reader.ids)
    reader.ids = complete[:2] + complete[3:]
    assert reader.problems() == [
        f"event 2 after position {position} is {complete[3]}, expected {complete[2]}"
    ]
    reader.ids = complete[:3] + complete[2:]
    assert reader.problems() == [
        f"event 3 after position {position} is {complete[2]}, expected {complete[3]}"
    ]
