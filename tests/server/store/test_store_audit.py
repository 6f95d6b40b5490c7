"""Contract: the audit part of a store: the log by time window, log retention, archives
and the trace journal.

Times are taken around the store's clock (:meth:`Store.now`), in the recent past, as the
router stamps events; archives are read by the events' own times, which clients choose
freely, so those are spread and out of order.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from store_factories import StoreFactory
from store_helpers import OWNER, claim_all

from eventyard.server.store import (
    ArchiveRecord,
    LogRecord,
    NewDelivery,
    NewEvent,
    Store,
    TraceEntry,
    sqlite_audit,
)

A1 = "111111111111/orders-archive"
# archive keys are opaque strings of up to 300 characters
A2 = "111111111111/" + "wéird key/with:all?sorts#of*chars " * 8


def ev(
    n: int,
    t: float,
    bus: str = "a",
    archives: tuple[str, ...] = (),
    event_time: float = 0.0,
) -> NewEvent:
    body = f'{{"id":"e{n}","bus":"{bus}","detail":"{"x" * (n % 7)}"}}'.encode()
    return NewEvent(f"e{n}", bus, t, body, archives, event_time)


def ids(records: list[LogRecord] | list[ArchiveRecord]) -> list[str]:
    return [r.event_id for r in records]


async def pages_of_window(
    store: Store, bus: str | None, since: float, until: float, limit: int
) -> list[list[LogRecord]]:
    pages: list[list[LogRecord]] = []
    after = 0
    while page := await store.read_log_window(bus, since, until, after, limit):
        pages.append(page)
        after = page[-1].seq
    return pages


async def pages_of_archive(
    store: Store, archive: str, since: float, until: float, limit: int
) -> list[list[ArchiveRecord]]:
    pages: list[list[ArchiveRecord]] = []
    after = 0
    while page := await store.read_archive(archive, since, until, after, limit):
        pages.append(page)
        after = page[-1].seq
    return pages


# -- the log by time window -----------------------------------------------------------------


async def test_a_window_reads_one_bus_in_since_until_in_seq_order(store: Store) -> None:
    t0 = store.now() - 100
    # two buses interleaved, one event per second, over three ingests
    events = [ev(n, t0 + n, bus="a" if n % 2 else "b") for n in range(30)]
    for start in (0, 10, 20):
        await store.ingest(events[start : start + 10])
    window = await store.read_log_window("a", t0 + 5, t0 + 15)
    # since is in the window (e5), until is not (e15)
    assert ids(window) == ["e5", "e7", "e9", "e11", "e13"]
    assert all(r.bus == "a" for r in window)
    assert [r.seq for r in window] == sorted({r.seq for r in window})
    everything = await store.read_log(0, 1000)
    by_id = {r.event_id: r for r in everything}
    assert window == [by_id[i] for i in ids(window)]  # the same records read_log returns


async def test_a_window_of_every_bus_and_empty_windows(store: Store) -> None:
    t0 = store.now() - 100
    await store.ingest([ev(n, t0 + n, bus=("a", "b", "c")[n % 3]) for n in range(12)])
    assert ids(await store.read_log_window(None, t0 + 2, t0 + 6)) == ["e2", "e3", "e4", "e5"]
    assert await store.read_log_window("c", t0 + 3, t0 + 5) == []  # none of c in it
    assert await store.read_log_window("nobody", t0, t0 + 100) == []
    assert await store.read_log_window(None, t0 + 6, t0 + 6) == []  # empty
    assert await store.read_log_window(None, t0 + 6, t0 + 2) == []  # inverted
    assert await store.read_log_window(None, t0 - 50, t0 - 1) == []  # before the log
    # fractional bounds
    assert ids(await store.read_log_window("a", t0 + 2.5, t0 + 6.5)) == ["e3", "e6"]


async def test_a_quiet_bus_window_in_a_busy_log_lets_other_tasks_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite examines the other buses' records of the window: in chunks, yielding
    monkeypatch.setattr(sqlite_audit, "SCAN_CHUNK", 4)
    t0 = store.now() - 100
    await store.ingest([ev(0, t0, bus="quiet"), *[ev(n, t0 + 1, bus="busy") for n in range(1, 40)]])
    await store.ingest([ev(40, t0 + 2, bus="quiet")])
    ran: list[bool] = []
    other = asyncio.create_task(asyncio.sleep(0, ran.append(True)))
    assert ids(await store.read_log_window("quiet", t0, t0 + 3)) == ["e0", "e40"]
    assert ran  # the read yielded to the event loop
    await other


async def test_a_window_pages_with_after_seq(store: Store) -> None:
    t0 = store.now() - 100
    events = [ev(n, t0 + n * 0.1, bus="a" if n % 3 else "b") for n in range(60)]
    await store.ingest(events[:30])
    await store.ingest(events[30:])
    whole = await store.read_log_window("a", t0 + 0.95, t0 + 5.05, 0, 1000)
    assert ids(whole) == [e.event_id for e in events[10:51] if e.bus == "a"]
    pages = await pages_of_window(store, "a", t0 + 0.95, t0 + 5.05, 7)
    assert len(whole) == 28 and [len(p) for p in pages] == [7, 7, 7, 7]
    assert [r for p in pages for r in p] == whole
    nines = await pages_of_window(store, "a", t0 + 0.95, t0 + 5.05, 9)
    assert [len(p) for p in nines] == [9, 9, 9, 1]
    # after_seq alone skips what precedes it
    assert await store.read_log_window("a", t0, t0 + 10, whole[-1].seq) == [
        r for r in await store.read_log_window("a", t0, t0 + 10) if r.seq > whole[-1].seq
    ]


async def test_a_window_finds_records_whose_clock_stepped_back(store: Store) -> None:
    t0 = store.now() - 100
    await store.ingest([ev(1, t0 + 10), ev(2, t0 + 11)])
    await store.ingest([ev(3, t0 + 9.5), ev(4, t0 + 12)])  # the clock stepped back
    assert ids(await store.read_log_window("a", t0 + 9, t0 + 10)) == ["e3"]
    assert ids(await store.read_log_window("a", t0 + 9, t0 + 11)) == ["e1", "e3"]
    assert ids(await store.read_log_window(None, t0, t0 + 20)) == ["e1", "e2", "e3", "e4"]


async def test_windows_and_retention_hold_exactly_their_records_however_the_clock_steps(
    store: Store,
) -> None:
    rng = random.Random(5)
    t0 = store.now() - 300
    t, events = t0, []
    for n in range(240):
        # mostly forward by under a second; one time in ten back by up to 20 s
        t += rng.uniform(0, 0.8) if rng.random() > 0.1 else -rng.uniform(0, 20)
        events.append(ev(n, t, bus=rng.choice("ab")))
    for start in range(0, len(events), 12):
        await store.ingest(events[start : start + 12])

    async def check_windows(kept: list[NewEvent]) -> None:
        for _ in range(20):
            since = t0 + rng.uniform(-30, 120)
            until = since + rng.choice([0.5, 3.0, 20.0, 80.0])
            bus = rng.choice(["a", "b", None])
            expected = [
                e.event_id
                for e in kept
                if (bus is None or e.bus == bus) and since <= e.time < until
            ]
            assert ids(await store.read_log_window(bus, since, until)) == expected

    await check_windows(events)
    before = t0 + 40
    expired = [e for e in events if e.bus == "a" and e.time < before]
    assert await store.expire_log(before, bus="a") == len(expired)
    kept = [e for e in events if e not in expired]
    await check_windows(kept)
    assert await store.expire_log(before + 20) == sum(e.time < before + 20 for e in kept)
    await check_windows([e for e in kept if e.time >= before + 20])


# -- log retention -----------------------------------------------------------------------------


async def test_expire_log_deletes_records_ingested_before_a_time(store: Store) -> None:
    t0 = store.now() - 100
    await store.ingest([ev(n, t0 + n, bus="a" if n % 2 else "b") for n in range(10)])
    last = await store.last_seq()
    assert await store.expire_log(t0 + 4) == 4
    assert ids(await store.read_log(0, 100)) == [f"e{n}" for n in range(4, 10)]
    assert ids(await store.read_log_window(None, t0, t0 + 100)) == [f"e{n}" for n in range(4, 10)]
    assert await store.expire_log(t0 + 4) == 0  # nothing more before it
    assert await store.expire_log(t0 + 100) == 6
    assert await store.read_log(0, 100) == []
    assert await store.read_log_window(None, t0, t0 + 100) == []
    # the numbering goes on
    assert await store.last_seq() == last
    await store.ingest([ev(99, t0 + 50)])
    (record,) = await store.read_log_window("a", t0 + 50, t0 + 51)
    assert record.event_id == "e99" and record.seq > last


async def test_expire_log_of_one_bus_keeps_the_others(store: Store) -> None:
    t0 = store.now() - 100
    await store.ingest([ev(n, t0 + n, bus="a" if n % 2 else "b") for n in range(10)])
    assert await store.expire_log(t0 + 6, bus="a") == 3  # e1 e3 e5
    assert ids(await store.read_log(0, 100)) == ["e0", "e2", "e4", "e6", "e7", "e8", "e9"]
    assert ids(await store.read_log_window("b", t0, t0 + 100)) == ["e0", "e2", "e4", "e6", "e8"]
    assert ids(await store.read_log_window("a", t0, t0 + 100)) == ["e7", "e9"]
    assert await store.expire_log(t0 + 100, bus="nobody") == 0
    assert await store.expire_log(t0 + 5, bus="b") == 3
    assert ids(await store.read_log_window(None, t0, t0 + 100)) == ["e6", "e7", "e8", "e9"]


async def test_expire_log_keeps_the_events_of_pending_deliveries(store: Store) -> None:
    t0 = store.now() - 100
    events = [ev(n, t0 + n) for n in range(4)]
    deliveries = [
        NewDelivery("a/r/t", e.event_id, e.body, e.body, e.time, t0) for e in events[:2]
    ] + [NewDelivery("a/r/t", events[2].event_id, b'{"rendered":1}', events[2].body, t0, t0)]
    stored = await store.ingest(events, deliveries)
    assert await store.expire_log(t0 + 100) == 4
    assert await store.read_log(0, 100) == []
    assert await store.pending_deliveries(0, 100) == stored
    claimed = await claim_all(store, "a/r/t")
    assert [(d.event_id, d.payload, d.event) for d in claimed] == [
        (d.event_id, d.payload, d.event) for d in stored
    ]
    assert await store.settle(OWNER, done=[d.id for d in claimed]) == []
    assert await store.pending_deliveries(0, 100) == []


# -- archives -----------------------------------------------------------------------------------


async def test_ingest_archives_events_for_their_listed_archives_only(store: Store) -> None:
    t0 = store.now() - 100
    events = [
        ev(1, t0 + 1, archives=(A1,)),
        ev(2, t0 + 2),  # archived nowhere
        ev(3, t0 + 3, archives=(A1, A2)),  # two archives share it
        ev(4, t0 + 4, bus="b", archives=(A2,)),
    ]
    await store.ingest(events[:2])
    await store.ingest(events[2:])
    one = await store.read_archive(A1, t0, t0 + 100)
    two = await store.read_archive(A2, t0, t0 + 100)
    assert [(r.event_id, r.time, r.body) for r in one] == [
        (e.event_id, e.time, e.body) for e in (events[0], events[2])
    ]
    assert [(r.event_id, r.time, r.body) for r in two] == [
        (e.event_id, e.time, e.body) for e in (events[2], events[3])
    ]
    assert await store.read_archive("111111111111/none", t0, t0 + 100) == []
    # archives outlive the log
    assert await store.expire_log(t0 + 100) == 4
    assert await store.read_archive(A1, t0, t0 + 100) == one
    assert await store.read_archive(A2, t0, t0 + 100) == two


async def test_an_archive_is_read_by_event_time_in_seq_order_and_paged(store: Store) -> None:
    now = store.now()
    e0 = now - 10 * 86400  # the events' own times: days ago, arriving out of order
    order = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4, 12, 10, 11]
    events = [
        ev(n, now - 50 + i, archives=(A1,), event_time=e0 + n * 60) for i, n in enumerate(order)
    ]
    await store.ingest(events[:5])
    await store.ingest(events[5:])
    whole = await store.read_archive(A1, e0 + 2 * 60, e0 + 10 * 60)  # e2..e9
    assert sorted(ids(whole)) == sorted(f"e{n}" for n in range(2, 10))
    assert [r.seq for r in whole] == sorted({r.seq for r in whole})
    assert {r.event_id: r.time for r in whole} == {f"e{n}": e0 + n * 60 for n in range(2, 10)}
    pages = await pages_of_archive(store, A1, e0 + 2 * 60, e0 + 10 * 60, 3)
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [r for p in pages for r in p] == whole
    # fractional bounds, and a window holding nothing
    assert ids(await store.read_archive(A1, e0 + 59.5, e0 + 120.5)) in (["e1", "e2"], ["e2", "e1"])
    assert await store.read_archive(A1, e0 + 13 * 60, e0 + 20 * 60) == []


async def test_archive_stats_count_events_and_body_bytes(store: Store) -> None:
    t0 = store.now() - 100
    assert await store.archive_stats(A1) == (0, 0)
    events = [ev(n, t0 + n, archives=(A1, A2) if n % 2 else (A1,)) for n in range(9)]
    await store.ingest(events[:4])
    await store.ingest(events[4:])
    assert await store.archive_stats(A1) == (9, sum(len(e.body) for e in events))
    assert await store.archive_stats(A2) == (4, sum(len(e.body) for e in events[1::2]))


async def test_expire_archive_counts_from_archiving_not_from_event_time(store: Store) -> None:
    t0 = store.now() - 100
    old = t0 - 30 * 86400  # event times a month ago: retention ignores them
    events = [ev(n, t0 + n, archives=(A1, A2), event_time=old + n) for n in range(8)]
    await store.ingest(events[:3])
    await store.ingest(events[3:])
    assert await store.expire_archive(A1, t0 + 5) == 5
    assert ids(await store.read_archive(A1, old, old + 100)) == ["e5", "e6", "e7"]
    assert await store.archive_stats(A1) == (3, sum(len(e.body) for e in events[5:]))
    assert await store.expire_archive(A1, t0 + 5) == 0
    assert await store.expire_archive("111111111111/none", t0 + 5) == 0
    # the other archive keeps its copies of the same events
    assert len(await store.read_archive(A2, old, old + 100)) == 8
    assert await store.archive_stats(A2) == (8, sum(len(e.body) for e in events))


async def test_drop_archive_deletes_all_of_it_and_nothing_else(store: Store) -> None:
    t0 = store.now() - 100
    events = [ev(n, t0 + n, archives=(A1, A2)) for n in range(6)]
    await store.ingest(events)
    await store.drop_archive(A1)
    assert await store.read_archive(A1, t0, t0 + 100) == []
    assert await store.archive_stats(A1) == (0, 0)
    assert len(await store.read_archive(A2, t0, t0 + 100)) == 6
    assert len(await store.read_log(0, 100)) == 6
    await store.drop_archive(A1)  # dropping it again, or one that never was, is fine
    await store.drop_archive("111111111111/none")
    # an archive created again with the name starts empty
    await store.ingest([ev(9, t0 + 9, archives=(A1,))])
    assert ids(await store.read_archive(A1, t0, t0 + 100)) == ["e9"]
    assert await store.archive_stats(A1) == (1, len(ev(9, 0).body))


# -- the trace journal ---------------------------------------------------------------------------


async def test_trace_entries_are_read_by_key_in_time_order(store: Store) -> None:
    t0 = store.now() - 100
    entries = [
        TraceEntry("e1", t0 + 3, "attempt", "a/r/t", b'{"status":500}'),
        TraceEntry("e2", t0 + 1, "attempt", "a/r/t", b'{"status":200}'),
        TraceEntry("m1", t0 + 4, "queue-receive", "q", b"{}"),
        TraceEntry("e1", t0 + 1, "attempt", "a/r/t", b'{"status":503}'),
        TraceEntry("e1", t0 + 5, "dead-letter", "a/r/t", b'{"queue":"dlq"}'),
    ]
    await store.trace_append(entries[:2])
    await store.trace_append(entries[2:])
    await store.trace_append([])
    assert await store.trace_read(["e1"]) == [entries[3], entries[0], entries[4]]
    assert await store.trace_read(["e1", "m1"]) == [entries[3], entries[0], entries[2], entries[4]]
    assert await store.trace_read(["e1", "m1"], since=t0 + 4) == [entries[2], entries[4]]
    assert await store.trace_read(["e2", "e2"]) == [entries[1]]
    assert await store.trace_read(["nothing"]) == []
    assert await store.trace_read([]) == []


async def test_expire_trace_deletes_entries_recorded_before_a_time(store: Store) -> None:
    t0 = store.now() - 100
    entries = [TraceEntry(f"e{n % 3}", t0 + n, "attempt", "a/r/t", b"{}") for n in range(10)]
    await store.trace_append(entries)
    assert await store.expire_trace(t0 + 6) == 6
    assert await store.trace_read(["e0", "e1", "e2"]) == entries[6:]
    assert await store.expire_trace(t0 + 6) == 0


async def test_expire_trace_is_not_stopped_by_an_entry_stamped_ahead(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_audit, "TRACE_CHUNK", 8)  # SQLite walks in chunks of 8
    now = store.now()
    ahead = TraceEntry("k0", now + 3600, "attempt", "a/r/t", b"{}")  # a clock stepped back
    await store.trace_append([ahead])
    await store.trace_append(
        [TraceEntry(f"k{n}", now - 86400 + n, "attempt", "a/r/t", b"{}") for n in range(1, 31)]
    )
    assert await store.expire_trace(now - 3600) == 30
    assert await store.trace_read([f"k{n}" for n in range(31)]) == [ahead]


# -- durability ------------------------------------------------------------------------------------


async def test_the_audit_part_is_there_after_close_and_reopen(
    store_factory: StoreFactory, location: Path
) -> None:
    first = store_factory(location)
    await first.open()
    t0 = first.now() - 100
    events = [ev(n, t0 + n, archives=(A1,)) for n in range(5)]
    trace = [TraceEntry("e1", t0 + 2, "attempt", "a/r/t", b'{"status":200}')]
    try:
        await first.ingest(events)
        await first.trace_append(trace)
        window = await first.read_log_window("a", t0 + 1, t0 + 4)
        archived = await first.read_archive(A1, t0, t0 + 100)
    finally:
        await first.close()
    second = store_factory(location)
    await second.open()
    try:
        assert await second.read_log_window("a", t0 + 1, t0 + 4) == window
        assert ids(window) == ["e1", "e2", "e3"]
        assert await second.read_archive(A1, t0, t0 + 100) == archived
        assert await second.archive_stats(A1) == (5, sum(len(e.body) for e in events))
        assert await second.trace_read(["e1"]) == trace
        await second.ingest([ev(7, t0 + 7, archives=(A1,))])
        assert ids(await second.read_log_window("a", t0 + 3, t0 + 10)) == ["e3", "e4", "e7"]
        assert await second.archive_stats(A1) == (
            6,
            sum(len(e.body) for e in events) + len(ev(7, 0).body),
        )
    finally:
        await second.close()
