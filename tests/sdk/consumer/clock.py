"""A worker clock that moves only when the test says so (no waiting on real timers)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

__all__ = ["ManualClock"]


@dataclass(eq=False)
class _Sleeper:
    due: float
    seconds: float
    woken: asyncio.Future[None] = field(repr=False)


class ManualClock:
    """Implements :class:`eventyard.sdk.worker.Clock`; :meth:`advance` moves it."""

    def __init__(self) -> None:
        self._now = 0.0
        self._sleepers: list[_Sleeper] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        sleeper = _Sleeper(self._now + seconds, seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        try:
            await sleeper.woken
        finally:
            self._sleepers.remove(sleeper)

    def advance(self, seconds: float) -> None:
        """Move the clock on, waking every sleep that is then due."""
        self._now += seconds
        for sleeper in self._sleepers:
            if sleeper.due <= self._now and not sleeper.woken.done():
                sleeper.woken.set_result(None)

    async def next_sleep(self, shorter_than: float, timeout: float = 10.0) -> float:
        """Wait (in real time, with a deadline) for a sleep shorter than ``shorter_than``
        seconds to begin; returns how long it is."""
        deadline = time.monotonic() + timeout
        while True:
            short = [s.seconds for s in self._sleepers if s.seconds < shorter_than]
            if short:
                return min(short)
            if time.monotonic() > deadline:
                pytest.fail(f"no sleep shorter than {shorter_than} s began within {timeout} s")
            await asyncio.sleep(0.01)
