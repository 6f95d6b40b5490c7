"""boto3 against a real ``eventyard serve``: a ``rate(1 minute)`` rule delivers to a queue.

The server runs with ``EVENTYARD_SCHEDULE_TIME_SCALE=60``: its scheduler's clock runs
sixty times as fast as the wall clock, so a one-minute schedule fires about every real
second and no test waits a minute.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventyard.testing import ServerProcess
from tests.e2e.conftest import ACCOUNT, E2E_SETTINGS, REGION, client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {**E2E_SETTINGS, "EVENTYARD_SCHEDULE_TIME_SCALE": "60"}
    with ServerProcess(tmp_path_factory.mktemp("schedules-e2e"), env=env) as process:
        yield process


def _receive(sqs: Any, url: str, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Receive (and delete) messages until ``expected`` have arrived; their bodies."""
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < expected and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert len(bodies) >= expected, f"{len(bodies)} of {expected} scheduled events arrived"
    return bodies


def test_a_rate_rule_delivers_scheduled_events_to_its_queue(server: ServerProcess) -> None:
    events, sqs = client("events", server.url), client("sqs", server.url)
    url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ticks"
    rule_arn = events.put_rule(Name="every-minute", ScheduleExpression="rate(1 minute)")["RuleArn"]
    assert rule_arn == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/every-minute"
    events.put_targets(Rule="every-minute", Targets=[{"Id": "q", "Arn": queue_arn}])
    described = events.describe_rule(Name="every-minute")
    assert described["ScheduleExpression"] == "rate(1 minute)"
    assert "EventPattern" not in described

    first, second = _receive(sqs, url, 2)[:2]
    for event in (first, second):
        assert event["source"] == "aws.events"
        assert event["detail-type"] == "Scheduled Event"
        assert event["detail"] == {}
        assert event["resources"] == [rule_arn]
        assert (event["account"], event["region"]) == (ACCOUNT, REGION)
    assert first["id"] != second["id"]
    times = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in (first, second)]
    # consecutive ticks of a one-minute rate, on whole minutes
    assert (times[1] - times[0]).total_seconds() == 60
    assert all(t.second == 0 for t in times)

    # the rule lists with its schedule and no pattern, as on AWS
    [listed] = events.list_rules(NamePrefix="every-minute")["Rules"]
    assert listed["ScheduleExpression"] == "rate(1 minute)"
    assert "EventPattern" not in listed
    events.remove_targets(Rule="every-minute", Ids=["q"])
    events.delete_rule(Name="every-minute")


def test_schedules_are_refused_on_a_custom_bus_and_when_malformed(server: ServerProcess) -> None:
    events = client("events", server.url)
    events.create_event_bus(Name="orders")
    with pytest.raises(ClientError) as info:
        events.put_rule(Name="r", EventBusName="orders", ScheduleExpression="rate(1 minute)")
    assert info.value.response["Error"]["Message"] == (
        "ScheduleExpression is supported only on the default event bus."
    )
    with pytest.raises(ClientError) as info:
        events.put_rule(Name="r", ScheduleExpression="cron(0 1 * * * *)")
    assert info.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Parameter ScheduleExpression is not valid.",
    }


def test_kill_9_while_rules_fire_never_fires_a_tick_twice(tmp_path: Path) -> None:
    """Five rules firing ten times a second (a one-minute rate, the clock at 600 times
    real time), the server killed with SIGKILL three times: every tick of every rule is
    one event at most, and the ticks after each restart go on from where they were."""
    origin = time.time()
    env = {
        **E2E_SETTINGS,
        "EVENTYARD_SCHEDULE_TIME_SCALE": "600",
        "EVENTYARD_SCHEDULE_TIME_ORIGIN": repr(origin),
    }
    server = ServerProcess(tmp_path / "data", env=env).start()
    seen: dict[str, dict[str, str]] = {}  # rule ARN → event id → time
    try:
        events, sqs = client("events", server.url), client("sqs", server.url)
        url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
        for n in range(5):
            events.put_rule(Name=f"r{n}", ScheduleExpression="rate(1 minute)")
            events.put_targets(
                Rule=f"r{n}",
                Targets=[{"Id": "q", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ticks"}],
            )
        for _ in range(3):
            received = _receive(client("sqs", server.url), url, 30)
            for event in received:
                seen.setdefault(event["resources"][0], {})[event["id"]] = event["time"]
            server.kill()
            server.start()
        for event in _receive(client("sqs", server.url), url, 30):
            seen.setdefault(event["resources"][0], {})[event["id"]] = event["time"]
    finally:
        server.stop()
    assert len(seen) == 5
    for rule, fired in seen.items():
        ticks = sorted(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in fired.values())
        assert len(ticks) == len(set(ticks)), f"{rule} fired a tick twice"
        gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(ticks)}
        assert all(gap % 60 == 0 and gap > 0 for gap in gaps), (rule, sorted(gaps))
