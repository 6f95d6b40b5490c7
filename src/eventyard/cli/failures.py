"""The one way every ``eventyard`` command fails.

A failure prints ONE line on standard error, ``error: <what went wrong>``, and exits:

- **2** for a usage error: a bad flag or argument (Click's usage errors), an input file
  or argument that cannot be read or is not valid (:class:`~eventyard.errors.ConfigurationError`);
- **1** for everything else: the server refused (``error: <AWS code>: <message>``), could
  not be reached, a server that cannot start (:class:`~eventyard.errors.StartupError`).

Commands either call :func:`fail` or raise an :class:`~eventyard.errors.EventyardError`;
:class:`Program`, the root command's class, turns what they raise (and Click's own usage
errors) into the same line, so no command has its own convention and no traceback is shown
for an error eventyard raises on purpose. A pattern that does not match is an answer, not
an error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from eventyard.errors import ConfigurationError, EventyardError, ServiceError

__all__ = ["FAILURE", "USAGE", "Program", "describe", "fail", "say_error"]

FAILURE = 1
USAGE = 2


def say_error(message: str) -> None:
    """Print ``error: <message>`` on stderr, folded onto one line."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)


def fail(message: str, code: int = FAILURE) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    say_error(message)
    raise typer.Exit(code)


def describe(exc: EventyardError) -> tuple[str, int]:
    """The one-line message and exit status of an eventyard error."""
    if isinstance(exc, ConfigurationError):
        return str(exc), USAGE
    if isinstance(exc, ServiceError):
        return f"{exc.code}: {exc.message}", FAILURE
    return str(exc), FAILURE


def _usage_message(exc: ClickException) -> str:
    """Click's message, with where to get help: ``… (see 'eventyard put --help')``."""
    message = str(exc.format_message()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        message += f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    return message


class Program(TyperGroup):
    """The root command: runs a command and reports every failure the same way."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, exit with the status of the convention."""
        code: int
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            # non-standalone Click answers an explicit exit with its status
            code = result if isinstance(result, int) else 0
        except NoArgsIsHelpError:
            code = USAGE  # the help is already printed: it is the message
        except ClickException as exc:
            say_error(_usage_message(exc))
            code = exc.exit_code
        except typer.Abort:
            say_error("aborted")
            code = FAILURE
        except EventyardError as exc:
            message, code = describe(exc)
            say_error(message)
        if not standalone_mode:
            return code
        sys.exit(code)
