"""A target input that cannot be rendered is dead-lettered with its reason, never retried,
and bloats nothing: the 40 KB event × 2,000 template of issue 8, with boto3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eventyard.testing import ServerProcess
from tests.e2e.conftest import ACCOUNT, REGION, Receiver, client, deliveries_idle
from tests.helpers import poll_until


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _receive(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    def enough() -> bool:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        )
        got.extend(answer.get("Messages", []))
        return len(got) >= count

    poll_until(enough, what=f"{count} messages")
    return got


def test_a_rendering_over_its_cap_is_dead_lettered_with_the_reason_and_nothing_balloons(
    server: ServerProcess, receiver_factory: Any
) -> None:
    events, sqs = client("events", server.url), client("sqs", server.url)
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("out", "plain", "dlq")}
    arn = {name: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}" for name in urls}
    hook: Receiver = receiver_factory(200)
    rule_arn = events.put_rule(Name="big", EventPattern='{"source": ["big"]}')["RuleArn"]
    repeat = {"InputPathsMap": {"a": "$.detail.a"}, "InputTemplate": '"' + "<a>" * 2000 + '"'}
    answer = events.put_targets(
        Rule="big",
        Targets=[
            {"Id": "q", "Arn": arn["out"], "InputTransformer": repeat,
             "DeadLetterConfig": {"Arn": arn["dlq"]}},
            {"Id": "web", "Arn": hook.url, "InputTransformer": repeat,
             "DeadLetterConfig": {"Arn": arn["dlq"]}},
            {"Id": "plain", "Arn": arn["plain"]},
        ],
    )  # fmt: skip
    assert answer["FailedEntryCount"] == 0
    assert server.process is not None
    rss_before = _rss_kib(server.process.pid)

    entry = {"Source": "big", "DetailType": "t", "Detail": json.dumps({"a": "x" * 40_000})}
    for _ in range(5):
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    dead = _receive(sqs, urls["dlq"], 10)
    assert len(dead) == 10
    targets = sorted(m["MessageAttributes"]["TARGET_ARN"]["StringValue"] for m in dead)
    assert targets == sorted([arn["out"]] * 5 + [hook.url] * 5)
    for message in dead:
        attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attributes["ERROR_CODE"] == "INPUT_TOO_LARGE"
        limit = 262144 if attributes["TARGET_ARN"] == arn["out"] else 1048576
        target_id = "q" if attributes["TARGET_ARN"] == arn["out"] else "web"
        assert attributes["ERROR_MESSAGE"].startswith(f"InputTemplate of target {target_id} ")
        assert f"over this target's limit of {limit} bytes" in attributes["ERROR_MESSAGE"]
        assert attributes["RULE_ARN"] == rule_arn
        assert attributes["RETRY_ATTEMPTS"] == "0"
        assert json.loads(message["Body"])["detail"]["a"] == "x" * 40_000  # the event itself

    # the other target of the same rule got every event; nothing else was attempted
    assert len(_receive(sqs, urls["plain"], 5)) == 5
    deliveries_idle(server)
    assert hook.received() == []
    assert sqs.receive_message(QueueUrl=urls["out"], WaitTimeSeconds=0).get("Messages") is None
    # what issue 8 measured at +324 MB of RSS and +183 MB of database
    assert _rss_kib(server.process.pid) - rss_before < 64 * 1024
    database = sum(p.stat().st_size for p in server.data_dir.glob("eventyard.db*"))
    assert database < 16 * 1024 * 1024
