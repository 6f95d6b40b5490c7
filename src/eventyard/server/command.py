"""``eventyard serve``: the server's command, joined to the command line by ``__main__``.

The command line (:mod:`eventyard.cli`) never imports the server; the program's entry
point (:mod:`eventyard.__main__`) adds this command to it. Importing this module is
cheap: the server itself is imported only when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eventyard.server.config import DEFAULT_PORT, LOG_FORMATS, LOG_LEVELS, Settings

__all__ = ["serve"]


def serve(
    *,
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
    store: Annotated[
        str | None,
        typer.Option(
            help="nats://host:4222[,host2:4222] runs on that NATS JetStream store, which "
            "several processes share [env EVENTYARD_STORE; SQLite in --data-dir]",
        ),
    ] = None,
    store_replicas: Annotated[
        int | None,
        typer.Option(
            help="Replicas of the JetStream streams: 1, or 3 on a 3-node cluster "
            "[env EVENTYARD_STORE_REPLICAS; 1]",
        ),
    ] = None,
    store_prefix: Annotated[
        str | None,
        typer.Option(
            help="Prefix of the JetStream streams, buckets and subjects "
            "[env EVENTYARD_STORE_PREFIX; eventyard]",
        ),
    ] = None,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Create a demo bus, rule and queue [env EVENTYARD_DEMO; off]",
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            help=f"{', '.join(LOG_LEVELS)}; debug logs each request [env EVENTYARD_LOG_LEVEL; info]"
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            help=f"{', '.join(LOG_FORMATS)}: console on a terminal, else JSON lines "
            "[env EVENTYARD_LOG_FORMAT; auto]"
        ),
    ] = None,
    insecure_no_auth: Annotated[
        bool | None,
        typer.Option(
            "--insecure-no-auth",
            help="Allow a non-loopback --host with no access key: no authentication at all "
            "[env EVENTYARD_INSECURE_NO_AUTH; off]",
        ),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated Host names to answer besides addresses and localhost "
            "(*.example.com, * for any) [env EVENTYARD_ALLOWED_HOSTS]",
        ),
    ] = None,
    master_key_file: Annotated[
        str | None,
        typer.Option(
            help="File of the master key that encrypts secrets, created 0600 if missing "
            "[env EVENTYARD_MASTER_KEY_FILE; master.key beside the database]",
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help="Config file [env EVENTYARD_CONFIG; ./eventyard.toml, else [tool.eventyard] "
            "in ./pyproject.toml]"
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config",
            help="Print the settings as TOML, each with where it came from, and exit",
        ),
    ] = False,
) -> None:
    """Run the eventyard server until SIGTERM or Ctrl-C.

    Settings come from flags, then EVENTYARD_* environment variables, then the config
    file, then defaults (docs/configuration.md lists them all).

    Raises:
        ConfigurationError: a setting cannot work.
        StartupError: the server cannot start.
    """
    from eventyard.server.serve import serve as run

    settings = Settings.load(
        config=config,
        host=host,
        port=port,
        data_dir=data_dir,
        store=store,
        store_replicas=store_replicas,
        store_prefix=store_prefix,
        demo=demo,
        log_level=log_level,
        log_format=log_format,
        insecure_no_auth=insecure_no_auth,
        allowed_hosts=allowed_hosts,
        master_key_file=master_key_file,
    )
    if print_config:
        typer.echo(settings.to_toml(), nl=False)
        return
    run(settings)
