"""The delivery engine's retry policy: :class:`RetryPolicy`, backoff and pacing.

Backoff is exponential from ``base_delay`` (doubling, capped at ``max_delay``) with
equal or full jitter; a ``Retry-After`` from the target is honoured if it is longer
(the engine takes the longer of the two).

**A failing target is paced.** Once a target's last ``failing_after`` attempts (of any
of its records) failed with a retryable error, its attempts are spaced: one at a time,
the pause starting at ``base_delay`` and doubling with each further failure up to
``failing_interval`` (and never above ``max_delay``); the first success ends it. Each
record's own backoff still applies; the pace only keeps a dead target's backlog of due
retries (a million of them, after an outage) from being attempted, and its retries
written, as fast as one worker can go, which took the CPU and the store writes the
healthy targets needed (``bench/dead_target.py`` measures it). A record past its
``max_age`` is dead-lettered without waiting for the pace, and a held-back attempt
checks its target and age again once its turn comes. With equal jitter and
``failing_after`` of 2 or more (the defaults: 3, and a pace of at most half of
``max_delay``), the pause after ``n`` failures in a row is never longer than the backoff
of a record that failed ``n`` times, so a target whose streak is one record's is not
slowed by the pace; a record of a deeper backlog waits for its backoff, then its turn.

The policy only computes waits; the engine (:mod:`.engine`) keeps each lane's failure
streak, decides what is retried or dead-lettered, and waits on its clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from eventyard.server.config import Settings

__all__ = ["Jitter", "RetryPolicy"]

Jitter = Literal["full", "equal", "none"]


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """How long a failed record waits, and how a failing target's attempts are spaced.

    Attributes:
        base_delay: seconds before the first retry; each further retry doubles it.
        max_delay: the cap of the backoff, in seconds.
        failing_after: retryable failures in a row after which a target is paced.
        failing_interval: the longest pause between two attempts of a failing target
            (0: no pacing); the pause is never above ``max_delay`` either.
        jitter: ``"equal"`` waits between half and all of the backoff, ``"full"``
            between none and all of it, ``"none"`` exactly the backoff.
        rng: the random source of the jitter.

    Raises:
        ValueError: a value out of range (checked on construction).
    """

    base_delay: float
    max_delay: float
    failing_after: int
    failing_interval: float
    jitter: Jitter = "equal"
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base_delay <= 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter must be 'full', 'equal' or 'none', not {self.jitter!r}")
        if self.failing_after < 1 or self.failing_interval < 0:
            raise ValueError("need failing_after >= 1 and failing_interval >= 0")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        base_delay: float | None = None,
        max_delay: float | None = None,
        jitter: Jitter = "equal",
        failing_after: int | None = None,
        failing_interval: float | None = None,
        rng: random.Random | None = None,
    ) -> RetryPolicy:
        """The policy of ``settings`` (``retry_base_delay``, ``retry_max_delay``,
        ``target_failing_after``, ``failing_target_interval``) but for the values given.

        Raises:
            ValueError: a value out of range.
        """
        return cls(
            base_delay=settings.retry_base_delay if base_delay is None else base_delay,
            max_delay=settings.retry_max_delay if max_delay is None else max_delay,
            jitter=jitter,
            failing_after=(
                settings.target_failing_after if failing_after is None else failing_after
            ),
            failing_interval=(
                settings.failing_target_interval if failing_interval is None else failing_interval
            ),
            rng=rng or random.Random(),
        )

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 64))
        if self.jitter == "full":
            return self.rng.uniform(0.0, ceiling)
        if self.jitter == "equal":
            return ceiling / 2 + self.rng.uniform(0.0, ceiling / 2)
        return ceiling

    def paces(self, streak: int) -> bool:
        """Whether a target with ``streak`` retryable failures in a row is paced."""
        return streak >= self.failing_after and self.failing_interval > 0

    def pause(self, streak: int) -> float:
        """The pause after an attempt of a lane with ``streak`` failures in a row."""
        growth = self.base_delay * 2.0 ** min(streak - self.failing_after, 64)
        return min(self.failing_interval, self.max_delay, growth)
