"""What the fuzz runs found, one example each: the input that once got a 5xx, and its answer now.

Each test sends the reproducer the fuzzer reported (reduced by hand) to the real app over
a real store and states the clean 4xx it gets instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fuzz.harness import Answer, InProcessServer
from tests.fuzz.requests import ACCOUNT, REGION, Raw, request_for

QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:q1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with InProcessServer(Path(tmp_path_factory.mktemp("findings-data"))) as running:
        yield running


def _call(server: InProcessServer, service: str, operation: str, params: Any) -> Answer:
    return server.call(request_for(service, operation, params))


def _error(answer: Answer) -> tuple[int | None, str, str]:
    body = orjson.loads(answer.body)
    return answer.status, body["__type"], body["message"]


def test_put_targets_with_a_target_nested_600_deep_is_a_validation_error_not_a_500(
    server: InProcessServer,
) -> None:
    rule = {"Name": "deep-target", "EventPattern": '{"source":["x"]}'}
    assert _call(server, "events", "PutRule", rule).status == 200
    deep = Raw("[" * 600 + "]" * 600)
    for target in (
        {"Id": "t1", "Arn": QUEUE_ARN, "X": deep},
        {"Id": "t1", "Arn": QUEUE_ARN, "RetryPolicy": {"X": deep}},
    ):
        answer = _call(server, "events", "PutTargets", {"Rule": "deep-target", "Targets": [target]})
        assert _error(answer) == (
            400,
            "ValidationException",
            "Parameter Targets[0] is not valid. Reason: it is nested deeper than 253 levels.",
        )
    listed = _call(server, "events", "ListTargetsByRule", {"Rule": "deep-target"})
    assert orjson.loads(listed.body) == {"Targets": []}


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("PurgeQueue", {"QueueUrl": "http://[::1"}),
        ("SendMessage", {"QueueUrl": "http://[::1", "MessageBody": "x"}),
        ("DeleteMessageBatch", {"QueueUrl": "http://[::1", "Entries": []}),
    ],
)
def test_a_queue_url_with_an_unclosed_ipv6_host_is_queue_does_not_exist_not_a_500(
    server: InProcessServer, operation: str, params: dict[str, Any]
) -> None:
    answer = _call(server, "sqs", operation, params)
    assert _error(answer) == (
        400,
        "com.amazonaws.sqs#QueueDoesNotExist",
        "The specified queue does not exist.",
    )
    assert answer.header(b"x-amzn-query-error") == b"AWS.SimpleQueueService.NonExistentQueue;Sender"
