"""Every AWS-recorded EventBridge API case of the operations eventyard serves, via boto3.

Each case of ``../shared/conformance/api.jsonl`` runs against the real app (router,
EventBridge and SQS APIs on a temporary store, see ``conftest.aws_endpoint``): its setup
calls, then the recorded call. Error codes, messages and HTTP statuses are compared
exactly; responses field by field, with JSON-string fields parsed and generated values
(timestamps, UUIDs, tokens) checked for presence and consistency. ``API.md`` describes
the placeholders; each case gets fresh names.

Skipped, by name: operations of later issues (endpoints, partner sources) whether
recorded or needed in setup. Scheduled rules (``ScheduleExpression``) run like every other
case. Replays a case leaves active are cancelled after it, as the recording's own tests
cleaned up: the account's quota of 10 active replays must not carry over to the next case.
The recorded cases run on both backends (SQLite and JetStream, ``backend_events``); the
pattern corpus, which no store serves, on SQLite.

Bus policies are compared with their statements sorted by ``Sid`` on both sides: the
recording tool sorted them before storing the snapshot, so the recorded order is not AWS's.

The pattern corpus (``patterns.jsonl``) also runs through the ``TestEventPattern`` endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from tests.conftest import (
    BACKENDS,
    CONFORMANCE,
    TEST_MASTER_KEY,
    backend_store,
    conformance_file,
)
from tests.server.api.conftest import (
    AWS_ACCOUNT,
    AWS_REGION,
    CLASSIC_ENTRIES_SIZE,
    aws_client,
    serve_in_thread,
)

SERVED = frozenset(
    {
        "PutEvents",
        "TestEventPattern",
        "CreateEventBus",
        "DescribeEventBus",
        "ListEventBuses",
        "UpdateEventBus",
        "DeleteEventBus",
        "PutPermission",
        "RemovePermission",
        "PutRule",
        "DescribeRule",
        "ListRules",
        "EnableRule",
        "DisableRule",
        "DeleteRule",
        "ListRuleNamesByTarget",
        "PutTargets",
        "RemoveTargets",
        "ListTargetsByRule",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "CreateConnection",
        "DescribeConnection",
        "UpdateConnection",
        "DeleteConnection",
        "DeauthorizeConnection",
        "ListConnections",
        "CreateApiDestination",
        "DescribeApiDestination",
        "UpdateApiDestination",
        "DeleteApiDestination",
        "ListApiDestinations",
        "CreateArchive",
        "DescribeArchive",
        "ListArchives",
        "UpdateArchive",
        "DeleteArchive",
        "StartReplay",
        "DescribeReplay",
        "ListReplays",
        "CancelReplay",
    }
)
# Snapshot texts that stand for a value of the key they appear under.
_ANY_STRING = frozenset({"target-arn", "target-id", "api-destination-arn", "connection-arn"})
# A second 12-digit account, distinct from ours (PutPermission principals).
SECONDARY_ACCOUNT = "222222222222"
_NUMBERED = re.compile(r"<(uuid|next_token|resource):\d+>")


def _load() -> list[dict[str, Any]]:
    path = CONFORMANCE / "api.jsonl"
    if not path.is_file():
        return [{"name": "api.jsonl missing", "op": "", "setup": []}]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _skip_reason(case: dict[str, Any]) -> str | None:
    if case["op"] not in SERVED:
        return f"{case['op']} belongs to a later issue"
    for step in case["setup"]:
        if step["op"] not in SERVED and not step.get("ignore_error"):
            return f"setup needs {step['op']}, which belongs to a later issue"
    return None


CASES = _load()


def _params() -> list[Any]:
    params = []
    for case in CASES:
        reason = _skip_reason(case) if case["op"] else None
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


# -- placeholders -------------------------------------------------------------------------


def _values(case: dict[str, Any]) -> dict[str, Any]:
    """A value for each token of the case: fresh names, our account, region and times."""
    now = datetime.now(UTC)
    fixed: dict[str, Any] = {
        "<account-id>": AWS_ACCOUNT,
        "111111111111": AWS_ACCOUNT,
        "<secondary-account-id>": SECONDARY_ACCOUNT,
        "<region>": AWS_REGION,
        "<partition>": "aws",
        "<now>": now,
        "<now-60s>": now - timedelta(seconds=60),
        "<now+60s>": now + timedelta(seconds=60),
        "<now-whole-second>": now.replace(microsecond=0),
        "<now-whole-second-10s>": now.replace(microsecond=0) - timedelta(seconds=10),
    }
    values: dict[str, Any] = {}
    for placeholder in case.get("placeholders", ()):
        token, means = placeholder["token"], placeholder["means"]
        if token in fixed:
            values[token] = fixed[token]
        elif "replaced the text 'default'" in means:
            values[token] = "default"
        elif token.endswith("queue-arn>"):
            values[token] = f"arn:aws:sqs:{AWS_REGION}:{AWS_ACCOUNT}:q-{uuid.uuid4().hex[:8]}"
        elif _NUMBERED.fullmatch(token.replace(":N>", ":1>")):
            continue  # generated by the service; bound when first seen
        elif token.endswith(":N>"):
            # A family of values chosen by the test (<sid:1>, <sid:2>…): one for each member.
            stem = token[1:-3]
            for number in sorted(set(re.findall(rf"<{re.escape(stem)}:(\d+)>", json.dumps(case)))):
                values[f"<{stem}:{number}>"] = f"{stem}-{number}-{uuid.uuid4().hex[:8]}"
        elif token.startswith("<"):
            stem = re.sub(r"[^A-Za-z0-9]+", "-", token.strip("<>")).strip("-")
            values[token] = f"{stem}-{uuid.uuid4().hex[:8]}"
    return values


def _fill(value: Any, values: dict[str, Any]) -> Any:
    """``value`` with every token replaced (a whole-string time token becomes a datetime)."""
    if isinstance(value, str):
        if value in values and not isinstance(values[value], str):
            return values[value]
        for token in sorted(values, key=len, reverse=True):
            if isinstance(values[token], str):
                value = value.replace(token, values[token])
        return value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _expand(params: dict[str, Any], expand: dict[str, Any]) -> None:
    for path, spec in expand.items():
        *parents, last = path.split(".")
        node: Any = params
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = spec["prefix"] + spec["repeat"] * spec["count"] + spec["suffix"]


def _parse_json_fields(value: Any, path: list[str]) -> Any:
    if not path:
        return json.loads(value) if isinstance(value, str) else value
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(value, list):
        return [_parse_json_fields(v, rest) for v in value]
    if isinstance(value, dict) and head in value:
        return {**value, head: _parse_json_fields(value[head], rest)}
    return value


def _sort_statements(value: Any, path: list[str]) -> Any:
    """``value`` with the ``Statement`` list of the policy at ``path`` sorted by ``Sid``."""
    if not path:
        if isinstance(value, dict) and isinstance(value.get("Statement"), list):
            statements = sorted(value["Statement"], key=lambda s: str(s.get("Sid", "")))
            return {**value, "Statement": statements}
        return value
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(value, list):
        return [_sort_statements(v, rest) for v in value]
    if isinstance(value, dict) and head in value:
        return {**value, head: _sort_statements(value[head], rest)}
    return value


# -- comparison -----------------------------------------------------------------------------


def _compare(expected: Any, actual: Any, where: str, bound: dict[str, Any]) -> None:
    if isinstance(expected, str):
        if expected == "datetime":
            assert isinstance(actual, datetime | int | float), f"{where}: {actual!r} is no time"
            return
        if _NUMBERED.fullmatch(expected) or expected in _ANY_STRING:
            assert isinstance(actual, str) and actual, f"{where}: expected a value, got {actual!r}"
            if expected.startswith("<uuid:"):
                uuid.UUID(actual)
            seen = bound.setdefault(expected, actual)
            if expected not in _ANY_STRING:
                assert seen == actual, f"{where}: {expected} was {seen!r}, now {actual!r}"
            return
        if _NUMBERED.search(expected):
            # generated values inside a text (an ARN's resource id): each token matches
            # a non-empty run, bound to the same value wherever it appears in the case
            literal = _NUMBERED.split(expected)[::2]  # the pattern's group is split out too
            shape = "(.+?)".join(re.escape(part) for part in literal)
            match = re.fullmatch(shape, actual) if isinstance(actual, str) else None
            assert match, f"{where}: {actual!r} does not have the shape {expected!r}"
            for kind, value in zip(
                (m.group(0) for m in _NUMBERED.finditer(expected)), match.groups(), strict=True
            ):
                seen = bound.setdefault(kind, value)
                assert seen == value, f"{where}: {kind} was {seen!r}, now {value!r}"
            return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            _compare(expected[key], actual[key], f"{where}.{key}", bound)
        return
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: {len(actual)} items != {len(expected)}"
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _compare(e, a, f"{where}[{index}]", bound)
        return
    assert actual == expected, f"{where}: {actual!r} != {expected!r}"


# -- the cases ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events(aws_endpoint: str) -> Any:
    # Parameter validation off: requests go out exactly as recorded (a few were recorded
    # with it off, to reach the server's own checks).
    return aws_client("events", aws_endpoint, parameter_validation=False)


@pytest.fixture(scope="module", params=BACKENDS)
def backend_events(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """``events`` on each backend: the session's app for SQLite, and for JetStream the
    same app on the session's NATS server under a prefix of its own."""
    if request.param == "sqlite":
        yield request.getfixturevalue("events")
        return
    store = backend_store(request, request.param)
    data_dir = tmp_path_factory.mktemp("aws-data-jetstream")
    # every process on a shared store is given the master key (here: its file)
    fd = os.open(data_dir / "master.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as key:
        key.write(TEST_MASTER_KEY + "\n")
    with serve_in_thread(
        data_dir=str(data_dir),
        account_id=AWS_ACCOUNT,
        region=AWS_REGION,
        max_entries_size=CLASSIC_ENTRIES_SIZE,
        **store,
    ) as url:
        yield aws_client("events", url, parameter_validation=False)


def _call(client: Any, op: str, params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = getattr(client, xform_name(op))(**params)
    return result


def _cancel_active_replays(events: Any) -> None:
    for state in ("STARTING", "RUNNING"):
        for replay in events.list_replays(State=state)["Replays"]:
            with contextlib.suppress(ClientError):  # it ended meanwhile
                events.cancel_replay(ReplayName=replay["ReplayName"])


@pytest.mark.parametrize("case", _params())
def test_api_case(case: dict[str, Any], backend_events: Any) -> None:
    conformance_file("api.jsonl")
    try:
        _run_case(case, backend_events)
    finally:
        if "StartReplay" in {case["op"], *(step["op"] for step in case["setup"])}:
            _cancel_active_replays(backend_events)


def _run_case(case: dict[str, Any], events: Any) -> None:
    values = _values(case)
    bound: dict[str, Any] = {}
    for step in case["setup"]:
        params = _fill(step["params"], {**values, **bound})
        try:
            result = _call(events, step["op"], params)
        except ClientError:
            if step.get("ignore_error"):
                continue
            raise
        # "returns NextToken <next_token:1>", "returns ConnectionArn <connection-arn>"
        note = re.search(r"returns (\w+) (<[\w:-]+>)", step.get("note", ""))
        if note:
            bound[note.group(2)] = result[note.group(1)]
    params = _fill(case["params"], {**values, **bound})
    _expand(params, case.get("expand", {}))
    if any(p["token"] == "second-invalid-target-id" for p in case.get("placeholders", ())):
        # The snapshot put this text in place of the Id sent; the message quotes that Id.
        values["second-invalid-target-id"] = params["Targets"][0]["Id"]
    expect = _fill(case["expect"], values)
    status = expect.get("http_status")

    if "error" in expect:
        with pytest.raises(ClientError) as info:
            _call(events, case["op"], params)
        error = info.value.response
        assert error["Error"]["Code"] == expect["error"]["code"]
        assert error["Error"]["Message"] == expect["error"]["message"]
        if status is not None:
            assert error["ResponseMetadata"]["HTTPStatusCode"] == status
        return

    result = _call(events, case["op"], params)
    if status is not None:
        assert result["ResponseMetadata"]["HTTPStatusCode"] == status
    result.pop("ResponseMetadata", None)
    if "ok" in expect:
        return
    if "entries" in expect:
        assert result["FailedEntryCount"] == expect["failed_entry_count"]
        _compare(expect["entries"], result["Entries"], "Entries", bound)
        return
    expected = expect["response"]
    for field in case.get("json_string_fields", ()):
        path = field.split(".")
        result = _parse_json_fields(result, path)
        if path[-1] == "Policy":
            result = _sort_statements(result, path)
            expected = _sort_statements(expected, path)
    _compare(expected, result, "response", bound)


# -- TestEventPattern over the pattern corpus --------------------------------------------------


def _pattern_cases() -> list[Any]:
    path = CONFORMANCE / "patterns.jsonl"
    if not path.is_file():
        return [pytest.param(None, id="patterns.jsonl missing")]
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [pytest.param(case, id=case["name"]) for case in cases]


@pytest.mark.parametrize("case", _pattern_cases())
def test_test_event_pattern_answers_every_pattern_case(case: Any, events: Any) -> None:
    conformance_file("patterns.jsonl")
    params = {
        "EventPattern": case.get("pattern_text") or json.dumps(case["pattern"]),
        "Event": case.get("event_text") or json.dumps(case["event"]),
    }
    if case["expect"] == "error":
        with pytest.raises(ClientError) as info:
            events.test_event_pattern(**params)
        error = info.value.response["Error"]
        assert error["Code"] == case["error_code"]
        # The corpus holds AWS's first line; a parser location may follow it.
        assert error["Message"].split("\n")[0] == case["error_message"]
    else:
        assert events.test_event_pattern(**params)["Result"] is (case["expect"] == "match")
