"""``eventyard test-pattern``: does an event match an event pattern, decided offline.

The answer is exactly Amazon EventBridge's ``TestEventPattern`` (:mod:`eventyard.patterns`):
``true`` or ``false`` on stdout, exit 0 either way. An invalid pattern is bad input from
the user: ``error: <AWS's message>`` and exit 2, as for an event that is not a JSON object
or an unreadable file.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eventyard.cli.failures import USAGE, fail
from eventyard.cli.output import read_text
from eventyard.errors import InvalidEventPattern, ValidationError
from eventyard.patterns import matches

__all__ = ["test_pattern"]


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
        fail("only one of --pattern and --event can be read from standard input", USAGE)
    pattern_text = read_text(pattern, what="--pattern")
    event_text = read_text(event, what="--event")
    try:
        result = matches(pattern_text, event_text)
    except (InvalidEventPattern, ValidationError) as exc:
        fail(exc.message, USAGE)
    typer.echo("true" if result else "false")
