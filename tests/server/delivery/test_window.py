"""The engine's bounded window: memory holds at most ``window`` records, the store the rest.

Each test shrinks the window far below the backlog, so paging, fair shares, eviction and
restarts all happen on a few hundred records.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from prometheus_client import REGISTRY

from eventyard.errors import StoreError
from eventyard.server.store import NewDelivery, NewEvent
from tests.helpers import apoll_until
from tests.server.delivery.conftest import Harness, ManualClock, Webhook, refused_url, statuses


def _ids(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.headers["X-Eventyard-Event-Id"] for h in hits]


async def test_the_engine_never_holds_more_than_its_window(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/hang", webhook.url("/hang", webhook.hang), timeout=60.0, concurrency=4)
    harness.target("b/r/refused", refused_url(), max_attempts=1000)
    harness.target("b/r/ok", webhook.url("/ok"), concurrency=8)
    await harness.add("b/r/hang", 100)
    await harness.add("b/r/refused", 100)
    await harness.add("b/r/ok", 300)

    engine = await harness.engine(window=16, page_size=5)
    assert engine.window == 16
    assert 0 < engine.pending <= 16  # start() read a window, not the backlog
    await webhook.wait_hits("/ok", 300)
    await harness.wait_settled(200)
    assert engine.peak <= 16
    assert engine.pending <= 16
    assert len(set(_ids(webhook.hits_on("/ok")))) == 300


async def test_the_window_gauge_counts_the_records_in_memory(
    harness: Harness, webhook: Webhook
) -> None:
    def window() -> float:
        return REGISTRY.get_sample_value("eventyard_delivery_window") or 0.0

    before = window()
    harness.target("b/r/hang", webhook.url("/hang", webhook.hang), timeout=60.0, concurrency=2)
    await harness.add("b/r/hang", 50)
    engine = await harness.engine(window=10)
    await webhook.wait_hits("/hang", 2)
    assert window() - before == engine.pending == 10
    await engine.stop(0.1)
    assert window() == before


async def test_records_are_paged_in_due_order(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/ok"), concurrency=1)
    dues = [clock.now - 1000 + n for n in range(40)]
    random.Random(3).shuffle(dues)
    events, deliveries = [], []
    for n, due in enumerate(dues):
        body = b'{"n": %d}' % n
        events.append(NewEvent(f"e{n}", "b", clock.now, body))
        deliveries.append(NewDelivery("b/r/t", f"e{n}", body, body, clock.now, due))
    later = NewEvent("later", "b", clock.now, b"{}")
    await harness.store.ingest(
        [*events, later],
        [*deliveries, NewDelivery("b/r/t", "later", b"{}", b"{}", clock.now, clock.now + 5)],
    )

    await harness.engine(window=4, page_size=3, clock=clock)
    hits = await webhook.wait_hits("/ok", 40)
    by_due = [f"e{n}" for n, _ in sorted(enumerate(dues), key=lambda nd: nd[1])]
    assert _ids(hits) == by_due
    # the record due later waits in the store until its time
    await harness.wait_settled(1)
    assert [r.event_id for r in await harness.pending()] == ["later"]
    assert await clock.next_deadline() == clock.now + 5
    clock.advance(5)
    await webhook.wait_hits("/ok", 41)
    await harness.wait_settled()


async def test_a_dead_targets_backlog_does_not_block_a_healthy_target(
    harness: Harness, webhook: Webhook
) -> None:
    # The dead target's backlog is loaded first and fills the whole window; its
    # attempts never end during the test.
    harness.target("b/r/dead", webhook.url("/dead", webhook.hang), timeout=60.0, concurrency=2)
    harness.target("b/r/ok", webhook.url("/ok"))
    await harness.add("b/r/dead", 500)
    engine = await harness.engine(window=20, page_size=7)
    await webhook.wait_hits("/dead", 2)
    assert engine.pending == 20

    # New records for the healthy target arrive while the window is full.
    fresh = await harness.add("b/r/ok", 100)
    engine.deliveries_ready(["b/r/ok"])
    hits = await webhook.wait_hits("/ok", 100)
    assert sorted(_ids(hits)) == sorted(r.event_id for r in fresh)
    await harness.wait_settled(500)
    assert len(webhook.hits_on("/dead")) == 2  # still its two attempts, nothing more
    assert engine.peak <= 20


async def test_a_retry_waits_in_the_store_not_in_memory(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/flaky", statuses(500, 200)))
    [record] = await harness.add("b/r/t")
    engine = await harness.engine(base_delay=30, max_delay=30, jitter="none", clock=clock)
    await webhook.wait_hits("/flaky", 1)

    assert await clock.next_deadline() == clock.now + 30
    assert engine.pending == 0
    [stored] = await harness.pending()
    assert (stored.id, stored.attempts, stored.due) == (record.id, 1, clock.now + 30)
    clock.advance(30)
    [_, hit] = await webhook.wait_hits("/flaky", 2)
    assert hit.headers["X-Eventyard-Attempt"] == "2"
    await harness.wait_settled()


async def test_a_restart_with_a_backlog_larger_than_the_window_delivers_each_record_once(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/a", webhook.url("/a"), concurrency=3)
    harness.target("b/r/b", webhook.url("/b"), concurrency=3)
    records = await harness.add("b/r/a", 150) + await harness.add("b/r/b", 150)
    first = await harness.engine(window=8, page_size=3)
    await apoll_until(lambda: len(webhook.hits) >= 60, what="60 deliveries")
    # stop lets the attempts in flight finish and writes their outcomes: nothing the
    # first engine delivered stays pending
    await first.stop(timeout=5)
    assert first.peak <= 8
    delivered = set(_ids(webhook.hits))
    assert {r.event_id for r in await harness.pending()}.isdisjoint(delivered)

    second = await harness.engine(window=8, page_size=3)
    assert second.pending <= 8
    await harness.wait_settled()
    counts = Counter(_ids(webhook.hits))
    assert set(counts) == {r.event_id for r in records}
    assert set(counts.values()) == {1}
    assert second.peak <= 8


async def test_a_full_window_leaves_new_records_in_the_store_until_there_is_room(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/hang", webhook.hang), timeout=60.0, concurrency=1)
    engine = await harness.engine(window=5)
    fresh = await harness.add("b/r/t", 30)
    engine.deliveries_ready(["b/r/t"])
    engine.deliveries_ready(["b/r/t"])  # twice: still delivered once
    await webhook.wait_hits("/hang", 1)
    assert engine.pending == 5
    assert len(await harness.pending()) == 30
    webhook.release.set()  # the hanging attempts answer 200 from now on
    await harness.wait_settled()
    assert sorted(_ids(webhook.hits_on("/hang"))) == sorted(r.event_id for r in fresh)
    assert engine.peak <= 5


class SlowClaims:
    """A store proxy whose claims take a moment, as a networked store's would.

    The SQLite store answers a claim without suspending, so nothing else runs during a
    claim; this one lets hints and settles happen while a claim is on its way.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def claim_deliveries(self, owner: str, target: str, limit: int, lease: float) -> Any:
        page = await self.inner.claim_deliveries(owner, target, limit, lease)
        self.pages += 1
        # the answer arrives a moment later; meanwhile attempts end and settle
        await asyncio.sleep(0.02)
        return page


async def test_records_that_arrive_or_settle_while_a_claim_is_on_its_way_are_delivered_once(
    harness: Harness, webhook: Webhook, store: Any
) -> None:
    harness.target("b/r/t", webhook.url("/ok"), concurrency=4)
    records = await harness.add("b/r/t", 40)
    slow = SlowClaims(store)
    engine = await harness.engine(store=slow, window=6, page_size=2, settle_linger=0)
    for _ in range(12):
        fresh = await harness.add("b/r/t", 5)
        records += fresh
        engine.deliveries_ready(["b/r/t"])
        await asyncio.sleep(0.002)
    await harness.wait_settled()
    counts = Counter(_ids(webhook.hits_on("/ok")))
    assert set(counts) == {r.event_id for r in records}
    assert set(counts.values()) == {1}
    assert engine.peak <= 6
    assert slow.pages > 20


class Refusing:
    """A store proxy that refuses the next ``settles`` retry writes or ``pages`` reads."""

    def __init__(self, inner: Any, *, settles: int = 0, pages: int = 0) -> None:
        self.inner = inner
        self.settles = settles
        self.pages = pages

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def settle(
        self, owner: str, done: Any = (), retry: Any = (), dead: Any = (), messages: Any = ()
    ) -> Any:
        if retry and self.settles:
            self.settles -= 1
            raise StoreError("disk full")
        return await self.inner.settle(owner, done, retry, dead, messages)

    async def claim_deliveries(self, owner: str, target: str, limit: int, lease: float) -> Any:
        if self.pages:
            self.pages -= 1
            raise StoreError("I/O error")
        return await self.inner.claim_deliveries(owner, target, limit, lease)


async def test_a_retry_the_store_refuses_to_write_waits_in_memory_instead(
    harness: Harness, webhook: Webhook, store: Any, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/flaky", statuses(500, 200)))
    [record] = await harness.add("b/r/t")
    refusing = Refusing(store, settles=2)  # the batch, then the one-by-one write
    engine = await harness.engine(
        store=refusing, base_delay=10, max_delay=10, jitter="none", clock=clock
    )
    await webhook.wait_hits("/flaky", 1)
    assert await clock.next_deadline() == clock.now + 10
    assert engine.pending == 1  # kept here: the store still has the old due time
    [stored] = await harness.pending()
    assert (stored.id, stored.attempts) == (record.id, 0)
    clock.advance(10)
    [_, hit] = await webhook.wait_hits("/flaky", 2)
    assert hit.headers["X-Eventyard-Attempt"] == "2"
    await harness.wait_settled()
    assert refusing.settles == 0


async def test_a_claim_the_store_refuses_is_made_again_a_second_later(
    harness: Harness, webhook: Webhook, store: Any, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/ok"))
    await harness.add("b/r/t", 3)
    refusing = Refusing(store, pages=1)
    await harness.engine(store=refusing, clock=clock)
    assert await clock.next_deadline() == clock.now + 1
    assert webhook.hits == []
    clock.advance(1)
    await webhook.wait_hits("/ok", 3)
    await harness.wait_settled()
