"""``eventyard buses | rules | targets | queues``: the server's resources.

List, show, create and delete buses, rules, targets and queues, and read queues'
messages (``queues receive | peek | purge | redrive``), all through
:class:`eventyard.sdk.client.Client`, so no boto3 is needed. The options and the failure
convention are those of every command (:mod:`eventyard.cli.output`,
:mod:`eventyard.cli.failures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from eventyard.cli.failures import USAGE, fail
from eventyard.cli.output import (
    BusOption,
    Output,
    OutputOption,
    TokenOption,
    UrlOption,
    done,
    emit_json,
    emit_record,
    emit_table,
    open_client,
    parse_json,
    parse_pattern,
    read_text,
)
from eventyard.cli.queues import queues_app
from eventyard.cli.signing import secret_app

__all__ = ["buses_app", "queues_app", "rules_app", "targets_app"]


# -- buses ---------------------------------------------------------------------------------
buses_app = typer.Typer(
    name="buses", help="List, show, create and delete event buses.", no_args_is_help=True
)


@buses_app.command("list")
def buses_list(
    prefix: Annotated[str | None, typer.Option(help="Only buses whose name starts so.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the event buses."""
    with open_client(url, token) as client:
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
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show one event bus."""
    with open_client(url, token) as client:
        emit_record(client.describe_bus(name), output)


@buses_app.command("create")
def buses_create(
    name: Annotated[str, typer.Argument(help="The new bus's name.")],
    description: Annotated[str | None, typer.Option(help="What the bus is for.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create an event bus."""
    with open_client(url, token) as client:
        arn = client.create_bus(name, description=description)
    done(output, f"created bus {name} ({arn})", {"Name": name, "Arn": arn})


@buses_app.command("delete")
def buses_delete(
    name: Annotated[str, typer.Argument(help="The bus name.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete an event bus (its rules go with it)."""
    with open_client(url, token) as client:
        client.delete_bus(name)
    done(output, f"deleted bus {name}", {"Name": name, "Deleted": True})


# -- rules ---------------------------------------------------------------------------------
rules_app = typer.Typer(
    name="rules", help="List, show, create and delete rules.", no_args_is_help=True
)


@rules_app.command("list")
def rules_list(
    bus: BusOption = "default",
    prefix: Annotated[str | None, typer.Option(help="Only rules whose name starts so.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the rules of a bus."""
    with open_client(url, token) as client:
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
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show one rule and its targets."""
    with open_client(url, token) as client:
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
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create a rule, or replace the rule of that name (as PutRule does)."""
    text = parse_pattern(pattern)
    with open_client(url, token) as client:
        arn = client.put_rule(name, text, bus=bus, description=description, enabled=not disabled)
    done(output, f"created rule {bus}/{name} ({arn})", {"Name": name, "Arn": arn})


@rules_app.command("enable")
def rules_enable(
    name: Annotated[str, typer.Argument(help="The rule name.")],
    bus: BusOption = "default",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Enable a rule."""
    with open_client(url, token) as client:
        client.enable_rule(name, bus=bus)
    done(output, f"enabled rule {bus}/{name}", {"Name": name, "State": "ENABLED"})


@rules_app.command("disable")
def rules_disable(
    name: Annotated[str, typer.Argument(help="The rule name.")],
    bus: BusOption = "default",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Disable a rule: it keeps its targets but matches nothing."""
    with open_client(url, token) as client:
        client.disable_rule(name, bus=bus)
    done(output, f"disabled rule {bus}/{name}", {"Name": name, "State": "DISABLED"})


@rules_app.command("delete")
def rules_delete(
    name: Annotated[str, typer.Argument(help="The rule name.")],
    *,
    bus: BusOption = "default",
    force: Annotated[
        bool, typer.Option("--force", help="Remove its targets first (else it must have none).")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete a rule."""
    with open_client(url, token) as client:
        client.delete_rule(name, bus=bus, force=force)
    done(output, f"deleted rule {bus}/{name}", {"Name": name, "Deleted": True})


# -- targets -------------------------------------------------------------------------------
targets_app = typer.Typer(
    name="targets",
    help="List, add and remove the targets of a rule; sign a webhook's deliveries.",
    no_args_is_help=True,
)
targets_app.add_typer(secret_app)


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
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List a rule's targets."""
    with open_client(url, token) as client:
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
    http_parameters: Annotated[
        str | None,
        typer.Option(
            help='JSON or @file: {"PathParameterValues": [...], "HeaderParameters": {...}, '
            '"QueryStringParameters": {...}} (webhooks; values may be JSON paths).',
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
    token: TokenOption = None,
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
    if http_parameters is not None:
        parameters = parse_json(http_parameters, what="--http-parameters")
        if not isinstance(parameters, dict):
            fail("--http-parameters must be a JSON object", USAGE)
        target["HttpParameters"] = parameters
    if dlq is not None:
        target["DeadLetterConfig"] = {"Arn": dlq}
    retry: dict[str, int] = {}
    if max_retries is not None:
        retry["MaximumRetryAttempts"] = max_retries
    if max_age is not None:
        retry["MaximumEventAgeInSeconds"] = max_age
    if retry:
        target["RetryPolicy"] = retry
    with open_client(url, token) as client:
        target["Arn"] = arn if arn is not None else client.queue_arn(str(queue))
        client.put_targets(rule, [target], bus=bus)
    done(output, f"added target {bus}/{rule}/{target_id} ({target['Arn']})", target)


@targets_app.command("remove")
def targets_remove(
    rule: Annotated[str, typer.Argument(help="The rule name.")],
    target_id: Annotated[str, typer.Argument(metavar="ID", help="The target's id.")],
    *,
    bus: BusOption = "default",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Remove a target from a rule."""
    with open_client(url, token) as client:
        known = {str(t.get("Id")) for t in client.list_targets(rule, bus=bus)}
        if target_id not in known:
            fail(f"rule {bus}/{rule} has no target {target_id}")
        client.remove_targets(rule, [target_id], bus=bus)
    done(output, f"removed target {bus}/{rule}/{target_id}", {"Id": target_id, "Removed": True})
