"""EventsApi in process: the control plane over the real SQLite store, with a fake router."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from eventyard.errors import (
    InvalidEventPattern,
    LimitExceeded,
    PolicyLengthExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    ServiceError,
    UnknownOperation,
    ValidationError,
)
from eventyard.server.api.aws import EventsApi
from eventyard.server.catalog import Rule, rule_doc
from eventyard.server.config import Settings
from eventyard.server.store import Store
from eventyard.server.store.sqlite import SQLiteStore

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ARN = f"arn:aws:events:{REGION}:{ACCOUNT}"
PATTERN = '{"source": ["shop"]}'
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"


class FakeRouter:
    """Records the rule and bus changes it finds in the catalog's change feed each time
    the control plane asks it to sync, as the router applies them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen = 0
        self.rules: list[tuple[str, Rule | None]] = []
        self.buses: list[tuple[str, dict[str, Any] | None]] = []
        self.put: list[dict[str, Any]] = []
        self.put_accounts: list[str | None] = []
        self.announced: list[tuple[str, str, str]] = []

    async def put_events(
        self, params: dict[str, Any], account: str | None = None
    ) -> dict[str, Any]:
        self.put.append(params)
        self.put_accounts.append(account)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e1"}]}

    async def sync_catalog(self) -> None:
        for change in await self.store.catalog_changes(after=self.seen):
            self.seen = change.revision
            entry = change.entry
            if change.kind == "rule":
                rule = None if entry is None else Rule.from_doc(change.key, rule_doc(entry))
                self.rules.append((change.key, rule))
            elif change.kind == "bus":
                self.buses.append((change.key, None if entry is None else entry.doc))

    def resource_changed(
        self, account: str, resource_type: str, name: str, arn: str, change: str, **more: Any
    ) -> None:
        self.announced.append((resource_type, name, change))


@pytest.fixture
def router(store: SQLiteStore) -> FakeRouter:
    return FakeRouter(store)


@pytest.fixture
def api(store: SQLiteStore, router: FakeRouter) -> EventsApi:
    return EventsApi(store, Settings(account_id=ACCOUNT, region=REGION), router)


async def fails(api: EventsApi, op: str, params: dict[str, Any]) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await api.call(op, params)
    return info.value


async def rule(api: EventsApi, name: str = "r1", bus: str | None = None, **more: Any) -> str:
    params: dict[str, Any] = {"Name": name, "EventPattern": PATTERN, **more}
    if bus is not None:
        params["EventBusName"] = bus
    result = await api.call("PutRule", params)
    return str(result["RuleArn"])


# -- operations -------------------------------------------------------------------------


async def test_unknown_operation_is_rejected(api: EventsApi) -> None:
    error = await fails(api, "Frobnicate", {})
    assert isinstance(error, UnknownOperation)
    assert error.message == "Unknown operation AWSEvents.Frobnicate."


async def test_operation_of_a_later_issue_is_a_clear_error_not_a_success(api: EventsApi) -> None:
    error = await fails(api, "CreateEndpoint", {"Name": "a"})
    assert isinstance(error, UnknownOperation)
    assert error.message == "Operation CreateEndpoint is not supported by eventyard yet."


async def test_put_events_is_delegated_to_the_router(api: EventsApi, router: FakeRouter) -> None:
    params = {"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}
    assert await api.call("PutEvents", params) == {
        "FailedEntryCount": 0,
        "Entries": [{"EventId": "e1"}],
    }
    assert router.put == [params]
    assert router.put_accounts == [ACCOUNT]  # the caller's: here the home account


# -- buses ------------------------------------------------------------------------------


async def test_default_bus_exists_with_a_creation_time_that_is_kept(
    store: SQLiteStore, router: FakeRouter
) -> None:
    settings = Settings(account_id=ACCOUNT, region=REGION)
    first = await EventsApi(store, settings, router).call("DescribeEventBus", {})
    again = await EventsApi(store, settings, FakeRouter(store)).call("DescribeEventBus", {})
    assert first["Name"] == "default"
    assert first["Arn"] == f"{ARN}:event-bus/default"
    assert first["CreationTime"] == again["CreationTime"]
    stored = await store.catalog_get("bus", "default")
    assert stored is not None
    assert stored.doc["CreationTime"] == first["CreationTime"]
    assert router.buses == [("default", stored.doc)]


async def test_create_describe_and_list_a_bus(api: EventsApi, router: FakeRouter) -> None:
    created = await api.call("CreateEventBus", {"Name": "orders", "Description": "d"})
    assert created == {"EventBusArn": f"{ARN}:event-bus/orders", "Description": "d"}
    described = await api.call("DescribeEventBus", {"Name": f"{ARN}:event-bus/orders"})
    assert set(described) == {"Name", "Arn", "Description", "CreationTime", "LastModifiedTime"}
    assert isinstance(described["CreationTime"], float)
    listed = await api.call("ListEventBuses", {})
    assert [b["Name"] for b in listed["EventBuses"]] == ["default", "orders"]
    assert "NextToken" not in listed
    assert router.buses[-1][0] == "orders"


async def test_bus_catalog_document_has_the_agreed_layout(
    api: EventsApi, store: SQLiteStore
) -> None:
    await api.call("CreateEventBus", {"Name": "b", "DeadLetterConfig": {"Arn": QUEUE}})
    entry = await store.catalog_get("bus", "b")
    assert entry is not None
    assert set(entry.doc) == {"Name", "Arn", "DeadLetterConfig", "CreationTime", "LastModifiedTime"}
    assert entry.doc["DeadLetterConfig"] == {"Arn": QUEUE}


async def test_creating_an_existing_bus_or_default_fails(api: EventsApi) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    for name in ("b", "default"):
        error = await fails(api, "CreateEventBus", {"Name": name})
        assert isinstance(error, ResourceAlreadyExists)
        assert error.message == f"Event bus {name} already exists."


async def test_bus_name_constraints_use_aws_texts(api: EventsApi) -> None:
    error = await fails(api, "CreateEventBus", {"Name": "bad name!"})
    assert error.message == (
        "1 validation error detected: Value 'bad name!' at 'name' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [/\\.\\-_A-Za-z0-9]+"
    )
    error = await fails(api, "CreateEventBus", {})
    assert error.message == (
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: "
        "Member must not be null"
    )


async def test_wrong_parameter_types_are_validation_errors(api: EventsApi) -> None:
    cases = [
        ("CreateEventBus", {"Name": ["b"]}),
        ("ListEventBuses", {"Limit": "3"}),
        ("PutTargets", {"Rule": "r", "Targets": "t"}),
        ("PutTargets", {"Rule": "r", "Targets": ["t"]}),
        ("RemoveTargets", {"Rule": "r", "Ids": [1]}),
        ("DeleteRule", {"Name": "r", "Force": "yes"}),
        ("TestEventPattern", {"EventPattern": {"source": ["a"]}, "Event": "{}"}),
        ("TagResource", {"ResourceARN": f"{ARN}:event-bus/default", "Tags": {"a": "b"}}),
    ]
    for op, params in cases:
        error = await fails(api, op, params)
        assert isinstance(error, ValidationError), (op, error)


async def test_list_event_buses_pages_with_opaque_tokens(api: EventsApi) -> None:
    for i in range(5):
        await api.call("CreateEventBus", {"Name": f"p-{i}"})
    seen: list[str] = []
    params: dict[str, Any] = {"NamePrefix": "p-", "Limit": 2}
    pages = 0
    while True:
        page = await api.call("ListEventBuses", params)
        seen += [b["Name"] for b in page["EventBuses"]]
        pages += 1
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]
    assert seen == [f"p-{i}" for i in range(5)]
    assert pages == 3
    error = await fails(api, "ListEventBuses", {"NextToken": "garbage"})
    assert error.message == "The NextToken value is not valid."


async def test_update_event_bus_changes_given_members_only(
    api: EventsApi, router: FakeRouter
) -> None:
    await api.call("CreateEventBus", {"Name": "b", "Description": "old"})
    result = await api.call("UpdateEventBus", {"Name": "b", "DeadLetterConfig": {"Arn": QUEUE}})
    assert result == {
        "Arn": f"{ARN}:event-bus/b",
        "Name": "b",
        "Description": "old",
        "DeadLetterConfig": {"Arn": QUEUE},
    }
    name, doc = router.buses[-1]
    assert name == "b"
    assert doc is not None
    assert doc["DeadLetterConfig"] == {"Arn": QUEUE}
    cleared = await api.call("UpdateEventBus", {"Name": "b", "Description": ""})
    assert "Description" not in cleared
    error = await fails(api, "UpdateEventBus", {"Name": "nope"})
    assert isinstance(error, ResourceNotFound)
    assert error.message == "Event bus nope does not exist."


async def test_default_bus_cannot_be_deleted_and_missing_bus_deletes_quietly(
    api: EventsApi,
) -> None:
    error = await fails(api, "DeleteEventBus", {"Name": "default"})
    assert isinstance(error, ValidationError)
    assert error.message == "Cannot delete event bus default."
    assert await api.call("DeleteEventBus", {"Name": "never-was"}) == {}


async def test_deleting_a_bus_deletes_its_rules_and_tags_and_tells_the_router(
    api: EventsApi, router: FakeRouter, store: SQLiteStore
) -> None:
    await api.call("CreateEventBus", {"Name": "b", "Tags": [{"Key": "k", "Value": "v"}]})
    rule_arn = await rule(api, "r", "b")
    await api.call("TagResource", {"ResourceARN": rule_arn, "Tags": [{"Key": "k", "Value": "v"}]})
    await api.call(
        "PutTargets", {"Rule": "r", "EventBusName": "b", "Targets": [{"Id": "t", "Arn": QUEUE}]}
    )
    assert await api.call("DeleteEventBus", {"Name": "b"}) == {}
    assert await store.catalog_list("rule", "b/") == []
    assert await store.catalog_get("tags", rule_arn) is None
    assert router.rules[-1] == ("b/r", None)
    assert router.buses[-1] == ("b", None)
    await api.call("CreateEventBus", {"Name": "b"})
    assert await api.call("ListRules", {"EventBusName": "b"}) == {"Rules": []}
    tags = await api.call("ListTagsForResource", {"ResourceARN": f"{ARN}:event-bus/b"})
    assert tags == {"Tags": []}


# -- permissions (bus resource policies) ----------------------------------------------------

OTHER = "222222222222"
BUS_ARN = f"{ARN}:event-bus/b"


def allow(sid: str, principal: Any, resource: str = BUS_ARN) -> dict[str, Any]:
    """A statement as PutPermission's parameters make it."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": "events:PutEvents",
        "Resource": resource,
    }


def grant(sid: str, principal: str = OTHER, bus: str = "b", **more: Any) -> dict[str, Any]:
    return {
        "EventBusName": bus,
        "Action": "events:PutEvents",
        "Principal": principal,
        "StatementId": sid,
        **more,
    }


async def policy_of(api: EventsApi, bus: str = "b") -> Any:
    """The bus policy as DescribeEventBus returns it, parsed (None: no policy)."""
    described = await api.call("DescribeEventBus", {"Name": bus})
    return json.loads(described["Policy"]) if "Policy" in described else None


async def test_put_permission_adds_statements_and_replaces_one_by_sid_in_place(
    api: EventsApi, store: SQLiteStore, router: FakeRouter
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    created = await api.call("DescribeEventBus", {"Name": "b"})
    assert "Policy" not in created
    assert await api.call("PutPermission", grant("one", ACCOUNT)) == {}
    await api.call("PutPermission", grant("two", OTHER))
    await api.call("PutPermission", grant("three", "*"))
    await api.call("PutPermission", grant("one", "*"))
    expected = {
        "Version": "2012-10-17",
        "Statement": [
            allow("one", "*"),
            allow("two", {"AWS": f"arn:aws:iam::{OTHER}:root"}),
            allow("three", "*"),
        ],
    }
    assert await policy_of(api) == expected
    listed = await api.call("ListEventBuses", {"NamePrefix": "b"})
    assert json.loads(listed["EventBuses"][0]["Policy"]) == expected
    entry = await store.catalog_get("bus", "b")
    assert entry is not None
    assert isinstance(entry.doc["Policy"], str)
    assert json.loads(entry.doc["Policy"]) == expected
    assert entry.doc["LastModifiedTime"] >= created["LastModifiedTime"]
    assert router.buses[-1] == ("b", entry.doc)


async def test_put_permission_defaults_to_the_default_bus_and_keeps_a_condition(
    api: EventsApi,
) -> None:
    condition = {"Type": "StringEquals", "Key": "aws:PrincipalOrgID", "Value": "o-abc"}
    params = grant("org", "*", Condition=condition)
    del params["EventBusName"]
    await api.call("PutPermission", params)
    statement = allow("org", "*", f"{ARN}:event-bus/default")
    statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}
    assert await policy_of(api, "default") == {"Version": "2012-10-17", "Statement": [statement]}


async def test_put_permission_with_a_policy_replaces_the_whole_policy_as_given(
    api: EventsApi, store: SQLiteStore
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    await api.call("PutPermission", grant("one"))
    await api.call("PutPermission", grant("two"))
    text = (
        '{ "Version": "2012-10-17",\n  "Statement": [{"Sid": "list", "Effect": "Allow", '
        '"Principal": {"Service": "events.amazonaws.com"}, "Action": "events:ListRules", '
        '"Resource": "*"}] }'
    )
    assert await api.call("PutPermission", {"EventBusName": "b", "Policy": text}) == {}
    described = await api.call("DescribeEventBus", {"Name": "b"})
    assert described["Policy"] == text
    # A statement added afterwards joins the given policy.
    await api.call("PutPermission", grant("one"))
    policy = await policy_of(api)
    assert [s["Sid"] for s in policy["Statement"]] == ["list", "one"]
    assert policy["Statement"][0]["Action"] == "events:ListRules"


async def test_an_invalid_policy_is_a_validation_error_and_changes_nothing(
    api: EventsApi,
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    await api.call("PutPermission", grant("one"))
    before = await policy_of(api)
    error = await fails(api, "PutPermission", {"EventBusName": "b", "Policy": "{not json"})
    assert isinstance(error, ValidationError)
    assert error.message.startswith("Parameter Policy is not valid: it is not JSON (")
    shape = "Parameter Policy is not valid: it must be a JSON object with a Statement list."
    for text in ("[]", '"policy"', '{"Version": "2012-10-17"}', '{"Statement": {"Sid": "a"}}'):
        error = await fails(api, "PutPermission", {"EventBusName": "b", "Policy": text})
        assert isinstance(error, ValidationError)
        assert error.message == shape, text
    error = await fails(api, "PutPermission", {"EventBusName": "b", "Policy": '{"Statement": [1]}'})
    assert error.message == (
        "Parameter Policy is not valid: every item of Statement must be a JSON object."
    )
    mixed = {"EventBusName": "b", "Policy": '{"Statement": []}', "StatementId": "x"}
    error = await fails(api, "PutPermission", mixed)
    assert isinstance(error, ValidationError)
    assert error.message == (
        "Policy cannot be combined with StatementId: "
        "give either a whole Policy or the parameters of one statement."
    )
    error = await fails(api, "PutPermission", {"EventBusName": "b", "Policy": 7})
    assert isinstance(error, ValidationError)
    assert await policy_of(api) == before


async def test_policies_longer_than_10240_characters_are_refused(
    api: EventsApi, store: SQLiteStore
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    head, tail = '{"Statement": [], "Padding": "', '"}'
    exact = head + "x" * (10240 - len(head) - len(tail)) + tail
    assert len(exact) == 10240
    await api.call("PutPermission", {"EventBusName": "b", "Policy": exact})
    error = await fails(
        api, "PutPermission", {"EventBusName": "b", "Policy": exact.replace('x"', 'xx"')}
    )
    assert isinstance(error, PolicyLengthExceeded)
    assert error.code == "PolicyLengthExceededException"
    assert error.status == 400
    assert error.message == (
        "The policy of event bus b would be 10241 characters long; the limit is 10240."
    )
    # Statement by statement: the one that would cross the limit is refused, the rest kept.
    await api.call("RemovePermission", {"EventBusName": "b", "RemoveAllPermissions": True})
    added = 0
    while True:
        try:
            await api.call("PutPermission", grant(f"{added:02d}" + "s" * 62))
        except PolicyLengthExceeded:
            break
        added += 1
    assert 30 < added < 100
    entry = await store.catalog_get("bus", "b")
    assert entry is not None
    assert len(entry.doc["Policy"]) <= 10240
    assert len(json.loads(entry.doc["Policy"])["Statement"]) == added


async def test_concurrent_put_permissions_lose_no_statement(
    api: EventsApi, store: SQLiteStore
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    await asyncio.gather(*(api.call("PutPermission", grant(f"s{i}")) for i in range(6)))
    policy = await policy_of(api)
    assert sorted(s["Sid"] for s in policy["Statement"]) == [f"s{i}" for i in range(6)]


async def test_remove_permission_by_sid_and_the_last_statement_takes_the_policy(
    api: EventsApi, router: FakeRouter
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    await api.call("PutPermission", grant("one", ACCOUNT))
    await api.call("PutPermission", grant("two"))
    params = {"EventBusName": "b", "StatementId": "one", "RemoveAllPermissions": False}
    assert await api.call("RemovePermission", params) == {}
    assert await policy_of(api) == {
        "Version": "2012-10-17",
        "Statement": [allow("two", {"AWS": f"arn:aws:iam::{OTHER}:root"})],
    }
    error = await fails(api, "RemovePermission", params)
    assert isinstance(error, ResourceNotFound)
    assert error.message == "Statement with the provided id does not exist."
    await api.call("RemovePermission", {"EventBusName": "b", "StatementId": "two"})
    assert await policy_of(api) is None
    name, doc = router.buses[-1]
    assert name == "b"
    assert doc is not None
    assert "Policy" not in doc


async def test_remove_all_permissions(api: EventsApi) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    await api.call("PutPermission", grant("one"))
    await api.call("PutPermission", grant("two"))
    remove_all = {"EventBusName": "b", "RemoveAllPermissions": True}
    assert await api.call("RemovePermission", remove_all) == {}
    assert await policy_of(api) is None
    # Without a policy there is nothing to remove: by Sid or all at once.
    error = await fails(api, "RemovePermission", remove_all)
    assert isinstance(error, ResourceNotFound)
    assert error.message == "EventBus does not have a policy."
    error = await fails(api, "RemovePermission", {"EventBusName": "b", "StatementId": "one"})
    assert error.message == "Statement with the provided id does not exist."
    error = await fails(api, "RemovePermission", {"EventBusName": "b"})
    assert isinstance(error, ValidationError)
    assert error.message == (
        "Parameter StatementId must be specified unless RemoveAllPermissions is true."
    )
    error = await fails(api, "RemovePermission", {"EventBusName": "b", "RemoveAllPermissions": 1})
    assert isinstance(error, ValidationError)


async def test_permissions_of_a_missing_bus(api: EventsApi) -> None:
    for op, params in (
        ("PutPermission", grant("s", bus="nope")),
        ("PutPermission", {"EventBusName": "nope", "Policy": '{"Statement": []}'}),
        ("RemovePermission", {"EventBusName": "nope", "StatementId": "s"}),
        ("RemovePermission", {"EventBusName": "nope", "RemoveAllPermissions": True}),
    ):
        error = await fails(api, op, params)
        assert isinstance(error, ResourceNotFound), op
        assert error.message == "Event bus nope does not exist."


async def test_permission_parameters_use_aws_texts(api: EventsApi) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    error = await fails(api, "PutPermission", grant("bad sid", "12345"))
    assert error.message == (
        "2 validation errors detected: Value '12345' at 'principal' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: (\\d{12}|\\*); "
        "Value 'bad sid' at 'statementId' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: [a-zA-Z0-9-_]+"
    )
    error = await fails(api, "PutPermission", grant("s" * 65))
    assert error.message == (
        f"1 validation error detected: Value '{'s' * 65}' at 'statementId' failed to satisfy "
        "constraint: Member must have length less than or equal to 64"
    )
    error = await fails(api, "PutPermission", {**grant("s"), "EventBusName": f"{ARN}:event-bus/b"})
    assert isinstance(error, ValidationError)
    assert "at 'eventBusName' failed to satisfy constraint" in error.message
    error = await fails(api, "PutPermission", {**grant("s"), "Condition": {"Type": "StringEquals"}})
    assert error.message == (
        "2 validation errors detected: Value null at 'condition.key' failed to satisfy "
        "constraint: Member must not be null; Value null at 'condition.value' failed to "
        "satisfy constraint: Member must not be null"
    )


async def test_permission_statements_must_be_complete_and_supported(api: EventsApi) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    error = await fails(api, "PutPermission", {"EventBusName": "b", "StatementId": "s"})
    assert isinstance(error, ValidationError)
    assert error.message == (
        "Parameter(s) Action, Principal must be specified when Policy is not given."
    )
    error = await fails(api, "PutPermission", {**grant("s"), "Action": "events:PutRule"})
    assert error.message == "Provided value in parameter 'action' is not supported."
    org = {"Type": "StringEquals", "Key": "aws:PrincipalOrgID", "Value": "o-1"}
    for condition, message in (
        (
            {**org, "Type": "StringLike"},
            "Condition.Type StringLike is not supported: only StringEquals is.",
        ),
        (
            {**org, "Key": "aws:SourceArn"},
            "Condition.Key aws:SourceArn is not supported: only aws:PrincipalOrgID is.",
        ),
    ):
        error = await fails(api, "PutPermission", grant("s", "*", Condition=condition))
        assert isinstance(error, ValidationError)
        assert error.message == message
    error = await fails(api, "PutPermission", grant("s", OTHER, Condition=org))
    assert error.message == (
        "Value of the parameter 'principal' must be '*' when the parameter 'condition' is set."
    )
    assert await policy_of(api) is None


# -- rules ------------------------------------------------------------------------------


async def test_rule_arns_have_a_bus_segment_only_on_custom_buses(api: EventsApi) -> None:
    assert await rule(api, "r") == f"{ARN}:rule/r"
    await api.call("CreateEventBus", {"Name": "b"})
    assert await rule(api, "r", f"{ARN}:event-bus/b") == f"{ARN}:rule/b/r"


async def test_rule_catalog_document_has_the_agreed_layout(
    api: EventsApi, store: SQLiteStore, router: FakeRouter
) -> None:
    await rule(api, "r", Description="d", RoleArn="arn:aws:iam::1:role/x")
    entry = await store.catalog_get("rule", "default/r")
    assert entry is not None
    assert entry.doc == {
        "Name": "r",
        "Arn": f"{ARN}:rule/r",
        "EventBusName": "default",
        "EventPattern": PATTERN,
        "State": "ENABLED",
        "Description": "d",
        "RoleArn": "arn:aws:iam::1:role/x",
        "CreatedBy": ACCOUNT,
        "Targets": [],
    }
    assert router.rules == [("default/r", Rule.from_doc("default/r", rule_doc(entry)))]


async def test_describe_and_list_rules(api: EventsApi) -> None:
    await rule(api, "a")
    await rule(api, "b", State="DISABLED")
    described = await api.call("DescribeRule", {"Name": "a"})
    assert described == {
        "Name": "a",
        "Arn": f"{ARN}:rule/a",
        "EventPattern": PATTERN,
        "State": "ENABLED",
        "EventBusName": "default",
        "CreatedBy": ACCOUNT,
    }
    listed = await api.call("ListRules", {"NamePrefix": "b"})
    assert [(r["Name"], r["State"]) for r in listed["Rules"]] == [("b", "DISABLED")]
    assert "CreatedBy" not in listed["Rules"][0]
    page = await api.call("ListRules", {"Limit": 1})
    assert [r["Name"] for r in page["Rules"]] == ["a"]
    rest = await api.call("ListRules", {"Limit": 1, "NextToken": page["NextToken"]})
    assert [r["Name"] for r in rest["Rules"]] == ["b"]
    assert "NextToken" not in rest


async def test_missing_rule_and_missing_bus_messages(api: EventsApi) -> None:
    error = await fails(api, "DescribeRule", {"Name": "nope", "EventBusName": "default"})
    assert isinstance(error, ResourceNotFound)
    assert error.message == "Rule nope does not exist on EventBus default."
    error = await fails(api, "PutRule", {"Name": "r", "EventPattern": PATTERN, "EventBusName": "x"})
    assert error.message == "Event bus x does not exist."
    error = await fails(api, "ListRules", {"EventBusName": "x"})
    assert error.message == "Event bus x does not exist."


async def test_put_rule_again_replaces_it_but_keeps_targets_and_tags(
    api: EventsApi, store: SQLiteStore
) -> None:
    arn = await rule(api, "r", Description="first", Tags=[{"Key": "k", "Value": "v"}])
    await api.call("PutTargets", {"Rule": "r", "Targets": [{"Id": "t", "Arn": QUEUE}]})
    await rule(api, "r", Tags=[{"Key": "other", "Value": "x"}])
    entry = await store.catalog_get("rule", "default/r")
    assert entry is not None
    assert "Description" not in entry.doc
    assert entry.doc["Targets"] == [{"Id": "t", "Arn": QUEUE}]
    tags = await api.call("ListTagsForResource", {"ResourceARN": arn})
    assert tags == {"Tags": [{"Key": "k", "Value": "v"}]}


async def test_put_rule_needs_a_pattern_or_a_schedule(api: EventsApi) -> None:
    error = await fails(api, "PutRule", {"Name": "r"})
    assert error.message == "Parameter(s) EventPattern or ScheduleExpression must be specified."


async def test_schedules_are_checked_and_stored_on_the_default_bus_only(
    api: EventsApi, store: SQLiteStore
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    error = await fails(
        api, "PutRule", {"Name": "r", "EventBusName": "b", "ScheduleExpression": "rate(1 minute)"}
    )
    assert error.message == "ScheduleExpression is supported only on the default event bus."
    for bad in ("rate(1 minutes)", "rate(10 minute)", "cron(0 1 * * * *)", "cron(71 8 1 * ? *)"):
        error = await fails(api, "PutRule", {"Name": "r", "ScheduleExpression": bad})
        assert isinstance(error, ValidationError)
        assert error.message == "Parameter ScheduleExpression is not valid.", bad
    assert await store.catalog_get("rule", "default/r") is None
    assert await store.catalog_get("rule", "b/r") is None
    for good in ("rate(5 minutes)", "cron(0/30 0-2 ? * MON-FRI *)", "cron(15 10 ? * 6L 2002-2005)"):
        await api.call("PutRule", {"Name": "r", "ScheduleExpression": good})
        described = await api.call("DescribeRule", {"Name": "r"})
        assert described["ScheduleExpression"] == good
        assert "EventPattern" not in described
    # a pattern and a schedule together; replacing the rule drops what is left out
    both = {"Name": "r", "ScheduleExpression": "rate(1 day)", "EventPattern": '{"a": [1]}'}
    await api.call("PutRule", both)
    [listed] = (await api.call("ListRules", {"NamePrefix": "r"}))["Rules"]
    assert (listed["ScheduleExpression"], listed["EventPattern"]) == ("rate(1 day)", '{"a": [1]}')
    await api.call("PutRule", {"Name": "r", "EventPattern": '{"a": [1]}'})
    assert "ScheduleExpression" not in await api.call("DescribeRule", {"Name": "r"})


async def test_invalid_pattern_json_gets_the_jackson_location(api: EventsApi) -> None:
    error = await fails(api, "PutRule", {"Name": "r", "EventPattern": "{'a': 1}"})
    assert isinstance(error, InvalidEventPattern)
    assert error.message == (
        "Event pattern is not valid. Reason: Unexpected character (''' (code 39)): was "
        "expecting double-quote to start field name\n"
        " at [Source: (String)\"{'a': 1}\"; line: 1, column: 2]"
    )


async def test_jackson_location_counts_lines_of_a_multi_line_pattern(api: EventsApi) -> None:
    pattern = '{\n  "source": [shop]\n}'
    error = await fails(api, "PutRule", {"Name": "r", "EventPattern": pattern})
    assert error.message.endswith(f'\n at [Source: (String)"{pattern}"; line: 2, column: 18]')
    assert "Unrecognized token 'shop'" in error.message


async def test_invalid_pattern_is_rejected_with_the_engine_reason(api: EventsApi) -> None:
    error = await fails(api, "PutRule", {"Name": "r", "EventPattern": '{"a": [{"NUMERIC": [1]}]}'})
    assert isinstance(error, InvalidEventPattern)
    assert error.message.startswith(
        "Event pattern is not valid. Reason: Unrecognized match type NUMERIC"
    )


async def test_enable_and_disable_a_rule(api: EventsApi, router: FakeRouter) -> None:
    await rule(api, "r")
    assert await api.call("DisableRule", {"Name": "r"}) == {}
    assert (await api.call("DescribeRule", {"Name": "r"}))["State"] == "DISABLED"
    assert router.rules[-1][1] is not None
    assert router.rules[-1][1].enabled is False  # State DISABLED
    await api.call("EnableRule", {"Name": "r"})
    assert (await api.call("DescribeRule", {"Name": "r"}))["State"] == "ENABLED"
    error = await fails(api, "EnableRule", {"Name": "nope"})
    assert error.message == "Rule nope does not exist on EventBus default."


async def test_delete_rule(api: EventsApi, router: FakeRouter, store: SQLiteStore) -> None:
    arn = await rule(api, "r")
    await api.call("TagResource", {"ResourceARN": arn, "Tags": [{"Key": "k", "Value": "v"}]})
    await api.call("PutTargets", {"Rule": "r", "Targets": [{"Id": "t", "Arn": QUEUE}]})
    error = await fails(api, "DeleteRule", {"Name": "r"})
    assert isinstance(error, ValidationError)
    assert error.message == "Rule can't be deleted since it has targets."
    await api.call("RemoveTargets", {"Rule": "r", "Ids": ["t"]})
    assert await api.call("DeleteRule", {"Name": "r"}) == {}
    assert router.rules[-1] == ("default/r", None)
    assert await store.catalog_get("tags", arn) is None
    assert await api.call("DeleteRule", {"Name": "r"}) == {}
    error = await fails(api, "DeleteRule", {"Name": "r", "EventBusName": "nobus"})
    assert error.message == "Event bus nobus does not exist."


async def test_list_rule_names_by_target(api: EventsApi) -> None:
    for name in ("c", "a", "b"):
        await rule(api, name)
    for name in ("a", "c"):
        await api.call("PutTargets", {"Rule": name, "Targets": [{"Id": "t", "Arn": QUEUE}]})
    result = await api.call("ListRuleNamesByTarget", {"TargetArn": QUEUE})
    assert result == {"RuleNames": ["a", "c"]}
    first = await api.call("ListRuleNamesByTarget", {"TargetArn": QUEUE, "Limit": 1})
    assert first["RuleNames"] == ["a"]
    rest = await api.call(
        "ListRuleNamesByTarget", {"TargetArn": QUEUE, "NextToken": first["NextToken"]}
    )
    assert rest == {"RuleNames": ["c"]}


# -- targets ----------------------------------------------------------------------------


async def test_put_targets_upserts_by_id_in_insertion_order(
    api: EventsApi, store: SQLiteStore, router: FakeRouter
) -> None:
    await rule(api, "r")
    targets = [{"Id": f"t{i}", "Arn": QUEUE} for i in range(3)]
    result = await api.call("PutTargets", {"Rule": "r", "Targets": targets})
    assert result == {"FailedEntryCount": 0, "FailedEntries": []}
    replaced = {
        "Id": "t1",
        "Arn": QUEUE,
        "Input": '{"a": 1}',
        "RetryPolicy": {"MaximumRetryAttempts": 2},
    }
    await api.call("PutTargets", {"Rule": "r", "Targets": [replaced]})
    entry = await store.catalog_get("rule", "default/r")
    assert entry is not None
    assert entry.doc["Targets"] == [targets[0], replaced, targets[2]]
    assert router.rules[-1] == ("default/r", Rule.from_doc("default/r", rule_doc(entry)))
    listed = await api.call("ListTargetsByRule", {"Rule": "r", "Limit": 2})
    assert listed["Targets"] == [targets[0], replaced]
    rest = await api.call("ListTargetsByRule", {"Rule": "r", "NextToken": listed["NextToken"]})
    assert rest == {"Targets": [targets[2]]}


async def test_a_sixth_target_exceeds_the_limit_and_nothing_changes(
    api: EventsApi, store: SQLiteStore
) -> None:
    await rule(api, "r")
    five = [{"Id": f"t{i}", "Arn": QUEUE} for i in range(5)]
    await api.call("PutTargets", {"Rule": "r", "Targets": five})
    error = await fails(api, "PutTargets", {"Rule": "r", "Targets": [{"Id": "t9", "Arn": QUEUE}]})
    assert isinstance(error, LimitExceeded)
    assert error.message == "The requested resource exceeds the maximum number allowed."
    entry = await store.catalog_get("rule", "default/r")
    assert entry is not None
    assert entry.doc["Targets"] == five


async def test_concurrent_put_targets_lose_no_target(api: EventsApi, store: SQLiteStore) -> None:
    await rule(api, "r")
    await asyncio.gather(
        *(
            api.call("PutTargets", {"Rule": "r", "Targets": [{"Id": f"t{i}", "Arn": QUEUE}]})
            for i in range(5)
        )
    )
    entry = await store.catalog_get("rule", "default/r")
    assert entry is not None
    assert sorted(t["Id"] for t in entry.doc["Targets"]) == [f"t{i}" for i in range(5)]


async def test_target_constraints_use_aws_texts(api: EventsApi) -> None:
    await rule(api, "r")
    long_id = "x" * 65
    error = await fails(
        api, "PutTargets", {"Rule": "r", "Targets": [{"Id": long_id, "Arn": QUEUE}]}
    )
    assert error.message == (
        f"1 validation error detected: Value '{long_id}' at 'targets.1.member.id' failed to "
        "satisfy constraint: Member must have length less than or equal to 64"
    )
    bad_retry = {"Id": "t", "Arn": QUEUE, "RetryPolicy": {"MaximumEventAgeInSeconds": 10}}
    error = await fails(api, "PutTargets", {"Rule": "r", "Targets": [bad_retry]})
    assert error.message == (
        "1 validation error detected: Value '10' at "
        "'targets.1.member.retryPolicy.maximumEventAgeInSeconds' failed to satisfy "
        "constraint: Member must have value greater than or equal to 60"
    )


async def test_target_input_is_validated_by_the_transform_rules(api: EventsApi) -> None:
    await rule(api, "r")
    both = {"Id": "t", "Arn": QUEUE, "Input": "{}", "InputPath": "$.detail"}
    error = await fails(api, "PutTargets", {"Rule": "r", "Targets": [both]})
    assert (
        error.message
        == "Only one of Input, InputPath, or InputTransformer must be provided for target t."
    )


async def test_targets_of_a_missing_rule(api: EventsApi) -> None:
    params = {"Rule": "nope", "Targets": [{"Id": "t", "Arn": QUEUE}]}
    error = await fails(api, "PutTargets", params)
    assert error.message == "Rule nope does not exist on EventBus default."
    error = await fails(api, "ListTargetsByRule", {"Rule": "nope"})
    assert isinstance(error, ResourceNotFound)


# -- tags -------------------------------------------------------------------------------


async def test_tag_untag_and_list_tags(api: EventsApi) -> None:
    arn = await rule(api, "r")
    tags = [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    assert await api.call("TagResource", {"ResourceARN": arn, "Tags": tags}) == {}
    await api.call("TagResource", {"ResourceARN": arn, "Tags": [{"Key": "a", "Value": "9"}]})
    listed = await api.call("ListTagsForResource", {"ResourceARN": arn})
    assert listed == {"Tags": [{"Key": "a", "Value": "9"}, {"Key": "b", "Value": "2"}]}
    assert await api.call("UntagResource", {"ResourceARN": arn, "TagKeys": ["a", "zz"]}) == {}
    assert await api.call("ListTagsForResource", {"ResourceARN": arn}) == {
        "Tags": [{"Key": "b", "Value": "2"}]
    }


async def test_duplicate_tag_keys_are_rejected(api: EventsApi) -> None:
    tags = [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]
    error = await fails(api, "CreateEventBus", {"Name": "b", "Tags": tags})
    assert error.message == "Invalid parameter: Duplicated keys are not allowed."


async def test_tags_of_missing_resources(api: EventsApi) -> None:
    error = await fails(api, "ListTagsForResource", {"ResourceARN": f"{ARN}:rule/b/nope"})
    assert error.message == "Rule nope does not exist on EventBus b."
    error = await fails(
        api, "UntagResource", {"ResourceARN": f"{ARN}:event-bus/nope", "TagKeys": []}
    )
    assert error.message == "Event bus nope does not exist."
    error = await fails(api, "ListTagsForResource", {"ResourceARN": "not-an-arn"})
    assert isinstance(error, ValidationError)


# -- TestEventPattern -------------------------------------------------------------------

EVENT = (
    '{"id": "1", "source": "shop", "detail-type": "t", "account": "123456789012",'
    ' "region": "us-east-1", "time": "2022-07-13T13:48:01Z", "detail": {}}'
)


async def test_test_event_pattern_says_whether_it_matches(api: EventsApi) -> None:
    assert await api.call("TestEventPattern", {"EventPattern": PATTERN, "Event": EVENT}) == {
        "Result": True
    }
    other = '{"source": ["other"]}'
    assert await api.call("TestEventPattern", {"EventPattern": other, "Event": EVENT}) == {
        "Result": False
    }


async def test_test_event_pattern_needs_a_whole_event(api: EventsApi) -> None:
    for event in ("plain", "[1]", '{"id": "1"}'):
        error = await fails(api, "TestEventPattern", {"EventPattern": PATTERN, "Event": event})
        assert isinstance(error, ValidationError)
        assert error.message == "Parameter Event is not valid."


async def test_test_event_pattern_reports_where_the_filter_is_not_an_object(
    api: EventsApi,
) -> None:
    error = await fails(api, "TestEventPattern", {"EventPattern": '  ["a"]', "Event": EVENT})
    assert error.message == (
        "Event pattern is not valid. Reason: Filter is not an object\n"
        ' at [Source: (String)"  ["a"]"; line: 1, column: 4]'
    )
