"""The ``eventyard`` command line (a Typer app).

Commands:

- ``eventyard test-pattern --pattern P --event E``: does event E match pattern P, decided
  exactly as Amazon EventBridge's ``TestEventPattern`` would. P and E are JSON text,
  ``@path`` to read a file, or ``-`` to read standard input. Prints ``true`` or ``false``
  and exits 0; for an invalid pattern prints AWS's error message to standard error and
  exits 2 (as for an event that is not a JSON object, or an unreadable input).

- ``eventyard serve``: run the server (EventBridge and SQS APIs on one endpoint) on the
  embedded SQLite store. Flags win over ``EVENTYARD_*`` environment variables, which win
  over the defaults (:class:`eventyard.config.Settings`).

- ``eventyard worker module:consumer [--concurrency N]``: run a consumer's handlers
  (:func:`eventyard.consumer.run_worker`) until SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from eventyard.config import DEFAULT_PORT, Settings
from eventyard.errors import InvalidEventPattern, ValidationError
from eventyard.patterns import matches

__all__ = ["app", "main", "read_argument"]

app = typer.Typer(
    name="eventyard",
    help="A self-hosted event router that speaks the Amazon EventBridge API.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

USAGE_ERROR = 2


@app.callback()
def _root() -> None:
    """A self-hosted event router that speaks the Amazon EventBridge API."""


def read_argument(value: str, *, what: str) -> str:
    """The text an argument stands for: itself, ``@path``'s contents, or stdin for ``-``.

    Raises:
        typer.BadParameter: the file cannot be read.
    """
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint=what) from None
    return value


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(USAGE_ERROR)


@app.command("test-pattern")
def test_pattern(
    pattern: Annotated[
        str,
        typer.Option("--pattern", "-p", help="The event pattern: JSON, @file, or - for stdin."),
    ],
    event: Annotated[
        str,
        typer.Option("--event", "-e", help="The event: JSON, @file, or - for stdin."),
    ],
) -> None:
    """Test whether an event matches an event pattern, as EventBridge's TestEventPattern."""
    if pattern == "-" and event == "-":
        raise _fail("Only one of --pattern and --event can be read from standard input.")
    pattern_text = read_argument(pattern, what="--pattern")
    event_text = read_argument(event, what="--event")
    try:
        result = matches(pattern_text, event_text)
    except InvalidEventPattern as exc:
        raise _fail(exc.message) from None
    except ValidationError as exc:
        raise _fail(exc.message) from None
    typer.echo("true" if result else "false")


@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on [env EVENTYARD_HOST; 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help=f"TCP port, 0 for any free one [env EVENTYARD_PORT; {DEFAULT_PORT}]"),
    ] = None,
    data_dir: Annotated[
        str | None,
        typer.Option(help="Where the store keeps its files [env EVENTYARD_DATA_DIR; ./.eventyard]"),
    ] = None,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Create a demo bus, rule and queue [env EVENTYARD_DEMO; off]",
        ),
    ] = None,
) -> None:
    """Run the eventyard server until SIGTERM or Ctrl-C."""
    from eventyard.server import serve as run

    try:
        settings = Settings.from_env(host=host, port=port, data_dir=data_dir, demo=demo)
    except ValidationError as exc:
        raise _fail(exc.message) from None
    try:
        run(settings)
    except OSError as exc:
        raise _fail(f"cannot serve on {settings.host}:{settings.port}: {exc.strerror}") from None


@app.command("worker")
def worker(
    spec: Annotated[str, typer.Argument(help="The consumer to run, as module:attribute.")],
    concurrency: Annotated[int, typer.Option(min=1, help="Handlers running at the same time.")] = 8,
    url: Annotated[
        str | None,
        typer.Option(envvar="EVENTYARD_URL", help="The eventyard server [env EVENTYARD_URL]."),
    ] = None,
) -> None:
    """Run a consumer's handlers: create their rules and queues, poll, settle events."""
    from eventyard.consumer import run_worker

    run_worker(spec, concurrency=concurrency, url=url)


def main() -> None:
    """Run the command line (the ``eventyard`` console script)."""
    app()
