"""A deep delivery backlog throttles PutEvents (boto3 sees ThrottlingException) until it drains."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from eventyard.testing import ServerProcess
from tests.e2e.conftest import REGION, Receiver, deliveries_idle
from tests.helpers import poll_until


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _backlog(server: ServerProcess) -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as answer:
        match = re.search(rb"^eventyard_delivery_backlog (\S+)$", answer.read(), re.MULTILINE)
    assert match is not None
    return float(match[1])


def test_a_deep_backlog_throttles_put_events_and_readyz_until_it_drains(
    server_factory: Callable[..., ServerProcess],
    receiver_factory: Callable[[int], Receiver],
) -> None:
    hook = receiver_factory(500)  # failing: its deliveries stay pending, retried
    server = server_factory(EVENTYARD_MAX_BACKLOG="20", EVENTYARD_RESUME_BACKLOG="10")
    events = boto3.client(
        "events",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    events.put_rule(Name="to-hook", EventPattern='{"source": ["pressure"]}')
    events.put_targets(Rule="to-hook", Targets=[{"Id": "hook", "Arn": hook.url}])
    entry = {"Source": "pressure", "DetailType": "d", "Detail": "{}"}
    accepted = []
    for _ in range(2):
        answer = events.put_events(Entries=[entry] * 10)
        assert answer["FailedEntryCount"] == 0
        accepted += [e["EventId"] for e in answer["Entries"]]
    assert _backlog(server) == 20

    try:
        events.put_events(Entries=[entry] * 3)
    except events.exceptions.ClientError as exc:
        refused = exc.response
    else:
        raise AssertionError("PutEvents was accepted past max_backlog")
    assert refused["Error"]["Code"] == "ThrottlingException"
    assert refused["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "max_backlog (20)" in refused["Error"]["Message"]
    assert _backlog(server) == 20  # nothing of the refused request was taken
    status, body = _get(server.url + "/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert "20 pending deliveries" in body["reason"]
    assert "below 10" in body["reason"]
    assert _get(server.url + "/livez")[0] == 200

    hook.status = 200  # the target recovers and the backlog drains
    poll_until(lambda: _get(server.url + "/readyz")[0] == 200, what="ready again")
    assert _backlog(server) < 10
    answer = events.put_events(Entries=[entry])
    assert answer["FailedEntryCount"] == 0
    accepted.append(answer["Entries"][0]["EventId"])
    deliveries_idle(server)  # every accepted event delivered, none left pending
    assert {json.loads(r.body)["id"] for r in hook.received()} == set(accepted)
