"""Every AWS-recorded target-input case, through a real rule and a real queue target.

Each case of ``../shared/conformance/inputs.jsonl`` gets its own bus, rule and queue on
one running server. The event is put with boto3, the body the queue received is compared
with what AWS delivered (exact text for ``body``, parsed values for ``body_json``), and
``no_delivery`` cases check that nothing arrives while a whole-event sentinel target on
the same rule does.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BACKENDS, CONFORMANCE, backend_server, conformance_file
from tests.e2e.conftest import ACCOUNT, REGION, client

_TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"


def _cases() -> list[dict[str, Any]]:
    path = CONFORMANCE / "inputs.jsonl"
    if not path.is_file():
        return [{"name": "inputs.jsonl missing"}]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module", params=BACKENDS)
def endpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One server per backend (SQLite, JetStream) for every case."""
    env = {"EVENTYARD_ACCOUNT_ID": ACCOUNT, "EVENTYARD_REGION": REGION}
    data_dir = tmp_path_factory.mktemp(f"inputs-{request.param}")
    with backend_server(request, request.param, data_dir, env=env) as server:
        yield server.url


def _fill(text: str, names: dict[str, str]) -> str:
    for token, value in names.items():
        text = text.replace(token, value)
    return text


def _pattern(expected: str, names: dict[str, str], event_id: str) -> re.Pattern[str]:
    """A regex for an expected text: tokens become their values, timestamps any time."""
    regex = re.escape(expected)
    for token, value in names.items():
        regex = regex.replace(re.escape(token), re.escape(value))
    regex = re.sub(r"<uuid:\d+>|<event\\-id>", lambda _: re.escape(event_id), regex)
    regex = regex.replace(re.escape("<ingestion-time>"), _TIMESTAMP)
    regex = re.sub(r"\bdate\b", lambda _: _TIMESTAMP, regex)
    return re.compile(regex, re.DOTALL)


def _same(expected: Any, actual: Any, names: dict[str, str], event_id: str) -> bool:
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and list(expected) == list(actual)
            and all(_same(v, actual[k], names, event_id) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_same(e, a, names, event_id) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, str) and isinstance(actual, str):
        return _pattern(expected, names, event_id).fullmatch(actual) is not None
    return bool(expected == actual)


def _receive(sqs: Any, url: str, wait: int) -> list[dict[str, Any]]:
    answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
    return list(answer.get("Messages", []))


@pytest.mark.parametrize("case", _cases(), ids=lambda c: str(c["name"])[:90])
def test_target_input_matches_aws(case: dict[str, Any], endpoint: str) -> None:
    conformance_file("inputs.jsonl")
    events, sqs = client("events", endpoint), client("sqs", endpoint)
    suffix = uuid.uuid4().hex[:8]
    names = {
        "<bus-name>": f"bus-{suffix}",
        "<rule-name>": f"rule-{suffix}",
        "<target-id>": f"target-{suffix}",
        "<region>": REGION,
        "<partition>": "aws",
        "111111111111": ACCOUNT,
    }
    bus = names["<bus-name>"]
    events.create_event_bus(Name=bus)
    pattern = json.dumps(case["rule_event_pattern"])
    events.put_rule(Name=names["<rule-name>"], EventBusName=bus, EventPattern=pattern)
    queue_url = sqs.create_queue(QueueName=f"q-{suffix}")["QueueUrl"]
    sentinel_url = sqs.create_queue(QueueName=f"s-{suffix}")["QueueUrl"]
    target = {"Id": names["<target-id>"], "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q-{suffix}"}
    target.update(case["target"])
    sentinel = {"Id": "sentinel", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:s-{suffix}"}
    expect = case["expect"]

    if "put_targets_error" in expect:
        error = expect["put_targets_error"]
        with pytest.raises(ClientError) as info:
            events.put_targets(Rule=names["<rule-name>"], EventBusName=bus, Targets=[target])
        response = info.value.response
        assert response["Error"]["Code"] == error["code"]
        assert response["Error"]["Message"] == _fill(error["message"], names)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == error["http_status"]
        return

    answer = events.put_targets(
        Rule=names["<rule-name>"], EventBusName=bus, Targets=[target, sentinel]
    )
    assert answer["FailedEntryCount"] == 0
    entry = {**case["put_events_entry"], "EventBusName": bus}
    put = events.put_events(Entries=[entry])
    assert put["FailedEntryCount"] == 0
    event_id = put["Entries"][0]["EventId"]

    assert len(_receive(sqs, sentinel_url, 10)) == 1, "the sentinel target got nothing"
    got = _receive(sqs, queue_url, 0 if expect.get("no_delivery") else 10)
    if expect.get("no_delivery"):
        assert got == []
        return
    assert len(got) == 1
    body = got[0]["Body"]
    if "body" in expect:
        assert _pattern(expect["body"], names, event_id).fullmatch(body), body
    else:
        assert _same(expect["body_json"], json.loads(body), names, event_id), body


def test_inputs_corpus_is_present() -> None:
    path: Path = conformance_file("inputs.jsonl")
    assert sum(1 for line in path.read_text().splitlines() if line.strip()) == 33
