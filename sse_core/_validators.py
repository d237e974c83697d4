"""Argument checks shared by the core, and the one rule for ``now`` (floor 0: imports only errors).

Every check is written once here and used two ways: as an attrs validator
(``attrs.field(validator=positive_int)``) on the frozen configuration records, and as a plain
call (``positive_int.check("max_output", value)``) for arguments of functions and
constructors that are not attrs records. A failed check raises the library's specific error
and says what was expected and what was seen: :class:`~sse_core.InvalidConfigError` by
default, :class:`~sse_core.InvalidFieldError` for text bound for the wire, or the error the
caller names (:class:`~sse_core.LocalProtocolError` for a misused method).

The rule for ``now``: an object that takes ``now`` refuses, with :class:`ClockError`, a
``now`` that is not a finite number or that is earlier than the latest ``now`` it was given
(an equal one is fine). :class:`MonotonicNow` implements it once for every such object; see
``docs/state/clock.rst`` for why refusing is the rule rather than clamping.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ._errors import ClockError, InvalidConfigError, InvalidFieldError, LocalProtocolError

__all__ = [
    "Check",
    "ClockError",
    "MonotonicNow",
    "has_cr_lf_nul",
    "has_line_break",
    "header_pairs",
    "http_token",
    "http_url",
    "instance_of",
    "int_at_least",
    "int_between",
    "is_bool",
    "non_negative_int",
    "non_negative_number",
    "nonempty_one_line",
    "number_above",
    "number_at_least",
    "one_line",
    "one_line_no_nul",
    "positive_int",
    "positive_number",
    "query_name",
    "request_body",
]

T = TypeVar("T")


class Check:
    """One argument check, usable as an attrs validator and as a plain call.

    Args:
        test: Returns whether a value passes.
        expected: What a passing value is, for messages: ``"an int >= 1"`` gives
            ``"max_ids must be an int >= 1, got 0"``.
    """

    __slots__ = ("_test", "expected")

    def __init__(self, test: Callable[[Any], bool], expected: str) -> None:
        self._test = test
        self.expected = expected

    def __call__(self, instance: object, attribute: Any, value: Any) -> None:
        """Check an attrs field on construction (the attrs validator protocol).

        Raises:
            InvalidConfigError: the value fails the check; the message names the field.
        """
        if not self._test(value):
            raise InvalidConfigError(f"{attribute.name} must be {self.expected}, got {value!r}")

    def check(
        self, name: str, value: T, *, error: type[LocalProtocolError] = InvalidConfigError
    ) -> T:
        """Check one argument.

        Args:
            name: The argument's name, for the message.
            value: The value to check.
            error: What to raise: :class:`~sse_core.InvalidConfigError` (the default),
                :class:`~sse_core.InvalidFieldError` (``name`` is then the field) or
                :class:`~sse_core.LocalProtocolError`.

        Returns:
            ``value``, unchanged.

        Raises:
            LocalProtocolError: the value fails the check (of the class ``error``).
        """
        if self._test(value):
            return value
        if issubclass(error, InvalidFieldError):
            raise error(name, value, f"must be {self.expected}")
        raise error(f"{name} must be {self.expected}, got {value!r}")

    def or_none(self) -> Check:
        """This check, but ``None`` passes too."""
        test = self._test
        return Check(lambda value: value is None or test(value), f"{self.expected} or None")


# --- numbers --------------------------------------------------------------------------------


def _is_real(value: object) -> bool:
    """An int or a float, not a bool (``True`` is no number of seconds)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    # math.isfinite() of an int too large for a float raises; every int is finite.
    return isinstance(value, int) or math.isfinite(value)


def number_at_least(minimum: float) -> Check:
    """A finite int or float ``>= minimum`` (never a bool)."""
    return Check(
        lambda v: _is_real(v) and _is_finite(v) and v >= minimum,
        f"a finite number >= {minimum:g}",
    )


def number_above(minimum: float) -> Check:
    """A finite int or float ``> minimum`` (never a bool)."""
    return Check(
        lambda v: _is_real(v) and _is_finite(v) and v > minimum, f"a finite number > {minimum:g}"
    )


def int_at_least(minimum: int) -> Check:
    """An int (not a bool) ``>= minimum``."""
    return Check(lambda v: type(v) is int and v >= minimum, f"an int >= {minimum}")


def int_between(low: int, high: int) -> Check:
    """An int (not a bool) from ``low`` to ``high``, both included."""
    return Check(lambda v: type(v) is int and low <= v <= high, f"an int from {low} to {high}")


def instance_of(cls: type) -> Check:
    """An instance of ``cls`` (for enums: one of its members)."""
    article = "an" if cls.__name__[0] in "AEIOU" else "a"
    return Check(lambda v: isinstance(v, cls), f"{article} {cls.__name__}")


#: Seconds as a duration or delay that may be zero.
non_negative_number = number_at_least(0)
#: Seconds as a period that must pass (a timeout, an interval).
positive_number = number_above(0)
#: A count or a size that may be zero.
non_negative_int = int_at_least(0)
#: A count or a size of at least one.
positive_int = int_at_least(1)
#: ``True`` or ``False`` only.
is_bool = instance_of(bool)


# --- text ------------------------------------------------------------------------------------
# A CR or LF ends a line of text/event-stream (WHATWG HTML 9.2.6) and of an HTTP/1.1 field
# (RFC 9112 section 2.2); U+0000 in an id makes a WHATWG parser ignore the id field, and HTTP
# field values must not contain it (RFC 9110 section 5.5). Text bound for either is refused,
# never escaped.


def has_line_break(text: str) -> bool:
    """Whether ``text`` holds a CR or an LF."""
    return "\r" in text or "\n" in text


def has_cr_lf_nul(text: str) -> bool:
    """Whether ``text`` holds a CR, an LF or a U+0000."""
    return "\r" in text or "\n" in text or "\x00" in text


#: One line of text: a str without CR or LF.
one_line = Check(lambda v: isinstance(v, str) and not has_line_break(v), "a str without CR or LF")
#: A non-empty line, e.g. an event type.
nonempty_one_line = Check(
    lambda v: isinstance(v, str) and bool(v) and not has_line_break(v),
    "a non-empty str without CR or LF",
)
#: A line without U+0000 either: ids, ``Last-Event-ID``, header values.
one_line_no_nul = Check(
    lambda v: isinstance(v, str) and not has_cr_lf_nul(v), "a str without CR, LF or U+0000"
)


# --- HTTP-shaped text (RFC 9110) --------------------------------------------------------------

# tchar of RFC 9110 section 5.6.2: field names and methods are tokens.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _is_url(value: object) -> bool:
    if not isinstance(value, str) or any(c in value for c in "\r\n\x00 "):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed port or IPv6 literal
        return False


#: A method or a field name: a non-empty token.
http_token = Check(
    lambda v: isinstance(v, str) and bool(v) and set(v) <= _TOKEN_CHARS, "a non-empty HTTP token"
)
#: An absolute ``http`` or ``https`` URL, with no space, CR, LF or U+0000.
http_url = Check(_is_url, "an absolute http(s) URL without spaces, CR, LF or U+0000")
#: A query parameter name that needs no escaping: none of ``& = # ? %``, space, CR, LF, NUL.
query_name = Check(
    lambda v: isinstance(v, str) and bool(v) and not any(c in v for c in "&=#?% \r\n\x00"),
    "a plain query parameter name",
)


def header_pairs(
    value: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    """An attrs converter: header fields as a tuple of ``(name, value)`` str pairs.

    Takes a mapping (``{"Authorization": "Bearer x"}``, its items in order) or an iterable of
    pairs (which may repeat a name). Names are tokens; values have no CR, LF or U+0000
    (RFC 9110 section 5.5).

    Raises:
        InvalidConfigError: not a mapping or an iterable of pairs, or a field that breaks the
            rules above.
    """
    if isinstance(value, Mapping):
        value = value.items()
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidConfigError(
            f"headers must be a mapping or (name, value) pairs, got {value!r}"
        )
    pairs = []
    for pair in value:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise InvalidConfigError(f"headers must be (name, value) pairs, got {pair!r}")
        name, field_value = pair
        http_token.check("header name", name)
        one_line_no_nul.check(f"header {name} value", field_value)
        pairs.append((name, field_value))
    return tuple(pairs)


def request_body(value: str | bytes | None) -> bytes | None:
    """An attrs converter: a request body as bytes (a ``str`` encoded as UTF-8), or ``None``.

    Raises:
        InvalidConfigError: neither ``str``, ``bytes`` nor ``None``.
    """
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate has no UTF-8
            raise InvalidConfigError(f"body must be encodable as UTF-8: {error}") from None
    if isinstance(value, bytes):  # a subclass: keep the plain bytes
        return bytes(value)
    raise InvalidConfigError(f"body must be str, bytes or None, got {value!r}")


# --- the rule for now ------------------------------------------------------------------------


# Below every finite now a caller passes, and above -inf (which is refused).
_NO_NOW_YET = -sys.float_info.max
_INF = math.inf


class MonotonicNow:
    """What every object that takes ``now`` inherits: it refuses time going backwards.

    The object's clock is the latest ``now`` given to one of its inputs (a method that may
    change it). A subclass calls ``MonotonicNow.__init__(self)`` once, then, first thing in
    every method with a ``now`` parameter (before any other check, so a wrong clock is what
    the caller hears about), :meth:`_take_now` in an input (which moves the clock) or
    :meth:`_read_now` in a query (which only compares: a query changes nothing, so asking
    about several instants is fine). Both refuse a ``now`` that is not finite or is earlier
    than the clock; an equal one is accepted, as one reading may serve several calls.
    """

    __slots__ = ("_latest_now",)

    def __init__(self) -> None:
        self._latest_now: float = _NO_NOW_YET

    def _take_now(self, now: float) -> None:
        """Accept ``now`` as the latest instant, or refuse it.

        Raises:
            ClockError: ``now`` is not a finite number, or is earlier than the latest ``now``
                taken; nothing was changed.
        """
        latest = self._latest_now
        try:
            # One chained comparison on the hot path: NaN, +inf and -inf all fail it.
            if latest <= now < _INF:
                self._latest_now = now
                return
        except TypeError:  # not a number at all
            pass
        raise _clock_error(now, latest)

    def _read_now(self, now: float) -> None:
        """Check ``now`` for a query: like :meth:`_take_now`, but the clock stays.

        Raises:
            ClockError: ``now`` is not a finite number, or is earlier than the latest ``now``
                taken.
        """
        latest = self._latest_now
        try:
            if latest <= now < _INF:
                return
        except TypeError:  # not a number at all
            pass
        raise _clock_error(now, latest)


def _clock_error(now: object, latest: float) -> ClockError:
    if not _is_real(now) or not _is_finite(now):  # type: ignore[arg-type]
        return ClockError(now, None)
    return ClockError(now, latest)
