"""``eventyard apply``: the resources file, idempotency, what it prints, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventyard.cli.apply import EXAMPLE, ResourceFileError, parse
from eventyard.sdk.client import Client
from tests.cli.conftest import Invoke, one_line_error

REPO = Path(__file__).resolve().parents[2]

RESOURCES = """\
queues:
  - name: ap-dlq
  - name: ap-stock
    attributes:
      VisibilityTimeout: 30
    dead-letter:
      queue: ap-dlq
      max-receive-count: 4
buses:
  - name: ap-orders
    description: Orders
rules:
  - name: placed
    bus: ap-orders
    description: New orders
    pattern:
      source: [shop]
      detail-type: [OrderPlaced]
    targets:
      - id: stock
        queue: ap-stock
        input-path: $.detail
        dead-letter:
          queue: ap-dlq
        max-retries: 2
      - id: big
        queue: ap-stock
        input-transformer:
          paths: {order: $.detail.id}
          template: '{"big": <order>}'
  - name: audit
    bus: ap-orders
    enabled: false
    pattern: '{"source": [{"prefix": ""}]}'
"""

FIRST_RUN = [
    "created queue ap-dlq",
    "created queue ap-stock",
    "created bus ap-orders",
    "created rule ap-orders/placed",
    "created target ap-orders/placed/stock",
    "created target ap-orders/placed/big",
    "created rule ap-orders/audit",
]


@pytest.fixture(scope="module")
def applied(server: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("apply") / "resources.yaml"
    path.write_text(RESOURCES)
    return path


def test_apply_creates_everything_then_changes_nothing_the_second_time(
    invoke: Invoke, applied: Path, client: Client
) -> None:
    first = invoke("apply", "-f", str(applied))
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines() == FIRST_RUN

    second = invoke("apply", "-f", str(applied), "-o", "json")
    assert second.exit_code == 0, second.stderr
    changes = json.loads(second.stdout)
    assert {c["action"] for c in changes} == {"unchanged"}
    assert [f"{c['kind']} {c['name']}" for c in changes] == [
        line.removeprefix("created ") for line in FIRST_RUN
    ]

    stock_arn, dlq_arn = client.queue_arn("ap-stock"), client.queue_arn("ap-dlq")
    redrive = json.loads(client.get_queue_attributes("ap-stock")["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 4}
    assert client.describe_bus("ap-orders")["Description"] == "Orders"
    rule = client.describe_rule("placed", bus="ap-orders")
    assert json.loads(rule["EventPattern"]) == {"source": ["shop"], "detail-type": ["OrderPlaced"]}
    assert client.describe_rule("audit", bus="ap-orders")["State"] == "DISABLED"
    targets = {t["Id"]: t for t in client.list_targets("placed", bus="ap-orders")}
    assert targets["stock"] == {
        "Id": "stock",
        "Arn": stock_arn,
        "InputPath": "$.detail",
        "DeadLetterConfig": {"Arn": dlq_arn},
        "RetryPolicy": {"MaximumRetryAttempts": 2},
    }
    assert targets["big"]["InputTransformer"] == {
        "InputPathsMap": {"order": "$.detail.id"},
        "InputTemplate": '{"big": <order>}',
    }


def test_apply_updates_what_changed_and_removes_targets_no_longer_listed(
    invoke: Invoke, applied: Path, client: Client, tmp_path: Path
) -> None:
    assert invoke("apply", "-f", str(applied)).exit_code == 0
    changed = (
        RESOURCES.replace("VisibilityTimeout: 30", "VisibilityTimeout: 60")
        .replace("max-retries: 2", "max-retries: 5")
        .replace("enabled: false", "enabled: true")
        .replace("""      - id: big
        queue: ap-stock
        input-transformer:
          paths: {order: $.detail.id}
          template: '{"big": <order>}'
""", "")
    )  # fmt: skip
    path = tmp_path / "changed.yaml"
    path.write_text(changed)
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "unchanged queue ap-dlq",
        "updated queue ap-stock (VisibilityTimeout)",
        "unchanged bus ap-orders",
        "unchanged rule ap-orders/placed",
        "updated target ap-orders/placed/stock",
        "removed target ap-orders/placed/big",
        "updated rule ap-orders/audit",
    ]
    assert client.get_queue_attributes("ap-stock")["VisibilityTimeout"] == "60"
    assert [t["Id"] for t in client.list_targets("placed", bus="ap-orders")] == ["stock"]
    again = invoke("apply", "-f", str(path))
    assert {line.split()[0] for line in again.stdout.splitlines()} == {"unchanged"}
    # back to the original for the other tests
    assert invoke("apply", "-f", str(applied)).exit_code == 0


def test_apply_reports_a_bus_description_it_cannot_change(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    client.create_bus("ap-described", description="old")
    path = tmp_path / "bus.yaml"
    path.write_text("buses:\n  - name: ap-described\n    description: new\n")
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "differs bus ap-described (description cannot be changed)\n"


def test_apply_of_the_documented_example_works_twice(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(EXAMPLE)
    first = invoke("apply", "-f", str(path))
    assert first.exit_code == 0, first.stderr
    assert all(line.startswith("created ") for line in first.stdout.splitlines())
    second = invoke("apply", "-f", str(path))
    assert all(line.startswith("unchanged ") for line in second.stdout.splitlines())


def test_the_documented_example_is_in_docs_cli_md_and_the_help() -> None:
    assert EXAMPLE in (REPO / "docs" / "cli.md").read_text()


def test_apply_help_shows_the_file_format(invoke: Invoke) -> None:
    result = invoke("apply", "--help")
    assert result.exit_code == 0
    assert "max-receive-count: 5" in result.stdout and "input-transformer" in result.stdout


def test_apply_target_naming_an_unknown_queue_fails_with_one_line(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n  - name: ap-orphan\n    pattern: {source: [x]}\n"
        "    targets:\n      - id: t\n        queue: ap-nowhere\n"
    )
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 1
    assert one_line_error(result) == (
        "error: rule default/ap-orphan target t: queue ap-nowhere does not exist "
        "(declare it under queues)"
    )
    assert result.stdout == "created rule default/ap-orphan\n"


def test_apply_of_a_missing_file_fails_with_one_line(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("apply", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: cannot read ")


_RULE = "rules:\n  - name: r\n    pattern: {a: [1]}\n"
_TARGETS = _RULE + "    targets:\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "r.yaml: expected a mapping, got a list"),
        ("topics: []\n", "r.yaml: unknown key 'topics' (expected one of: buses, queues, rules)"),
        ("buses: {a: 1}\n", "r.yaml: buses: expected a list, got a mapping"),
        ("buses:\n  - description: x\n", "r.yaml: buses[0].name: expected a non-empty string"),
        ("buses:\n  - name: a\n  - name: a\n", "r.yaml: buses: bus a is declared twice"),
        (
            "queues:\n  - name: q\n    colour: red\n",
            "r.yaml: queues[0]: unknown key 'colour' "
            "(expected one of: attributes, dead-letter, name)",
        ),
        (
            "queues:\n  - name: q\n    dead-letter: {queue: q}\n",
            "r.yaml: queues[0].dead-letter: a queue cannot be its own dead-letter",
        ),
        (
            "queues:\n  - {name: a, dead-letter: {queue: b}}\n"
            "  - {name: b, dead-letter: {queue: a}}\n",
            "r.yaml: queues[0].dead-letter: dead-letter queues form a cycle",
        ),
        ("rules:\n  - name: r\n", "r.yaml: rules[0].pattern: a rule needs an event pattern"),
        ("rules:\n  - name: r\n    pattern: '{x'\n", "r.yaml: rules[0].pattern: not valid JSON"),
        (
            "rules:\n  - name: r\n    pattern: {source: x}\n",
            "r.yaml: rules[0].pattern: Event pattern is not valid. "
            'Reason: "source" must be an object or an array',
        ),
        (
            "rules:\n  - name: r\n    enabled: yes-please\n    pattern: {a: [1]}\n",
            "r.yaml: rules[0].enabled: expected true or false",
        ),
        (
            _TARGETS + "      - id: t\n",
            "r.yaml: rules[0].targets[0]: give exactly one of arn and queue",
        ),
        (
            _TARGETS + "      - {id: t, arn: a, input: x, input-path: $}\n",
            "r.yaml: rules[0].targets[0]: "
            "give at most one of input, input-path and input-transformer",
        ),
        (
            _TARGETS + "      - {id: t, arn: a, max-retries: 999}\n",
            "r.yaml: rules[0].targets[0].max-retries: expected an integer from 0 to 185",
        ),
        (
            _TARGETS + "      - {id: t, arn: a}\n      - {id: t, arn: b}\n",
            "r.yaml: rules[0].targets: target t is declared twice",
        ),
        (
            _TARGETS + "      - {id: t, arn: a, input-transformer: {paths: {a: $.a}}}\n",
            "r.yaml: rules[0].targets[0].input-transformer.template: expected a non-empty string",
        ),
        (
            _TARGETS + "      - {id: t, arn: a, dead-letter: {}}\n",
            "r.yaml: rules[0].targets[0].dead-letter: give exactly one of queue and arn",
        ),
        ("a: [\n", "r.yaml: not valid YAML"),
    ],
)
def test_resources_file_shape_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(ResourceFileError) as caught:
        parse(text, source="r.yaml")
    assert str(caught.value).startswith(message)


def test_invalid_file_fails_before_changing_anything(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "half.yaml"
    path.write_text("buses:\n  - name: ap-never\nrules:\n  - name: r\n")
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 1
    assert one_line_error(result).endswith("rules[0].pattern: a rule needs an event pattern")
    assert [b["Name"] for b in client.list_buses("ap-never")] == []


def test_empty_file_changes_nothing(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 0 and result.stdout == ""
