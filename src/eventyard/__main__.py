"""The ``eventyard`` program: the command line of :mod:`eventyard.cli` plus the server's
commands, ``serve``, ``accounts``, ``keys`` and ``store``.

This is the one module that joins the client side and the server side: the command line
never imports the server, so the server's command is added here. ``serve`` fails like
every other command (:mod:`eventyard.cli.failures`): its
:class:`~eventyard.errors.ConfigurationError` exits 2, its
:class:`~eventyard.errors.StartupError` exits 1, each as one ``error: …`` line.
"""

from __future__ import annotations

import typer

from eventyard.cli.app import app as _client_commands
from eventyard.server.admin_command import accounts_app, keys_app
from eventyard.server.command import serve
from eventyard.server.store_command import store as _store_commands

__all__ = ["app", "main"]

app: typer.Typer = _client_commands
app.command("serve")(serve)
app.add_typer(accounts_app)
app.add_typer(keys_app)

# the store's offline commands: check, recover (server side, like serve)
app.add_typer(_store_commands)


def main() -> None:
    """Run the command line (the ``eventyard`` console script)."""
    app()


if __name__ == "__main__":
    main()
