"""Contract: the targets with pending delivery records, and their count."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from store_factories import StoreFactory
from store_helpers import OWNER, claim_all

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


async def test_pending_targets_lists_each_target_with_pending_records_once(store: Store) -> None:
    assert await store.pending_targets() == []
    a = await _ingest(store, "b/r/a", [1.0, 2.0])
    await _ingest(store, "b/r/c", [1.0])
    await _ingest(store, "b/r/b", [1.0, 1.0, 1.0])
    assert await store.pending_targets() == ["b/r/a", "b/r/b", "b/r/c"]
    await claim_all(store, "b/r/a")
    await store.settle(OWNER, done=[a[0].id], dead=[(a[1].id, None)])
    assert await store.pending_targets() == ["b/r/b", "b/r/c"]


async def test_pending_count_follows_ingest_and_settle(store: Store) -> None:
    assert store.pending_count() == 0
    a = await _ingest(store, "b/r/a", [1.0, 2.0, 3.0, 4.0])
    await _ingest(store, "b/r/b", [1.0])
    assert store.pending_count() == 5
    await claim_all(store, "b/r/a")
    await store.settle(OWNER, retry=[(a[0].id, 9.0, 1)])
    assert store.pending_count() == 5
    dlq = NewMessage("dlq", "dead")
    await store.settle(OWNER, done=[a[1].id], dead=[(a[2].id, dlq), (a[3].id, None)])
    assert store.pending_count() == 2
    # settling what is already gone, or not leased, or twice at once, moves nothing
    await asyncio.gather(store.settle(OWNER, done=[a[1].id]), store.settle(OWNER, done=[a[0].id]))
    await store.settle(OWNER, done=[a[0].id, 10_000])
    assert store.pending_count() == 2
    (again,) = await claim_all(store, "b/r/a")  # its retry (due 9.0) is due again
    assert again.id == a[0].id
    await asyncio.gather(store.settle(OWNER, done=[a[0].id]), store.settle(OWNER, done=[a[0].id]))
    assert store.pending_count() == 1
    # events without deliveries count nothing
    await store.ingest([_event(99)])
    assert store.pending_count() == 1


async def test_pending_count_ignores_writes_that_failed(store: Store) -> None:
    (a,) = await _ingest(store, "b/r/a", [1.0])
    duplicate = NewMessage("q", "body", message_id="same")
    await store.queue_send([duplicate])
    await claim_all(store, "b/r/a")
    failed = 0
    try:
        await store.settle(OWNER, done=[a.id], messages=[(a.id, duplicate)])
    except Exception:
        failed = 1
    assert failed == 1
    assert store.pending_count() == 1
    assert [d.id for d in await store.pending_deliveries()] == [a.id]
    # the failed settle left the lease with its owner
    assert await store.settle(OWNER, done=[a.id]) == []
    assert store.pending_count() == 0


async def test_pending_count_survives_a_reopen(store_factory: StoreFactory, location: Path) -> None:
    first = store_factory(location)
    await first.open()
    try:
        stored = await _ingest(first, "b/r/a", [1.0, 2.0, 3.0])
        await claim_all(first, "b/r/a")
        await first.settle(OWNER, done=[stored[0].id])
    finally:
        await first.close()
    again = store_factory(location)
    await again.open()
    try:
        assert again.pending_count() == 2
        assert await again.pending_targets() == ["b/r/a"]
    finally:
        await again.close()
