"""Per-caller limits against abuse: concurrent Watch streams and the rate of Creates.

Keyed by the caller's subject, so one noisy client cannot starve the others; with
authentication off every caller is the same ``anonymous`` subject, and the limits apply
to all callers together.
"""

from __future__ import annotations

import time

from orchestrator.errors import RateLimitedError

# Buckets of callers idle this long are dropped (they would be full again anyway).
_IDLE_SECONDS = 600.0


class WatchLimit:
    """At most ``limit`` concurrent Watch streams per caller (0: unlimited)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, subject: str) -> None:
        """Open one of ``subject``'s streams; :meth:`release` closes it.

        Raises:
            RateLimitedError: ``subject`` already holds ``limit`` streams.

        """
        held = self._open.get(subject, 0)
        if self._limit and held >= self._limit:
            raise RateLimitedError(
                f"{subject} already has {held} Watch streams open, the most allowed per caller "
                "(POLYFLEET_API_MAX_WATCHES_PER_CALLER): close one first",
                kind="watch-streams",
            )
        self._open[subject] = held + 1

    def release(self, subject: str) -> None:
        """Close one of ``subject``'s streams."""
        left = self._open.get(subject, 0) - 1
        if left > 0:
            self._open[subject] = left
        else:
            self._open.pop(subject, None)

    def open_streams(self, subject: str) -> int:
        """How many streams ``subject`` holds now."""
        return self._open.get(subject, 0)


class CreateRate:
    """A token bucket per caller: ``rate`` Creates per second, bursts up to ``burst``.

    A ``rate`` of 0 turns the limit off.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(max(1, burst))
        # subject -> (tokens, monotonic time of the last refill)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, subject: str) -> None:
        """Spend one Create of ``subject``'s.

        Raises:
            RateLimitedError: The bucket is empty; the message says when to retry.

        """
        if self._rate <= 0:
            return
        now = time.monotonic()
        tokens, then = self._buckets.get(subject, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        if tokens < 1:
            wait = (1 - tokens) / self._rate
            self._buckets[subject] = (tokens, now)
            raise RateLimitedError(
                f"{subject} is over its limit of {self._rate:g} creates per second "
                f"(POLYFLEET_API_CREATE_RATE_PER_CALLER): retry in {wait:.2f}s",
                kind="create-rate",
            )
        self._buckets[subject] = (tokens - 1, now)
        if len(self._buckets) > 10_000:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for subject in [s for s, (_, t) in self._buckets.items() if now - t > _IDLE_SECONDS]:
            del self._buckets[subject]
