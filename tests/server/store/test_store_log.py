"""Contract: ingest (log + deliveries + messages in one transaction), log reads, settle."""

from __future__ import annotations

import asyncio
import time

import pytest
from store_helpers import OWNER, claim_all

from eventyard.errors import ConcurrentModification, StoreError
from eventyard.server.store import (
    CatalogClaim,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
    Store,
)


def event(n: int, bus: str = "default", size: int = 600) -> NewEvent:
    body = f'{{"id":"e{n}","detail":"'.encode() + b"x" * size + b'"}'
    return NewEvent(f"e{n}", bus, 1_700_000_000.0 + n, body)


def delivery(e: NewEvent, target: str = "default/r/t", payload: bytes | None = None) -> NewDelivery:
    return NewDelivery(
        target, e.event_id, e.body if payload is None else payload, e.body, e.time, e.time + 1
    )


async def read_all(store: Store) -> list[LogRecord]:
    return await store.read_log(0, 1_000_000)


async def pending_all(store: Store) -> list[Delivery]:
    return await store.pending_deliveries(0, 1_000_000)


# -- ingest and the log ----------------------------------------------------------------


async def test_an_empty_log_has_last_seq_zero_and_no_records(store: Store) -> None:
    assert await store.last_seq() == 0
    assert await store.read_log() == []
    assert await store.pending_deliveries() == []


async def test_ingest_appends_events_in_order_with_increasing_seq(store: Store) -> None:
    first = [event(1), event(2, bus="orders")]
    second = [event(3)]
    await store.ingest(first)
    await store.ingest(second)
    records = await read_all(store)
    assert [(r.event_id, r.bus, r.time, r.body) for r in records] == [
        (e.event_id, e.bus, e.time, e.body) for e in first + second
    ]
    seqs = [r.seq for r in records]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    assert await store.last_seq() == seqs[-1]


async def test_ingest_returns_the_stored_deliveries_in_the_order_given(store: Store) -> None:
    events = [event(1), event(2)]
    given = [
        delivery(events[0], "default/r1/a"),
        delivery(events[1], "default/r1/a"),
        delivery(events[0], "default/r2/b", payload=b'{"rendered":true}'),
    ]
    stored = await store.ingest(events, given)
    assert [
        (d.target, d.event_id, d.payload, d.event, d.first_seen, d.due, d.attempts) for d in stored
    ] == [(d.target, d.event_id, d.payload, d.event, d.first_seen, d.due, 0) for d in given]
    ids = [d.id for d in stored]
    assert ids == sorted(set(ids)) and ids[0] >= 1
    assert await pending_all(store) == stored


async def test_deliveries_of_events_from_earlier_ingests_keep_their_bytes(store: Store) -> None:
    # A replay enqueues matches of events already in the log, or of none at all.
    old = event(1)
    await store.ingest([old])
    replayed = NewDelivery("default/r/t", old.event_id, b"payload", old.body, old.time, 5.0)
    foreign = NewDelivery("default/r/t", "elsewhere", b"p", b"not in the log", 1.0, 2.0)
    stored = await store.ingest([], [replayed, foreign])
    assert await pending_all(store) == stored
    assert [(d.payload, d.event) for d in stored] == [
        (b"payload", old.body),
        (b"p", b"not in the log"),
    ]


async def test_a_delivery_whose_event_differs_from_the_logged_body_keeps_its_own(
    store: Store,
) -> None:
    logged = event(1)
    odd = NewDelivery("t", logged.event_id, logged.body, b"another envelope", 1.0, 2.0)
    await store.ingest([logged], [odd])
    (got,) = await pending_all(store)
    assert (got.payload, got.event) == (logged.body, b"another envelope")


async def test_ingest_puts_its_messages_on_their_queues(store: Store) -> None:
    e = event(1)
    await store.ingest(
        [e], [], [NewMessage("q", "to q", {"a": {"DataType": "String", "StringValue": "1"}})]
    )
    (message,) = await store.queue_receive("q", 10, 30, time.time())
    assert (message.body, message.attributes) == (
        "to q",
        {"a": {"DataType": "String", "StringValue": "1"}},
    )


async def test_concurrent_ingests_all_land_and_seqs_stay_unique(store: Store) -> None:
    batches = [[event(10 * b + i) for i in range(10)] for b in range(30)]
    results = await asyncio.gather(
        *(store.ingest(batch, [delivery(e) for e in batch]) for batch in batches)
    )
    records = await read_all(store)
    assert len(records) == 300
    assert len({r.seq for r in records}) == 300
    assert {r.event_id for r in records} == {e.event_id for batch in batches for e in batch}
    # Each call's events are contiguous and in order in the log.
    position = {r.event_id: i for i, r in enumerate(records)}
    for batch in batches:
        where = [position[e.event_id] for e in batch]
        assert where == list(range(where[0], where[0] + 10))
    ids = [d.id for stored in results for d in stored]
    assert len(set(ids)) == 300
    assert sorted(d.id for d in await pending_all(store)) == sorted(ids)


async def test_a_failed_ingest_writes_nothing_and_fails_only_its_caller(store: Store) -> None:
    (taken,) = await store.queue_send([NewMessage("q", "first")])
    good = [[event(n)] for n in range(1, 4)]
    bad = [event(99)]
    results = await asyncio.gather(
        store.ingest(good[0], [delivery(good[0][0])]),
        store.ingest(bad, [delivery(bad[0])], [NewMessage("q", "dup", message_id=taken)]),
        store.ingest(good[1], [delivery(good[1][0])]),
        store.ingest(good[2], [delivery(good[2][0])]),
        return_exceptions=True,
    )
    assert isinstance(results[1], StoreError)
    assert all(isinstance(r, list) and len(r) == 1 for i, r in enumerate(results) if i != 1)
    assert [r.event_id for r in await read_all(store)] == ["e1", "e2", "e3"]
    pending = await pending_all(store)
    assert [d.event_id for d in pending] == ["e1", "e2", "e3"]
    # The ids the successful callers got are the ids the records have.
    assert sorted(pending, key=lambda d: d.id) == sorted(
        (d for i, r in enumerate(results) if i != 1 for d in r), key=lambda d: d.id
    )
    assert await store.queue_counts("q", time.time()) == (1, 0, 0)


async def test_read_log_pages_by_after_seq_and_limit(store: Store) -> None:
    await store.ingest([event(n) for n in range(10)])
    records = await read_all(store)
    page = await store.read_log(records[2].seq, 3)
    assert page == records[3:6]
    assert await store.read_log(records[-1].seq) == []
    assert await store.read_log(0, 0) == []
    paged: list[LogRecord] = []
    after = 0
    while chunk := await store.read_log(after, 4):
        paged += chunk
        after = chunk[-1].seq
    assert paged == records


async def test_the_log_keeps_binary_bodies_unchanged(store: Store) -> None:
    body = bytes(range(256)) * 4
    await store.ingest([NewEvent("bin", "default", 1.5, body)])
    (record,) = await read_all(store)
    assert record.body == body and record.time == 1.5


# -- deliveries ---------------------------------------------------------------------------


async def test_pending_deliveries_pages_by_id(store: Store) -> None:
    events = [event(n) for n in range(7)]
    stored = await store.ingest(events, [delivery(e) for e in events])
    assert await store.pending_deliveries(stored[1].id, 3) == stored[2:5]
    assert await store.pending_deliveries(stored[-1].id) == []


async def test_settle_done_removes_the_deliveries(store: Store) -> None:
    events = [event(n) for n in range(3)]
    stored = await store.ingest(events, [delivery(e) for e in events])
    await claim_all(store, "default/r/t")
    assert await store.settle(OWNER, done=[stored[0].id, stored[2].id]) == []
    assert await pending_all(store) == [stored[1]]


async def test_settle_retry_sets_due_and_attempts(store: Store) -> None:
    e = event(1)
    (stored,) = await store.ingest([e], [delivery(e)])
    await claim_all(store, "default/r/t")
    assert await store.settle(OWNER, retry=[(stored.id, 1234.5, 3)]) == []
    (got,) = await pending_all(store)
    assert (got.id, got.due, got.attempts) == (stored.id, 1234.5, 3)
    assert (got.payload, got.event, got.first_seen) == (stored.payload, stored.event, e.time)


async def test_settle_dead_removes_and_dead_letters_in_one_call(store: Store) -> None:
    events = [event(1), event(2)]
    stored = await store.ingest(events, [delivery(e) for e in events])
    await claim_all(store, "default/r/t")
    dlq = NewMessage(
        "dlq", '{"dead":1}', {"ERROR_CODE": {"DataType": "String", "StringValue": "X"}}
    )
    await store.settle(OWNER, dead=[(stored[0].id, dlq), (stored[1].id, None)])
    assert await pending_all(store) == []
    (message,) = await store.queue_receive("dlq", 10, 30, time.time())
    assert (message.body, message.attributes) == (dlq.body, dlq.attributes)


async def test_settle_sends_its_messages_with_the_outcomes(store: Store) -> None:
    events = [event(1), event(2), event(3)]
    stored = await store.ingest(events, [delivery(e) for e in events])
    await claim_all(store, "default/r/t")
    await store.settle(
        OWNER,
        done=[stored[0].id],
        retry=[(stored[1].id, 99.0, 1)],
        dead=[(stored[2].id, NewMessage("dlq", "dead"))],
        messages=[(stored[0].id, NewMessage("target-q", "delivered"))],
    )
    (left,) = await pending_all(store)
    assert (left.id, left.due, left.attempts) == (stored[1].id, 99.0, 1)
    now = time.time()
    assert [m.body for m in await store.queue_receive("target-q", 10, 30, now)] == ["delivered"]
    assert [m.body for m in await store.queue_receive("dlq", 10, 30, now)] == ["dead"]


async def test_settle_of_unknown_ids_refuses_them(store: Store) -> None:
    e = event(1)
    stored = await store.ingest([e], [delivery(e)])
    lost = await store.settle(OWNER, done=[10_000], retry=[(10_001, 1.0, 1)], dead=[(10_002, None)])
    assert sorted(lost) == [10_000, 10_001, 10_002]
    assert await store.settle(OWNER) == []
    assert await pending_all(store) == stored


async def test_settle_twice_is_harmless(store: Store) -> None:
    e = event(1)
    (stored,) = await store.ingest([e], [delivery(e)])
    await claim_all(store, "default/r/t")
    first, second = await asyncio.gather(
        store.settle(OWNER, done=[stored.id]), store.settle(OWNER, done=[stored.id])
    )
    assert sorted([first, second]) == [[], [stored.id]]  # one settles, one finds it gone
    assert await pending_all(store) == []


@pytest.mark.parametrize("count", [1, 250])
async def test_concurrent_settles_of_distinct_deliveries_all_apply(
    store: Store, count: int
) -> None:
    events = [event(n) for n in range(count)]
    stored = await store.ingest(events, [delivery(e) for e in events])
    assert len(await claim_all(store, "default/r/t")) == count
    lost = await asyncio.gather(*(store.settle(OWNER, done=[d.id]) for d in stored))
    assert lost == [[]] * count
    assert await pending_all(store) == []


async def test_empty_writes_are_no_ops(store: Store) -> None:
    assert await store.ingest([]) == []
    assert await store.queue_send([]) == []
    assert await store.settle(OWNER) == []
    assert await store.last_seq() == 0
    assert await store.queue_counts("q", time.time()) == (0, 0, 0)


# -- ingest with a catalog claim (the scheduler's exactly-once tick) ---------------------


async def test_a_claim_is_written_with_the_events_in_one_transaction(store: Store) -> None:
    e = event(1)
    claim = CatalogClaim("schedule", "default/r", {"Next": 60.0}, expect_revision=0)
    stored = await store.ingest([e], [delivery(e)], claim=claim)
    assert len(stored) == 1
    entry = await store.catalog_get("schedule", "default/r")
    assert entry is not None and entry.doc == {"Next": 60.0}
    assert [r.event_id for r in await read_all(store)] == ["e1"]


async def test_a_failed_claim_writes_nothing_and_is_a_concurrent_modification(
    store: Store,
) -> None:
    revision = await store.catalog_put("schedule", "default/r", {"Next": 60.0})
    first = event(1)
    claim = CatalogClaim("schedule", "default/r", {"Next": 120.0}, expect_revision=revision)
    await store.ingest([first], [delivery(first)], claim=claim)
    second = event(2)
    stale = CatalogClaim("schedule", "default/r", {"Next": 120.0}, expect_revision=revision)
    with pytest.raises(ConcurrentModification):
        await store.ingest([second], [delivery(second)], claim=stale)
    assert [r.event_id for r in await read_all(store)] == ["e1"]
    assert [d.event_id for d in await pending_all(store)] == ["e1"]


async def test_concurrent_claims_of_one_revision_let_exactly_one_ingest_through(
    store: Store,
) -> None:
    revision = await store.catalog_put("schedule", "default/r", {"Next": 60.0})
    events = [event(n) for n in range(8)]
    outcomes = await asyncio.gather(
        *(
            store.ingest(
                [e],
                [delivery(e)],
                claim=CatalogClaim("schedule", "default/r", {"By": e.event_id}, revision),
            )
            for e in events
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrentModification) for o in outcomes if o not in winners)
    records = await read_all(store)
    entry = await store.catalog_get("schedule", "default/r")
    assert entry is not None and [r.event_id for r in records] == [entry.doc["By"]]
