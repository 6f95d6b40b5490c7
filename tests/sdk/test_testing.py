"""eventyard.testing.TestRouter: a consumer's handlers in memory, settled like the worker."""

from __future__ import annotations

import json

import pydantic
import pytest

from eventyard import Event
from eventyard.errors import PutEventsFailed
from eventyard.sdk.consumer import Consumer, Drop, Retry
from eventyard.testing import TestRouter


class Order(pydantic.BaseModel):
    order: int
    amount: float


def _order(n: int, amount: float = 10.0, kind: str = "OrderPlaced") -> Event:
    return Event(source="shop", detail_type=kind, detail={"order": n, "amount": amount})


def _shop() -> tuple[Consumer, dict[str, list[object]]]:
    consumer = Consumer("orders", name="shop", max_attempts=3)
    seen: dict[str, list[object]] = {"large": [], "typed": [], "flaky": [], "picky": []}

    @consumer.on({"detail": {"amount": [{"numeric": [">=", 100]}]}})
    async def large(event: Event) -> None:
        seen["large"].append(event.detail["order"])

    @consumer.on({"detail-type": ["OrderPlaced"]})
    def typed(order: Order) -> None:
        seen["typed"].append(order)

    @consumer.on({"detail-type": ["Flaky"]})
    async def flaky(event: Event) -> None:
        seen["flaky"].append(event.id)
        if event.detail["order"] == 1 and len(seen["flaky"]) == 1:
            raise Retry(delay=30, reason="not yet")
        if event.detail["order"] == 2:
            raise RuntimeError("always broken")

    @consumer.on({"detail-type": ["Picky"]})
    def picky(event: Event) -> None:
        seen["picky"].append(event.id)
        raise Drop("not for us")

    return consumer, seen


async def test_a_published_event_reaches_exactly_the_handlers_whose_patterns_match() -> None:
    consumer, seen = _shop()
    router = TestRouter(consumer)
    deliveries = await router.publish(_order(1, 500), _order(2, 5))
    assert [(d.handler, d.event.detail["order"]) for d in deliveries] == [
        ("large", 1),
        ("typed", 1),
        ("typed", 2),
    ]
    assert seen["large"] == [1]
    assert seen["typed"] == [Order(order=1, amount=500), Order(order=2, amount=5)]
    delivered = router.delivered("large")
    assert [e.detail for e in delivered] == [{"order": 1, "amount": 500}]
    assert delivered[0].bus == "orders"
    assert delivered[0].id is not None
    assert delivered[0].account == "000000000000"


async def test_exceptions_and_retry_are_retried_until_max_attempts_then_dead_lettered() -> None:
    consumer = _shop()[0]
    router = TestRouter(consumer)
    [retried] = await router.publish(_order(1, kind="Flaky"))
    assert retried.outcome == "acked"
    assert [a.kind for a in retried.attempts] == ["retry", "ack"]
    assert retried.attempts[0].delay == 30  # recorded, not waited
    [broken] = await router.publish(_order(2, kind="Flaky"))
    assert broken.outcome == "dead-lettered"
    assert len(broken.attempts) == 3
    assert isinstance(broken.attempts[-1].error, RuntimeError)
    [(event, reason)] = router.dead_lettered(consumer.handler("flaky").func)
    assert event.detail["order"] == 2
    assert reason == "RuntimeError: always broken"
    assert len(router.delivered("flaky")) == 1


async def test_drop_acknowledges_without_retrying() -> None:
    consumer, seen = _shop()
    router = TestRouter(consumer)
    [dropped] = await router.publish(_order(1, kind="Picky"))
    assert dropped.outcome == "dropped"
    assert dropped.reason == "not for us"
    assert len(seen["picky"]) == 1
    assert [e.detail["order"] for e in router.dropped("picky")] == [1]
    assert router.delivered("picky") == []
    assert router.dead_lettered("picky") == []


async def test_a_detail_the_model_rejects_is_dead_lettered_with_the_reason() -> None:
    consumer, seen = _shop()
    router = TestRouter(consumer)
    await router.publish(Event(source="shop", detail_type="OrderPlaced", detail={"order": 1}))
    assert seen["typed"] == []
    [(event, reason)] = router.dead_lettered("typed")
    assert event.detail == {"order": 1}
    assert reason == "detail is not a valid Order: amount: Field required"


async def test_putevents_entries_are_validated_like_the_server_does() -> None:
    consumer = _shop()[0]
    router = TestRouter(consumer)
    entry = {
        "Source": "shop",
        "DetailType": "OrderPlaced",
        "Detail": json.dumps({"order": 4, "amount": 1}),
    }
    [delivery] = await router.publish(entry)
    assert delivery.handler == "typed"
    with pytest.raises(PutEventsFailed) as failed:
        await router.publish({"Source": "shop", "DetailType": "X", "Detail": "[1]"})
    assert failed.value.failures == [(0, "MalformedDetail", "Detail is malformed.")]


async def test_events_on_another_bus_reach_no_handler() -> None:
    consumer = _shop()[0]
    router = TestRouter(consumer)
    other = Event(
        source="shop", detail_type="OrderPlaced", detail={"order": 1, "amount": 1e6}, bus="other"
    )
    assert await router.publish(other) == []
    assert router.deliveries == []


def test_publish_sync_runs_the_handlers_in_a_synchronous_test() -> None:
    consumer = _shop()[0]
    router = TestRouter(consumer)
    router.publish_sync(_order(9, 100))
    assert [e.detail["order"] for e in router.delivered("large")] == [9]
    router.clear()
    assert router.deliveries == []


async def test_publish_sync_inside_an_event_loop_says_to_await_publish() -> None:
    router = TestRouter(_shop()[0])
    with pytest.raises(RuntimeError, match=r"await router\.publish"):
        router.publish_sync(_order(1))


def test_the_router_is_not_collected_as_a_test_class() -> None:
    assert TestRouter.__test__ is False  # type: ignore[attr-defined]
