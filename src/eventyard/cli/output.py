"""What every CLI command shares: the ``--url`` and ``--output`` options, reading arguments,
and printing tables and JSON.

- ``--url`` (env ``EVENTYARD_URL``, default ``http://127.0.0.1:4010``) names the server;
- ``--token`` (env ``EVENTYARD_TOKEN``): the bearer token of an access key, for a server
  that has keys (``eventyard keys create`` prints it); a server in dev mode needs none;
- ``--output table|json``: a plain table for people (no colours when not a terminal), or
  JSON for scripts;
- an argument that takes JSON also takes ``@path`` (the file's text) or ``-`` (standard
  input); one that cannot be read or parsed is a usage error (exit 2, see
  :mod:`eventyard.cli.failures`).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from eventyard.cli.failures import USAGE, fail
from eventyard.errors import InvalidEventPattern
from eventyard.patterns import compile_pattern
from eventyard.sdk.client import Client

__all__ = [
    "BusOption",
    "Output",
    "OutputOption",
    "TokenOption",
    "UrlOption",
    "check_pattern",
    "console",
    "done",
    "emit_json",
    "emit_record",
    "emit_table",
    "open_client",
    "parse_json",
    "parse_pattern",
    "read_text",
]

# wide enough that a table written to a file or pipe never wraps an ARN
_PIPE_WIDTH = 1000
# AWS's hard limit on a pattern's length; a server may set a lower quota (2048 by
# default), which only it knows: patterns are checked against it when sent
_MAX_PATTERN_LENGTH = 4096


class Output(enum.StrEnum):
    """How a command prints its data."""

    table = "table"
    json = "json"


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="EVENTYARD_URL",
        show_envvar=True,
        help="The eventyard server (default http://127.0.0.1:4010).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="EVENTYARD_TOKEN",
        show_envvar=True,
        help="Bearer token of an access key (servers with keys only).",
    ),
]
OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
BusOption = Annotated[str, typer.Option("--bus", "-b", help="The event bus (name or ARN).")]


def open_client(url: str | None, token: str | None = None) -> Client:
    """A client for ``url`` with ``token`` (its errors reach the one failure convention of
    the program)."""
    return Client(url, token=token)


# -- printing --------------------------------------------------------------------------------
def console(*, stderr: bool = False) -> Console:
    """A plain console on stdout (or stderr), as wide as needed when not a terminal."""
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if out.is_terminal:
        return out
    return Console(stderr=stderr, highlight=False, width=_PIPE_WIDTH, no_color=True)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def emit_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain table; values that are not strings are shown as compact JSON."""
    table = Table(box=None, padding=(0, 3, 0, 0), header_style="bold", highlight=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    out = console()
    if out.is_terminal:
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    # a table in a file or pipe: no padding at the line ends
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()


def emit_record(record: Mapping[str, Any], output: Output) -> None:
    """Print one resource: JSON, or a two-column field/value table."""
    if output is Output.json:
        emit_json(record)
    else:
        emit_table(["Field", "Value"], [(key, value) for key, value in record.items()])


def done(output: Output, message: str, data: Mapping[str, Any]) -> None:
    """Report a change: ``message`` for people, ``data`` as JSON for scripts."""
    if output is Output.json:
        emit_json(data)
    else:
        typer.echo(message)


# -- reading arguments -----------------------------------------------------------------------
def read_text(value: str, *, what: str) -> str:
    """The text an argument stands for: itself, ``@path``'s contents, or stdin for ``-``.

    Raises:
        typer.Exit: the file cannot be read (after the one-line error, exit 2).
    """
    if value == "-":
        return sys.stdin.read()
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{what}: cannot read {path}: {exc}", USAGE)


def parse_json(value: str, *, what: str) -> Any:
    """The JSON value of an argument given as JSON text, ``@path`` or ``-``.

    Raises:
        typer.Exit: the text is not JSON (after the one-line error, exit 2).
    """
    text = read_text(value, what=what)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc}", USAGE)


def check_pattern(text: str) -> None:
    """Check an event pattern's JSON text here, with the rules the server applies.

    Raises:
        InvalidEventPattern: the pattern is not valid (AWS's message).
    """
    compile_pattern(text, max_length=_MAX_PATTERN_LENGTH)


def parse_pattern(value: str, *, what: str = "--pattern") -> str:
    """An event pattern argument (JSON, ``@path`` or ``-``), checked here, as compact JSON.

    Checking it before anything is sent makes an invalid pattern a usage error (exit 2)
    with AWS's message, the same in every command.

    Raises:
        typer.Exit: not JSON, or not a valid event pattern (after the one-line error).
    """
    text = orjson.dumps(parse_json(value, what=what)).decode()
    try:
        check_pattern(text)
    except InvalidEventPattern as exc:
        fail(f"{what}: {exc.message}", USAGE)
    return text
