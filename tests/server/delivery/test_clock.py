"""The clocks: the fast clock of end-to-end schedule tests."""

from __future__ import annotations

import asyncio
import time

import pytest

from eventyard.server.delivery.clock import ScaledClock


def test_a_scaled_clock_runs_scale_times_as_fast_from_its_origin() -> None:
    origin = time.time() - 2.0  # two real seconds ago
    clock = ScaledClock(100.0, origin)
    # at least two real seconds have passed since the origin: at least 200 on this clock
    assert clock.time() >= origin + 200.0
    before = time.time()
    reading = clock.time()
    after = time.time()
    assert origin + (before - origin) * 100 <= reading <= origin + (after - origin) * 100


async def test_its_waits_end_at_a_past_deadline_or_on_a_wake() -> None:
    clock = ScaledClock(60.0)
    wake = asyncio.Event()
    await clock.wait_until(clock.time() - 1.0, wake)  # already due: returns at once
    wake.set()
    await clock.wait_until(clock.time() + 86_400.0, wake)  # a day ahead, but woken


def test_a_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="scale must be positive"):
        ScaledClock(0.0)
