"""The SQS-compatible queue API, through boto3's real ``sqs`` client over HTTP.

A uvicorn server runs the ASGI app in a background thread on 127.0.0.1 (port 0) with a
temporary data dir. When the whole app (router + EventBridge API) is importable it is
served with :func:`create_app`; until then a minimal app mounts only the queues with
app.py's dispatch pieces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from eventyard.server.api.sqs_messages import message_attributes_md5
from eventyard.server.api.sqs_requests import queue_name_from_url
from tests.server.api.conftest import serve_in_thread

ACCOUNT = "123456789012"
REGION = "eu-west-1"


# -- the server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("sqs-data")
    with serve_in_thread(data_dir=str(data_dir), account_id=ACCOUNT, region=REGION) as url:
        yield url


def _client(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30),
    )


@pytest.fixture(scope="module")
def sqs(endpoint: str) -> Iterator[Any]:
    client = _client(endpoint)
    yield client
    client.close()


@pytest.fixture
def queue(sqs: Any) -> str:
    """A fresh queue's URL."""
    return str(sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"])


def _error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    error: dict[str, Any] = excinfo.value.response["Error"]
    return error


def _counts(sqs: Any, url: str) -> tuple[int, int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


def _raw(endpoint: str, target: str, params: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        endpoint + "/",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers.items()), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, json.loads(exc.read())


# -- protocol -------------------------------------------------------------------------


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_boto3_speaks_sqs_json_protocol_with_amazonsqs_target(sqs: Any) -> None:
    seen: list[dict[str, str]] = []

    def capture(request: Any, **kwargs: Any) -> None:
        seen.append({k.lower(): _text(v) for k, v in request.headers.items()})

    sqs.meta.events.register("before-send.sqs.ListQueues", capture)
    try:
        sqs.list_queues()
    finally:
        sqs.meta.events.unregister("before-send.sqs.ListQueues", capture)
    assert seen[0]["x-amz-target"] == "AmazonSQS.ListQueues"
    assert seen[0]["content-type"] == "application/x-amz-json-1.0"


def test_missing_queue_error_is_query_compatible_on_the_wire(endpoint: str) -> None:
    status, headers, body = _raw(endpoint, "AmazonSQS.GetQueueUrl", {"QueueName": "nope"})
    assert status == 400
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    assert body == {
        "__type": "com.amazonaws.sqs#QueueDoesNotExist",
        "message": "The specified queue does not exist.",
    }


def test_missing_queue_gives_legacy_code_and_modeled_exception(sqs: Any) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as excinfo:
        sqs.get_queue_url(QueueName="does-not-exist")
    error = _error_of(excinfo)
    assert error["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert error["QueryErrorCode"] == "QueueDoesNotExist"
    assert error["Type"] == "Sender"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl="http://x:1/000000000000/does-not-exist", MessageBody="x")


def test_unknown_operation_is_unsupported_operation(endpoint: str) -> None:
    status, headers, body = _raw(endpoint, "AmazonSQS.Frobnicate", {})
    assert status == 400
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.UnsupportedOperation;Sender"
    assert body["__type"] == "com.amazonaws.sqs#UnsupportedOperation"
    assert "Frobnicate" in body["message"]


# -- queues ---------------------------------------------------------------------------


def test_create_get_url_list_and_delete_queues(sqs: Any, endpoint: str) -> None:
    prefix = f"life-{uuid.uuid4().hex[:8]}"
    port = endpoint.rsplit(":", 1)[1]
    urls = [sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(3)]
    assert urls[0] == f"http://127.0.0.1:{port}/{ACCOUNT}/{prefix}-0"
    assert sqs.create_queue(QueueName=f"{prefix}-0")["QueueUrl"] == urls[0]
    assert sqs.get_queue_url(QueueName=f"{prefix}-1")["QueueUrl"] == urls[1]
    assert sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"] == urls

    first = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    assert first["QueueUrls"] == urls[:2]
    second = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=first["NextToken"])
    assert second["QueueUrls"] == urls[2:]
    assert "NextToken" not in second
    paged = sqs.get_paginator("list_queues").paginate(
        QueueNamePrefix=prefix, PaginationConfig={"PageSize": 1}
    )
    assert [u for page in paged for u in page["QueueUrls"]] == urls

    sqs.delete_queue(QueueUrl=urls[1])
    assert sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"] == [urls[0], urls[2]]
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=f"{prefix}-1")
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="no-such-prefix")


def test_queue_url_of_any_host_or_a_bare_name_is_accepted(sqs: Any, queue: str) -> None:
    name = queue.rsplit("/", 1)[1]
    for url in (f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}", name, queue + "/"):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert _counts(sqs, queue)[0] == 3
    assert queue_name_from_url(f"http://h:1/{ACCOUNT}/{name}") == name


def test_create_queue_with_other_attributes_is_queue_already_exists(sqs: Any) -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"
    sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})
    with pytest.raises(sqs.exceptions.QueueNameExists) as excinfo:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "61"})
    assert _error_of(excinfo)["Code"] == "QueueAlreadyExists"
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName=name)


@pytest.mark.parametrize("name", ["", "a" * 81, "has space", "dot.name", "ümlaut"])
def test_create_queue_rejects_invalid_names(sqs: Any, name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        sqs.create_queue(QueueName=name)
    code = _error_of(excinfo)["Code"]
    assert code == ("MissingParameter" if name == "" else "InvalidParameterValue")


def test_queue_attributes_have_sqs_defaults_as_strings(sqs: Any, queue: str) -> None:
    name = queue.rsplit("/", 1)[1]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    created = attributes.pop("CreatedTimestamp")
    assert created.isdigit() and abs(int(created) - time.time()) < 60
    assert attributes.pop("LastModifiedTimestamp").isdigit()
    assert attributes == {
        "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
        "ApproximateNumberOfMessagesDelayed": "0",
        "VisibilityTimeout": "30",
        "MessageRetentionPeriod": "345600",
        "DelaySeconds": "0",
        "ReceiveMessageWaitTimeSeconds": "0",
        "MaximumMessageSize": "1048576",
    }
    named = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn", "DelaySeconds"])
    assert named["Attributes"] == {
        "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "DelaySeconds": "0",
    }
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=queue)


def test_set_queue_attributes_validates_and_applies(sqs: Any, queue: str) -> None:
    sqs.set_queue_attributes(
        QueueUrl=queue,
        Attributes={
            "VisibilityTimeout": "5",
            "DelaySeconds": "2",
            "ReceiveMessageWaitTimeSeconds": "20",
            "MessageRetentionPeriod": "60",
            "MaximumMessageSize": "1048576",
        },
    )
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "5"
    assert attributes["DelaySeconds"] == "2"
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"
    assert attributes["MessageRetentionPeriod"] == "60"
    assert attributes["MaximumMessageSize"] == "1048576"

    for name, value in [
        ("VisibilityTimeout", "43201"),
        ("DelaySeconds", "-1"),
        ("ReceiveMessageWaitTimeSeconds", "21"),
        ("MaximumMessageSize", "1048577"),
        ("MessageRetentionPeriod", "abc"),
    ]:
        with pytest.raises(sqs.exceptions.InvalidAttributeValue) as excinfo:
            sqs.set_queue_attributes(QueueUrl=queue, Attributes={name: value})
        assert _error_of(excinfo)["Code"] == "InvalidAttributeValue"
        assert _error_of(excinfo)["Message"] == f"Invalid value for the parameter {name}."
    with pytest.raises(sqs.exceptions.InvalidAttributeName) as excinfo:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Colour": "blue"})
    assert _error_of(excinfo)["Message"] == "Unknown Attribute Colour."
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Colour"])  # type: ignore[list-item]


def test_redrive_policy_needs_an_existing_dead_letter_queue(sqs: Any, queue: str) -> None:
    policy = {
        "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:nowhere",
        "maxReceiveCount": 3,
    }
    with pytest.raises(ClientError) as excinfo:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"RedrivePolicy": json.dumps(policy)})
    assert _error_of(excinfo)["Code"] == "InvalidParameterValue"
    assert _error_of(excinfo)["Message"].endswith("Reason: Dead letter target does not exist.")
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    with pytest.raises(ClientError) as excinfo:
        sqs.set_queue_attributes(
            QueueUrl=queue,
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 0})
            },
        )
    assert "valid values are from 1 to 1000" in _error_of(excinfo)["Message"]
    sqs.set_queue_attributes(
        QueueUrl=queue,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "4"})
        },
    )
    got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(got["RedrivePolicy"]) == {"deadLetterTargetArn": arn, "maxReceiveCount": 4}
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [queue]
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"RedrivePolicy": ""})
    assert "Attributes" not in sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["RedrivePolicy"]
    )


def test_tags_round_trip(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=f"tags-{uuid.uuid4().hex[:8]}", tags={"team": "a"})["QueueUrl"]
    sqs.tag_queue(QueueUrl=url, Tags={"env": "dev"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a", "env": "dev"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team", "env"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)


def test_purge_and_delete_queue_drop_messages(sqs: Any) -> None:
    name = f"purge-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    assert _counts(sqs, url) == (3, 0, 0)
    sqs.purge_queue(QueueUrl=url)
    assert _counts(sqs, url) == (0, 0, 0)
    sqs.send_message(QueueUrl=url, MessageBody="left behind")
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.purge_queue(QueueUrl=url)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


# -- messages -------------------------------------------------------------------------

ATTRIBUTES = {
    "ordinal": {"DataType": "Number", "StringValue": "1"},
    "category": {"DataType": "String", "StringValue": "test"},
}
ATTRIBUTES_MD5 = "d21ae90c49061e927f57df5f5d72be1f"  # as the AWS SDKs compute it


def test_message_attributes_md5_matches_known_values() -> None:
    assert message_attributes_md5(ATTRIBUTES) == ATTRIBUTES_MD5
    seller = {"SellerName": {"DataType": "String", "StringValue": "Example Store"}}
    assert message_attributes_md5(seller) == "cd28f3b68aeee4b2eac9c66f2f694b58"


def test_send_receive_delete_with_correct_md5s(sqs: Any, queue: str) -> None:
    body = "héllo wörld ✓"
    sent = sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=ATTRIBUTES)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == ATTRIBUTES_MD5
    plain = sqs.send_message(QueueUrl=queue, MessageBody="plain")
    assert "MD5OfMessageAttributes" not in plain
    assert sent["MessageId"] != plain["MessageId"]

    got = sqs.receive_message(
        QueueUrl=queue,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    )["Messages"]
    assert [m["Body"] for m in got] == [body, "plain"]
    first = got[0]
    assert first["MessageId"] == sent["MessageId"]
    assert first["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert first["MessageAttributes"] == ATTRIBUTES
    assert first["MD5OfMessageAttributes"] == ATTRIBUTES_MD5
    system = first["Attributes"]
    assert system["ApproximateReceiveCount"] == "1"
    assert system["SenderId"] == ACCOUNT
    now_ms = time.time() * 1000
    for key in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"):
        assert system[key].isdigit() and abs(int(system[key]) - now_ms) < 60_000
    assert "MessageAttributes" not in got[1]
    assert _counts(sqs, queue) == (0, 2, 0)

    for message in got:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert _counts(sqs, queue) == (0, 0, 0)
    # a well-formed handle of a message already deleted is accepted, as in SQS
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=got[0]["ReceiptHandle"])


def test_binary_and_custom_typed_attributes_and_name_filters(sqs: Any, queue: str) -> None:
    attributes = {
        "a.one": {"DataType": "String.custom", "StringValue": "1"},
        "a.two": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        "b": {"DataType": "Number.float", "StringValue": "2.5"},
    }
    sent = sqs.send_message(QueueUrl=queue, MessageBody="x", MessageAttributes=attributes)
    as_json = {
        **attributes,
        "a.two": {"DataType": "Binary", "BinaryValue": base64.b64encode(b"\x00\x01\xff").decode()},
    }
    assert sent["MD5OfMessageAttributes"] == message_attributes_md5(as_json)

    got = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["a.*"], VisibilityTimeout=0)
    message = got["Messages"][0]
    assert message["MessageAttributes"] == {k: attributes[k] for k in ("a.one", "a.two")}
    assert message["MD5OfMessageAttributes"] == message_attributes_md5(
        {k: as_json[k] for k in ("a.one", "a.two")}
    )
    got = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["b"], VisibilityTimeout=0)
    assert got["Messages"][0]["MessageAttributes"] == {"b": attributes["b"]}
    got = sqs.receive_message(QueueUrl=queue, AttributeNames=["ApproximateReceiveCount"])
    assert got["Messages"][0]["Attributes"] == {"ApproximateReceiveCount": "3"}
    assert "MessageAttributes" not in got["Messages"][0]


def test_send_rejects_bad_messages(sqs: Any, queue: str) -> None:
    def code_of(**kwargs: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as excinfo:
            sqs.send_message(QueueUrl=queue, **kwargs)
        return _error_of(excinfo)["Code"], _error_of(excinfo)["Message"]

    assert code_of(MessageBody="x", DelaySeconds=901) == (
        "InvalidParameterValue",
        "Value 901 for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 "
        "and <= 900.",
    )
    assert code_of(MessageBody="x" * 1048577) == (
        "InvalidParameterValue",
        "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes.",
    )
    code, message = code_of(MessageBody="bad \x01 char")
    assert code == "InvalidMessageContents"
    assert "#x1" in message
    assert code_of(MessageBody="")[0] == "MissingParameter"
    bad_number = {"n": {"DataType": "Number", "StringValue": "one"}}
    assert code_of(MessageBody="x", MessageAttributes=bad_number)[0] == "InvalidParameterValue"
    reserved = {"AWS.x": {"DataType": "String", "StringValue": "v"}}
    assert code_of(MessageBody="x", MessageAttributes=reserved)[0] == "InvalidParameterValue"
    assert code_of(MessageBody="x", MessageGroupId="g")[0] == "InvalidParameterValue"
    assert _counts(sqs, queue) == (0, 0, 0)


def test_messages_up_to_one_mebibyte_by_default_and_a_lowered_limit(sqs: Any, queue: str) -> None:
    body = "x" * 1048576
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    with pytest.raises(ClientError):
        sqs.send_message(QueueUrl=queue, MessageBody=body + "y")
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == body


def test_receive_rejects_bad_parameters(sqs: Any, queue: str) -> None:
    cases = [
        (
            {"MaxNumberOfMessages": 11},
            "Value 11 for parameter MaxNumberOfMessages is invalid. "
            "Reason: Must be between 1 and 10, if provided.",
        ),
        (
            {"MaxNumberOfMessages": 0},
            "Value 0 for parameter MaxNumberOfMessages is invalid. "
            "Reason: Must be between 1 and 10, if provided.",
        ),
        (
            {"WaitTimeSeconds": 21},
            "Value 21 for parameter WaitTimeSeconds is invalid. "
            "Reason: Must be >= 0 and <= 20, if provided.",
        ),
        (
            {"VisibilityTimeout": 43201},
            "Value 43201 for parameter VisibilityTimeout is invalid. "
            "Reason: Must be >= 0 and <= 43200, if provided.",
        ),
    ]
    for params, message in cases:
        with pytest.raises(ClientError) as excinfo:
            sqs.receive_message(QueueUrl=queue, **params)
        assert _error_of(excinfo)["Code"] == "InvalidParameterValue"
        assert _error_of(excinfo)["Message"] == message


def test_unacknowledged_message_reappears_after_visibility_timeout(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="again")
    first = sqs.receive_message(
        QueueUrl=queue, VisibilityTimeout=1, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )["Messages"][0]
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    assert _counts(sqs, queue) == (0, 1, 0)
    started = time.monotonic()
    # the long poll wakes when the hidden message becomes visible, not at WaitTimeSeconds
    second = sqs.receive_message(
        QueueUrl=queue, WaitTimeSeconds=5, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )["Messages"][0]
    assert time.monotonic() - started < 3
    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert second["ReceiptHandle"] != first["ReceiptHandle"]


def test_queue_visibility_timeout_applies_when_receive_gives_none(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName=f"vis-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "0"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    assert sqs.receive_message(QueueUrl=url)["Messages"]
    assert sqs.receive_message(QueueUrl=url)["Messages"]


def test_change_message_visibility(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="m")
    handle = sqs.receive_message(QueueUrl=queue)["Messages"][0]["ReceiptHandle"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    sqs.change_message_visibility(
        QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=600
    )
    assert _counts(sqs, queue) == (0, 1, 0)

    with pytest.raises(ClientError) as excinfo:  # stale: the message was received again
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0)
    assert _error_of(excinfo)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as excinfo:
        sqs.change_message_visibility(
            QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=43201
        )
    assert _error_of(excinfo)["Code"] == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as excinfo:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle="garbage!", VisibilityTimeout=0)
    assert _error_of(excinfo)["Code"] == "ReceiptHandleIsInvalid"


def test_malformed_or_foreign_receipt_handles_are_invalid(sqs: Any, queue: str) -> None:
    other = sqs.create_queue(QueueName=f"other-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=other, MessageBody="m")
    foreign = sqs.receive_message(QueueUrl=other)["Messages"][0]["ReceiptHandle"]
    for handle in ("not-a-handle", "%%%", foreign):
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as excinfo:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=handle)
        error = _error_of(excinfo)
        assert error["Code"] == "ReceiptHandleIsInvalid"
        assert (
            error["Message"]
            == f'The input receipt handle "{handle}" is not a valid receipt handle.'
        )
    assert _counts(sqs, other) == (0, 1, 0)


def test_long_poll_returns_as_soon_as_a_message_is_sent(
    sqs: Any, endpoint: str, queue: str
) -> None:
    sender = _client(endpoint)

    def send_later() -> None:
        time.sleep(0.3)
        sender.send_message(QueueUrl=queue, MessageBody="wake up")

    thread = threading.Thread(target=send_later)
    started = time.monotonic()
    thread.start()
    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10)
    elapsed = time.monotonic() - started
    thread.join()
    sender.close()
    assert got["Messages"][0]["Body"] == "wake up"
    assert 0.25 < elapsed < 3


def test_long_poll_returns_empty_after_wait_time(sqs: Any, queue: str) -> None:
    started = time.monotonic()
    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
    elapsed = time.monotonic() - started
    assert "Messages" not in got
    assert 0.9 < elapsed < 2.5


def test_queue_receive_wait_time_is_the_default_long_poll(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName=f"wait-{uuid.uuid4().hex[:8]}", Attributes={"ReceiveMessageWaitTimeSeconds": "1"}
    )["QueueUrl"]
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert 0.9 < time.monotonic() - started < 2.5
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert time.monotonic() - started < 0.5


def test_delayed_message_becomes_visible_after_its_delay(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="later", DelaySeconds=1)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    assert _counts(sqs, queue) == (0, 0, 1)
    started = time.monotonic()
    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)
    assert got["Messages"][0]["Body"] == "later"
    assert 0.5 < time.monotonic() - started < 3


def test_queue_delay_seconds_applies_to_sends(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName=f"delay-{uuid.uuid4().hex[:8]}", Attributes={"DelaySeconds": "600"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="delayed")
    sqs.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0)
    assert _counts(sqs, url) == (1, 0, 1)
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "now"


def test_redrive_moves_message_to_dead_letter_queue_after_max_receives(sqs: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dead-{suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    url = sqs.create_queue(QueueName=f"source-{suffix}", Attributes={"RedrivePolicy": policy})[
        "QueueUrl"
    ]
    sent = sqs.send_message(QueueUrl=url, MessageBody="poison", MessageAttributes=ATTRIBUTES)
    for count in ("1", "2"):
        got = sqs.receive_message(
            QueueUrl=url, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
        )["Messages"][0]
        assert got["Attributes"]["ApproximateReceiveCount"] == count
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert _counts(sqs, url) == (0, 0, 0)
    dead = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MessageAttributeNames=["All"])[
        "Messages"
    ][0]
    assert dead["Body"] == "poison"
    assert dead["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert dead["MessageAttributes"] == ATTRIBUTES


def test_send_message_batch_with_partial_failure(sqs: Any, queue: str) -> None:
    result = sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "ok-1", "MessageBody": "one", "MessageAttributes": ATTRIBUTES},
            {"Id": "bad", "MessageBody": "two", "DelaySeconds": 901},
            {"Id": "ok_2", "MessageBody": "three"},
        ],
    )
    assert [s["Id"] for s in result["Successful"]] == ["ok-1", "ok_2"]
    assert result["Successful"][0]["MD5OfMessageAttributes"] == ATTRIBUTES_MD5
    assert result["Successful"][1]["MD5OfMessageBody"] == hashlib.md5(b"three").hexdigest()
    assert result["Failed"] == [
        {
            "Id": "bad",
            "SenderFault": True,
            "Code": "InvalidParameterValue",
            "Message": "Value 901 for parameter DelaySeconds is invalid. Reason: DelaySeconds "
            "must be >= 0 and <= 900.",
        }
    ]
    assert _counts(sqs, queue) == (2, 0, 0)


def test_batch_request_errors(sqs: Any, queue: str) -> None:
    def error(entries: list[dict[str, Any]]) -> tuple[str, str]:
        with pytest.raises(ClientError) as excinfo:
            sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        return _error_of(excinfo)["Code"], _error_of(excinfo)["Message"]

    eleven = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    assert error(eleven) == (
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        "Maximum number of entries per request are 10. You have sent 11.",
    )
    assert error([{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}]) == (
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        "Id a repeated.",
    )
    assert error([{"Id": "a b", "MessageBody": "x"}])[0] == (
        "AWS.SimpleQueueService.InvalidBatchEntryId"
    )
    assert error([])[0] == "AWS.SimpleQueueService.EmptyBatchRequest"
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.delete_message_batch(
            QueueUrl=queue, Entries=[{"Id": str(i), "ReceiptHandle": "x"} for i in range(11)]
        )
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[{"Id": str(i), "MessageBody": "x" * 200_000} for i in range(6)],
        )
    assert _counts(sqs, queue) == (0, 0, 0)


def test_delete_and_change_visibility_batches_with_partial_failure(sqs: Any, queue: str) -> None:
    sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)]
    )
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["0", "1", "2"]
    handles = [m["ReceiptHandle"] for m in got]

    changed = sqs.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "a", "ReceiptHandle": handles[0], "VisibilityTimeout": 0},
            {"Id": "b", "ReceiptHandle": "junk", "VisibilityTimeout": 0},
            {"Id": "c", "ReceiptHandle": handles[1], "VisibilityTimeout": 99999},
        ],
    )
    assert changed["Successful"] == [{"Id": "a"}]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in changed["Failed"]] == [
        ("b", "ReceiptHandleIsInvalid", True),
        ("c", "InvalidParameterValue", True),
    ]
    assert _counts(sqs, queue) == (1, 2, 0)

    deleted = sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "x", "ReceiptHandle": handles[1]},
            {"Id": "y", "ReceiptHandle": "junk"},
            {"Id": "z", "ReceiptHandle": handles[2]},
        ],
    )
    assert deleted["Successful"] == [{"Id": "x"}, {"Id": "z"}]
    assert [(f["Id"], f["Code"]) for f in deleted["Failed"]] == [("y", "ReceiptHandleIsInvalid")]
    assert _counts(sqs, queue) == (1, 0, 0)


# -- the small SQS gaps: request ids, trace headers, whole-batch size, permissions, tags


def test_every_answer_carries_a_request_id(sqs: Any, queue: str) -> None:
    ok = sqs.get_queue_url(QueueName=queue.rsplit("/", 1)[-1])
    ids = {ok["ResponseMetadata"]["RequestId"]}
    with pytest.raises(ClientError) as excinfo:
        sqs.get_queue_url(QueueName="no-such-queue-here")
    ids.add(excinfo.value.response["ResponseMetadata"]["RequestId"])
    assert len(ids) == 2
    assert all(uuid.UUID(value) for value in ids)


def test_the_trace_header_is_kept_and_returned_only_when_asked(sqs: Any, queue: str) -> None:
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    system = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
    sent = sqs.send_message(QueueUrl=queue, MessageBody="traced", MessageSystemAttributes=system)
    assert sent["MD5OfMessageSystemAttributes"] == message_attributes_md5(system)
    got = sqs.receive_message(
        QueueUrl=queue,
        MessageSystemAttributeNames=["AWSTraceHeader"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
    )["Messages"][0]
    assert got["Attributes"] == {"AWSTraceHeader": trace}
    assert "MessageAttributes" not in got  # never listed as a user attribute
    plain = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"][0]
    assert "Attributes" not in plain
    every = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"])["Messages"][0]
    assert every["Attributes"]["AWSTraceHeader"] == trace

    def code_of(attributes: dict[str, Any]) -> str:
        with pytest.raises(ClientError) as excinfo:
            sqs.send_message(QueueUrl=queue, MessageBody="x", MessageSystemAttributes=attributes)
        return str(_error_of(excinfo)["Code"])

    assert code_of({"AWSTraceHeader": {"DataType": "Number", "StringValue": "1"}}) == (
        "InvalidParameterValue"
    )


def test_a_batch_is_limited_as_a_whole_request_even_with_bad_entries(sqs: Any, queue: str) -> None:
    entries = [{"Id": str(i), "MessageBody": "x" * 300_000} for i in range(3)]
    entries.append({"Id": "bad", "MessageBody": "x" * 300_000, "DelaySeconds": 9999})
    with pytest.raises(sqs.exceptions.BatchRequestTooLong) as excinfo:
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    assert "1200000 bytes" in str(excinfo.value)
    assert _counts(sqs, queue) == (0, 0, 0)


def test_add_and_remove_permission_edit_labelled_statements(sqs: Any, queue: str) -> None:
    name = queue.rsplit("/", 1)[-1]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"

    def policy() -> dict[str, Any] | None:
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])
        raw = attributes.get("Attributes", {}).get("Policy")
        return None if raw is None else dict(json.loads(raw))

    sqs.add_permission(
        QueueUrl=queue, Label="send", AWSAccountIds=["210987654321"], Actions=["SendMessage"]
    )
    sqs.add_permission(
        QueueUrl=queue,
        Label="read",
        AWSAccountIds=["210987654321", "111122223333"],
        Actions=["ReceiveMessage", "DeleteMessage"],
    )
    document = policy()
    assert document is not None and document["Id"] == f"{arn}/SQSDefaultPolicy"
    assert document["Statement"] == [
        {
            "Sid": "send",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": "SQS:SendMessage",
            "Resource": arn,
        },
        {
            "Sid": "read",
            "Effect": "Allow",
            "Principal": {
                "AWS": ["arn:aws:iam::210987654321:root", "arn:aws:iam::111122223333:root"]
            },
            "Action": ["SQS:ReceiveMessage", "SQS:DeleteMessage"],
            "Resource": arn,
        },
    ]

    def error(call: Any, **kwargs: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as excinfo:
            call(QueueUrl=queue, **kwargs)
        return _error_of(excinfo)["Code"], _error_of(excinfo)["Message"]

    assert error(
        sqs.add_permission, Label="send", AWSAccountIds=["210987654321"], Actions=["SendMessage"]
    ) == (
        "InvalidParameterValue",
        "Value send for parameter Label is invalid. Reason: Already exists.",
    )
    assert error(
        sqs.add_permission, Label="x", AWSAccountIds=["210987654321"], Actions=["DeleteQueue"]
    )[0] == ("InvalidParameterValue")
    assert error(sqs.add_permission, Label="x", AWSAccountIds=["12"], Actions=["SendMessage"])[
        0
    ] == ("InvalidParameterValue")
    assert error(sqs.remove_permission, Label="nope") == (
        "InvalidParameterValue",
        "Value nope for parameter Label is invalid. Reason: can't find label on existing policy.",
    )
    sqs.remove_permission(QueueUrl=queue, Label="send")
    remaining = policy()
    assert remaining is not None and [s["Sid"] for s in remaining["Statement"]] == ["read"]
    sqs.remove_permission(QueueUrl=queue, Label="read")
    assert policy() is None


def test_an_empty_policy_removes_it(sqs: Any, queue: str) -> None:
    document = {"Version": "2012-10-17", "Statement": []}
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps(document)})
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])
    assert json.loads(attributes["Attributes"]["Policy"]) == document
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": ""})
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])
    assert "Policy" not in attributes.get("Attributes", {})


def test_a_queue_holds_at_most_fifty_tags(sqs: Any, queue: str) -> None:
    sqs.tag_queue(QueueUrl=queue, Tags={f"k{i}": "v" for i in range(50)})
    with pytest.raises(ClientError) as excinfo:
        sqs.tag_queue(QueueUrl=queue, Tags={"one-more": "v"})
    assert _error_of(excinfo)["Code"] == "InvalidParameterValue"
    assert len(sqs.list_queue_tags(QueueUrl=queue)["Tags"]) == 50
