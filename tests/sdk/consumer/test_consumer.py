"""Consumer without a server: the decorator, handler signatures, names, backoff, loading."""

from __future__ import annotations

import asyncio

import pydantic
import pytest

from eventyard import Event
from eventyard.errors import EventyardError, InvalidEventPattern
from eventyard.sdk.consumer import (
    DEAD_LETTER_SUFFIX,
    Consumer,
    Drop,
    Retry,
    load_consumer,
    resource_name,
)

EVENT = Event(source="shop", detail_type="OrderPlaced", detail={"order": 1}, id="e-1")


class Order(pydantic.BaseModel):
    order: int


def test_the_decorated_functions_stay_plain_callables() -> None:
    consumer = Consumer("orders")

    def plain(event: Event) -> str:
        return f"sync {event.detail['order']}"

    async def coroutine(event: Event) -> str:
        return f"async {event.detail['order']}"

    async def typed(order: Order) -> int:
        return order.order

    assert consumer.on({"source": ["shop"]})(plain) is plain
    assert consumer.on({"source": ["shop"]})(coroutine) is coroutine
    assert consumer.on({"source": ["shop"]})(typed) is typed
    assert plain(EVENT) == "sync 1"
    assert asyncio.run(coroutine(EVENT)) == "async 1"
    assert asyncio.run(typed(Order(order=3))) == 3
    assert [h.name for h in consumer.handlers] == ["plain", "coroutine", "typed"]
    assert consumer.handler(typed).model is Order
    assert consumer.handler("plain").model is None


def test_each_handler_gets_a_stable_queue_rule_and_dlq_name() -> None:
    consumer = Consumer("orders", name="warehouse")

    @consumer.on('{"detail-type": ["OrderPlaced"]}', name="reserve.stock")
    def reserve(event: Event) -> None:
        pass

    handler = consumer.handler("reserve.stock")
    assert handler.queue == handler.rule == "warehouse-reserve-stock"
    assert handler.dead_letter_queue == "warehouse-reserve-stock" + DEAD_LETTER_SUFFIX
    assert handler.pattern == '{"detail-type": ["OrderPlaced"]}'
    assert handler.max_attempts == 5


def test_a_consumer_defaults_its_name_to_the_bus() -> None:
    consumer = Consumer("orders")

    @consumer.on({"source": ["shop"]})
    def placed(event: Event) -> None:
        pass

    assert consumer.handler(placed).queue == "orders-placed"


def test_long_names_are_cut_to_64_characters_and_stay_unique() -> None:
    a = resource_name("c" * 50, "handler_number_one_with_a_long_name")
    b = resource_name("c" * 50, "handler_number_two_with_a_long_name")
    assert len(a) == len(b) == 64
    assert a != b
    assert a == resource_name("c" * 50, "handler_number_one_with_a_long_name")
    assert len(a + DEAD_LETTER_SUFFIX) <= 80


def test_a_handler_must_take_exactly_one_argument() -> None:
    consumer = Consumer()
    with pytest.raises(TypeError, match="exactly one argument"):
        consumer.on({"source": ["a"]})(lambda: None)
    with pytest.raises(TypeError, match="exactly one argument"):
        consumer.on({"source": ["a"]})(lambda a, b: None)

    def with_default(event: Event, retries: int = 3) -> None:
        pass

    consumer.on({"source": ["a"]})(with_default)


def test_a_handler_annotated_with_something_else_is_refused() -> None:
    consumer = Consumer()

    def wrong(event: dict) -> None:  # type: ignore[type-arg]
        pass

    with pytest.raises(TypeError, match=r"eventyard\.Event or a pydantic model"):
        consumer.on({"source": ["a"]})(wrong)


def test_an_invalid_pattern_fails_at_decoration_with_awss_message() -> None:
    with pytest.raises(InvalidEventPattern, match="Event pattern is not valid"):
        Consumer().on({"source": "not-a-list"})


def test_two_handlers_with_the_same_name_are_refused() -> None:
    consumer = Consumer()

    @consumer.on({"source": ["a"]})
    def handle(event: Event) -> None:
        pass

    with pytest.raises(ValueError, match="already has a handler named 'handle'"):
        consumer.on({"source": ["b"]}, name="handle")(lambda event: None)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Consumer(max_attempts=0)
    with pytest.raises(ValueError, match="visibility_timeout"):
        Consumer(visibility_timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        Consumer().on({"source": ["a"]}, max_attempts=0)
    with pytest.raises(ValueError, match="delay"):
        Retry(delay=-1)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    consumer = Consumer(retry_delay=1.0, max_retry_delay=10.0)
    for attempt, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 9: (5, 10)}.items():
        for _ in range(50):
            assert low <= consumer.backoff(attempt) <= high


def test_retry_and_drop_are_control_flow_not_eventyard_errors() -> None:
    assert not issubclass(Retry, EventyardError)
    assert not issubclass(Drop, EventyardError)
    assert Retry(delay=2.5).delay == 2.5
    assert str(Drop("duplicate")) == "duplicate"


async def test_a_forward_referenced_model_is_resolved_when_first_needed() -> None:
    consumer = Consumer()

    @consumer.on({"source": ["a"]})
    async def later(order: LateOrder) -> None:
        pass

    assert consumer.handler(later).model is LateOrder


class LateOrder(pydantic.BaseModel):
    order: int


def test_load_consumer_finds_the_consumer_or_says_what_is_wrong() -> None:
    consumer = load_consumer("tests.sdk.consumer.slow_app:consumer")
    assert isinstance(consumer, Consumer)
    with pytest.raises(EventyardError, match="expected module:attribute"):
        load_consumer("tests.sdk.consumer.slow_app")
    with pytest.raises(EventyardError, match="cannot import"):
        load_consumer("tests.sdk.consumer.no_such_module:consumer")
    with pytest.raises(EventyardError, match="has no attribute"):
        load_consumer("tests.sdk.consumer.slow_app:nothing")
    with pytest.raises(EventyardError, match="not an eventyard Consumer"):
        load_consumer("tests.sdk.consumer.slow_app:slow")
