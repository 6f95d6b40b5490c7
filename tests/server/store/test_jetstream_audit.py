"""What is particular to the JetStream store's audit part (the contract is
test_store_audit.py): on-clock records read and expired through the server's time index,
off-clock ones on subjects of their own, archives bucketed by event hour with a ledger
shared by processes, trace entries over a bounded set of bucket subjects.

Times are the real clock: the server stamps messages with its own, and on-clock records
are those stored as they happen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from tests.natsserver import NatsCluster

from eventyard.server.store import NewDelivery, NewEvent, TraceEntry
from eventyard.server.store.jetstream import JetStreamStore, timeindex
from eventyard.server.store.jetstream import trace as trace_module
from eventyard.server.store.jetstream.journal import Entry, decode_entry, encode_entry

HOUR = 3600


@pytest.fixture
async def pair(
    nats_cluster: NatsCluster, tmp_path: Path
) -> AsyncIterator[tuple[JetStreamStore, JetStreamStore]]:
    """Two store instances (two processes) over the same streams."""
    prefix = f"au{abs(hash(str(tmp_path))) % 10**12}"
    a = JetStreamStore(nats_cluster.urls, prefix=prefix, name="a")
    b = JetStreamStore(nats_cluster.urls, prefix=prefix, name="b")
    await asyncio.gather(a.open(), b.open())
    try:
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())


async def subjects(cluster: NatsCluster, stream: str, pattern: str) -> dict[str, int]:
    """The subjects of ``stream`` matching ``pattern`` with their message counts."""
    nc = await nats.connect(cluster.url)
    try:
        request = json.dumps({"subjects_filter": pattern}).encode()
        reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", request, timeout=5)
        found: dict[str, int] = json.loads(reply.data)["state"].get("subjects") or {}
        return found
    finally:
        await nc.close()


def ev(n: int, t: float, bus: str = "b", **kwargs: object) -> NewEvent:
    return NewEvent(f"e{n}-{time.monotonic_ns()}", bus, t, b'{"n":%d}' % n, **kwargs)  # type: ignore[arg-type]


async def test_events_ingested_now_are_read_and_purged_through_the_time_index(
    pair: tuple[JetStreamStore, JetStreamStore], nats_cluster: NatsCluster
) -> None:
    a, b = pair
    now = time.time()
    late = ev(9, now - 3 * HOUR)  # applied long after: off-clock, a subject of its own
    events = [ev(n, now, bus="b" if n % 2 else "c") for n in range(6)] + [late]
    await a.ingest(events)
    prefix = a._names.prefix
    assert await subjects(nats_cluster, f"{prefix}_log", f"{prefix}.log.>") == {
        f"{prefix}.log.b": 3,
        f"{prefix}.log.c": 3,
        f"{prefix}.log.b.o.{int((now - 3 * HOUR) // 600)}": 1,
    }
    window = await b.read_log_window("b", now - 60, now + 60)
    assert [r.event_id for r in window] == [e.event_id for e in events[1:6:2]]
    assert await b.read_log_window("b", now - 4 * HOUR, now - 2 * HOUR) == [
        (await b.read_log(6, 1))[0]
    ]
    assert await b.read_log_window(None, now + 60, now + HOUR) == []
    assert len(await b.read_log_window(None, now - 4 * HOUR, now + 1)) == 7
    # nothing is old enough yet; then everything of bus c, then the rest
    assert await b.expire_log(now - HOUR / 2) == 1
    assert await b.expire_log(now + 1, bus="c") == 3
    assert [r.bus for r in await a.read_log()] == ["b"] * 3
    assert await a.expire_log(now + 1) == 3
    assert await a.read_log() == []
    assert await a.last_seq() == 7  # purged, not renumbered


async def test_expiry_keeps_pending_deliveries_whole(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    e = ev(1, time.time())
    await a.ingest([e], [NewDelivery("b/r/t", e.event_id, b"payload", e.body, e.time, 0.0)])
    assert await a.expire_log(time.time() + 1) == 1
    (claimed,) = (await a.claim_deliveries("o", "b/r/t", 10, 30.0)).deliveries
    assert (claimed.payload, claimed.event) == (b"payload", e.body)


async def test_an_event_with_an_old_time_is_archived_in_its_hour_and_read_back(
    pair: tuple[JetStreamStore, JetStreamStore], nats_cluster: NatsCluster
) -> None:
    a, b = pair
    now = time.time()
    old = 1_500_000_000.0  # 2017: PutEvents may set any Time
    events = [
        ev(0, now, archives=("acct/arc",), event_time=old),
        ev(1, now, archives=("acct/arc", "acct/other")),
        ev(2, now, archives=("acct/arc",), event_time=old + HOUR + 1),
    ]
    await a.ingest(events)
    prefix = a._names.prefix
    hour = int(old // HOUR)
    assert await subjects(nats_cluster, f"{prefix}_archive", f"{prefix}.arc.acct/arc.>") == {
        f"{prefix}.arc.acct/arc.{hour}.n": 1,
        f"{prefix}.arc.acct/arc.{hour + 1}.n": 1,
        f"{prefix}.arc.acct/arc.{int(now // HOUR)}.n": 1,
    }
    (record,) = await b.read_archive("acct/arc", old, old + 60)
    assert (record.event_id, record.time, record.body) == (events[0].event_id, old, events[0].body)
    recent = await b.read_archive("acct/arc", now - 1, now + 1)
    assert [r.event_id for r in recent] == [events[1].event_id]
    assert await b.archive_stats("acct/arc") == (3, sum(len(e.body) for e in events))
    assert await b.archive_stats("acct/other") == (1, len(events[1].body))


async def test_a_window_of_years_merges_the_hours_of_an_archive_in_seq_order(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    now = time.time()
    # event times over two years, in no order: each in an hour subject of its own
    times = [now - (n * 7919 % 23) * 30 * 86400 for n in range(23)]
    events = [ev(n, now, archives=("x",), event_time=t) for n, t in enumerate(times)]
    for e in events:
        await a.ingest([e])
    pages, after = [], 0
    while page := await a.read_archive("x", now - 800 * 86400, now + 1, after, limit=5):
        pages.append(page)
        after = page[-1].seq
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [r.event_id for p in pages for r in p] == [e.event_id for e in events]
    middle = [e for e, t in zip(events, times, strict=True) if now - 400 * 86400 <= t < now - 100]
    found = await a.read_archive("x", now - 400 * 86400, now - 100)
    assert [r.event_id for r in found] == [e.event_id for e in middle]


async def test_the_ledger_is_shared_rolled_up_and_counts_a_concurrent_expiry_once(
    pair: tuple[JetStreamStore, JetStreamStore], nats_cluster: NatsCluster
) -> None:
    a, b = pair
    now = time.time()
    for n in range(80):
        await (a if n % 2 else b).ingest([ev(n, now, archives=("led",))])
    body_bytes = sum(len(b'{"n":%d}' % n) for n in range(80))
    assert await a.archive_stats("led") == (80, body_bytes)
    prefix = a._names.prefix
    ledger = await subjects(nats_cluster, f"{prefix}_archive", f"{prefix}.arcstat.>")
    assert ledger == {f"{prefix}.arcstat.led": 1}  # rolled up into one message
    removed = await asyncio.gather(
        a.expire_archive("led", now + 1), b.expire_archive("led", now + 1)
    )
    assert sum(removed) == 80
    assert await b.archive_stats("led") == (0, 0)
    assert await a.read_archive("led", now - 1, now + 1) == []


def test_a_journal_entry_keeps_the_archives_and_event_time_of_its_events() -> None:
    events = (
        NewEvent("e1", "b", 5.0, b"{}", ("a1", "a/2"), 3.5),
        NewEvent("e2", "b", 6.0, b"{}"),
    )
    entry = Entry("k", False, events, (), ())
    assert decode_entry(encode_entry(entry)) == entry


async def test_trace_entries_spread_over_bounded_buckets_and_are_read_from_since(
    pair: tuple[JetStreamStore, JetStreamStore],
    nats_cluster: NatsCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trace_module, "BUCKETS", 4)
    a, b = pair
    now = time.time()
    keys = [f"k{n}" for n in range(40)]
    await a.trace_append([TraceEntry(k, now, "attempt", "b/r/t", b"{}") for k in keys])
    await a.trace_append([TraceEntry("k1", now - 5 * HOUR, "attempt", "b/r/t", b"{}")])
    prefix = a._names.prefix
    buckets = await subjects(nats_cluster, f"{prefix}_trace", f"{prefix}.trace.>")
    assert len(buckets) <= 5 and sum(buckets.values()) == 41
    assert [e.key for e in await b.trace_read(["k1", "k7"], now - 60)] == ["k1", "k7"]
    assert [e.time for e in await b.trace_read(["k1"], now - 6 * HOUR)] == [now - 5 * HOUR, now]
    assert await b.expire_trace(now - HOUR) == 1
    assert await b.expire_trace(now + 1) == 40
    assert await b.trace_read(keys, 0.0) == []


async def test_an_ingest_applied_again_by_recovery_archives_and_counts_once(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    now = time.time()
    events = (ev(1, now, archives=("r",)), ev(2, now - HOUR, archives=("r",)))
    entry = Entry("recovered-entry", False, events, (), ())
    await a._log.apply(entry)
    await b._log.apply(entry)  # a recovering process applies the same entry again
    found = await b.read_archive("r", now - 2 * HOUR, now + 1)
    assert sorted(r.event_id for r in found) == sorted(e.event_id for e in events)
    assert await a.archive_stats("r") == (2, sum(len(e.body) for e in events))


async def test_a_host_clock_far_from_the_servers_is_measured_and_warned_about(
    pair: tuple[JetStreamStore, JetStreamStore],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = pair
    assert abs(await timeindex.check_clock(a._link, a._names.log_stream)) < 1.0
    assert "clock" not in caplog.text
    real = time.time
    monkeypatch.setattr(timeindex.time, "time", lambda: real() - 60)  # this host: late
    offset = await timeindex.check_clock(a._link, a._names.log_stream)
    assert 59 < offset < 61
    assert "NATS server's clock is" in caplog.text and "s ahead of this host's" in caplog.text


async def test_expiry_at_the_edge_purges_the_leading_run_and_deletes_stragglers(
    pair: tuple[JetStreamStore, JetStreamStore], nats_cluster: NatsCluster
) -> None:
    a, _ = pair
    now = time.time()
    # on-clock, a clock step back in the middle: old, old, new, old (straggler), new
    events = [ev(n, t) for n, t in enumerate([now - 1, now - 1, now, now - 1, now])]
    await a.ingest(events)
    assert await a.expire_log(now - 0.5, bus="b") == 3
    assert [r.event_id for r in await a.read_log()] == [events[2].event_id, events[4].event_id]
    prefix = a._names.prefix
    nc = await nats.connect(nats_cluster.url)
    try:
        info = await nc.jetstream().stream_info(f"{prefix}_log")
    finally:
        await nc.close()
    assert (info.state.first_seq, info.state.num_deleted) == (3, 1)  # purged 1-2, deleted 4


async def test_an_event_stored_while_expiry_looks_up_its_cut_is_kept(
    pair: tuple[JetStreamStore, JetStreamStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    old, fresh = ev(1, time.time()), ev(2, time.time())
    await a.ingest([old])
    lookup = timeindex.first_seq_at

    async def lookup_then_ingest(*args: object) -> int | None:
        found = await lookup(*args)  # type: ignore[arg-type]
        await b.ingest([fresh])  # acknowledged before the purge
        return found

    monkeypatch.setattr(timeindex, "first_seq_at", lookup_then_ingest)
    # everything stored before the lookup is older than the cut: the lookup finds nothing
    assert await a.expire_log(time.time() + timeindex.LEAD + 1, bus="b") == 1
    assert [r.event_id for r in await a.read_log()] == [fresh.event_id]


async def test_archive_expiry_deletes_each_batch_it_reads_before_reading_on(
    pair: tuple[JetStreamStore, JetStreamStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    now = time.time()
    events = [ev(n, now, archives=("big",)) for n in range(150)]
    await a.ingest(events)
    steps: list[tuple[str, int]] = []
    scan, delete = timeindex.scan, timeindex.delete

    async def scanning(*args: object) -> AsyncIterator[list[object]]:
        async for msgs in scan(*args):  # type: ignore[arg-type]
            steps.append(("read", len(msgs)))
            yield msgs  # type: ignore[misc]

    async def deleting(link: object, stream: str, seqs: list[int]) -> list[int]:
        steps.append(("delete", len(seqs)))
        return await delete(link, stream, seqs)  # type: ignore[arg-type]

    monkeypatch.setattr(timeindex, "scan", scanning)
    monkeypatch.setattr(timeindex, "delete", deleting)
    assert await a.expire_archive("big", now + 1) == 150
    # the scan's first batch is 100: deleted before the rest is read (bounded memory)
    assert steps == [("read", 100), ("delete", 100), ("read", 50), ("delete", 50)]
    assert await a.archive_stats("big") == (0, 0)
