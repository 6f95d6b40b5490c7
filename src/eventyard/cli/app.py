"""The ``eventyard`` command line: the root app and where each command is registered.

Each command lives in the module of its group:

- ``test-pattern`` (:mod:`eventyard.cli.patterns`): does an event match a pattern, offline;
- ``worker`` (:mod:`eventyard.cli.worker`): run a consumer's handlers;
- ``put``, ``tail`` (:mod:`eventyard.cli.events`): publish events, watch a bus;
- ``events search``, ``trace`` (:mod:`eventyard.cli.audit`): find stored events, follow
  one through rules, targets and queues;
- ``apply`` (:mod:`eventyard.cli.apply`): make the server's resources what a file says;
- ``buses``, ``rules``, ``targets`` (:mod:`eventyard.cli.resources`) and ``queues``
  (:mod:`eventyard.cli.queues`): the server's resources and queues' messages;
- ``archives``, ``replays``, ``replay`` (:mod:`eventyard.cli.archives`): keep a bus's
  events and send them again.

``serve`` is the server's and is added by :mod:`eventyard.__main__`. Every command fails
the one way :mod:`eventyard.cli.failures` describes (its :class:`~eventyard.cli.failures.Program`
is the root command's class, so ``serve`` fails that way too).
"""

from __future__ import annotations

from typing import Annotated

import typer

from eventyard._version import __version__
from eventyard.cli import apply as apply_command
from eventyard.cli.archives import archives_app, replay, replays_app
from eventyard.cli.audit import events_app, trace
from eventyard.cli.events import put, tail
from eventyard.cli.failures import Program
from eventyard.cli.patterns import test_pattern
from eventyard.cli.queues import queues_app
from eventyard.cli.resources import buses_app, rules_app, targets_app
from eventyard.cli.worker import worker

__all__ = ["app"]

app = typer.Typer(
    name="eventyard",
    cls=Program,
    help="A self-hosted event router that speaks the Amazon EventBridge API.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"eventyard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """A self-hosted event router that speaks the Amazon EventBridge API."""


app.command("put")(put)
app.command("tail")(tail)
app.command("trace")(trace)
app.command("test-pattern")(test_pattern)
app.command("worker")(worker)
app.command("apply", help=apply_command.HELP)(apply_command.apply_command)
app.add_typer(buses_app)
app.add_typer(rules_app)
app.add_typer(targets_app)
app.add_typer(queues_app)
app.add_typer(archives_app)
app.add_typer(replays_app)
app.command("replay")(replay)
app.add_typer(events_app)
