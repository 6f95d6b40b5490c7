"""FIFO queues through boto3's ``sqs`` client: groups, de-duplication, sequence numbers.

Runs on the session's real server (``aws_endpoint``). Concurrent consumers are threads
with their own clients, so per-group order is checked under real interleaving.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import defaultdict
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.server.api.conftest import aws_client


@pytest.fixture
def sqs(aws_endpoint: str) -> Any:
    return aws_client("sqs", aws_endpoint)


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}.fifo"


def _fifo(sqs: Any, **attributes: str) -> str:
    return str(
        sqs.create_queue(QueueName=_name("f"), Attributes={"FifoQueue": "true", **attributes})[
            "QueueUrl"
        ]
    )


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    error = excinfo.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def test_a_fifo_queue_needs_its_suffix_and_attribute_and_has_sqs_defaults(sqs: Any) -> None:
    code, message = _error(sqs.create_queue, QueueName=_name("x"))
    assert code == "InvalidParameterValue" and "must end with .fifo suffix" in message
    code, message = _error(
        sqs.create_queue, QueueName="plain-" + uuid.uuid4().hex, Attributes={"FifoQueue": "true"}
    )
    assert code == "InvalidParameterValue" and "must end with .fifo suffix" in message
    url = _fifo(sqs)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert {k: attributes[k] for k in ("FifoQueue", "ContentBasedDeduplication")} == {
        "FifoQueue": "true",
        "ContentBasedDeduplication": "false",
    }
    assert attributes["DeduplicationScope"] == "queue"
    assert attributes["FifoThroughputLimit"] == "perQueue"
    # FIFO attributes are unknown on a standard queue, and FifoQueue never changes
    plain = sqs.create_queue(QueueName="plain-" + uuid.uuid4().hex)["QueueUrl"]
    assert _error(
        sqs.set_queue_attributes,
        QueueUrl=plain,
        Attributes={"ContentBasedDeduplication": "true"},
    )[0] == ("InvalidAttributeName")
    assert _error(sqs.set_queue_attributes, QueueUrl=url, Attributes={"FifoQueue": "false"})[0] == (
        "InvalidParameterValue"
    )


def test_high_throughput_mode_needs_per_group_deduplication(sqs: Any) -> None:
    code, _ = _error(
        sqs.create_queue,
        QueueName=_name("ht"),
        Attributes={"FifoQueue": "true", "FifoThroughputLimit": "perMessageGroupId"},
    )
    assert code == "InvalidParameterValue"
    url = _fifo(sqs, DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoThroughputLimit"] == "perMessageGroupId"
    assert _error(
        sqs.set_queue_attributes, QueueUrl=url, Attributes={"DeduplicationScope": "queue"}
    )[0] == ("InvalidParameterValue")


def test_sends_need_a_group_and_a_deduplication_id(sqs: Any) -> None:
    url = _fifo(sqs)
    assert _error(sqs.send_message, QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")[
        0
    ] == ("MissingParameter")
    code, message = _error(sqs.send_message, QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert code == "InvalidParameterValue" and "ContentBasedDeduplication" in message
    code, message = _error(
        sqs.send_message,
        QueueUrl=url,
        MessageBody="x",
        MessageGroupId="g",
        MessageDeduplicationId="d",
        DelaySeconds=5,
    )
    assert code == "InvalidParameterValue" and "not valid for this queue type" in message
    assert _error(
        sqs.send_message,
        QueueUrl=url,
        MessageBody="x",
        MessageGroupId="bad group",
        MessageDeduplicationId="d",
    )[0] == ("InvalidParameterValue")


def test_deduplication_within_five_minutes_by_id_and_by_content(sqs: Any) -> None:
    url = _fifo(sqs)
    first = sqs.send_message(
        QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="k"
    )
    again = sqs.send_message(
        QueueUrl=url, MessageBody="b", MessageGroupId="g", MessageDeduplicationId="k"
    )
    assert again["MessageId"] == first["MessageId"]
    assert int(again["SequenceNumber"]) > int(first["SequenceNumber"])
    content = _fifo(sqs, ContentBasedDeduplication="true")
    for _ in range(3):
        sqs.send_message(QueueUrl=content, MessageBody="same", MessageGroupId="g")
    sqs.send_message(QueueUrl=content, MessageBody="other", MessageGroupId="g")
    got = sqs.receive_message(
        QueueUrl=content, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in got] == ["same", "other"]
    assert got[0]["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"same").hexdigest()
    assert got[0]["Attributes"]["MessageGroupId"] == "g"
    only = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in only] == ["a"]


def test_deduplication_per_group_in_high_throughput_mode(sqs: Any) -> None:
    url = _fifo(sqs, DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId")
    for group in ("g1", "g2", "g1"):
        sqs.send_message(
            QueueUrl=url, MessageBody=group, MessageGroupId=group, MessageDeduplicationId="k"
        )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["g1", "g2"]


def test_sequence_numbers_match_between_send_and_receive(sqs: Any) -> None:
    url = _fifo(sqs, ContentBasedDeduplication="true")
    sent = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "MessageBody": f"m{i}", "MessageGroupId": "g"} for i in range(5)],
    )["Successful"]
    numbers = [entry["SequenceNumber"] for entry in sorted(sent, key=lambda e: e["Id"])]
    assert numbers == sorted(numbers, key=int) and len(set(numbers)) == 5
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["SequenceNumber"]
    )["Messages"]
    assert [m["Attributes"]["SequenceNumber"] for m in got] == numbers
    assert [m["Body"] for m in got] == [f"m{i}" for i in range(5)]


def test_a_fifo_queue_needs_a_fifo_dead_letter_queue(sqs: Any) -> None:
    url = _fifo(sqs)
    plain = sqs.create_queue(QueueName="plain-" + uuid.uuid4().hex)["QueueUrl"]
    plain_arn = sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = f'{{"deadLetterTargetArn": "{plain_arn}", "maxReceiveCount": 2}}'
    code, message = _error(
        sqs.set_queue_attributes, QueueUrl=url, Attributes={"RedrivePolicy": policy}
    )
    assert code == "InvalidParameterValue" and "same type" in message


def test_per_group_order_holds_under_concurrent_consumers(aws_endpoint: str, sqs: Any) -> None:
    url = _fifo(sqs, ContentBasedDeduplication="true")
    groups, per_group = 4, 25
    for i in range(per_group):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": f"g{g}", "MessageBody": f"g{g}:{i}", "MessageGroupId": f"g{g}"}
                for g in range(groups)
            ],
        )
    seen: dict[str, list[int]] = defaultdict(list)
    holders: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    overlaps: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def consume(me: int) -> None:
        client = aws_client("sqs", aws_endpoint)
        while not done.is_set():
            got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=3, WaitTimeSeconds=1)
            messages = got.get("Messages", [])
            with lock:
                for message in messages:
                    group = message["Body"].split(":")[0]
                    if any(n for who, n in holders[group].items() if who != me):
                        overlaps.append(group)  # another consumer holds this group too
                    holders[group][me] += 1
            for message in messages:
                group, index = message["Body"].split(":")
                with lock:
                    seen[group].append(int(index))
                client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                with lock:
                    holders[group][me] -= 1
                    if sum(len(v) for v in seen.values()) >= groups * per_group:
                        done.set()

    consumers = [threading.Thread(target=consume, args=(n,)) for n in range(4)]
    for thread in consumers:
        thread.start()
    for thread in consumers:
        thread.join(timeout=120)
    assert done.is_set(), "the consumers did not get every message"
    assert not overlaps
    assert dict(seen) == {f"g{g}": list(range(per_group)) for g in range(groups)}


def test_a_rule_delivers_to_a_fifo_queue_in_its_group_once_per_input(
    aws_endpoint: str, sqs: Any
) -> None:
    events = aws_client("events", aws_endpoint)
    url = _fifo(sqs, ContentBasedDeduplication="true")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = f"fifo-{uuid.uuid4().hex[:10]}"
    source = f"fifo.{rule}"
    events.put_rule(Name=rule, EventPattern=f'{{"source": ["{source}"]}}')
    code, message = _error(events.put_targets, Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    assert (code, message) == (
        "ValidationException",
        "Parameter(s) SqsParameters must be specified for target: q.",
    )
    code, message = _error(
        events.put_targets,
        Rule=rule,
        Targets=[
            {
                "Id": "q",
                "Arn": arn,
                "SqsParameters": {"MessageGroupId": "orders"},
                "DeadLetterConfig": {"Arn": arn},
            }
        ],
    )
    assert code == "ValidationException" and "must be a standard queue" in message
    answer = events.put_targets(
        Rule=rule,
        Targets=[
            {
                "Id": "q",
                "Arn": arn,
                "InputPath": "$.detail",
                "SqsParameters": {"MessageGroupId": "orders"},
            }
        ],
    )
    assert answer["FailedEntryCount"] == 0
    entries = [
        {"Source": source, "DetailType": "t", "Detail": f'{{"n": {n}}}'} for n in (1, 2, 1, 3)
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    got: list[dict[str, Any]] = []
    while len(got) < 3:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=5,
            MessageSystemAttributeNames=["MessageGroupId"],
        )
        assert answer.get("Messages"), "the rule's messages did not arrive"
        for message in answer["Messages"]:
            got.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(m["Body"] for m in got) == ['{"n":1}', '{"n":2}', '{"n":3}']
    assert {m["Attributes"]["MessageGroupId"] for m in got} == {"orders"}
