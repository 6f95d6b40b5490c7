"""The worker's batching against a real server: acks ten per DeleteMessageBatch, sent
before a graceful stop returns, held (and extended) while they wait, redelivered when the
delete fails; receives that fill the slots without exceeding them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from eventyard import Event
from eventyard.sdk import worker as worker_module
from eventyard.sdk.client import AsyncClient
from eventyard.sdk.consumer import Consumer
from eventyard.testing import ServerProcess
from tests.helpers import apoll_until
from tests.sdk.consumer.conftest import ObservedClient, queue_counts, running


def _order(n: int) -> Event:
    return Event(source="shop", detail_type="OrderPlaced", detail={"order": n})


class RecordingClient(AsyncClient):
    """Notes the size of every DeleteMessageBatch call; can break the first one."""

    def __init__(self, url: str, *, break_first: bool = False) -> None:
        super().__init__(url, timeout=10.0)
        self.batches: list[int] = []
        self.refused: list[str] = []
        self.break_next = break_first

    async def delete_messages(self, queue: str, receipts: Sequence[str]) -> list[str]:
        self.batches.append(len(receipts))
        if not self.break_next:
            return await super().delete_messages(queue, receipts)
        self.break_next = False
        # a receipt with a stray first character is no receipt: the server refuses it
        broken = {"x" + receipt: receipt for receipt in receipts}
        failed = await super().delete_messages(queue, list(broken))
        self.refused = [broken[receipt] for receipt in failed]
        return self.refused


async def _wait_for_counts(client: AsyncClient, queue: str, counts: tuple[int, int]) -> None:
    async def reached() -> bool:
        return await queue_counts(client, queue) == counts

    await apoll_until(reached, what=f"{queue} with {counts} messages")


async def test_acks_go_ten_per_request_and_the_rest_before_a_graceful_stop_returns(
    server: ServerProcess, bus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "_ACK_LINGER", 60.0)  # only full batches, or the stop
    consumer = Consumer(bus, name=bus, poll_wait=1)
    handled: list[int] = []

    @consumer.on({"source": ["shop"]})
    async def placed(event: Event) -> None:
        handled.append(event.detail["order"])

    queue = consumer.handler(placed).queue
    async with RecordingClient(server.url) as client:
        async with running(consumer, client):
            await client.put_events([_order(n) for n in range(25)], bus=bus)
            await apoll_until(lambda: len(handled) == 25)
            # twenty deleted in two requests; five acknowledged, held for their batch
            await _wait_for_counts(client, queue, (0, 5))
            assert client.batches == [10, 10]
        assert client.batches == [10, 10, 5]
        assert await queue_counts(client, queue) == (0, 0)
    assert sorted(handled) == list(range(25))


async def test_a_message_whose_batched_delete_failed_comes_back_and_is_handled_again(
    server: ServerProcess, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1, visibility_timeout=2)
    calls: list[str | None] = []

    @consumer.on({"source": ["shop"]})
    async def placed(event: Event) -> None:
        calls.append(event.id)

    queue = consumer.handler(placed).queue
    async with RecordingClient(server.url, break_first=True) as client:
        with capture_logs() as logs:
            async with running(consumer, client):
                [event_id] = await client.put_events(_order(1), bus=bus)
                await apoll_until(lambda: len(calls) == 2)  # after its visibility timeout
                await _wait_for_counts(client, queue, (0, 0))
        assert len(client.refused) == 1  # the server did refuse the first delete
    assert calls == [event_id, event_id]
    [failure] = [e for e in logs if e["event"].startswith("acknowledging failed")]
    assert failure["log_level"] == "error"
    assert failure["queue"] == queue and len(failure["message_ids"]) == 1


async def test_an_ack_waiting_for_its_batch_keeps_its_lease(
    client: AsyncClient, bus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "_ACK_LINGER", 3.5)
    consumer = Consumer(bus, name=bus, poll_wait=1, visibility_timeout=2)
    calls: list[float] = []

    @consumer.on({"source": ["shop"]})
    async def placed(event: Event) -> None:
        calls.append(time.monotonic())

    queue = consumer.handler(placed).queue
    async with running(consumer, client):
        await client.put_events(_order(1), bus=bus)
        await apoll_until(lambda: len(calls) == 1)
        await asyncio.sleep(2.5)  # past the visibility timeout, before the ack is sent
        assert await queue_counts(client, queue) == (0, 1)
        await _wait_for_counts(client, queue, (0, 0))
    assert len(calls) == 1  # the lease was extended while the ack waited: no redelivery


async def test_several_receives_fill_every_slot_and_never_more(
    client: AsyncClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=1)
    running_now = 0
    peak = 0
    done: list[int] = []

    @consumer.on({"source": ["shop"]})
    async def slow(event: Event) -> None:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        await asyncio.sleep(0.3)
        running_now -= 1
        done.append(event.detail["order"])

    async with running(consumer, client, concurrency=25):
        await client.put_events([_order(n) for n in range(60)], bus=bus)
        await apoll_until(lambda: len(done) == 60)
    assert peak == 25
    assert sorted(done) == list(range(60))
    assert await queue_counts(client, consumer.handler(slow).queue) == (0, 0)


async def test_a_long_poll_on_an_idle_queue_keeps_no_slots_from_a_busy_one(
    client: ObservedClient, bus: str
) -> None:
    consumer = Consumer(bus, name=bus, poll_wait=3)
    done: list[float] = []

    @consumer.on({"detail-type": ["Nothing"]})
    async def idle(event: Event) -> None:
        raise AssertionError("no event matches")

    @consumer.on({"detail-type": ["OrderPlaced"]})
    async def busy(event: Event) -> None:
        done.append(time.monotonic())

    async with running(consumer, client, concurrency=2):
        queues = [consumer.handler(idle).queue, consumer.handler(busy).queue]
        await apoll_until(lambda: all(map(client.receiving, queues)), what="both long polls")
        sent = time.monotonic()
        await client.put_events([_order(n) for n in range(6)], bus=bus)
        await apoll_until(lambda: len(done) == 6, timeout=5)
    assert max(done) - sent < 1.5  # not held until the idle queue's poll ends (3 s)
