"""``eventyard apply``: the resources file, idempotency, what it prints, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventyard.cli.resource_file import EXAMPLE, parse
from eventyard.errors import ConfigurationError
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
    assert all(c["applied"] for c in changes)
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


def test_apply_target_naming_an_unknown_queue_fails_before_any_change_naming_the_line(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n  - name: ap-orphan\n    pattern: {source: [x]}\n"
        "    targets:\n      - id: t\n        queue: ap-nowhere\n"
    )
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"error: {path}:6: rules[0].targets[0].queue: queue ap-nowhere does not exist "
        "(declare it under queues)"
    )
    assert result.stdout == ""
    assert [r["Name"] for r in client.list_rules(prefix="ap-orphan")] == []


def test_apply_of_a_missing_file_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("apply", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: cannot read ")


_RULE = "rules:\n  - name: r\n    pattern: {a: [1]}\n"
_TARGETS = _RULE + "    targets:\n"


_SIX = "".join(f"      - {{id: t{i}, queue: q}}\n" for i in range(6))
_BUS_ARN = "arn:aws:events:us-east-1:000000000000:event-bus/b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "r.yaml:1: expected a mapping, got a list"),
        (
            "topics: []\n",
            "r.yaml:1: topics: unknown key 'topics' (expected one of: buses, queues, rules)",
        ),
        ("buses: {a: 1}\n", "r.yaml:1: buses: expected a list, got a mapping"),
        ("buses:\n  - description: x\n", "r.yaml:2: buses[0].name: expected a non-empty string"),
        ("buses:\n  - name: a\n  - name: a\n", "r.yaml:3: buses[1]: bus a is declared twice"),
        (
            "buses:\n  - name: a\n    name: b\n",
            "r.yaml:3: buses[0].name: key 'name' is given twice",
        ),
        (
            "queues:\n  - name: q\n    colour: red\n",
            "r.yaml:3: queues[0].colour: unknown key 'colour' "
            "(expected one of: attributes, dead-letter, name)",
        ),
        (
            "queues:\n  - name: bad name\n",
            "r.yaml:2: queues[0].name: 'bad name' is not a valid queue name "
            "(allowed: 1 to 80 of A-Za-z0-9_-)",
        ),
        (
            "queues:\n  - name: q\n    attributes:\n      VisibilityTimeout: 99999\n",
            "r.yaml:4: queues[0].attributes.VisibilityTimeout: expected an integer from 0 to 43200",
        ),
        (
            "queues:\n  - name: q\n    attributes:\n      Colour: red\n",
            "r.yaml:4: queues[0].attributes.Colour: unknown queue attribute 'Colour'",
        ),
        (
            "queues:\n  - name: q\n    dead-letter: {queue: q}\n",
            "r.yaml:3: queues[0].dead-letter: a queue cannot be its own dead-letter",
        ),
        (
            "queues:\n  - {name: a, dead-letter: {queue: b}}\n"
            "  - {name: b, dead-letter: {queue: a}}\n",
            "r.yaml:2: queues[0].dead-letter: dead-letter queues form a cycle",
        ),
        ("rules:\n  - name: r\n", "r.yaml:2: rules[0].pattern: a rule needs an event pattern"),
        (
            "rules:\n  - name: r/x\n    pattern: {a: [1]}\n",
            "r.yaml:2: rules[0].name: 'r/x' is not a valid rule name "
            "(allowed: 1 to 64 of .-_A-Za-z0-9)",
        ),
        (
            "rules:\n  - name: r\n    bus: 'no spaces'\n    pattern: {a: [1]}\n",
            "r.yaml:3: rules[0].bus: 'no spaces' is neither a bus name nor a bus ARN",
        ),
        ("rules:\n  - name: r\n    pattern: '{x'\n", "r.yaml:3: rules[0].pattern: not valid JSON"),
        (
            "rules:\n  - name: r\n    pattern: {source: x}\n",
            "r.yaml:3: rules[0].pattern: Event pattern is not valid. "
            'Reason: "source" must be an object or an array',
        ),
        (
            "rules:\n  - name: r\n    enabled: yes-please\n    pattern: {a: [1]}\n",
            "r.yaml:3: rules[0].enabled: expected true or false",
        ),
        (
            _TARGETS + "      - id: t\n",
            "r.yaml:5: rules[0].targets[0]: give exactly one of arn, queue and url",
        ),
        (
            _TARGETS + "      - {id: t, arn: not-an-arn}\n",
            "r.yaml:5: rules[0].targets[0].arn: 'not-an-arn' is not an ARN",
        ),
        (
            _TARGETS + "      - {id: t, queue: q, input: x, input-path: $}\n",
            "r.yaml:5: rules[0].targets[0]: "
            "give at most one of input, input-path and input-transformer",
        ),
        (
            _TARGETS + "      - {id: t, queue: q, input-path: detail}\n",
            "r.yaml:5: rules[0].targets[0].input-path: 'detail' is not a JSON path",
        ),
        (
            _TARGETS + "      - {id: t, queue: q, max-retries: 999}\n",
            "r.yaml:5: rules[0].targets[0].max-retries: expected an integer from 0 to 185",
        ),
        (
            _TARGETS + "      - {id: t, queue: a}\n      - {id: t, queue: b}\n",
            "r.yaml:6: rules[0].targets[1]: target t is declared twice",
        ),
        (
            _TARGETS + _SIX,
            "r.yaml:10: rules[0].targets[5]: a rule has at most 5 targets, this one declares 6",
        ),
        (
            _TARGETS + "      - {id: t, queue: q, input-transformer: {paths: {a: $.a}}}\n",
            "r.yaml:5: rules[0].targets[0].input-transformer.template: expected a non-empty string",
        ),
        (
            _TARGETS + "      - {id: t, queue: q, dead-letter: {}}\n",
            "r.yaml:5: rules[0].targets[0].dead-letter: give exactly one of queue and arn",
        ),
        (
            _TARGETS + f"      - {{id: t, queue: q, dead-letter: {{arn: '{_BUS_ARN}'}}}}\n",
            f"r.yaml:5: rules[0].targets[0].dead-letter.arn: '{_BUS_ARN}' is not an SQS queue ARN",
        ),
        (
            _TARGETS + "      - {id: t, url: 'ftp://h/x'}\n",
            "r.yaml:5: rules[0].targets[0].url: 'ftp://h/x' is not a webhook URL",
        ),
        (
            _TARGETS + "      - {id: t, url: 'https://h/*', http-parameters: {path: x}}\n",
            "r.yaml:5: rules[0].targets[0].http-parameters.path: expected a list, got a string",
        ),
        (
            _TARGETS + "      - {id: t, url: 'https://h/', http-parameters: {headers: {a: ''}}}\n",
            "r.yaml:5: rules[0].targets[0].http-parameters.headers.a: expected a non-empty string",
        ),
        (
            _TARGETS + "      - {id: t, url: 'https://h/', http-parameters: {body: {}}}\n",
            "r.yaml:5: rules[0].targets[0].http-parameters.body: unknown key 'body'",
        ),
        ("a: [\n", "r.yaml:2: not valid YAML"),
    ],
)
def test_resources_file_shape_errors_say_file_line_and_where(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse(text, source="r.yaml")
    assert str(caught.value).startswith(message)


def test_invalid_file_fails_before_changing_anything(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "half.yaml"
    path.write_text("buses:\n  - name: ap-never\nrules:\n  - name: r\n")
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"error: {path}:4: rules[0].pattern: a rule needs an event pattern"
    )
    assert [b["Name"] for b in client.list_buses("ap-never")] == []


def test_empty_file_changes_nothing(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 0 and result.stdout == ""


def test_apply_rule_on_a_bus_neither_existing_nor_declared_changes_nothing(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "nobus.yaml"
    path.write_text(
        "queues:\n  - name: ap-untouched\n"
        "rules:\n  - name: r\n    bus: ap-ghost-bus\n    pattern: {source: [x]}\n"
    )
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"error: {path}:5: rules[0].bus: bus ap-ghost-bus does not exist (declare it under buses)"
    )
    assert client.list_queues("ap-untouched") == []


def test_apply_sqs_arn_of_another_account_is_refused_before_any_change(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    client.create_queue("ap-arn-queue")
    arn = client.queue_arn("ap-arn-queue").replace(":000000000000:", ":111111111111:")
    path = tmp_path / "arn.yaml"
    path.write_text(
        f"rules:\n  - name: ap-arn-rule\n    pattern: {{source: [x]}}\n"
        f"    targets:\n      - id: t\n        arn: '{arn}'\n"
    )
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 2
    assert one_line_error(result).startswith(
        f"error: {path}:6: rules[0].targets[0].arn: {arn} is not a queue of this server"
    )
    assert client.list_rules(prefix="ap-arn-rule") == []


def test_apply_maps_a_pattern_the_server_refuses_to_its_line(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    # 3,200 characters: within AWS's hard limit (checked locally), over the server's
    # default quota of 2,048, which only the server knows
    values = ", ".join(f'"source-{n:05}"' for n in range(200))
    path = tmp_path / "long.yaml"
    path.write_text(
        "buses:\n  - name: ap-long-bus\n"
        f"rules:\n  - name: long\n    bus: ap-long-bus\n    pattern: '{{\"source\": [{values}]}}'\n"
    )
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert line.startswith(f"error: {path}:6: rules[0].pattern: ")
    assert "Exception: " in line  # the server's AWS code and message
    assert client.list_buses("ap-long-bus") == []


def test_apply_dry_run_prints_the_plan_and_changes_nothing(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "dry.yaml"
    path.write_text(
        "queues:\n  - name: ap-dry\nbuses:\n  - name: default\n"
        "rules:\n  - name: ap-dry-rule\n    pattern: {source: [x]}\n"
        "    targets:\n      - {id: q, queue: ap-dry}\n"
    )
    result = invoke("apply", "-f", str(path), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "create queue ap-dry",
        "unchanged bus default",
        "create rule default/ap-dry-rule",
        "create target default/ap-dry-rule/q",
    ]
    assert client.list_queues("ap-dry") == []
    as_json = json.loads(invoke("apply", "-f", str(path), "--dry-run", "-o", "json").stdout)
    assert as_json[0] == {"action": "created", "kind": "queue", "name": "ap-dry", "applied": False}


def test_apply_failing_midway_reports_what_was_applied_and_what_was_not(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    # a transformer template naming an undefined placeholder: only the server judges
    # templates, so the refusal comes while applying, after the queue and the rule
    path = tmp_path / "midway.yaml"
    path.write_text(
        "queues:\n  - name: ap-mid\n"
        "rules:\n  - name: ap-mid-rule\n    pattern: {source: [x]}\n"
        "    targets:\n      - id: t\n        queue: ap-mid\n"
        "        input-transformer:\n          paths: {a: $.detail}\n"
        "          template: '{\"x\": <nowhere>}'\n"
        "  - name: ap-mid-after\n    pattern: {source: [y]}\n"
    )
    result = invoke("apply", "-f", str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "created queue ap-mid",
        "created rule default/ap-mid-rule",
        "not applied: create target default/ap-mid-rule/t",
        "not applied: create rule default/ap-mid-after",
    ]
    line = one_line_error(result)
    assert line.startswith(
        f"error: {path}:6: rules[0].targets: targets of rule default/ap-mid-rule: "
    )
    assert line.endswith("(2 changes made, 2 not applied: listed in the output)")
    assert client.list_targets("ap-mid-rule") == []
    assert client.list_rules(prefix="ap-mid-after") == []


def test_execute_stops_at_the_first_step_the_server_cannot_make(tmp_path: Path) -> None:
    """A server that goes away between checking and applying: execute says where it stopped."""
    from eventyard.cli.apply import Change, execute, prepare
    from eventyard.errors import TransportError
    from eventyard.testing import ServerProcess

    resources = parse("queues:\n  - name: gone-a\n  - name: gone-b\n", source="gone.yaml")
    with ServerProcess(tmp_path / "data") as server, Client(server.url, retries=0) as sdk:
        steps = prepare(sdk, resources)
        sdk.create_queue("gone-a")  # made by someone else meanwhile: still fine
        server.stop()
        made: list[Change] = []
        failure = execute(steps, made.append)
    assert made == []
    assert failure is not None
    index, error = failure
    assert index == 0 and isinstance(error, TransportError)
    assert steps[index].where == "gone.yaml:2: queues[0]: queue gone-a"


def test_apply_declares_a_webhook_with_http_parameters(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "hook.yaml"
    path.write_text(
        "rules:\n"
        "  - name: ap-hook\n"
        "    pattern: {source: [ap-hook]}\n"
        "    targets:\n"
        "      - id: hook\n"
        "        url: http://127.0.0.1:9/tenants/*/events\n"
        "        http-parameters:\n"
        "          path: [$.detail.tenant]\n"
        "          headers: {X-Api-Key: abc, X-Kind: $.detail-type}\n"
        "          query: {v: 2}\n"
    )
    first = invoke("apply", "-f", str(path))
    assert first.exit_code == 0, first.stderr
    assert "created target default/ap-hook/hook" in first.stdout
    [target] = client.list_targets("ap-hook")
    assert target == {
        "Id": "hook",
        "Arn": "http://127.0.0.1:9/tenants/*/events",
        "HttpParameters": {
            "PathParameterValues": ["$.detail.tenant"],
            "HeaderParameters": {"X-Api-Key": "abc", "X-Kind": "$.detail-type"},
            "QueryStringParameters": {"v": "2"},
        },
    }
    again = invoke("apply", "-f", str(path))
    assert {line.split()[0] for line in again.stdout.splitlines()} == {"unchanged"}
