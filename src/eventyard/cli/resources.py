"""The resource commands of the CLI and the conventions every CLI command shares.

``eventyard buses | rules | targets | queues`` list, show, create and delete the server's
resources through :class:`eventyard.sdk.client.Client`. The shared conventions live here too
so that ``eventyard.cli.app`` (put, tail, apply) follows the same ones:

- ``--url`` (env ``EVENTYARD_URL``, default ``http://127.0.0.1:4010``) names the server;
- ``--output table|json``: a plain table for people (no colours when not a terminal), or
  JSON for scripts;
- a failure prints ONE line to stderr, ``error: <code>: <message>`` for an error the
  server reported, ``error: <message>`` otherwise, and exits 1 (2 for usage errors).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table

from eventyard.errors import EventyardError, ServiceError
from eventyard.sdk.client import Client

__all__ = [
    "FAILURE",
    "USAGE",
    "BusOption",
    "Output",
    "OutputOption",
    "UrlOption",
    "buses_app",
    "console",
    "emit_json",
    "emit_record",
    "emit_table",
    "fail",
    "open_client",
    "parse_json",
    "queues_app",
    "read_text",
    "reported_errors",
    "rules_app",
    "targets_app",
]

FAILURE = 1
USAGE = 2
# wide enough that a table written to a file or pipe never wraps an ARN
_PIPE_WIDTH = 1000


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
OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
BusOption = Annotated[str, typer.Option("--bus", "-b", help="The event bus (name or ARN).")]


# -- failing and printing ------------------------------------------------------------------
def fail(message: str, code: int = FAILURE) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    one_line = " ".join(message.split())
    typer.echo(f"error: {one_line}", err=True)
    raise typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn eventyard's errors into the one-line failure (no traceback ever)."""
    try:
        yield
    except ServiceError as exc:
        fail(f"{exc.code}: {exc.message}")
    except EventyardError as exc:
        fail(str(exc))


@contextmanager
def open_client(url: str | None) -> Iterator[Client]:
    """A client for ``url`` whose errors, and the command's, are reported on one line."""
    with reported_errors(), Client(url) as client:
        yield client


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


def _done(output: Output, message: str, data: Mapping[str, Any]) -> None:
    if output is Output.json:
        emit_json(data)
    else:
        typer.echo(message)


# -- reading arguments ---------------------------------------------------------------------
def read_text(value: str, *, what: str) -> str:
    """The text an argument stands for: itself, or ``@path``'s contents.

    Raises:
        typer.Exit: the file cannot be read (after the one-line error).
    """
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{what}: cannot read {path}: {exc}", USAGE)


def parse_json(value: str, *, what: str) -> Any:
    """The JSON value of an argument given as JSON text or ``@path``.

    Raises:
        typer.Exit: the text is not JSON (after the one-line error).
    """
    text = read_text(value, what=what)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc}", USAGE)


# -- buses ---------------------------------------------------------------------------------
buses_app = typer.Typer(
    name="buses", help="List, show, create and delete event buses.", no_args_is_help=True
)


@buses_app.command("list")
def buses_list(
    prefix: Annotated[str | None, typer.Option(help="Only buses whose name starts so.")] = None,
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the event buses."""
    with open_client(url) as client:
        buses = client.list_buses(prefix)
    if output is Output.json:
        emit_json(buses)
    else:
        emit_table(
            ["Name", "Arn", "Description"],
            [(b.get("Name"), b.get("Arn"), b.get("Description")) for b in buses],
        )


@buses_app.command("show")
def buses_show(
    name: Annotated[str, typer.Argument(help="The bus name or ARN.")],
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show one event bus."""
    with open_client(url) as client:
        emit_record(client.describe_bus(name), output)


@buses_app.command("create")
def buses_create(
    name: Annotated[str, typer.Argument(help="The new bus's name.")],
    description: Annotated[str | None, typer.Option(help="What the bus is for.")] = None,
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create an event bus."""
    with open_client(url) as client:
        arn = client.create_bus(name, description=description)
    _done(output, f"created bus {name} ({arn})", {"Name": name, "Arn": arn})


@buses_app.command("delete")
def buses_delete(
    name: Annotated[str, typer.Argument(help="The bus name.")],
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete an event bus (its rules go with it)."""
    with open_client(url) as client:
        client.delete_bus(name)
    _done(output, f"deleted bus {name}", {"Name": name, "Deleted": True})


# -- rules ---------------------------------------------------------------------------------
rules_app = typer.Typer(
    name="rules", help="List, show, create and delete rules.", no_args_is_help=True
)


def _pattern_text(pattern: str) -> str:
    value = parse_json(pattern, what="--pattern")
    return orjson.dumps(value).decode()


@rules_app.command("list")
def rules_list(
    bus: BusOption = "default",
    prefix: Annotated[str | None, typer.Option(help="Only rules whose name starts so.")] = None,
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the rules of a bus."""
    with open_client(url) as client:
        rules = client.list_rules(bus=bus, prefix=prefix)
    if output is Output.json:
        emit_json(rules)
    else:
        emit_table(
            ["Name", "State", "EventPattern", "Description"],
            [
                (r.get("Name"), r.get("State"), r.get("EventPattern"), r.get("Description"))
                for r in rules
            ],
        )


@rules_app.command("show")
def rules_show(
    name: Annotated[str, typer.Argument(help="The rule name.")],
    bus: BusOption = "default",
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show one rule and its targets."""
    with open_client(url) as client:
        rule = client.describe_rule(name, bus=bus)
        targets = client.list_targets(name, bus=bus)
    if output is Output.json:
        emit_json({**rule, "Targets": targets})
        return
    emit_record(rule, output)
    if targets:
        typer.echo("")
        _targets_table(targets)


@rules_app.command("create")
def rules_create(
    *,
    name: Annotated[str, typer.Argument(help="The rule name.")],
    pattern: Annotated[
        str, typer.Option("--pattern", "-p", help="The event pattern: JSON or @file.")
    ],
    bus: BusOption = "default",
    description: Annotated[str | None, typer.Option(help="What the rule is for.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create a rule, or replace the rule of that name (as PutRule does)."""
    text = _pattern_text(pattern)
    with open_client(url) as client:
        arn = client.put_rule(name, text, bus=bus, description=description, enabled=not disabled)
    _done(output, f"created rule {bus}/{name} ({arn})", {"Name": name, "Arn": arn})


@rules_app.command("enable")
def rules_enable(
    name: Annotated[str, typer.Argument(help="The rule name.")],
    bus: BusOption = "default",
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Enable a rule."""
    with open_client(url) as client:
        client.enable_rule(name, bus=bus)
    _done(output, f"enabled rule {bus}/{name}", {"Name": name, "State": "ENABLED"})


@rules_app.command("disable")
def rules_disable(
    name: Annotated[str, typer.Argument(help="The rule name.")],
    bus: BusOption = "default",
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Disable a rule: it keeps its targets but matches nothing."""
    with open_client(url) as client:
        client.disable_rule(name, bus=bus)
    _done(output, f"disabled rule {bus}/{name}", {"Name": name, "State": "DISABLED"})


@rules_app.command("delete")
def rules_delete(
    name: Annotated[str, typer.Argument(help="The rule name.")],
    bus: BusOption = "default",
    force: Annotated[
        bool, typer.Option("--force", help="Remove its targets first (else it must have none).")
    ] = False,
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete a rule."""
    with open_client(url) as client:
        client.delete_rule(name, bus=bus, force=force)
    _done(output, f"deleted rule {bus}/{name}", {"Name": name, "Deleted": True})


# -- targets -------------------------------------------------------------------------------
targets_app = typer.Typer(
    name="targets", help="List, add and remove the targets of a rule.", no_args_is_help=True
)


def _input_kind(target: Mapping[str, Any]) -> str:
    if "InputTransformer" in target:
        return "transformer"
    if "InputPath" in target:
        return f"path {target['InputPath']}"
    if "Input" in target:
        return "constant"
    return "event"


def _targets_table(targets: Sequence[Mapping[str, Any]]) -> None:
    emit_table(
        ["Id", "Arn", "Input", "DeadLetter", "MaxRetries"],
        [
            (
                t.get("Id"),
                t.get("Arn"),
                _input_kind(t),
                (t.get("DeadLetterConfig") or {}).get("Arn"),
                (t.get("RetryPolicy") or {}).get("MaximumRetryAttempts"),
            )
            for t in targets
        ],
    )


@targets_app.command("list")
def targets_list(
    rule: Annotated[str, typer.Argument(help="The rule name.")],
    bus: BusOption = "default",
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List a rule's targets."""
    with open_client(url) as client:
        targets = client.list_targets(rule, bus=bus)
    if output is Output.json:
        emit_json(targets)
    else:
        _targets_table(targets)


@targets_app.command("add")
def targets_add(
    *,
    rule: Annotated[str, typer.Argument(help="The rule name.")],
    target_id: Annotated[str, typer.Option("--id", help="The target's id within the rule.")],
    arn: Annotated[
        str | None, typer.Option(help="Where events go: a queue, bus or API-destination ARN.")
    ] = None,
    queue: Annotated[
        str | None, typer.Option(help="Deliver to this queue (instead of --arn).")
    ] = None,
    input_path: Annotated[
        str | None, typer.Option(help="Deliver this part of the event, e.g. $.detail.")
    ] = None,
    constant: Annotated[
        str | None, typer.Option("--input", help="Deliver this constant JSON instead.")
    ] = None,
    input_transformer: Annotated[
        str | None,
        typer.Option(
            help='JSON or @file: {"InputPathsMap": {...}, "InputTemplate": "..."}.',
        ),
    ] = None,
    dlq: Annotated[
        str | None, typer.Option(help="Dead-letter queue ARN for failed deliveries.")
    ] = None,
    max_retries: Annotated[
        int | None, typer.Option(min=0, max=185, help="Delivery attempts after the first.")
    ] = None,
    max_age: Annotated[
        int | None,
        typer.Option(min=60, max=86400, help="Seconds an event may wait to be delivered."),
    ] = None,
    bus: BusOption = "default",
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Add a target to a rule, or replace the target with the same id."""
    if (arn is None) == (queue is None):
        fail("give exactly one of --arn and --queue", USAGE)
    if sum(x is not None for x in (input_path, constant, input_transformer)) > 1:
        fail("give at most one of --input-path, --input and --input-transformer", USAGE)
    target: dict[str, Any] = {"Id": target_id}
    if input_path is not None:
        target["InputPath"] = input_path
    if constant is not None:
        target["Input"] = read_text(constant, what="--input")
    if input_transformer is not None:
        transformer = parse_json(input_transformer, what="--input-transformer")
        if not isinstance(transformer, dict):
            fail("--input-transformer must be a JSON object", USAGE)
        target["InputTransformer"] = transformer
    if dlq is not None:
        target["DeadLetterConfig"] = {"Arn": dlq}
    retry: dict[str, int] = {}
    if max_retries is not None:
        retry["MaximumRetryAttempts"] = max_retries
    if max_age is not None:
        retry["MaximumEventAgeInSeconds"] = max_age
    if retry:
        target["RetryPolicy"] = retry
    with open_client(url) as client:
        target["Arn"] = arn if arn is not None else client.queue_arn(str(queue))
        client.put_targets(rule, [target], bus=bus)
    _done(output, f"added target {bus}/{rule}/{target_id} ({target['Arn']})", target)


@targets_app.command("remove")
def targets_remove(
    rule: Annotated[str, typer.Argument(help="The rule name.")],
    target_id: Annotated[str, typer.Argument(metavar="ID", help="The target's id.")],
    bus: BusOption = "default",
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Remove a target from a rule."""
    with open_client(url) as client:
        known = {str(t.get("Id")) for t in client.list_targets(rule, bus=bus)}
        if target_id not in known:
            fail(f"rule {bus}/{rule} has no target {target_id}")
        client.remove_targets(rule, [target_id], bus=bus)
    _done(output, f"removed target {bus}/{rule}/{target_id}", {"Id": target_id, "Removed": True})


# -- queues --------------------------------------------------------------------------------
queues_app = typer.Typer(
    name="queues", help="List, show, create, purge and delete queues.", no_args_is_help=True
)


@queues_app.command("list")
def queues_list(
    prefix: Annotated[str | None, typer.Option(help="Only queues whose name starts so.")] = None,
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the queues."""
    with open_client(url) as client:
        names = client.list_queues(prefix)
        rows = [{"Name": name, "Url": client.get_queue_url(name)} for name in names]
    if output is Output.json:
        emit_json(rows)
    else:
        emit_table(["Name", "Url"], [(r["Name"], r["Url"]) for r in rows])


@queues_app.command("show")
def queues_show(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show a queue: its URL and attributes (message counts, settings, ARN)."""
    with open_client(url) as client:
        record = {
            "Name": name,
            "Url": client.get_queue_url(name),
            **client.get_queue_attributes(name),
        }
    emit_record(record, output)


@queues_app.command("create")
def queues_create(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    attribute: Annotated[
        list[str] | None,
        typer.Option(
            "--attribute",
            "-a",
            help="NAME=VALUE, e.g. VisibilityTimeout=60 (repeatable).",
        ),
    ] = None,
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create a queue (an existing queue with the same attributes is kept)."""
    attributes: dict[str, str] = {}
    for item in attribute or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--attribute {item!r}: expected NAME=VALUE", USAGE)
        attributes[key] = value
    with open_client(url) as client:
        queue_url = client.create_queue(name, attributes=attributes or None)
    _done(output, f"created queue {name} ({queue_url})", {"Name": name, "Url": queue_url})


@queues_app.command("delete")
def queues_delete(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete a queue and its messages."""
    with open_client(url) as client:
        client.delete_queue(name)
    _done(output, f"deleted queue {name}", {"Name": name, "Deleted": True})


@queues_app.command("purge")
def queues_purge(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    url: UrlOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete every message of a queue."""
    with open_client(url) as client:
        client.purge_queue(name)
    _done(output, f"purged queue {name}", {"Name": name, "Purged": True})
