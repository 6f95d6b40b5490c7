"""``eventyard store check|recover``: the store's integrity, read and repaired offline.

Joined to the command line by :mod:`eventyard.__main__`, like ``serve``. Both commands
take the store's lock, so they refuse (saying who holds it) while a server runs on the
data directory. They fail the command line's way: one ``error: …`` line, exit 1.
Importing this module is cheap: the repair code is imported when a command runs.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from eventyard.errors import StoreError
from eventyard.server.config import Settings

__all__ = ["store"]

store = typer.Typer(
    name="store",
    help="Check or recover the store in a data directory (with no server running on it).",
    no_args_is_help=True,
)

_DataDir = Annotated[
    str | None,
    typer.Option(help="The store's data directory [env EVENTYARD_DATA_DIR; ./.eventyard]"),
]
_Config = Annotated[
    str | None, typer.Option(help="Config file [env EVENTYARD_CONFIG; ./eventyard.toml]")
]


def _path(data_dir: str | None, config: str | None) -> tuple[str, str]:
    """The database file and the data directory as the settings name it."""
    from eventyard.server.store import database_path

    settings = Settings.load(config=config, data_dir=data_dir)
    return os.path.abspath(database_path(settings.data_dir)), settings.data_dir


def _line(label: str, text: str) -> None:
    typer.echo(f"{label:<16}{text}")


@store.command("check")
def check(
    *,
    data_dir: _DataDir = None,
    config: _Config = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Run SQLite's full integrity_check, not quick_check"),
    ] = False,
) -> None:
    """Report the store's integrity: the WAL, the database file and what it holds.

    Exits 0 when the store is healthy, 1 when it is damaged (then ``store recover``).

    Raises:
        StoreError: the store is damaged, missing, or in use by a server.
    """
    from eventyard.server.store.repair import check as run
    from eventyard.server.store.sqlite_files import recover_command

    path, _ = _path(data_dir, config)
    report = run(path, full=full)
    _line("store", path)
    _line("wal", f"{report.wal.state}: {report.wal.detail.removeprefix(path + '-wal: ')}")
    pragma = "integrity_check" if full else "quick_check"
    _line(pragma, "; ".join(report.integrity))
    for label, count in report.counts.items():
        _line(label, str(count))
    if not report.healthy:
        raise StoreError(f"the store {path} is damaged; recover it with: {recover_command(path)}")


@store.command("recover")
def recover(*, data_dir: _DataDir = None, config: _Config = None) -> None:
    """Back up every file of the store, then salvage what can be read.

    The backup goes to a new ``backup-<UTC time>`` directory beside the store. The WAL is
    cut after its last intact committed transaction, and the verified committed
    transactions behind a damaged frame are merged back; a damaged database file is
    rebuilt from its readable rows. What was kept and what was lost is printed; afterwards
    ``store check`` passes and ``serve`` starts.

    Raises:
        StoreError: the store is missing or in use by a server, or the backup failed.
    """
    from eventyard.server.store.repair import recover as run

    path, _ = _path(data_dir, config)
    report = run(path)
    _line("backup", f"{report.backup} (every file of the store, as it was)")
    for text in report.kept:
        _line("kept", text)
    for text in report.lost or ["nothing"]:
        _line("lost", text)
    if report.rebuilt:
        _line("rebuilt", f"{path} from the readable rows")
    held = ", ".join(f"{count} {label}" for label, count in report.counts.items())
    _line("store", f"{path}: {held}")
