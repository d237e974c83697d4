"""``sse-core check``: the checks, pure functions from an observation to findings (no I/O).

Each check reads the :class:`~._check_records.Observation` the prober filled and returns one
:class:`~._check_records.Finding`. They never read a clock: every time is in the records.
References: WHATWG HTML section 9.2 (server-sent events), RFC 9110 (HTTP semantics),
RFC 9112 (HTTP/1.1 framing), RFC 9113 (HTTP/2), the Fetch standard (CORS).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Sequence

import attrs

from .. import Comment, Event, Parser, Retry, SSEError, StreamItem
from ._check_records import End, Finding, Level, Observation, Response

__all__ = [
    "CHECKS",
    "FIRST_BYTE_LATE",
    "judge",
    "resume_point",
]

#: Seconds after which a first body byte counts as late.
FIRST_BYTE_LATE = 1.0
#: Seconds within which events count as one burst.
BURST_WINDOW = 0.05
#: A line longer than this (bytes) draws a warning; longer than sse_core's parser takes, a
#: failure.
LONG_LINE = 64 * 1024
MAX_LINE = 1 << 20
#: A ``retry:`` below this (milliseconds) draws a warning.
MIN_RETRY = 1000
#: Evidence strings are cut to this many characters.
MAX_EVIDENCE = 400

_KNOWN_FIELDS = frozenset({b"data", b"event", b"id", b"retry"})
_LINE_END = re.compile(rb"\r\n|\n|\r")
_BOM = b"\xef\xbb\xbf"


@attrs.frozen(kw_only=True)
class _Timed:
    """A parsed item and when the bytes that completed it arrived."""

    at: float
    item: StreamItem


@attrs.frozen(kw_only=True)
class _Stream:
    """What a response body says: its items, and whether it ended inside an event."""

    items: tuple[_Timed, ...]
    is_truncated: bool
    error: str | None

    @property
    def events(self) -> list[Event]:
        """The dispatched events, in order."""
        return [timed.item for timed in self.items if isinstance(timed.item, Event)]


def _read(response: Response) -> _Stream:
    """Parse a body read by read, as a browser would."""
    parser = Parser(max_line_length=MAX_LINE)
    items: list[_Timed] = []
    try:
        for arrival in response.arrivals:
            items += [_Timed(at=arrival.at, item=item) for item in parser.feed(arrival.data)]
        is_truncated = False
        if response.end in (End.CLOSED, End.CUT):
            is_truncated = parser.feed_eof().is_truncated
    except SSEError as error:
        return _Stream(items=tuple(items), is_truncated=False, error=str(error))
    return _Stream(items=tuple(items), is_truncated=is_truncated, error=None)


def _shown(data: object) -> str:
    """Bytes or text as evidence, escaped and cut short."""
    text = repr(data)
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 3] + "..."


def _is_stream(response: Response | None) -> bool:
    """Whether the response is a 200 whose body can be judged."""
    return response is not None and response.status == 200


_Check = Callable[[Observation], Finding]


#: The items judged by the main response's decoded body: not judged while a compressor
#: holds all of it (the compression item says so).
_BODY_ITEMS = frozenset({"heartbeat", "retry", "ids", "resumption", "line-endings",
                         "ignored-lines", "truncated", "line-length"})


def _on_stream(item: str) -> Callable[[_Check], _Check]:
    """Skip the check ``item`` (nothing to judge) unless the main response is a 200, or,
    for an item of the body, when nothing of it could be decoded because the compressor
    held it."""

    def decorate(check: _Check) -> _Check:
        @functools.wraps(check)
        def checked(observation: Observation) -> Finding:
            if not _is_stream(observation.main):
                return Finding(id=item, level=Level.SKIP,
                               summary="no event stream to judge (see status)")
            if item in _BODY_ITEMS and _is_held(observation.main):
                return Finding(id=item, level=Level.SKIP,
                               summary="nothing decodable: held in the compressor (see "
                               "compression)")
            return check(observation)

        return checked

    return decorate


# --- the response head -----------------------------------------------------------------------


def check_status(observation: Observation) -> Finding:
    """``200`` is a stream; ``204`` tells EventSource to stop; anything else fails it."""
    main = observation.main
    if main.status is None:
        return Finding(
            id="status", level=Level.FAIL, summary=f"no response: {main.error}",
            fix="check the URL, that the server runs, and (for https) its certificate",
        )
    evidence = main.head_text()
    if main.status == 200:
        return Finding(id="status", level=Level.PASS, summary="200", evidence=evidence)
    if main.status == 204:
        return Finding(
            id="status", level=Level.WARN, evidence=evidence,
            summary="204: EventSource stops and never reconnects (WHATWG HTML 9.2.3)",
            fix="answer 200 with the stream; keep 204 for 'this client must go away'",
        )
    if main.status in (301, 302, 303, 307, 308):
        return Finding(
            id="status", level=Level.WARN, evidence=evidence,
            summary=f"{main.status} redirect to {main.header('location')}",
            fix="point clients (and this check) at the final URL; every reconnection pays "
            "for the redirect",
        )
    return Finding(
        id="status", level=Level.FAIL, evidence=evidence,
        summary=f"{main.status}: EventSource fails the connection and does not reconnect",
        fix="answer 200 with Content-Type: text/event-stream",
    )


@_on_stream("content-type")
def check_content_type(observation: Observation) -> Finding:
    """The media type must be ``text/event-stream``; the stream is always UTF-8."""
    main = observation.main
    value = main.header("content-type")
    evidence = f"Content-Type: {value}" if value is not None else "no Content-Type field"
    media, _, parameters = (value or "").partition(";")
    if media.strip().lower() != "text/event-stream":
        return Finding(
            id="content-type", level=Level.FAIL, evidence=evidence,
            summary="not text/event-stream: EventSource fails the connection "
            "(WHATWG HTML 9.2.3)",
            fix="send Content-Type: text/event-stream; charset=utf-8",
        )
    for parameter in parameters.split(";"):
        name, _, charset = parameter.partition("=")
        charset = charset.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return Finding(
                id="content-type", level=Level.WARN, evidence=evidence,
                summary=f"charset={charset}, but the stream is always decoded as UTF-8 "
                "(WHATWG HTML 9.2.5)",
                fix="send UTF-8 and say charset=utf-8 (or no charset)",
            )
    return Finding(id="content-type", level=Level.PASS, summary=value or "", evidence=evidence)


def _header_check(
    observation: Observation, item: str, name: str, is_good: Callable[[str], bool],
    problem: str, fix: str,
) -> Finding:
    """A pass when the main response's field ``name`` satisfies ``is_good``, else a warning."""
    main = observation.main
    value = main.header(name)
    if value is not None and is_good(value):
        return Finding(id=item, level=Level.PASS, summary=value)
    return Finding(
        id=item, level=Level.WARN, summary=problem, fix=fix,
        evidence=f"{name}: {value}" if value is not None else f"no {name} field",
    )


@_on_stream("cache-control")
def check_cache_control(observation: Observation) -> Finding:
    """A cache must not store the stream (RFC 9111 section 5.2)."""

    def is_good(value: str) -> bool:
        directives = {part.strip().lower().partition("=")[0] for part in value.split(",")}
        return bool(directives & {"no-cache", "no-store"})

    return _header_check(
        observation, "cache-control", "Cache-Control", is_good,
        "a cache or proxy may hold or store the stream",
        "send Cache-Control: no-cache (no-transform too, so no proxy recompresses it)",
    )


@_on_stream("x-accel-buffering")
def check_accel_buffering(observation: Observation) -> Finding:
    """nginx buffers a proxied response unless the upstream says ``X-Accel-Buffering: no``."""
    return _header_check(
        observation, "x-accel-buffering", "X-Accel-Buffering",
        lambda value: value.strip().lower() == "no",
        "behind nginx (proxy_buffering on, its default) events wait in a buffer",
        "send X-Accel-Buffering: no",
    )


@_on_stream("content-length")
def check_content_length(observation: Observation) -> Finding:
    """A stream has no length; a ``Content-Length`` ends it (RFC 9112 section 6.3; over
    HTTP/2 it must equal the DATA frames' total, RFC 9113 section 8.1.1)."""
    main = observation.main
    value = main.header("content-length")
    if value is None:
        return Finding(id="content-length", level=Level.PASS, summary="absent")
    is_http2 = main.http_version == "2"
    return Finding(
        id="content-length", level=Level.FAIL, evidence=f"Content-Length: {value}",
        summary=f"the body ends after {value} bytes: the stream is a fixed document"
        + (" (RFC 9113 section 8.1.1)" if is_http2 else ""),
        fix="do not set Content-Length; let the server stream ("
        + ("DATA frames)" if is_http2 else "chunked)"),
    )


#: Header fields that are about one HTTP/1.1 connection; an HTTP/2 message carrying one is
#: malformed (RFC 9113 section 8.2.2).
_CONNECTION_FIELDS = ("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                      "upgrade")


@_on_stream("framing")
def check_framing(observation: Observation) -> Finding:
    """HTTP/1.1 streams should be chunked (RFC 9112 section 7.1) so that an end is an end;
    HTTP/2 frames every stream (its end is ``END_STREAM``, a cut ``RST_STREAM``) and must not
    carry HTTP/1.1's connection fields (RFC 9113 section 8.2.2)."""
    main = observation.main
    if main.header("content-length") is not None:
        return Finding(id="framing", level=Level.SKIP, summary="length-delimited (see "
                       "content-length)")
    if main.http_version == "2":
        found = [f"{name}: {main.header(name)}" for name in _CONNECTION_FIELDS
                 if main.header(name) is not None]
        if found:
            return Finding(
                id="framing", level=Level.FAIL, evidence="\n".join(found),
                summary="HTTP/2 with connection-specific fields: a malformed response, "
                "which clients reject (RFC 9113 section 8.2.2)",
                fix="do not send these fields over HTTP/2 (a proxy in front that speaks "
                "HTTP/2 must drop them)",
            )
        return Finding(id="framing", level=Level.PASS,
                       summary="HTTP/2 DATA frames (an end is END_STREAM, a cut RST_STREAM)")
    coding = (main.header("transfer-encoding") or "").lower()
    if main.http_version == "1.1" and "chunked" in coding:
        return Finding(id="framing", level=Level.PASS, summary="HTTP/1.1 chunked")
    return Finding(
        id="framing", level=Level.WARN,
        evidence=f"HTTP/{main.http_version}, Transfer-Encoding: {coding or '(none)'}",
        summary="the body ends only when the connection closes: a cut looks like an end "
        "and the connection cannot be kept alive",
        fix="answer HTTP/1.1 with Transfer-Encoding: chunked (the default of most servers "
        "for a streamed body), or HTTP/2",
    )


def _buffered(response: Response, stream: _Stream) -> tuple[bool, str]:
    """Whether the body looks held back by a buffer: a late first (decoded) byte, then a
    burst."""
    first = next((arrival.at for arrival in response.arrivals if arrival.data), None)
    if first is None:
        return False, "no body byte decoded"
    burst = [t for t in stream.items if isinstance(t.item, Event) and t.at <= first + BURST_WINDOW]
    evidence = (
        f"first body byte {first:.2f} s after the request, then {len(burst)} events "
        f"within {BURST_WINDOW * 1000:.0f} ms"
    )
    return first >= FIRST_BYTE_LATE and len(burst) >= 2, evidence


def _is_compressed(response: Response) -> bool:
    coding = response.header("content-encoding")
    return coding is not None and coding.strip().lower() != "identity"


def _compressor_wait(response: Response) -> tuple[float, str]:
    """The longest time compressed bytes waited for the server to flush its compressor (a
    read that ends where it flushed: see :attr:`Arrival.is_flushed`), and the evidence;
    ``0`` when the prober could not tell (a body not compressed, a hand-made record)."""
    arrivals = response.arrivals
    if not arrivals or any(arrival.is_flushed is None for arrival in arrivals):
        return 0.0, ""
    longest, evidence = 0.0, ""
    since: float | None = None  # when the bytes not flushed yet began to arrive
    size = 0
    for arrival in arrivals:
        if since is None and not arrival.is_flushed:
            since, size = arrival.at, 0
        size += arrival.size
        if since is not None and arrival.is_flushed:
            if arrival.at - since > longest:
                longest = arrival.at - since
                evidence = (f"{size} compressed bytes from {since:.2f} s decodable only at "
                            f"the flush at {arrival.at:.2f} s")
            since = None
    if since is not None and response.end is End.STOPPED and response.observed - since > longest:
        longest = response.observed - since
        decoded = sum(len(arrival.data) for arrival in arrivals if arrival.at >= since)
        evidence = (f"{size} compressed bytes from {since:.2f} s, no flush by "
                    f"{response.observed:.2f} s ({decoded} bytes decodable of them)")
    return longest, evidence


def _is_held(response: Response) -> bool:
    """Whether a compressed body decoded to nothing because the compressor held it."""
    return (_is_compressed(response) and not response.body
            and _compressor_wait(response)[0] >= FIRST_BYTE_LATE)


def _is_unflushed(response: Response) -> tuple[bool, str]:
    """Whether a compressed body was held back by its compressor, and the evidence: bytes
    that waited for a flush, or a late first byte then a burst."""
    wait, evidence = _compressor_wait(response)
    if wait >= FIRST_BYTE_LATE:
        return True, evidence
    if response.arrivals:
        return _buffered(response, _read(response))
    return False, ""


@_on_stream("compression")
def check_compression(observation: Observation) -> Finding:
    """A compressed stream must be flushed per event, or events wait in the compressor."""
    main = observation.main
    coding = main.header("content-encoding")
    if coding is None or not _is_compressed(main):
        return Finding(id="compression", level=Level.PASS, summary="not compressed")
    if main.error is not None and "decod" in main.error:
        return Finding(
            id="compression", level=Level.FAIL, evidence=main.error,
            summary=f"Content-Encoding: {coding}, which could not be decoded",
            fix="compress with gzip (which every client decodes) or not at all",
        )
    is_unflushed, evidence = _is_unflushed(main)
    if is_unflushed:
        return Finding(
            id="compression", level=Level.FAIL, evidence=evidence,
            summary=f"{coding}, not flushed per event: events wait in the compressor",
            fix="flush the compressor after every event (zlib Z_SYNC_FLUSH), or do not "
            "compress the stream",
        )
    return Finding(id="compression", level=Level.PASS, summary=f"{coding}, flushed per event")


# --- timing ----------------------------------------------------------------------------------


@_on_stream("first-byte")
def check_first_byte(observation: Observation) -> Finding:
    """The first byte arrives promptly; a late one followed by a burst means a buffer."""
    main = observation.main
    if not main.arrivals:
        ended = "the server closed" if main.end is not End.STOPPED else "nothing"
        return Finding(
            id="first-byte", level=Level.WARN,
            summary=f"no body byte in {main.observed:.1f} s ({ended})",
            fix="send something (a comment line, retry:) as soon as the stream opens, so "
            "clients and proxies see it start",
        )
    if _is_compressed(main) and _is_unflushed(main)[0]:
        return Finding(id="first-byte", level=Level.SKIP, summary="held back: see compression",
                       evidence=_is_unflushed(main)[1])
    is_buffered, evidence = _buffered(main, _read(main))
    if is_buffered:
        return Finding(
            id="first-byte", level=Level.FAIL, evidence=evidence,
            summary="held back, then a burst: a buffer (proxy or server) sits in front of "
            "the stream",
            fix="flush after every event; send X-Accel-Buffering: no and Cache-Control: "
            "no-cache, no-transform; a 2 KiB comment first gets past buffers that hold the "
            "first bytes",
        )
    first = main.arrivals[0].at
    if first >= FIRST_BYTE_LATE:
        return Finding(
            id="first-byte", level=Level.WARN, evidence=evidence,
            summary=f"first body byte after {first:.2f} s",
            fix="send a comment or retry: as soon as the stream opens",
        )
    return Finding(id="first-byte", level=Level.PASS, summary=f"after {first * 1000:.0f} ms",
                   evidence=evidence)


@_on_stream("heartbeat")
def check_heartbeat(observation: Observation) -> Finding:
    """The longest silence (comments and events both count) against proxy idle timeouts."""
    main = observation.main
    if not main.arrivals:
        return Finding(id="heartbeat", level=Level.SKIP, summary="nothing arrived (see "
                       "first-byte)")
    idle = observation.idle_timeout
    times = [arrival.at for arrival in main.arrivals]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    trailing = main.observed - times[-1] if main.end is End.STOPPED else 0.0
    longest = max([*gaps, trailing])
    comments = sum(isinstance(timed.item, Comment) for timed in _read(main).items)
    evidence = (
        f"longest silence {longest:.2f} s in {main.observed:.1f} s "
        f"({comments} comment lines, {len(times)} reads)"
    )
    fix = f"send a comment line (': ping') every {max(1, int(idle / 2))} s or less"
    if longest > idle:
        return Finding(
            id="heartbeat", level=Level.FAIL, evidence=evidence, fix=fix,
            summary=f"silent for {longest:.1f} s: a proxy with a {idle:g} s idle timeout "
            "cuts the connection",
        )
    if longest > idle / 2:
        return Finding(
            id="heartbeat", level=Level.WARN, evidence=evidence, fix=fix,
            summary=f"silent for {longest:.1f} s, over half of a {idle:g} s idle timeout",
        )
    if trailing == longest and trailing >= FIRST_BYTE_LATE and not comments:
        return Finding(
            id="heartbeat", level=Level.SKIP, evidence=evidence,
            summary=f"not seen within the duration: silent for the last {trailing:.1f} s "
            f"(run with --duration {int(2 * idle)} to measure it)",
        )
    summary = f"longest silence {longest:.2f} s (idle timeout {idle:g} s)"
    if not comments:
        summary += "; events kept it busy, no heartbeat comment seen"
    return Finding(id="heartbeat", level=Level.PASS, summary=summary, evidence=evidence)


# --- the stream's fields ---------------------------------------------------------------------


@_on_stream("retry")
def check_retry(observation: Observation) -> Finding:
    """A ``retry:`` field sets how soon clients reconnect (WHATWG HTML 9.2.6)."""
    main = observation.main
    values = [t.item.milliseconds for t in _read(main).items if isinstance(t.item, Retry)]
    if not values:
        return Finding(
            id="retry", level=Level.WARN, summary="no retry: field; each client picks its own "
            "reconnection delay",
            fix="send 'retry: 3000' (or the delay that suits you) at the start of the stream",
        )
    if values[0] < MIN_RETRY:
        return Finding(
            id="retry", level=Level.WARN, evidence=f"retry: {values[0]}",
            summary=f"retry: {values[0]} ms: after a restart every client comes back at once",
            fix=f"send a retry of {MIN_RETRY} ms or more",
        )
    return Finding(id="retry", level=Level.PASS, summary=f"retry: {values[0]} ms",
                   evidence=f"retry: {values[0]}")


def _ordered(ids: Sequence[str]) -> bool:
    """Whether numeric ids increase (other ids are opaque and always 'ordered')."""
    if not all(value.isdigit() for value in ids):
        return True
    numbers = [int(value) for value in ids]
    return all(a < b for a, b in itertools.pairwise(numbers))


@_on_stream("ids")
def check_ids(observation: Observation) -> Finding:
    """Events carry ids, so a reconnecting client can say where it stopped."""
    main = observation.main
    events = _read(main).events
    if not events:
        return Finding(id="ids", level=Level.SKIP,
                       summary=f"no event in {main.observed:.1f} s")
    ids = [event.id for event in events if event.id]
    fix = "give every event an id (an increasing number or a log offset)"
    if not ids:
        return Finding(id="ids", level=Level.WARN, fix=fix,
                       summary=f"none of {len(events)} events has an id: a reconnecting "
                       "client cannot say where it stopped")
    missing = len(events) - len(ids)
    if missing:
        return Finding(id="ids", level=Level.WARN, fix=fix,
                       evidence=_shown([event.data for event in events if not event.id][:3]),
                       summary=f"{missing} of {len(events)} events have no id")
    repeated = sorted({value for value in ids if ids.count(value) > 1})
    if repeated:
        return Finding(id="ids", level=Level.WARN, evidence=_shown(repeated[:5]),
                       summary=f"{len(repeated)} ids are used twice", fix=fix)
    if not _ordered(ids):
        return Finding(id="ids", level=Level.WARN, evidence=_shown(ids[:10]),
                       summary="numeric ids that do not increase",
                       fix="number events in the order they are sent")
    kind = "increasing numbers" if all(value.isdigit() for value in ids) else "opaque"
    return Finding(id="ids", level=Level.PASS, evidence=_shown(ids[:5]),
                   summary=f"all {len(events)} events have ids ({kind})")


def resume_point(main: Response) -> str | None:
    """The id the prober resumes from: the one before the last two events that have ids, so
    that the reconnection has events to bring back; ``None`` when no event has an id."""
    ids = [event.id for event in _read(main).events if event.id]
    if not ids:
        return None
    return ids[max(0, len(ids) - 3)]


def _key(event: Event) -> tuple[str | None, str, str]:
    return (event.id, event.event, event.data)


@_on_stream("resumption")
def check_resumption(observation: Observation) -> Finding:
    """A reconnection with ``Last-Event-ID`` continues after that id: none repeated, none
    missed (WHATWG HTML 9.2.4: the id is sent back; what it brings is the server's part)."""
    main, resumed, point = observation.main, observation.resumed, observation.resumed_from
    if point is None:
        return Finding(id="resumption", level=Level.SKIP, summary="no event with an id to "
                       "resume from (see ids)")
    if resumed is None:
        return Finding(id="resumption", level=Level.SKIP, summary="no time left to reconnect")
    if resumed.status == 204:
        return Finding(id="resumption", level=Level.WARN, evidence=resumed.head_text(),
                       summary=f"Last-Event-ID: {point} got 204: the server says it cannot "
                       "resume, and EventSource stops for good",
                       fix="keep a replay log and send what came after the id")
    if resumed.status != 200:
        return Finding(id="resumption", level=Level.FAIL, evidence=resumed.head_text(),
                       summary=f"Last-Event-ID: {point} got {resumed.status}",
                       fix="answer a reconnection with 200 and the events after its id")
    seen = [_key(event) for event in _read(main).events if event.id]
    cut = max(index for index, key in enumerate(seen) if key[0] == point) + 1
    before, after = seen[:cut], seen[cut:]
    got = [_key(event) for event in _read(resumed).events]
    repeated = [key for key in got if key in before]
    fix = "send only the events after Last-Event-ID, from a replay log kept for that"
    if repeated:
        if seen[0] in repeated and len(before) > 1:
            how = "starts over from the first event: it ignores Last-Event-ID"
        elif repeated == [before[-1]]:
            how = f"sends event {point} again (the one named, off by one)"
        else:
            how = f"repeats {len(repeated)} events the client already had"
        return Finding(id="resumption", level=Level.FAIL, fix=fix,
                       evidence=f"Last-Event-ID: {point}; repeated: {_shown(repeated[:3])}",
                       summary=f"Last-Event-ID: {point} {how}")
    positions = [got.index(key) if key in got else None for key in after]
    # An event is missed when something that came after it arrived: a later one of
    # ``after``, or one newer than all of them.
    is_newer_seen = any(key[0] and key not in after for key in got)
    missed = [
        key for index, key in enumerate(after)
        if positions[index] is None
        and (is_newer_seen or any(p is not None for p in positions[index + 1:]))
    ]
    if missed:
        return Finding(id="resumption", level=Level.FAIL, fix=fix,
                       evidence=f"Last-Event-ID: {point}; missed: {_shown(missed[:3])}; "
                       f"first after it: {_shown(got[:2])}",
                       summary=f"Last-Event-ID: {point} misses {len(missed)} of the "
                       f"{len(after)} events after it: no replay")
    found = [p for p in positions if p is not None]
    if found != sorted(found):
        return Finding(id="resumption", level=Level.FAIL, fix=fix,
                       evidence=_shown(got[:5]),
                       summary="the events after the id come back out of order")
    if len(found) < len(after):
        return Finding(id="resumption", level=Level.SKIP,
                       evidence=f"Last-Event-ID: {point}; got {_shown(got[:3])}",
                       summary=f"the reconnection saw {len(found)} of the {len(after)} events "
                       "after the id before the time ran out")
    return Finding(id="resumption", level=Level.PASS,
                   evidence=f"Last-Event-ID: {point}; got {_shown(got[:3])}",
                   summary=f"Last-Event-ID: {point} continued with the {len(after)} events "
                   "after it, none repeated")


@_on_stream("unknown-id")
def check_unknown_id(observation: Observation) -> Finding:
    """A ``Last-Event-ID`` the server cannot place (a restart, another server) must still get
    a stream: any other answer locks that client out for good."""
    unknown = observation.unknown
    if unknown is None:
        return Finding(id="unknown-id", level=Level.SKIP, summary="no time left to ask")
    head = unknown.head_text() if unknown.status is not None else str(unknown.error)
    if unknown.status == 200:
        events = _read(unknown).events
        first = f"first event {_shown(_key(events[0]))}" if events else "no event yet"
        return Finding(id="unknown-id", level=Level.PASS, summary=f"200; {first}",
                       evidence=_shown(unknown.body[:200]))
    fix = ("answer 200 and continue from the current position (tell the client about the "
           "gap with an event of your own)")
    if unknown.status == 204:
        return Finding(id="unknown-id", level=Level.WARN, evidence=head, fix=fix,
                       summary="204: a client whose id the server lost stops for good")
    return Finding(id="unknown-id", level=Level.FAIL, evidence=head, fix=fix,
                   summary=f"{unknown.status}: a client whose id the server lost fails for "
                   "good")


# --- wire hygiene ----------------------------------------------------------------------------


def _bodies(observation: Observation) -> list[Response]:
    """The streams read (main, resumed, unknown), for checks on the bytes."""
    responses = [observation.main, observation.resumed, observation.unknown]
    return [response for response in responses if response is not None and _is_stream(response)]


@_on_stream("line-endings")
def check_line_endings(observation: Observation) -> Finding:
    """CRLF, LF and CR all end lines (WHATWG HTML 9.2.5); one kind, no BOM, is safest."""
    body = observation.main.body
    kinds = {
        {b"\r\n": "CRLF", b"\n": "LF", b"\r": "CR"}[match.group()]
        for match in _LINE_END.finditer(body)
    }
    if body.startswith(_BOM):
        return Finding(id="line-endings", level=Level.WARN, evidence=_shown(body[:40]),
                       summary="the stream starts with a BOM (browsers skip one; other "
                       "clients read it into the first field name)",
                       fix="do not write a byte order mark")
    if len(kinds) > 1:
        return Finding(id="line-endings", level=Level.WARN, evidence=_shown(body[:120]),
                       summary=f"mixed line endings: {', '.join(sorted(kinds))}",
                       fix="end every line the same way (LF)")
    if kinds == {"CR"}:
        return Finding(id="line-endings", level=Level.WARN, evidence=_shown(body[:120]),
                       summary="lines end with a bare CR, which many non-browser clients "
                       "do not split on", fix="end lines with LF")
    return Finding(id="line-endings", level=Level.PASS,
                   summary=", ".join(sorted(kinds)) or "no line seen")


def _ignored(body: bytes) -> list[str]:
    """Lines a browser ignores or blocks it drops, each described."""
    found: list[str] = []
    block: set[bytes] = set()
    if body.startswith(_BOM):  # skipped by the decoder (WHATWG HTML 9.2.5)
        body = body[len(_BOM):]
    for line in _LINE_END.split(body)[:-1]:  # the last piece has no line ending yet
        if not line:
            if b"event" in block and b"data" not in block:
                found.append("a block with event: but no data: (never dispatched)")
            block = set()
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        block.add(name)
        if name not in _KNOWN_FIELDS:
            found.append(f"unknown field {_shown(line[:60])}")
        elif name == b"retry" and not (value.isdigit() and value.isascii()):
            found.append(f"retry that is not digits {_shown(line[:60])}")
        elif name == b"id" and b"\x00" in value:
            found.append(f"id with U+0000 {_shown(line[:60])}")
    return found


@_on_stream("ignored-lines")
def check_ignored_lines(observation: Observation) -> Finding:
    """Lines the spec ignores (unknown fields, bad ``retry``, an ``id`` with NUL) and blocks
    a browser never dispatches (no ``data``) carry nothing to a browser."""
    found = [line for response in _bodies(observation) for line in _ignored(response.body)]
    if found:
        return Finding(id="ignored-lines", level=Level.WARN,
                       evidence="\n".join(sorted(set(found))[:5]),
                       summary=f"{len(found)} lines or blocks a browser ignores",
                       fix="send only data, event, id and retry fields and comments; give "
                       "every event a data line")
    return Finding(id="ignored-lines", level=Level.PASS, summary="none")


@_on_stream("truncated")
def check_truncated(observation: Observation) -> Finding:
    """An event cut off when the server closes is never dispatched (WHATWG HTML 9.2.6: the
    end of the stream discards an incomplete event)."""
    closed = [r for r in _bodies(observation) if r.end in (End.CLOSED, End.CUT)]
    if not closed:
        return Finding(id="truncated", level=Level.SKIP,
                       summary="the server closed no stream within the duration")
    for response in closed:
        if _read(response).is_truncated:
            tail = response.body[-80:]
            return Finding(id="truncated", level=Level.FAIL, evidence=_shown(tail),
                           summary="the server closed inside an event: a browser never "
                           "dispatches it", fix="end every event with a blank line before "
                           "closing; flush before close")
    cut = [r for r in closed if r.end is End.CUT]
    if cut:
        return Finding(id="truncated", level=Level.WARN, evidence=str(cut[0].error),
                       summary="the connection ended before the body's framing did "
                       "(a crash or a reset)", fix="end the response properly when the "
                       "stream ends")
    return Finding(id="truncated", level=Level.PASS,
                   summary=f"{len(closed)} closes, each after a complete event")


@_on_stream("line-length")
def check_line_length(observation: Observation) -> Finding:
    """Very long lines are held whole by every client before anything is dispatched."""
    longest = max(
        (len(line) for r in _bodies(observation) for line in _LINE_END.split(r.body)),
        default=0,
    )
    if longest > MAX_LINE:
        return Finding(id="line-length", level=Level.FAIL, evidence=f"{longest} bytes",
                       summary=f"a line of {longest} bytes: past the limit of many clients "
                       f"(sse_core's is {MAX_LINE})", fix="split large payloads over events")
    if longest > LONG_LINE:
        return Finding(id="line-length", level=Level.WARN, evidence=f"{longest} bytes",
                       summary=f"a line of {longest} bytes", fix="keep lines under "
                       f"{LONG_LINE // 1024} KiB; split large payloads over events")
    return Finding(id="line-length", level=Level.PASS, summary=f"longest {longest} bytes")


# --- other methods ---------------------------------------------------------------------------


def check_head(observation: Observation) -> Finding:
    """``HEAD`` gets a quick answer (RFC 9110 section 9.3.2), never a hanging one."""
    head = observation.head
    if head is None or observation.main.status is None:
        return Finding(id="head", level=Level.SKIP, summary="not asked (no server answered)")
    if head.status is None:
        return Finding(id="head", level=Level.WARN, summary=f"no answer: {head.error}",
                       fix="answer HEAD with the stream's head, or 405")
    if head.status >= 500:
        return Finding(id="head", level=Level.WARN, evidence=head.head_text(),
                       summary=f"{head.status}", fix="answer HEAD with the stream's head, "
                       "or 405")
    return Finding(id="head", level=Level.PASS, summary=f"{head.status}",
                   evidence=head.head_text())


@_on_stream("cors")
def check_cors(observation: Observation) -> Finding:
    """A page on ``--origin`` may read the stream only if the server allows that origin
    (Fetch standard, CORS check)."""
    origin = observation.origin
    if origin is None:
        return Finding(id="cors", level=Level.SKIP, summary="not asked (give --origin)")
    main = observation.main
    allowed = main.header("access-control-allow-origin")
    if allowed not in (origin, "*"):
        return Finding(id="cors", level=Level.FAIL,
                       evidence=f"Access-Control-Allow-Origin: {allowed}",
                       summary=f"a page on {origin} cannot read the stream",
                       fix=f"send Access-Control-Allow-Origin: {origin}")
    options = observation.options
    if options is not None and (
        options.status is None or not 200 <= options.status < 300
        or options.header("access-control-allow-origin") not in (origin, "*")
    ):
        evidence = options.head_text() if options.status is not None else str(options.error)
        return Finding(id="cors", level=Level.WARN, evidence=evidence,
                       summary="the GET is allowed, but a preflight (a client sending its own "
                       "headers, such as a fetch-based one) is refused",
                       fix="answer OPTIONS with 204 and Access-Control-Allow-Origin, -Methods "
                       "and -Headers")
    return Finding(id="cors", level=Level.PASS,
                   summary=f"Access-Control-Allow-Origin: {allowed}")


#: Every check, in report order.
CHECKS: tuple[Callable[[Observation], Finding], ...] = (
    check_status,
    check_content_type,
    check_cache_control,
    check_accel_buffering,
    check_content_length,
    check_framing,
    check_compression,
    check_first_byte,
    check_heartbeat,
    check_retry,
    check_ids,
    check_resumption,
    check_unknown_id,
    check_line_endings,
    check_ignored_lines,
    check_truncated,
    check_line_length,
    check_head,
    check_cors,
)


def judge(observation: Observation) -> tuple[Finding, ...]:
    """Every check's finding on ``observation``, in report order."""
    return tuple(check(observation) for check in CHECKS)
