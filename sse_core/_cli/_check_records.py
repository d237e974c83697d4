"""``sse-core check``: what the prober observed and what the checks found (records, no I/O).

The prober (:mod:`._check_probe`) fills an :class:`Observation` with one
:class:`Response` per request it made; the checks (:mod:`._check_judge`) read it and return
:class:`Finding` records; a :class:`Report` scores them, picks the exit code and renders text
or JSON. Times are seconds since the request was sent, so every record can be written by hand
in a test.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs

__all__ = [
    "Arrival",
    "End",
    "Finding",
    "Level",
    "Observation",
    "Report",
    "Response",
]


class Level(enum.Enum):
    """How an item fared: passed, a warning, a failure, or not judged (nothing to judge by)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class End(enum.Enum):
    """How a response's reading ended."""

    #: The server ended the body properly (chunked terminator, Content-Length reached, the
    #: close that delimits a body with no framing, or HTTP/2's ``END_STREAM``).
    CLOSED = "closed"
    #: The connection ended before the body's framing said it was complete (over HTTP/2: the
    #: stream was reset, or the connection ended).
    CUT = "cut"
    #: The prober stopped reading (its share of the duration was spent, or it had enough).
    STOPPED = "stopped"
    #: No response head arrived (connection refused, TLS failure, timeout, bad HTTP).
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class Arrival:
    """Body bytes that arrived together (one read from the socket).

    Attributes:
        at: Seconds after the request was sent.
        size: How many body bytes came off the wire (chunked framing removed, still encoded).
        data: The same bytes after ``Content-Encoding`` was undone (may be empty while a
            compressed block is incomplete).
        is_flushed: For a compressed body, whether the body read so far ends where the
            server flushed its compressor: at a sync-flush marker (``00 00 ff ff``, what
            ``Z_SYNC_FLUSH`` and ``Z_FULL_FLUSH`` end with), at the end of the compressed
            stream, or with this read decoding to bytes that end a line (what any flush of
            a whole write gives). ``None`` for a body that is not compressed.
    """

    at: float
    size: int
    data: bytes
    is_flushed: bool | None = None


@attrs.frozen(kw_only=True)
class Response:
    """One request and what came back.

    Attributes:
        method: The request method.
        request_headers: The request's header fields, as sent.
        status: The response status, or ``None`` when no head arrived.
        reason: The status line's reason phrase.
        http_version: ``"1.1"``, ``"1.0"``, or ``"2"`` (``--http2``; no reason phrase).
        headers: The response's header fields, names lowercased, in order.
        head_at: When the head arrived.
        arrivals: The body, read by read.
        end: How reading ended.
        observed: How long the prober read, in seconds since the request.
        error: What went wrong, when something did (connection, HTTP framing, decoding).
    """

    method: str = "GET"
    request_headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    reason: str = ""
    http_version: str = "1.1"
    headers: tuple[tuple[str, str], ...] = ()
    head_at: float = 0.0
    arrivals: tuple[Arrival, ...] = ()
    end: End = End.STOPPED
    observed: float = 0.0
    error: str | None = None

    def header(self, name: str) -> str | None:
        """The field's values joined with ``", "``, or ``None`` when it is absent."""
        values = [value for key, value in self.headers if key == name.lower()]
        return ", ".join(values) if values else None

    @property
    def body(self) -> bytes:
        """The whole decoded body."""
        return b"".join(arrival.data for arrival in self.arrivals)

    def head_text(self) -> str:
        """The status line and header fields, as evidence."""
        lines = [f"HTTP/{self.http_version} {self.status} {self.reason}".rstrip()]
        lines += [f"{key}: {value}" for key, value in self.headers]
        return "\n".join(lines)


@attrs.frozen(kw_only=True)
class Observation:
    """Everything the prober saw of one endpoint.

    Attributes:
        url: The endpoint.
        duration: The bound on the whole check, in seconds.
        idle_timeout: The proxy idle timeout heartbeats are judged against, in seconds.
        origin: The ``Origin`` sent (``--origin``), or ``None``.
        main: The first, long ``GET``.
        resumed: The ``GET`` with ``Last-Event-ID`` set to an id ``main`` saw, or ``None``
            when there was no id to resume from (or no time left).
        resumed_from: The ``Last-Event-ID`` that ``resumed`` sent.
        unknown: The ``GET`` with a ``Last-Event-ID`` the server cannot know, or ``None``.
        head: The ``HEAD`` request, or ``None``.
        options: The CORS preflight (``OPTIONS``), made only with an origin.
    """

    url: str
    duration: float
    idle_timeout: float = 30.0
    origin: str | None = None
    main: Response
    resumed: Response | None = None
    resumed_from: str | None = None
    unknown: Response | None = None
    head: Response | None = None
    options: Response | None = None


@attrs.frozen(kw_only=True)
class Finding:
    """The verdict on one item.

    Attributes:
        id: The item (``content-type``, ``resumption``...), stable for scripts.
        level: Pass, warning, failure or not judged.
        summary: One line saying what was found.
        evidence: The bytes or header fields seen (may span lines).
        fix: One line saying what to change; empty on a pass.
    """

    id: str
    level: Level
    summary: str
    evidence: str = ""
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """The finding as JSON-ready values."""
        return {
            "id": self.id,
            "level": self.level.value,
            "summary": self.summary,
            "evidence": self.evidence,
            "fix": self.fix,
        }


_MARKS = {Level.PASS: "PASS", Level.WARN: "WARN", Level.FAIL: "FAIL", Level.SKIP: "----"}


@attrs.frozen(kw_only=True)
class Report:
    """The findings on one endpoint, scored.

    Attributes:
        url: The endpoint.
        duration: The bound the check ran under, in seconds.
        findings: One per item, in the order checked.
    """

    url: str
    duration: float
    findings: tuple[Finding, ...]

    def count(self, level: Level) -> int:
        """How many findings have ``level``."""
        return sum(finding.level is level for finding in self.findings)

    @property
    def score(self) -> int:
        """Percent of the judged items' points: a pass is worth 2, a warning 1, a failure 0
        (items not judged do not count); 100 when nothing was judged."""
        judged = [f for f in self.findings if f.level is not Level.SKIP]
        if not judged:
            return 100
        points = sum(2 if f.level is Level.PASS else f.level is Level.WARN for f in judged)
        return round(100 * points / (2 * len(judged)))

    def exit_code(self, *, is_strict: bool) -> int:
        """2 with a failure; 1 with a warning when ``is_strict``; 0 otherwise."""
        if self.count(Level.FAIL):
            return 2
        if is_strict and self.count(Level.WARN):
            return 1
        return 0

    def to_json(self, *, is_strict: bool) -> str:
        """The report as one JSON document."""
        document: dict[str, Any] = {
            "url": self.url,
            "duration": self.duration,
            "score": self.score,
            "counts": {level.value: self.count(level) for level in Level},
            "exit_code": self.exit_code(is_strict=is_strict),
            "findings": [finding.to_dict() for finding in self.findings],
        }
        return json.dumps(document, indent=2, ensure_ascii=False)

    def to_text(self) -> str:
        """The report for a terminal: one block per item, then the score."""
        width = max((len(finding.id) for finding in self.findings), default=0)
        lines = [f"sse-core check {self.url} (within {self.duration:g} s)", ""]
        for finding in self.findings:
            lines.append(f"{_MARKS[finding.level]}  {finding.id:<{width}}  {finding.summary}")
            pad = " " * (width + 8)
            if finding.evidence and finding.level is not Level.PASS:
                evidence = finding.evidence.splitlines()
                lines.append(f"{pad}seen: {evidence[0]}")
                lines += [f"{pad}      {line}" for line in evidence[1:]]
            if finding.fix:
                lines.append(f"{pad}fix:  {finding.fix}")
        lines += [
            "",
            f"score {self.score}/100: {self.count(Level.PASS)} pass, "
            f"{self.count(Level.WARN)} warn, {self.count(Level.FAIL)} fail, "
            f"{self.count(Level.SKIP)} not judged",
        ]
        return "\n".join(lines)
