"""Contract: the pending backlog paged by target and due time, its targets, and its count."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from store_factories import StoreFactory

from eventyard.server.store import Delivery, NewDelivery, NewEvent, NewMessage, Store


def _event(n: int) -> NewEvent:
    return NewEvent(f"e{n}", "default", 1_700_000_000.0 + n, f'{{"id":"e{n}"}}'.encode())


async def _ingest(store: Store, target: str, dues: list[float]) -> list[Delivery]:
    events = [_event(n) for n in range(len(dues))]
    events = [replace(e, event_id=f"{target}-{e.event_id}") for e in events]
    return await store.ingest(
        events,
        [
            NewDelivery(target, e.event_id, e.body, e.body, e.time, due)
            for e, due in zip(events, dues, strict=True)
        ],
    )


async def test_deliveries_by_due_pages_one_target_in_due_then_id_order(store: Store) -> None:
    stored = await _ingest(store, "b/r/a", [30.0, 10.0, 20.0, 10.0, 0.0])
    await _ingest(store, "b/r/b", [5.0, 15.0])
    by_due = sorted(stored, key=lambda d: (d.due, d.id))

    assert await store.deliveries_by_due("b/r/a") == by_due
    assert await store.deliveries_by_due("b/r/a", limit=2) == by_due[:2]
    # a cursor between two records of the same due time resumes at the second one
    cursor = (by_due[1].due, by_due[1].id)
    assert await store.deliveries_by_due("b/r/a", after=cursor, limit=2) == by_due[2:4]
    last = (by_due[-1].due, by_due[-1].id)
    assert await store.deliveries_by_due("b/r/a", after=last) == []
    assert await store.deliveries_by_due("b/r/none") == []


async def test_deliveries_by_due_sees_retries_at_their_new_due_time(store: Store) -> None:
    first, second, third = await _ingest(store, "b/r/a", [1.0, 2.0, 3.0])
    await store.settle(retry=[(first.id, 2.5, 1)], done=[third.id])
    page = await store.deliveries_by_due("b/r/a")
    assert [(d.id, d.due, d.attempts) for d in page] == [(second.id, 2.0, 0), (first.id, 2.5, 1)]
    # the record keeps its bytes and first-seen time through the retry
    assert (page[1].payload, page[1].event, page[1].first_seen) == (
        first.payload,
        first.event,
        first.first_seen,
    )
    assert await store.deliveries_by_due("b/r/a", after=(2.0, second.id)) == [page[1]]


async def test_deliveries_by_due_pages_more_records_than_one_query_binds(store: Store) -> None:
    stored = await _ingest(store, "b/r/a", [float(n % 7) for n in range(1200)])
    page = await store.deliveries_by_due("b/r/a", limit=1100)
    assert page == sorted(stored, key=lambda d: (d.due, d.id))[:1100]


async def test_pending_targets_lists_each_target_with_pending_records_once(store: Store) -> None:
    assert await store.pending_targets() == []
    a = await _ingest(store, "b/r/a", [1.0, 2.0])
    await _ingest(store, "b/r/c", [1.0])
    await _ingest(store, "b/r/b", [1.0, 1.0, 1.0])
    assert await store.pending_targets() == ["b/r/a", "b/r/b", "b/r/c"]
    await store.settle(done=[a[0].id], dead=[(a[1].id, None)])
    assert await store.pending_targets() == ["b/r/b", "b/r/c"]


async def test_pending_count_follows_ingest_and_settle(store: Store) -> None:
    assert store.pending_count() == 0
    a = await _ingest(store, "b/r/a", [1.0, 2.0, 3.0, 4.0])
    await _ingest(store, "b/r/b", [1.0])
    assert store.pending_count() == 5
    await store.settle(retry=[(a[0].id, 9.0, 1)])
    assert store.pending_count() == 5
    dlq = NewMessage("dlq", "dead")
    await store.settle(done=[a[1].id], dead=[(a[2].id, dlq), (a[3].id, None)])
    assert store.pending_count() == 2
    # settling what is already gone, or twice at once, moves nothing
    await asyncio.gather(store.settle(done=[a[1].id]), store.settle(done=[a[0].id]))
    await store.settle(done=[a[0].id, 10_000])
    assert store.pending_count() == 1
    # events without deliveries count nothing
    await store.ingest([_event(99)])
    assert store.pending_count() == 1


async def test_pending_count_ignores_writes_that_failed(store: Store) -> None:
    (a,) = await _ingest(store, "b/r/a", [1.0])
    duplicate = NewMessage("q", "body", message_id="same")
    await store.queue_send([duplicate])
    failed = 0
    try:
        await store.settle(done=[a.id], messages=[duplicate])
    except Exception:
        failed = 1
    assert failed == 1
    assert store.pending_count() == 1
    assert [d.id for d in await store.pending_deliveries()] == [a.id]


async def test_pending_count_survives_a_reopen(store_factory: StoreFactory, location: Path) -> None:
    first = store_factory(location)
    await first.open()
    try:
        stored = await _ingest(first, "b/r/a", [1.0, 2.0, 3.0])
        await first.settle(done=[stored[0].id])
    finally:
        await first.close()
    again = store_factory(location)
    await again.open()
    try:
        assert again.pending_count() == 2
        assert await again.pending_targets() == ["b/r/a"]
    finally:
        await again.close()
