"""``eventyard test-pattern``: JSON, @file or stdin in; true/false out.

An invalid pattern or event is bad input from the user: ``error: <AWS's message>`` on one
line and exit 2, the program's convention for usage errors. No match is an answer (exit 0).
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from eventyard.__main__ import app

runner = CliRunner()
PATTERN = '{"source": ["orders"], "detail": {"amount": [{"numeric": [">", 100]}]}}'
EVENT = '{"source": "orders", "detail": {"amount": 250}}'


def test_prints_true_and_exits_0_when_the_event_matches() -> None:
    result = runner.invoke(app, ["test-pattern", "--pattern", PATTERN, "--event", EVENT])
    assert result.exit_code == 0
    assert result.stdout == "true\n"


def test_prints_false_and_exits_0_when_the_event_does_not_match() -> None:
    event = '{"source": "orders", "detail": {"amount": 5}}'
    result = runner.invoke(app, ["test-pattern", "-p", PATTERN, "-e", event])
    assert result.exit_code == 0
    assert result.stdout == "false\n"


def test_reads_arguments_from_files_with_an_at_sign(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(PATTERN)
    (tmp_path / "e.json").write_text(EVENT)
    args = ["test-pattern", "-p", f"@{tmp_path / 'p.json'}", "-e", f"@{tmp_path / 'e.json'}"]
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stdout) == (0, "true\n")


def test_reads_one_argument_from_stdin_with_a_dash() -> None:
    result = runner.invoke(app, ["test-pattern", "-p", PATTERN, "-e", "-"], input=EVENT)
    assert (result.exit_code, result.stdout) == (0, "true\n")
    result = runner.invoke(app, ["test-pattern", "-p", "-", "-e", EVENT], input=PATTERN)
    assert (result.exit_code, result.stdout) == (0, "true\n")


def test_an_invalid_pattern_prints_error_and_the_aws_message_and_exits_2() -> None:
    result = runner.invoke(app, ["test-pattern", "-p", '{"source": "orders"}', "-e", EVENT])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        'error: Event pattern is not valid. Reason: "source" must be an object or an array\n'
    )


def test_invalid_json_in_the_pattern_gives_jacksons_message_and_exits_2() -> None:
    result = runner.invoke(app, ["test-pattern", "-p", "{'a': 1}", "-e", EVENT])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "Unexpected character (''' (code 39))" in result.stderr


def test_an_event_that_is_not_a_json_object_exits_2() -> None:
    result = runner.invoke(app, ["test-pattern", "-p", PATTERN, "-e", "[1, 2]"])
    assert result.exit_code == 2
    assert result.stderr == "error: Parameter Event is not valid.\n"


def test_a_missing_file_is_a_usage_error() -> None:
    result = runner.invoke(app, ["test-pattern", "-p", "@/no/such/file", "-e", EVENT])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --pattern: cannot read /no/such/file")


def test_both_arguments_cannot_come_from_stdin() -> None:
    result = runner.invoke(app, ["test-pattern", "-p", "-", "-e", "-"], input="{}")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: only one of --pattern and --event can be read from standard input\n"
    )


def test_the_command_is_a_subcommand_of_the_eventyard_app() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "test-pattern" in result.stdout
