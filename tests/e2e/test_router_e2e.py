"""boto3 against a real ``eventyard serve``: buses, rules, three targets, retries, DLQ."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventyard.testing import ServerProcess
from tests.conftest import BACKENDS, backend_server
from tests.e2e.conftest import (
    ACCOUNT,
    E2E_SETTINGS,
    REGION,
    Receiver,
    client,
    deliveries_idle,
)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server for this module's tests on each backend (SQLite, JetStream).

    Each test uses its own resource names and ends with every delivery settled
    (:func:`deliveries_idle`), so none sees another's events or waits on its retries.
    Tests of the HTTP layer alone run on SQLite only (``on_sqlite_only``).
    """
    data_dir = tmp_path_factory.mktemp(f"router-e2e-{request.param}")
    with backend_server(request, request.param, data_dir, env=E2E_SETTINGS) as process:
        yield process


# the HTTP layer's answers, whatever store is behind it
on_sqlite_only = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


def _entry(i: int, kind: str, amount: int, bus: str = "orders") -> dict[str, Any]:
    return {
        "Source": "shop",
        "DetailType": kind,
        "Detail": json.dumps({"order": i, "amount": amount}),
        "EventBusName": bus,
    }


def _receive_all(sqs: Any, url: str, expected: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        for message in answer.get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


def test_boto3_bus_rule_three_targets_deliver_transform_and_dead_letter(
    server: Any, receiver_factory: Any
) -> None:
    events, sqs = client("events", server.url), client("sqs", server.url)
    good: Receiver = receiver_factory(200)
    bad: Receiver = receiver_factory(500)
    queue_url = sqs.create_queue(QueueName="stock")["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName="failed")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:failed"

    bus_arn = events.create_event_bus(Name="orders")["EventBusArn"]
    assert bus_arn == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/orders"
    rule_arn = events.put_rule(
        Name="placed",
        EventBusName="orders",
        EventPattern=json.dumps({"detail-type": ["OrderPlaced"]}),
    )["RuleArn"]
    assert rule_arn == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/orders/placed"
    answer = events.put_targets(
        Rule="placed",
        EventBusName="orders",
        Targets=[
            {"Id": "web", "Arn": good.url},
            {
                "Id": "stock",
                "Arn": queue_arn,
                "InputTransformer": {
                    "InputPathsMap": {"order": "$.detail.order"},
                    "InputTemplate": '{"reserve": <order>, "rule": "<aws.events.rule-name>"}',
                },
            },
            {
                "Id": "flaky",
                "Arn": bad.url,
                "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60},
                "DeadLetterConfig": {"Arn": dlq_arn},
            },
        ],
    )
    assert answer["FailedEntryCount"] == 0

    batch_one = [_entry(i, "OrderPlaced" if i % 2 == 0 else "OrderShipped", 10) for i in range(10)]
    batch_two = [_entry(i, "OrderPlaced", 20) for i in range(10, 14)]
    ids = []
    for batch in (batch_one, batch_two):
        result = events.put_events(Entries=batch)
        assert result["FailedEntryCount"] == 0
        ids += [e["EventId"] for e in result["Entries"]]
    placed = {0, 2, 4, 6, 8, 10, 11, 12, 13}

    received = good.wait_for(len(placed))
    first = received[0]
    assert first.headers["X-Eventyard-Event-Id"] in ids
    assert first.headers["X-Eventyard-Attempt"] == "1"

    messages = _receive_all(sqs, queue_url, len(placed))
    assert sorted(json.loads(m["Body"])["reserve"] for m in messages) == sorted(placed)
    assert {json.loads(m["Body"])["rule"] for m in messages} == {"placed"}

    dead = _receive_all(sqs, dlq_url, len(placed), timeout=30)
    assert sorted(json.loads(m["Body"])["detail"]["order"] for m in dead) == sorted(placed)
    attributes = dead[0]["MessageAttributes"]
    assert attributes["RULE_ARN"]["StringValue"] == rule_arn
    assert attributes["TARGET_ARN"]["StringValue"] == bad.url
    assert attributes["EXHAUSTED_RETRY_CONDITION"]["StringValue"] == "MaximumRetryAttempts"
    assert attributes["RETRY_ATTEMPTS"]["StringValue"] == "2"
    # every delivery is settled now: nothing unexpected can still arrive late
    deliveries_idle(server)
    bodies = good.bodies()
    assert sorted(b["detail"]["order"] for b in bodies) == sorted(placed)
    assert all(b["detail-type"] == "OrderPlaced" for b in bodies)
    # 1 attempt + 2 retries per event, and not one more
    assert len(bad.received()) == 3 * len(placed)


def _error(call: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    return (
        error["Error"]["Code"],
        error["Error"]["Message"],
        error["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_boto3_mistakes_get_aws_error_codes(server: Any) -> None:
    events = client("events", server.url)
    entry = {"Source": "s", "DetailType": "t", "Detail": "{}"}
    code, message, status = _error(lambda: events.put_events(Entries=[entry] * 11))
    assert (code, status) == ("ValidationException", 400)
    assert "Member must have length less than or equal to 10" in message

    huge = {**entry, "Detail": json.dumps({"x": "y" * (1024 * 1024)})}
    code, message, _ = _error(lambda: events.put_events(Entries=[huge]))
    assert (code, message) == (
        "ValidationException",
        "Total size of the entries in the request is over the limit.",
    )

    code, _, _ = _error(lambda: events.put_rule(Name="bad name!", EventPattern='{"a": ["b"]}'))
    assert code == "ValidationException"
    code, message, _ = _error(lambda: events.put_rule(Name="r", EventPattern='{"a": "b"}'))
    assert code == "InvalidEventPatternException"
    assert message.startswith('Event pattern is not valid. Reason: "a" must be an object')
    code, _, _ = _error(lambda: events.describe_rule(Name="missing"))
    assert code == "ResourceNotFoundException"
    events.create_event_bus(Name="dup")
    code, message, _ = _error(lambda: events.create_event_bus(Name="dup"))
    assert (code, message) == ("ResourceAlreadyExistsException", "Event bus dup already exists.")
    events.put_rule(Name="full", EventPattern='{"source": ["x"]}')
    targets = [{"Id": f"t{i}", "Arn": f"http://127.0.0.1:9/{i}"} for i in range(5)]
    events.put_targets(Rule="full", Targets=targets)
    code, _, _ = _error(
        lambda: events.put_targets(Rule="full", Targets=[{"Id": "t6", "Arn": "http://x/"}])
    )
    assert code == "LimitExceededException"


def _raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@on_sqlite_only
def test_malformed_requests_get_aws_shaped_errors_not_500(server: Any) -> None:
    amz = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}
    status, body = _raw(server.url, b"{not json", amz)
    assert status == 400 and body["__type"] == "SerializationException"
    status, body = _raw(server.url, b"[1, 2]", amz)
    assert status == 400 and body["__type"] == "SerializationException"
    status, body = _raw(server.url, b"{}", {**amz, "Content-Type": "text/plain"})
    assert status == 400 and body["__type"] == "SerializationException"
    status, body = _raw(server.url, b"{}", {**amz, "X-Amz-Target": "AWSEvents.Explode"})
    assert status == 400 and body["__type"] == "UnknownOperationException"
    status, body = _raw(server.url, b'{"Entries": "nope"}', amz)
    assert status == 400 and body["__type"] == "ValidationException"
    status, body = _raw(server.url, b'{"Entries": [1, 2]}', amz)
    assert status == 400 and body["__type"] == "ValidationException"
    status, body = _raw(server.url, b'{"Name": 5}', {**amz, "X-Amz-Target": "AWSEvents.PutRule"})
    assert status == 400 and body["__type"] == "ValidationException"


@on_sqlite_only
def test_health_endpoints_answer(server: Any) -> None:
    with urllib.request.urlopen(server.url + "/livez") as answer:
        assert answer.status == 200
    with urllib.request.urlopen(server.url + "/readyz") as answer:
        assert answer.status == 200
    with urllib.request.urlopen(server.url + "/metrics") as answer:
        assert b"eventyard_events_total" in answer.read()


def test_disabled_rule_stops_matching_and_enabled_rule_resumes(
    server: Any, receiver_factory: Any
) -> None:
    events = client("events", server.url)
    hook: Receiver = receiver_factory(200)
    events.put_rule(Name="r", EventPattern='{"source": ["s"]}')
    events.put_targets(Rule="r", Targets=[{"Id": "h", "Arn": hook.url}])
    entry = {"Source": "s", "DetailType": "t", "Detail": '{"n": 1}'}
    events.put_events(Entries=[entry])
    hook.wait_for(1)
    events.disable_rule(Name="r")
    events.put_events(Entries=[{**entry, "Detail": '{"n": 2}'}])
    events.enable_rule(Name="r")
    events.put_events(Entries=[{**entry, "Detail": '{"n": 3}'}])
    hook.wait_for(2)
    deliveries_idle(server)
    assert [b["detail"]["n"] for b in hook.bodies()] == [1, 3]


def test_bus_target_forwards_one_hop_only(server: Any, receiver_factory: Any) -> None:
    events = client("events", server.url)
    hook: Receiver = receiver_factory(200)
    for name in ("a", "b", "c"):
        events.create_event_bus(Name=name)
    everything = '{"source": ["s"]}'
    bus_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/"
    events.put_rule(Name="ab", EventBusName="a", EventPattern=everything)
    events.put_targets(Rule="ab", EventBusName="a", Targets=[{"Id": "b", "Arn": bus_arn + "b"}])
    events.put_rule(Name="bc", EventBusName="b", EventPattern=everything)
    events.put_targets(
        Rule="bc",
        EventBusName="b",
        Targets=[{"Id": "c", "Arn": bus_arn + "c"}, {"Id": "h", "Arn": hook.url}],
    )
    events.put_rule(Name="ch", EventBusName="c", EventPattern=everything)
    events.put_targets(Rule="ch", EventBusName="c", Targets=[{"Id": "h", "Arn": hook.url}])
    answer = events.put_events(
        Entries=[{"Source": "s", "DetailType": "t", "Detail": "{}", "EventBusName": "a"}]
    )
    hook.wait_for(1)
    deliveries_idle(server)
    bodies = hook.bodies()
    assert len(bodies) == 1, "b must not forward an event it received from a to c"
    assert bodies[0]["id"] == answer["Entries"][0]["EventId"]


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response: its head, then Content-Length bytes (or up to the close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    while match is None or len(body) < int(match[1]):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@on_sqlite_only
def test_an_oversized_request_body_is_refused_without_buffering_it(server: Any) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n"
            b"X-Amz-Target: AWSEvents.PutEvents\r\nContent-Length: 104857600\r\n\r\n"
        )
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"SerializationException" in answer
    amz = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.ListEventBuses"}
    status, _ = _raw(server.url, b"{}", amz)
    assert status == 200
