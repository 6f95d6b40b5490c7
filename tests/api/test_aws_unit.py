"""EventsApi in process: the control plane over the real SQLite store, with a fake router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.api.aws import EventsApi
from eventyard.config import Settings
from eventyard.errors import (
    InvalidEventPattern,
    LimitExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    ServiceError,
    UnknownOperation,
    ValidationError,
)
from eventyard.store.sqlite import SQLiteStore

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ARN = f"arn:aws:events:{REGION}:{ACCOUNT}"
PATTERN = '{"source": ["shop"]}'
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"


class FakeRouter:
    """Records the hooks the control plane calls."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, dict[str, Any] | None]] = []
        self.buses: list[tuple[str, dict[str, Any] | None]] = []
        self.put: list[dict[str, Any]] = []

    async def put_events(self, params: dict[str, Any]) -> dict[str, Any]:
        self.put.append(params)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e1"}]}

    def rule_changed(self, key: str, doc: dict[str, Any] | None) -> None:
        self.rules.append((key, doc))

    def bus_changed(self, name: str, doc: dict[str, Any] | None) -> None:
        self.buses.append((name, doc))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "eventyard.db"))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def router() -> FakeRouter:
    return FakeRouter()


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
    error = await fails(api, "CreateArchive", {"ArchiveName": "a"})
    assert isinstance(error, UnknownOperation)
    assert error.message == "Operation CreateArchive is not supported by eventyard yet."


async def test_put_events_is_delegated_to_the_router(api: EventsApi, router: FakeRouter) -> None:
    params = {"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}
    assert await api.call("PutEvents", params) == {
        "FailedEntryCount": 0,
        "Entries": [{"EventId": "e1"}],
    }
    assert router.put == [params]


# -- buses ------------------------------------------------------------------------------


async def test_default_bus_exists_with_a_creation_time_that_is_kept(
    store: SQLiteStore, router: FakeRouter
) -> None:
    settings = Settings(account_id=ACCOUNT, region=REGION)
    first = await EventsApi(store, settings, router).call("DescribeEventBus", {})
    again = await EventsApi(store, settings, FakeRouter()).call("DescribeEventBus", {})
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
    assert router.rules == [("default/r", entry.doc)]


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


async def test_schedules_are_checked_then_refused_and_never_stored(
    api: EventsApi, store: SQLiteStore
) -> None:
    await api.call("CreateEventBus", {"Name": "b"})
    error = await fails(
        api, "PutRule", {"Name": "r", "EventBusName": "b", "ScheduleExpression": "rate(1 minute)"}
    )
    assert error.message == "ScheduleExpression is supported only on the default event bus."
    for bad in ("rate(1 minutes)", "rate(10 minute)", "cron(0 1 * * * *)", "cron(71 8 1 * ? *)"):
        error = await fails(api, "PutRule", {"Name": "r", "ScheduleExpression": bad})
        assert error.message == "Parameter ScheduleExpression is not valid.", bad
    for good in ("rate(5 minutes)", "cron(0/30 0-2 ? * MON-FRI *)", "cron(15 10 ? * 6L 2002-2005)"):
        error = await fails(api, "PutRule", {"Name": "r", "ScheduleExpression": good})
        assert isinstance(error, ValidationError)
        assert error.message == (
            "ScheduleExpression is not supported by eventyard yet; "
            "rules with a schedule are not stored."
        )
    assert await store.catalog_get("rule", "default/r") is None


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
    assert router.rules[-1][1]["State"] == "DISABLED"
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
    assert router.rules[-1] == ("default/r", entry.doc)
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
