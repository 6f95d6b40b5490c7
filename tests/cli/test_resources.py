"""``eventyard buses | rules | targets | queues``: CRUD with table and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import Result

from eventyard.sdk.client import Client
from tests.cli.conftest import Invoke, one_line_error


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def test_buses_create_list_show_delete(invoke: Invoke) -> None:
    created = json.loads(
        _ok(invoke("buses", "create", "crud-bus", "--description", "x", "-o", "json"))
    )
    assert created["Name"] == "crud-bus" and created["Arn"].endswith(":event-bus/crud-bus")
    assert _ok(invoke("buses", "create", "crud-bus-2")).startswith("created bus crud-bus-2 (arn:")

    listed = json.loads(_ok(invoke("buses", "list", "--prefix", "crud-", "-o", "json")))
    assert [b["Name"] for b in listed] == ["crud-bus", "crud-bus-2"]
    rows = _table(_ok(invoke("buses", "list", "--prefix", "crud-")))
    assert rows[0] == ["Name", "Arn", "Description"]
    assert rows[1][0] == "crud-bus" and rows[1][2] == "x" and rows[2][0] == "crud-bus-2"

    shown = json.loads(_ok(invoke("buses", "show", "crud-bus", "-o", "json")))
    assert shown["Description"] == "x"
    fields = {row[0]: row[1:] for row in _table(_ok(invoke("buses", "show", "crud-bus")))}
    assert fields["Name"] == ["crud-bus"] and fields["Description"] == ["x"]

    assert _ok(invoke("buses", "delete", "crud-bus-2")) == "deleted bus crud-bus-2\n"
    assert json.loads(_ok(invoke("buses", "delete", "crud-bus", "-o", "json"))) == {
        "Name": "crud-bus",
        "Deleted": True,
    }
    assert json.loads(_ok(invoke("buses", "list", "--prefix", "crud-", "-o", "json"))) == []


def test_buses_errors_are_one_line_with_the_aws_code(invoke: Invoke) -> None:
    _ok(invoke("buses", "create", "dup-bus"))
    result = invoke("buses", "create", "dup-bus")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        "error: ResourceAlreadyExistsException: Event bus dup-bus already exists."
    )
    result = invoke("buses", "show", "ghost")
    assert one_line_error(result).startswith("error: ResourceNotFoundException: ")


def test_rules_create_list_show_disable_enable_delete(invoke: Invoke, tmp_path: Path) -> None:
    _ok(invoke("buses", "create", "rules-bus"))
    pattern_file = tmp_path / "pattern.json"
    pattern_file.write_text('{"source": ["b"]}')
    out = _ok(
        invoke("rules", "create", "r1", "--bus", "rules-bus", "--pattern", '{"source": ["a"]}',
               "--description", "first")
    )  # fmt: skip
    assert out.startswith("created rule rules-bus/r1 (arn:")
    created = json.loads(
        _ok(invoke("rules", "create", "r2", "-b", "rules-bus", "-p", f"@{pattern_file}",
                   "--disabled", "-o", "json"))
    )  # fmt: skip
    assert created["Arn"].endswith(":rule/rules-bus/r2")

    rules = json.loads(_ok(invoke("rules", "list", "--bus", "rules-bus", "-o", "json")))
    assert [(r["Name"], r["State"]) for r in rules] == [("r1", "ENABLED"), ("r2", "DISABLED")]
    rows = _table(_ok(invoke("rules", "list", "--bus", "rules-bus", "--prefix", "r2")))
    assert rows == [
        ["Name", "State", "EventPattern", "Description"],
        ["r2", "DISABLED", '{"source":["b"]}'],
    ]

    _ok(invoke("rules", "enable", "r2", "--bus", "rules-bus"))
    shown = json.loads(_ok(invoke("rules", "show", "r2", "--bus", "rules-bus", "-o", "json")))
    assert shown["State"] == "ENABLED" and shown["Targets"] == []
    _ok(invoke("rules", "disable", "r2", "--bus", "rules-bus"))
    fields = {
        row[0]: row[1:] for row in _table(_ok(invoke("rules", "show", "r2", "-b", "rules-bus")))
    }
    assert fields["State"] == ["DISABLED"]

    assert (
        _ok(invoke("rules", "delete", "r2", "--bus", "rules-bus")) == "deleted rule rules-bus/r2\n"
    )
    names = [
        r["Name"] for r in json.loads(_ok(invoke("rules", "list", "-b", "rules-bus", "-o", "json")))
    ]
    assert names == ["r1"]


def test_rules_create_with_an_invalid_pattern_is_a_usage_error_with_awss_message(
    invoke: Invoke, client: Client
) -> None:
    result = invoke("rules", "create", "bad", "--pattern", '{"source": "x"}')
    assert result.exit_code == 2
    assert one_line_error(result) == (
        'error: --pattern: Event pattern is not valid. Reason: "source" must be an object '
        "or an array"
    )
    result = invoke("rules", "create", "bad", "--pattern", "{x")
    assert result.exit_code == 2
    one_line_error(result)
    assert client.list_rules(prefix="bad") == []


def test_a_pattern_the_server_refuses_is_a_server_error_with_its_code(invoke: Invoke) -> None:
    # within AWS's hard limit of 4,096 characters (checked here), over the server's
    # default quota of 2,048 (which only the server knows)
    values = ", ".join(f'"source-{n:05}"' for n in range(200))
    result = invoke("rules", "create", "long", "--pattern", f'{{"source": [{values}]}}')
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: InvalidEventPatternException: ")


def test_targets_add_list_remove_and_rule_delete_force(invoke: Invoke, client: Client) -> None:
    client.create_queue("targets-q")
    client.create_queue("targets-dlq")
    dlq_arn = client.queue_arn("targets-dlq")
    _ok(invoke("rules", "create", "tr", "--pattern", '{"source": ["t"]}'))
    out = _ok(
        invoke("targets", "add", "tr", "--id", "q", "--queue", "targets-q",
               "--input-path", "$.detail", "--dlq", dlq_arn, "--max-retries", "2")
    )  # fmt: skip
    assert out.startswith("added target default/tr/q (arn:aws:sqs:")
    transformer = '{"InputPathsMap": {"s": "$.source"}, "InputTemplate": "<s>"}'
    added = json.loads(
        _ok(invoke("targets", "add", "tr", "--id", "t2", "--arn", client.queue_arn("targets-q"),
                   "--input-transformer", transformer, "-o", "json"))
    )  # fmt: skip
    assert added["InputTransformer"]["InputTemplate"] == "<s>"

    targets = json.loads(_ok(invoke("targets", "list", "tr", "-o", "json")))
    assert {t["Id"]: t for t in targets}["q"] == {
        "Id": "q",
        "Arn": client.queue_arn("targets-q"),
        "InputPath": "$.detail",
        "DeadLetterConfig": {"Arn": dlq_arn},
        "RetryPolicy": {"MaximumRetryAttempts": 2},
    }
    rows = _table(_ok(invoke("targets", "list", "tr")))
    assert rows[0] == ["Id", "Arn", "Input", "DeadLetter", "MaxRetries"]
    assert rows[1] == ["q", client.queue_arn("targets-q"), "path", "$.detail", dlq_arn, "2"]
    assert rows[2][2] == "transformer"

    assert _ok(invoke("targets", "remove", "tr", "t2")) == "removed target default/tr/t2\n"
    missing = invoke("targets", "remove", "tr", "t2")
    assert one_line_error(missing) == "error: rule default/tr has no target t2"

    refused = invoke("rules", "delete", "tr")
    assert one_line_error(refused).startswith("error: ValidationException: ")
    _ok(invoke("rules", "delete", "tr", "--force"))
    assert client.list_rules(bus="default", prefix="tr") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "x"], "error: give exactly one of --arn and --queue"),
        (
            ["--id", "x", "--arn", "a", "--queue", "q"],
            "error: give exactly one of --arn and --queue",
        ),
        (
            ["--id", "x", "--arn", "a", "--input", "{}", "--input-path", "$"],
            "error: give at most one of --input-path, --input and --input-transformer",
        ),
    ],
)
def test_targets_add_usage_errors(invoke: Invoke, args: list[str], message: str) -> None:
    result = invoke("targets", "add", "any-rule", *args)
    assert result.exit_code == 2
    assert one_line_error(result) == message


def test_queues_create_list_show_purge_delete(invoke: Invoke, client: Client) -> None:
    created = json.loads(
        _ok(invoke("queues", "create", "crud-q", "-a", "VisibilityTimeout=45", "-o", "json"))
    )
    assert created["Name"] == "crud-q" and created["Url"].endswith("/crud-q")
    assert _ok(invoke("queues", "create", "crud-q2")).startswith("created queue crud-q2 (http")

    listed = json.loads(_ok(invoke("queues", "list", "--prefix", "crud-", "-o", "json")))
    assert sorted(q["Name"] for q in listed) == ["crud-q", "crud-q2"]
    rows = _table(_ok(invoke("queues", "list", "--prefix", "crud-")))
    assert rows[0] == ["Name", "Url"] and len(rows) == 3

    shown = json.loads(_ok(invoke("queues", "show", "crud-q", "-o", "json")))
    assert shown["VisibilityTimeout"] == "45" and shown["QueueArn"].endswith(":crud-q")
    client.send_message("crud-q", "hello")
    fields = {row[0]: row[1:] for row in _table(_ok(invoke("queues", "show", "crud-q")))}
    assert fields["ApproximateNumberOfMessages"] == ["1"]

    assert _ok(invoke("queues", "purge", "crud-q")) == "purged queue crud-q\n"
    assert client.get_queue_attributes("crud-q")["ApproximateNumberOfMessages"] == "0"
    assert _ok(invoke("queues", "delete", "crud-q2")) == "deleted queue crud-q2\n"
    assert json.loads(_ok(invoke("queues", "delete", "crud-q", "-o", "json")))["Deleted"] is True
    gone = invoke("queues", "show", "crud-q")
    assert one_line_error(gone) == (
        "error: AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist."
    )


def test_queues_create_attribute_without_equals_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("queues", "create", "q", "-a", "VisibilityTimeout")
    assert result.exit_code == 2
    assert "expected NAME=VALUE" in one_line_error(result)


def test_every_resource_command_reports_an_unreachable_server_on_one_line(invoke: Invoke) -> None:
    for args in (
        ["buses", "list"],
        ["rules", "list"],
        ["targets", "list", "r"],
        ["queues", "list"],
    ):
        result = invoke(*args, "--url", "http://127.0.0.1:9")
        assert result.exit_code == 1
        assert "127.0.0.1:9" in one_line_error(result)
