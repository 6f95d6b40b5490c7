"""``eventyard serve``: the server's command, joined to the command line by ``__main__``.

The command line (:mod:`eventyard.cli`) never imports the server; the program's entry
point (:mod:`eventyard.__main__`) adds this command to it. Importing this module is
cheap: the server itself is imported only when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eventyard.errors import ConfigurationError, StartupError, ValidationError
from eventyard.server.config import DEFAULT_PORT, Settings

__all__ = ["serve"]


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
    """Run the eventyard server until SIGTERM or Ctrl-C.

    Raises:
        ConfigurationError: a setting cannot work.
        StartupError: the server cannot start.
    """
    from eventyard.server.serve import serve as run

    try:
        settings = Settings.from_env(host=host, port=port, data_dir=data_dir, demo=demo)
    except ValidationError as exc:
        raise ConfigurationError(exc.message) from None
    try:
        run(settings)
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        raise StartupError(f"cannot serve on {where}: {exc.strerror}") from None
