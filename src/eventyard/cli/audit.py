"""``eventyard events search`` and ``eventyard trace``: find stored events, follow one.

``events search`` lists the events of a bus ingested in a time window that match an
event pattern (``GET /v1/buses/{bus}/events``, through the SDK's
:meth:`~eventyard.Client.search_events`): a table for people, or each event's envelope as
one line of JSON (``-o json``, as ``eventyard tail`` prints them, so the output can be
put again).

``trace`` shows what happened to one event (:meth:`~eventyard.Client.trace`) as a tree:
its bus, each rule evaluated now (matched, or why not: the field that failed), each
target's attempts with times, statuses and errors, its dead letter, and the receives and
deletes of its queue messages. ``--json`` (or ``-o json``) prints the whole trace as JSON.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.text import Text
from rich.tree import Tree

from eventyard.cli.output import (
    BusOption,
    Output,
    OutputOption,
    TokenOption,
    UrlOption,
    console,
    emit_table,
    open_client,
    parse_pattern,
)
from eventyard.sdk.trace import Attempt, BusTrace, MessageTrace, RuleVerdict, TargetTrace, Trace

__all__ = ["events_app", "trace"]

events_app = typer.Typer(
    name="events", help="Stored events: search a bus by pattern and time.", no_args_is_help=True
)

_TIME_HELP = "ISO 8601 (2026-01-02T03:04:05Z), epoch seconds, or a duration before now (15m, 2d)."
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (same as -o json).")]


def _clock(when: datetime | None) -> str:
    if when is None:
        return "?"
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@events_app.command("search")
def search(
    *,
    bus: BusOption = "default",
    pattern: Annotated[
        str | None,
        typer.Option("--pattern", "-p", help="An event pattern the events match: JSON or @file."),
    ] = None,
    since: Annotated[str, typer.Option(help=f"Window start: {_TIME_HELP}")] = "1h",
    until: Annotated[
        str | None, typer.Option(help=f"Window end (default now): {_TIME_HELP}")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="The most events to print.")] = 100,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
    json: JsonOption = False,
) -> None:
    """Find a bus's stored events by event pattern and time window, oldest first.

    table prints `time id source detail-type`; json prints each event's envelope as one
    line of JSON.
    """
    text = parse_pattern(pattern) if pattern is not None else None
    with open_client(url, token) as client:
        found = client.search_events(bus, pattern=text, since=since, until=until, limit=limit)
    if json or output is Output.json:
        for record in found:
            sys.stdout.write(orjson.dumps(record.event).decode() + "\n")
        sys.stdout.flush()
        return
    emit_table(
        ["Time", "Id", "Source", "DetailType"],
        [(_clock(r.time), r.id, r.event.get("source"), r.event.get("detail-type")) for r in found],
    )


def trace(
    event_id: Annotated[str, typer.Argument(help="The event's id, as PutEvents returned it.")],
    *,
    bus: Annotated[
        str | None,
        typer.Option("--bus", "-b", help="With --since: the bus to look on."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help=f"Look from this time (ids that are not time-ordered): {_TIME_HELP}"),
    ] = None,
    until: Annotated[str | None, typer.Option(help=f"Look until this time: {_TIME_HELP}")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
    json: JsonOption = False,
) -> None:
    """Show what happened to an event: which rules matched and why the others did not,
    each target's attempts, its dead letter, its queue messages' receives and deletes."""
    with open_client(url, token) as client:
        result = client.trace(event_id, bus=bus, since=since, until=until)
    if json or output is Output.json:
        data = dataclasses.asdict(result)
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        sys.stdout.flush()
        return
    console().print(render(result))


# -- the tree ---------------------------------------------------------------------------------
def render(result: Trace) -> Tree:
    """The trace as a readable tree."""
    root = Tree(Text.assemble(("event ", "bold"), result.event_id, f"  {_clock(result.time)}"))
    if not result.found:
        root.add(Text(result.message or "not found", style="red"))
        return root
    for record in result.records:
        root.add(f"on bus {record.bus}: log record {record.seq} at {_clock(record.time)}")
    for bus in result.buses:
        _bus(root, bus)
    if result.records:
        root.add(Text(result.rules_note, style="dim"))
    targets = root.add(Text("deliveries", style="bold"))
    if not result.tracing:
        targets.add(Text("the server keeps no trace journal (trace = false)", style="yellow"))
    elif not result.targets:
        targets.add("none recorded")
    for target in result.targets:
        _target(targets, target)
    return root


def _bus(root: Tree, bus: BusTrace) -> None:
    node = root.add(Text.assemble(("rules of bus ", "bold"), bus.bus))
    if bus.message:
        node.add(Text(bus.message, style="yellow"))
    for rule in bus.rules:
        _rule(node, rule)


def _rule(node: Tree, rule: RuleVerdict) -> None:
    if rule.matched:
        targets = ", ".join(target_id for target_id, _ in rule.targets) or "no targets"
        node.add(Text.assemble(("✔ ", "green"), (rule.name, "bold"), f"  matched → {targets}"))
        return
    mark = ("‖ ", "yellow") if not rule.enabled else ("✘ ", "red")
    branch = node.add(Text.assemble(mark, (rule.name, "bold"), "  did not fire"))
    if rule.explanation is not None and rule.enabled:
        for n, mismatches in enumerate(rule.explanation.branches, 1):
            parent = branch
            if len(rule.explanation.branches) > 1:
                parent = branch.add(f"$or branch {n}")
            for mismatch in mismatches:
                parent.add(mismatch.message)
    elif rule.reason:
        branch.add(rule.reason)


def _attempt(attempt: Attempt) -> Text:
    style = {"delivered": "green", "retry": "yellow", "dead": "red"}.get(attempt.outcome, "")
    parts: list[Any] = [
        f"attempt {attempt.attempt}  {_clock(attempt.time)}  ",
        (attempt.outcome, style),
    ]
    if attempt.status is not None:
        parts.append(f"  HTTP {attempt.status}")
    if attempt.error:
        parts.append(f"  {attempt.error_code}: {attempt.error}")
    if attempt.retry_at is not None:
        parts.append(f"  next at {_clock(attempt.retry_at)}")
    if attempt.message_id:
        parts.append(f"  → queue {attempt.queue}, message {attempt.message_id}")
    return Text.assemble(*parts)


def _target(node: Tree, target: TargetTrace) -> None:
    branch = node.add(Text.assemble(("target ", "bold"), f"{target.rule}/{target.id}"))
    for attempt in target.attempts:
        branch.add(_attempt(attempt))
    dead = target.dead_letter
    if dead is not None:
        where = f"→ {dead.queue}, message {dead.message_id}" if dead.queue else "dropped (no DLQ)"
        branch.add(
            Text.assemble(
                ("dead letter ", "red"),
                f"{_clock(dead.time)}  {where}  reason {dead.reason}",
                f" ({dead.exhausted})" if dead.exhausted else "",
            )
        )
    for message in target.messages:
        _message(branch, message)


def _message(node: Tree, message: MessageTrace) -> None:
    branch = node.add(f"message {message.message_id} on {message.queue} ({message.via})")
    if not message.history:
        branch.add(Text("not received yet", style="dim"))
    for step in message.history:
        what = "received" if step.kind == "queue-receive" else "deleted"
        count = f" (receive {step.receive_count})" if step.receive_count else ""
        branch.add(f"{what} {_clock(step.time)}{count}")
