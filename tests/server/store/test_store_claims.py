"""Contract: due delivery records are claimed with leases; only the holder settles.

These tests use real (short) leases, judged by the store's own clock, and wait for a
lease to end by claiming again until a deadline: a networked store judges leases by
its server's time, which no test can move by hand.
"""

from __future__ import annotations

import asyncio
import time

from store_helpers import claim_all
from tests.helpers import apoll_until

from eventyard.server.store import Claim, Delivery, NewDelivery, NewEvent, NewMessage, Store

TARGET = "b/r/t"
#: long enough never to end during a test
LONG = 300.0
#: short enough to wait out; stores may round leases up to whole seconds
SHORT = 1.0


async def _ingest(store: Store, dues: list[float], target: str = TARGET) -> list[Delivery]:
    stamp = time.time_ns()
    events = [
        NewEvent(f"{target}-{stamp}-{n}", "b", 1_700_000_000.0, f'{{"n":{n}}}'.encode())
        for n in range(len(dues))
    ]
    return await store.ingest(
        events,
        [
            NewDelivery(target, e.event_id, e.body, e.body, e.time, due)
            for e, due in zip(events, dues, strict=True)
        ],
    )


def _ids(deliveries: list[Delivery]) -> list[int]:
    return [d.id for d in deliveries]


async def _claimed_by(
    store: Store, owner: str, target: str = TARGET, lease: float = LONG
) -> list[Delivery]:
    """Claim for ``owner`` until something comes, failing after the default timeout."""

    async def claimed() -> list[Delivery]:
        return (await store.claim_deliveries(owner, target, 100, lease)).deliveries

    got: list[Delivery] = await apoll_until(claimed, what=f"a claim by {owner}")
    return got


async def test_a_claim_returns_due_records_only_in_due_order(store: Store) -> None:
    now = store.now()
    stored = await _ingest(store, [now - 10, now - 30, now + 3600, now - 20, now - 30])
    await _ingest(store, [now - 40], target="b/r/other")
    claim = await store.claim_deliveries("a", TARGET, 100, LONG)
    due = sorted((d for d in stored if d.due <= now), key=lambda d: (d.due, d.id))
    assert claim.deliveries == due
    # the next record that can be claimed is the one due in an hour
    assert claim.next_due == stored[2].due
    assert (await store.claim_deliveries("a", "b/r/none", 100, LONG)) == Claim([], None)


async def test_claims_page_through_a_backlog_without_repeating_a_record(store: Store) -> None:
    now = store.now()
    stored = await _ingest(store, [now - 100 + n % 7 for n in range(25)])
    pages = []
    while True:
        claim = await store.claim_deliveries("a", TARGET, 4, LONG)
        if not claim.deliveries:
            break
        assert len(claim.deliveries) <= 4
        if len(claim.deliveries) == 4 and len(pages) < 6:
            assert claim.next_due is not None and claim.next_due <= store.now()
        pages.append(claim.deliveries)
    flat = [d for page in pages for d in page]
    assert flat == sorted(stored, key=lambda d: (d.due, d.id))


async def test_two_owners_never_get_the_same_record(store: Store) -> None:
    now = store.now()
    stored = await _ingest(store, [now - 5] * 60)

    async def claimer(owner: str) -> list[int]:
        got: list[int] = []
        while True:
            claim = await store.claim_deliveries(owner, TARGET, 3, LONG)
            if not claim.deliveries:
                return got
            got += _ids(claim.deliveries)

    a, b = await asyncio.gather(claimer("a"), claimer("b"))
    assert not set(a) & set(b)
    assert sorted(a + b) == _ids(stored)


async def test_a_record_whose_lease_ends_is_claimable_by_another_owner(store: Store) -> None:
    (record,) = await _ingest(store, [store.now() - 1])
    first = await store.claim_deliveries("a", TARGET, 10, SHORT)
    assert _ids(first.deliveries) == [record.id]
    blocked = await store.claim_deliveries("b", TARGET, 10, LONG)
    assert blocked.deliveries == []
    # the lease's end is when the record can be claimed again
    assert blocked.next_due is not None and blocked.next_due <= store.now() + SHORT + 1
    taken = await _claimed_by(store, "b")
    assert [(d.id, d.attempts) for d in taken] == [(record.id, 0)]
    # the first owner lost it: it can neither renew nor settle it
    assert await store.renew_leases("a", [record.id], LONG) == [record.id]
    assert await store.settle("a", done=[record.id]) == [record.id]
    assert _ids(await store.pending_deliveries()) == [record.id]
    assert await store.settle("b", done=[record.id]) == []
    assert await store.pending_deliveries() == []


async def test_a_renewed_lease_outlasts_its_first_term(store: Store) -> None:
    (record,) = await _ingest(store, [store.now() - 1])
    claimed_at = store.now()
    await store.claim_deliveries("a", TARGET, 10, SHORT)
    assert await store.renew_leases("a", [record.id], LONG) == []
    await apoll_until(lambda: store.now() > claimed_at + 2 * SHORT, what="the first term")
    assert (await store.claim_deliveries("b", TARGET, 10, LONG)).deliveries == []
    assert await store.renew_leases("a", [record.id], LONG) == []
    assert await store.settle("a", done=[record.id]) == []
    # what is settled (or never was) cannot be renewed
    assert await store.renew_leases("a", [record.id, 99_999], LONG) == [record.id, 99_999]


async def test_settle_by_a_non_owner_is_refused_and_writes_nothing(store: Store) -> None:
    first, second = await _ingest(store, [store.now() - 2, store.now() - 1])
    await store.claim_deliveries("a", TARGET, 1, LONG)
    dlq = NewMessage("dlq", "dead")
    lost = await store.settle(
        "b", done=[first.id], dead=[(second.id, dlq)], messages=[(first.id, NewMessage("q", "x"))]
    )
    # the first is a's, the second nobody's: both refused
    assert sorted(lost) == [first.id, second.id]
    assert _ids(await store.pending_deliveries()) == [first.id, second.id]
    assert await store.queue_counts("q", time.time()) == (0, 0, 0)
    assert await store.queue_counts("dlq", time.time()) == (0, 0, 0)
    assert await store.settle("a", done=[first.id]) == []


async def test_a_queue_message_is_written_only_with_its_done(store: Store) -> None:
    mine, also_mine, not_mine = await _ingest(store, [store.now() - 3] * 3)
    await store.claim_deliveries("a", TARGET, 2, LONG)
    await store.claim_deliveries("b", TARGET, 1, LONG)
    lost = await store.settle(
        "a",
        done=[mine.id, not_mine.id],
        messages=[
            (mine.id, NewMessage("q", "mine")),
            (also_mine.id, NewMessage("q", "no done, no message")),
            (not_mine.id, NewMessage("q", "not a's")),
        ],
    )
    assert not_mine.id in lost and mine.id not in lost
    received = await store.queue_receive("q", 10, 30, time.time())
    assert [m.body for m in received] == ["mine"]
    assert _ids(await store.pending_deliveries()) == [also_mine.id, not_mine.id]


async def test_a_retry_due_later_is_not_claimable_before_its_due_time(store: Store) -> None:
    now = store.now()
    record, other = await _ingest(store, [now - 2, now - 1])
    await store.claim_deliveries("a", TARGET, 10, LONG)
    later = store.now() + 3600
    assert await store.settle("a", retry=[(record.id, later, 1)], done=[other.id]) == []
    claim = await store.claim_deliveries("b", TARGET, 10, LONG)
    assert claim.deliveries == []
    assert claim.next_due == later
    (pending,) = await store.pending_deliveries()
    assert (pending.id, pending.due, pending.attempts) == (record.id, later, 1)


async def test_a_released_record_is_claimed_again_in_its_place(store: Store) -> None:
    now = store.now()
    stored = await _ingest(store, [now - 50, now - 40, now - 30, now - 20, now - 10])
    first = await store.claim_deliveries("a", TARGET, 3, LONG)
    assert first.deliveries == stored[:3]
    # given back unattempted (a retry with its own due time and attempts)
    assert await store.settle("a", retry=[(stored[0].id, stored[0].due, 0)]) == []
    again = await store.claim_deliveries("b", TARGET, 10, LONG)
    assert _ids(again.deliveries) == [stored[0].id, stored[3].id, stored[4].id]


async def test_a_record_due_before_records_already_claimed_is_claimed(store: Store) -> None:
    now = store.now()
    late = await _ingest(store, [now - 10, now - 5])
    assert (await store.claim_deliveries("a", TARGET, 10, LONG)).deliveries == late
    # committed after them, due before them (producers' clocks differ a little)
    early = await _ingest(store, [now - 20])
    assert (await store.claim_deliveries("a", TARGET, 10, LONG)).deliveries == early


async def test_a_claim_takes_the_earliest_of_released_and_new_records(store: Store) -> None:
    now = store.now()
    old = await _ingest(store, [now - 30, now - 20])
    await claim_all(store, TARGET, owner="a")
    new = await _ingest(store, [now - 25, now - 15])
    assert await store.settle("a", retry=[(old[1].id, now - 22, 1)]) == []
    claim = await store.claim_deliveries("b", TARGET, 2, LONG)
    # in due order: new[0] (-25), the released old[1] (-22); new[1] (-15) waits
    assert _ids(claim.deliveries) == [new[0].id, old[1].id]
    assert claim.next_due == new[1].due
    assert _ids(await claim_all(store, TARGET, owner="b")) == [new[1].id]
