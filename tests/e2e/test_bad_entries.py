"""One bad PutEvents entry fails only itself, with AWS's per-entry error, never a 5xx."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.e2e.conftest import client


def _put_events(url: str, entries: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """PutEvents as raw AWS JSON: an attacker is not bound by boto3's client-side checks."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"Entries": entries}).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSEvents.PutEvents",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_entries_out_of_range_fail_alone_and_the_rest_of_the_batch_is_accepted(
    server: Any,
) -> None:
    good = {"Source": "shop", "DetailType": "OrderPlaced", "Detail": json.dumps({"id": 1})}
    bad = [
        {**good, "Time": 1e12},  # past the year 9999
        {**good, "Time": "1e300"},
        {**good, "Time": -1e12},  # before the year 1
        {**good, "Detail": _nested(300)},
        {**good, "Detail": '{"n": 1e400}'},  # not a finite double
    ]
    status, answer = _put_events(server.url, [good, *bad[:4]])
    assert status == 200
    assert answer["FailedEntryCount"] == 4
    entries = answer["Entries"]
    assert "EventId" in entries[0]
    assert [e["ErrorCode"] for e in entries[1:]] == ["InvalidArgument"] * 4
    assert [e["ErrorMessage"] for e in entries[1:4]] == ["Parameter Time is not valid."] * 3
    assert "nested deeper than 253 levels" in entries[4]["ErrorMessage"]
    status, answer = _put_events(server.url, [bad[4], good])
    assert status == 200
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0]["ErrorCode"] == "MalformedDetail"
    assert "EventId" in answer["Entries"][1]


def test_the_deepest_accepted_detail_is_matched_and_delivered(server: Any) -> None:
    events, sqs = client("events", server.url), client("sqs", server.url)
    queue_url = sqs.create_queue(QueueName="deep-detail")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events.create_event_bus(Name="deep")
    events.put_rule(Name="deep", EventBusName="deep", EventPattern='{"source": ["deep"]}')
    events.put_targets(
        Rule="deep",
        EventBusName="deep",
        Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
    )
    detail = _nested(253)
    entry = {"EventBusName": "deep", "Source": "deep", "DetailType": "d", "Detail": detail}
    answer = events.put_events(Entries=[entry])
    assert answer["FailedEntryCount"] == 0
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=10)["Messages"]
    assert json.loads(messages[0]["Body"])["detail"] == json.loads(detail)
