"""The delivery engine's sense of time: :class:`Clock`, and :data:`SYSTEM_CLOCK`.

Every timing decision of the engine (when a retry is due, whether an event has outlived
its ``MaximumEventAgeInSeconds``) reads the time from a clock and waits for a due time
through it. The real clock is the wall clock (due times and event ages are stored as
Unix times, so they survive a restart); a test passes a clock it advances by hand, so
backoff and max-age are checked without waiting them out. :class:`ScaledClock` runs
faster than the wall clock, for end-to-end tests of a real server process (the
``schedule_time_scale`` setting).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    """What the engine asks of a clock."""

    def time(self) -> float:
        """The current time, in seconds since the Unix epoch."""
        ...

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        """Return once the time reaches ``deadline`` or ``wake`` is set, whichever is first."""
        ...


class SystemClock:
    """The real clock: :func:`time.time`, and the event loop's timers for waiting."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), deadline - time.time())


#: The clock every engine uses unless it is given another.
SYSTEM_CLOCK: Final = SystemClock()


class ScaledClock:
    """A clock that runs ``scale`` times as fast as the wall clock from ``origin`` on.

    At the wall time ``origin`` it reads ``origin``; each real second later it has moved
    ``scale`` seconds. Only for tests: it lets a real server fire a ``rate(1 minute)``
    schedule every real second.
    """

    __slots__ = ("origin", "scale")

    def __init__(self, scale: float, origin: float | None = None) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = scale
        self.origin = time.time() if origin is None else origin

    def time(self) -> float:
        return self.origin + (time.time() - self.origin) * self.scale

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        real_deadline = self.origin + (deadline - self.origin) / self.scale
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), real_deadline - time.time())
