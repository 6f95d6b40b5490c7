"""The ``eventyard`` program: the command line of :mod:`eventyard.cli` plus ``serve``.

This is the one module that joins the client side and the server side: the command line
never imports the server, so the server's command is added here.
"""

from __future__ import annotations

import typer

from eventyard.cli.app import app as _client_commands
from eventyard.errors import ConfigurationError, EventyardError
from eventyard.server.command import serve

__all__ = ["app", "main"]

app: typer.Typer = _client_commands
app.command("serve")(serve)


def main() -> None:
    """Run the command line (the ``eventyard`` console script)."""
    try:
        app()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except EventyardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
