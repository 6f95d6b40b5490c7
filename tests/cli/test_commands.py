"""The command line as a whole: the command list, --version, and the one failure convention.

Every failure is one ``error: …`` line on stderr; exit 2 for usage errors (Click's, bad
input, ``ConfigurationError``), 1 for the rest; ``serve`` included.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventyard import __version__
from eventyard.__main__ import app
from tests.cli.conftest import EVENTYARD, one_line_error

COMMANDS = ("test-pattern", "serve", "worker", "put", "tail", "apply")
GROUPS = ("buses", "rules", "targets", "queues")


def test_help_lists_every_command_and_resource_group() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS + GROUPS:
        assert name in result.stdout


def test_resource_groups_list_their_subcommands() -> None:
    expected = {
        "buses": ("list", "show", "create", "delete"),
        "rules": ("list", "show", "create", "enable", "disable", "delete"),
        "targets": ("list", "add", "remove"),
        "queues": (
            "list",
            "show",
            "create",
            "delete",
            "send",
            "receive",
            "peek",
            "purge",
            "redrive",
        ),
    }
    for group, subcommands in expected.items():
        result = CliRunner().invoke(app, [group, "--help"])
        assert result.exit_code == 0, group
        for name in subcommands:
            assert name in result.stdout, (group, name)


def test_worker_with_a_consumer_that_cannot_be_imported_fails_with_one_line() -> None:
    completed = subprocess.run(
        [EVENTYARD, "worker", "no_such_module_xyz:consumer"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "error: cannot import 'no_such_module_xyz': No module named 'no_such_module_xyz'"
    ]


def test_worker_spec_without_a_colon_fails_with_one_line() -> None:
    completed = subprocess.run(
        [EVENTYARD, "worker", "shop"], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: expected module:attribute")
    assert len(completed.stderr.splitlines()) == 1


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"eventyard {__version__}\n")
    completed = subprocess.run(
        [EVENTYARD, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert (completed.returncode, completed.stdout) == (0, f"eventyard {__version__}\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "--bogus"], "error: No such option: --bogus"),
        (["queues", "receive"], "error: Missing argument 'name'"),
        (["queues", "receive", "q", "--max", "0"], "error: Invalid value for '--max'"),
        (["no-such-command"], "error: No such command 'no-such-command'"),
        (["rules", "create", "r", "--pattern", "{x"], "error: --pattern is not valid JSON"),
        (["put", "--source", "s"], "error: --source and --detail-type go together"),
    ],
)
def test_usage_errors_are_one_error_line_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert one_line_error(result).startswith(message)


def test_usage_errors_of_click_say_where_to_get_help() -> None:
    result = CliRunner().invoke(app, ["queues", "peek", "q", "--colour"])
    assert one_line_error(result).endswith("(see 'eventyard queues peek --help')")


def test_no_arguments_prints_the_help_and_exits_2() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert "Usage:" in result.stdout and "error:" not in result.stderr


def test_an_unreachable_server_is_one_error_line_and_exit_1() -> None:
    result = CliRunner().invoke(app, ["buses", "list", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: cannot reach eventyard at http://127.0.0.1:9")


def test_serve_with_an_invalid_setting_is_a_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [EVENTYARD, "serve", "--port", "70000", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        "error: port must be between 0 and 65535, got 70000 (from --port)"
    ]


def test_serve_on_a_port_in_use_fails_with_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = subprocess.run(
            [EVENTYARD, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
