"""Tests of the exception tree: the root is caught, never raised; its branches work."""

from __future__ import annotations

import pytest

from sse_core import (
    InvalidConfigError,
    InvalidFieldError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    SSEError,
)


@pytest.mark.parametrize("args", [(), ("something went wrong",)])
def test_root_cannot_be_raised_bare(args: tuple[str, ...]) -> None:
    """SSEError itself cannot be made (h11 refuses its root too): TypeError, naming the
    branches to raise instead."""
    with pytest.raises(TypeError, match="LocalProtocolError or RemoteProtocolError"):
        SSEError(*args)


@pytest.mark.parametrize(
    "error",
    [
        LocalProtocolError("misuse"),
        RemoteProtocolError("bad peer"),
        InvalidConfigError("bad knob"),
        InvalidFieldError("id", "a\nb", "contains LF"),
        LimitExceeded("max_line_length", 11, 10, items=["kept"]),
    ],
    ids=lambda error: type(error).__name__,
)
def test_branches_are_made_raised_and_caught(error: SSEError) -> None:
    """Every branch is an SSEError that can be made, raised, and caught by the root."""
    with pytest.raises(SSEError) as caught:
        raise error
    assert caught.value is error


def test_an_application_subclass_of_the_root_works() -> None:
    """Only the root itself is refused: a subclass of SSEError is an ordinary exception."""

    class AppError(SSEError):
        pass

    with pytest.raises(SSEError, match="mine"):
        raise AppError("mine")
