"""The SQLite store's lease book: claim marks, returned positions, conditional settles.

Unit tests of :class:`~eventyard.server.store.leases.LeaseBook` (no store, a time passed
by hand), and of the SQLite store's claims through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventyard.server.store import Delivery, NewDelivery, NewEvent
from eventyard.server.store.leases import START, LeaseBook
from eventyard.server.store.sqlite import SQLiteStore


def test_a_lease_blocks_claims_until_it_ends_and_only_its_owner_renews_it() -> None:
    book = LeaseBook()
    book.lease("a", "t", [(1.0, 7)], until=100.0)
    assert not book.claimable(7, now=99.0)
    assert book.claimable(7, now=100.0)
    assert book.renew("b", [7], until=200.0) == [7]
    assert book.renew("a", [7, 8], until=200.0) == [8]
    assert not book.claimable(7, now=150.0)


def test_a_lease_that_ran_out_returns_its_position_but_its_owner_may_still_settle() -> None:
    book = LeaseBook()
    book.lease("a", "t", [(1.0, 7)], until=100.0)
    book.advance("t", (1.0, 7))
    assert book.take_returned("t", now=99.0, limit=10) == []
    assert book.take_returned("t", now=100.0, limit=10) == [(1.0, 7)]
    held, lost = book.begin_settle("a", [7])
    assert (held, lost) == ({7}, [])


def test_a_record_being_settled_is_not_claimable_even_once_its_lease_ran_out() -> None:
    book = LeaseBook()
    book.lease("a", "t", [(1.0, 7)], until=100.0)
    book.advance("t", (1.0, 7))
    book.begin_settle("a", [7])
    assert not book.claimable(7, now=500.0)
    assert book.take_returned("t", now=500.0, limit=10) == []
    # the write failed: the owner keeps the lease, which has run out meanwhile
    book.end_settle({7}, committed=False)
    assert book.claimable(7, now=500.0)
    assert book.take_returned("t", now=500.0, limit=10) == [(1.0, 7)]


def test_a_committed_retry_behind_the_mark_is_returned_at_its_new_place() -> None:
    book = LeaseBook()
    book.lease("a", "t", [(1.0, 7), (2.0, 8)], until=100.0)
    book.advance("t", (2.0, 8))
    held, _ = book.begin_settle("a", [7, 8])
    book.end_settle(held, committed=True, moved={7: 1.5, 8: 50.0})
    # 8 moved past the mark: the range read finds it; 7 is behind it
    assert book.take_returned("t", now=10.0, limit=10) == [(1.5, 7)]
    assert book.claimable(7, now=10.0) and book.claimable(8, now=10.0)


def test_a_target_without_leases_or_returned_records_forgets_its_mark() -> None:
    book = LeaseBook()
    book.lease("a", "t", [(1.0, 7)], until=100.0)
    book.advance("t", (1.0, 7))
    held, _ = book.begin_settle("a", [7])
    book.end_settle(held, committed=True)
    assert book.mark("t") == START
    assert len(book) == 0


def test_next_due_counts_returned_records_and_other_owners_leases() -> None:
    book = LeaseBook()
    book.lease("a", "t", [(1.0, 7)], until=100.0)
    book.lease("b", "t", [(2.0, 8)], until=60.0)
    assert book.next_due("t", "a") == 60.0  # b's lease; a's own does not count
    assert book.next_due("t", "b") == 100.0
    book.advance("t", (2.0, 8))
    book.arrived("t", [(1.5, 9)])
    assert book.next_due("t", "a") == 1.5


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    db = SQLiteStore(str(tmp_path / "eventyard.db"), clock=lambda: 1000.0)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def _backlog(store: SQLiteStore, count: int) -> list[Delivery]:
    events = [NewEvent(f"e{n}", "b", 1.0, b"{}") for n in range(count)]
    return await store.ingest(
        events,
        [
            NewDelivery("b/r/t", e.event_id, b"{}", b"{}", 1.0, float(n))
            for n, e in enumerate(events)
        ],
    )


async def test_a_claim_starts_after_the_records_already_leased(sqlite: SQLiteStore) -> None:
    stored = await _backlog(sqlite, 600)
    reads: list[str] = []
    assert sqlite._reader is not None
    sqlite._reader.set_trace_callback(reads.append)
    first = await sqlite.claim_deliveries("a", "b/r/t", 500, 30.0)
    assert first.deliveries == stored[:500]
    reads.clear()
    second = await sqlite.claim_deliveries("b", "b/r/t", 50, 30.0)
    assert second.deliveries == stored[500:550]
    # one range read, starting after the 500 leased records, not at the first record
    assert len(reads) == 1
    assert sqlite._leases.mark("b/r/t") == (stored[549].due, stored[549].id)


def test_renewals_do_not_grow_the_lease_ends_without_bound() -> None:
    book = LeaseBook()
    book.lease("a", "t", [(1.0, i) for i in range(10)], until=100.0)
    for n in range(1, 200):
        assert book.renew("a", range(10), until=100.0 + n) == []
    assert len(book._targets["t"].ends["a"]) <= 2 * 10 + 64
    assert book.next_due("t", "b") == 299.0
