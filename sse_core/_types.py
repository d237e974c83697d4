"""Shared type aliases and protocols (floor 0: imports nothing of ours)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Headers", "RandomSource"]

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
