"""The engine's leases: renewed while held, forgotten when lost, waited out when another
owner's lease ends."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from tests.helpers import apoll_until
from tests.server.delivery.conftest import Harness, ManualClock, Webhook


def _lost() -> float:
    return REGISTRY.get_sample_value("eventyard_delivery_leases_lost_total") or 0.0


def _delivered() -> float:
    sample = REGISTRY.get_sample_value("eventyard_deliveries_total", {"outcome": "delivered"})
    return sample or 0.0


async def test_the_engine_renews_the_leases_of_the_records_it_holds(
    harness: Harness, webhook: Webhook, store: Any
) -> None:
    harness.target("b/r/t", webhook.url("/hang", webhook.hang), timeout=60.0)
    [record] = await harness.add("b/r/t")
    engine = await harness.engine(lease=1.0)
    await webhook.wait_hits("/hang", 1)
    held_since = store.now()
    # three lease terms later the record is still the engine's: renewed every third
    await apoll_until(lambda: store.now() > held_since + 3.0, what="three lease terms")
    claim = await store.claim_deliveries("another", "b/r/t", 10, 30.0)
    assert claim.deliveries == []
    assert engine.pending == 1
    assert await store.renew_leases(engine.owner, [record.id], 30.0) == []


async def test_a_lost_lease_is_forgotten_and_its_attempt_settles_nothing(
    harness: Harness, webhook: Webhook, store: Any, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/hang", webhook.hang), timeout=60.0)
    [record] = await harness.add("b/r/t")
    lost, delivered = _lost(), _delivered()
    # the lease is judged by the hand-moved clock; renewals come every 0.3 s of real time
    engine = await harness.engine(lease=0.9, clock=clock)
    await webhook.wait_hits("/hang", 1)
    clock.advance(1.0)  # the engine's lease ends before its next renewal...
    [taken] = (await store.claim_deliveries("thief", "b/r/t", 10, 60.0)).deliveries
    assert taken.id == record.id  # ...and another owner claims the record
    await apoll_until(lambda: engine.pending == 0, what="the lost record forgotten")
    assert _lost() == lost + 1
    webhook.release.set()  # the attempt in flight succeeds; its settle is refused
    await apoll_until(lambda: not engine._workers, what="the attempt's end")
    await harness.wait_settled(1)
    assert _delivered() == delivered
    assert [d.id for d in await harness.pending()] == [record.id]
    assert await store.settle("thief", done=[record.id]) == []


async def test_a_record_leased_by_a_dead_owner_is_delivered_when_its_lease_ends(
    harness: Harness, webhook: Webhook, store: Any, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/ok"))
    [record] = await harness.add("b/r/t")
    harness.store_clock.clock = clock  # type: ignore[union-attr]
    await store.claim_deliveries("dead-process", "b/r/t", 10, 45.0)
    await harness.engine(clock=clock)
    # the engine's timer waits for the lease's end, not for a hint or a sweep
    assert await clock.next_deadline() == clock.now + 45
    assert webhook.hits == []
    clock.advance(45)
    [hit] = await webhook.wait_hits("/ok", 1)
    assert hit.headers["X-Eventyard-Event-Id"] == record.event_id
    await harness.wait_settled()
