"""A typing example of the SDK: ``mypy --strict`` must accept it (tests/sdk/test_typing.py).

It is a small but realistic producer and consumer, written the way users write them,
with both twins. It is type-checked, not run.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from eventyard import Event
from eventyard.errors import PutEventsFailed, ResourceAlreadyExists, ServiceError, TransportError
from eventyard.sdk.client import AsyncClient, Client, Message


def set_up(client: Client) -> str:
    """An ``orders`` bus whose large orders go to the ``big-orders`` queue."""
    with contextlib.suppress(ResourceAlreadyExists):
        client.create_bus("orders", description="the web shop's orders")
    client.create_queue("big-orders", attributes={"VisibilityTimeout": "60"})
    queue_arn: str = client.queue_arn("big-orders")
    rule_arn: str = client.put_rule(
        "big-orders",
        {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">=", 100]}]}},
        bus="orders",
    )
    client.put_targets("big-orders", [{"Id": "queue", "Arn": queue_arn}], bus="orders")
    return rule_arn


def publish(client: Client, totals: list[int]) -> list[str]:
    """One OrderPlaced event per total; the ids of the accepted ones."""
    orders = [
        Event(source="shop", detail_type="OrderPlaced", detail={"total": total}) for total in totals
    ]
    try:
        return client.put_events(orders, bus="orders")
    except PutEventsFailed as failed:
        for index, code, message in failed.failures:
            print(f"order {index} rejected: {code}: {message}")
        raise


async def consume(url: str) -> int:
    """Handle the big orders waiting in the queue; how many were handled."""
    handled = 0
    async with AsyncClient(url, timeout=10.0, retries=5) as client:
        messages: list[Message] = await client.receive_messages("big-orders", wait=5)
        for message in messages:
            event: Event = message.event()
            detail: dict[str, Any] = event.detail
            if message.receive_count > 3:
                await client.change_visibility("big-orders", message.receipt, 0)
                continue
            print(event.id, detail["total"], message.sent, message.first_receive)
            await client.delete_message("big-orders", message.receipt)
            handled += 1
        rules: list[dict[str, Any]] = await client.list_rules(bus="orders", prefix="big")
        print([rule["Name"] for rule in rules])
    return handled


def main() -> None:
    with Client() as client:
        try:
            set_up(client)
            ids: list[str] = publish(client, [20, 150, 990])
            matched: bool = client.test_pattern({"source": ["shop"]}, '{"source": "shop"}')
            queues: list[str] = client.list_queues(prefix="big")
            attributes: dict[str, str] = client.get_queue_attributes("big-orders")
            print(ids, matched, queues, attributes["ApproximateNumberOfMessages"])
        except ServiceError as error:
            print(error.code, error.status, error.message)
        except TransportError as error:
            print(f"eventyard unreachable: {error}")
        handled: int = asyncio.run(consume(client.url))
        print(handled)


if __name__ == "__main__":
    main()


def replay_last_hour(client: Client, now: float) -> float:
    """Archive the orders, replay the last hour to one rule; how far it got."""
    with contextlib.suppress(ResourceAlreadyExists):
        client.create_archive("orders", bus="orders", pattern={"source": ["shop"]})
    count: int = client.describe_archive("orders").event_count
    replay = client.start_replay(
        f"again-{count}", archive="orders", start=now - 3600, end=now, rules=["big-orders"]
    )
    while not replay.done:
        replay = client.describe_replay(replay.name)
    return replay.progress


async def cancel_replays(client: AsyncClient) -> list[str]:
    """Cancel every running replay; the states the server answered."""
    return [
        await client.cancel_replay(r.name)
        for r in await client.list_replays()
        if r.state == "RUNNING"
    ]
