"""Two accounts on one server, over real SigV4 with boto3: the seed's cross-account case.

Account ``PRODUCER`` publishes; account ``OWNER`` owns the bus ``inbox``, whose rule
copies every event to its queue ``inbox-q``. Each has its own access key, made with the
real ``eventyard accounts`` / ``eventyard keys`` commands. What AWS does, eventyard does:
another account may put events on ``inbox`` only while the bus policy allows it, a rule
of the producer may target ``inbox`` (the owner's policy decides at delivery), and
neither account can see or change the other's resources.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from eventyard.testing import ServerProcess
from tests.e2e.conftest import E2E_SETTINGS, REGION, aws, new_key, refused
from tests.helpers import poll_until

PRODUCER = "222222222222"
OWNER = "333333333333"
INBOX_ARN = f"arn:aws:events:{REGION}:{OWNER}:event-bus/inbox"


@dataclass
class Account:
    """One account's boto3 clients."""

    events: Any
    sqs: Any


@dataclass
class World:
    server: ServerProcess
    producer: Account
    owner: Account
    inbox_queue: str  # the owner's queue URL
    producer_key_id: str


def _account(server: ServerProcess, key: dict[str, str]) -> Account:
    return Account(
        aws("events", server.url, key["AccessKeyId"], key["SecretAccessKey"]),
        aws("sqs", server.url, key["AccessKeyId"], key["SecretAccessKey"]),
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("two-accounts")
    producer_key, owner_key = new_key(data_dir, PRODUCER), new_key(data_dir, OWNER)
    with ServerProcess(data_dir, env=E2E_SETTINGS) as server:
        producer, owner = _account(server, producer_key), _account(server, owner_key)
        owner.events.create_event_bus(Name="inbox")
        url = owner.sqs.create_queue(QueueName="inbox-q")["QueueUrl"]
        owner.events.put_rule(
            Name="everything", EventBusName="inbox", EventPattern='{"source": [{"prefix": ""}]}'
        )
        owner.events.put_targets(
            Rule="everything",
            EventBusName="inbox",
            Targets=[{"Id": "q", "Arn": f"arn:aws:sqs:{REGION}:{OWNER}:inbox-q"}],
        )
        yield World(server, producer, owner, url, producer_key["AccessKeyId"])


def _received(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    """Exactly ``count`` message bodies from the queue (deleted as they are read)."""
    bodies: list[dict[str, Any]] = []

    def drained() -> bool:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(bodies) >= count

    poll_until(drained, what=f"{count} messages on {url}")
    assert len(bodies) == count
    return bodies


def _allow_producer(owner: Account) -> None:
    owner.events.put_permission(
        EventBusName="inbox", Action="events:PutEvents", Principal=PRODUCER, StatementId="p"
    )


def _put(events: Any, detail_type: str, bus: str = INBOX_ARN) -> dict[str, Any]:
    entry = {"Source": "shop", "DetailType": detail_type, "Detail": "{}", "EventBusName": bus}
    answer: dict[str, Any] = events.put_events(Entries=[entry])
    return answer


def test_cross_account_put_events_follows_the_bus_policy(world: World) -> None:
    producer, owner = world.producer, world.owner
    denied = _put(producer.events, "before")
    assert denied["FailedEntryCount"] == 1
    assert denied["Entries"][0]["ErrorCode"] == "AccessDeniedException"

    _allow_producer(owner)
    allowed = _put(producer.events, "allowed")
    assert allowed["FailedEntryCount"] == 0
    [event] = _received(owner.sqs, world.inbox_queue, 1)
    assert (event["detail-type"], event["account"]) == ("allowed", PRODUCER)
    assert event["id"] == allowed["Entries"][0]["EventId"]
    # the owner's rule matched, but how many of its rules did is not the producer's to know
    assert allowed["ResponseMetadata"]["HTTPHeaders"]["x-eventyard-matched-rules"] == "-"
    own = producer.events.put_events(
        Entries=[
            {"Source": "shop", "DetailType": "mine", "Detail": "{}"},
            {"Source": "shop", "DetailType": "allowed", "Detail": "{}", "EventBusName": INBOX_ARN},
        ]
    )
    assert own["ResponseMetadata"]["HTTPHeaders"]["x-eventyard-matched-rules"] == "0,-"
    _received(owner.sqs, world.inbox_queue, 1)
    mine = owner.events.put_events(
        Entries=[
            {"Source": "shop", "DetailType": "allowed", "Detail": "{}", "EventBusName": "inbox"}
        ]
    )
    assert mine["ResponseMetadata"]["HTTPHeaders"]["x-eventyard-matched-rules"] == "1"
    _received(owner.sqs, world.inbox_queue, 1)

    owner.events.remove_permission(EventBusName="inbox", StatementId="p")
    again = _put(producer.events, "after")
    assert again["Entries"][0]["ErrorCode"] == "AccessDeniedException"
    # nothing that was refused reached the owner's queue
    assert (
        owner.sqs.receive_message(QueueUrl=world.inbox_queue, WaitTimeSeconds=0).get("Messages", [])
        == []
    )


def test_a_rule_of_one_account_targets_another_account_s_bus(world: World) -> None:
    producer, owner = world.producer, world.owner
    dlq = producer.sqs.create_queue(QueueName="forward-dlq")["QueueUrl"]
    producer.events.put_rule(Name="forward", EventPattern='{"source": ["shop"]}')
    producer.events.put_targets(
        Rule="forward",
        Targets=[
            {
                "Id": "inbox",
                "Arn": INBOX_ARN,
                "RetryPolicy": {"MaximumRetryAttempts": 0},
                "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{PRODUCER}:forward-dlq"},
            }
        ],
    )
    _allow_producer(owner)
    sent = _put(producer.events, "forwarded", bus="default")
    [event] = _received(owner.sqs, world.inbox_queue, 1)
    assert event["id"] == sent["Entries"][0]["EventId"]
    assert event["account"] == PRODUCER

    owner.events.remove_permission(EventBusName="inbox", StatementId="p")
    refused_id = _put(producer.events, "refused", bus="default")["Entries"][0]["EventId"]
    [dead] = _received_messages(producer.sqs, dlq)
    assert json.loads(dead["Body"])["id"] == refused_id
    assert dead["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"
    assert (
        owner.sqs.receive_message(QueueUrl=world.inbox_queue, WaitTimeSeconds=0).get("Messages", [])
        == []
    )
    producer.events.remove_targets(Rule="forward", Ids=["inbox"])
    producer.events.delete_rule(Name="forward")


def _received_messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    def got() -> bool:
        answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MessageAttributeNames=["All"])
        messages.extend(answer.get("Messages", []))
        return bool(messages)

    poll_until(got, what=f"a dead letter on {url}")
    return messages


def test_one_account_cannot_see_or_delete_another_s_resources(world: World) -> None:
    producer, owner = world.producer, world.owner
    names = {bus["Name"] for bus in producer.events.list_event_buses()["EventBuses"]}
    assert "inbox" not in names
    assert refused(lambda: producer.events.describe_event_bus(Name="inbox"))[0] == (
        "ResourceNotFoundException"
    )
    assert refused(lambda: producer.events.describe_event_bus(Name=INBOX_ARN))[0] == (
        "ResourceNotFoundException"
    )
    assert refused(lambda: producer.events.list_rules(EventBusName="inbox"))[0] == (
        "ResourceNotFoundException"
    )
    producer.events.delete_event_bus(Name="inbox")  # AWS answers OK for a bus it lacks
    assert owner.events.describe_event_bus(Name="inbox")["Arn"] == INBOX_ARN
    assert (
        refused(
            lambda: producer.sqs.get_queue_url(QueueName="inbox-q", QueueOwnerAWSAccountId=OWNER)
        )[0]
        == "AWS.SimpleQueueService.NonExistentQueue"
    )
    # the same name in two accounts is two resources
    producer.events.create_event_bus(Name="inbox")
    own = producer.events.describe_event_bus(Name="inbox")["Arn"]
    assert own == f"arn:aws:events:{REGION}:{PRODUCER}:event-bus/inbox"
    producer.events.delete_event_bus(Name="inbox")
    assert owner.events.describe_event_bus(Name="inbox")["Arn"] == INBOX_ARN


def test_a_wrong_secret_is_an_invalid_signature(world: World) -> None:
    forged = aws("events", world.server.url, world.producer_key_id, "not-the-secret")
    assert refused(forged.list_event_buses) == ("InvalidSignatureException", 400)


def test_metrics_are_the_operator_s_and_another_account_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # the labels name every account's buses ("333333333333:secret-payroll")
    data_dir = tmp_path_factory.mktemp("metrics")
    owner_key = new_key(data_dir, OWNER)
    home_key = new_key(data_dir, E2E_SETTINGS["EVENTYARD_ACCOUNT_ID"])
    with ServerProcess(data_dir, env=E2E_SETTINGS) as server:
        owner = _account(server, owner_key)
        owner.events.create_event_bus(Name="secret-payroll")
        owner.events.put_events(
            Entries=[
                {"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": "secret-payroll"}
            ]
        )
        metrics = server.url + "/metrics"
        refused = httpx.get(
            metrics, headers={"Authorization": f"Bearer {owner_key['BearerToken']}"}
        )
        assert refused.status_code == 403
        assert refused.json()["__type"] == "AccessDeniedException"
        assert "secret-payroll" not in refused.text
        home = httpx.get(metrics, headers={"Authorization": f"Bearer {home_key['BearerToken']}"})
        assert home.status_code == 200
        assert f'bus="{OWNER}:secret-payroll"' in home.text
        # the tail is not the operator's: the owner still tails its own bus
        with httpx.stream(
            "GET",
            server.url + "/v1/buses/secret-payroll/tail",
            headers={"Authorization": f"Bearer {owner_key['BearerToken']}"},
        ) as tail:
            assert tail.status_code == 200
