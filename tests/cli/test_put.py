"""``eventyard put``: flags, files, JSON lines on stdin, progress, ids, errors."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from eventyard.sdk.client import Client
from eventyard.testing import ServerProcess
from tests.cli.conftest import EVENTYARD, Invoke, one_line_error, subprocess_env


def _uuid_like(value: object) -> bool:
    return isinstance(value, str) and len(value) == 36 and value.count("-") == 4


def _only_the_summary(stderr: str, bus: str) -> bool:
    """stderr is the one summary line for ``bus`` (no progress bar, nothing else).

    Other tests of the session's shared server may have rules on the bus, so the count
    is not pinned here (tests that pin it use a bus of their own).
    """
    lines = stderr.splitlines()
    return (
        len(lines) == 1
        and re.fullmatch(rf"\d+ (rules? matched|events) on bus {bus}.*", lines[0]) is not None
    )


def test_put_from_flags_prints_the_event_id_as_json(invoke: Invoke) -> None:
    result = invoke(
        "put", "--source", "shop", "--detail-type", "OrderPlaced",
        "--detail", '{"id": 1}', "--resources", "arn:a, arn:b", "--output", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    ids = json.loads(result.stdout)
    assert len(ids) == 1 and _uuid_like(ids[0])
    assert _only_the_summary(result.stderr, "default")


def test_put_from_flags_prints_a_table_by_default(invoke: Invoke) -> None:
    result = invoke("put", "--source", "shop", "--detail-type", "OrderPlaced")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["#", "EventId"]
    assert row.split()[0] == "0" and _uuid_like(row.split()[1])


def test_put_reads_detail_from_a_file(invoke: Invoke, tmp_path: Path) -> None:
    detail = tmp_path / "detail.json"
    detail.write_text('{"total": 12}')
    result = invoke("put", "--source", "s", "--detail-type", "t", "--detail", f"@{detail}")
    assert result.exit_code == 0, result.stderr


def test_put_from_a_file_with_a_list_of_pascal_and_event_style_entries(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "events.json"
    path.write_text(
        json.dumps(
            [
                {"Source": "shop", "DetailType": "A", "Detail": '{"n": 1}'},
                {"Source": "shop", "DetailType": "B", "Detail": {"n": 2}},
                {"source": "shop", "detail-type": "C", "detail": {"n": 3}, "resources": ["r"]},
            ]
        )
    )
    result = invoke("put", "--file", str(path), "-o", "json")
    assert result.exit_code == 0, result.stderr
    ids = json.loads(result.stdout)
    assert len(ids) == 3 and all(_uuid_like(i) for i in ids) and len(set(ids)) == 3


def test_put_from_a_file_with_one_object_or_json_lines(invoke: Invoke, tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text('{"source": "shop", "detail-type": "A", "detail": {}}')
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"source": "a", "detail-type": "A"}\n\n{"source": "b", "detail-type": "B"}\n')
    assert len(json.loads(invoke("put", "-f", str(one), "-o", "json").stdout)) == 1
    assert len(json.loads(invoke("put", "-f", str(lines), "-o", "json").stdout)) == 2


def test_put_of_many_json_lines_on_stdin_shows_progress_on_stderr_only(invoke: Invoke) -> None:
    events = [{"source": "bulk", "detail-type": "Row", "detail": {"i": i}} for i in range(250)]
    stdin = "".join(json.dumps(event) + "\n" for event in events)
    result = invoke("put", "-o", "json", input=stdin)
    assert result.exit_code == 0, result.stderr
    ids = json.loads(result.stdout)  # stdout is nothing but the JSON
    assert len(ids) == 250 and len(set(ids)) == 250
    assert "events/s" in result.stderr and "250 events" in result.stderr


def test_put_of_a_few_events_shows_no_progress(invoke: Invoke) -> None:
    stdin = '{"source": "a", "detail-type": "A"}\n' * 5
    result = invoke("put", "-", "-o", "json", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 5
    assert _only_the_summary(result.stderr, "default")


def test_put_no_progress_flag_hides_the_bar(invoke: Invoke) -> None:
    stdin = '{"source": "a", "detail-type": "A"}\n' * 150
    result = invoke("put", "--no-progress", "-o", "json", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 150
    assert _only_the_summary(result.stderr, "default")


def test_put_events_reach_the_bus_they_name(
    invoke: Invoke, client: Client, server: ServerProcess
) -> None:
    client.create_bus("put-target")
    client.create_queue("put-target-q")
    client.put_rule("all", {"source": ["routed"]}, bus="put-target")
    client.put_targets(
        "all", [{"Id": "q", "Arn": client.queue_arn("put-target-q")}], bus="put-target"
    )
    stdin = "".join(
        json.dumps({"source": "routed", "detail-type": "T", "detail": {"i": i}}) + "\n"
        for i in range(3)
    )
    result = invoke("put", "--bus", "put-target", "-o", "json", input=stdin)
    assert result.exit_code == 0, result.stderr
    received = []
    for _ in range(20):
        received += client.receive_messages("put-target-q", max_messages=10, wait=1)
        if len(received) >= 3:
            break
    ids = {json.loads(m.body)["id"] for m in received}
    assert ids == set(json.loads(result.stdout))


def test_put_stdin_line_that_is_not_json_fails_after_sending_the_lines_before(
    invoke: Invoke,
) -> None:
    stdin = '{"source": "a", "detail-type": "A"}\nnot json\n'
    result = invoke("put", "-o", "json", input=stdin)
    assert result.exit_code == 2
    assert "stdin line 2: not valid JSON" in one_line_error(result)
    assert len(json.loads(result.stdout)) == 1


def test_put_entry_with_unknown_keys_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"source": "a", "detailtype": "A"}')
    result = invoke("put", "--file", str(path))
    assert result.exit_code == 2
    assert "unknown key(s) detailtype" in one_line_error(result)
    assert result.stdout == ""


def test_put_rejected_entries_fail_with_one_line_naming_them(invoke: Invoke) -> None:
    stdin = '{"source": "a", "detail-type": "A"}\n{"detail-type": "no source"}\n'
    result = invoke("put", "-o", "json", input=stdin)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "1 event(s) rejected: entry 1: InvalidArgument" in line
    assert json.loads(result.stdout)[1] is None


def test_put_detail_that_is_not_an_object_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("put", "--source", "a", "--detail-type", "b", "--detail", "[1]")
    assert result.exit_code == 2
    assert one_line_error(result) == "error: --detail must be a JSON object"


def test_put_with_flags_and_a_file_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("put", "--source", "a", "--detail-type", "b", "--file", "x.json")
    assert result.exit_code == 2
    one_line_error(result)


def test_put_to_an_unreachable_server_fails_with_one_line(invoke: Invoke) -> None:
    result = invoke("put", "--source", "a", "--detail-type", "b", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "127.0.0.1:9" in one_line_error(result)


def test_put_through_the_real_console_script(server: ServerProcess) -> None:
    completed = subprocess.run(
        [EVENTYARD, "put", "--source", "cli", "--detail-type", "Subprocess",
         "--detail", '{"ok": true}', "--output", "json"],
        capture_output=True, text=True, env=subprocess_env(server), timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    ids = json.loads(completed.stdout)
    assert len(ids) == 1 and _uuid_like(ids[0])


def test_put_json_lines_piped_into_the_real_console_script(server: ServerProcess) -> None:
    lines = "".join(
        json.dumps({"Source": "pipe", "DetailType": "T", "Detail": {"i": i}}) + "\n"
        for i in range(120)
    )
    completed = subprocess.run(
        [EVENTYARD, "put", "--output", "json"], input=lines, capture_output=True, text=True,
        env=subprocess_env(server), timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert len(json.loads(completed.stdout)) == 120
    assert "events/s" in completed.stderr


def test_put_says_how_many_rules_matched_on_each_bus(invoke: Invoke, client: Client) -> None:
    client.create_bus("matched-bus")
    client.create_bus("ruleless-bus")
    client.put_rule("matched-shop", {"source": ["shop"]}, bus="matched-bus")
    client.put_rule("matched-orders", {"detail-type": ["OrderPlaced"]}, bus="matched-bus")
    lines = [
        {"source": "shop", "detail-type": "OrderPlaced", "bus": "matched-bus"},
        {"source": "shop", "detail-type": "Refunded", "bus": "matched-bus"},
        {"source": "else", "detail-type": "Other", "bus": "matched-bus"},
        {"source": "shop", "detail-type": "OrderPlaced", "bus": "ruleless-bus"},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    result = invoke("put", "-", "-o", "json", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 4
    assert result.stderr.splitlines() == [
        "3 events on bus matched-bus: 3 rule matches, 1 matched no rule",
        "0 rules matched on bus ruleless-bus",
    ]


def test_put_of_one_matching_event_names_the_rule_count(invoke: Invoke, client: Client) -> None:
    client.create_bus("one-match-bus")
    client.put_rule("one-match", {"source": ["shop"]}, bus="one-match-bus")
    result = invoke("put", "--source", "shop", "--detail-type", "A", "--bus", "one-match-bus")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "1 rule matched on bus one-match-bus\n"
