"""Real kernel TCP between two network namespaces, under real network faults.

The asyncio ``EventStreamServer`` runs in namespace ``a`` (``stream_server.py``), the asyncio
``EventSource`` in namespace ``b`` (``stream_client.py``), joined by a veth pair. From the root
namespace a test then sets the link down and up, or adds nftables rules: ``reject with tcp
reset``, ``drop`` both ways (a black hole), random loss. Each test checks that the client got
every published event exactly once and in order -- or an explicit gap report when the fault
outlasted the replay window -- and that its status went through ``reconnecting`` and back to
``streaming`` when the fault broke the connection, and never left ``streaming`` when it did not.
One more checks that the server lets go of a client that vanished behind a black hole
(its ``send_timeout``: ``TCP_USER_TIMEOUT`` with heartbeats).

Needs root and ``ip netns`` (the module skips otherwise, or fails when
``SSE_CORE_REQUIRE_NETNS`` is set, as CI should), and ``nft`` for the nftables faults
(``.ci/peers.sh`` installs it). Each test prints its figures (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ._netns import HERE, WAIT, Netns, Peer, missing_prerequisite, now, start_peer

_why_not = missing_prerequisite()
if _why_not is not None:
    if os.environ.get("SSE_CORE_REQUIRE_NETNS"):
        pytest.fail(f"SSE_CORE_REQUIRE_NETNS is set but {_why_not}", pytrace=False)
    pytest.skip(_why_not, allow_module_level=True)

#: Timings kept short so that the whole file runs in seconds.
HEARTBEAT = 0.5
STALL = 2.0
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 1.0
#: The server's send_timeout (TCP_USER_TIMEOUT): a client that stops acknowledging is let go.
SEND_TIMEOUT = STALL

#: The published sequence: 100 events, 50 a second (2 s).
COUNT = 100
INTERVAL = 0.02
#: A replay window that keeps the whole sequence, and one that a fault outlasts.
WIDE_WINDOW = 1000
NARROW_WINDOW = 10

#: How long the link is down: well under the stall timeout. The silence the client sees is
#: longer (up to ~1.3 s seen): the server's side must resolve the client's address again, and
#: ARP probes once a second.
FLAP = 0.3
#: Percentage of packets dropped at random in each direction.
LOSS = 15


@pytest.fixture
def netns() -> Iterator[Netns]:
    """Two fresh namespaces joined by a veth pair, deleted afterwards whatever happens."""
    namespaces = Netns()
    try:
        namespaces.create()
        yield namespaces
    finally:
        namespaces.delete()


@pytest.fixture
def nft() -> None:
    """Skip (or fail, under ``SSE_CORE_REQUIRE_NETNS``) when nftables is not installed."""
    if shutil.which("nft") is None:
        message = "nft is missing: run .ci/peers.sh (apt-get install -y nftables)"
        if os.environ.get("SSE_CORE_REQUIRE_NETNS"):
            pytest.fail(message)
        pytest.skip(message)


class Run:
    """The server and client of one test, and what they printed."""

    def __init__(self, server: Peer, client: Peer, port: int, count: int) -> None:
        self.server = server
        self.client = client
        self.port = port
        self.count = count

    def published(self) -> list[tuple[int, str]]:
        """``(n, id)`` of every event the server published so far, in order."""
        return [(line["n"], line["id"]) for line in self.server.lines if "n" in line]

    def received(self) -> list[tuple[int, str]]:
        """``(n, id)`` of every event the client delivered so far, in order."""
        return [(line["n"], line["id"]) for line in self.lines("event")]

    def lines(self, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
        """The client's lines of one kind, stamped at or after ``since``."""
        return [line for line in self.client.lines if line["kind"] == kind and line["t"] >= since]

    def states(self, since: float = 0.0) -> list[str]:
        """The client's status changes, stamped at or after ``since``."""
        return [line["state"] for line in self.lines("status", since)]

    async def received_at_least(self, n: int) -> None:
        """Wait until the client has delivered the event numbered ``n``."""
        await self.client.wait_for(f"event {n}", lambda line: line.get("n", -1) >= n)

    async def published_at_least(self, n: int) -> None:
        """Wait until the server has published the event numbered ``n``."""
        await self.server.wait_for(f"publication {n}", lambda line: line.get("n", -1) >= n)

    async def status(self, state: str, since: float, count: int = 1) -> dict[str, Any]:
        """Wait for the ``count``-th change to ``state`` stamped at or after ``since``."""

        def matching() -> list[dict[str, Any]]:
            return [line for line in self.lines("status", since) if line["state"] == state]

        await self.client.wait_until(f"status {state} #{count}", lambda: len(matching()) >= count)
        return matching()[count - 1]

    async def finish(self, timeout: float = WAIT) -> dict[str, Any]:
        """Wait for the client to end, then stop the server; the client's end line."""
        end = await self.client.wait_for("the end", lambda line: line["kind"] == "end", timeout)
        assert await self.client.exited() == 0
        await self.published_at_least(self.count - 1)
        await self.server.stop(is_graceful=True)
        assert "end" in self.server.lines[-1], self.server.lines[-3:]
        return end

    def server_end(self) -> dict[str, Any]:
        """The server's last line: connections it still held when stopped, drops."""
        return self.server.lines[-1]

    def figures(self, end: dict[str, Any]) -> str:
        """Events, reconnections, and the connections the server still held at the end."""
        return (f"{len(self.received())} events, {end['metrics']['reconnections']} "
                f"reconnections, the server held {self.server_end()['subscribers']} "
                f"connection(s) when stopped")


@contextlib.asynccontextmanager
async def stream(netns: Netns, *, window: int = WIDE_WINDOW) -> AsyncIterator[Run]:
    """The server in namespace ``a`` publishing :data:`COUNT` events, the client in ``b``."""
    host = netns.addresses["a"]
    server_argv = netns.command(
        "a", sys.executable, str(HERE / "stream_server.py"), "--host", host,
        "--count", str(COUNT), "--interval", str(INTERVAL), "--window", str(window),
        "--heartbeat", str(HEARTBEAT), "--send-timeout", str(SEND_TIMEOUT),
        "--deadline", str(3 * WAIT),
    )
    async with start_peer("server", server_argv) as server:
        port = (await server.wait_for("the port", lambda line: "port" in line))["port"]
        client_argv = netns.command(
            "b", sys.executable, str(HERE / "stream_client.py"),
            "--url", f"http://{host}:{port}/events", "--last", str(COUNT - 1),
            "--stall", str(STALL), "--backoff-initial", str(BACKOFF_INITIAL),
            "--backoff-max", str(BACKOFF_MAX), "--deadline", str(2 * WAIT),
        )
        async with start_peer("client", client_argv) as client:
            yield Run(server, client, port, COUNT)


def assert_exactly_once_in_order(run: Run, end: dict[str, Any]) -> None:
    """Every published event delivered once, in order, and no gap reported."""
    assert end["why"] == "last"
    assert [n for n, _ in run.published()] == list(range(COUNT))
    assert run.received() == run.published()
    assert run.lines("gap") == []
    assert end["metrics"]["gaps_reported"] == 0


def assert_broke_and_recovered(run: Run, fault_at: float, healed_at: float) -> None:
    """The status went to ``reconnecting`` during the fault, never back to ``streaming``
    before it was healed, and ends ``streaming`` after."""
    during = [line for line in run.lines("status", fault_at) if line["t"] < healed_at]
    assert during and during[0]["state"] == "reconnecting", during
    assert "streaming" not in [line["state"] for line in during]
    after = run.lines("status", healed_at)
    assert after and after[-1]["state"] == "streaming", after


def recovery(run: Run, fault_at: float, healed_at: float) -> str:
    """Figures of one fault: detection, failed attempts, time to recover, replayed events."""
    lost_at = run.lines("status", fault_at)[0]["t"]
    back_at = next(line["t"] for line in run.lines("status", healed_at)
                   if line["state"] == "streaming")
    failed = len([line for line in run.lines("status", fault_at)
                  if line["state"] == "reconnecting" and line["t"] < healed_at])
    missed = len([line for line in run.server.lines
                  if "n" in line and fault_at <= line["t"] < back_at])
    return (f"fault lasted {healed_at - fault_at:.2f} s, detected after "
            f"{lost_at - fault_at:.2f} s, {failed} reconnecting spells during it, "
            f"streaming again {back_at - healed_at:.2f} s after it was healed, "
            f"{missed} events published meanwhile")


@pytest.mark.parametrize("side", ["a", "b"], ids=["server-side", "client-side"])
def test_link_flap_shorter_than_the_stall_timeout_keeps_the_connection(
    netns: Netns, side: str
) -> None:
    """The veth goes down for 0.3 s (under the 2 s stall timeout) and up again: TCP
    retransmits what was sent meanwhile, so the one connection survives -- no reconnection,
    no status change -- and every event arrives exactly once, in order, late."""

    async def main() -> tuple[Run, dict[str, Any], float, float]:
        async with stream(netns) as run:
            await run.received_at_least(10)
            fault_at = now()
            netns.link(side, is_up=False)
            await asyncio.sleep(FLAP)  # the fault's length, not a synchronisation
            netns.link(side, is_up=True)
            healed_at = now()
            return run, await run.finish(), fault_at, healed_at

    run, end, _, healed_at = asyncio.run(main())
    assert_exactly_once_in_order(run, end)
    assert run.states() == ["connecting", "connected", "streaming"]
    assert end["metrics"]["connection_attempts"] == 1
    assert end["metrics"]["reconnections"] == 0
    arrivals = [line["t"] for line in run.lines("event")]
    silence = max(later - earlier for earlier, later in itertools.pairwise(arrivals))
    assert silence >= FLAP - 0.1  # the flap really held the events back
    assert silence < STALL
    first_after = next(t for t in arrivals if t >= healed_at)
    print(f"\nlink flap ({side}): {run.figures(end)}, longest silence {silence:.2f} s, "
          f"first event {first_after - healed_at:.2f} s after link up")


def test_tcp_reset_reconnects_and_replays(nft: None, netns: Netns) -> None:
    """The server's namespace answers the client's packets with TCP resets (nftables
    ``reject with tcp reset``) while events keep being published: the client loses the
    connection at once, its reconnections are refused until the rule goes, then it resumes
    with ``Last-Event-ID`` and gets what it missed -- every event once, in order."""

    async def main() -> tuple[Run, dict[str, Any], float, float]:
        async with stream(netns) as run:
            await run.received_at_least(10)
            fault_at = now()
            netns.filter_input("a", "fault", f"tcp dport {run.port} reject with tcp reset")
            await run.status("reconnecting", fault_at, count=2)  # a reconnection refused too
            await run.published_at_least(run.published()[-1][0] + 10)
            # Read the clock before the rule goes: the client may be streaming again before
            # the nft command returns, so "healed" is the moment the removal starts.
            healed_at = now()
            netns.remove("a", "fault")
            return run, await run.finish(), fault_at, healed_at

    run, end, fault_at, healed_at = asyncio.run(main())
    assert_exactly_once_in_order(run, end)
    assert_broke_and_recovered(run, fault_at, healed_at)
    first = run.lines("status", fault_at)[0]
    assert "reset" in (first["reason"] or "").lower(), first
    assert end["metrics"]["reconnections"] >= 1
    print(f"\ntcp reset: {run.figures(end)}; {recovery(run, fault_at, healed_at)}")


def test_black_hole_fires_the_stall_timeout_and_recovers(nft: None, netns: Netns) -> None:
    """Every packet between the namespaces is dropped, both ways (a cable cut): nothing
    tells the client, so its 2 s stall timeout has to notice; its next connection attempt
    hangs (the SYNs vanish) and the same timeout gives up on it; once the rules go the
    client resumes and gets every event once, in order."""

    async def main() -> tuple[Run, dict[str, Any], float, float]:
        async with stream(netns) as run:
            await run.received_at_least(10)
            fault_at = now()
            netns.filter_input("a", "fault", "drop")
            netns.filter_input("b", "fault", "drop")
            await run.status("reconnecting", fault_at, count=2)  # a hanging connect given up
            healed_at = now()  # before the rules go (see test_tcp_reset_reconnects_and_replays)
            netns.remove("a", "fault")
            netns.remove("b", "fault")
            return run, await run.finish(), fault_at, healed_at

    run, end, fault_at, healed_at = asyncio.run(main())
    assert_exactly_once_in_order(run, end)
    assert_broke_and_recovered(run, fault_at, healed_at)
    spells = [line for line in run.lines("status", fault_at)
              if line["state"] == "reconnecting" and line["t"] < healed_at]
    assert all("stall" in (line["reason"] or "") for line in spells[:2]), spells
    assert spells[0]["t"] - fault_at >= STALL - HEARTBEAT  # the stall timer, not an error
    assert end["metrics"]["reconnections"] >= 1
    print(f"\nblack hole: {run.figures(end)}; {recovery(run, fault_at, healed_at)}")


def test_random_loss_for_the_whole_run(nft: None, netns: Netns) -> None:
    """15 % of the packets are dropped at random in each direction for the whole run,
    connection set-up included: every event still arrives exactly once, in order (TCP
    retransmits; a reconnection, if a stall fires, resumes from the replay log)."""

    async def main() -> tuple[Run, dict[str, Any], float]:
        for side in ("a", "b"):
            netns.filter_input(side, "loss", f"numgen random mod 100 < {LOSS} counter drop")
        started_at = now()
        async with stream(netns) as run:
            end = await run.finish(2 * WAIT)  # a few stalls, at worst
        return run, end, now() - started_at

    run, end, elapsed = asyncio.run(main())
    assert_exactly_once_in_order(run, end)
    dropped = {side: netns.counted(side, "loss") for side in ("a", "b")}
    assert dropped["a"] > 0 and dropped["b"] > 0  # the loss really happened
    print(f"\nrandom loss {LOSS} %: {run.figures(end)} in {elapsed:.1f} s, "
          f"{dropped['a']} packets dropped towards the server and {dropped['b']} towards "
          f"the client, {end['metrics']['messages_deduplicated']} duplicates dropped")


def test_reset_beyond_the_replay_window_reports_a_gap(nft: None, netns: Netns) -> None:
    """With a replay window of 10 events, a reset fault lasts while more than 10 are
    published: the client cannot get them back, so it reports a ``too_old`` gap from the
    last id it had -- never a silent loss -- then gets what the log still held and the rest,
    once and in order."""

    async def main() -> tuple[Run, dict[str, Any], float, float]:
        async with stream(netns, window=NARROW_WINDOW) as run:
            await run.received_at_least(10)
            fault_at = now()
            netns.filter_input("a", "fault", f"tcp dport {run.port} reject with tcp reset")
            await run.status("reconnecting", fault_at)
            last_seen = run.received()[-1][0]  # the client is cut off: this is its last
            await run.published_at_least(last_seen + NARROW_WINDOW + 5)
            healed_at = now()  # before the rule goes (see test_tcp_reset_reconnects_and_replays)
            netns.remove("a", "fault")
            return run, await run.finish(), fault_at, healed_at

    run, end, fault_at, healed_at = asyncio.run(main())
    assert end["why"] == "last"
    published = run.published()
    assert [n for n, _ in published] == list(range(COUNT))
    gaps = run.lines("gap")
    assert [gap["reason"] for gap in gaps] == ["too_old"]
    before = [(line["n"], line["id"]) for line in run.lines("event") if line["t"] <= gaps[0]["t"]]
    after = [(line["n"], line["id"]) for line in run.lines("event") if line["t"] > gaps[0]["t"]]
    assert before == published[: len(before)]  # exactly once, in order, up to the fault
    assert gaps[0]["last_event_id"] == before[-1][1]  # the gap starts where the client was
    resumed_at = after[0][0]
    assert resumed_at > len(before)  # events were missed ...
    assert after == published[resumed_at:]  # ... and the rest came once, in order
    assert end["metrics"]["gaps_reported"] == 1
    assert_broke_and_recovered(run, fault_at, healed_at)
    print(f"\nreset beyond the replay window: {len(before)} events, a too_old gap of "
          f"{resumed_at - len(before)} events, then {len(after)} events; "
          f"{run.figures(end)}; {recovery(run, fault_at, healed_at)}")


#: Seconds within which a server should let go of a client that vanished: three times what
#: the client itself allows (its stall timeout) before giving up on a silent server.
VANISHED_LIMIT = 3 * STALL


def test_server_lets_go_of_a_client_that_vanished(nft: None, netns: Netns) -> None:
    """A client vanishes behind a black hole (its process dies, its FIN never arrives, as a
    phone leaving coverage): the server, which keeps sending heartbeats nobody acknowledges,
    should release that connection's slot within a few stall timeouts."""

    async def main() -> float:
        async with stream(netns) as run:
            await run.received_at_least(10)
            netns.filter_input("a", "fault", "drop")
            netns.filter_input("b", "fault", "drop")
            await run.client.stop(is_graceful=False)
            vanished_at = now()
            await run.server.wait_for(
                "release of the vanished client",
                lambda line: line.get("subscribers") == 0 and line.get("t", 0.0) >= vanished_at,
                VANISHED_LIMIT,
            )
            return now() - vanished_at

    released_after = asyncio.run(main())
    print(f"\nvanished client: released by the server after {released_after:.1f} s")
