"""Quotas as AWS documents them, each settable: past one, a clear LimitExceeded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from eventyard.testing import ServerProcess
from tests.e2e.conftest import client

QUOTAS = {
    "EVENTYARD_MAX_BUSES": "2",
    "EVENTYARD_MAX_RULES_PER_BUS": "2",
    "EVENTYARD_MAX_QUEUES": "2",
    "EVENTYARD_MAX_TAGS": "3",
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("quotas"), env=QUOTAS).start()
    try:
        yield server
    finally:
        server.stop()


def _code(call: Any) -> tuple[str, str]:
    try:
        call()
    except Exception as exc:  # botocore's ClientError, per service
        error = exc.response["Error"]  # type: ignore[attr-defined]
        return error["Code"], error["Message"]
    raise AssertionError("the call succeeded")


def test_buses_past_the_quota_are_refused_and_existing_names_still_answer_exists(
    small: ServerProcess,
) -> None:
    events = client("events", small.url)
    events.create_event_bus(Name="q1")
    events.create_event_bus(Name="q2")
    code, message = _code(lambda: events.create_event_bus(Name="q3"))
    assert code == "LimitExceededException"
    assert "2 event buses" in message
    assert _code(lambda: events.create_event_bus(Name="q1"))[0] == (
        "ResourceAlreadyExistsException"
    )


def test_rules_past_the_quota_of_one_bus_are_refused_but_replacing_one_works(
    small: ServerProcess,
) -> None:
    events = client("events", small.url)
    pattern = '{"source": ["s"]}'
    events.put_rule(Name="r1", EventPattern=pattern)
    events.put_rule(Name="r2", EventPattern=pattern)
    code, message = _code(lambda: events.put_rule(Name="r3", EventPattern=pattern))
    assert (code, "2 rules on bus default" in message) == ("LimitExceededException", True)
    events.put_rule(Name="r1", EventPattern='{"source": ["t"]}')  # a replacement is no new rule


def test_tags_past_the_quota_are_refused(small: ServerProcess) -> None:
    events = client("events", small.url)
    arn = events.describe_event_bus(Name="default")["Arn"]
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(3)]
    events.tag_resource(ResourceARN=arn, Tags=tags)
    code, message = _code(
        lambda: events.tag_resource(ResourceARN=arn, Tags=[{"Key": "k9", "Value": "v"}])
    )
    assert code == "LimitExceededException" and "3 tags" in message


def test_queues_past_the_quota_get_sqs_over_limit(small: ServerProcess) -> None:
    sqs = client("sqs", small.url)
    sqs.create_queue(QueueName="q1")
    sqs.create_queue(QueueName="q2")
    code, message = _code(lambda: sqs.create_queue(QueueName="q3"))
    assert code == "OverLimit"
    assert "maximum number of queues (2)" in message
    assert sqs.create_queue(QueueName="q1")["QueueUrl"].endswith("/q1")  # idempotent
    url = sqs.get_queue_url(QueueName="q2")["QueueUrl"]
    sqs.tag_queue(QueueUrl=url, Tags={"a": "1", "b": "2", "c": "3"})
    code, message = _code(lambda: sqs.tag_queue(QueueUrl=url, Tags={"d": "4"}))
    assert "at most 3 per queue" in message
