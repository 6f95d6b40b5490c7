"""``eventyard archives ...`` and ``eventyard replay``: keep a bus's events, send them again.

- ``archives list | show | create | delete``: the archives (EventBridge's), through
  :class:`eventyard.sdk.client.Client`; ``replays list | show | cancel``: the replays;
- ``replay --archive A --from T --to T [--rules r1,r2] [--name N]`` starts a replay of
  the archive's events of ``[T, T)`` (event time) to its bus and shows its progress until
  it ends: exit 0 when ``COMPLETED``, 1 when ``FAILED`` or ``CANCELLED``. Ctrl-C offers
  to cancel it (or leaves it running); ``--no-wait`` only starts it.

Times are ISO 8601 (``2026-12-03T09:00:00Z``; no zone means UTC), epoch seconds, ``now``,
or a duration ago (``90m``, ``2h``, ``7d``).
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from eventyard.cli.failures import FAILURE, USAGE, fail
from eventyard.cli.output import (
    BusOption,
    Output,
    OutputOption,
    TokenOption,
    UrlOption,
    console,
    done,
    emit_json,
    emit_record,
    emit_table,
    open_client,
    parse_pattern,
)
from eventyard.sdk.archives import Archive, Replay
from eventyard.sdk.client import Client

__all__ = ["archives_app", "parse_when", "replay", "replays_app"]

_AGO = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(value: str, *, now: float | None = None) -> float:
    """A time argument as epoch seconds: ISO 8601 (UTC when no zone is given), epoch
    seconds, ``now``, or a duration ago (``90m``, ``2h``, ``7d``).

    Raises:
        ValueError: none of these.
    """
    text = value.strip()
    moment = time.time() if now is None else now
    if text.lower() == "now":
        return moment
    ago = _AGO.fullmatch(text.lower())
    if ago is not None:
        return moment - float(ago[1]) * _UNITS[ago[2]]
    try:
        return float(text)
    except ValueError:
        pass
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _when(value: str, option: str) -> float:
    try:
        return parse_when(value)
    except ValueError:
        fail(
            f"{option}: {value!r} is not a time (ISO 8601, epoch seconds, now, or a "
            "duration ago such as 90m or 2d)",
            USAGE,
        )


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _archive_record(archive: Archive) -> dict[str, object]:
    return {
        "ArchiveName": archive.name,
        "ArchiveArn": archive.arn or None,
        "EventSourceArn": archive.bus_arn,
        "State": archive.state,
        "EventPattern": archive.pattern,
        "RetentionDays": archive.retention_days,
        "EventCount": archive.event_count,
        "SizeBytes": archive.size_bytes,
        "CreationTime": _iso(archive.created),
        "Description": archive.description,
    }


def _replay_record(replay: Replay) -> dict[str, object]:
    return {
        "ReplayName": replay.name,
        "State": replay.state,
        "StateReason": replay.reason,
        "EventSourceArn": replay.archive_arn,
        "EventStartTime": _iso(replay.start),
        "EventEndTime": _iso(replay.end),
        "EventLastReplayedTime": _iso(replay.last_replayed),
        "ReplayStartTime": _iso(replay.started),
        "ReplayEndTime": _iso(replay.ended),
        "FilterArns": list(replay.rules) or None,
    }


def _bus_name(archive: Archive) -> str:
    return archive.bus_arn.rpartition("/")[2]


def _without_empty(record: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in record.items() if v is not None}


# -- archives ------------------------------------------------------------------------------
archives_app = typer.Typer(
    name="archives",
    help="List, show, create and delete archives (a bus's events, kept for replays).",
    no_args_is_help=True,
)


@archives_app.command("list")
def archives_list(
    prefix: Annotated[str | None, typer.Option(help="Only archives whose name starts so.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the archives."""
    with open_client(url, token) as client:
        archives = client.list_archives(prefix)
    if output is Output.json:
        emit_json([_without_empty(_archive_record(a)) for a in archives])
    else:
        emit_table(
            ["Name", "Bus", "Events", "Bytes", "Retention days"],
            [
                (a.name, _bus_name(a), a.event_count, a.size_bytes, a.retention_days)
                for a in archives
            ],
        )


@archives_app.command("show")
def archives_show(
    name: Annotated[str, typer.Argument(help="The archive name.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show one archive, with its event count and size."""
    with open_client(url, token) as client:
        archive = client.describe_archive(name)
    emit_record(_without_empty(_archive_record(archive)), output)


@archives_app.command("create")
def archives_create(
    name: Annotated[str, typer.Argument(help="The new archive's name.")],
    *,
    bus: BusOption = "default",
    pattern: Annotated[
        str | None,
        typer.Option(help="Keep only the events this pattern matches (JSON, @file or -)."),
    ] = None,
    retention_days: Annotated[
        int, typer.Option("--retention-days", min=0, help="Days to keep events; 0: forever.")
    ] = 0,
    description: Annotated[str | None, typer.Option(help="What the archive is for.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create an archive of a bus's events (every event, or those a pattern matches)."""
    text = parse_pattern(pattern) if pattern is not None else None
    with open_client(url, token) as client:
        arn = client.create_archive(
            name, bus=bus, pattern=text, retention_days=retention_days, description=description
        )
    done(output, f"created archive {name} ({arn})", {"ArchiveName": name, "ArchiveArn": arn})


@archives_app.command("delete")
def archives_delete(
    name: Annotated[str, typer.Argument(help="The archive name.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete an archive and the events it kept."""
    with open_client(url, token) as client:
        client.delete_archive(name)
    done(output, f"deleted archive {name}", {"ArchiveName": name, "Deleted": True})


# -- replays ------------------------------------------------------------------------------
replays_app = typer.Typer(
    name="replays", help="List, show and cancel replays.", no_args_is_help=True
)


@replays_app.command("list")
def replays_list(
    prefix: Annotated[str | None, typer.Option(help="Only replays whose name starts so.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the replays, with their state and progress."""
    with open_client(url, token) as client:
        replays = client.list_replays(prefix)
    if output is Output.json:
        emit_json([_without_empty(_replay_record(r)) for r in replays])
    else:
        emit_table(
            ["Name", "State", "Progress", "Archive"],
            [
                (r.name, r.state, f"{r.progress:.0%}", r.archive_arn.rpartition("/")[2])
                for r in replays
            ],
        )


@replays_app.command("show")
def replays_show(
    name: Annotated[str, typer.Argument(help="The replay name.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Show one replay: its window, state and progress."""
    with open_client(url, token) as client:
        found = client.describe_replay(name)
    emit_record(_without_empty(_replay_record(found)), output)


@replays_app.command("cancel")
def replays_cancel(
    name: Annotated[str, typer.Argument(help="The replay name.")],
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Cancel a replay (it ends CANCELLED once it stops)."""
    with open_client(url, token) as client:
        state = client.cancel_replay(name)
    done(output, f"replay {name} {state}", {"ReplayName": name, "State": state})


def replay(
    *,
    archive: Annotated[str, typer.Option("--archive", "-a", help="The archive to replay.")],
    start: Annotated[
        str, typer.Option("--from", help="Window start (event time): ISO 8601, epoch, 2h…")
    ],
    end: Annotated[str, typer.Option("--to", help="Window end, exclusive (default now).")] = "now",
    rules: Annotated[
        str | None,
        typer.Option(help="Only these rules of the bus, comma-separated (default: all)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The replay's name (default: archive name + suffix).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Show progress until the replay ends.")
    ] = True,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between two progress checks.")
    ] = 0.5,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Replay an archive's events of a time window to its bus, with a progress bar.

    Replayed events carry ``replay-name``; rules with ``{"replay-name": [{"exists":
    false}]}`` ignore them. Ctrl-C offers to cancel the replay.
    """
    window = (_when(start, "--from"), _when(end, "--to"))
    only = [r.strip() for r in rules.split(",") if r.strip()] if rules else None
    replay_name = name or f"{archive[:48]}-{uuid.uuid4().hex[:8]}"
    with open_client(url, token) as client:
        started = client.start_replay(
            replay_name, archive=archive, start=window[0], end=window[1], rules=only
        )
        if not wait:
            if output is Output.json:
                emit_json(_without_empty(_replay_record(started)))
            else:
                typer.echo(f"started replay {replay_name} ({started.state})")
            return
        final = _follow(client, started, interval)
    if output is Output.json:
        emit_json(_without_empty(_replay_record(final)))
    else:
        reason = f": {final.reason}" if final.reason else ""
        typer.echo(f"replay {final.name} {final.state}{reason}")
    if final.state != "COMPLETED":
        raise typer.Exit(FAILURE)


def _follow(client: Client, replay: Replay, interval: float) -> Replay:
    """Show ``replay``'s progress until it ends; Ctrl-C offers to cancel it."""
    span = max(replay.end - replay.start, 1e-9)
    bar = Progress(
        TextColumn(f"replay {replay.name}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[state]}"),
        TextColumn("{task.fields[at]}"),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=False,
    )
    task = bar.add_task("replay", total=span, completed=0, state=replay.state, at="")
    cancelled = False
    with bar:
        while True:
            try:
                while not replay.done:
                    time.sleep(interval)
                    replay = client.describe_replay(replay.name)
                    bar.update(
                        task,
                        completed=replay.progress * span,
                        state=replay.state,
                        at=_iso(replay.last_replayed) or "",
                    )
                return replay
            except KeyboardInterrupt:
                if cancelled or not _ask_cancel(bar, replay.name):
                    bar.stop()
                    typer.echo(
                        f"replay {replay.name} goes on ({replay.state}); "
                        f"'eventyard replays show {replay.name}' tells how it ends",
                        err=True,
                    )
                    raise typer.Exit(130) from None
                client.cancel_replay(replay.name)
                cancelled = True


def _ask_cancel(bar: Progress, name: str) -> bool:
    """Whether the user wants the replay cancelled (never asked without a terminal)."""
    if not sys.stdin.isatty():
        return False
    bar.stop()
    try:
        answer: bool = typer.confirm(f"cancel replay {name}?", default=True, err=True)
    except (KeyboardInterrupt, typer.Abort):
        return False
    bar.start()
    return answer
