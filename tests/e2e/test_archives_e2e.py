"""boto3 against a real ``eventyard serve``: archive events, replay them to a queue target.

The events are put with a ``Time`` five minutes back, and replayed from a window that
ended a minute ago: a replay waits ``replay_settle`` seconds after each slice of event
time, which is long past for these, so nothing waits on the clock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eventyard.testing import ServerProcess
from tests.conftest import BACKENDS, backend_server
from tests.e2e.conftest import ACCOUNT, E2E_SETTINGS, REGION, client, deliveries_idle
from tests.helpers import poll_until


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp(f"archives-e2e-{request.param}")
    with backend_server(request, request.param, data_dir, env=E2E_SETTINGS) as process:
        yield process


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def _drain(sqs: Any, url: str, expected: int) -> list[dict[str, Any]]:
    """Receive and delete messages until ``expected`` arrived; their bodies, as text."""
    bodies: list[str] = []

    def arrived() -> bool:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(bodies) >= expected

    poll_until(arrived, what=f"{expected} messages on {url}")
    return [json.loads(body, object_pairs_hook=dict) for body in bodies]


def _empty(sqs: Any, url: str) -> bool:
    return not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages")


def _state(events: Any, name: str, *states: str) -> dict[str, Any]:
    described: dict[str, Any] = {}

    def reached() -> bool:
        described.update(events.describe_replay(ReplayName=name))
        return described["State"] in states

    poll_until(reached, what=f"replay {name} {' or '.join(states)}")
    return described


def test_a_replay_sends_archived_events_again_to_the_rules_it_names(server: ServerProcess) -> None:
    events, sqs = client("events", server.url), client("sqs", server.url)
    tag = uuid.uuid4().hex[:8]
    bus = f"shop-{tag}"
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    archive = events.create_archive(
        ArchiveName=f"orders-{tag}",
        EventSourceArn=bus_arn,
        EventPattern=json.dumps({"source": ["shop"]}),
    )
    queues = {}
    rules = {
        "all": {"source": ["shop"]},
        "live-only": {"source": ["shop"], "replay-name": [{"exists": False}]},
        "not-named": {"source": ["shop"]},
    }
    for rule, pattern in rules.items():
        queues[rule] = _queue(sqs, f"{rule}-{tag}")
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queues[rule][1]}]
        )
    then = datetime.now(UTC) - timedelta(minutes=5)
    entries = [
        {"Source": "shop", "DetailType": "OrderPlaced", "Detail": json.dumps({"n": n})}
        for n in range(3)
    ]
    entries.append({"Source": "elsewhere", "DetailType": "Other", "Detail": "{}"})
    put = events.put_events(Entries=[{**e, "EventBusName": bus, "Time": then} for e in entries])
    assert put["FailedEntryCount"] == 0
    originals = {e["id"]: e for e in _drain(sqs, queues["all"][0], 3)}
    for rule in ("live-only", "not-named"):
        _drain(sqs, queues[rule][0], 3)
    described = events.describe_archive(ArchiveName=f"orders-{tag}")
    assert described["EventCount"] == 3  # the "elsewhere" event does not match its pattern
    assert described["SizeBytes"] > 0

    now = datetime.now(UTC)
    name = f"fix-{tag}"
    started = events.start_replay(
        ReplayName=name,
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=now - timedelta(minutes=10),
        EventEndTime=now - timedelta(minutes=1),
        Destination={
            "Arn": bus_arn,
            "FilterArns": [
                f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/all",
                f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/live-only",
            ],
        },
    )
    assert started["State"] == "STARTING"
    done = _state(events, name, "COMPLETED", "FAILED")
    assert done["State"] == "COMPLETED"
    assert done["EventLastReplayedTime"] == done["EventEndTime"]

    replayed = _drain(sqs, queues["all"][0], 3)
    assert {e["id"] for e in replayed} == set(originals)
    for event in replayed:
        assert event["replay-name"] == name
        keys = list(event)
        assert keys[keys.index("region") + 1] == "replay-name"
        # the same event, plus replay-name
        assert {k: v for k, v in event.items() if k != "replay-name"} == originals[event["id"]]
    deliveries_idle(server)
    assert _empty(sqs, queues["live-only"][0])  # its pattern wants no replays
    assert _empty(sqs, queues["not-named"][0])  # not in FilterArns
    # replayed events are never archived again
    assert events.describe_archive(ArchiveName=f"orders-{tag}")["EventCount"] == 3
    listed = events.list_replays(NamePrefix=name)["Replays"]
    assert [r["State"] for r in listed] == ["COMPLETED"]


def test_a_cancelled_replay_ends_cancelled(server: ServerProcess) -> None:
    events = client("events", server.url)
    tag = uuid.uuid4().hex[:8]
    bus_arn = events.create_event_bus(Name=f"later-{tag}")["EventBusArn"]
    archive = events.create_archive(ArchiveName=f"all-{tag}", EventSourceArn=bus_arn)
    now = time.time()
    name = f"long-{tag}"
    # a window reaching an hour into the future: the replay waits for it, RUNNING
    events.start_replay(
        ReplayName=name,
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=now - 60,
        EventEndTime=now + 3600,
        Destination={"Arn": bus_arn},
    )
    _state(events, name, "RUNNING")
    assert events.cancel_replay(ReplayName=name)["State"] == "CANCELLING"
    ended = _state(events, name, "CANCELLED")
    assert "ReplayEndTime" in ended
    with pytest.raises(events.exceptions.IllegalStatusException):
        events.cancel_replay(ReplayName=name)
