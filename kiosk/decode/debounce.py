"""One decision per code held up to the camera, not one per frame."""

from __future__ import annotations

from collections.abc import Sequence


class RepeatFilter:
    """Turns per-frame decoded texts into scan events.

    Rule: the same code seen in consecutive frames yields one decision, not one
    per frame.

    * A code is emitted the first time it is seen.
    * It is not emitted again while it stays in view. It counts as still in
      view while it was last seen less than ``rearm_s`` seconds ago, so a few
      frames where the decoder misses it (glare, motion blur) do not re-trigger.
    * Once it has been out of view for at least ``rearm_s`` seconds, showing it
      again emits it again (the same person scanning a second time).
    * Several different codes are tracked independently.

    Memory is bounded: codes not seen for ``rearm_s`` or more are forgotten
    (forgetting them changes nothing: they would be emitted anyway), and at
    most ``max_tracked`` codes are kept; beyond that the least recently seen is
    forgotten, so it could be emitted again early. A gate never has that many
    different codes in front of it within ``rearm_s``.

    ``rearm_s = 0`` emits a code in every frame that shows it. The filter is
    pure: the caller passes the time (monotonic seconds).
    """

    def __init__(self, rearm_s: float, *, max_tracked: int = 64) -> None:
        """Create an empty filter.

        Args:
            rearm_s: seconds a code must be out of view before it counts again (>= 0).
            max_tracked: codes remembered at most (>= 1).

        Raises:
            ValueError: a bound is out of range.
        """
        if not rearm_s >= 0:
            raise ValueError(f"rearm_s must be >= 0, got {rearm_s!r}")
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be >= 1, got {max_tracked!r}")
        self.rearm_s = float(rearm_s)
        self.max_tracked = max_tracked
        self._last_seen: dict[str, float] = {}  # insertion order = least recently seen first

    def feed(self, texts: Sequence[str], now: float) -> list[str]:
        """Record the codes seen in one frame at ``now`` and return those to act on.

        Args:
            texts: codes decoded from the frame (duplicates allowed).
            now: the frame's time, monotonic seconds.

        Returns:
            The newly appeared codes, in the order given, each once.
        """
        emitted = []
        for text in dict.fromkeys(texts):
            last = self._last_seen.pop(text, None)
            if last is None or now - last >= self.rearm_s:
                emitted.append(text)
            self._last_seen[text] = now  # re-insert: moves it to the most recent end
        self._forget(now)
        return emitted

    @property
    def tracked(self) -> int:
        """Number of codes currently remembered (bounded by ``max_tracked``)."""
        return len(self._last_seen)

    def _forget(self, now: float) -> None:
        expired = [t for t, last in self._last_seen.items() if now - last >= self.rearm_s]
        for text in expired:
            del self._last_seen[text]
        while len(self._last_seen) > self.max_tracked:
            del self._last_seen[next(iter(self._last_seen))]
