"""The load benchmarks' lean clients: many SSE streams read by one ``select.epoll`` loop.

``benchmarks.bench_load`` and ``benchmarks.bench_scaleout`` measure a server's fan-out
with thousands of clients on the same small machine. Their first clients (an asyncio
protocol per connection, a chunk decoder and sse_core's full ``Parser``) cost as much CPU
per delivery as the servers they measure, so the latency they reported was largely their
own. These clients do the least that still checks every delivery:

- one or more client processes (``processes``), each with one ``select.epoll`` over raw
  non-blocking sockets, nothing per connection but a small slotted record;
- each ready socket's bytes are read with one ``recv`` into that record's buffers; the
  chunked body is decoded by :func:`dechunk` (RFC 9112 section 7.1: chunk size, extensions
  skipped, the CRLF after the data checked, any split of the bytes), and the event stream
  is cut at blank lines (LF or CRLF line ends, WHATWG HTML "Server-sent events" 9.2.6);
  only the ``id`` and ``data`` fields of each event are looked at. The common case, a
  chunk holding exactly one stamped event (what sse_core and the asyncio floor write), is
  taken by one regular expression a chunk with its size checked (:func:`whole_chunks`);
  anything else goes the general way;
- every event the benchmarks publish carries ``"<publish time> <sequence> x..."`` in its
  data: each client checks that it gets sequence 0, 1, 2, ... of the window, each once and
  in order, with an ``id`` unlike the one before, and records publish -> receipt; the ids
  each event came with are gathered over every client (one each, when all saw it alike);
- the receipt time is read once per epoll batch, *after* that batch's reads and before
  they are decoded: it is when the client process had read the socket, not when the bytes
  reached it (which is earlier by at most the batch's reads, and by however long the
  process waited for a core). ``batch_wait`` makes each process sleep that long after a
  batch of reads that was not full: fewer wake-ups, receipt times up to that much later.

The benchmark process drives its client processes with one-line commands on their stdin
(:class:`LeanClients`); each answers one JSON line. The latencies come back as a binary
file of doubles. Every buffer is bounded (:data:`MAX_LINE`, :data:`MAX_EVENT`): a stream
that breaks a bound or the chunked framing is closed and counted as broken.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import re
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The longest chunk-size line (with its extensions) or response head, in bytes.
MAX_LINE = 8192
#: The longest event (the text up to its blank line), in bytes.
MAX_EVENT = 1 << 20
#: The most ready sockets handled per epoll batch.
BATCH = 512
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_ROOT = Path(__file__).resolve().parent.parent


class FramingError(ValueError):
    """The bytes broke the chunked framing (RFC 9112 section 7.1) or a buffer bound."""


@dataclass
class Window:
    """What a set of clients received between :meth:`LeanClients.start_window` and the end
    of :meth:`LeanClients.wait`: the checks' outcome, the latencies and the CPU spent."""

    clients: int = 0
    events: int = 0
    delivered: int = 0
    complete: int = 0  # clients that got every event of the window, once, in order
    errors: int = 0  # deliveries out of sequence, repeated, or with a repeated id
    broken: int = 0  # streams closed, or closed for broken framing
    example: str = ""  # the first error, for the report
    cpu_s: float = 0.0  # the client processes' CPU time (user + system), summed
    sys_s: float = 0.0  # of it, system time (the kernel's reads and TCP work)
    latencies: list[float] = field(default_factory=list)
    ids: dict[int, set[str]] = field(default_factory=dict)  # sequence -> the ids it came with
    batches: int = 0  # epoll batches that read at least one socket
    reads: int = 0  # reads that returned bytes

    @property
    def most_ids_per_event(self) -> int:
        """The most different ids one event came with (1 when every client saw it alike)."""
        return max((len(ids) for ids in self.ids.values()), default=0)

    def add(self, other: Window) -> None:
        """Fold another process's window into this one."""
        self.clients += other.clients
        self.events = max(self.events, other.events)
        self.delivered += other.delivered
        self.complete += other.complete
        self.errors += other.errors
        self.broken += other.broken
        self.example = self.example or other.example
        self.cpu_s += other.cpu_s
        self.sys_s += other.sys_s
        self.latencies += other.latencies
        for sequence, ids in other.ids.items():
            self.ids.setdefault(sequence, set()).update(ids)
        self.batches += other.batches
        self.reads += other.reads


def dechunk(state: list[int], buffer: bytes, out: list[bytes]) -> bytes:
    """Decode what ``buffer`` holds of a chunked body (RFC 9112 section 7.1) into ``out``.

    Args:
        state: ``[data_left, crlf_left, ended]``: the bytes of the current chunk's data
            still to come, of the CRLF after it (2, 1 or 0), and 1 once the last chunk came;
            updated in place.
        buffer: the undecoded bytes kept from before followed by the new ones.
        out: receives the chunks' data, in order.

    Returns:
        The bytes to keep for the next call: an incomplete chunk-size line (a part of the
        CRLF after a chunk's data is counted in ``state`` instead).

    Raises:
        FramingError: a chunk size that is not hexadecimal digits, a chunk's data not
            followed by CRLF, or a chunk-size line longer than :data:`MAX_LINE`.
    """
    data_left, crlf_left, ended = state
    position, length = 0, len(buffer)
    while not ended:
        if data_left:
            end = position + data_left
            if end > length:
                out.append(buffer[position:])
                data_left = end - length
                position = length
                break
            out.append(buffer[position:end])
            position, data_left, crlf_left = end, 0, 2
        while crlf_left and position < length:  # the CRLF after a chunk's data
            if buffer[position] != (13 if crlf_left == 2 else 10):
                raise FramingError("a chunk's data is not followed by CRLF")
            position, crlf_left = position + 1, crlf_left - 1
        if crlf_left:
            break
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            if length - position > MAX_LINE:
                raise FramingError("a chunk-size line is too long")
            break
        line = buffer[position:line_end]
        if b";" in line:  # chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
            line = line.split(b";", 1)[0].rstrip(b" \t")
        if not line or line.translate(None, _HEX_DIGITS):
            raise FramingError(f"a chunk size that is not hexadecimal: {line[:40]!r}")
        size = int(line, 16)
        position = line_end + 2
        if size == 0:  # the last chunk: trailers may follow; the stream is over
            ended = 1
        data_left = size
    state[0], state[1], state[2] = data_left, crlf_left, ended
    return buffer[position:]


def stamped_events(text: bytes, events: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """Cut an event stream's text at its blank lines; keep the ``id`` of each event whose
    data starts with a digit (a benchmark's stamped event), and the first two words of its
    data: the publish time and the sequence.

    Args:
        text: the stream's text kept from before followed by the new text; lines end with
            LF or CRLF (a lone CR, allowed by the spec, is not recognised: the benchmarks'
            servers do not write one, and a miss shows as missing deliveries).
        events: receives each stamped event's ``(id, stamp, sequence)`` (the id ``b""``
            when the event has no ``id`` field).

    Returns:
        The text of the event not complete yet.

    Raises:
        ValueError: a stamped event's data without a sequence after its stamp.
    """
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n")
    start = 0
    while True:
        end = text.find(b"\n\n", start)
        if end < 0:
            break
        block = text[start : end + 1]
        start = end + 2
        if block.startswith(b"data:"):
            at = 5
        else:
            at = block.find(b"\ndata:")
            if at < 0:
                continue  # no data: a comment or a field only, nothing dispatched
            at += 6
        data = block[at : block.index(b"\n", at)]
        if data[:1] == b" ":
            data = data[1:]
        if not data[:1].isdigit():
            continue
        if block.startswith(b"id:"):
            at = 3
        else:
            at = block.find(b"\nid:")
            at = at + 4 if at >= 0 else -1
        if at < 0:
            event_id = b""
        else:
            event_id = block[at : block.index(b"\n", at)]
            if event_id[:1] == b" ":
                event_id = event_id[1:]
        stamp, sequence, _ = data.split(b" ", 2)
        events.append((event_id, stamp, sequence))
    return text[start:]


#: One whole chunk holding one whole stamped event, LF line ends, ``id`` then ``data``
#: (what sse_core and the asyncio floor write): size, id, stamp, sequence.
_CHUNK_EVENT = re.compile(
    rb"([0-9A-Fa-f]{1,8})\r\n(?:id: ?([^\n]*)\n)?data: ?([0-9][0-9.]*) ([0-9]+) [^\n]*\n\n\r\n"
)


def whole_chunks(data: bytes, events: list[tuple[bytes, bytes, bytes]]) -> int:
    """The fast path: the chunks at the start of ``data`` that each hold exactly one whole
    stamped event (the chunk size checked against the match), as :func:`stamped_events`
    gives them, into ``events``.

    Returns:
        Where the first byte not taken is: the caller decodes the rest the general way.
    """
    position, match = 0, _CHUNK_EVENT.match
    while True:
        found = match(data, position)
        if found is None:
            return position
        end = found.end()
        if int(found[1], 16) != end - found.end(1) - 4:  # the chunk is not this one event
            return position
        events.append((found[2] or b"", found[3], found[4]))
        position = end


class _Stream:
    """One connection's state in a client process."""

    __slots__ = (
        "chunk", "errors", "head", "is_chunked", "is_streaming", "last_id", "next_sequence",
        "raw", "received", "socket", "text",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.head = b""
        self.is_streaming = False
        self.is_chunked = False
        self.chunk = [0, 0, 0]
        self.raw = b""
        self.text = b""
        self.received = 0  # events in the window (before one: any stamped event)
        self.next_sequence = 0
        self.last_id = b""
        self.errors = 0

    def body(self, data: bytes) -> bytes:
        """The event-stream text in ``data`` (after the response head, dechunked)."""
        if not self.is_streaming:
            head = self.head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                if len(head) > MAX_LINE:
                    raise FramingError("the response head is too long")
                self.head = head
                return b""
            lowered = head[:end].lower()
            if not lowered.startswith(b"http/1.1 200 ") and not lowered.startswith(
                b"http/1.0 200 "
            ):
                raise FramingError(f"not a 200 answer: {head[:40]!r}")
            self.is_chunked = b"\r\ntransfer-encoding: chunked" in lowered
            self.is_streaming = True
            self.head = b""
            data = head[end + 4 :]
        if not self.is_chunked:
            return data
        out: list[bytes] = []
        self.raw = dechunk(self.chunk, self.raw + data if self.raw else data, out)
        if self.chunk[2]:
            raise FramingError("the stream ended (last chunk)")
        return b"".join(out) if len(out) != 1 else out[0]


class _ClientProcess:
    """A client process's loop: its streams, the window's checks, and its commands;
    ``batch_wait`` seconds of sleep after each batch of reads that was not full."""

    def __init__(self, batch_wait: float = 0.0) -> None:
        self.epoll = select.epoll()
        self.streams: dict[int, _Stream] = {}
        self.broken = 0
        self.example = ""
        self.events = 0  # the window's events; 0: no window (only count)
        self.complete = 0
        self.latencies = array.array("d")
        self.ids: dict[int, set[bytes]] = {}
        self.cpu_start = (0.0, 0.0)
        self.cpu_end: tuple[float, float] | None = None
        self.batches = 0
        self.reads = 0
        self.waiting: float | None = None  # the deadline of a ``wait`` not answered yet
        self.command_buffer = b""
        self.is_running = True
        self.batch_wait = batch_wait

    # --- commands ---

    def command(self, words: list[str]) -> dict[str, Any] | None:
        """Carry out one command; its answer (``None``: answered later)."""
        name = words[0]
        if name == "connect":
            return self.connect(int(words[1]), int(words[2]), words[3])
        if name == "status":
            received = [s.received for s in self.streams.values()]
            return {
                "clients": len(self.streams),
                "streaming": sum(1 for s in self.streams.values() if s.is_streaming),
                "least": min(received, default=0),
                "warmed": sum(1 for count in received if count),
                "broken": self.broken,
            }
        if name == "window":
            self.start_window(int(words[1]))
            return {"started": True}
        if name == "wait":
            self.waiting = time.monotonic() + float(words[1])
            return None
        if name == "result":
            return self.result(words[1])
        if name == "quit":
            self.is_running = False
            return {"quit": True}
        raise ValueError(f"unknown command {name!r}")

    def connect(self, port: int, count: int, http: str) -> dict[str, Any]:
        request = (
            f"GET /events HTTP/{http}\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30.0)
            sock.sendall(request)
            sock.setblocking(False)
            stream = _Stream(sock)
            self.streams[sock.fileno()] = stream
            self.epoll.register(sock.fileno(), select.EPOLLIN)
        return {"connected": count}

    def start_window(self, events: int) -> None:
        self.events = events
        self.complete = 0
        self.latencies = array.array("d")
        self.ids = {sequence: set() for sequence in range(events)}
        self.batches = self.reads = 0
        for stream in self.streams.values():
            stream.received = stream.next_sequence = stream.errors = 0
            stream.last_id = b""
        self.cpu_end = None
        self.cpu_start = _cpu_seconds()

    def result(self, path: str) -> dict[str, Any]:
        with open(path, "wb") as file:
            self.latencies.tofile(file)
        cpu_end = self.cpu_end if self.cpu_end is not None else _cpu_seconds()
        return {
            "clients": len(self.streams) + self.broken,
            "events": self.events,
            "delivered": len(self.latencies),
            "complete": self.complete,
            "errors": sum(s.errors for s in self.streams.values()),
            "broken": self.broken,
            "example": self.example,
            "cpu_s": cpu_end[0] - self.cpu_start[0],
            "sys_s": cpu_end[1] - self.cpu_start[1],
            "ids": {str(k): sorted(v.decode() for v in ids) for k, ids in self.ids.items()},
            "batches": self.batches,
            "reads": self.reads,
        }

    def answer(self, reply: dict[str, Any]) -> None:
        os.write(1, json.dumps(reply).encode() + b"\n")

    def read_commands(self) -> None:
        data = os.read(0, 65536)
        if not data:
            self.is_running = False
            return
        self.command_buffer += data
        while b"\n" in self.command_buffer:
            line, self.command_buffer = self.command_buffer.split(b"\n", 1)
            reply = self.command(line.decode().split())
            if reply is not None:
                self.answer(reply)

    # --- the loop ---

    @staticmethod
    def decode(stream: _Stream, data: bytes, events: list[tuple[bytes, bytes, bytes]]) -> None:
        """The general path: the head, the chunked framing and the event stream's text,
        for bytes split anywhere; the stamped events complete go to ``events``."""
        text = stream.body(data)
        if not text:
            return
        if stream.text:
            text = stream.text + text
        stream.text = stamped_events(text, events)
        if len(stream.text) > MAX_EVENT:
            raise FramingError("an event longer than MAX_EVENT")

    def fail(self, fd: int, stream: _Stream, reason: str) -> None:
        self.epoll.unregister(fd)
        stream.socket.close()
        del self.streams[fd]
        self.broken += 1
        if not self.example:
            self.example = reason

    def run(self) -> None:
        """Serve the streams and the commands until ``quit`` or the end of stdin."""
        self.epoll.register(0, select.EPOLLIN)
        streams, poll, monotonic, sleep = (
            self.streams, self.epoll.poll, time.monotonic, time.sleep
        )
        while self.is_running:
            ready = poll(0.05 if self.waiting is not None else 1.0, BATCH)
            reads = []
            for fd, _mask in ready:
                if fd == 0:
                    self.read_commands()
                    continue
                stream = streams.get(fd)
                if stream is None:
                    continue
                try:
                    data = stream.socket.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as error:
                    self.fail(fd, stream, f"read: {error}")
                    continue
                if not data:
                    self.fail(fd, stream, "the server closed a stream")
                    continue
                reads.append((fd, stream, data))
            if reads:
                now = monotonic()  # once per batch, after its reads
                self.batches += 1
                self.reads += len(reads)
                for fd, stream, data in reads:
                    try:
                        self.deliver(stream, data, now)
                    except (FramingError, ValueError) as error:
                        self.fail(fd, stream, str(error))
                if self.batch_wait and len(ready) < BATCH:
                    sleep(self.batch_wait)  # let more sockets become ready: fewer wake-ups
            if self.waiting is not None:
                finished = self.complete >= len(streams)
                if finished or monotonic() > self.waiting:
                    if finished and self.cpu_end is None:
                        self.cpu_end = _cpu_seconds()
                    self.waiting = None
                    self.answer({"finished": finished})
        for stream in streams.values():
            stream.socket.close()

    def deliver(self, stream: _Stream, data: bytes, now: float) -> None:
        """Decode one read of one stream; check and time its stamped events."""
        events: list[tuple[bytes, bytes, bytes]] = []
        if stream.is_chunked and not (stream.raw or stream.text or stream.chunk[0]
                                      or stream.chunk[1]):
            position = whole_chunks(data, events)  # the common case, in one regex a chunk
            if position < len(data):
                self.decode(stream, data[position:], events)
        else:
            self.decode(stream, data, events)
        if not events:
            return
        window = self.events
        if not window:  # before the window (warm-up): count, check nothing
            stream.received += len(events)
            return
        append, ids = self.latencies.append, self.ids
        for event_id, stamp, sequence_text in events:
            sequence = int(sequence_text)
            if sequence != stream.next_sequence or (event_id and event_id == stream.last_id):
                stream.errors += 1
                if not self.example:
                    self.example = (
                        f"sequence {sequence} (id {event_id!r}) where"
                        f" {stream.next_sequence} was due (after id {stream.last_id!r})"
                    )
            stream.next_sequence = sequence + 1
            stream.last_id = event_id
            append(now - float(stamp))
            if 0 <= sequence < window:
                ids[sequence].add(event_id)
            stream.received += 1
            if stream.received == window and not stream.errors:
                self.complete += 1
                if self.complete == len(self.streams) and self.cpu_end is None:
                    self.cpu_end = _cpu_seconds()


def _cpu_seconds() -> tuple[float, float]:
    """This process's CPU time so far: user + system, and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


class LeanClients:
    """Drives ``processes`` client processes (the benchmark side).

    Each :meth:`connect` spreads its clients evenly over the processes. One window at a
    time: :meth:`start_window`, publish, :meth:`wait`, :meth:`result`. ``batch_wait``:
    seconds each process sleeps after a batch of reads that was not full (fewer wake-ups;
    receipt times up to that much later).
    """

    def __init__(self, processes: int = 1, batch_wait: float = 0.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        self._processes = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks._lean_clients", str(batch_wait)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=_ROOT,
            )
            for _ in range(processes)
        ]
        self._directory = tempfile.TemporaryDirectory(prefix="lean-clients-")

    def _send(self, command: str) -> None:
        for process in self._processes:
            assert process.stdin is not None
            process.stdin.write(command.encode() + b"\n")
            process.stdin.flush()

    def _answers(self) -> list[dict[str, Any]]:
        answers = []
        for process in self._processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("a client process ended")
            answers.append(json.loads(line))
        return answers

    def _ask(self, command: str) -> list[dict[str, Any]]:
        self._send(command)
        return self._answers()

    async def connect(self, port: int, count: int, http: str = "1.1") -> None:
        """Open ``count`` streams to ``port`` (their requests sent; answers come later)."""
        shares = _shares(count, len(self._processes))
        for process, share in zip(self._processes, shares, strict=True):
            assert process.stdin is not None
            process.stdin.write(f"connect {port} {share} {http}\n".encode())
            process.stdin.flush()
        await asyncio.get_running_loop().run_in_executor(None, self._answers)

    def streaming(self) -> int:
        """How many streams have had their response head."""
        return int(sum(a["streaming"] for a in self._ask("status")))

    def warmed(self) -> int:
        """How many streams have had a stamped event (since the window's start)."""
        return int(sum(a["warmed"] for a in self._ask("status")))

    def least_received(self) -> int:
        """The fewest stamped events any stream has had (since the window's start)."""
        answers = self._ask("status")
        if any(a["broken"] for a in answers):
            return 0  # a closed stream never gets its event: the warm-up waits its bound
        return int(min(a["least"] for a in answers))

    async def start_window(self, events: int) -> None:
        """From now, each stream must get sequences ``0 .. events - 1``, once, in order."""
        self._ask(f"window {events}")

    async def wait(self, timeout: float) -> bool:
        """Until every stream has the window's events, or ``timeout`` seconds."""
        self._send(f"wait {timeout}")
        answers = await asyncio.get_running_loop().run_in_executor(None, self._answers)
        return all(a["finished"] for a in answers)

    def result(self) -> Window:
        """The window's figures, every process's summed."""
        total = Window()
        for number, process in enumerate(self._processes):
            path = Path(self._directory.name) / f"latencies-{number}"
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(f"result {path}\n".encode())
            process.stdin.flush()
            answer = json.loads(process.stdout.readline())
            latencies = array.array("d")
            with open(path, "rb") as file:
                latencies.frombytes(file.read())
            total.add(Window(
                clients=answer["clients"], events=answer["events"],
                delivered=answer["delivered"], complete=answer["complete"],
                errors=answer["errors"], broken=answer["broken"], example=answer["example"],
                cpu_s=answer["cpu_s"], sys_s=answer["sys_s"], latencies=latencies.tolist(),
                ids={int(k): set(v) for k, v in answer["ids"].items()},
                batches=answer["batches"], reads=answer["reads"],
            ))
        return total

    def close(self) -> None:
        """End the client processes (their sockets close with them)."""
        for process in self._processes:
            try:
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=15)
            except Exception:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._directory.cleanup()


def _shares(count: int, parts: int) -> list[int]:
    """``count`` split into ``parts`` shares as even as can be."""
    return [count // parts + (i < count % parts) for i in range(parts)]


def main(argv: Sequence[str] | None = None) -> int:
    """A client process: commands on stdin, one JSON answer a line on stdout; the one
    argument is the seconds to sleep after a batch of reads."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    _ClientProcess(float(arguments[0]) if arguments else 0.0).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
