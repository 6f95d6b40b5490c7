"""``eventyard queues``: manage queues and read their messages without boto3.

``list | show | create | delete`` manage queues; ``send`` sends a message, ``receive``
takes messages off a queue (printed, then deleted), ``peek`` shows messages and leaves
them on the queue, ``purge`` empties a queue, and ``redrive`` moves a dead-letter queue's
messages back to their source queue. Every command goes through
:class:`eventyard.sdk.client.Client`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from eventyard.cli.failures import USAGE, describe, fail
from eventyard.cli.output import (
    Output,
    OutputOption,
    TokenOption,
    UrlOption,
    done,
    emit_json,
    emit_record,
    emit_table,
    open_client,
    read_text,
)
from eventyard.errors import EventyardError
from eventyard.sdk.client import Client, Message

__all__ = ["queues_app"]

# seconds peek and redrive keep the messages they hold hidden: far longer than the few
# requests they need, short enough that a killed command's messages come back soon
_HOLD = 60
# SQS's ReceiveMessage limits
_MAX_BATCH = 10
_MAX_WAIT = 20

queues_app = typer.Typer(
    name="queues",
    help="List, show, create and delete queues; receive, peek, purge and redrive messages.",
    no_args_is_help=True,
)


@queues_app.command("list")
def queues_list(
    prefix: Annotated[str | None, typer.Option(help="Only queues whose name starts so.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the queues."""
    with open_client(url, token) as client:
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
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show a queue: its URL and attributes (message counts, settings, ARN)."""
    with open_client(url, token) as client:
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
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create a queue (an existing queue with the same attributes is kept)."""
    attributes: dict[str, str] = {}
    for item in attribute or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--attribute {item!r}: expected NAME=VALUE", USAGE)
        attributes[key] = value
    with open_client(url, token) as client:
        queue_url = client.create_queue(name, attributes=attributes or None)
    done(output, f"created queue {name} ({queue_url})", {"Name": name, "Url": queue_url})


@queues_app.command("delete")
def queues_delete(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete a queue and its messages."""
    with open_client(url, token) as client:
        client.delete_queue(name)
    done(output, f"deleted queue {name}", {"Name": name, "Deleted": True})


@queues_app.command("purge")
def queues_purge(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete every message of a queue."""
    with open_client(url, token) as client:
        client.purge_queue(name)
    done(output, f"purged queue {name}", {"Name": name, "Purged": True})


# -- messages --------------------------------------------------------------------------------
MaxOption = Annotated[int, typer.Option("--max", min=1, help="At most this many messages.")]


def _record(message: Message) -> dict[str, Any]:
    sent = datetime.fromtimestamp(message.sent, UTC).isoformat(timespec="milliseconds")
    return {
        "MessageId": message.id,
        "Body": message.body,
        "ReceiveCount": message.receive_count,
        "Sent": sent.replace("+00:00", "Z"),
        "Attributes": message.attributes,
    }


def _emit_messages(messages: list[Message], output: Output) -> None:
    if output is Output.json:
        emit_json([_record(m) for m in messages])
    else:
        emit_table(
            ["MessageId", "Receives", "Body"],
            [(m.id, str(m.receive_count), m.body) for m in messages],
        )


def _take(
    client: Client, queue: str, count: int, *, wait: float, visibility: int | None
) -> list[Message]:
    """Receive up to ``count`` messages: wait for the first ones, then take what is there.

    Messages received are hidden (the queue's visibility timeout, or ``visibility``), so
    each further receive gets other messages; a message seen twice is kept once.
    """
    got: dict[str, Message] = {}
    while len(got) < count:
        batch = client.receive_messages(
            queue,
            max_messages=min(_MAX_BATCH, count - len(got)),
            wait=0 if got else wait,
            visibility_timeout=visibility,
        )
        fresh = [m for m in batch if m.id not in got]
        if not fresh:
            break
        got.update((m.id, m) for m in fresh)
    return list(got.values())


@queues_app.command("send")
def queues_send(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    body: Annotated[str, typer.Argument(help="The message body: text, @file, or - for stdin.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Send one message to a queue and print its id."""
    text = read_text(body, what="BODY")
    with open_client(url, token) as client:
        message_id = client.send_message(name, text)
    done(output, f"sent message {message_id} to {name}", {"MessageId": message_id})


@queues_app.command("receive")
def queues_receive(
    *,
    name: Annotated[str, typer.Argument(help="The queue name.")],
    max_messages: MaxOption = 10,
    wait: Annotated[
        float,
        typer.Option(min=0, max=_MAX_WAIT, help="Seconds to wait for a first message (0 to 20)."),
    ] = 2,
    delete: Annotated[
        bool,
        typer.Option(
            "--delete/--no-delete",
            help="Delete the messages once printed (--no-delete: they come back after "
            "the queue's visibility timeout).",
        ),
    ] = True,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Receive messages and print them; then delete them (unless --no-delete).

    Waits up to --wait seconds for a first message, then takes what is there, up to --max.
    The messages are deleted only after they are printed: if the command is killed in
    between, they come back to the queue (at least once, never lost).
    """
    with open_client(url, token) as client:
        messages = _take(client, name, max_messages, wait=wait, visibility=None)
        _emit_messages(messages, output)
        if delete and messages:
            refused = client.delete_messages(name, [m.receipt for m in messages])
            if refused:
                fail(f"{len(refused)} of {len(messages)} messages could not be deleted")


@queues_app.command("peek")
def queues_peek(
    name: Annotated[str, typer.Argument(help="The queue name.")],
    max_messages: MaxOption = 10,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show the messages waiting in a queue and leave them there.

    SQS has no read-only look at a queue, so peek receives the messages (hiding them for
    at most a minute, so that it sees each one once) and at once makes them visible
    again. Each peek counts as a receive: a message's receive count goes up, and on a
    queue with a redrive policy a message received more than maxReceiveCount times moves
    to the dead-letter queue. Messages in flight with a consumer are not shown.
    """
    with open_client(url, token) as client:
        messages = _take(client, name, max_messages, wait=0, visibility=_HOLD)
        try:
            refused = client.change_visibility_batch(name, [m.receipt for m in messages], 0)
        finally:
            _emit_messages(messages, output)
        if refused:
            fail(
                f"{len(refused)} of {len(messages)} messages stay hidden for up to "
                f"{_HOLD} s (their visibility could not be reset)"
            )


@queues_app.command("redrive")
def queues_redrive(
    dlq: Annotated[str, typer.Argument(metavar="DLQ", help="The dead-letter queue.")],
    *,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="The queue to move the messages to (default: the one queue whose "
            "redrive policy names DLQ).",
        ),
    ] = None,
    max_messages: Annotated[
        int | None,
        typer.Option("--max", min=1, help="Move at most this many (default: all)."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Move the messages of a dead-letter queue back to their source queue.

    Moves the messages that are in DLQ when it starts (not those that arrive while it
    runs), ten at a time: receive, send to the source queue, then delete from DLQ. A
    message is deleted only after it was sent, so a failure never loses one but may
    leave a message in both queues (at least once). Bodies and string message
    attributes are kept; the message gets a new id.
    """
    with open_client(url, token) as client:
        target = to if to is not None else _source_queue(client, dlq)
        if target == dlq:
            fail("a queue cannot be redriven to itself", USAGE)
        client.get_queue_url(target)  # a missing source queue fails before anything moves
        waiting = int(client.get_queue_attributes(dlq).get("ApproximateNumberOfMessages", 0))
        limit = waiting if max_messages is None else min(max_messages, waiting)
        moved = 0
        try:
            while moved < limit:
                batch = client.receive_messages(
                    dlq,
                    max_messages=min(_MAX_BATCH, limit - moved),
                    wait=0,
                    visibility_timeout=_HOLD,
                )
                if not batch:
                    break
                for message in batch:
                    client.send_message(target, message.body, attributes=message.attributes)
                refused = client.delete_messages(dlq, [m.receipt for m in batch])
                moved += len(batch)
                if refused:
                    fail(
                        f"{len(refused)} messages were sent to {target} but not deleted from "
                        f"{dlq}: they are in both queues ({moved} moved)"
                    )
        except EventyardError as exc:
            fail(
                f"{describe(exc)[0]} ({moved} messages moved from {dlq} to {target} before the "
                "failure; the batch in progress may now be in both queues)"
            )
    done(
        output,
        f"moved {moved} message{'' if moved == 1 else 's'} from {dlq} to {target}",
        {"From": dlq, "To": target, "Moved": moved},
    )


def _source_queue(client: Client, dlq: str) -> str:
    sources = client.dead_letter_sources(dlq)
    if len(sources) == 1:
        return sources[0]
    if not sources:
        fail(f"no queue has {dlq} as its dead-letter queue: give --to QUEUE", USAGE)
    fail(
        f"{len(sources)} queues have {dlq} as their dead-letter queue "
        f"({', '.join(sorted(sources))}): give --to QUEUE",
        USAGE,
    )
