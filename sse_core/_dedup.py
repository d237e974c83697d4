"""DedupWindow: a bounded memory of recently seen event ids (floor 2: state object).

A client that reconnects with ``Last-Event-ID`` may be sent events it already delivered (a
server replaying a little too much, a proxy retrying). :class:`DedupWindow` remembers the ids
of the last events it let through and answers, for each new one, "seen it already?".

Memory is bounded whatever the peer sends: at most ``max_ids`` ids are kept, ids older than
``max_age`` seconds are forgotten, and an id longer than ``max_id_length`` characters is kept
as a fixed-size digest instead of as text.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable

import attrs

from ._validators import MonotonicNow, positive_int, positive_number

__all__ = ["DedupConfig", "DedupWindow"]


@attrs.frozen(kw_only=True)
class DedupConfig:
    """Limits of a :class:`DedupWindow`.

    Attributes:
        max_ids: How many distinct ids are remembered at most. When a new id would exceed it,
            the id first seen longest ago is forgotten. At least 1.
        max_age: How long, in seconds, an id is remembered after it was first seen, or
            ``None`` to forget ids only by count. Positive and finite when given.
        max_id_length: Ids longer than this many characters are remembered as a 16-byte
            BLAKE2b digest rather than as text, so one entry never costs more than about
            ``max_id_length`` characters. At least 1.

    Raises:
        InvalidConfigError: on construction, when a value is out of range or of the wrong type.
    """

    max_ids: int = attrs.field(default=1024, validator=positive_int)
    max_age: float | None = attrs.field(default=None, validator=positive_number.or_none())
    max_id_length: int = attrs.field(default=256, validator=positive_int)


class DedupWindow(MonotonicNow):
    """Remembers recently seen event ids and reports repeats.

    Each :meth:`check` is O(1): a dict answers membership and a deque keeps ids in the order
    they were first seen, so eviction always removes the oldest.

    Rules, all deliberate:

    * **Age counts from the first sighting.** Seeing an id again (a duplicate) neither
      refreshes its age nor moves it in the eviction order. The window is therefore exactly
      "the last ``max_ids`` distinct ids first seen less than ``max_age`` seconds ago", and a
      peer that keeps repeating one id cannot pin it in memory forever.
    * **Eviction is oldest-first**, by count (when a new id would exceed ``max_ids``) and by
      age (an id seen at ``t`` is forgotten once ``now >= t + max_age``). A forgotten id is
      new again if it comes back.
    * **Any string is an id**, including ``""``. SSE uses an empty ``id:`` field to reset the
      last event ID, so callers normally skip events whose ``id`` is ``None`` or ``""``.
    * **Time never runs backwards**: a ``now`` earlier than one already passed is refused
      with :class:`~sse_core.ClockError` and changes nothing (see :doc:`/state/clock`).

    Args:
        config: The limits; ``DedupConfig()`` when omitted.
    """

    __slots__ = ("_config", "_max_age", "_max_id_length", "_max_ids", "_order", "_seen")

    def __init__(self, config: DedupConfig | None = None) -> None:
        MonotonicNow.__init__(self)
        self._config = config = DedupConfig() if config is None else config
        self._max_ids, self._max_age = config.max_ids, config.max_age
        self._max_id_length = config.max_id_length
        # key -> instant first seen; key is the id, or its digest for long ids.
        self._seen: dict[str | bytes, float] = {}
        # The keys of _seen, oldest first (the dict's own order would do, but taking its
        # first key after many deletions scans the holes they left).
        self._order: deque[str | bytes] = deque()

    @property
    def config(self) -> DedupConfig:
        """The limits this window was built with."""
        return self._config

    def __len__(self) -> int:
        """Return how many ids are remembered right now (never more than ``max_ids``)."""
        return len(self._seen)

    def _expire(self, now: float) -> None:
        max_age = self._max_age
        if max_age is None:
            return
        limit = now - max_age
        order = self._order
        seen = self._seen
        while order and seen[order[0]] <= limit:
            del seen[order.popleft()]

    def check(self, id: str, now: float) -> bool:
        """Report whether ``id`` was seen within the window, remembering it if not.

        Args:
            id: The event id (the ``id`` field of an :class:`~sse_core.Event`).
            now: The current monotonic time in seconds.

        Returns:
            ``True`` if ``id`` is a duplicate (the caller should drop the event); ``False`` if
            it is new, in which case it is now remembered, possibly evicting the oldest id.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        return self.check_all((id,), now)[0]

    def check_all(self, ids: Iterable[str], now: float) -> list[bool]:
        """:meth:`check` each of ``ids`` in turn, all at ``now`` (one input's events): a
        repeat within ``ids`` counts as a duplicate too.

        Returns:
            For each id, whether it is a duplicate.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        if self._max_age is not None:
            self._expire(now)
        seen, order = self._seen, self._order
        max_ids, max_id_length = self._max_ids, self._max_id_length
        repeats: list[bool] = []
        for id in ids:
            key: str | bytes = id
            if len(id) > max_id_length:
                # A bytes key never equals a str key: digests and short ids cannot collide.
                key = hashlib.blake2b(id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            if key in seen:
                repeats.append(True)
                continue
            if len(seen) >= max_ids:
                del seen[order.popleft()]
            seen[key] = now
            order.append(key)
            repeats.append(False)
        return repeats

    def expire(self, now: float) -> int:
        """Forget every id older than ``max_age`` at ``now``, to free memory while idle.

        :meth:`check` does this itself; calling it is never needed for correctness.

        Args:
            now: The current monotonic time in seconds.

        Returns:
            How many ids were forgotten.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        before = len(self._seen)
        self._expire(now)
        return before - len(self._seen)

    def clear(self) -> None:
        """Forget every id (for example when the stream's id space starts over)."""
        self._seen.clear()
        self._order.clear()
