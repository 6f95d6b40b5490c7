"""The command line as a whole: the command list, and ``eventyard worker``'s failures."""

from __future__ import annotations

import subprocess

from typer.testing import CliRunner

from eventyard.__main__ import app
from tests.cli.conftest import EVENTYARD

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
        "queues": ("list", "show", "create", "purge", "delete"),
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
