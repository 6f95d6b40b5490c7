"""Backpressure: throttling with hysteresis over the store's pending delivery count."""

from __future__ import annotations

import pytest

from eventyard.errors import Throttling
from eventyard.server.backpressure import Backpressure
from eventyard.server.config import Settings
from eventyard.server.store import Delivery, NewDelivery, NewEvent
from eventyard.server.store.sqlite import SQLiteStore


async def _pending(store: SQLiteStore, count: int) -> list[Delivery]:
    events = [NewEvent(f"e{n}", "b", 1.0, b"{}") for n in range(count)]
    return await store.ingest(
        events, [NewDelivery("b/r/t", e.event_id, b"{}", b"{}", 1.0, 1.0) for e in events]
    )


async def test_throttles_at_the_high_mark_and_resumes_below_the_low_mark(
    store: SQLiteStore,
) -> None:
    pressure = Backpressure(store, Settings(max_backlog=5, resume_backlog=2))
    records = await _pending(store, 4)
    assert pressure.reason() is None
    pressure.check()
    records += await _pending(store, 1)
    reason = pressure.reason()
    assert reason is not None
    assert "5 pending deliveries" in reason
    assert "max_backlog (5)" in reason
    with pytest.raises(Throttling) as refused:
        pressure.check()
    assert refused.value.code == "ThrottlingException"
    assert refused.value.status == 400
    # hysteresis: below the high mark is not enough
    await store.claim_deliveries("engine", "b/r/t", 100, 30.0)
    await store.settle("engine", done=[r.id for r in records[:3]])
    assert store.pending_count() == 2
    assert pressure.reason() is not None
    await store.settle("engine", done=[records[3].id])
    assert pressure.reason() is None
    pressure.check()


async def test_the_low_mark_defaults_to_ninety_percent_and_zero_never_throttles(
    store: SQLiteStore,
) -> None:
    assert Backpressure(store, Settings(max_backlog=1000)).low == 900
    never = Backpressure(store, Settings(max_backlog=0))
    await _pending(store, 50)
    assert never.reason() is None


def test_a_low_mark_at_or_above_the_high_mark_is_refused() -> None:
    with pytest.raises(Exception, match="resume_backlog must be"):
        Settings(max_backlog=10, resume_backlog=10).check()
