"""Parser and serializer throughput of sse_core against the Python SSE libraries people use.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_protocol            # full run (a few minutes)
    .venv/bin/python -m benchmarks.bench_protocol --quick    # CI smoke run (< 60 s)
    .venv/bin/python -m benchmarks.bench_protocol --workload chat --workload serialize
    .venv/bin/python -m benchmarks.bench_protocol --quick --profile   # cProfile sse_core

Every contender parses the same bytes, split the same way, in one process:

* ``sse_core`` -- :class:`sse_core.Parser`.
* ``httpx-sse`` -- what ``httpx_sse.EventSource.iter_sse`` does over an httpx response (0.4.3):
  httpx's ``TextDecoder`` on each chunk, httpx-sse's ``SSELineDecoder``, then
  ``SSEDecoder.decode`` per line, through the same chain of generators.
* ``sseclient-py`` -- ``sseclient.SSEClient(iter(chunks)).events()``.
* ``ld-eventsource`` -- ``_SSEReader(_BufferedLineReader.lines_from(iter(chunks)))``
  ``.events_and_comments()``, as launchdarkly-eventsource's client feeds it.

Timed runs only materialise the items into a list (the same cost for everyone); the (type,
data, id) tuples for the agreement check are taken afterwards, untimed. The garbage collector
is off inside timed regions, as ``timeit`` does. Each figure is the best of ``--runs`` runs.

The workloads are generated from a seeded ``random.Random`` together with the items the spec
says they hold; sse_core must give exactly those items (events, comments and retries) or the
run exits with status 1. Peers are compared on what they expose and reported as deviating
when they differ; that never fails the run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sse_core
from sse_core import Comment, Event, Parser, Retry

try:  # the peers are the "bench" extra; the module still imports without them
    import httpx._decoders as httpx_decoders
    import ld_eventsource.actions as ld_actions
    import ld_eventsource.reader as ld_reader
    import sseclient
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder
    from sse_starlette import ServerSentEvent as StarletteEvent

    HAS_PEERS = True
except ImportError:  # pragma: no cover - exercised only without the bench extra
    HAS_PEERS = False

__all__ = [
    "CONTENDERS",
    "NA",
    "WORKLOADS",
    "Deviation",
    "Workload",
    "best_times",
    "check_agreement",
    "chunks_fixed",
    "chunks_random",
    "main",
    "make_big",
    "make_chat",
    "make_chat_crlf",
    "make_llm",
]

#: Marks a field a peer does not expose; comparisons skip it.
NA: Any = type("NotExposed", (), {"__repr__": lambda self: "n/a"})()

# A normalised event: (type, data, own id or None, last event id).
Key = tuple[Any, Any, Any, Any]

FIXED_READ = 4096
MAX_RANDOM_READ = 1500


# --- workloads ------------------------------------------------------------------------------


@dataclass
class Workload:
    """Bytes of one stream and the items the spec says it holds, in order."""

    name: str
    body: bytes
    expected: list[Event | Comment | Retry]

    @property
    def events(self) -> list[Event]:
        return [item for item in self.expected if type(item) is Event]


# Tokens of an LLM answer and words of chat messages. Non-ASCII ones are drawn 2 % of the
# time (so that some reads split UTF-8 sequences and some chunks decode to 2- or 4-byte
# strings), as are characters that str.splitlines() treats as line breaks but SSE does not.
_TOKENS = (
    " the", " of", " and", " to", " a", " in", " is", " that", " for", " it", " as", " with",
    " be", " on", " not", " this", " by", " are", " or", " from", " model", " stream",
    " token", " event", " data", ",", ".", "\\n", " ", "ing", "ed", "s", " server",
    " client", " parse", " JSON", " \\\"q\\\"",
)
_RARE_TOKENS = (" café", " naïve", " —", " 日本", " 🙂", " résumé")
_WORDS = (
    "hello", "world", "ok", "thanks", "see", "you", "tomorrow", "meeting", "at", "noon",
    "please", "review", "the", "pull", "request", "deploy", "is", "green", "lunch?", "yes",
    "no", "maybe", "ship", "it", "data:", "id:", "event:", ":", "retry", "  ",
)
_RARE_WORDS = ("über", "façade", "naïve", "東京", "😀", "👍", "—", "\u2028", "\x0c", "\x85")
RARE = 0.02


def _pick(rng: random.Random, common: Sequence[str], rare: Sequence[str]) -> str:
    return rng.choice(rare) if rng.random() < RARE else rng.choice(common)


_TYPES = ("message", "chat", "chat", "chat", "presence", "typing", "receipt")
_USERS = ("alice", "bob", "carol", "dave", "eve", "mallory", "trent", "peggy")


def make_llm(n_events: int = 200_000, *, seed: int = 1) -> Workload:
    """An LLM token stream: ``data:`` lines of ~100 B chunk JSON, an ``id:`` every 16th event.

    The last event is ``data: [DONE]``, as OpenAI-style APIs send.
    """
    rng = random.Random(seed)
    parts: list[str] = []
    expected: list[Event | Comment | Retry] = []
    last_id = ""
    created = 1_700_000_000
    stem = f"chatcmpl-{rng.getrandbits(40):010x}"
    for i in range(n_events):
        if i == n_events - 1:
            data = "[DONE]"
        else:
            token = _pick(rng, _TOKENS, _RARE_TOKENS)
            data = (
                f'{{"id":"{stem}","object":"chat.completion.chunk","created":{created + i // 50},'
                f'"choices":[{{"index":0,"delta":{{"content":"{token}"}}}}]}}'
            )
        own_id = None
        if i % 16 == 0:
            own_id = last_id = str(i)
            parts.append(f"id: {own_id}\n")
        parts.append(f"data: {data}\n\n")
        expected.append(Event(data=data, id=own_id, last_event_id=last_id))
    return Workload("llm", "".join(parts).encode(), expected)


def _words(rng: random.Random, target: int) -> str:
    out: list[str] = []
    size = 0
    while size < target:
        word = _pick(rng, _WORDS, _RARE_WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)


def make_chat(n_events: int = 100_000, *, seed: int = 2) -> Workload:
    """A chat stream: events of ~200 B with ``id``, ``event`` and 1-3 ``data`` lines.

    The stream opens with a retry-only block (``retry: 3000``); ``: ping`` heartbeats
    (2 %) come between events, and now and then a ``retry:`` line sits inside an event's block.
    Some data lines are written ``data:value`` (no space) or ``data:  value`` (the value keeps
    one space); data holds U+2028, U+0085 and form feeds, which are not SSE line breaks.
    """
    rng = random.Random(seed)
    parts = ["retry: 3000\n\n"]
    expected: list[Event | Comment | Retry] = [Retry(milliseconds=3000)]
    for i in range(n_events):
        if rng.random() < 0.02:
            parts.append(": ping\n\n")
            expected.append(Comment(text=" ping"))
        event_id = f"{i:07d}-{rng.getrandbits(32):08x}"
        event_type = rng.choice(_TYPES)
        block = [f"id: {event_id}\n", f"event: {event_type}\n"]
        if rng.random() < 0.0005:
            ms = rng.randrange(500, 30_000)
            block.append(f"retry: {ms}\n")
            expected.append(Retry(milliseconds=ms))
        n_lines = rng.choice((1, 1, 2, 3))
        lines = []
        for j in range(n_lines):
            if j == 0:
                text = _words(rng, 120 // n_lines)
                value = f'{{"user":"{rng.choice(_USERS)}","room":"general","text":"{text}"}}'
            else:
                value = _words(rng, 120 // n_lines)
            roll = rng.random()
            if roll < 0.05 and value[:1] != " ":
                block.append(f"data:{value}\n")
            elif roll < 0.08:
                block.append(f"data:  {value}\n")
                value = " " + value
            else:
                block.append(f"data: {value}\n")
            lines.append(value)
        block.append("\n")
        parts.append("".join(block))
        expected.append(
            Event(data="\n".join(lines), event=event_type, id=event_id, last_event_id=event_id)
        )
    return Workload("chat", "".join(parts).encode(), expected)


def make_chat_crlf(n_events: int = 100_000, *, seed: int = 2) -> Workload:
    """The chat stream with every line ending written CRLF."""
    chat = make_chat(n_events, seed=seed)
    return Workload("chat-crlf", chat.body.replace(b"\n", b"\r\n"), chat.expected)


def make_big(n_events: int = 2_000, lines_per_event: int = 200, *, seed: int = 3) -> Workload:
    """Big multi-line events: ``lines_per_event`` ``data:`` lines of 20-60 characters each."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ,;=-é"
    pool = [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(20, 61))) for _ in range(997)
    ]
    parts: list[str] = []
    expected: list[Event | Comment | Retry] = []
    for _ in range(n_events):
        lines = [rng.choice(pool) for _ in range(lines_per_event)]
        parts.append("data: " + "\ndata: ".join(lines) + "\n\n")
        expected.append(Event(data="\n".join(lines)))
    return Workload("big", "".join(parts).encode(), expected)


#: name -> (generator, full size, --quick size)
WORKLOADS: dict[str, tuple[Callable[[int], Workload], int, int]] = {
    "llm": (make_llm, 200_000, 20_000),
    "chat": (make_chat, 100_000, 10_000),
    "big": (make_big, 2_000, 200),
    "chat-crlf": (make_chat_crlf, 100_000, 10_000),
}


def chunks_fixed(body: bytes, size: int = FIXED_READ) -> list[bytes]:
    """``body`` in reads of ``size`` bytes (the last one shorter)."""
    return [body[i : i + size] for i in range(0, len(body), size)]


def chunks_random(body: bytes, *, seed: int = 4, max_size: int = MAX_RANDOM_READ) -> list[bytes]:
    """``body`` in reads of 1 to ``max_size`` bytes, sizes from a seeded generator."""
    rng = random.Random(seed)
    out = []
    i = 0
    while i < len(body):
        j = i + rng.randint(1, max_size)
        out.append(body[i:j])
        i = j
    return out


FEEDINGS: dict[str, Callable[[bytes], list[bytes]]] = {
    "4KiB": chunks_fixed,
    "1-1500B": chunks_random,
}


# --- contenders -----------------------------------------------------------------------------


def run_sse_core(chunks: Iterable[bytes]) -> list[Any]:
    parser = Parser()
    out: list[Any] = []
    extend = out.extend
    feed = parser.feed
    for chunk in chunks:
        extend(feed(chunk))
    parser.feed_eof()
    return out


def key_sse_core(item: Any) -> Key | None:
    if type(item) is not Event:
        return None
    return (item.event, item.data, item.id, item.last_event_id)


def _httpx_iter_text(chunks: Iterable[bytes]) -> Iterator[str]:
    # httpx.Response.iter_text with chunk_size=None: TextDecoder, TextChunker passes through.
    decoder = httpx_decoders.TextDecoder(encoding="utf-8")
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text
    text = decoder.flush()
    if text:
        yield text


def _httpx_sse_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    # httpx_sse._api._iter_sse_lines (0.4.3).
    decoder = SSELineDecoder()
    for text in _httpx_iter_text(chunks):
        yield from decoder.decode(text)
    yield from decoder.flush()


def _httpx_iter_sse(chunks: Iterable[bytes]) -> Iterator[Any]:
    # httpx_sse.EventSource.iter_sse (0.4.3), without the content-type check.
    decoder = SSEDecoder()
    for line in _httpx_sse_lines(chunks):
        line = line.rstrip("\n")
        sse = decoder.decode(line)
        if sse is not None:
            yield sse


def run_httpx_sse(chunks: Iterable[bytes]) -> list[Any]:
    return list(_httpx_iter_sse(chunks))


def key_httpx_sse(item: Any) -> Key | None:
    # ServerSentEvent.id is the stream's last event id (it persists), not the block's own.
    return (item.event, item.data, NA, item.id)


def run_sseclient(chunks: Iterable[bytes]) -> list[Any]:
    return list(sseclient.SSEClient(iter(chunks)).events())


def key_sseclient(item: Any) -> Key | None:
    # sseclient's Event.id is the block's own id field (None without one).
    return (item.event, item.data, item.id, NA)


def run_ld_eventsource(chunks: Iterable[bytes]) -> list[Any]:
    lines = ld_reader._BufferedLineReader.lines_from(iter(chunks))
    return list(ld_reader._SSEReader(lines).events_and_comments())


def key_ld_eventsource(item: Any) -> Key | None:
    if not isinstance(item, ld_actions.Event):
        return None
    return (item.event, item.data, item.id, item.last_event_id or "")


@dataclass(frozen=True)
class Contender:
    name: str
    run: Callable[[Iterable[bytes]], list[Any]]
    key: Callable[[Any], Key | None]


CONTENDERS: tuple[Contender, ...] = (
    Contender("sse_core", run_sse_core, key_sse_core),
    Contender("httpx-sse", run_httpx_sse, key_httpx_sse),
    Contender("sseclient-py", run_sseclient, key_sseclient),
    Contender("ld-eventsource", run_ld_eventsource, key_ld_eventsource),
)


def event_keys(contender: Contender, items: Iterable[Any]) -> list[Key]:
    """The normalised events among a contender's output, in order."""
    keys = []
    for item in items:
        key = contender.key(item)
        if key is not None:
            keys.append(key)
    return keys


# --- agreement ------------------------------------------------------------------------------


@dataclass
class Deviation:
    """How a peer's events differ from the events the spec gives."""

    peer: str
    n_extra: int  # events the peer gave that the spec does not
    n_missing: int  # events the spec gives that the peer did not
    example_extra: tuple[int, Key] | None  # (index in the peer's output, event)
    example_missing: tuple[int, Key] | None  # (index in the expected events, event)
    n_misplaced: int = 0  # same events, other order

    def describe(self) -> str:
        parts = []
        if self.n_extra:
            assert self.example_extra is not None
            index, key = self.example_extra
            parts.append(f"{self.n_extra} extra event(s), e.g. #{index} {_show(key)}")
        if self.n_missing:
            assert self.example_missing is not None
            index, key = self.example_missing
            parts.append(f"{self.n_missing} event(s) missing or different, e.g. #{index} "
                         f"{_show(key)}")
        if self.n_misplaced:
            parts.append(f"{self.n_misplaced} event(s) out of order")
        return f"peer {self.peer} deviates: " + "; ".join(parts)


def _show(key: Key) -> str:
    event, data, own_id, last_id = key
    shown = data if len(data) <= 60 else data[:57] + "..."
    return f"(event={event!r}, data={shown!r}, id={own_id!r}, last_event_id={last_id!r})"


def _project(key: Key, like: Key) -> Key:
    """``key`` with the fields that ``like`` marks NA set to NA."""
    return tuple(NA if mask is NA else value for value, mask in zip(key, like, strict=True))


def compare_events(peer: str, expected: Sequence[Key], got: Sequence[Key]) -> Deviation | None:
    """Compare a peer's events with the expected ones on the fields the peer exposes."""
    if got:
        expected = [_project(key, got[0]) for key in expected]
    if list(expected) == list(got):
        return None
    extra = Counter(got) - Counter(expected)
    missing = Counter(expected) - Counter(got)
    example_extra = next(((i, k) for i, k in enumerate(got) if k in extra), None)
    example_missing = next(((i, k) for i, k in enumerate(expected) if k in missing), None)
    n_misplaced = 0 if extra or missing else len(got)
    return Deviation(peer, sum(extra.values()), sum(missing.values()), example_extra,
                     example_missing, n_misplaced)


def check_agreement(
    workload: Workload, outputs: dict[str, list[Any]]
) -> tuple[bool, list[str], list[Deviation]]:
    """Check every contender's output against the workload's expected items.

    Args:
        workload: The stream and its expected items.
        outputs: Contender name -> the raw items it produced (``sse_core`` included).

    Returns:
        (whether sse_core gave exactly the expected items, the peers that agree with the spec,
        the deviations of the others).
    """
    is_core_exact = outputs["sse_core"] == workload.expected
    core = CONTENDERS[0]
    expected = event_keys(core, workload.expected)
    agreeing: list[str] = []
    deviations: list[Deviation] = []
    for contender in CONTENDERS[1:]:
        if contender.name not in outputs:
            continue
        got = event_keys(contender, outputs[contender.name])
        deviation = compare_events(contender.name, expected, got)
        if deviation is None:
            agreeing.append(contender.name)
        else:
            deviations.append(deviation)
    return is_core_exact, agreeing, deviations


def describe_core_error(workload: Workload, got: list[Any]) -> str:
    for i, (want, have) in enumerate(zip(workload.expected, got, strict=False)):
        if want != have:
            return f"item #{i}: expected {want!r}, got {have!r}"
    return f"expected {len(workload.expected)} items, got {len(got)}"


# --- timing ---------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed, result


def best_times(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, tuple[float, Any]]:
    """Best wall time of ``runs`` calls of each function, and each one's last result.

    The calls are interleaved (round robin), so that a slow spell of a shared machine
    touches every contender rather than one. The GC is off inside each call.
    """
    best: dict[str, tuple[float, Any]] = {}
    for _ in range(runs):
        for name, fn in fns.items():
            best.pop(name, None)  # free the previous result before the next call
            elapsed, result = _timed(fn)
            previous = best.get(name, (float("inf"), None))[0]
            best[name] = (min(elapsed, previous), result)
    return best


@dataclass
class Row:
    workload: str
    feeding: str
    contender: str
    seconds: float
    n_bytes: int
    n_events: int

    @property
    def mb_per_s(self) -> float:
        return self.n_bytes / self.seconds / 1e6

    @property
    def events_per_s(self) -> float:
        return self.n_events / self.seconds


@dataclass
class ParserReport:
    rows: list[Row] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    is_core_exact: bool = True


def bench_parsers(workload: Workload, runs: int, out: io.TextIOBase | Any) -> ParserReport:
    """Time every contender on both feedings of ``workload`` and check agreement."""
    report = ParserReport()
    n_events = len(workload.events)
    ratios: dict[str, float] = {}
    for feeding, split in FEEDINGS.items():
        chunks = split(workload.body)
        timed = best_times(
            {c.name: (lambda c=c, chunks=chunks: c.run(chunks)) for c in CONTENDERS}, runs
        )
        outputs = {name: items for name, (_, items) in timed.items()}
        rows = {
            name: Row(workload.name, feeding, name, seconds, len(workload.body), n_events)
            for name, (seconds, _) in timed.items()
        }
        del timed
        is_exact, agreeing, deviations = check_agreement(workload, outputs)
        if not is_exact:
            report.is_core_exact = False
            print(f"ERROR: sse_core is WRONG on {workload.name}/{feeding}: "
                  f"{describe_core_error(workload, outputs['sse_core'])}", file=out)
        del outputs
        core = rows["sse_core"]
        peers = [row for name, row in rows.items() if name != "sse_core"]
        fastest = max(peers, key=lambda row: row.mb_per_s)
        ratio = core.mb_per_s / fastest.mb_per_s
        ratios[feeding] = ratio
        for row in rows.values():
            report.rows.append(row)
            if row is core:
                note = f"{ratio:5.2f}x fastest peer ({fastest.contender})"
            else:
                note = f"sse_core {core.mb_per_s / row.mb_per_s:5.2f}x this"
            print(f"{row.workload:<10} {row.feeding:<8} {row.contender:<15}"
                  f"{row.mb_per_s:9.2f} {row.events_per_s:13,.0f}   {note}", file=out)
        verdict = "sse_core exact" if is_exact else "sse_core WRONG"
        print(f"{'':<10} {feeding:<8} agreement: {verdict}; agree with the spec: "
              f"{', '.join(agreeing) or 'none'}", file=out)
        for deviation in deviations:
            print(f"{'':<10} {feeding:<8}   {deviation.describe()}", file=out)
    worst = min(ratios.values())
    detail = ", ".join(f"{feeding} {ratio:.2f}x" for feeding, ratio in ratios.items())
    status = "met" if worst >= 3 else "NOT met"
    summary = (f"{workload.name}: sse_core vs fastest peer: {worst:.1f}x (target 3x, {status}; "
               f"{detail})")
    report.summaries.append(summary)
    return report


# --- serializer -----------------------------------------------------------------------------


def bench_serializers(
    workloads: Sequence[Workload], runs: int, out: Any
) -> tuple[bool, list[str]]:
    """Time sse_core's two serializer entry points against sse-starlette's encode().

    Returns:
        (whether every byte stream parses back to the input events, the summary lines).
    """
    is_ok = True
    summaries = []
    for workload in workloads:
        events = workload.events
        args = [(e.data, None if e.event == "message" else e.event, e.id) for e in events]
        records = [(e.data, e.event, e.id) for e in events]

        def with_record(records: list[tuple[str, str, str | None]] = records) -> list[bytes]:
            serialize = sse_core.serialize
            return [serialize(Event(data=d, event=t, id=i)) for d, t, i in records]

        def with_values(args: list[tuple[str, str | None, str | None]] = args) -> list[bytes]:
            serialize_event = sse_core.serialize_event
            return [serialize_event(d, event=t, id=i) for d, t, i in args]

        def with_starlette(
            args: list[tuple[str, str | None, str | None]] = args,
        ) -> list[bytes]:
            return [StarletteEvent(data=d, event=t, id=i).encode() for d, t, i in args]

        timed = best_times({"sse_core.serialize(Event)": with_record,
                            "sse_core.serialize_event": with_values,
                            "sse-starlette encode()": with_starlette}, runs)
        results: dict[str, tuple[float, int]] = {}
        for name, (seconds, frames) in timed.items():
            body = b"".join(frames)
            results[name] = (seconds, len(body))
            parser = Parser()
            items = parser.feed(body)
            parser.feed_eof()
            got = [(e.event, e.data, e.id) for e in items if type(e) is Event]
            want = [(e.event, e.data, e.id) for e in events]
            if got != want:
                if name.startswith("sse_core"):
                    is_ok = False
                bad = next(i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w)
                print(f"{'':<10} {name} output does not parse back: #{bad} "
                      f"{want[bad]!r} -> {got[bad]!r}", file=out)
        starlette_s = results["sse-starlette encode()"][0]
        for name, (seconds, n_bytes) in results.items():
            print(f"{workload.name:<10} {name:<27}{n_bytes / seconds / 1e6:9.2f} "
                  f"{len(events) / seconds:13,.0f}   {starlette_s / seconds:5.2f}x sse-starlette",
                  file=out)
        worst = min(starlette_s / results[n][0] for n in results if n.startswith("sse_core"))
        status = "met" if worst >= 5 else "NOT met"
        summaries.append(f"{workload.name}: sse_core serializer vs sse-starlette: {worst:.1f}x "
                         f"(target 5x, {status})")
    return is_ok, summaries


# --- linearity ------------------------------------------------------------------------------


def _long_line_feeder(n_bytes: int) -> Callable[[], int]:
    line = b"data: " + b"x" * (n_bytes - 6)
    pieces = [line[i : i + 1] for i in range(len(line))]

    def feed_all() -> int:
        parser = Parser(max_line_length=4 << 20)
        feed = parser.feed
        for piece in pieces:
            feed(piece)
        return len(feed(b"\n\n")[0].data)

    return feed_all


def feed_long_line(n_bytes: int) -> tuple[float, int]:
    """Feed one ``data:`` line of ``n_bytes`` bytes one byte at a time, then end it.

    Returns:
        (seconds spent, length of the event's data).
    """
    return _timed(_long_line_feeder(n_bytes))


def bench_linearity(small: int, out: Any, runs: int = 1) -> tuple[bool, str]:
    """Time a line of ``small`` bytes and one four times longer, both fed byte by byte."""
    timed = best_times({"small": _long_line_feeder(small),
                        "large": _long_line_feeder(4 * small)}, runs)
    (t_small, n_small), (t_large, n_large) = timed["small"], timed["large"]
    is_ok = n_small == small - 6 and n_large == 4 * small - 6
    ratio = t_large / t_small
    print(f"one line fed 1 byte at a time: {small // 1000} KB in {t_small:.3f} s, "
          f"{4 * small // 1000} KB in {t_large:.3f} s", file=out)
    verdict = "linear" if ratio < 6 else "NOT linear"
    summary = f"linearity: time ratio for 4x the bytes: {ratio:.2f}x (linear ~4x, {verdict})"
    if not is_ok:
        summary += " -- WRONG event data length"
    return is_ok, summary


# --- profiling ------------------------------------------------------------------------------


def profile_core(workload: Workload, out: Any, limit: int = 15) -> None:
    """cProfile sse_core's parser on the 4 KiB feeding of ``workload``; print the top entries."""
    chunks = chunks_fixed(workload.body)
    profiler = cProfile.Profile()
    profiler.enable()
    run_sse_core(chunks)
    profiler.disable()
    print(f"\n--- cProfile: sse_core on {workload.name} (4KiB reads), by own time ---", file=out)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)


# --- main -----------------------------------------------------------------------------------


def _versions() -> str:
    import importlib.metadata as md

    names = ("httpx", "httpx-sse", "sseclient-py", "launchdarkly-eventsource", "sse-starlette")
    found = []
    for name in names:
        try:
            found.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 1 when sse_core gave wrong output, else 0."""
    serial_names = ("serialize", "linearity")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_protocol",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small workloads and 1 run each (CI smoke run)")
    parser.add_argument("--workload", action="append",
                        choices=[*WORKLOADS, *serial_names],
                        help="run only these parts (repeatable); default: all")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (best of)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile sse_core on the llm and chat workloads")
    args = parser.parse_args(argv)
    if not HAS_PEERS:
        print("the peer packages are missing: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    out = sys.stdout
    runs = args.runs or (1 if args.quick else 3)
    selected = args.workload or [*WORKLOADS, *serial_names]
    print(f"Python {sys.version.split()[0]}; sse_core vs {_versions()}; best of {runs} run(s)"
          f"{'; --quick sizes' if args.quick else ''}", file=out)

    generated: dict[str, Workload] = {}

    def workload(name: str) -> Workload:
        if name not in generated:
            make, full, quick = WORKLOADS[name]
            generated[name] = make(quick if args.quick else full)
        return generated[name]

    is_ok = True
    summaries: list[str] = []
    parser_names = [name for name in WORKLOADS if name in selected]
    if parser_names:
        print(f"\n{'workload':<10} {'reads':<8} {'contender':<15}{'MB/s':>9} {'events/s':>13}   "
              "ratio", file=out)
        for name in parser_names:
            w = workload(name)
            print(f"{'':<10} ({len(w.body) / 1e6:.1f} MB, {len(w.events):,} events, "
                  f"{len(w.expected) - len(w.events):,} comments/retries)", file=out)
            report = bench_parsers(w, runs, out)
            is_ok = is_ok and report.is_core_exact
            summaries.extend(report.summaries)
    if "serialize" in selected:
        print(f"\n{'events of':<10} {'serializer':<27}{'MB/s':>9} {'events/s':>13}   ratio",
              file=out)
        is_serial_ok, lines = bench_serializers([workload("chat"), workload("llm")], runs, out)
        is_ok = is_ok and is_serial_ok
        summaries.extend(lines)
    if "linearity" in selected:
        print(file=out)
        is_linear_ok, line = bench_linearity(50_000 if args.quick else 200_000, out, runs)
        is_ok = is_ok and is_linear_ok
        summaries.append(line)
    if args.profile:
        for name in ("llm", "chat"):
            profile_core(workload(name), out)
    print("\nSummary", file=out)
    for line in summaries:
        print("  " + line, file=out)
    if not is_ok:
        print("FAILED: sse_core gave wrong output (see ERROR lines above)", file=out)
    return 0 if is_ok else 1


if __name__ == "__main__":
    sys.exit(main())
