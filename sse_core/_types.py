"""Shared type aliases and protocols (floor 0: imports nothing of ours)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Headers", "RandomSource", "header_value"]

#: HTTP header fields as ``(name, value)`` pairs of bytes, in order, names lower-case.
Headers = list[tuple[bytes, bytes]]


class RandomSource(Protocol):
    """Where the state objects draw randomness from.

    :class:`random.Random` satisfies it; tests pass a seeded ``random.Random(seed)`` so every
    schedule can be replayed exactly. The core never creates one itself.
    """

    def random(self) -> float:
        """Return the next float in ``[0.0, 1.0)``."""
        ...

    def uniform(self, a: float, b: float, /) -> float:
        """Return a float ``N`` with ``a <= N <= b``."""
        ...


def header_value(headers: Sequence[tuple[str | bytes, str | bytes]], name: str) -> str | None:
    """The value of the last header field called ``name`` (lower-case), as str.

    Names are compared case-insensitively; bytes are read as Latin-1, as HTTP/1.1 does.
    """
    found = None
    for field_name, value in headers:
        if isinstance(field_name, bytes):
            field_name = field_name.decode("latin-1")
        if field_name.lower() == name:
            found = value.decode("latin-1") if isinstance(value, bytes) else value
    return found
