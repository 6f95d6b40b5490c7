"""The worker against a real server: ack, retries, Retry, Drop, dead letters, concurrency."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pydantic
from structlog.testing import capture_logs

from eventyard import Event
from eventyard.errors import ResourceNotFound
from eventyard.sdk.client import AsyncClient
from eventyard.sdk.consumer import Consumer, Drop, Retry
from eventyard.testing import ServerProcess
from tests.helpers import apoll_until
from tests.sdk.consumer.clock import ManualClock
from tests.sdk.consumer.conftest import ObservedClient, queue_counts, running


def _order(n: int, amount: float = 10.0) -> Event:
    return Event(source="shop", detail_type="OrderPlaced", detail={"order": n, "amount": amount})


async def test_returning_acknowledges_the_event_and_deletes_its_message(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1)
    got: list[Event] = []

    @consumer.on({"detail-type": ["OrderPlaced"]})
    async def placed(event: Event) -> None:
        got.append(event)

    async with running(consumer, client):
        [event_id] = await client.put_events(_order(1), bus=bus)
        await apoll_until(lambda: len(got) == 1)
    assert got[0].id == event_id
    assert got[0].detail == {"order": 1, "amount": 10.0}
    assert got[0].bus == bus
    assert await queue_counts(client, consumer.handler(placed).queue) == (0, 0)


async def test_only_events_matching_a_handlers_pattern_reach_it(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1)
    big: list[float] = []
    small: list[float] = []

    @consumer.on({"detail": {"amount": [{"numeric": [">=", 100]}]}})
    async def large(event: Event) -> None:
        big.append(event.detail["amount"])

    @consumer.on({"detail": {"amount": [{"numeric": ["<", 100]}]}})
    def little(event: Event) -> None:
        small.append(event.detail["amount"])

    async with running(consumer, client):
        await client.put_events([_order(1, 5), _order(2, 500), _order(3, 99.5)], bus=bus)
        await apoll_until(lambda: len(big) + len(small) == 3)
    assert big == [500]
    assert sorted(small) == [5, 99.5]


async def test_an_exception_retries_the_event_after_a_backoff(
    client: AsyncClient, bus: str
) -> None:
    clock = ManualClock()
    consumer = Consumer(bus, name=bus, poll_wait=1, retry_delay=0.4)
    attempts: list[float] = []

    @consumer.on({"source": ["shop"]})
    async def flaky(event: Event) -> None:
        attempts.append(clock.now())
        if len(attempts) == 1:
            raise RuntimeError("database is down")

    async with running(consumer, client, clock=clock):
        await client.put_events(_order(1), bus=bus)
        backoff = await clock.next_sleep(shorter_than=1)  # the retry timer, not the leases'
        assert len(attempts) == 1
        clock.advance(backoff)
        await apoll_until(lambda: len(attempts) == 2)
    # the first backoff is retry_delay jittered into [0.5, 1] of it: 0.2 to 0.4 s
    assert 0.19 <= attempts[1] - attempts[0] < 2
    queue = consumer.handler(flaky)
    assert await queue_counts(client, queue.queue) == (0, 0)
    assert await queue_counts(client, queue.dead_letter_queue) == (0, 0)


async def test_raise_retry_schedules_the_next_attempt_after_its_delay(
    client: AsyncClient, bus: str
) -> None:
    clock = ManualClock()
    # poll_wait above the delay: the worker times the retry (on the clock), not the queue
    consumer = Consumer(bus, name=bus, poll_wait=2, retry_delay=0)
    attempts: list[float] = []

    @consumer.on({"source": ["shop"]})
    def later(event: Event) -> None:
        attempts.append(clock.now())
        if len(attempts) == 1:
            raise Retry(delay=1.2, reason="stock not counted yet")

    async with running(consumer, client, clock=clock):
        await client.put_events(_order(1), bus=bus)
        assert await clock.next_sleep(shorter_than=2) == 1.2
        clock.advance(1.1)
        assert len(attempts) == 1  # not due yet
        clock.advance(0.1)
        await apoll_until(lambda: len(attempts) == 2)
    assert 1.19 <= attempts[1] - attempts[0] < 3


async def test_raise_drop_deletes_the_message_without_retrying(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, retry_delay=0)
    calls: list[str | None] = []

    @consumer.on({"source": ["shop"]})
    async def picky(event: Event) -> None:
        calls.append(event.id)
        raise Drop("test orders are ignored")

    handler = consumer.handler(picky)

    async def deleted() -> bool:
        return await queue_counts(client, handler.queue) == (0, 0)

    async with running(consumer, client):
        await client.put_events(_order(1), bus=bus)
        await apoll_until(lambda: len(calls) == 1)
        # once the message is deleted no retry can follow (a retry would keep it queued)
        await apoll_until(deleted, what="the dropped message deleted")
    assert len(calls) == 1
    assert await queue_counts(client, handler.dead_letter_queue) == (0, 0)


async def test_after_max_attempts_the_event_goes_to_the_dlq_with_the_reason(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, retry_delay=0)
    calls: list[int] = []

    @consumer.on({"source": ["shop"]}, max_attempts=3)
    async def broken(event: Event) -> None:
        calls.append(1)
        raise ValueError("no such warehouse")

    handler = consumer.handler(broken)
    async with running(consumer, client):
        [event_id] = await client.put_events(_order(7), bus=bus)
        await apoll_until(lambda: len(calls) == 3)
        dead = await client.receive_messages(handler.dead_letter_queue, wait=5)
    assert len(calls) == 3
    [message] = dead
    assert message.event().id == event_id
    assert message.attributes == {
        "ERROR_CODE": "HANDLER_FAILED",
        "ERROR_MESSAGE": "ValueError: no such warehouse",
        "HANDLER": "broken",
        "ATTEMPTS": "3",
    }
    assert await queue_counts(client, handler.queue) == (0, 0)


async def test_retry_on_the_last_attempt_dead_letters_too(client: AsyncClient, bus: str) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, max_attempts=2)
    calls: list[int] = []

    @consumer.on({"source": ["shop"]})
    async def patient(event: Event) -> None:
        calls.append(1)
        raise Retry(delay=0, reason="still waiting")

    handler = consumer.handler(patient)
    async with running(consumer, client):
        await client.put_events(_order(1), bus=bus)
        dead = await client.receive_messages(handler.dead_letter_queue, wait=5)
    assert len(calls) == 2
    assert dead[0].attributes["ERROR_MESSAGE"] == "still waiting"


async def test_a_message_that_is_no_event_is_dead_lettered_at_once(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1)
    calls: list[Event] = []

    @consumer.on({"source": ["shop"]})
    async def placed(event: Event) -> None:
        calls.append(event)

    handler = consumer.handler(placed)
    async with running(consumer, client):
        await client.send_message(handler.queue, "hello, not an event")
        [dead] = await client.receive_messages(handler.dead_letter_queue, wait=5)
    assert calls == []
    assert dead.body == "hello, not an event"
    assert dead.attributes["ERROR_CODE"] == "INVALID_EVENT"
    assert dead.attributes["ERROR_MESSAGE"].startswith("not an event: ")


class Order(pydantic.BaseModel):
    order: int
    amount: float


async def test_a_detail_that_fails_the_pydantic_model_is_dead_lettered_at_once(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, retry_delay=0)
    orders: list[Order] = []

    @consumer.on({"source": ["shop"]})
    async def typed(order: Order) -> None:
        orders.append(order)

    handler = consumer.handler(typed)
    bad = Event(source="shop", detail_type="OrderPlaced", detail={"order": "seven"})
    async with running(consumer, client):
        await client.put_events([_order(1, 12.5), bad], bus=bus)
        dead = await client.receive_messages(handler.dead_letter_queue, wait=5)
        await apoll_until(lambda: len(orders) == 1)
    assert orders == [Order(order=1, amount=12.5)]
    [message] = dead
    assert message.event().detail == {"order": "seven"}
    assert message.attributes["ERROR_CODE"] == "INVALID_DETAIL"
    assert message.attributes["ATTEMPTS"] == "1"
    reason = message.attributes["ERROR_MESSAGE"]
    assert reason.startswith("detail is not a valid Order: ")
    assert "order: Input should be a valid integer" in reason
    assert "amount: Field required" in reason


async def test_the_queue_redrive_policy_dead_letters_events_no_worker_settled(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, max_attempts=2)

    @consumer.on({"source": ["shop"]})
    async def crashy(event: Event) -> None:
        raise AssertionError("never called: this test plays a worker dying mid-handler")

    handler = consumer.handler(crashy)
    await consumer.setup(client)
    await client.put_events(_order(1), bus=bus)
    for _ in range(2):  # received, then the worker "dies": visible again at once
        [message] = await client.receive_messages(handler.queue, wait=5)
        await client.change_visibility(handler.queue, message.receipt, 0)
    assert await client.receive_messages(handler.queue, wait=0) == []
    [dead] = await client.receive_messages(handler.dead_letter_queue, wait=5)
    assert dead.event().detail["order"] == 1


async def test_setup_warns_once_per_new_rule_that_earlier_events_never_reach_it(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1)

    @consumer.on({"detail-type": ["OrderPlaced"]})
    async def placed(event: Event) -> None:
        pass

    @consumer.on({"detail-type": ["OrderShipped"]})
    async def shipped(event: Event) -> None:
        pass

    with capture_logs() as first:
        await consumer.setup(client)
    with capture_logs() as again:
        await consumer.setup(client)
    created = [e for e in first if e["event"].startswith("rule created")]
    assert sorted(e["rule"] for e in created) == sorted(
        consumer.handler(h).rule for h in (placed, shipped)
    )
    assert all(e["log_level"] == "warning" and "never reach it" in e["event"] for e in created)
    assert not [e for e in again if e["event"].startswith("rule created")]


async def test_setup_is_idempotent_and_converges_on_a_changed_max_attempts(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, max_attempts=4, visibility_timeout=12)

    @consumer.on({"detail-type": ["OrderPlaced"]})
    async def placed(event: Event) -> None:
        pass

    handler = consumer.handler(placed)
    await consumer.setup(client)
    await consumer.setup(client)
    attributes = await client.get_queue_attributes(handler.queue)
    assert attributes["VisibilityTimeout"] == "12"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": await client.queue_arn(handler.dead_letter_queue),
        "maxReceiveCount": 4,
    }
    targets = await client.list_targets(handler.rule, bus=bus)
    assert [t["Arn"] for t in targets] == [await client.queue_arn(handler.queue)]

    handler.max_attempts = 9
    await consumer.setup(client)
    attributes = await client.get_queue_attributes(handler.queue)
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 9


async def test_handlers_run_with_bounded_concurrency_and_sync_ones_in_threads(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1)
    lock = threading.Lock()
    running_now = 0
    peak = 0
    threads: set[int] = set()
    done: list[int] = []

    @consumer.on({"source": ["shop"]})
    def slow(event: Event) -> None:
        nonlocal running_now, peak
        with lock:
            running_now += 1
            peak = max(peak, running_now)
            threads.add(threading.get_ident())
        time.sleep(0.2)
        with lock:
            running_now -= 1
            done.append(event.detail["order"])

    async with running(consumer, client, concurrency=3):
        await client.put_events([_order(n) for n in range(9)], bus=bus)
        await apoll_until(lambda: len(done) == 9)
    assert peak == 3
    assert threading.get_ident() not in threads
    assert sorted(done) == list(range(9))


async def test_a_slow_handler_keeps_its_event_past_the_visibility_timeout(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, visibility_timeout=3)
    calls: list[float] = []

    @consumer.on({"source": ["shop"]})
    async def slow(event: Event) -> None:
        calls.append(time.monotonic())
        await asyncio.sleep(4)

    async with running(consumer, client, concurrency=4):
        await client.put_events(_order(1), bus=bus)
        await apoll_until(lambda: len(calls) == 1)
        await asyncio.sleep(4.1)
    assert len(calls) == 1  # the lease was extended: no second delivery
    assert await queue_counts(client, consumer.handler(slow).queue) == (0, 0)


async def test_run_without_a_client_opens_its_own_and_sets_up(
    server: ServerProcess, client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, url=server.url)
    got: list[Event] = []

    @consumer.on({"source": ["shop"]})
    async def placed(event: Event) -> None:
        got.append(event)

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop=stop))
    rule = consumer.handler(placed).rule

    async def set_up() -> bool:  # run() sets up first: the bus and rule appear
        try:
            return bool(await client.list_targets(rule, bus=bus))
        except ResourceNotFound:
            return False

    await apoll_until(set_up, what="run() set the consumer up")
    await client.put_events(_order(3), bus=bus)
    await apoll_until(lambda: len(got) == 1)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_a_stop_lets_the_receive_in_flight_finish_and_handles_what_it_brings(
    client: ObservedClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=3)
    got: list[Event] = []

    @consumer.on({"source": ["shop"]})
    async def placed(event: Event) -> None:
        got.append(event)

    handler = consumer.handler(placed)
    await consumer.setup(client)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop=stop, client=client, setup=False))
    await apoll_until(lambda: client.receiving(handler.queue), what="the worker's long poll")
    stop.set()
    await client.put_events(_order(1), bus=bus)
    await asyncio.wait_for(task, 10)
    # the poll in flight took the event and the worker handled it before stopping:
    # never hidden in a receive nobody reads
    assert len(got) == 1
    assert await queue_counts(client, handler.queue) == (0, 0)


async def test_retries_the_worker_is_timing_go_back_to_the_queue_on_stop(
    client: ObservedClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=5)
    calls: list[int] = []
    hold = asyncio.Event()

    @consumer.on({"source": ["shop"]})
    async def later(event: Event) -> None:
        calls.append(event.detail["order"])
        if event.detail["order"] == 1:
            raise Retry(delay=3)  # under poll_wait: the worker times it
        await hold.wait()

    handler = consumer.handler(later)
    # One slot: while the second event's handler holds it, no receive is in flight, so
    # none can take the first event back between its release and the end of its delay.
    async with running(consumer, client, concurrency=1) as stop:
        await client.put_events(_order(1), bus=bus)
        await apoll_until(lambda: calls == [1])
        await client.put_events(_order(2), bus=bus)
        await apoll_until(lambda: calls == [1, 2])
        assert not client.receiving(handler.queue)
        stop.set()
        # the stop releases the first event, keeping the rest of its delay hidden
        await apoll_until(lambda: client.visibility_changes, what="the release on stop")
        hold.set()
    # stopped within the delay: the message is hidden for the rest of it, not lost
    assert await queue_counts(client, handler.queue) == (0, 1)
    assert calls == [1, 2]
    [message] = await client.receive_messages(handler.queue, wait=5)
    assert message.receive_count == 2


class _ReleaseWatcher(ObservedClient):
    """Notes, at each visibility change, whether a receive of that queue was in flight."""

    def __init__(self, url: str, **options: object) -> None:
        super().__init__(url, **options)
        self.released_while_receiving: list[bool] = []

    async def change_visibility(self, queue: str, receipt: str, timeout: int) -> None:
        self.released_while_receiving.append(self.receiving(queue))
        await super().change_visibility(queue, receipt, timeout)


async def test_a_retry_due_at_stop_is_released_only_after_the_last_receive_returned(
    server: ServerProcess, bus: str
) -> None:
    clock = ManualClock()
    # the retry (0.5 s) is timed by the worker, on the clock; the long poll lasts 1 s
    consumer = Consumer(bus, name=bus, poll_wait=1, retry_delay=0)
    attempts: list[float] = []

    @consumer.on({"source": ["shop"]})
    def later(event: Event) -> None:
        attempts.append(clock.now())
        raise Retry(delay=0.5, reason="not yet")

    handler = consumer.handler(later)
    async with _ReleaseWatcher(server.url, timeout=10.0) as client:
        async with running(consumer, client, clock=clock) as stop:
            await client.put_events(_order(1), bus=bus)
            assert await clock.next_sleep(shorter_than=1) == 0.5
            await apoll_until(lambda: client.receiving(handler.queue), what="the next long poll")
            # due and stopping at once: released now, the long poll in flight would take
            # the message straight back into this stopping worker
            clock.advance(0.5)
            stop.set()
        assert client.released_while_receiving == [False]
        assert attempts == [0.0]  # the stopping worker did not handle it again
        # the next worker finds it at once: visible (a receive with no wait gets it; the
        # queue's counts are approximate on JetStream, which counts a released message
        # as in flight until it is received again), and received once before: this one
        [message] = await client.receive_messages(handler.queue, wait=0)
        assert message.receive_count == 2
