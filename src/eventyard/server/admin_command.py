"""``eventyard accounts …`` and ``eventyard keys …``: the server side's admin commands.

They act on a data directory (``--data-dir``, the settings of ``serve``), through the
running server's admin socket when a server runs on it, else on the store directly
(:mod:`eventyard.server.admin`), so they work the same either way. Only the data
directory's owner can use them. ``keys create`` prints the secret access key and the
bearer token: the only time they are shown.

Failures follow the command line's one convention (:mod:`eventyard.cli.failures`, which
the server side does not import): ``error: …`` on stderr, exit 2 for a usage error or a
setting that cannot work, 1 otherwise.
"""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import orjson
import typer

from eventyard.server.config import Settings

__all__ = ["accounts_app", "keys_app"]


class Output(enum.StrEnum):
    """How a command prints its data."""

    table = "table"
    json = "json"


DataDirOption = Annotated[
    str | None,
    typer.Option(help="The server's data directory [env EVENTYARD_DATA_DIR; ./.eventyard]"),
]
ConfigOption = Annotated[
    str | None,
    typer.Option(help="Config file, as for serve [env EVENTYARD_CONFIG; ./eventyard.toml]"),
]
OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]

accounts_app = typer.Typer(
    name="accounts",
    help="Accounts of a data directory (server side: run where the data lives).",
    no_args_is_help=True,
)
keys_app = typer.Typer(
    name="keys",
    help="Access keys of accounts (server side: run where the data lives).",
    no_args_is_help=True,
)


def _run(op: str, args: Mapping[str, Any], data_dir: str | None, config: str | None) -> Any:
    from eventyard.server.admin import run_admin

    settings = Settings.load(config=config, data_dir=data_dir)
    return run_admin(settings, op, {k: v for k, v in args.items() if v is not None})


def _when(epoch: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(epoch)))


def _emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _emit_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        line = "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo(line.rstrip())


# -- accounts ------------------------------------------------------------------------------


@accounts_app.command("create")
def create_account(
    *,
    account_id: Annotated[
        str | None, typer.Option("--id", help="12 digits; random when not given.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for people.")] = None,
    org_id: Annotated[
        str | None, typer.Option(help="Organization id (o-…) for aws:PrincipalOrgID.")
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create an account. Its access keys come from `eventyard keys create`."""
    args = {"account_id": account_id, "name": name, "org_id": org_id}
    account = _run("create_account", args, data_dir, config)
    if output is Output.json:
        _emit_json(account)
    else:
        typer.echo(f"created account {account['AccountId']}")


@accounts_app.command("list")
def list_accounts(
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List the accounts."""
    accounts = _run("list_accounts", {}, data_dir, config)
    if output is Output.json:
        _emit_json(accounts)
        return
    _emit_table(
        ["AccountId", "Name", "OrgId", "Created"],
        [[a["AccountId"], a["Name"], a["OrgId"] or "", _when(a["CreationTime"])] for a in accounts],
    )


@accounts_app.command("delete")
def delete_account(
    account_id: Annotated[str, typer.Argument(help="The account's 12-digit id.")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete an account and all its access keys (its resources stay)."""
    result = _run("delete_account", {"account_id": account_id}, data_dir, config)
    if output is Output.json:
        _emit_json(result)
    else:
        typer.echo(f"deleted account {account_id} and its keys")


# -- keys ----------------------------------------------------------------------------------


@keys_app.command("create")
def create_key(
    account: Annotated[str, typer.Option("--account", help="The account's 12-digit id.")],
    description: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create an access key; prints its secret and bearer token, this one time only."""
    key = _run("create_key", {"account_id": account, "description": description}, data_dir, config)
    if output is Output.json:
        _emit_json(key)
    else:
        _emit_table(
            ["Field", "Value"],
            [
                ["AccountId", key["AccountId"]],
                ["AccessKeyId", key["AccessKeyId"]],
                ["SecretAccessKey", key["SecretAccessKey"]],
                ["BearerToken", key["BearerToken"]],
            ],
        )
    typer.echo(
        "Keep the secret access key and the bearer token now: they cannot be shown again.",
        err=True,
    )


@keys_app.command("list")
def list_keys(
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account's keys.")
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List access keys (never their secrets)."""
    keys = _run("list_keys", {"account_id": account}, data_dir, config)
    if output is Output.json:
        _emit_json(keys)
        return
    _emit_table(
        ["AccessKeyId", "AccountId", "Description", "Created"],
        [
            [k["AccessKeyId"], k["AccountId"], k["Description"], _when(k["CreationTime"])]
            for k in keys
        ],
    )


@keys_app.command("delete")
def delete_key(
    access_key_id: Annotated[str, typer.Argument(help="The access key id (AKIA…).")],
    account: Annotated[
        str | None, typer.Option("--account", help="Refuse unless the key is this account's.")
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Delete an access key; it stops working at once."""
    result = _run(
        "delete_key", {"access_key_id": access_key_id, "account_id": account}, data_dir, config
    )
    if output is Output.json:
        _emit_json(result)
    else:
        typer.echo(f"deleted access key {access_key_id}")
