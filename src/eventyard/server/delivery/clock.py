"""The delivery engine's sense of time: :class:`Clock`, and :data:`SYSTEM_CLOCK`.

Every timing decision of the engine (when a retry is due, whether an event has outlived
its ``MaximumEventAgeInSeconds``) reads the time from a clock and waits for a due time
through it. The real clock is the wall clock (due times and event ages are stored as
Unix times, so they survive a restart); a test passes a clock it advances by hand, so
backoff and max-age are checked without waiting them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


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
