"""Accounts on one server: isolation, per-account quotas, bus policies, cross-account buses.

A real :class:`~eventyard.server.runtime.Runtime` (router, delivery engine, EventBridge
and SQS APIs over SQLite) is called as the HTTP layer calls it, with the caller's
verified :class:`~eventyard.server.auth.Principal`: nothing here needs a signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.errors import (
    DeliveryError,
    LimitExceeded,
    ResourceNotFound,
    ServiceError,
    ValidationError,
)
from eventyard.server.api.sqs_requests import SqsError
from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore, Principal
from eventyard.server.config import Settings
from eventyard.server.router import MATCHED_RULES
from eventyard.server.runtime import Runtime
from eventyard.server.store.sqlite import SQLiteStore
from tests.helpers import apoll_until

HOME = "111111111111"
REGION = "eu-west-1"
A = Principal("222222222222", "AKIAAAAAAAAAAAAAAAAA")
B = Principal("333333333333", "AKIABBBBBBBBBBBBBBBB")
C = Principal("444444444444", "AKIACCCCCCCCCCCCCCCC")
ORG = "o-aaaaaaaaaa"
ALL = '{"source": [{"prefix": ""}]}'


def bus_arn(who: Principal | None, name: str) -> str:
    account = who.account_id if who is not None else HOME
    return f"arn:aws:events:{REGION}:{account}:event-bus/{name}"


def queue_arn(who: Principal | None, name: str) -> str:
    account = who.account_id if who is not None else HOME
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


class Server:
    """The runtime's two APIs, called as one account or another."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def events(self, who: Principal | None, op: str, **params: Any) -> dict[str, Any]:
        return await self.runtime.services["AWSEvents"].call(op, params, who)

    async def sqs(self, who: Principal | None, op: str, **params: Any) -> dict[str, Any]:
        return await self.runtime.services["AmazonSQS"].call(op, params, who)

    async def events_fail(self, who: Principal | None, op: str, **params: Any) -> ServiceError:
        with pytest.raises(ServiceError) as info:
            await self.events(who, op, **params)
        return info.value

    async def sqs_fail(self, who: Principal | None, op: str, **params: Any) -> SqsError:
        with pytest.raises(SqsError) as info:
            await self.sqs(who, op, **params)
        return info.value

    async def queue(self, who: Principal | None, name: str) -> str:
        return str((await self.sqs(who, "CreateQueue", QueueName=name))["QueueUrl"])

    async def rule_to_queue(
        self, who: Principal | None, bus: str, rule: str, queue: str, pattern: str = ALL
    ) -> str:
        """A rule on ``bus`` sending every event to a new queue ``queue``; its URL."""
        url = await self.queue(who, queue)
        await self.events(who, "PutRule", Name=rule, EventBusName=bus, EventPattern=pattern)
        await self.events(
            who,
            "PutTargets",
            Rule=rule,
            EventBusName=bus,
            Targets=[{"Id": "q", "Arn": queue_arn(who, queue)}],
        )
        return url

    async def put(self, who: Principal | None, *entries: dict[str, Any]) -> dict[str, Any]:
        return await self.events(who, "PutEvents", Entries=list(entries))

    async def receive(
        self, who: Principal | None, url: str, expected: int, **params: Any
    ) -> list[dict[str, Any]]:
        """Receive (and delete) ``expected`` messages, long-polling."""
        got: list[dict[str, Any]] = []

        async def more() -> bool:
            answer = await self.sqs(
                who, "ReceiveMessage", QueueUrl=url, MaxNumberOfMessages=10, **params
            )
            for message in answer.get("Messages", []):
                got.append(message)
                await self.sqs(
                    who, "DeleteMessage", QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
                )
            return len(got) >= expected

        await apoll_until(more, what=f"{expected} messages on {url}")
        assert len(got) == expected
        return got

    async def idle(self) -> None:
        """Every delivery settled (delivered, dead-lettered or dropped)."""
        assert self.runtime.router is not None
        engine = self.runtime.router.engine
        await apoll_until(lambda: engine.pending == 0, what="deliveries settled")

    async def count(self, who: Principal | None, url: str) -> int:
        answer = await self.sqs(
            who, "GetQueueAttributes", QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(answer["Attributes"]["ApproximateNumberOfMessages"])


async def _server(tmp_path: Path, **settings: Any) -> AsyncIterator[Server]:
    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.create_account(A.account_id, org_id=ORG)
    await keyring.create_account(B.account_id)
    await keyring.create_account(C.account_id)
    config = Settings(
        **{
            "account_id": HOME,
            "region": REGION,
            "retry_base_delay": 0.01,
            "retry_max_delay": 0.05,
            **settings,
        }
    )
    runtime = Runtime(
        config, SQLiteStore(str(tmp_path / "eventyard.db")), account_lookup=keyring.get_account
    )
    await runtime.start()
    try:
        yield Server(runtime)
    finally:
        await runtime.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async for running in _server(tmp_path):
        yield running


def _entry(
    bus: str | None = None, source: str = "shop", detail_type: str = "Order"
) -> dict[str, Any]:
    entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps({"n": 1})}
    if bus is not None:
        entry["EventBusName"] = bus
    return entry


# -- isolation --------------------------------------------------------------------------


async def test_same_names_coexist_in_two_accounts_with_their_own_arns(server: Server) -> None:
    for who in (A, B):
        created = await server.events(who, "CreateEventBus", Name="orders")
        assert created["EventBusArn"] == bus_arn(who, "orders")
        rule = await server.events(
            who, "PutRule", Name="r", EventBusName="orders", EventPattern=ALL
        )
        assert rule["RuleArn"] == f"arn:aws:events:{REGION}:{who.account_id}:rule/orders/r"
        url = await server.queue(who, "jobs")
        assert url.endswith(f"/{who.account_id}/jobs")
        attributes = await server.sqs(
            who, "GetQueueAttributes", QueueUrl=url, AttributeNames=["QueueArn"]
        )
        assert attributes["Attributes"]["QueueArn"] == queue_arn(who, "jobs")
        default = await server.events(who, "DescribeEventBus")
        assert default["Arn"] == bus_arn(who, "default")
        described = await server.events(who, "DescribeRule", Name="r", EventBusName="orders")
        assert described["EventBusName"] == "orders"
        assert described["CreatedBy"] == who.account_id

    for who in (A, B):
        buses = await server.events(who, "ListEventBuses")
        assert [(b["Name"], b["Arn"]) for b in buses["EventBuses"]] == [
            ("default", bus_arn(who, "default")),
            ("orders", bus_arn(who, "orders")),
        ]
        queues = await server.sqs(who, "ListQueues")
        assert [u.rsplit("/", 2)[-2:] for u in queues["QueueUrls"]] == [[who.account_id, "jobs"]]
    # the home account sees none of it (only its default and system buses)
    home_buses = await server.events(None, "ListEventBuses")
    assert [b["Name"] for b in home_buses["EventBuses"]] == ["default", "eventyard"]
    assert "QueueUrls" not in await server.sqs(None, "ListQueues")


async def test_another_account_cannot_see_change_or_delete_a_bus_rule_or_queue(
    server: Server,
) -> None:
    await server.events(A, "CreateEventBus", Name="private")
    await server.events(A, "PutRule", Name="r", EventBusName="private", EventPattern=ALL)
    await server.events(
        A, "TagResource", ResourceARN=bus_arn(A, "private"), Tags=[{"Key": "k", "Value": "v"}]
    )
    url = await server.queue(A, "secret")
    arn = bus_arn(A, "private")

    for name in ("private", arn):
        error = await server.events_fail(B, "DescribeEventBus", Name=name)
        assert isinstance(error, ResourceNotFound)
        assert error.message == "Event bus private does not exist."
        for op, params in (
            ("DescribeRule", {"Name": "r"}),
            ("ListRules", {}),
            ("ListTargetsByRule", {"Rule": "r"}),
            ("DisableRule", {"Name": "r"}),
            ("DeleteRule", {"Name": "r"}),
            ("PutRule", {"Name": "r", "EventPattern": ALL}),
            ("PutTargets", {"Rule": "r", "Targets": [{"Id": "x", "Arn": queue_arn(B, "q")}]}),
            ("RemoveTargets", {"Rule": "r", "Ids": ["x"]}),
        ):
            failed = await server.events_fail(B, op, EventBusName=name, **params)
            assert isinstance(failed, ResourceNotFound), (op, failed)
    for op in ("PutPermission", "RemovePermission"):
        params = {"Action": "events:PutEvents", "Principal": "*", "StatementId": "s"}
        if op == "RemovePermission":
            params = {"StatementId": "s"}
        failed = await server.events_fail(B, op, EventBusName="private", **params)
        assert isinstance(failed, ResourceNotFound)
    for op, params in (
        ("ListTagsForResource", {}),
        ("TagResource", {"Tags": [{"Key": "k", "Value": "stolen"}]}),
        ("UntagResource", {"TagKeys": ["k"]}),
    ):
        failed = await server.events_fail(B, op, ResourceARN=arn, **params)
        assert isinstance(failed, ResourceNotFound), op
    rule_arn = f"arn:aws:events:{REGION}:{A.account_id}:rule/private/r"
    failed = await server.events_fail(B, "ListTagsForResource", ResourceARN=rule_arn)
    assert isinstance(failed, ResourceNotFound)
    # deleting "private" as B deletes B's (missing) bus: a no-op, as on AWS
    assert await server.events(B, "DeleteEventBus", Name="private") == {}

    for op, params in (
        ("GetQueueAttributes", {"AttributeNames": ["All"]}),
        ("SendMessage", {"MessageBody": "x"}),
        ("ReceiveMessage", {}),
        ("PurgeQueue", {}),
        ("TagQueue", {"Tags": {"k": "v"}}),
        ("DeleteQueue", {}),
    ):
        failed_sqs = await server.sqs_fail(B, op, QueueUrl=url, **params)
        assert failed_sqs.query_code == "AWS.SimpleQueueService.NonExistentQueue", op
    failed_sqs = await server.sqs_fail(B, "GetQueueUrl", QueueName="secret")
    assert failed_sqs.query_code == "AWS.SimpleQueueService.NonExistentQueue"
    failed_sqs = await server.sqs_fail(
        A, "GetQueueUrl", QueueName="secret", QueueOwnerAWSAccountId=B.account_id
    )
    assert failed_sqs.query_code == "AWS.SimpleQueueService.NonExistentQueue"

    # A's resources are untouched
    assert (await server.events(A, "DescribeEventBus", Name="private"))["Arn"] == arn
    rule = await server.events(A, "DescribeRule", Name="r", EventBusName="private")
    assert rule["State"] == "ENABLED"
    tags = await server.events(A, "ListTagsForResource", ResourceARN=arn)
    assert tags["Tags"] == [{"Key": "k", "Value": "v"}]
    assert await server.count(A, url) == 0
    assert (await server.sqs(A, "GetQueueUrl", QueueName="secret"))["QueueUrl"] == url


async def test_a_tag_arn_with_a_colon_in_its_name_cannot_reach_another_account(
    server: Server,
) -> None:
    # "…:HOME:event-bus/A:payroll" was the internal name of A's bus "payroll"
    await server.events(A, "CreateEventBus", Name="payroll")
    await server.events(A, "PutRule", Name="r", EventBusName="payroll", EventPattern=ALL)
    tags = [{"Key": "k", "Value": "v"}]
    await server.events(A, "TagResource", ResourceARN=bus_arn(A, "payroll"), Tags=tags)
    a = A.account_id
    for arn in (
        f"arn:aws:events:{REGION}:{HOME}:event-bus/{a}:payroll",
        f"arn:aws:events:{REGION}:{HOME}:event-bus/{a}:nonexistent",
        f"arn:aws:events:{REGION}:{HOME}:rule/{a}:payroll/r",
        f"arn:aws:events:{REGION}:{HOME}:rule/{a}:payroll/nope",
    ):
        for op, params in (
            ("ListTagsForResource", {}),
            ("TagResource", {"Tags": [{"Key": "k", "Value": "stolen"}]}),
            ("UntagResource", {"TagKeys": ["k"]}),
        ):
            error = await server.events_fail(None, op, ResourceARN=arn, **params)
            assert isinstance(error, ValidationError), (op, arn, error)
            assert "does not name an event bus or a rule" in error.message
    own = await server.events(A, "ListTagsForResource", ResourceARN=bus_arn(A, "payroll"))
    assert own["Tags"] == tags


async def test_each_account_has_its_own_default_bus_and_its_events_reach_only_its_rules(
    server: Server,
) -> None:
    a_inbox = await server.rule_to_queue(A, "default", "all", "inbox")
    b_inbox = await server.rule_to_queue(B, "default", "all", "inbox")
    assert (await server.events(C, "ListRules"))["Rules"] == []

    result = await server.put(A, _entry(), _entry("default"), _entry(bus_arn(A, "default")))
    assert result["FailedEntryCount"] == 0
    assert result[MATCHED_RULES] == [1, 1, 1]  # A's rule only, not B's
    messages = await server.receive(A, a_inbox, 3)
    for message in messages:
        event = json.loads(message["Body"])
        assert event["account"] == A.account_id
        assert event["region"] == REGION
    await server.idle()
    assert await server.count(B, b_inbox) == 0
    # the home account's events carry the home account, as before
    home = await server.put(None, _entry())
    assert home[MATCHED_RULES] == [0]


async def test_quotas_count_per_account(tmp_path: Path) -> None:
    async for server in _server(tmp_path, max_buses=1, max_queues=1, max_rules_per_bus=1):
        for who in (A, B, None):
            await server.events(who, "CreateEventBus", Name="one")
            error = await server.events_fail(who, "CreateEventBus", Name="two")
            assert isinstance(error, LimitExceeded)
            await server.events(who, "PutRule", Name="r1", EventBusName="one", EventPattern=ALL)
            error = await server.events_fail(
                who, "PutRule", Name="r2", EventBusName="one", EventPattern=ALL
            )
            assert isinstance(error, LimitExceeded)
            await server.queue(who, "q1")
            failed = await server.sqs_fail(who, "CreateQueue", QueueName="q2")
            assert failed.query_code == "OverLimit"


async def _outcomes(calls: list[Any]) -> tuple[int, list[BaseException]]:
    """How many of the concurrent ``calls`` succeeded, and what the others raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    return len(results) - len(failures), failures


async def test_concurrent_creates_stay_within_each_quota(tmp_path: Path) -> None:
    # 16 concurrent creates against a quota of 2 once produced 3 buses and 3 queues
    async for server in _server(tmp_path, max_buses=2, max_queues=2, max_rules_per_bus=2):
        for who in (A, None):
            made, failed = await _outcomes(
                [server.events(who, "CreateEventBus", Name=f"b{i}") for i in range(16)]
            )
            assert made == 2 and all(isinstance(f, LimitExceeded) for f in failed), failed
            buses = (await server.events(who, "ListEventBuses"))["EventBuses"]
            # default and two, and the home account's system bus (outside the quota)
            assert len(buses) == (3 if who is A else 4)
            made, failed = await _outcomes(
                [
                    server.events(who, "PutRule", Name=f"r{i}", EventBusName="b0", EventPattern=ALL)
                    for i in range(16)
                ]
            )
            assert made == 2 and all(isinstance(f, LimitExceeded) for f in failed), failed
            rules = (await server.events(who, "ListRules", EventBusName="b0"))["Rules"]
            assert len(rules) == 2
            made, failed = await _outcomes(
                [server.sqs(who, "CreateQueue", QueueName=f"q{i}") for i in range(16)]
            )
            assert made == 2, failed
            assert all(isinstance(f, SqsError) and f.query_code == "OverLimit" for f in failed)
            assert len((await server.sqs(who, "ListQueues")).get("QueueUrls", [])) == 2


async def test_processes_sharing_a_store_cannot_exceed_a_quota_together(tmp_path: Path) -> None:
    # Each API instance has its own in-process locks, as separate processes would: only
    # the count after the insert keeps them within the quota.
    # quota 3: both instances count 0 and insert, then both count 2 and insert: 4 without
    # the count after the insert
    async for server in _server(tmp_path, max_buses=3, max_queues=3):
        events = server.runtime.services["AWSEvents"]
        queues = server.runtime.services["AmazonSQS"]
        other_events = type(events)(events.store, events.settings, events.router)
        other_queues = type(queues)(queues.store, queues.settings, queues.hooks)
        buses_made = queues_made = 0
        for round_ in range(3):
            calls = [
                api.call("CreateEventBus", {"Name": f"b{round_}-{i}-{n}"}, A)
                for i in range(8)
                for n, api in enumerate((events, other_events))
            ]
            made, failed = await _outcomes(calls)
            assert all(isinstance(f, LimitExceeded) for f in failed), failed
            buses_made += made
            buses = (await server.events(A, "ListEventBuses"))["EventBuses"]
            assert len(buses) - 1 == buses_made <= 3  # every success was kept
            calls = [
                api.call("CreateQueue", {"QueueName": f"q{round_}-{i}-{n}"}, A)
                for i in range(8)
                for n, api in enumerate((queues, other_queues))
            ]
            made, failed = await _outcomes(calls)
            assert all(isinstance(f, SqsError) for f in failed), failed
            queues_made += made
            urls = (await server.sqs(A, "ListQueues")).get("QueueUrls", [])
            assert len(urls) == queues_made <= 3
        # the quota is reached, not merely never exceeded: lone creates fill what is left
        for i in range(3):
            with contextlib.suppress(LimitExceeded):
                await server.events(A, "CreateEventBus", Name=f"late{i}")
        assert len((await server.events(A, "ListEventBuses"))["EventBuses"]) == 4


# -- cross-account PutEvents ------------------------------------------------------------


async def test_cross_account_put_events_allowed_by_put_permission_then_denied_after_remove(
    server: Server,
) -> None:
    await server.events(B, "CreateEventBus", Name="shared")
    inbox = await server.rule_to_queue(B, "shared", "all", "inbox")
    own = await server.rule_to_queue(A, "default", "all", "own")
    target = bus_arn(B, "shared")

    denied = await server.put(A, _entry(target), _entry())
    assert denied["FailedEntryCount"] == 1
    assert denied["Entries"][0]["ErrorCode"] == "AccessDeniedException"
    assert target in denied["Entries"][0]["ErrorMessage"]
    assert "EventId" in denied["Entries"][1]  # a denied entry fails only itself
    await server.receive(A, own, 1)

    await server.events(
        B,
        "PutPermission",
        EventBusName="shared",
        Action="events:PutEvents",
        Principal=A.account_id,
        StatementId="from-a",
    )
    allowed = await server.put(A, _entry(target))
    assert allowed["FailedEntryCount"] == 0
    [message] = await server.receive(B, inbox, 1)
    event = json.loads(message["Body"])
    assert event["id"] == allowed["Entries"][0]["EventId"]
    assert event["account"] == A.account_id  # the publisher's account
    # the policy names A only
    third = await server.put(C, _entry(target))
    assert third["Entries"][0]["ErrorCode"] == "AccessDeniedException"

    await server.events(B, "RemovePermission", EventBusName="shared", StatementId="from-a")
    again = await server.put(A, _entry(target))
    assert again["FailedEntryCount"] == 1
    assert again["Entries"][0]["ErrorCode"] == "AccessDeniedException"
    await server.idle()
    assert await server.count(B, inbox) == 0


async def test_the_owner_never_consults_its_own_bus_policy(server: Server) -> None:
    inbox = await server.rule_to_queue(B, "default", "all", "inbox")
    deny_all = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "nobody",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "events:PutEvents",
                "Resource": bus_arn(B, "default"),
            }
        ],
    }
    await server.events(B, "PutPermission", Policy=json.dumps(deny_all))
    result = await server.put(B, _entry(bus_arn(B, "default")), _entry())
    assert result["FailedEntryCount"] == 0
    await server.receive(B, inbox, 2)
    assert (await server.put(A, _entry(bus_arn(B, "default"))))["FailedEntryCount"] == 1


async def test_policy_conditions_on_source_and_detail_type_give_their_error_codes(
    server: Server,
) -> None:
    await server.events(B, "CreateEventBus", Name="shared")
    inbox = await server.rule_to_queue(B, "shared", "all", "inbox")
    target = bus_arn(B, "shared")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "orders-from-a",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{A.account_id}:root"},
                "Action": "events:PutEvents",
                "Resource": target,
                "Condition": {
                    "StringEquals": {"events:source": "shop"},
                    "StringLike": {"events:detail-type": "Order*"},
                },
            }
        ],
    }
    await server.events(B, "PutPermission", EventBusName="shared", Policy=json.dumps(policy))
    result = await server.put(
        A,
        _entry(target, "shop", "Order Placed"),
        _entry(target, "bank", "Order Placed"),
        _entry(target, "shop", "Refund"),
        _entry(target, "bank", "Refund"),
    )
    codes = [entry.get("ErrorCode") for entry in result["Entries"]]
    assert codes == [
        None,
        "NotAuthorizedForSourceException",
        "NotAuthorizedForDetailTypeException",
        "AccessDeniedException",
    ]
    assert result["FailedEntryCount"] == 3
    [message] = await server.receive(B, inbox, 1)
    assert json.loads(message["Body"])["source"] == "shop"


async def test_an_organization_condition_admits_member_accounts_only(tmp_path: Path) -> None:
    async for server in _server(tmp_path, org_id=ORG):
        await server.events(B, "CreateEventBus", Name="org")
        inbox = await server.rule_to_queue(B, "org", "all", "inbox")
        target = bus_arn(B, "org")
        await server.events(
            B,
            "PutPermission",
            EventBusName="org",
            Action="events:PutEvents",
            Principal="*",
            StatementId="org",
            Condition={"Type": "StringEquals", "Key": "aws:PrincipalOrgID", "Value": ORG},
        )
        # A's record is in the org; the home account is by the org_id setting; C is not
        assert (await server.put(A, _entry(target)))["FailedEntryCount"] == 0
        assert (await server.put(None, _entry(target)))["FailedEntryCount"] == 0
        refused = await server.put(C, _entry(target))
        assert refused["Entries"][0]["ErrorCode"] == "AccessDeniedException"
        messages = await server.receive(B, inbox, 2)
        accounts = sorted(json.loads(m["Body"])["account"] for m in messages)
        assert accounts == sorted([A.account_id, HOME])


# -- cross-account bus targets ----------------------------------------------------------


async def test_a_cross_account_bus_target_delivers_when_the_policy_allows_and_dead_letters_when_not(
    server: Server,
) -> None:
    await server.events(B, "CreateEventBus", Name="inbound")
    inbox = await server.rule_to_queue(B, "inbound", "all", "inbox")
    dlq = await server.queue(A, "failed")
    await server.events(A, "PutRule", Name="to-b", EventPattern=ALL)
    await server.events(
        A,
        "PutTargets",
        Rule="to-b",
        Targets=[
            {
                "Id": "b",
                "Arn": bus_arn(B, "inbound"),
                "DeadLetterConfig": {"Arn": queue_arn(A, "failed")},
            }
        ],
    )

    first = await server.put(A, _entry())
    [dead] = await server.receive(A, dlq, 1, MessageAttributeNames=["All"])
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "NO_PERMISSIONS"
    assert bus_arn(B, "inbound") in attributes["ERROR_MESSAGE"]
    assert A.account_id in attributes["ERROR_MESSAGE"]
    assert attributes["RETRY_ATTEMPTS"] == "0"  # refused for good: not retried
    assert json.loads(dead["Body"])["id"] == first["Entries"][0]["EventId"]
    await server.idle()
    assert await server.count(B, inbox) == 0

    await server.events(
        B,
        "PutPermission",
        EventBusName="inbound",
        Action="events:PutEvents",
        Principal=A.account_id,
        StatementId="a",
    )
    second = await server.put(A, _entry())
    [message] = await server.receive(B, inbox, 1)
    event = json.loads(message["Body"])
    assert event["id"] == second["Entries"][0]["EventId"]  # the id is kept
    assert (event["account"], event["region"]) == (A.account_id, REGION)
    await server.idle()
    assert await server.count(A, dlq) == 0


async def test_a_bus_target_acts_for_the_rule_s_owner_even_when_its_arn_does_not_parse(
    tmp_path: Path,
) -> None:
    # A region the ARN patterns refuse (the settings check refuses it too, but nothing
    # may depend on that): the rule's ARN does not parse, and the sender once defaulted
    # to the home account, whose private bus then took A's events.
    async for server in _server(tmp_path, region="US-EAST-1"):
        home_bus = f"arn:aws:events:us-east-1:{HOME}:event-bus/private"
        await server.events(None, "CreateEventBus", Name="private")
        inbox = await server.rule_to_queue(None, "private", "all", "inbox")
        dlq = await server.queue(A, "failed")
        await server.events(A, "PutRule", Name="fwd", EventPattern=ALL)
        failed = f"arn:aws:sqs:us-east-1:{A.account_id}:failed"
        await server.events(
            A,
            "PutTargets",
            Rule="fwd",
            Targets=[{"Id": "b", "Arn": home_bus, "DeadLetterConfig": {"Arn": failed}}],
        )
        put = await server.put(A, _entry())
        [dead] = await server.receive(A, dlq, 1, MessageAttributeNames=["All"])
        attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
        assert attributes["ERROR_CODE"] == "NO_PERMISSIONS"
        assert A.account_id in attributes["ERROR_MESSAGE"]
        assert json.loads(dead["Body"])["id"] == put["Entries"][0]["EventId"]
        await server.idle()
        assert await server.count(None, inbox) == 0


async def test_a_bus_target_whose_rule_owner_is_unknown_refuses_to_deliver(
    server: Server,
) -> None:
    router = server.runtime.router
    assert router is not None
    event = json.dumps({"id": "e1", "source": "s", "detail-type": "d", "detail": {}}).encode()
    rule_arn = f"arn:aws:events:{REGION}:{HOME}:rule/r"
    for sender in ("", "not-an-account", HOME[:-1]):
        with pytest.raises(DeliveryError) as refused:
            await router.forward_to_bus(bus_arn(None, "default"), event, rule_arn, sender)
        assert (refused.value.error_code, refused.value.retryable) == ("NO_PERMISSIONS", False)
    await router.forward_to_bus(bus_arn(None, "default"), event, rule_arn, HOME)


async def test_a_source_condition_judges_forwarded_events_with_the_rule_as_source_arn(
    server: Server,
) -> None:
    await server.events(B, "CreateEventBus", Name="inbound")
    inbox = await server.rule_to_queue(B, "inbound", "all", "inbox")
    await server.events(A, "PutRule", Name="to-b", EventPattern=ALL)
    await server.events(
        A, "PutTargets", Rule="to-b", Targets=[{"Id": "b", "Arn": bus_arn(B, "inbound")}]
    )
    rule_arn = f"arn:aws:events:{REGION}:{A.account_id}:rule/to-b"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "shop-via-rule",
                "Effect": "Allow",
                "Principal": {"AWS": A.account_id},
                "Action": "events:PutEvents",
                "Resource": bus_arn(B, "inbound"),
                "Condition": {
                    "StringEquals": {"events:source": "shop"},
                    "ArnEquals": {"aws:SourceArn": rule_arn},
                },
            }
        ],
    }
    await server.events(B, "PutPermission", EventBusName="inbound", Policy=json.dumps(policy))
    await server.put(A, _entry(source="bank"), _entry(source="shop"))
    [message] = await server.receive(B, inbox, 1)
    assert json.loads(message["Body"])["source"] == "shop"
    await server.idle()
    assert await server.count(B, inbox) == 0
    # a direct PutEvents has no aws:SourceArn: this policy does not admit it
    direct = await server.put(A, _entry(bus_arn(B, "inbound")))
    assert direct["FailedEntryCount"] == 1


async def test_events_from_another_account_are_not_forwarded_a_second_time(
    server: Server,
) -> None:
    for owner, bus in ((B, "hop1"), (C, "hop2")):
        await server.events(owner, "CreateEventBus", Name=bus)
        await server.events(
            owner,
            "PutPermission",
            EventBusName=bus,
            Action="events:PutEvents",
            Principal="*",
            StatementId="all",
        )
    b_inbox = await server.rule_to_queue(B, "hop1", "all", "inbox")
    c_inbox = await server.rule_to_queue(C, "hop2", "all", "inbox")
    # B's bus forwards everything to C's bus as well
    await server.events(
        B,
        "PutTargets",
        Rule="all",
        EventBusName="hop1",
        Targets=[{"Id": "c", "Arn": bus_arn(C, "hop2")}],
    )
    await server.events(A, "PutRule", Name="to-b", EventPattern=ALL)
    await server.events(
        A, "PutTargets", Rule="to-b", Targets=[{"Id": "b", "Arn": bus_arn(B, "hop1")}]
    )
    await server.put(A, _entry())
    await server.receive(B, b_inbox, 1)
    await server.idle()
    assert await server.count(C, c_inbox) == 0
    # B's own events do take B's bus target
    await server.put(B, _entry("hop1"))
    [message] = await server.receive(C, c_inbox, 1)
    assert json.loads(message["Body"])["account"] == B.account_id


async def test_put_targets_refuses_what_cannot_cross_accounts(server: Server) -> None:
    await server.events(A, "PutRule", Name="r", EventPattern=ALL)
    await server.queue(B, "theirs")

    async def refused(target: dict[str, Any]) -> str:
        error = await server.events_fail(A, "PutTargets", Rule="r", Targets=[target])
        assert isinstance(error, ValidationError)
        return error.message

    message = await refused({"Id": "q", "Arn": queue_arn(B, "theirs")})
    assert "queue of account 333333333333" in message
    message = await refused({"Id": "b", "Arn": bus_arn(B, "default"), "Input": '{"fixed": true}'})
    assert "Input, InputPath and InputTransformer are not allowed" in message
    message = await refused({"Id": "b", "Arn": bus_arn(B, "default"), "InputPath": "$.detail"})
    assert "not allowed" in message
    message = await refused(
        {
            "Id": "b",
            "Arn": bus_arn(B, "default"),
            "DeadLetterConfig": {"Arn": queue_arn(B, "theirs")},
        }
    )
    assert "DeadLetterConfig.Arn" in message
    bus_dlq = await server.events_fail(
        A, "CreateEventBus", Name="x", DeadLetterConfig={"Arn": queue_arn(B, "theirs")}
    )
    assert isinstance(bus_dlq, ValidationError)
    # the same targets in the caller's own account are fine
    await server.queue(A, "mine")
    await server.events(
        A,
        "PutTargets",
        Rule="r",
        Targets=[
            {"Id": "q", "Arn": queue_arn(A, "mine")},
            {"Id": "b", "Arn": bus_arn(B, "default")},
            {"Id": "own-bus", "Arn": bus_arn(A, "default"), "InputPath": "$"},
        ],
    )


async def test_a_redrive_policy_must_name_a_queue_of_the_same_account(server: Server) -> None:
    await server.queue(B, "theirs")
    url = await server.queue(A, "mine")
    policy = json.dumps({"deadLetterTargetArn": queue_arn(B, "theirs"), "maxReceiveCount": 1})
    failed = await server.sqs_fail(
        A, "SetQueueAttributes", QueueUrl=url, Attributes={"RedrivePolicy": policy}
    )
    assert failed.query_code == "InvalidParameterValue"
    assert "same account" in failed.message
    # the same name in A's own account works, and redrives into A's queue
    await server.queue(A, "theirs")
    own = json.dumps({"deadLetterTargetArn": queue_arn(A, "theirs"), "maxReceiveCount": 1})
    await server.sqs(A, "SetQueueAttributes", QueueUrl=url, Attributes={"RedrivePolicy": own})
    await server.sqs(A, "SendMessage", QueueUrl=url, MessageBody="poison")
    first = await server.sqs(A, "ReceiveMessage", QueueUrl=url, VisibilityTimeout=0)
    assert len(first["Messages"]) == 1
    # received once already: the next receive moves it to the dead-letter queue
    assert "Messages" not in await server.sqs(A, "ReceiveMessage", QueueUrl=url)
    dlq = (await server.sqs(A, "GetQueueUrl", QueueName="theirs"))["QueueUrl"]
    await server.receive(A, dlq, 1)
    assert (
        await server.count(B, (await server.sqs(B, "GetQueueUrl", QueueName="theirs"))["QueueUrl"])
        == 0
    )
    sources = await server.sqs(A, "ListDeadLetterSourceQueues", QueueUrl=dlq)
    assert sources["queueUrls"] == [url]


async def test_accounts_survive_a_restart(tmp_path: Path) -> None:
    async for server in _server(tmp_path):
        await server.events(B, "CreateEventBus", Name="shared")
        await server.rule_to_queue(B, "shared", "all", "inbox")
        await server.events(
            B,
            "PutPermission",
            EventBusName="shared",
            Action="events:PutEvents",
            Principal=A.account_id,
            StatementId="a",
        )
    async for server in _server(tmp_path):
        inbox = (await server.sqs(B, "GetQueueUrl", QueueName="inbox"))["QueueUrl"]
        result = await server.put(A, _entry(bus_arn(B, "shared")))
        assert result["FailedEntryCount"] == 0  # the policy was loaded back
        # B's rule count is not A's to know; the rule, loaded back, delivers to B's queue
        assert result[MATCHED_RULES] == [None]
        await server.receive(B, inbox, 1)
        assert [b["Name"] for b in (await server.events(B, "ListEventBuses"))["EventBuses"]] == [
            "default",
            "shared",
        ]


async def test_the_tail_finds_a_bus_in_the_callers_account_only(server: Server) -> None:
    router = server.runtime.router
    assert router is not None
    await server.events(A, "CreateEventBus", Name="orders")
    assert router.routing.bus_key(A, "orders") == f"{A.account_id}:orders"
    assert router.routing.bus_key(A, bus_arn(A, "orders")) == f"{A.account_id}:orders"
    assert router.routing.bus_key(A, None) == f"{A.account_id}:default"
    assert router.routing.bus_key(B, "orders") is None
    assert router.routing.bus_key(B, bus_arn(A, "orders")) is None
    assert router.routing.bus_key(None, "orders") is None
    assert router.routing.bus_key(None, "default") == "default"
    assert router.routing.bus_key(A, "bad:name") is None
