"""Long polling of :class:`QueuesApi`, in process: no lost wake-ups, no busy loops."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.server.api.sqs import QueuesApi
from eventyard.server.api.sqs_requests import SqsError
from eventyard.server.config import Settings
from eventyard.server.signals import QueueSignals
from eventyard.server.store import QueueMessage, Store, open_store


class Hooks:
    def __init__(self) -> None:
        self.signals = QueueSignals()
        self.changes: list[tuple[str, bool]] = []

    def queue_changed(self, name: str, doc: Any) -> None:
        self.changes.append((name, doc is not None))

    def resource_changed(
        self, account: str, resource_type: str, name: str, arn: str, change: str, **more: Any
    ) -> None:
        pass


class CountingStore:
    """Passes everything through, counting receives; ``on_receive`` runs after each."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.receives = 0
        self.on_receive: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def queue_receive(self, *args: Any, **kwargs: Any) -> list[QueueMessage]:
        got = await self.inner.queue_receive(*args, **kwargs)
        self.receives += 1
        if self.on_receive is not None:
            hook, self.on_receive = self.on_receive, None
            await hook()
        return got


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    inner = open_store(str(tmp_path))
    await inner.open()
    yield CountingStore(inner)
    await inner.close()


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def api(store: CountingStore, hooks: Hooks) -> QueuesApi:
    return QueuesApi(store, Settings(port=4010), hooks)  # type: ignore[arg-type]


async def test_queue_changes_are_reported_to_the_router(api: QueuesApi, hooks: Hooks) -> None:
    await api.call("CreateQueue", {"QueueName": "a"})
    await api.call("SetQueueAttributes", {"QueueUrl": "a", "Attributes": {"DelaySeconds": "1"}})
    await api.call("DeleteQueue", {"QueueUrl": "a"})
    assert hooks.changes == [("a", True), ("a", True), ("a", False)]


async def test_send_during_the_look_still_wakes_the_long_poll(
    api: QueuesApi, store: CountingStore
) -> None:
    await api.call("CreateQueue", {"QueueName": "q"})

    async def send() -> None:
        # lands after the poll's first receive found nothing, before it starts waiting
        await api.call("SendMessage", {"QueueUrl": "q", "MessageBody": "raced"})

    store.on_receive = send
    started = time.monotonic()
    got = await api.call("ReceiveMessage", {"QueueUrl": "q", "WaitTimeSeconds": 5})
    assert [m["Body"] for m in got["Messages"]] == ["raced"]
    assert time.monotonic() - started < 1


async def test_long_poll_never_outlasts_wait_time_with_far_hidden_messages(
    api: QueuesApi, store: CountingStore
) -> None:
    await api.call("CreateQueue", {"QueueName": "q"})
    await api.call("SendMessage", {"QueueUrl": "q", "MessageBody": "m", "DelaySeconds": 900})
    started = time.monotonic()
    assert await api.call("ReceiveMessage", {"QueueUrl": "q", "WaitTimeSeconds": 1}) == {}
    assert 0.9 < time.monotonic() - started < 1.5
    assert store.receives <= 3


async def test_mutual_dead_letter_queues_do_not_busy_loop_long_polls(
    api: QueuesApi, store: CountingStore
) -> None:
    await api.call("CreateQueue", {"QueueName": "a"})
    await api.call("CreateQueue", {"QueueName": "b"})
    for source, target in (("a", "b"), ("b", "a")):
        policy = {"deadLetterTargetArn": f"arn:aws:sqs:us-east-1:000000000000:{target}"}
        await api.call(
            "SetQueueAttributes",
            {
                "QueueUrl": source,
                "Attributes": {"RedrivePolicy": json.dumps({**policy, "maxReceiveCount": 1})},
            },
        )
    polls = [api.call("ReceiveMessage", {"QueueUrl": name, "WaitTimeSeconds": 1}) for name in "ab"]
    assert await asyncio.gather(*polls) == [{}, {}]
    assert store.receives <= 6


async def test_a_queue_cannot_be_its_own_dead_letter_queue(api: QueuesApi) -> None:
    await api.call("CreateQueue", {"QueueName": "self"})
    policy = {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:self"}
    with pytest.raises(SqsError) as excinfo:
        await api.call(
            "SetQueueAttributes",
            {
                "QueueUrl": "self",
                "Attributes": {"RedrivePolicy": json.dumps({**policy, "maxReceiveCount": 1})},
            },
        )
    assert excinfo.value.query_code == "InvalidParameterValue"
    assert str(excinfo.value).startswith("InvalidParameterValue: Value ")


async def test_dead_letter_long_poll_wakes_when_a_message_is_moved(api: QueuesApi) -> None:
    await api.call("CreateQueue", {"QueueName": "dlq"})
    policy = {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq"}
    await api.call(
        "CreateQueue",
        {
            "QueueName": "src",
            "Attributes": {"RedrivePolicy": json.dumps({**policy, "maxReceiveCount": 1})},
        },
    )
    await api.call("SendMessage", {"QueueUrl": "src", "MessageBody": "poison"})
    await api.call("ReceiveMessage", {"QueueUrl": "src", "VisibilityTimeout": 0})
    waiting = asyncio.create_task(
        api.call("ReceiveMessage", {"QueueUrl": "dlq", "WaitTimeSeconds": 10})
    )
    await asyncio.sleep(0.05)
    started = time.monotonic()
    assert await api.call("ReceiveMessage", {"QueueUrl": "src"}) == {}
    got = await asyncio.wait_for(waiting, 2)
    assert [m["Body"] for m in got["Messages"]] == ["poison"]
    assert time.monotonic() - started < 1
