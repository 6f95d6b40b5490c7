"""The SQLite store's file: opening, migrating, checking and closing it, and its connections.

The schema is built by the numbered :data:`MIGRATIONS` (``migrations/NNNN_name.sql``);
``PRAGMA user_version`` records how many were applied, and each is applied once, in
order, in its own transaction (:func:`migrate`). The writer's connection runs in WAL mode
with ``synchronous=FULL`` (:func:`connect`); the reader's is ``query_only``.

**Integrity at start-up.** Before SQLite opens the file, :func:`check_wal` reads the WAL
frame by frame and compares it with the commit mark (:mod:`.wal`), which the commit
thread rewrites after every COMMIT (about 12 µs: one ``pread`` of the WAL-index, one of
the last commit frame, one ``pwrite``, no fsync); then ``quick_check`` reads the
database through a read-only connection, before the writer opens (a refused store is
left exactly as found, its WAL included). A clean close checkpoints and truncates the
WAL, so a store that was shut down cleanly has none (:func:`close_writer`). Damage is
refused with the file and ``eventyard store recover`` named (:mod:`.repair`).

The writer (:mod:`.sqlite_writer`) opens and closes its connection with
:func:`open_writer` and :func:`close_writer`, on its commit thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from eventyard.errors import StoreError
from eventyard.server.store.wal import (
    MARK_SUFFIX,
    MarkWriter,
    WalVerdict,
    judge,
    read_mark,
    scan,
)

__all__ = [
    "BUSY_TIMEOUT",
    "JOURNAL_SIZE_LIMIT",
    "MIGRATIONS",
    "Query",
    "Row",
    "abort",
    "check_wal",
    "close_quietly",
    "close_writer",
    "connect",
    "fetch_all",
    "fetch_one",
    "load_migrations",
    "migrate",
    "open_writer",
    "read_only",
    "recover_command",
    "store_error",
]

Row = tuple[Any, ...]
#: runs one read on the store's reader connection (checks the store is open, translates
#: errors)
Query = Callable[[str, Sequence[Any]], list[Row]]


def load_migrations(directory: Path) -> tuple[tuple[str, ...], ...]:
    """Read ``NNNN_name.sql`` files into migrations: one tuple of statements per file.

    Statements are split where :func:`sqlite3.complete_statement` says one ends (so a
    trigger's body stays whole), because ``executescript`` would commit the transaction
    the migration must share with its version bump.

    Raises:
        RuntimeError: the files are not numbered 1, 2, 3… (a packaging mistake).
    """
    files = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    numbers = [int(f.name[:4]) for f in files]
    if numbers != list(range(1, len(files) + 1)):
        raise RuntimeError(f"SQLite migrations in {directory} are not numbered 1..n: {numbers}")
    migrations: list[tuple[str, ...]] = []
    for file in files:
        statements: list[str] = []
        pending = ""
        for line in file.read_text(encoding="utf-8").splitlines(keepends=True):
            if not pending and (not line.strip() or line.lstrip().startswith("--")):
                continue  # comments between statements
            pending += line
            if sqlite3.complete_statement(pending):
                statements.append(pending.strip())
                pending = ""
        if pending.strip():
            raise RuntimeError(f"{file} ends inside a statement: {pending.strip()[:80]!r}")
        migrations.append(tuple(statements))
    return tuple(migrations)


MIGRATIONS: Final = load_migrations(Path(__file__).with_name("migrations"))

# How long to wait for a lock another process holds (an sqlite3 shell writing). The store
# should be the file's only writer: its BEGIN runs on the loop, so waiting stalls the loop,
# and failing the batch with StoreError after a short wait is the lesser harm.
BUSY_TIMEOUT: Final = 2.0
# After a checkpoint, truncate a WAL that one huge transaction (a purge, a replay) grew
# back to this size, instead of keeping the disk space forever.
JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024


# -- connections and migrations ------------------------------------------------------------


def connect(path: str, *, writer: bool) -> sqlite3.Connection:
    """A connection to ``path``: the writer's (WAL, ``synchronous=FULL``) or a reader's."""
    # isolation_level=None: the module must not open transactions behind our back; the
    # writer issues BEGIN/COMMIT itself and each read is one autocommit statement.
    # check_same_thread=False: the writer's connection is opened and COMMITted on the
    # commit thread and used on the loop in between, never by two threads at once.
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        if writer:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
            if mode != "wal":
                raise StoreError(f"SQLite store: {path} cannot use WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            # 32 MiB instead of 2: the interior pages of the growing tables and indexes
            # stay cached, so a write rarely reads the disk (on the loop).
            conn.execute("PRAGMA cache_size=-32768")
        else:
            conn.execute("PRAGMA query_only=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations ``conn``'s database lacks, each once and in order.

    Returns the schema version afterwards. Each migration and its version bump commit
    together, so a crash leaves the database at a whole version. The version is read
    inside the write transaction, so two processes opening a new file do not both
    migrate it.

    Raises:
        StoreError: the database was written by a newer eventyard.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchall()[0][0])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"SQLite store: schema version {version} is newer than this eventyard "
                    f"supports ({len(MIGRATIONS)}); upgrade eventyard"
                )
            if version == len(MIGRATIONS):
                conn.execute("COMMIT")
                return version
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            abort(conn)
            raise


def fetch_all(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[Row]:
    """Every row of one statement."""
    # Always fetchall(): a half-read cursor keeps its statement, and with it the
    # connection's read snapshot, open, and later reads would not see new commits.
    return conn.execute(sql, args).fetchall()


def fetch_one(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> Row | None:
    """The first row of one statement, or None."""
    rows = fetch_all(conn, sql, args)
    return rows[0] if rows else None


def store_error(doing: str, exc: sqlite3.Error) -> StoreError:
    """``exc`` as the StoreError a caller gets: what the store was doing, and why not."""
    error = StoreError(f"SQLite store: {doing}: {exc}")
    error.__cause__ = exc
    return error


# -- opening and closing ----------------------------------------------------------------------


def open_writer(path: str, mark: MarkWriter) -> sqlite3.Connection:
    """Check the WAL and the file, open the commit mark, then open and migrate the writer's
    connection (on the writer's commit thread: each step may take a while).

    Raises:
        StoreError: the store is damaged, cannot be opened, or is of a newer eventyard.
    """
    # Both checks read through connections that cannot checkpoint: a store refused here
    # is left exactly as it was found (its WAL included) for store recover and its backup.
    verdict = check_wal(path)
    _check_integrity(path)
    try:
        mark.open()
        if verdict.state == "absent":
            # Whatever the old mark counted is in the database file: forget it before
            # SQLite starts a new WAL, which the old mark would not recognise.
            mark.clean()
    except OSError as exc:
        mark.close()
        raise StoreError(f"SQLite store: cannot write {path}{MARK_SUFFIX}: {exc}") from exc
    try:
        return _open_migrated(path, mark)
    except BaseException:
        mark.close()
        raise


def _open_migrated(path: str, mark: MarkWriter) -> sqlite3.Connection:
    try:
        conn = connect(path, writer=True)
    except sqlite3.Error as exc:
        if _is_damage(exc):
            raise _damaged(path, str(exc)) from exc
        raise store_error(f"cannot open {path}", exc) from exc
    try:
        migrate(conn)
        mark.record()
    except sqlite3.Error as exc:
        conn.close()
        if _is_damage(exc):
            raise _damaged(path, str(exc)) from exc
        raise store_error(f"cannot migrate {path}", exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def check_wal(path: str) -> WalVerdict:
    """Refuse a WAL that would open as an older database (see :mod:`.wal`), before SQLite
    reads it: once SQLite has opened and closed it, the evidence is checkpointed away.

    Returns:
        the verdict, which is not ``damaged``.

    Raises:
        StoreError: the WAL is damaged, or cannot be read.
    """
    try:
        verdict = judge(scan(path + "-wal"), read_mark(path))
    except OSError as exc:
        raise StoreError(f"SQLite store: cannot read {path}-wal: {exc.strerror}") from exc
    if not verdict.ok:
        raise StoreError(
            f"SQLite store: {path}-wal is damaged and the store was not opened: "
            f"{verdict.detail.removeprefix(path + '-wal: ')}. Serving it would lose committed "
            f"data silently. Keep the directory as it is and run: {recover_command(path)}"
        )
    return verdict


def recover_command(path: str) -> str:
    """The command that recovers the store at ``path``."""
    directory, name = os.path.split(os.path.abspath(path))
    where = directory if name == "eventyard.db" else f"sqlite://{os.path.abspath(path)}"
    return f"eventyard store recover --data-dir {where}"


def read_only(path: str) -> sqlite3.Connection:
    """A connection that only reads ``path``: opened ``mode=ro``, it cannot checkpoint,
    so closing it leaves the WAL as it was (SQLite may still rebuild the ``-shm`` index)."""
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def _check_integrity(path: str) -> None:
    """Refuse a damaged file rather than serve part of it.

    ``quick_check`` reads every page (its cost grows with the file: about a second per
    GiB here) and finds damaged pages, broken b-trees and out-of-order records; it reads
    the file with the WAL's committed frames applied, so it judges what the server would
    serve. It runs on a read-only connection *before* the writer opens: closing a
    writer checkpoints the WAL into the file and deletes it, which would destroy the
    evidence that ``store recover`` needs (and copy WAL frames into a damaged file).
    """
    try:
        conn = read_only(path)
    except sqlite3.Error as exc:
        if _is_damage(exc):
            raise _damaged(path, str(exc)) from exc
        raise store_error(f"cannot open {path}", exc) from exc
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.Error as exc:
        if _is_damage(exc):
            raise _damaged(path, str(exc)) from exc
        raise store_error(f"cannot read {path}", exc) from exc
    finally:
        conn.close()
    if problems != ["ok"]:
        raise _damaged(path, "; ".join(problems))


# SQLITE_CORRUPT and SQLITE_NOTADB: the file's bytes are wrong, not its access
_DAMAGE_CODES: Final = frozenset({11, 26})


def _is_damage(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _DAMAGE_CODES


def _damaged(path: str, detail: str) -> StoreError:
    return StoreError(
        f"SQLite store: {path} is damaged and was not opened ({detail}). Keep the "
        f"directory as it is and run: {recover_command(path)} (or restore a backup)"
    )


def close_writer(conn: sqlite3.Connection, mark: MarkWriter) -> None:
    """Checkpoint everything, empty the WAL and close: a clean stop leaves no WAL.

    The mark says "all copied" before the WAL is truncated, so a crash in between finds
    an empty WAL that the mark does not miss.
    """
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(FULL)").fetchall()
        mark.record()
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0][0]
        if not busy:
            mark.clean()
    close_quietly(conn)


def close_quietly(conn: sqlite3.Connection) -> None:
    """Close ``conn``, ignoring a failure."""
    # Everything acknowledged is committed; a failed close leaves a WAL the next open
    # recovers.
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def abort(conn: sqlite3.Connection) -> None:
    """Roll back ``conn``'s open transaction, if any, ignoring a failure."""
    if conn.in_transaction:
        # The callers are failed either way; the connection recovers on the next BEGIN.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
