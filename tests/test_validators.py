"""The shared argument checks (sse_core/_validators.py): what each accepts and refuses, the
error each raises, and MonotonicNow, the one implementation of the rule for ``now``."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from sse_core import InvalidConfigError, InvalidFieldError, LocalProtocolError
from sse_core._validators import (
    Check,
    ClockError,
    MonotonicNow,
    has_cr_lf_nul,
    has_line_break,
    header_pairs,
    http_token,
    http_url,
    instance_of,
    int_at_least,
    int_between,
    is_bool,
    non_negative_int,
    non_negative_number,
    nonempty_one_line,
    number_above,
    one_line,
    one_line_no_nul,
    positive_int,
    positive_number,
    query_name,
)

BIG = 10**400  # an int no float can hold: finite all the same

TABLE: list[tuple[Check, list[object], list[object]]] = [
    (non_negative_number, [0, 0.0, 1, 2.5, BIG], [-1, -0.1, math.inf, math.nan, True, "1", None]),
    (positive_number, [1e-9, 1, 3.0, BIG], [0, 0.0, -1, math.inf, -math.inf, math.nan, False]),
    (number_above(1), [1.5, 2], [1, 1.0, 0.5]),
    (non_negative_int, [0, 1, BIG], [-1, 1.0, True, None, "0"]),
    (positive_int, [1, 2], [0, -3, 1.0, True]),
    (int_at_least(4), [4, 5], [3, 4.0]),
    (int_between(1, 9), [1, 5, 9], [0, 10, 5.0, True]),
    (instance_of(int), [1, True], ["1", 1.0]),
    (is_bool, [True, False], [0, 1, None]),
    (one_line, ["", "a b", "\x00"], ["a\n", "\r", None, b"a"]),
    (nonempty_one_line, ["a", "x y"], ["", "a\r\n", 1]),
    (one_line_no_nul, ["", "id-1"], ["a\x00", "a\n", "\rb", None]),
    (http_token, ["GET", "X-Custom", "a!#$%&'*+-.^_`|~9"], ["", "a b", "a:b", "é", None]),
    (http_url, ["http://a.test/x", "https://[::1]:8/"],
     ["ftp://a.test/", "/x", "http:///x", "http://a.test/x y", "http://a\n.test", "http://[::1",
      None]),
    (query_name, ["lastEventId", "a-b_c"], ["", "a=b", "a&b", "a b", "#", "a%20", 3]),
]


@pytest.mark.parametrize(
    ("check", "good", "bad"), TABLE, ids=[check.expected for check, _, _ in TABLE]
)
def test_accepts_and_refuses(check: Check, good: list[object], bad: list[object]) -> None:
    """Each check passes its good values through unchanged and refuses its bad ones with an
    InvalidConfigError naming the argument, the expectation and the value."""
    for value in good:
        assert check.check("arg", value) is value
    for value in bad:
        with pytest.raises(InvalidConfigError) as info:
            check.check("arg", value)
        assert str(info.value) == f"arg must be {check.expected}, got {value!r}"


def test_or_none_lets_none_through() -> None:
    """or_none() accepts None and says so in its message."""
    check = positive_int.or_none()
    assert check.check("n", None) is None
    assert check.check("n", 3) == 3
    with pytest.raises(InvalidConfigError, match="n must be an int >= 1 or None, got 0"):
        check.check("n", 0)


def test_the_error_can_be_chosen() -> None:
    """A misused method raises LocalProtocolError; text for the wire an InvalidFieldError that
    names the field (and is a ValueError)."""
    with pytest.raises(LocalProtocolError) as info:
        non_negative_int.check("count", -1, error=LocalProtocolError)
    assert type(info.value) is LocalProtocolError
    with pytest.raises(InvalidFieldError) as field_info:
        nonempty_one_line.check("event", "a\nb", error=InvalidFieldError)
    assert field_info.value.field == "event" and field_info.value.value == "a\nb"
    assert isinstance(field_info.value, ValueError)
    assert "must be a non-empty str without CR or LF" in str(field_info.value)


@attrs.frozen(kw_only=True)
class _Config:
    delay: float = attrs.field(default=1.0, validator=non_negative_number)
    limit: int | None = attrs.field(default=None, validator=positive_int.or_none())


def test_checks_are_attrs_validators() -> None:
    """Used as attrs validators, the checks name the field in an InvalidConfigError."""
    assert _Config(delay=0, limit=5).limit == 5
    with pytest.raises(InvalidConfigError, match=r"delay must be a finite number >= 0, got -1"):
        _Config(delay=-1)
    with pytest.raises(InvalidConfigError, match="limit must be an int >= 1 or None"):
        _Config(limit=0)


def test_text_predicates() -> None:
    """has_line_break sees CR and LF; has_cr_lf_nul sees U+0000 too."""
    assert [has_line_break(t) for t in ("a", "a\rb", "a\nb", "a\x00")] == [
        False, True, True, False]
    assert [has_cr_lf_nul(t) for t in ("a", "a\r", "\n", "a\x00b")] == [False, True, True, True]


def test_header_pairs() -> None:
    """header_pairs makes a tuple of token-named pairs and refuses anything else."""
    assert header_pairs([("X-A", "1"), ("B", "")]) == (("X-A", "1"), ("B", ""))
    assert header_pairs(()) == ()
    assert header_pairs({"X-A": "1", "B": ""}) == (("X-A", "1"), ("B", ""))
    for bad in ("X-A: 1", b"x", 3, [("X-A",)], [["X-A", "1"]], [("X A", "1")],
                [("X-A", "1\r\nX-B: 2")], [("X-A", None)]):
        with pytest.raises(InvalidConfigError):
            header_pairs(bad)


class _Clocked(MonotonicNow):
    __slots__ = ("inputs",)

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[float] = []

    def put(self, now: Any) -> None:
        self._take_now(now)
        self.inputs.append(now)

    def ask(self, now: Any) -> bool:
        self._read_now(now)
        return True


def test_monotonic_now_refuses_going_backwards() -> None:
    """An input moves the clock; an earlier now is refused with both instants; equal is fine."""
    clocked = _Clocked()
    clocked.put(-5)  # any finite number is a first reading
    clocked.put(10.0)
    clocked.put(10.0)
    with pytest.raises(ClockError) as info:
        clocked.put(9.5)
    assert (info.value.now, info.value.latest) == (9.5, 10.0)
    assert str(info.value) == "now went backwards: got 9.5 after 10.0 (pass a monotonic clock)"
    assert isinstance(info.value, LocalProtocolError) and isinstance(info.value, ValueError)
    assert clocked.inputs == [-5, 10.0, 10.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1", None, 1j])
def test_monotonic_now_refuses_what_is_no_finite_number(bad: object) -> None:
    """NaN, infinities and non-numbers are refused with latest None, first call or later."""
    for calls in ([], [1.0]):
        clocked = _Clocked()
        for now in calls:
            clocked.put(now)
        for method in (clocked.put, clocked.ask):
            with pytest.raises(ClockError, match="finite number of seconds") as info:
                method(bad)
            assert info.value.latest is None


def test_a_query_compares_but_does_not_move_the_clock() -> None:
    """_read_now refuses an earlier now than the last input's and leaves the clock alone."""
    clocked = _Clocked()
    clocked.put(10.0)
    assert clocked.ask(50.0)
    clocked.put(20.0)  # the query at 50.0 did not move the clock
    with pytest.raises(ClockError, match=r"got 19\.0 after 20\.0"):
        clocked.ask(19.0)
