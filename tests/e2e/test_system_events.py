"""eventyard's own events on the system bus ``eventyard``, through boto3 on a real server.

A rule on the system bus copies every event of ``source`` ``eventyard`` to a queue; the
test then changes resources, breaks and heals a webhook, fills a dead-letter queue and
a tagged queue, and reads the events from that queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from eventyard.testing import ServerProcess
from tests.e2e.conftest import ACCOUNT, REGION, Receiver, client
from tests.helpers import poll_until

FAST = {
    "EVENTYARD_TARGET_FAILING_AFTER": "2",
    "EVENTYARD_DLQ_EVENT_INTERVAL": "0.5",
    "EVENTYARD_MONITOR_INTERVAL": "0.1",
}


class Watch:
    """The system events copied to queue ``watch``, read as they arrive."""

    def __init__(self, events: Any, sqs: Any) -> None:
        self.sqs = sqs
        self.url = sqs.create_queue(QueueName="watch")["QueueUrl"]
        events.put_rule(
            Name="all-system", EventBusName="eventyard", EventPattern='{"source": ["eventyard"]}'
        )
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:watch"
        events.put_targets(
            Rule="all-system", EventBusName="eventyard", Targets=[{"Id": "w", "Arn": arn}]
        )
        self.seen: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Read what has arrived so far; returns everything seen."""
        got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)
        for message in got.get("Messages", []):
            self.seen.append(json.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return self.seen

    def until(self, found: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        poll_until(lambda: any(found(event) for event in self.read()), what=what)
        return next(event for event in self.seen if found(event))

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [event for event in self.seen if event["detail-type"] == detail_type]


def _kind(detail_type: str, **detail: Any) -> Callable[[dict[str, Any]], bool]:
    def found(event: dict[str, Any]) -> bool:
        return event["detail-type"] == detail_type and all(
            event["detail"].get(k) == v for k, v in detail.items()
        )

    return found


def test_resource_changes_target_health_and_dead_letters_are_told(
    server_factory: Callable[..., ServerProcess], receiver_factory: Callable[[int], Receiver]
) -> None:
    server = server_factory(**FAST)
    events, sqs = client("events", server.url), client("sqs", server.url)
    watch = Watch(events, sqs)

    sqs.create_queue(QueueName="orders")
    created = watch.until(
        _kind("Resource State Change", name="orders", change="CREATED"), "queue created"
    )
    assert created["source"] == "eventyard" and created["account"] == ACCOUNT
    assert created["resources"] == [f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders"]
    assert created["detail"]["resource-type"] == "queue"

    hook = receiver_factory(500)
    sqs.create_queue(QueueName="dead")
    events.put_rule(Name="to-hook", EventPattern='{"source": ["shop"]}')
    events.put_targets(
        Rule="to-hook",
        Targets=[
            {
                "Id": "hook",
                "Arn": hook.url,
                "RetryPolicy": {"MaximumRetryAttempts": 0},
                "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dead"},
            }
        ],
    )
    watch.until(_kind("Resource State Change", name="hook", change="CREATED"), "target created")
    entry = {"Source": "shop", "DetailType": "order", "Detail": "{}"}
    events.put_events(Entries=[entry, entry, entry])
    failing = watch.until(_kind("Target State Change", state="FAILING"), "target failing")
    assert failing["detail"]["target-id"] == "hook"
    assert failing["detail"]["target-arn"] == hook.url
    assert failing["detail"]["consecutive-failures"] == 2
    assert failing["resources"] == [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/to-hook"]
    dead = watch.until(_kind("Dead-Letter Queue Messages"), "dead letters told")
    assert dead["detail"]["queue-arn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:dead"

    def told() -> int:
        watch.read()
        return sum(e["detail"]["messages"] for e in watch.of("Dead-Letter Queue Messages"))

    poll_until(lambda: told() >= 3, what="3 dead letters told")
    assert told() == 3  # each dead letter counted once, in at most a few events

    hook.status = 200
    events.put_events(Entries=[entry])
    healthy = watch.until(_kind("Target State Change", state="HEALTHY"), "target healthy")
    assert healthy["detail"]["previous-state"] == "FAILING"
    assert [
        e["detail"]["state"] for e in watch.seen if e["detail-type"] == "Target State Change"
    ] == [
        "FAILING",
        "HEALTHY",
    ]


def test_a_tagged_queue_tells_when_it_crosses_its_thresholds(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(**FAST)
    events, sqs = client("events", server.url), client("sqs", server.url)
    watch = Watch(events, sqs)
    url = sqs.create_queue(QueueName="backlog", tags={"eventyard:alarm-depth": "3"})["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    alarm = watch.until(_kind("Queue Threshold Crossed", state="ALARM"), "depth alarm")
    assert alarm["detail"]["metric"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["detail"]["value"] == 3 and alarm["detail"]["threshold"] == 3
    assert alarm["detail"]["previous-state"] == "OK"
    sqs.purge_queue(QueueUrl=url)
    ok = watch.until(_kind("Queue Threshold Crossed", state="OK"), "depth back to normal")
    assert ok["detail"]["previous-state"] == "ALARM"
    states = [
        e["detail"]["state"] for e in watch.seen if e["detail-type"] == "Queue Threshold Crossed"
    ]
    assert states == ["ALARM", "OK"]  # told once each, though checked many times
