"""The SDK's transport: batching, retries, timeouts and error translation, against a stub.

The stub answers what a real server cannot be made to (a throttled entry, a 500, a
hang, garbage); every failure must reach the caller as an ``eventyard.errors`` error.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from eventyard import Event
from eventyard.errors import (
    ConcurrentModification,
    EventyardError,
    InternalError,
    PutEventsFailed,
    QueueError,
    ServiceError,
    TransportError,
    ValidationError,
)
from eventyard.sdk._core import Call, Core, Reply, service_error
from eventyard.sdk.client import AsyncClient, Client

from .conftest import Stub, StubRequest, Twin

MakeTwin = Callable[..., Twin]


def accept_all(request: StubRequest, number: int) -> Any:
    entries = request.params["Entries"]
    return 200, {
        "FailedEntryCount": 0,
        "Entries": [{"EventId": f"id-{detail_n(entry)}"} for entry in entries],
    }


def events(count: int, size: int = 0) -> list[Event]:
    return [Event("s", "t", {"n": n, "pad": "x" * size}) for n in range(count)]


def detail_n(entry: dict[str, Any]) -> int:
    return int(json.loads(entry["Detail"])["n"])


def assert_ours(exc: BaseException) -> None:
    """An eventyard error; any httpx or JSON error is at most its cause."""
    assert isinstance(exc, EventyardError)
    assert not isinstance(exc, httpx.HTTPError | httpx.InvalidURL | json.JSONDecodeError)
    assert not isinstance(exc, orjson.JSONDecodeError | orjson.JSONEncodeError)
    assert type(exc).__module__.startswith("eventyard")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_put_events_splits_into_batches_of_ten(make_twin: MakeTwin, stub: Stub) -> None:
    stub.respond = accept_all
    ids = await make_twin(stub.url).put_events(events(25))
    sizes = [len(r.params["Entries"]) for r in stub.requests]
    assert sizes == [10, 10, 5]
    sent = [detail_n(e) for r in stub.requests for e in r.params["Entries"]]
    assert sent == list(range(25))
    assert ids == [f"id-{n}" for n in range(25)]


async def test_put_events_splits_by_the_one_mib_request_size(
    make_twin: MakeTwin, stub: Stub
) -> None:
    stub.respond = accept_all
    await make_twin(stub.url).put_events(events(5, size=300_000))
    assert [len(r.params["Entries"]) for r in stub.requests] == [3, 2]


async def test_put_events_retries_throttled_entries_and_keeps_input_order(
    make_twin: MakeTwin, stub: Stub
) -> None:
    def throttle_once(request: StubRequest, number: int) -> Any:
        answers: list[dict[str, str]] = []
        for entry in request.params["Entries"]:
            n = detail_n(entry)
            if n == 3 and number == 1:
                answers.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            elif n == 11 and number in (2, 3):
                answers.append({"ErrorCode": "InternalFailure", "ErrorMessage": "oops"})
            else:
                answers.append({"EventId": f"id-{n}"})
        failed = sum("ErrorCode" in a for a in answers)
        return 200, {"FailedEntryCount": failed, "Entries": answers}

    stub.respond = throttle_once
    ids = await make_twin(stub.url).put_events(events(12))
    assert ids == [f"id-{n}" for n in range(12)]
    retried = [[detail_n(e) for e in r.params["Entries"]] for r in stub.requests[2:]]
    assert retried == [[3, 11], [11]]


async def test_put_events_gives_up_after_retries_and_names_the_entry(
    make_twin: MakeTwin, stub: Stub
) -> None:
    def always_fail_second(request: StubRequest, number: int) -> Any:
        answers = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "down"}
            if detail_n(e) == 1
            else {"EventId": f"id-{detail_n(e)}"}
            for e in request.params["Entries"]
        ]
        return 200, {"FailedEntryCount": 1, "Entries": answers}

    stub.respond = always_fail_second
    with pytest.raises(PutEventsFailed) as caught:
        await make_twin(stub.url, retries=2).put_events(events(3))
    assert caught.value.failures == [(1, "InternalFailure", "down")]
    assert len(stub.requests) == 3  # the first try and two retries


async def test_put_events_refused_batch_fails_its_entries_but_others_are_sent(
    make_twin: MakeTwin, stub: Stub
) -> None:
    def refuse_first(request: StubRequest, number: int) -> Any:
        if number == 1:
            return 400, {"__type": "ValidationException", "message": "too big"}
        return accept_all(request, number)

    stub.respond = refuse_first
    with pytest.raises(PutEventsFailed) as caught:
        await make_twin(stub.url).put_events(events(11))
    assert [f[0] for f in caught.value.failures] == list(range(10))
    assert caught.value.failures[0][1:] == ("ValidationException", "too big")
    assert len(stub.requests) == 2


async def test_idempotent_calls_are_retried_after_5xx_and_throttling(
    make_twin: MakeTwin, stub: Stub
) -> None:
    def flaky(request: StubRequest, number: int) -> Any:
        if number == 1:
            return 500, {"__type": "InternalException", "message": "Internal error."}
        if number == 2:
            return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        return 200, {"Rules": [{"Name": "r"}]}

    stub.respond = flaky
    assert await make_twin(stub.url).list_rules() == [{"Name": "r"}]
    assert len(stub.requests) == 3


async def test_put_events_is_not_resent_after_a_500(make_twin: MakeTwin, stub: Stub) -> None:
    stub.respond = lambda request, number: (500, {"__type": "InternalException", "message": "x"})
    with pytest.raises(PutEventsFailed) as caught:
        await make_twin(stub.url).put_events(events(2))
    assert caught.value.failures[0][1] == "InternalException"
    assert len(stub.requests) == 1


async def test_retries_zero_sends_once(make_twin: MakeTwin, stub: Stub) -> None:
    stub.respond = lambda request, number: (503, {"__type": "InternalException", "message": "x"})
    with pytest.raises(InternalError):
        await make_twin(stub.url, retries=0).describe_rule("r")
    assert len(stub.requests) == 1


async def test_requests_carry_the_aws_target_and_content_type(
    make_twin: MakeTwin, stub: Stub
) -> None:
    stub.respond = lambda request, number: (200, {"QueueUrl": "http://x/000000000000/q"})
    api = make_twin(stub.url)
    await api.create_queue("q")
    await api.delete_rule("r")
    [queue, rule] = stub.requests
    assert queue.target == "AmazonSQS.CreateQueue"
    assert queue.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert rule.target == "AWSEvents.DeleteRule"
    assert rule.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert rule.params == {"Name": "r", "EventBusName": "default"}


async def test_queue_urls_are_looked_up_once_and_cached(make_twin: MakeTwin, stub: Stub) -> None:
    def answer(request: StubRequest, number: int) -> Any:
        if request.target == "AmazonSQS.GetQueueUrl":
            return 200, {"QueueUrl": f"http://h/000000000000/{request.params['QueueName']}"}
        return 200, {"MessageId": "m"}

    stub.respond = answer
    api = make_twin(stub.url)
    for _ in range(3):
        await api.send_message("orders", "x")
    assert stub.targets() == ["AmazonSQS.GetQueueUrl"] + ["AmazonSQS.SendMessage"] * 3
    assert stub.requests[1].params["QueueUrl"] == "http://h/000000000000/orders"


QUEUE_URL = "http://h/000000000000/q"


def settle_batch(fail: Callable[[dict[str, Any], int], bool | None]) -> Any:
    """A batch answer: ``fail(entry, request number)`` is None (success) or the SenderFault."""

    def respond(request: StubRequest, number: int) -> Any:
        successful, failed = [], []
        for entry in request.params["Entries"]:
            sender_fault = fail(entry, number)
            if sender_fault is None:
                successful.append({"Id": entry["Id"]})
            else:
                code = "ReceiptHandleIsInvalid" if sender_fault else "InternalError"
                failed.append(
                    {"Id": entry["Id"], "SenderFault": sender_fault, "Code": code, "Message": "x"}
                )
        return 200, {"Successful": successful, "Failed": failed}

    return respond


async def test_delete_messages_sends_chunks_of_ten_and_resends_server_faults_only(
    make_twin: MakeTwin, stub: Stub
) -> None:
    def fail(entry: dict[str, Any], number: int) -> bool | None:
        if entry["ReceiptHandle"] == "bad":
            return True
        if entry["ReceiptHandle"] == "flaky" and number <= 3:
            return False
        return None

    stub.respond = settle_batch(fail)
    receipts = [f"r{n}" for n in range(25)]
    receipts[3], receipts[20] = "bad", "flaky"
    assert await make_twin(stub.url).delete_messages(QUEUE_URL, receipts) == ["bad"]
    assert stub.targets() == ["AmazonSQS.DeleteMessageBatch"] * 4
    sent = [request.params["Entries"] for request in stub.requests]
    assert [len(entries) for entries in sent] == [10, 10, 5, 1]  # then "flaky" alone
    assert [e["ReceiptHandle"] for e in sent[0] + sent[1] + sent[2]] == receipts
    assert sent[3][0]["ReceiptHandle"] == "flaky"
    assert all(len({e["Id"] for e in entries}) == len(entries) for entries in sent)
    assert all(request.params["QueueUrl"] == QUEUE_URL for request in stub.requests)


async def test_a_server_fault_refusal_is_final_once_the_retries_are_spent(
    make_twin: MakeTwin, stub: Stub
) -> None:
    stub.respond = settle_batch(
        lambda entry, number: False if entry["ReceiptHandle"] == "b" else None
    )
    refused = await make_twin(stub.url, retries=1).change_visibility_batch(
        QUEUE_URL, ["a", "b", "c"], 7
    )
    assert refused == ["b"]
    assert [len(r.params["Entries"]) for r in stub.requests] == [3, 1]
    assert all(e["VisibilityTimeout"] == 7 for r in stub.requests for e in r.params["Entries"])
    assert stub.targets() == ["AmazonSQS.ChangeMessageVisibilityBatch"] * 2


async def test_settling_no_receipts_sends_no_request(make_twin: MakeTwin, stub: Stub) -> None:
    api = make_twin(stub.url)
    assert await api.delete_messages("q", []) == []
    assert await api.change_visibility_batch("q", [], 5) == []
    assert stub.requests == []


async def test_a_batch_answer_that_leaves_out_an_entry_raises_client_error(
    make_twin: MakeTwin, stub: Stub
) -> None:
    stub.respond = lambda request, number: (200, {"Successful": [{"Id": "0"}], "Failed": []})
    with pytest.raises(TransportError) as caught:
        await make_twin(stub.url).delete_messages(QUEUE_URL, ["a", "b"])
    assert_ours(caught.value)
    assert "entry 1 is neither Successful nor Failed" in str(caught.value)


async def test_receive_asks_for_the_attributes_it_needs_and_waits_beyond_timeout(
    make_twin: MakeTwin, stub: Stub
) -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "b",
        "Attributes": {
            "ApproximateReceiveCount": "3",
            "SentTimestamp": "1700000000123",
            "ApproximateFirstReceiveTimestamp": "1700000001000",
        },
        "MessageAttributes": {
            "a": {"DataType": "String", "StringValue": "x"},
            "b": {"DataType": "Binary", "BinaryValue": "AQI="},
        },
    }
    stub.respond = lambda request, number: ("sleep", 0.4, (200, {"Messages": [message]}))
    [got] = await make_twin(stub.url, timeout=0.2, retries=0).receive_messages(
        "http://h/000000000000/q", max_messages=5, wait=1, visibility_timeout=9
    )
    assert got.receive_count == 3 and got.sent == 1700000000.123
    assert got.first_receive == 1700000001.0
    assert got.attributes == {"a": "x", "b": "AQI="}
    params = stub.requests[0].params
    assert params["MaxNumberOfMessages"] == 5 and params["WaitTimeSeconds"] == 1
    assert params["VisibilityTimeout"] == 9 and params["MessageAttributeNames"] == ["All"]
    assert set(params["MessageSystemAttributeNames"]) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "ApproximateFirstReceiveTimestamp",
    }


async def test_timeout_is_configurable_and_raises_client_error(
    make_twin: MakeTwin, stub: Stub
) -> None:
    stub.respond = lambda request, number: ("sleep", 1.0, (200, {}))
    started = time.monotonic()
    with pytest.raises(
        TransportError, match=r"did not answer DescribeEventBus within 0.2 s"
    ) as caught:
        await make_twin(stub.url, timeout=0.2, retries=0).describe_bus()
    assert time.monotonic() - started < 0.9
    assert_ours(caught.value)


async def test_connection_refused_raises_client_error_naming_the_url(
    make_twin: MakeTwin,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransportError, match=f"cannot reach eventyard at {url}: ") as caught:
        await make_twin(url, retries=1).put_events(Event("s", "t"))
    assert_ours(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        (200, b"<html>not json</html>"),
        (200, [1, 2]),
        (502, b"<html>Bad Gateway</html>"),
        (400, {"no": "type"}),
        "close",
    ],
    ids=["200-not-json", "200-not-object", "502-html", "error-without-type", "dropped"],
)
async def test_foreign_failures_never_reach_the_caller(
    make_twin: MakeTwin, stub: Stub, answer: Any
) -> None:
    stub.respond = lambda request, number: answer
    api = make_twin(stub.url, retries=1)
    for call in (lambda: api.put_events(Event("s", "t")), api.list_queues):
        with pytest.raises(EventyardError) as caught:
            await call()
        assert_ours(caught.value)


async def test_a_closed_client_raises_client_error(make_twin: MakeTwin, stub: Stub) -> None:
    api = make_twin(stub.url)
    if isinstance(api.client, AsyncClient):
        await api.client.aclose()
    else:
        api.client.close()
    with pytest.raises(TransportError, match="is closed") as caught:
        await api.describe_bus()
    assert_ours(caught.value)


def test_an_invalid_url_raises_client_error() -> None:
    with pytest.raises(TransportError, match="invalid eventyard URL"):
        Client("localhost:4010")


def test_the_default_url_is_local_port_4010(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTYARD_URL", raising=False)
    with Client() as client:
        assert client.url == "http://127.0.0.1:4010"


ERROR_CASES = [
    (
        "AWSEvents",
        400,
        {"__type": "ConcurrentModificationException", "message": "m"},
        {},
        ConcurrentModification,
        "ConcurrentModificationException",
    ),
    (
        "AWSEvents",
        400,
        {"__type": "com.amazonaws.events#ValidationException", "message": "m"},
        {},
        ValidationError,
        "ValidationException",
    ),
    (
        "AWSEvents",
        400,
        {"__type": "SomethingNew", "message": "m"},
        {},
        ServiceError,
        "SomethingNew",
    ),
    (
        "AmazonSQS",
        400,
        {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "m"},
        {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
        QueueError,
        "AWS.SimpleQueueService.NonExistentQueue",
    ),
    (
        "AmazonSQS",
        400,
        {"__type": "com.amazonaws.sqs#InvalidAttributeName", "message": "m"},
        {},
        QueueError,
        "InvalidAttributeName",
    ),
    (
        "AWSEvents",
        500,
        {"__type": "InternalException", "message": "m"},
        {},
        InternalError,
        "InternalException",
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_answers_map_to_the_error_tree(case: tuple[Any, ...]) -> None:
    service, status, body, headers, cls, code = case
    error = service_error(service, Reply(status, headers, orjson.dumps(body)))
    assert type(error) is cls
    assert isinstance(error, ServiceError)
    assert (error.code, error.message, error.status) == (code, "m", status)


def test_a_throttled_request_is_retried_even_when_not_idempotent() -> None:
    core = Core("http://x", timeout=1, retries=3)
    throttled = ServiceError("slow", code="ThrottlingException")
    assert core.retryable(Call("AWSEvents", "PutEvents"), throttled)
    assert not core.retryable(Call("AWSEvents", "PutEvents"), InternalError("x"))
    assert core.retryable(Call("AWSEvents", "PutRule"), InternalError("x"))


async def test_a_signing_secret_rotation_is_not_resent_after_a_500(
    make_twin: MakeTwin, stub: Stub
) -> None:
    # sent twice, a rotation that kept the previous secret would push the receiver's
    # current secret out (the first answer's secret becoming the "previous" one)
    stub.respond = lambda request, number: (500, {"__type": "InternalException", "message": "x"})
    with pytest.raises(InternalError):
        await make_twin(stub.url).put_signing_secret("r", "hook")
    assert stub.targets() == ["AWSEvents.PutTargetSigningSecret"]
