"""boto3's ``scheduler`` client against a real ``eventyard serve``.

The server's scheduler clock runs sixty times as fast as the wall clock from a known
origin (``EVENTYARD_SCHEDULE_TIME_SCALE=60``, ``EVENTYARD_SCHEDULE_TIME_ORIGIN``), so a
one-minute rate fires about every real second, and a one-time ``at()`` two scheduled
minutes ahead fires about two real seconds later: no test waits a minute.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventyard.testing import ServerProcess
from tests.e2e.conftest import ACCOUNT, E2E_SETTINGS, REGION, client

SCALE = 60.0
ROLE = f"arn:aws:iam::{ACCOUNT}:role/scheduler"
OFF = {"Mode": "OFF"}


@pytest.fixture(scope="module")
def origin() -> float:
    return time.time()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, origin: float) -> Iterator[ServerProcess]:
    env = {
        **E2E_SETTINGS,
        "EVENTYARD_SCHEDULE_TIME_SCALE": repr(SCALE),
        "EVENTYARD_SCHEDULE_TIME_ORIGIN": repr(origin),
    }
    with ServerProcess(tmp_path_factory.mktemp("scheduler-e2e"), env=env) as process:
        yield process


def _scheduled_now(origin: float) -> float:
    """The server's scheduler clock now (it runs SCALE times as fast from ``origin``)."""
    return origin + (time.time() - origin) * SCALE


def _receive(sqs: Any, url: str, expected: int, timeout: float = 30.0) -> list[Any]:
    bodies: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < expected and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert len(bodies) >= expected, f"{len(bodies)} of {expected} invocations arrived"
    return bodies


def test_a_one_time_and_a_rate_schedule_deliver_to_a_queue(
    server: ServerProcess, origin: float
) -> None:
    scheduler, sqs = client("scheduler", server.url), client("sqs", server.url)
    url = sqs.create_queue(QueueName="invocations")["QueueUrl"]
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:invocations"
    when = datetime.fromtimestamp(int(_scheduled_now(origin)) + 120, UTC)
    at = when.strftime("%Y-%m-%dT%H:%M:%S")
    once = scheduler.create_schedule(
        Name="once",
        ScheduleExpression=f"at({at})",
        FlexibleTimeWindow=OFF,
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": queue_arn,
            "RoleArn": ROLE,
            "Input": json.dumps({"kind": "once", "at": "<aws.scheduler.scheduled-time>"}),
        },
    )
    assert once["ScheduleArn"] == f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/once"
    got = scheduler.get_schedule(Name="once")
    assert got["ScheduleExpression"] == f"at({at})"
    assert got["ScheduleExpressionTimezone"] == "UTC"
    assert got["State"] == "ENABLED"
    assert got["Target"]["Arn"] == queue_arn
    assert got["FlexibleTimeWindow"] == OFF
    assert isinstance(got["CreationDate"], datetime)

    scheduler.create_schedule_group(Name="ticks")
    scheduler.create_schedule(
        Name="every-minute",
        GroupName="ticks",
        ScheduleExpression="rate(1 minute)",
        FlexibleTimeWindow=OFF,
        Target={
            "Arn": queue_arn,
            "RoleArn": ROLE,
            "Input": '{"kind": "rate", "at": "<aws.scheduler.scheduled-time>"}',
        },
    )
    listed = scheduler.list_schedules(GroupName="ticks")["Schedules"]
    assert [(s["Name"], s["GroupName"], s["Target"]["Arn"]) for s in listed] == [
        ("every-minute", "ticks", queue_arn)
    ]

    bodies = _receive(sqs, url, 4)
    ones = [b for b in bodies if b["kind"] == "once"]
    rates = sorted(b["at"] for b in bodies if b["kind"] == "rate")
    assert ones == [{"kind": "once", "at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}]
    assert len(rates) >= 3
    stamps = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in rates[:3]]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [60.0, 60.0]

    # the one-time schedule deleted itself once delivered (ActionAfterCompletion DELETE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = {s["Name"] for s in scheduler.list_schedules()["Schedules"]}
        if "once" not in names:
            break
        time.sleep(0.1)
    assert names == {"every-minute"}
    scheduler.delete_schedule_group(Name="ticks")
    assert scheduler.list_schedules()["Schedules"] == []
    with pytest.raises(ClientError) as info:
        scheduler.get_schedule(Name="every-minute", GroupName="ticks")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def _error(call: Any, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_errors_are_scheduler_shaped(server: ServerProcess) -> None:
    scheduler = client("scheduler", server.url)
    target = {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q", "RoleArn": ROLE}
    create = scheduler.create_schedule
    base: dict[str, Any] = {"Name": "s", "FlexibleTimeWindow": OFF, "Target": target}
    for expression in ("rate(1 minutes)", "at(2026-13-01T00:00:00)", "cron(0 1 * * * *)", "x"):
        assert _error(create, **base, ScheduleExpression=expression) == (
            "ValidationException",
            400,
            f"Invalid Schedule Expression {expression}.",
        )
    code, status, message = _error(
        create, **base, ScheduleExpression="rate(1 hour)", ScheduleExpressionTimezone="Mars/Base"
    )
    assert (code, status) == ("ValidationException", 400)
    assert "Mars/Base" in message
    code, status, message = _error(
        create,
        **{**base, "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 2000}},
        ScheduleExpression="rate(1 hour)",
    )
    assert (code, status) == ("ValidationException", 400)
    assert message == (
        "1 validation error detected: Value '2000' at "
        "'flexibleTimeWindow.maximumWindowInMinutes' failed to satisfy constraint: "
        "Member must have value less than or equal to 1440"
    )
    assert _error(
        create,
        **{**base, "FlexibleTimeWindow": {"Mode": "FLEXIBLE"}},
        ScheduleExpression="rate(1 hour)",
    )[:2] == ("ValidationException", 400)
    code, _, message = _error(
        create,
        **{**base, "Target": {**target, "RetryPolicy": {"MaximumRetryAttempts": 186}}},
        ScheduleExpression="rate(1 hour)",
    )
    assert code == "ValidationException" and "maximumRetryAttempts" in message
    code, _, message = _error(
        create,
        **{**base, "Target": {**target, "Arn": "arn:aws:lambda:us-east-1:1:function:f"}},
        ScheduleExpression="rate(1 hour)",
    )
    assert code == "ValidationException" and "SQS queue ARN" in message
    assert _error(
        create,
        **base,
        ScheduleExpression="rate(1 hour)",
        StartDate=datetime(2030, 1, 2, tzinfo=UTC),
        EndDate=datetime(2030, 1, 1, tzinfo=UTC),
    ) == ("ValidationException", 400, "The EndDate must be after the StartDate.")
    assert _error(create, **base, ScheduleExpression="rate(1 hour)", GroupName="nope") == (
        "ResourceNotFoundException",
        404,
        "Schedule group nope does not exist.",
    )
    create(**base, ScheduleExpression="rate(1 hour)", State="DISABLED")
    assert _error(create, **base, ScheduleExpression="rate(1 hour)") == (
        "ConflictException",
        409,
        "Schedule s already exists.",
    )
    assert _error(scheduler.get_schedule, Name="nope") == (
        "ResourceNotFoundException",
        404,
        "Schedule nope does not exist.",
    )
    assert _error(
        scheduler.update_schedule, **{**base, "Name": "nope"}, ScheduleExpression="rate(1 hour)"
    )[:2] == ("ResourceNotFoundException", 404)
    assert _error(scheduler.create_schedule_group, Name="default")[:2] == ("ConflictException", 409)
    assert _error(scheduler.delete_schedule_group, Name="default")[:2] == (
        "ValidationException",
        400,
    )
    scheduler.delete_schedule(Name="s")
    assert _error(scheduler.delete_schedule, Name="s")[:2] == ("ResourceNotFoundException", 404)


def test_group_tags(server: ServerProcess) -> None:
    scheduler = client("scheduler", server.url)
    arn = scheduler.create_schedule_group(Name="tagged", Tags=[{"Key": "team", "Value": "ops"}])[
        "ScheduleGroupArn"
    ]
    assert arn == f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/tagged"
    scheduler.tag_resource(ResourceArn=arn, Tags=[{"Key": "tier", "Value": "1"}])
    tags = scheduler.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "ops"), ("tier", "1")]
    scheduler.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert scheduler.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "tier", "Value": "1"}
    ]
    groups = {g["Name"]: g for g in scheduler.list_schedule_groups()["ScheduleGroups"]}
    assert {"default", "tagged"} <= set(groups)
    assert groups["tagged"]["State"] == "ACTIVE"
    scheduler.delete_schedule_group(Name="tagged")
    missing = arn.replace("tagged", "gone")
    assert _error(scheduler.list_tags_for_resource, ResourceArn=missing)[:2] == (
        "ResourceNotFoundException",
        404,
    )


def test_kill_9_while_schedules_fire_never_invokes_a_tick_twice(tmp_path: Path) -> None:
    """Five one-minute rate schedules at 600 times real time (ten ticks a second each),
    the server killed with SIGKILL three times: every tick is one invocation at most,
    and each restart goes on from where the schedules were."""
    origin = time.time()
    env = {
        **E2E_SETTINGS,
        "EVENTYARD_SCHEDULE_TIME_SCALE": "600",
        "EVENTYARD_SCHEDULE_TIME_ORIGIN": repr(origin),
    }
    process = ServerProcess(tmp_path / "data", env=env).start()
    seen: dict[str, list[str]] = {}  # schedule → scheduled times received
    try:
        scheduler, sqs = client("scheduler", process.url), client("sqs", process.url)
        url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
        for n in range(5):
            scheduler.create_schedule(
                Name=f"s{n}",
                ScheduleExpression="rate(1 minute)",
                FlexibleTimeWindow=OFF,
                Target={
                    "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ticks",
                    "RoleArn": ROLE,
                    "Input": json.dumps({"s": f"s{n}", "at": "<aws.scheduler.scheduled-time>"}),
                },
            )
        for round_ in range(4):
            for body in _receive(client("sqs", process.url), url, 30):
                seen.setdefault(body["s"], []).append(body["at"])
            if round_ < 3:
                process.kill()
                process.start()
    finally:
        process.stop()
    assert len(seen) == 5
    for schedule, fired in seen.items():
        ticks = sorted(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in fired)
        assert len(ticks) == len(set(ticks)), f"{schedule} invoked a tick twice"
        gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(ticks)}
        assert all(gap % 60 == 0 and gap > 0 for gap in gaps), (schedule, sorted(gaps))
