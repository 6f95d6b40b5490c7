"""Both SDK twins against a real ``eventyard serve``: events, management, queues, errors."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from eventyard import Event
from eventyard.errors import (
    EventyardError,
    InvalidEventPattern,
    LimitExceeded,
    PutEventsFailed,
    QueueError,
    ResourceAlreadyExists,
    ResourceNotFound,
    TransportError,
    ValidationError,
)
from eventyard.sdk.client import Message
from eventyard.testing import ServerProcess

from .conftest import Twin

Names = Callable[[str], str]

ENVELOPE = {
    "id": "e1",
    "account": "000000000000",
    "source": "shop",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "detail-type": "OrderPlaced",
    "detail": {"total": 120},
}


async def drain(api: Twin, queue: str, count: int, timeout: float = 10.0) -> list[Message]:
    """Receive and delete until ``count`` messages came (or the time is up)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for message in await api.receive_messages(queue, wait=1):
            got.append(message)
            await api.delete_message(queue, message.receipt)
    return got


async def wired_queue(api: Twin, name: Names, pattern: dict[str, Any]) -> tuple[str, str]:
    """A bus whose rule sends events matching ``pattern`` to a new queue."""
    bus, queue = name("bus"), name("queue")
    await api.create_bus(bus)
    await api.create_queue(queue)
    await api.put_rule(name("rule"), pattern, bus=bus)
    await api.put_targets(name("rule"), [{"Id": "q", "Arn": await api.queue_arn(queue)}], bus=bus)
    return bus, queue


async def test_put_events_accepts_one_event_or_one_entry_and_returns_its_id(
    api: Twin, name: Names
) -> None:
    bus, queue = await wired_queue(api, name, {"source": ["shop"]})
    [first] = await api.put_events(Event("shop", "OrderPlaced", {"n": 1}), bus=bus)
    [second] = await api.put_events(
        {"Source": "shop", "DetailType": "OrderPlaced", "Detail": '{"n": 2}', "EventBusName": bus}
    )
    messages = await drain(api, queue, 2)
    assert sorted(m.event().id or "" for m in messages) == sorted([first, second])


async def test_put_events_sends_many_in_batches_and_returns_ids_in_input_order(
    api: Twin, name: Names
) -> None:
    bus, queue = await wired_queue(api, name, {"source": ["shop"]})
    events = [Event("shop", "OrderPlaced", {"n": n}) for n in range(25)]
    ids = await api.put_events(iter(events), bus=bus)
    assert len(ids) == len(set(ids)) == 25
    by_id = {m.event().id: m.event().detail["n"] for m in await drain(api, queue, 25)}
    assert [by_id[event_id] for event_id in ids] == list(range(25))


async def test_put_events_detail_may_be_a_mapping_in_entry_dicts(api: Twin, name: Names) -> None:
    bus, queue = await wired_queue(api, name, {"detail": {"ok": [True]}})
    await api.put_events([{"Source": "s", "DetailType": "t", "Detail": {"ok": True}}], bus=bus)
    [message] = await drain(api, queue, 1)
    assert message.event().detail == {"ok": True}


async def test_put_events_partial_failure_names_entries_after_storing_the_good_ones(
    api: Twin, name: Names
) -> None:
    bus, queue = await wired_queue(api, name, {"source": ["shop"]})
    good = {"Source": "shop", "DetailType": "t", "Detail": "{}"}
    entries = [good] * 12 + [{"Source": "shop", "DetailType": "t", "Detail": "not json"}]
    entries += [good, {"Source": "shop", "Detail": "{}"}]
    with pytest.raises(PutEventsFailed) as caught:
        await api.put_events(entries, bus=bus)
    assert [(i, code) for i, code, _ in caught.value.failures] == [
        (12, "MalformedDetail"),
        (14, "InvalidArgument"),
    ]
    assert "entry 12: MalformedDetail" in str(caught.value)
    # the server answered: an EventyardError, not a TransportError (no transport problem)
    assert isinstance(caught.value, EventyardError)
    assert not isinstance(caught.value, TransportError)
    assert len(await drain(api, queue, 13)) == 13


async def test_put_events_of_nothing_sends_nothing(api: Twin) -> None:
    assert await api.put_events([]) == []


async def test_put_events_rejects_an_unencodable_detail_with_validation_error(api: Twin) -> None:
    with pytest.raises(ValidationError, match="cannot be encoded as JSON"):
        await api.put_events(Event("s", "t", {"bad": {1, 2}}))


async def test_test_pattern_answers_match_and_no_match(api: Twin) -> None:
    assert await api.test_pattern({"source": ["shop"]}, ENVELOPE) is True
    assert await api.test_pattern('{"source": ["other"]}', json.dumps(ENVELOPE)) is False


async def test_bus_management_create_describe_list_delete(api: Twin, name: Names) -> None:
    bus = name("mgmt-bus")
    arn = await api.create_bus(bus, description="orders")
    assert arn.endswith(f":event-bus/{bus}")
    described = await api.describe_bus(bus)
    assert (described["Name"], described["Arn"], described["Description"]) == (bus, arn, "orders")
    assert (await api.describe_bus())["Name"] == "default"
    assert [b["Name"] for b in await api.list_buses(prefix=bus)] == [bus]
    with pytest.raises(ResourceAlreadyExists):
        await api.create_bus(bus)
    await api.delete_bus(bus)
    assert await api.list_buses(prefix=bus) == []
    with pytest.raises(ResourceNotFound):
        await api.describe_bus(bus)


async def test_list_buses_follows_every_page(api: Twin, name: Names) -> None:
    prefix = name("paged")
    for n in range(105):  # the server pages by 100
        await api.create_bus(f"{prefix}-{n:03d}")
    assert len(await api.list_buses(prefix=prefix)) == 105


async def test_rule_management_put_describe_list_state_delete(api: Twin, name: Names) -> None:
    bus, rule = name("rules-bus"), name("rule")
    await api.create_bus(bus)
    arn = await api.put_rule(rule, {"source": ["a"]}, bus=bus, description="d", enabled=False)
    assert arn.endswith(f":rule/{bus}/{rule}")
    described = await api.describe_rule(rule, bus=bus)
    assert described["State"] == "DISABLED"
    assert json.loads(described["EventPattern"]) == {"source": ["a"]}
    assert described["Description"] == "d"
    await api.enable_rule(rule, bus=bus)
    assert (await api.describe_rule(rule, bus=bus))["State"] == "ENABLED"
    await api.disable_rule(rule, bus=bus)
    assert (await api.describe_rule(rule, bus=bus))["State"] == "DISABLED"
    await api.put_rule(f"{rule}-other", '{"source": ["b"]}', bus=bus)
    assert [r["Name"] for r in await api.list_rules(bus=bus)] == [rule, f"{rule}-other"]
    assert [r["Name"] for r in await api.list_rules(bus=bus, prefix=f"{rule}-")] == [
        f"{rule}-other"
    ]
    await api.delete_rule(f"{rule}-other", bus=bus)
    await api.delete_rule(f"{rule}-other", bus=bus)  # a missing rule is no error
    assert [r["Name"] for r in await api.list_rules(bus=bus)] == [rule]


async def test_targets_put_list_remove_and_forced_rule_delete(api: Twin, name: Names) -> None:
    rule = name("targets-rule")
    await api.put_rule(rule, {"source": ["a"]})
    targets = [
        {"Id": f"t{n}", "Arn": f"arn:aws:sqs:us-east-1:000000000000:q{n}", "Input": '{"n": 1}'}
        for n in range(3)
    ]
    await api.put_targets(rule, targets)
    assert await api.list_targets(rule) == targets
    await api.remove_targets(rule, ["t0", "unknown"])
    assert [t["Id"] for t in await api.list_targets(rule)] == ["t1", "t2"]
    with pytest.raises(ValidationError, match="has targets"):
        await api.delete_rule(rule)
    await api.delete_rule(rule, force=True)
    with pytest.raises(ResourceNotFound):
        await api.list_targets(rule)
    await api.delete_rule(rule, force=True)  # gone already: no error


async def test_put_targets_over_the_limit_raises_limit_exceeded(api: Twin, name: Names) -> None:
    rule = name("limit-rule")
    await api.put_rule(rule, {"source": ["a"]})
    too_many = [
        {"Id": f"t{n}", "Arn": f"arn:aws:sqs:us-east-1:000000000000:q{n}"} for n in range(6)
    ]
    with pytest.raises(LimitExceeded):
        await api.put_targets(rule, too_many)


async def test_queue_round_trip_send_receive_change_visibility_delete(
    api: Twin, name: Names
) -> None:
    queue = name("round-trip")
    url = await api.create_queue(queue, attributes={"VisibilityTimeout": "60"})
    assert url.endswith(f"/{queue}")
    assert await api.get_queue_url(queue) == url
    assert (await api.queue_arn(queue)).endswith(f":{queue}")
    before = time.time()
    message_id = await api.send_message(queue, "hello", attributes={"kind": "greeting"})
    [message] = await api.receive_messages(queue, wait=2)
    assert (message.id, message.body, message.attributes) == (
        message_id,
        "hello",
        {"kind": "greeting"},
    )
    assert message.receive_count == 1
    assert before - 1 <= message.sent <= time.time() + 1
    assert message.first_receive is not None and message.first_receive >= message.sent - 1
    assert await api.receive_messages(queue, wait=0) == []  # hidden for 60 s
    await api.change_visibility(queue, message.receipt, 0)
    [again] = await api.receive_messages(queue, wait=2, visibility_timeout=30)
    assert (again.id, again.receive_count) == (message_id, 2)
    await api.delete_message(url, again.receipt)  # a queue URL works as well as its name
    attributes = await api.get_queue_attributes(queue)
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


async def receive_all(api: Twin, queue: str, count: int) -> list[Message]:
    """Receive (without deleting) until ``count`` messages came."""
    got: list[Message] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += await api.receive_messages(queue, wait=1)
    assert len(got) == count
    return got


async def queue_counts(api: Twin, queue: str) -> tuple[int, int]:
    attributes = await api.get_queue_attributes(queue)
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


async def test_delete_messages_deletes_many_and_returns_only_the_refused_receipts(
    api: Twin, name: Names
) -> None:
    queue, other = name("batch-delete"), name("batch-delete-other")
    await api.create_queue(queue)
    await api.create_queue(other)
    for n in range(23):
        await api.send_message(queue, f"m{n}")
    await api.send_message(other, "elsewhere")
    receipts = [m.receipt for m in await receive_all(api, queue, 23)]
    [foreign] = await receive_all(api, other, 1)
    refused = await api.delete_messages(
        queue, [receipts[0], foreign.receipt, *receipts[1:], "garbage"]
    )
    assert refused == [foreign.receipt, "garbage"]  # in the order given
    assert await queue_counts(api, queue) == (0, 0)  # 23 deleted in three requests
    assert await queue_counts(api, other) == (0, 1)  # another queue's receipt deletes nothing
    assert await api.delete_messages(queue, receipts) == []  # deleting again is no error
    assert await api.delete_messages(queue, []) == []


async def test_change_visibility_batch_changes_many_and_returns_only_the_refused_receipts(
    api: Twin, name: Names
) -> None:
    queue = name("batch-visibility")
    await api.create_queue(queue, attributes={"VisibilityTimeout": "60"})
    for n in range(12):
        await api.send_message(queue, f"m{n}")
    receipts = [m.receipt for m in await receive_all(api, queue, 12)]
    assert await api.change_visibility_batch(queue, [*receipts, "garbage"], 0) == ["garbage"]
    again = await receive_all(api, queue, 12)  # visible at once, not after 60 s
    assert {m.receive_count for m in again} == {2}
    fresh = [m.receipt for m in again]
    assert await api.change_visibility_batch(queue, fresh, 60) == []
    assert await api.receive_messages(queue, wait=0) == []
    assert await api.delete_messages(queue, fresh[:2]) == []
    # deleted messages are no longer in flight: their visibility cannot change
    assert await api.change_visibility_batch(queue, fresh[:3], 30) == fresh[:2]
    assert await api.change_visibility_batch(queue, fresh[2:4], 43201) == fresh[2:4]


async def test_queue_delay_max_messages_and_purge(api: Twin, name: Names) -> None:
    queue = name("delay")
    await api.create_queue(queue)
    await api.send_message(queue, "later", delay=2)
    assert await api.receive_messages(queue, wait=0) == []
    [late] = await api.receive_messages(queue, wait=4)
    assert late.body == "later"
    for n in range(4):
        await api.send_message(queue, f"m{n}")
    assert len(await api.receive_messages(queue, max_messages=2, wait=1)) == 2
    await api.purge_queue(queue)
    assert (await api.get_queue_attributes(queue))["ApproximateNumberOfMessages"] == "0"


async def test_queue_management_list_set_attributes_delete(api: Twin, name: Names) -> None:
    prefix = name("mgmt-queue")
    for suffix in ("a", "b"):
        await api.create_queue(f"{prefix}-{suffix}")
    assert await api.list_queues(prefix) == [f"{prefix}-a", f"{prefix}-b"]
    await api.set_queue_attributes(f"{prefix}-a", {"VisibilityTimeout": "7"})
    assert (await api.get_queue_attributes(f"{prefix}-a"))["VisibilityTimeout"] == "7"
    await api.delete_queue(f"{prefix}-a")
    assert await api.list_queues(prefix) == [f"{prefix}-b"]
    with pytest.raises(QueueError) as caught:
        await api.send_message(f"{prefix}-a", "x")
    assert caught.value.code == "AWS.SimpleQueueService.NonExistentQueue"
    await api.create_queue(f"{prefix}-a")  # a new queue under the old name works again
    assert await api.send_message(f"{prefix}-a", "x")


async def test_message_event_of_an_event_and_of_a_plain_body(api: Twin, name: Names) -> None:
    queue = name("bodies")
    await api.create_queue(queue)
    await api.send_message(queue, json.dumps(ENVELOPE))
    await api.send_message(queue, "plain text")
    await api.send_message(queue, json.dumps({**ENVELOPE, "resources": 7}))
    messages = await drain(api, queue, 3)
    by_body = {m.body: m for m in messages}
    event = by_body[json.dumps(ENVELOPE)].event()
    assert (event.source, event.detail_type, event.detail) == (
        "shop",
        "OrderPlaced",
        {"total": 120},
    )
    with pytest.raises(ValidationError, match="not an event envelope"):
        by_body["plain text"].event()
    with pytest.raises(ValidationError, match="not an event envelope"):
        by_body[json.dumps({**ENVELOPE, "resources": 7})].event()


async def test_missing_rule_raises_resource_not_found_with_aws_message(api: Twin) -> None:
    with pytest.raises(ResourceNotFound) as caught:
        await api.describe_rule("no-such-rule")
    assert caught.value.code == "ResourceNotFoundException"
    assert caught.value.status == 400
    assert caught.value.message == "Rule no-such-rule does not exist on EventBus default."


async def test_bad_pattern_raises_invalid_event_pattern_with_aws_message(api: Twin) -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        await api.put_rule("bad-pattern", {"source": "shop"})
    assert caught.value.message == (
        'Event pattern is not valid. Reason: "source" must be an object or an array'
    )
    with pytest.raises(InvalidEventPattern, match="Event pattern is not valid"):
        await api.test_pattern("{", ENVELOPE)


async def test_missing_queue_raises_queue_error_with_the_query_code(api: Twin) -> None:
    with pytest.raises(QueueError) as caught:
        await api.get_queue_url("no-such-queue")
    assert caught.value.code == "AWS.SimpleQueueService.NonExistentQueue"
    assert caught.value.message == "The specified queue does not exist."


async def test_receive_waits_longer_than_the_client_timeout(
    make_twin: Callable[..., Twin], server: ServerProcess, name: Names
) -> None:
    api = make_twin(server.url, timeout=0.5)
    queue = name("long-poll")
    await api.create_queue(queue)
    started = time.monotonic()
    assert await api.receive_messages(queue, wait=1.2) == []
    assert time.monotonic() - started >= 1.5  # the wait went up to whole seconds (2)


async def test_eventyard_url_is_used_without_a_url_argument(
    make_twin: Callable[..., Twin], server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTYARD_URL", server.url + "/")
    api = make_twin()
    assert api.client.url == server.url
    assert (await api.describe_bus())["Name"] == "default"


async def test_dead_letter_sources_names_the_queues_that_redrive_to_a_queue(
    api: Twin, name: Names
) -> None:
    dlq, first, second, other = name("dlq"), name("src-a"), name("src-b"), name("plain")
    await api.create_queue(dlq)
    policy = json.dumps({"deadLetterTargetArn": await api.queue_arn(dlq), "maxReceiveCount": 3})
    for source in (first, second):
        await api.create_queue(source, attributes={"RedrivePolicy": policy})
    await api.create_queue(other)
    assert sorted(await api.dead_letter_sources(dlq)) == sorted([first, second])
    assert await api.dead_letter_sources(other) == []
    with pytest.raises(QueueError):
        await api.dead_letter_sources(name("missing"))
