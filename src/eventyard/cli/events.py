"""``eventyard put`` and ``eventyard tail``: publish events and watch a bus.

``put`` publishes events given by flags, a JSON file, or JSON lines on stdin (sent in
batches as they are read; a progress bar on stderr past 100 events) and prints their ids.
``tail`` prints a bus's events as they are accepted, from the server's Server-Sent Events
endpoint (``GET /v1/buses/{bus}/tail``).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, TextIO
from urllib.parse import quote

import httpx
import orjson
import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from eventyard.cli.failures import USAGE, fail
from eventyard.cli.output import (
    Output,
    OutputOption,
    TokenOption,
    UrlOption,
    console,
    emit_json,
    emit_table,
    open_client,
    parse_json,
    parse_pattern,
    read_text,
)
from eventyard.errors import ConfigurationError, PutEventsFailed
from eventyard.sdk.client import DEFAULT_URL, Client, PutEventsResult

__all__ = ["put", "tail"]

# -- put -------------------------------------------------------------------------------------
# entries per put_events call: one PutEvents request, so a request with a rejected entry
# leaves at most 10 ids unknown (PutEventsFailed does not carry the accepted ones)
_CHUNK = 10
# lines read ahead of the sending (bounded: stdin is never all in memory)
_READ_AHEAD = 1000
# past this many events, put shows a progress bar
_PROGRESS_AFTER = 100
_PASCAL_KEYS = frozenset(
    {"Source", "DetailType", "Detail", "Resources", "Time", "EventBusName", "TraceHeader"}
)
_EVENT_KEYS = frozenset({"source", "detail-type", "detail", "resources", "time", "bus"})
# envelope fields the server sets itself: accepted (so `tail -o json | put` works), unused
_ENVELOPE_KEYS = frozenset({"version", "id", "account", "region"})


def _entry(value: Any, where: str, bus: str | None) -> dict[str, Any]:
    """The PutEvents entry for one input object (PutEvents keys or event-style keys).

    Raises:
        ConfigurationError: the object is not an event.
    """
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where}: expected a JSON object, got {type(value).__name__}")
    if _PASCAL_KEYS & value.keys():
        unknown = sorted(set(value) - _PASCAL_KEYS)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown PutEvents entry key(s): {', '.join(unknown)}"
            )
        entry = dict(value)
        if isinstance(entry.get("Detail"), dict):
            entry["Detail"] = orjson.dumps(entry["Detail"]).decode()
    else:
        unknown = sorted(set(value) - _EVENT_KEYS - _ENVELOPE_KEYS)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {', '.join(unknown)} (an event has source, "
                "detail-type, detail, resources, time, bus)"
            )
        entry = {"Source": value.get("source"), "DetailType": value.get("detail-type")}
        detail = value.get("detail", {})
        entry["Detail"] = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
        for key, name in (("resources", "Resources"), ("time", "Time"), ("bus", "EventBusName")):
            if value.get(key) is not None:
                entry[name] = value[key]
    if bus is not None:
        entry.setdefault("EventBusName", bus)
    return entry


def _file_entries(path: str, bus: str | None) -> list[dict[str, Any]]:
    """The entries of a file: one JSON object, a JSON list of them, or JSON lines."""
    text = read_text("@" + path, what="--file")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return [
            _entry(_json_line(line, f"{path} line {number}"), f"{path} line {number}", bus)
            for number, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    items = data if isinstance(data, list) else [data]
    return [_entry(item, f"{path} entry {i}", bus) for i, item in enumerate(items)]


def _json_line(line: str, where: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"{where}: not valid JSON: {exc}") from None


def _line_chunks(stream: TextIO, bus: str | None) -> Iterator[list[dict[str, Any]]]:
    """Entries from JSON lines, in chunks as they arrive, never all in memory.

    A thread reads the lines into a bounded queue; each chunk is what is ready (at most
    ``_CHUNK``), so a fast pipe is sent in full chunks and a slow producer's events go
    out as soon as they come.
    """
    lines: queue.Queue[tuple[int, str] | BaseException | None] = queue.Queue(_READ_AHEAD)
    stop = threading.Event()

    def offer(item: tuple[int, str] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                lines.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for number, line in enumerate(stream, 1):
                if not offer((number, line)):
                    return
        except (OSError, ValueError) as exc:  # ValueError: undecodable bytes
            offer(exc)
        offer(None)

    reader = threading.Thread(target=read, name="eventyard-put-stdin", daemon=True)
    reader.start()
    try:
        finished = False
        while not finished:
            item = lines.get()
            chunk: list[dict[str, Any]] = []
            while True:
                if item is None:
                    finished = True
                    break
                try:
                    if isinstance(item, BaseException):
                        raise ConfigurationError(f"cannot read standard input: {item}")
                    number, line = item
                    if line.strip():
                        where = f"stdin line {number}"
                        chunk.append(_entry(_json_line(line, where), where, bus))
                except ConfigurationError:
                    if chunk:  # the lines before the bad one still go out
                        yield chunk
                    raise
                if len(chunk) >= _CHUNK:
                    break
                try:
                    item = lines.get_nowait()
                except queue.Empty:
                    break
            if chunk:
                yield chunk
    finally:
        stop.set()
        reader.join(timeout=1)


class _RateColumn(ProgressColumn):
    """Average events per second since the start."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f} events/s")


class _Progress:
    """A progress bar on stderr that appears once more than ``_PROGRESS_AFTER`` are sent."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and (total is None or total > _PROGRESS_AFTER)
        self.sent = 0
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def advance(self, count: int) -> None:
        self.sent += count
        if not self.enabled:
            return
        if self._bar is None and self.sent > _PROGRESS_AFTER:
            self._bar = Progress(
                TextColumn("put"),
                BarColumn(),
                TextColumn("{task.completed:,} events"),
                _RateColumn(),
                TimeElapsedColumn(),
                console=console(stderr=True),
            )
            self._task = self._bar.add_task("put", total=self.total, completed=0)
            self._bar.start()
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.sent)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _send(
    client: Client,
    chunks: Iterable[list[dict[str, Any]]],
    progress: _Progress,
    put: list[PutEventsResult] | None = None,
) -> tuple[list[str | None], list[tuple[int, str, str]], str | None]:
    """Put every chunk until the input ends or is not valid.

    Returns:
        The ids (None for the entries of a request that had rejected ones: the failure
        does not say which were accepted), the rejections by index in the whole input, and
        what was wrong with the input if it stopped early.
    """
    ids: list[str | None] = []
    failures: list[tuple[int, str, str]] = []
    feed = iter(chunks)
    while True:
        try:
            chunk = next(feed, None)
        except ConfigurationError as exc:
            return ids, failures, str(exc)
        if chunk is None:
            return ids, failures, None
        try:
            result = client.put_events_with_matches(chunk)
            ids.extend(result.event_ids)
            if put is not None:
                put.append(result)
        except PutEventsFailed as exc:
            failures.extend(
                (len(ids) + index, code, message) for index, code, message in exc.failures
            )
            # the failure does not carry the ids of the entries accepted beside it
            ids.extend(None for _ in range(len(chunk)))
        progress.advance(len(chunk))


def put(
    *,
    stdin: Annotated[
        str | None, typer.Argument(metavar="[-]", help="Give - to read JSON lines from stdin.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="The event's source.")] = None,
    detail_type: Annotated[str | None, typer.Option(help="The event's detail-type.")] = None,
    detail: Annotated[str, typer.Option(help="The event's detail: a JSON object or @file.")] = "{}",
    resources: Annotated[
        str | None, typer.Option(help="Comma-separated resource ARNs of the event.")
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option("--bus", "-b", help="The bus for events that name none [default]."),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "-f", help="JSON file: an event, a list of events, or JSON lines; - stdin."
        ),
    ] = None,
    show_progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar past 100 events.")
    ] = True,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Publish events and print their ids.

    One event from flags (--source, --detail-type, --detail), events from a JSON file
    (--file), or JSON lines from stdin (`-`, or no flags with stdin piped). An input
    object has PutEvents keys (Source, DetailType, Detail, Resources, Time,
    EventBusName) or event keys (source, detail-type, detail, resources, time, bus), so
    the output of `eventyard tail --output json` can be put again.
    """
    flags = source is not None or detail_type is not None
    if stdin not in (None, "-"):
        fail(f"unexpected argument {stdin!r} (use --file to read a file)", USAGE)
    if sum((flags, file is not None, stdin == "-")) > 1:
        fail("give events by flags, by --file, or on stdin, not several at once", USAGE)
    try:
        chunks, total = _input(
            source=source,
            detail_type=detail_type,
            detail=detail,
            resources=resources,
            bus=bus,
            file=file,
            stdin=stdin,
        )
    except ConfigurationError as exc:
        fail(str(exc), USAGE)
    progress = _Progress(total, show_progress)
    put: list[PutEventsResult] = []
    with open_client(url, token) as client:
        try:
            ids, failures, problem = _send(client, chunks, progress, put)
        finally:
            progress.close()
    if output is Output.json:
        emit_json(ids)
    else:
        emit_table(["#", "EventId"], [(i, event_id) for i, event_id in enumerate(ids) if event_id])
    if problem is None and not failures:
        for line in _matched_lines(put):
            typer.echo(line, err=True)
    if problem is not None:
        fail(f"{problem} (the {len(ids)} events before it were sent)", USAGE)
    if failures:
        fail(str(PutEventsFailed(failures)))


def _matched_lines(results: list[PutEventsResult]) -> list[str]:
    """One line per bus: how many rules its events matched (an unmatched event went nowhere)."""
    merged = PutEventsResult(
        [i for r in results for i in r.event_ids],
        [b for r in results for b in r.buses],
        [m for r in results for m in r.matched_rules],
    )
    lines = []
    for bus in merged.by_bus():
        if bus.events in (1, bus.unmatched):
            rules = f"{bus.rule_matches} rule{'' if bus.rule_matches == 1 else 's'}"
            count = f" ({bus.events} events)" if bus.events > 1 else ""
            lines.append(f"{rules} matched on bus {bus.bus}{count}")
        else:
            unmatched = f", {bus.unmatched} matched no rule" if bus.unmatched else ""
            lines.append(
                f"{bus.events} events on bus {bus.bus}: {bus.rule_matches} rule matches{unmatched}"
            )
    return lines


def _input(
    *,
    source: str | None,
    detail_type: str | None,
    detail: str,
    resources: str | None,
    bus: str | None,
    file: str | None,
    stdin: str | None,
) -> tuple[Iterable[list[dict[str, Any]]], int | None]:
    """The chunks of entries to put and how many there are (None: unknown yet)."""
    if source is not None or detail_type is not None:
        if source is None or detail_type is None:
            fail("--source and --detail-type go together", USAGE)
        value = parse_json(detail, what="--detail")
        if not isinstance(value, dict):
            fail("--detail must be a JSON object", USAGE)
        event: dict[str, Any] = {"source": source, "detail-type": detail_type, "detail": value}
        if resources:
            event["resources"] = [r.strip() for r in resources.split(",") if r.strip()]
        return [[_entry(event, "the flags", bus)]], 1
    if file is not None and file != "-":
        entries = _file_entries(file, bus)
        return (entries[i : i + _CHUNK] for i in range(0, len(entries), _CHUNK)), len(entries)
    if file == "-" or stdin == "-" or not sys.stdin.isatty():
        return _line_chunks(sys.stdin, bus), None
    raise ConfigurationError(
        "nothing to put: give --source and --detail-type, --file, or JSON lines on stdin"
    )


# -- tail ------------------------------------------------------------------------------------
_TAIL_READ_TIMEOUT = 60.0  # the server sends a keepalive every 15 s


def _sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of each Server-Sent Event; comments are skipped."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


def _tail_line(data: str, output: Output) -> str:
    if output is Output.json:
        return data
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    fields = ("time", "source", "detail-type", "id")
    return "  ".join(str(event.get(f, "")) for f in fields)


def _auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _tail_error(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.read())
        return f"{body['__type']}: {body['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {response.status_code} from {response.url}"


def tail(
    *,
    bus: Annotated[str, typer.Option("--bus", "-b", help="The bus to watch.")] = "default",
    pattern: Annotated[
        str | None,
        typer.Option("--pattern", "-p", help="Only events matching this pattern: JSON or @file."),
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many events.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Print a bus's events as they arrive, until Ctrl-C.

    table prints `time source detail-type id` per event; json prints each event's
    envelope as one line of JSON.
    """
    base = (url or DEFAULT_URL).rstrip("/")
    params = {}
    if pattern is not None:
        params["pattern"] = parse_pattern(pattern)
    timeout = httpx.Timeout(10.0, read=_TAIL_READ_TIMEOUT)
    seen = 0
    try:
        with (
            httpx.Client(timeout=timeout, headers=_auth_headers(token)) as http,
            http.stream(
                "GET", f"{base}/v1/buses/{quote(bus, safe='')}/tail", params=params
            ) as response,
        ):
            if response.status_code != 200:
                fail(_tail_error(response))
            typer.echo(f"tailing bus {bus} at {base} (Ctrl-C to stop)", err=True)
            for name, data in _sse(response.iter_lines()):
                if name == "dropped":
                    dropped = orjson.loads(data).get("count", "?")
                    typer.echo(f"warning: {dropped} events dropped (reading too slowly)", err=True)
                elif name == "event":
                    sys.stdout.write(_tail_line(data, output) + "\n")
                    sys.stdout.flush()
                    seen += 1
                    if count is not None and seen >= count:
                        return
        fail("the server ended the stream")
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:
        raise typer.Exit(0) from None
    except httpx.ConnectError as exc:
        fail(f"cannot reach eventyard at {base}: {exc}")
    except httpx.ReadTimeout:
        fail(f"no data from eventyard at {base} for {_TAIL_READ_TIMEOUT:g} s")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        fail(f"tail of bus {bus} at {base} failed: {exc}")
