"""Tests of the wire records: immutability, validation, equality."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from sse_core import Comment, Event, InvalidFieldError, Retry
from sse_core._events import _make_comment, _make_event


def test_event_defaults() -> None:
    """An event needs only data; the type defaults to 'message' and it has no id."""
    event = Event(data="x")
    assert (event.data, event.event, event.id, event.last_event_id) == ("x", "message", None, "")


def test_records_are_immutable() -> None:
    """Records cannot be changed after construction."""
    event = Event(data="x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Comment(text="a").text = "b"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Retry(milliseconds=1).milliseconds = 2  # type: ignore[misc]


def test_records_are_keyword_only() -> None:
    """Positional construction is refused, so fields cannot be swapped by accident."""
    with pytest.raises(TypeError):
        Event("x")  # type: ignore[misc]


def test_fast_constructors_equal_validated_ones() -> None:
    """The parser's fast constructors build records equal (and equally hashed) to the
    validated constructor's, and just as immutable."""
    fast = _make_event("d", "t", "1", "1")
    slow = Event(data="d", event="t", id="1", last_event_id="1")
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.data = "e"  # type: ignore[misc]
    assert _make_comment("c") == Comment(text="c")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": "x", "event": "a\nb"}, "event"),
        ({"data": "x", "event": ""}, "event"),
        ({"data": "x", "id": "a\rb"}, "id"),
        ({"data": "x", "id": "a\x00b"}, "id"),
        ({"data": "x", "last_event_id": "a\nb"}, "last_event_id"),
        ({"data": "x", "last_event_id": "\x00"}, "last_event_id"),
        ({"data": b"x"}, "data"),
        ({"data": "x", "event": 3}, "event"),
    ],
)
def test_event_validation(kwargs: dict[str, Any], field: str) -> None:
    """Fields that could not be written safely are refused on construction."""
    with pytest.raises(InvalidFieldError) as info:
        Event(**kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [-1, 1.0, True, "5", None])
def test_retry_validation(value: Any) -> None:
    """Retry takes a non-negative int of milliseconds and nothing else."""
    with pytest.raises(InvalidFieldError):
        Retry(milliseconds=value)


def test_retry_delay_in_seconds() -> None:
    """Retry.delay converts the wire's milliseconds to seconds."""
    assert Retry(milliseconds=2500).delay == 2.5


def test_comment_validation() -> None:
    """A comment cannot span lines."""
    with pytest.raises(InvalidFieldError):
        Comment(text="a\nb")
