"""CLI fixtures: the session's shared ``eventyard serve`` and a Typer test runner.

``invoke`` runs a command in-process through Typer's ``CliRunner`` with
``EVENTYARD_URL`` pointing at the shared server; stdout and stderr stay apart, so a
test can check that progress bars and errors never reach the data on stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from eventyard.__main__ import app
from eventyard.sdk.client import Client
from eventyard.testing import ServerProcess

EVENTYARD = str(Path(sys.executable).with_name("eventyard"))

Invoke = Callable[..., Result]


@pytest.fixture(scope="session")
def server(shared_server: ServerProcess) -> ServerProcess:
    """The session's shared real server."""
    return shared_server


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, timeout=10) as sdk:
        yield sdk


@pytest.fixture
def invoke(server: ServerProcess) -> Invoke:
    """Run ``eventyard ARGS...`` against the shared server."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, Any] | None = None) -> Result:
        return runner.invoke(
            app, list(args), input=input, env={"EVENTYARD_URL": server.url, **(env or {})}
        )

    return run


def subprocess_env(server: ServerProcess) -> dict[str, str]:
    """The environment for running the real console script against ``server``."""
    return {**os.environ, "EVENTYARD_URL": server.url, "PYTHONUNBUFFERED": "1"}


def one_line_error(result: Result) -> str:
    """The failure's stderr, checked to be exactly one ``error: ...`` line."""
    assert result.exit_code != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]
