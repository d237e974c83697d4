"""Plumbing of the network-namespace tests: two namespaces joined by a veth pair, faults
applied with ``ip link`` and nftables, and the server and client scripts run inside them.

Everything here runs as root in the root namespace. Traffic only ever flows between the two
namespaces a test made itself (addresses in a private /24 that exists only inside them), and
:meth:`Netns.delete` removes both namespaces, which removes the veth pair with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

__all__ = [
    "HERE",
    "WAIT",
    "Netns",
    "Peer",
    "missing_prerequisite",
    "now",
    "start_peer",
]

#: Where the server and client scripts live.
HERE = Path(__file__).parent

#: Seconds any one wait may take; only a failure ever waits this long.
WAIT = 20.0

#: Namespace names: ``sse-a-<pid>-<k>`` (server side) and ``sse-b-<pid>-<k>`` (client side).
_NAME = re.compile(r"^sse-[ab]-(\d+)-\d+$")
_counter = itertools.count()


def _ip(*args: str, stdin: str | None = None) -> str:
    """Run ``ip ...`` (or ``ip netns exec ... <tool>``), raise with its stderr on failure."""
    result = subprocess.run(
        ["ip", *args], input=stdin, capture_output=True, text=True, timeout=10, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def missing_prerequisite() -> str | None:
    """Why these tests cannot run here (not root, no ``ip netns``), or ``None``."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "network-namespace tests need root on Linux"
    if shutil.which("ip") is None:
        return "network-namespace tests need iproute2's `ip`"
    name = f"sse-probe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
        _ip("netns", "del", name)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return f"`ip netns add` does not work here: {error}"
    return None


def _sweep_stale() -> None:
    """Delete namespaces left by an earlier run whose process is gone (a killed run)."""
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAME.match(name)
        if match is not None and not Path(f"/proc/{match.group(1)}").exists():
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", name)


class Netns:
    """Namespace ``a`` (server) and ``b`` (client), a veth pair between them, and faults.

    Attributes:
        names: Namespace name per side, ``{"a": ..., "b": ...}``.
        addresses: The side's address on the veth, ``{"a": "10.231.x.1", "b": "10.231.x.2"}``.
        devices: The side's veth device name.
    """

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{next(_counter)}"
        subnet = f"10.231.{os.getpid() % 250}"
        self.names = {"a": f"sse-a-{tag}", "b": f"sse-b-{tag}"}
        self.addresses = {"a": f"{subnet}.1", "b": f"{subnet}.2"}
        self.devices = {"a": "sse-va", "b": "sse-vb"}
        self._tables: set[tuple[str, str]] = set()

    def create(self) -> None:
        """Make both namespaces and the veth pair, address it and bring it up."""
        _sweep_stale()
        a, b = self.names["a"], self.names["b"]
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        # Created directly inside the namespaces: the names never meet the root namespace's.
        _ip("link", "add", self.devices["a"], "netns", a,
            "type", "veth", "peer", "name", self.devices["b"], "netns", b)
        for side in ("a", "b"):
            name, device = self.names[side], self.devices[side]
            _ip("-n", name, "addr", "add", f"{self.addresses[side]}/24", "dev", device)
            _ip("-n", name, "link", "set", device, "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def delete(self) -> None:
        """Delete both namespaces (and with them the veth pair); never raises."""
        for name in self.names.values():
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _ip("netns", "del", name)

    def command(self, side: str, *argv: str) -> list[str]:
        """The command line that runs ``argv`` inside the side's namespace."""
        return ["ip", "netns", "exec", self.names[side], *argv]

    # --- faults -------------------------------------------------------------------------------

    def link(self, side: str, *, is_up: bool) -> None:
        """Set the side's veth end down or up."""
        state = "up" if is_up else "down"
        _ip("-n", self.names[side], "link", "set", self.devices[side], state)

    def filter_input(self, side: str, table: str, rule: str) -> None:
        """Add nftables ``table`` in the side's namespace: ``rule`` on every packet that
        comes in from the other side (an input hook, so the side's own sends are untouched).
        """
        other = self.addresses["b" if side == "a" else "a"]
        script = (
            f"table inet {table} {{\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    ip saddr {other} {rule}\n"
            "  }\n"
            "}\n"
        )
        _ip("netns", "exec", self.names[side], "nft", "-f", "-", stdin=script)
        self._tables.add((side, table))

    def remove(self, side: str, table: str) -> None:
        """Delete a table :meth:`filter_input` added."""
        _ip("netns", "exec", self.names[side], "nft", "delete", "table", "inet", table)
        self._tables.discard((side, table))

    def counted(self, side: str, table: str) -> int:
        """Packets the ``counter`` statements of ``table`` have seen."""
        listing = _ip("netns", "exec", self.names[side], "nft", "-j", "list", "table", "inet",
                      table)
        total = 0
        for item in json.loads(listing)["nftables"]:
            for statement in item.get("rule", {}).get("expr", []):
                if "counter" in statement:
                    total += statement["counter"]["packets"]
        return total


class Peer:
    """A script running in a namespace; its stdout read as JSON lines as they come.

    Attributes:
        name: For messages.
        lines: Every line read so far, parsed.
    """

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.lines: list[dict[str, Any]] = []
        self._process = process
        self._changed = asyncio.Condition()
        self._is_eof = False
        self._stderr = bytearray()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._drain())]

    async def _read(self) -> None:
        assert self._process.stdout is not None
        while line := await self._process.stdout.readline():
            try:
                parsed = json.loads(line)
            except ValueError:  # not one of the script's lines: keep it for the messages
                parsed = {"kind": "raw", "t": 0.0, "text": line.decode(errors="replace")}
            async with self._changed:
                self.lines.append(parsed)
                self._changed.notify_all()
        async with self._changed:
            self._is_eof = True
            self._changed.notify_all()

    async def _drain(self) -> None:
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-16384]  # keep the end (a traceback) only

    async def wait_until(
        self, what: str, condition: Callable[[], bool], timeout: float = WAIT
    ) -> None:
        """Wait until ``condition()`` holds, checked again after each line; fails when the
        script ends first or after ``timeout`` seconds, saying what was awaited."""

        async def check() -> None:
            async with self._changed:
                while not condition():
                    if self._is_eof:
                        raise AssertionError(self._failure(f"ended before {what}"))
                    await self._changed.wait()

        try:
            await asyncio.wait_for(check(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(self._failure(f"no {what} within {timeout} s")) from None

    async def wait_for(
        self, what: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """The first line that matches ``predicate`` (see :meth:`wait_until`)."""
        found: list[dict[str, Any]] = []

        def condition() -> bool:
            found[:] = [line for line in self.lines if predicate(line)][:1]
            return bool(found)

        await self.wait_until(what, condition, timeout)
        return found[0]

    def _failure(self, message: str) -> str:
        stderr = self._stderr.decode(errors="replace").strip()
        return f"{self.name}: {message}; last lines {self.lines[-5:]}; stderr: {stderr[-2000:]}"

    async def exited(self, timeout: float = WAIT) -> int:
        """Wait for the script to exit by itself; its exit status."""
        try:
            return await asyncio.wait_for(self._process.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(self._failure(f"still running after {timeout} s")) from None

    async def stop(self, *, is_graceful: bool) -> None:
        """SIGTERM (graceful) or SIGKILL the script, wait for it and for its output."""
        process = self._process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM if is_graceful else signal.SIGKILL)
        try:
            await asyncio.wait_for(process.wait(), WAIT)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        try:
            await asyncio.wait_for(asyncio.gather(*self._tasks), WAIT)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def returncode(self) -> int | None:
        """The script's exit status, once it has exited."""
        return self._process.returncode


@contextlib.asynccontextmanager
async def start_peer(name: str, argv: list[str]) -> AsyncIterator[Peer]:
    """Run ``argv`` (an ``ip netns exec`` command line); SIGKILL it on the way out unless
    it has already been stopped."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peer = Peer(name, process)
    try:
        yield peer
    finally:
        await peer.stop(is_graceful=False)


def now() -> float:
    """The monotonic clock the scripts stamp their lines with (namespaces share it)."""
    return time.monotonic()
