"""The embedded SQLite store: one file, WAL mode, one writer doing group commit.

Everything eventyard must not lose lives in one SQLite database (see
:mod:`eventyard.server.store` for the protocol). The file runs in WAL mode with
``synchronous=FULL``: COMMIT returns only after the WAL is fsynced, so a write whose
coroutine has returned survives ``kill -9`` and power loss. The schema is built by the
numbered :data:`MIGRATIONS` (``migrations/NNNN_name.sql``); ``PRAGMA user_version``
records how many were applied, and each is applied once, in order, in its own
transaction.

**Group commit.** Every write (catalog put, ingest, settle, queue send/receive/delete…)
is a small function of the one write connection. Callers queue it and await a future.
The first write of a loop iteration schedules a flush for the next iteration, so every
coroutine woken together adds its write first; the flush runs the whole batch in one
transaction, each write inside its own ``SAVEPOINT``, then commits once (one fsync) and
resolves every caller's future. Writes that arrive during the commit form the next
batch, so batches grow with the load and no timer adds latency. A write that raises is
rolled back to its savepoint and fails only its caller; a failed COMMIT, or an error
after which SQLite aborted the whole transaction, fails every caller of the batch: no
write is reported done unless it is committed. A caller cancelled before its batch ran
is skipped; one cancelled later may or may not have committed.

**Where the writer runs: statements on the loop, COMMIT on a thread.** Measured with
``bench/store.py`` on this 2-core machine (fsync of a 4 KiB write ≈ 0.2 ms; 50
coroutines each ingesting 10 events of ~600 bytes with one delivery each; lag = how late
a 1 ms sleep on the same loop wakes up, i.e. how long the loop was blocked):

============================  ========  ======  ======  =======  ==========  =======
writer (8 s runs)             events/s  p50 ms  p99 ms  lag max  +100 µs/req  lag max
============================  ========  ======  ======  =======  ==========  =======
statements on loop, COMMIT    75–79k    5.7     12      9 ms     43k         11 ms
on a thread (this module)
everything on the loop        78k       5.7     20      23 ms    44k         25 ms
everything on a thread        55k       7.6     23      17 ms    38k         27 ms
============================  ========  ======  ======  =======  ==========  =======

The "+100 µs/req" columns add 100 µs of GIL-holding CPU per request (what HTTP, JSON and
matching cost) and measure again (5 s runs). A writer *thread* loses because CPython's
sqlite3 releases the GIL around every ``sqlite3_step``, i.e. for every row: each row
costs the thread a GIL hand-off with the loop, which is busy building the next batch,
so the two mostly take turns instead of overlapping, and its batches shrink. Running
the statements on the loop costs no more than that CPU already did. What the loop must
not do is wait for the disk: COMMIT writes the WAL, fsyncs it and, every 1000 pages,
checkpoints it into the database file (tens of ms); the "everything on the loop" row
shows those stalls in its lag, for no measurable gain in rate. So COMMIT, and every fsync
and checkpoint, runs on a dedicated thread; while it runs the loop serves requests and
the next batch queues. Opening, migrating and the final checkpoint at close run there
too.

**Reads** use a second connection, on the loop, for the same reason: a WAL reader
never waits for the writer, and each read is one autocommit statement, so it sees every
write whose future has resolved. Page big reads (``read_log``) with modest limits.

**Deliveries share bytes with the log.** A delivery's event (and usually its payload)
is the envelope the log already holds; the row then points at the log record instead
of repeating ~2 × 600 bytes, which tripled the bytes written per event and cost a third
of the ingest rate. A trigger copies the bytes into the delivery if the log record is
ever deleted.

**Pending deliveries are counted, not scanned.** The store counts the pending delivery
records once when it opens; from then on every committed ingest and settle moves the
count by the rows it inserted or deleted (:meth:`SQLiteStore.pending_count`), which
ingest reads on every request to throttle.

**Deliveries are claimed with leases kept in memory.** The file lock admits one process
per file, so the leases of :meth:`SQLiteStore.claim_deliveries` live in this process
(:mod:`.leases`), not in the database: a lease cannot outlive its process, and a restart
clears them all, which is right, since it ended every owner. A claim is one indexed
range read after the target's claim mark (plus the positions released behind it), so it
never reads the leased records of a large backlog again. A settle decides ownership as
its write runs in the batch and ends the leases with the commit (:meth:`_Writer.submit`
takes an ``on_outcome`` hook, told whether the write committed, before any caller
wakes); a refused id is returned and nothing is written for it.

**The catalog and its change feed** live in :mod:`.sqlite_catalog`: each row carries
its per-key revision and the global revision of its latest change, so the feed is the
table read in that order (compacted to the latest change per key; tombstones are kept).

**The audit part** (the log by time window, log retention, archives, the trace journal)
lives in :mod:`.sqlite_audit`; ingest notes its events' time marks in the writer's
:class:`~.sqlite_audit.MarkBook`, which the writer upserts once per batch, just before
COMMIT, and writes archive copies only for events that name archives.

**Listeners** (:meth:`SQLiteStore.listen`) hear of every committed write's catalog
changes, new deliveries and queue messages: each write records its notes as it runs
(:mod:`.listeners`), and the writer tells them once the batch is committed, before any
of its callers resumes; a rolled-back write's notes are dropped.

**Queues** follow SQS: a receive hides a message for the visibility timeout and returns a
receipt handle that encodes the message id and a random token. Only the *latest* receipt
of a message is valid: once the message is received again, older receipts are stale and
``queue_delete`` / ``queue_change_visibility`` with them return False (SQS lets an old
receipt delete the message; refusing it tells a slow consumer that somebody else now owns
it). A receipt stays valid after its timeout expires until the next receive.

**Integrity at start-up.** Before SQLite opens the file, :func:`check_wal` reads the WAL
frame by frame and compares it with the commit mark (:mod:`.wal`), which the commit
thread rewrites after every COMMIT (about 12 µs: one ``pread`` of the WAL-index, one of
the last commit frame, one ``pwrite``, no fsync); then ``quick_check`` reads the
database through a read-only connection, before the writer opens (a refused store is
left exactly as found, its WAL included). A clean close checkpoints and truncates the
WAL, so a store that was shut down cleanly has none. Damage is refused with the file and
``eventyard store recover`` named (:mod:`.repair`).

The store belongs to the event loop that opened it, and assumes it is the only writer of
its file (another process writing would make the loop wait on SQLite's lock).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import math
import os
import secrets
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import orjson

from eventyard.errors import StoreError
from eventyard.server.store import sqlite_audit as audit
from eventyard.server.store import sqlite_catalog as catalog
from eventyard.server.store.filelock import StoreLock
from eventyard.server.store.leases import LeaseBook, Position
from eventyard.server.store.listeners import Listeners, Notes
from eventyard.server.store.protocol import (
    DEDUP_INTERVAL,
    ArchiveRecord,
    CatalogChange,
    CatalogClaim,
    CatalogEntry,
    Claim,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
    QueueMessage,
    StoreListener,
    TraceEntry,
)
from eventyard.server.store.wal import (
    MARK_SUFFIX,
    MarkWriter,
    WalVerdict,
    judge,
    read_mark,
    scan,
)

__all__ = [
    "MIGRATIONS",
    "SQLiteStore",
    "check_wal",
    "load_migrations",
    "migrate",
    "read_only",
    "recover_command",
]

T = TypeVar("T")
Row = tuple[Any, ...]


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

# The most writes one transaction takes; bounds a batch's latency and memory under a flood.
MAX_BATCH: Final = 1024
# How long to wait for a lock another process holds (an sqlite3 shell writing). The store
# should be the file's only writer: its BEGIN runs on the loop, so waiting stalls the loop,
# and failing the batch with StoreError after a short wait is the lesser harm.
BUSY_TIMEOUT: Final = 2.0
# After a checkpoint, truncate a WAL that one huge transaction (a purge, a replay) grew
# back to this size, instead of keeping the disk space forever.
JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

# Ids bound in one ``IN (...)`` list, well below SQLite's limit on bound parameters.
_IDS_PER_QUERY: Final = 500

_INSERT_LOG: Final = "INSERT INTO log (event_id, bus, time, body) VALUES (?, ?, ?, ?)"
_INSERT_DELIVERY: Final = (
    "INSERT INTO deliveries (target, event_id, seq, event, payload, first_seen, due)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_MESSAGE: Final = (
    "INSERT INTO messages (id, queue, body, attributes, sent, visible_at, group_id, dedup_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_DELIVERIES: Final = (
    "SELECT d.id, d.target, d.event_id, coalesce(d.payload, d.event, l.body),"
    " coalesce(d.event, l.body), d.first_seen, d.due, d.attempts"
    " FROM deliveries AS d LEFT JOIN log AS l ON l.seq = d.seq"
)
# A target's records after a claim mark, in claim order: one range of the (target, due)
# index, whose entries end with the id.
_SELECT_AFTER: Final = (
    f"{_SELECT_DELIVERIES} WHERE d.target=? AND (d.due, d.id) > (?, ?) ORDER BY d.due, d.id LIMIT ?"
)


# -- the writer ------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Counted:
    """A write's result, and how it changed the number of pending deliveries.

    The writer applies ``delta`` to its count once the write is committed, whatever
    became of its caller (cancelled callers included), so the count never drifts.
    """

    value: Any
    delta: int


@dataclass(slots=True)
class _Write:
    """One queued write: the function to run, and where its outcome goes.

    ``notes`` is what the function records, as it runs, for the store's listeners; they
    hear of it only once the write is committed.
    """

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    notes: Notes | None = None
    #: told whether the write committed, whatever became of its caller (see _finish)
    on_outcome: Callable[[bool], None] | None = None


class _Writer:
    """The single writer: one connection, statements run on the loop, COMMIT on a thread.

    Writes queue in ``_pending``; the first one of a loop iteration schedules ``_flush``
    for the next iteration, after every coroutine woken in this one has queued its write.
    ``_flush`` runs the batch's statements and hands COMMIT to the commit thread; writes
    that arrive meanwhile wait for the next batch (the connection is the commit thread's
    until COMMIT returns), which starts as soon as the commit is done.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.commits = 0
        self.writes = 0
        #: pending delivery records, as of the last commit (counted at open)
        self.pending = 0
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._committer: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[_Write] = []
        self._scheduled = False
        self._committing = False
        self._drained = asyncio.Event()
        #: why writes fail (disk full, I/O error), or None while they succeed
        self.failure: str | None = None
        self._probe: asyncio.TimerHandle | None = None
        self._mark = MarkWriter(path)
        #: told, after each commit, what its writes changed
        self.listeners = Listeners()
        #: the log's time marks the batch's ingests set, written once before its COMMIT
        self.marks = audit.MarkBook()

    async def start(self) -> None:
        """Open and migrate the database (on the commit thread: both may take a while)."""
        loop = asyncio.get_running_loop()
        committer = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="eventyard-sqlite-commit"
        )
        try:
            self._conn = await loop.run_in_executor(committer, _open_writer, self.path, self._mark)
        except BaseException:
            committer.shutdown(wait=False)
            raise
        self._loop, self._committer = loop, committer

    def submit(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        notes: Notes | None = None,
        on_outcome: Callable[[bool], None] | None = None,
    ) -> asyncio.Future[Any]:
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Write(fn, future, notes=notes, on_outcome=on_outcome))
        if not (self._scheduled or self._committing):
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    async def stop(self) -> None:
        """Commit what is queued (callers must submit nothing more), then close."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        while self._pending or self._scheduled or self._committing:
            self._drained.clear()
            await self._drained.wait()
        conn, committer, loop = self._conn, self._committer, self._loop
        self._conn = None
        if conn is not None and committer is not None and loop is not None:
            # Closing checkpoints the WAL into the database file: disk work, off the loop.
            await loop.run_in_executor(committer, _close_writer, conn, self._mark)
            committer.shutdown(wait=False)

    def close_mark(self) -> None:
        """Close the commit mark once no connection is left. SQLite deletes the WAL
        when its last connection closes only after copying every frame into the file,
        so a WAL gone by now held nothing the mark may still count as missing."""
        wal = self.path + "-wal"
        if not os.path.exists(wal) or os.path.getsize(wal) == 0:
            self._mark.clean()
        self._mark.close()

    def _flush(self) -> None:
        self._scheduled = False
        conn = self._conn
        assert conn is not None and self._loop is not None
        batch = []
        for w in self._pending[:MAX_BATCH]:
            if not w.future.done():
                batch.append(w)
            elif w.on_outcome is not None:
                w.on_outcome(False)  # cancelled before it ran: it never will
        del self._pending[:MAX_BATCH]
        if not batch:
            self._next()
            return
        if not _execute_batch(conn, batch):
            self.marks.clear()
            self._failed(batch[0].error)
            self._finish(batch)
            return
        try:
            # the batch's time marks, in its transaction (sqlite_audit.MarkBook)
            self.marks.write(conn)
        except sqlite3.Error as exc:
            _abort(conn)
            _fail_all(batch, exc)
            self._failed(exc)
            self._finish(batch)
            return
        self._committing = True
        self._start_commit(batch)

    def _start_commit(self, batch: list[_Write]) -> None:
        assert self._loop is not None and self._conn is not None
        commit = self._loop.run_in_executor(self._committer, _commit, self._conn, self._mark)
        commit.add_done_callback(lambda done: self._committed(batch, done.exception()))

    def _committed(self, batch: list[_Write], exc: BaseException | None) -> None:
        self._committing = False
        if exc is None:
            self.commits += 1
            self._recovered()
        else:
            assert self._conn is not None
            _abort(self._conn)
            _fail_all(batch, exc)
            self._failed(exc)
        self._finish(batch)

    def _failed(self, exc: BaseException | None) -> None:
        """Remember a failure of the disk and probe until a write succeeds again.

        Nothing else may write while the disk is full, so without a probe the store
        would report the failure until the next client write, however long the disk has
        had room again.
        """
        cause = exc.__cause__ if isinstance(exc, StoreError) else exc
        if not isinstance(cause, sqlite3.Error) or not _is_disk_failure(cause):
            return
        self.failure = f"writes to {self.path} fail: {cause}"
        if self._probe is None and self._loop is not None:
            self._probe = self._loop.call_later(PROBE_INTERVAL, self._send_probe)

    def _send_probe(self) -> None:
        self._probe = None
        if self._conn is None or self.failure is None:
            return
        probe = self.submit(_probe_write)
        # the outcome is the writer's own business: a failed probe re-arms the next
        probe.add_done_callback(lambda done: done.exception())

    def _recovered(self) -> None:
        self.failure = None
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None

    def _finish(self, batch: list[_Write]) -> None:
        self.writes += len(batch)
        committed = Notes()
        for w in batch:
            # a write without error here is committed (a failed batch failed them all)
            if type(w.result) is _Counted:
                if w.error is None:
                    self.pending += w.result.delta
                w.result = w.result.value
            if w.notes is not None and w.error is None:
                committed.add(w.notes)
            if w.on_outcome is not None:
                # before any caller wakes: a settle's leases end with its commit
                w.on_outcome(w.error is None)
        # Resolving wakes the callers in the next iteration; _next's flush is queued after
        # them, so the writes they make at once join the next batch.
        _set_outcomes(batch)
        # Told now, before any caller resumes: a catalog change a caller made is applied
        # by this process's listeners by the time its write returns.
        self.listeners.tell(committed)
        self._next()

    def _next(self) -> None:
        if self._pending:
            if not self._scheduled:
                self._scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._flush)
        elif not self._scheduled and not self._committing:
            self._drained.set()


def _open_writer(path: str, mark: MarkWriter) -> sqlite3.Connection:
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
        conn = _connect(path, writer=True)
    except sqlite3.Error as exc:
        if _is_damage(exc):
            raise _damaged(path, str(exc)) from exc
        raise _store_error(f"cannot open {path}", exc) from exc
    try:
        migrate(conn)
        mark.record()
    except sqlite3.Error as exc:
        conn.close()
        if _is_damage(exc):
            raise _damaged(path, str(exc)) from exc
        raise _store_error(f"cannot migrate {path}", exc) from exc
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
        raise _store_error(f"cannot open {path}", exc) from exc
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.Error as exc:
        if _is_damage(exc):
            raise _damaged(path, str(exc)) from exc
        raise _store_error(f"cannot read {path}", exc) from exc
    finally:
        conn.close()
    if problems != ["ok"]:
        raise _damaged(path, "; ".join(problems))


# SQLITE_READONLY, SQLITE_IOERR (and its extended codes), SQLITE_FULL, SQLITE_CANTOPEN:
# the disk refuses writes; they may succeed again once it has room or comes back
_DISK_CODES: Final = frozenset({8, 10, 13, 14})
#: seconds between probe writes while the disk refuses writes
PROBE_INTERVAL: Final = 1.0


def _is_disk_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DISK_CODES


def _probe_write(conn: sqlite3.Connection) -> None:
    # rewrites the header's user_version with its own value: a real page write and fsync
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version = {int(version)}")


# SQLITE_CORRUPT and SQLITE_NOTADB: the file's bytes are wrong, not its access
_DAMAGE_CODES: Final = frozenset({11, 26})


def _is_damage(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _DAMAGE_CODES


def _damaged(path: str, detail: str) -> StoreError:
    return StoreError(
        f"SQLite store: {path} is damaged and was not opened ({detail}). Keep the "
        f"directory as it is and run: {recover_command(path)} (or restore a backup)"
    )


def _commit(conn: sqlite3.Connection, mark: MarkWriter) -> None:
    # The one place the writer waits for the disk: the WAL append, its fsync and, every
    # 1000 pages (SQLite's default; 4096 measured the same within noise), the checkpoint.
    conn.execute("COMMIT")
    # After the fsync, before any caller is told: the mark never runs ahead of the WAL,
    # and every acknowledged transaction is in it.
    mark.record()


def _close_writer(conn: sqlite3.Connection, mark: MarkWriter) -> None:
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
    _close_quietly(conn)


def _close_quietly(conn: sqlite3.Connection) -> None:
    # Everything acknowledged is committed; a failed close leaves a WAL the next open
    # recovers.
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def _execute_batch(conn: sqlite3.Connection, batch: Sequence[_Write]) -> bool:
    """Run ``batch`` in a new transaction, one savepoint per write, without committing.

    Fills in each write's ``result`` or ``error``; a write that raises is rolled back to
    its savepoint and fails alone. Returns False if the whole transaction is gone (BEGIN
    failed, or SQLite aborted it: I/O error, disk full…): then every write has failed.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        _fail_all(batch, exc)
        return False
    for w in batch:
        try:
            conn.execute("SAVEPOINT w")
            w.result = w.fn(conn)
            conn.execute("RELEASE w")
        except Exception as exc:
            if not conn.in_transaction:
                # The writes that "succeeded" before this one are gone too.
                _fail_all(batch, exc)
                return False
            try:
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
            except sqlite3.Error as rollback_exc:
                _abort(conn)
                _fail_all(batch, rollback_exc)
                return False
            w.result, w.error = None, exc
    return True


def _abort(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # The callers are failed either way; the connection recovers on the next BEGIN.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _fail_all(batch: Sequence[_Write], exc: BaseException) -> None:
    if not isinstance(exc, sqlite3.Error | StoreError):
        # Whatever aborted the transaction, for the others in it this is a store failure.
        error = StoreError(f"SQLite store: transaction aborted: {exc!r}")
        error.__cause__ = exc
        exc = error
    for w in batch:
        w.result, w.error = None, exc


def _set_outcomes(writes: Sequence[_Write]) -> None:
    for w in writes:
        if w.future.done():
            continue
        if w.error is None:
            w.future.set_result(w.result)
        else:
            # A fresh exception per caller: one shared instance would collect every
            # caller's traceback.
            w.future.set_exception(_translate(w.error))


def _translate(exc: BaseException) -> BaseException:
    """The exception a caller gets: sqlite3's become StoreError; ours pass unchanged."""
    if isinstance(exc, sqlite3.Error):
        return _store_error("write failed", exc)
    if isinstance(exc, StoreError):
        error = StoreError(str(exc))
        error.__cause__ = exc.__cause__
        return error
    return exc


def _store_error(doing: str, exc: sqlite3.Error) -> StoreError:
    error = StoreError(f"SQLite store: {doing}: {exc}")
    error.__cause__ = exc
    return error


# -- connections and migrations ------------------------------------------------------------


def _connect(path: str, *, writer: bool) -> sqlite3.Connection:
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
            _abort(conn)
            raise


def _all(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[Row]:
    # Always fetchall(): a half-read cursor keeps its statement, and with it the
    # connection's read snapshot, open, and later reads would not see new commits.
    return conn.execute(sql, args).fetchall()


def _one(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> Row | None:
    rows = _all(conn, sql, args)
    return rows[0] if rows else None


# -- rows --------------------------------------------------------------------------------------


def _message_rows(messages: Sequence[NewMessage], now: float) -> list[Row]:
    return [
        (
            m.message_id or str(uuid.uuid4()),
            m.queue,
            m.body,
            orjson.dumps(m.attributes).decode(),
            now,
            now + m.delay,
            m.group_id,
            m.dedup_id,
        )
        for m in messages
    ]


def _insert_messages(conn: sqlite3.Connection, rows: list[Row]) -> list[str]:
    """Insert message rows; returns each one's message id.

    A row with a de-duplication key its queue saw within :data:`DEDUP_INTERVAL` is not
    inserted: its id is the first message's. Expired keys are dropped as sends pass.
    """
    if not any(row[7] is not None for row in rows):
        conn.executemany(_INSERT_MESSAGE, rows)
        return [row[0] for row in rows]
    now = rows[0][4]
    conn.execute("DELETE FROM message_dedup WHERE expires<=?", (now,))
    ids: list[str] = []
    for row in rows:
        message_id, queue, dedup = row[0], row[1], row[7]
        if dedup is not None:
            seen = _one(
                conn,
                "SELECT message_id FROM message_dedup WHERE queue=? AND dedup_id=?",
                (queue, dedup),
            )
            if seen is not None:
                ids.append(str(seen[0]))
                continue
            conn.execute(
                "INSERT INTO message_dedup (queue, dedup_id, message_id, expires)"
                " VALUES (?, ?, ?, ?)",
                (queue, dedup, message_id, now + DEDUP_INTERVAL),
            )
        conn.execute(_INSERT_MESSAGE, row)
        ids.append(message_id)
    return ids


def _receipt(message_id: str, token: str) -> str:
    return base64.urlsafe_b64encode(f"{message_id}:{token}".encode()).decode()


def _parse_receipt(receipt: str) -> tuple[str, str] | None:
    try:
        text = base64.urlsafe_b64decode(receipt.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        return None
    message_id, sep, token = text.partition(":")
    return (message_id, token) if sep and message_id and token else None


# -- write operations (each runs inside a batch's transaction, under its own savepoint) -------


def _ingest(
    conn: sqlite3.Connection,
    events: list[Row],
    deliveries: list[Row],
    messages: list[Row],
    *,
    marks: audit.Marks = (),
    book: audit.MarkBook | None = None,
    archived: Sequence[audit.ArchiveRow] = (),
) -> int:
    """Insert everything; returns the id of the first delivery (0 if none).

    A delivery row's third field is the index in ``events`` of the event whose body it
    shares, or -1; it becomes that event's ``seq``. ``marks`` are the events' time marks,
    noted in ``book`` (the writer's, written once per batch), and ``archived`` their
    archive records (:mod:`.sqlite_audit`).
    """
    first_seq = 0
    if events:
        conn.executemany(_INSERT_LOG, events)
        # One writer inside one transaction: AUTOINCREMENT hands out consecutive numbers,
        # so the last one tells them all (executemany reports no lastrowid).
        first_seq = _last_rowid(conn) - len(events) + 1
        if book is not None:
            book.add(first_seq, marks)
        if archived:
            audit.write_archives(conn, archived)
    first_id = 0
    if deliveries:
        conn.executemany(
            _INSERT_DELIVERY,
            [
                (target, event_id, None if ref < 0 else first_seq + ref, *rest)
                for target, event_id, ref, *rest in deliveries
            ],
        )
        first_id = _last_rowid(conn) - len(deliveries) + 1
    if messages:
        _insert_messages(conn, messages)
    return first_id


def _last_rowid(conn: sqlite3.Connection) -> int:
    return int(_all(conn, "SELECT last_insert_rowid()")[0][0])


def _delivery_rows(events: Sequence[NewEvent], deliveries: Sequence[NewDelivery]) -> list[Row]:
    """Rows for :func:`_ingest`, sharing bytes with the log where they are equal."""
    bodies = {e.event_id: (i, e.body) for i, e in enumerate(events)}
    rows: list[Row] = []
    for d in deliveries:
        index, body = bodies.get(d.event_id, (-1, None))
        shared = index >= 0 and d.event == body
        rows.append(
            (
                d.target,
                d.event_id,
                index if shared else -1,
                None if shared else d.event,
                None if d.payload == d.event else d.payload,
                d.first_seen,
                d.due,
            )
        )
    return rows


def _settle(
    conn: sqlite3.Connection,
    done: list[tuple[int]],
    retry: list[tuple[float, int, int]],
    messages: list[Row],
) -> _Counted:
    removed = 0
    if done:
        removed = conn.executemany("DELETE FROM deliveries WHERE id=?", done).rowcount
    if retry:
        conn.executemany("UPDATE deliveries SET due=?, attempts=? WHERE id=?", retry)
    if messages:
        _insert_messages(conn, messages)
    return _Counted(None, -removed)


def _queue_receive(
    conn: sqlite3.Connection,
    queue_name: str,
    *,
    max_messages: int,
    visibility_timeout: float,
    now: float,
    redrive: tuple[str, int] | None,
    notes: Notes | None = None,
) -> list[QueueMessage]:
    if queue_name.endswith(".fifo"):
        return _fifo_receive(
            conn,
            queue_name,
            max_messages=max_messages,
            visibility_timeout=visibility_timeout,
            now=now,
            redrive=redrive,
            notes=notes,
        )
    received: list[QueueMessage] = []
    seen: set[int] = set()
    hidden_until = now + visibility_timeout
    while len(received) < max_messages:
        # Over-fetch by what this call already took: with a zero timeout those messages
        # are still visible, and they must not be returned twice.
        wanted = max_messages - len(received)
        rows = _all(
            conn,
            f"SELECT {_RECEIVED_COLUMNS} FROM messages"
            " WHERE queue=? AND visible_at<=? ORDER BY visible_at, receive_count, n LIMIT ?",
            (queue_name, now, wanted + len(seen)),
        )
        rows = [r for r in rows if r[0] not in seen][:wanted]
        if not rows:
            break
        taking = _Taking(now, hidden_until, redrive)
        for row in rows:
            seen.add(row[0])
            taking.take(row)
        received += taking.finish(conn, notes)
        if not taking.moved:
            break
    return received


# n, id, body, attributes, sent, receive_count, first_receive, group_id, dedup_id, visible_at
_RECEIVED_COLUMNS: Final = (
    "n, id, body, attributes, sent, receive_count, first_receive, group_id, dedup_id, visible_at"
)


class _Taking:
    """The messages one receive takes and the ones it moves to the dead-letter queue."""

    def __init__(self, now: float, hidden_until: float, redrive: tuple[str, int] | None) -> None:
        self.now = now
        self.hidden_until = hidden_until
        self.redrive = redrive
        self.updates: list[Row] = []
        self.moved: list[Row] = []
        self.received: list[QueueMessage] = []

    def take(self, row: Row) -> bool:
        """Take ``row`` (True), or move it to the dead-letter queue (False)."""
        n, message_id, body, attributes, sent, count, first_receive, group, dedup, _ = row
        if self.redrive is not None and count >= self.redrive[1]:
            self.moved.append((n, body, attributes, sent, group, dedup))
            return False
        token = secrets.token_hex(8)
        first = self.now if first_receive is None else first_receive
        self.updates.append((self.hidden_until, count + 1, first, token, n))
        self.received.append(
            QueueMessage(
                message_id=message_id,
                body=body,
                attributes=orjson.loads(attributes),
                receipt=_receipt(message_id, token),
                sent=sent,
                receive_count=count + 1,
                first_receive=first,
                group_id=group,
                dedup_id=dedup,
            )
        )
        return True

    def finish(self, conn: sqlite3.Connection, notes: Notes | None) -> list[QueueMessage]:
        if self.updates:
            conn.executemany(
                "UPDATE messages SET visible_at=?, receive_count=?, first_receive=?, receipt=?"
                " WHERE n=?",
                self.updates,
            )
        if self.moved:
            assert self.redrive is not None
            conn.executemany("DELETE FROM messages WHERE n=?", [(m[0],) for m in self.moved])
            # Moved to the dead-letter queue with a new id, visible there at once (no
            # de-duplication: it is a move); the original sent time is kept, as SQS keeps
            # SentTimestamp, and so is a FIFO message's group.
            conn.executemany(
                _INSERT_MESSAGE,
                [
                    (str(uuid.uuid4()), self.redrive[0], body, attrs, sent, self.now, group, dedup)
                    for _, body, attrs, sent, group, dedup in self.moved
                ],
            )
            if notes is not None:
                notes.queues.add(self.redrive[0])
        return self.received


_FIFO_GROUP: Final = (
    f"SELECT {_RECEIVED_COLUMNS} FROM messages WHERE queue=? AND group_id=? AND n>?"
    " ORDER BY n LIMIT ?"
)
_FIFO_LOOSE: Final = (
    f"SELECT {_RECEIVED_COLUMNS} FROM messages WHERE queue=? AND group_id IS NULL AND n>?"
    " ORDER BY n LIMIT ?"
)


def _fifo_receive(
    conn: sqlite3.Connection,
    queue_name: str,
    *,
    max_messages: int,
    visibility_timeout: float,
    now: float,
    redrive: tuple[str, int] | None,
    notes: Notes | None,
) -> list[QueueMessage]:
    """Receive from a FIFO queue: each group's messages in sending order, none of a group
    whose earliest message is in flight (or still delayed).

    The groups whose head (earliest message) is visible are found from the group index
    (one pass in SQLite, not in Python), oldest head first; each is then read in order
    until one of its messages is not visible. A backlog behind an in-flight head is not
    read at all, and other queues' messages never are.
    """
    taking = _Taking(now, now + visibility_timeout, redrive)
    heads = _all(
        conn,
        "SELECT m.group_id FROM messages m JOIN (SELECT group_id, min(n) AS head FROM messages"
        " WHERE queue=? AND group_id IS NOT NULL GROUP BY group_id) h ON m.n=h.head"
        " WHERE m.visible_at<=? ORDER BY m.n",
        (queue_name, now),
    )
    groups: list[str | None] = [str(row[0]) for row in heads]
    # messages without a group (none are written by the API) are one more group
    ((loose,),) = _all(
        conn, "SELECT min(n) FROM messages WHERE queue=? AND group_id IS NULL", (queue_name,)
    )
    if loose is not None:
        groups.append(None)
    for group in groups:
        after, blocked = 0, False
        while not blocked and len(taking.received) < max_messages:
            limit = max_messages - len(taking.received)
            # "group_id=?" lets SQLite read the group index ("IS ?" would not)
            rows = (
                _all(conn, _FIFO_LOOSE, (queue_name, after, limit))
                if group is None
                else _all(conn, _FIFO_GROUP, (queue_name, group, after, limit))
            )
            if not rows:
                break
            for row in rows:
                if row[9] > now:
                    blocked = True  # in flight or delayed: the rest of its group waits
                    break
                taking.take(row)  # taken, or moved to the dead-letter queue
                after = row[0]
        if len(taking.received) >= max_messages:
            break
    return taking.finish(conn, notes)


def _targets_of(conn: sqlite3.Connection, ids: Sequence[int]) -> set[str]:
    """The targets of the delivery records ``ids``."""
    targets: set[str] = set()
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT DISTINCT target FROM deliveries WHERE id IN ({marks})"
        targets.update(t for (t,) in _all(conn, sql, chunk))
    return targets


def _by_receipt(
    conn: sqlite3.Connection, sql: str, head: Sequence[Any], queue_name: str, receipt: str
) -> bool:
    parsed = _parse_receipt(receipt)
    if parsed is None:
        return False
    message_id, token = parsed
    cursor = conn.execute(
        sql + " WHERE id=? AND queue=? AND receipt=?", (*head, message_id, queue_name, token)
    )
    return cursor.rowcount == 1


def _no_op() -> None:
    pass


# -- the store -----------------------------------------------------------------------------


class SQLiteStore:
    """The embedded store: one SQLite file, see the module docstring.

    The store belongs to the event loop that opened it; use it from that loop only.

    Args:
        path: the database file; its directory is created if missing. ``-wal`` and
            ``-shm`` files appear beside it.
        clock: the store's clock (:meth:`now`), by which due times and leases are
            judged; the wall clock unless a test passes one it moves by hand.

    Attributes:
        commits: transactions committed by the writer so far (one fsync each).
        writes: write operations handled so far; ``writes / commits`` is the mean batch.
    """

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._leases = LeaseBook()
        self._writer = _Writer(path)
        self._lock = StoreLock(path + ".lock")
        self._reader: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"
        self._audit = audit.Audit(self._query, self._write)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    @property
    def commits(self) -> int:
        return self._writer.commits

    @property
    def writes(self) -> int:
        return self._writer.writes

    def write_failure(self) -> str | None:
        """Why writes fail right now (disk full, I/O error), or None while they succeed.

        Set by a failed commit, cleared by the next successful one; while it is set, the
        store probes with a tiny write every :data:`PROBE_INTERVAL` seconds.
        """
        return self._writer.failure

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating and migrating it if needed) and start the writer.

        Raises:
            StoreError: the file cannot be opened, is not a database, or was written by
                a newer eventyard; or the store was closed already.
        """
        if self._state == "open":
            return
        if self._state == "closed":
            raise StoreError("the SQLite store is closed; create a new one to reopen")
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            # 0700 and 0600: the events, queues and catalog are nobody else's business
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise StoreError(f"SQLite store: cannot create {self.path}: {exc}") from exc
        self._lock.acquire()
        try:
            await self._writer.start()
        except BaseException:
            self._lock.release()
            raise
        try:
            self._reader = _connect(self.path, writer=False)
        except sqlite3.Error as exc:
            await self._writer.stop()
            self._writer.close_mark()
            self._lock.release()
            raise _store_error(f"cannot open {self.path}", exc) from exc
        self._loop = asyncio.get_running_loop()
        self._state = "open"
        # once per open: from here on the writer keeps the count as it commits
        self._writer.pending = int(self._query("SELECT count(*) FROM deliveries")[0][0])

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the connections. Idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        await self._writer.stop()
        if self._reader is not None:
            _close_quietly(self._reader)
            self._reader = None
        self._writer.close_mark()
        self._lock.release()

    def _check_open(self) -> None:
        if self._state != "open":
            state = "closed" if self._state == "closed" else "not open; await open() first"
            raise StoreError(f"the SQLite store is {state}")
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError("the SQLite store is used from an event loop that did not open it")

    async def _write(self, fn: Callable[[sqlite3.Connection], T], notes: Notes | None = None) -> T:
        self._check_open()
        result: T = await self._writer.submit(fn, notes=notes)
        return result

    async def _write_counted(
        self,
        fn: Callable[[sqlite3.Connection], _Counted],
        notes: Notes | None = None,
        on_outcome: Callable[[bool], None] | None = None,
    ) -> Any:
        # The writer unwraps the _Counted: the caller gets its value.
        self._check_open()
        return await self._writer.submit(fn, notes, on_outcome)

    def _notes(self) -> Notes | None:
        """Somewhere for a write to record what it changes, if anyone listens."""
        return Notes() if self._writer.listeners else None

    def listen(self, listener: StoreListener) -> None:
        """Register ``listener``: after each commit it hears of the catalog changes,
        new deliveries and queue messages of the committed writes.

        The SQLite store has one process per file, so every change is this process's;
        listeners are told before any writer of the batch resumes.
        """
        self._writer.listeners.add(listener)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        # Reads run right here on the loop: a WAL reader never waits for the writer, and
        # SQLite's work is CPU under the GIL anyway, which a thread would only hand back
        # and forth once per row (see the module docstring).
        self._check_open()
        assert self._reader is not None
        try:
            return _all(self._reader, sql, args)
        except sqlite3.Error as exc:
            raise _store_error("read failed", exc) from exc

    # -- catalog ---------------------------------------------------------------------------

    async def catalog_get(self, kind: str, key: str) -> CatalogEntry | None:
        rows = self._query(
            "SELECT doc, revision FROM catalog WHERE kind=? AND key=? AND doc IS NOT NULL",
            (kind, key),
        )
        return CatalogEntry(kind, key, orjson.loads(rows[0][0]), rows[0][1]) if rows else None

    async def catalog_list(self, kind: str, prefix: str = "") -> list[CatalogEntry]:
        sql, args = catalog.list_sql(prefix)
        rows = self._query(sql, [kind, *args])
        return [CatalogEntry(kind, key, orjson.loads(doc), rev) for key, doc, rev in rows]

    async def catalog_put(
        self, kind: str, key: str, doc: dict[str, Any], *, expect_revision: int | None = None
    ) -> int:
        text = catalog.encode_doc(doc)
        notes = self._notes()
        return await self._write(
            lambda c: catalog.put(c, kind, key, text, expect_revision, notes=notes), notes
        )

    async def catalog_delete(
        self, kind: str, key: str, *, expect_revision: int | None = None
    ) -> bool:
        notes = self._notes()
        return await self._write(
            lambda c: catalog.delete(c, kind, key, expect_revision, notes=notes), notes
        )

    async def catalog_revision(self) -> int:
        return int(self._query(catalog.REVISION_SQL)[0][0])

    async def catalog_changes(self, after: int = 0, limit: int = 1000) -> list[CatalogChange]:
        """The latest change of each key changed after global revision ``after``, in
        revision order (see :mod:`.sqlite_catalog`: deletes are kept forever)."""
        if limit < 1:
            self._check_open()
            return []
        return [catalog.change_of(row) for row in self._query(catalog.CHANGES_SQL, (after, limit))]

    # -- log + matches ---------------------------------------------------------------------

    async def ingest(
        self,
        events: Sequence[NewEvent],
        deliveries: Sequence[NewDelivery] = (),
        messages: Sequence[NewMessage] = (),
        *,
        claim: CatalogClaim | None = None,
    ) -> list[Delivery]:
        if not (events or deliveries or messages or claim):
            self._check_open()
            return []  # nothing to make durable: no transaction, no fsync
        # Rows are built before the write is queued, so the batch only runs statements.
        event_rows = [(e.event_id, e.bus, e.time, e.body) for e in events]
        marks = audit.ingest_marks(events)
        archived = audit.archive_rows(events)
        delivery_rows = _delivery_rows(events, deliveries)
        message_rows = _message_rows(messages, time.time())
        claim_doc = None if claim is None else catalog.encode_doc(claim.doc)
        notes = self._notes()
        if notes is not None:
            notes.targets.update(d.target for d in deliveries)
            notes.queues.update(m.queue for m in messages)

        first_ids: list[int] = []

        def write(conn: sqlite3.Connection) -> _Counted:
            if claim is not None:
                assert claim_doc is not None
                catalog.put(
                    conn, claim.kind, claim.key, claim_doc, claim.expect_revision, notes=notes
                )
            first = _ingest(
                conn,
                event_rows,
                delivery_rows,
                message_rows,
                marks=marks,
                book=self._writer.marks,
                archived=archived,
            )
            first_ids.append(first)
            return _Counted(first, len(delivery_rows))

        def committed(ok: bool) -> None:
            # records created behind a target's claim mark must be found by its claims
            if ok and first_ids and deliveries:
                self._arrived(first_ids[0], deliveries)

        first_id: int = await self._write_counted(write, notes, committed if deliveries else None)
        return [
            Delivery(first_id + i, d.target, d.event_id, d.payload, d.event, d.first_seen, d.due, 0)
            for i, d in enumerate(deliveries)
        ]

    async def read_log(self, after_seq: int = 0, limit: int = 1000) -> list[LogRecord]:
        rows = self._query(
            "SELECT seq, event_id, bus, time, body FROM log WHERE seq>? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [LogRecord(*row) for row in rows]

    async def last_seq(self) -> int:
        # sqlite_sequence, not max(seq): it stays right after the newest records are deleted.
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name='log'")
        return int(rows[0][0]) if rows else 0

    def follow_log(self, bus: str, on_event: Callable[[bytes], None]) -> Callable[[], None]:
        # one process per file: every event is this process's own, nothing to tell
        self._check_open()
        return _no_op

    # -- audit: the log by time, retention, archives, trace (see .sqlite_audit) ------------

    async def read_log_window(
        self, bus: str | None, since: float, until: float, after_seq: int = 0, limit: int = 1000
    ) -> list[LogRecord]:
        return await self._audit.read_log_window(bus, since, until, after_seq, limit)

    async def expire_log(self, before: float, bus: str | None = None) -> int:
        return await self._audit.expire_log(before, bus)

    async def read_archive(
        self, archive: str, since: float, until: float, after_seq: int = 0, limit: int = 1000
    ) -> list[ArchiveRecord]:
        return self._audit.read_archive(archive, since, until, after_seq, limit)

    async def archive_stats(self, archive: str) -> tuple[int, int]:
        return self._audit.archive_stats(archive)

    async def expire_archive(self, archive: str, before: float) -> int:
        return await self._audit.expire_archive(archive, before)

    async def drop_archive(self, archive: str) -> None:
        await self._audit.drop_archive(archive)

    async def trace_append(self, entries: Sequence[TraceEntry]) -> None:
        self._check_open()
        if entries:
            await self._audit.trace_append(entries)

    async def trace_read(self, keys: Sequence[str], since: float = 0.0) -> list[TraceEntry]:
        self._check_open()
        return self._audit.trace_read(keys, since)

    async def expire_trace(self, before: float) -> int:
        return await self._audit.expire_trace(before)

    # -- deliveries ------------------------------------------------------------------------

    async def pending_deliveries(self, after_id: int = 0, limit: int = 1000) -> list[Delivery]:
        rows = self._query(
            f"{_SELECT_DELIVERIES} WHERE d.id>? ORDER BY d.id LIMIT ?", (after_id, limit)
        )
        return [Delivery(*row) for row in rows]

    async def pending_targets(self) -> list[str]:
        # One index seek per target (a loose index scan), not a scan of every record.
        rows = self._query(
            "WITH RECURSIVE t(target) AS ("
            " SELECT min(target) FROM deliveries"
            " UNION ALL"
            " SELECT (SELECT min(target) FROM deliveries WHERE target > t.target)"
            " FROM t WHERE t.target IS NOT NULL"
            ") SELECT target FROM t WHERE target IS NOT NULL"
        )
        return [target for (target,) in rows]

    def pending_count(self) -> int:
        """Pending delivery records: counted once at open, then kept by the writer."""
        self._check_open()
        return self._writer.pending

    def now(self) -> float:
        return self._clock()

    async def claim_deliveries(self, owner: str, target: str, limit: int, lease: float) -> Claim:
        self._check_open()
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if lease <= 0:
            raise ValueError(f"lease must be positive, not {lease}")
        # Synchronous from here to the end: reads, checks and leases happen in one step
        # of the loop, so no other claim or settle of this store interleaves.
        now = self._clock()
        book = self._leases
        returned = book.take_returned(target, now, limit)
        fresh, mark, later = self._read_after_mark(target, now, limit)
        # the earliest ``limit`` of both, in claim order
        chosen = set(sorted(returned + [(d.due, d.id) for d in fresh])[:limit])
        book.put_back(target, [p for p in returned if p not in chosen])
        taken = [d for d in fresh if (d.due, d.id) in chosen]
        if len(taken) < len(fresh):
            # returned records came first: the mark stops before the rest of the range
            later = min(later, fresh[len(taken)].due)
            mark = (taken[-1].due, taken[-1].id) if taken else book.mark(target)
        book.advance(target, mark)
        behind = [i for due, i in returned if (due, i) in chosen]
        taken += [
            d
            for d in self._rows_by_id(behind)
            if (d.due, d.id) in chosen and book.claimable(d.id, now)  # not moved nor leased
        ]
        taken.sort(key=lambda d: (d.due, d.id))
        book.lease(owner, target, [(d.due, d.id) for d in taken], now + lease)
        book.forget_if_idle(target)
        next_due = min(book.next_due(target, owner), later)
        return Claim(taken, None if next_due == math.inf else next_due)

    def _read_after_mark(
        self, target: str, now: float, limit: int
    ) -> tuple[list[Delivery], Position, float]:
        """Up to ``limit`` claimable records due by ``now`` after the target's mark, the
        position of the last record read, and the due time of the first record after
        it (inf: none). One indexed range read, unless leased records stand in the
        range, which happens only in a rare race (see :mod:`.leases`)."""
        mark = self._leases.mark(target)
        fresh: list[Delivery] = []
        while True:
            want = limit - len(fresh)
            rows = self._query(_SELECT_AFTER, (target, mark[0], mark[1], want + 1))
            for row in rows:
                delivery = Delivery(*row)
                if delivery.due > now or len(fresh) == limit:
                    return fresh, mark, delivery.due
                mark = (delivery.due, delivery.id)
                if self._leases.claimable(delivery.id, now):
                    fresh.append(delivery)
            if len(rows) <= want:
                return fresh, mark, math.inf

    async def renew_leases(self, owner: str, ids: Sequence[int], lease: float) -> list[int]:
        self._check_open()
        if lease <= 0:
            raise ValueError(f"lease must be positive, not {lease}")
        return self._leases.renew(owner, ids, self._clock() + lease)

    async def settle(
        self,
        owner: str,
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, float, int]] = (),
        dead: Sequence[tuple[int, NewMessage | None]] = (),
        messages: Sequence[tuple[int, NewMessage]] = (),
    ) -> list[int]:
        self._check_open()
        ids = [*done, *(i for i, _, _ in retry), *(i for i, _ in dead)]
        if not ids:
            return [i for i, _ in messages]  # a message without its settle is not written
        sent_at = time.time()
        book = self._leases
        held: set[int] = set()
        lost: list[int] = []
        moved = {i: due for i, due, _ in retry}
        notes = self._notes()

        def write(conn: sqlite3.Connection) -> _Counted:
            # Ownership is decided here, as the write runs: a lease that ends between the
            # call and the batch is lost, not overwritten.
            mine, refused = book.begin_settle(owner, ids)
            held.update(mine)
            lost.extend(refused)
            deleted = [(i,) for i in done if i in mine] + [(i,) for i, _ in dead if i in mine]
            retried = [(due, attempts, i) for i, due, attempts in retry if i in mine]
            sends = [m for i, m in messages if i in mine]
            sends += [m for i, m in dead if m is not None and i in mine]
            if notes is not None:
                notes.queues.update(m.queue for m in sends)
                # records released due now are ready again for whoever claims them
                released = [i for i, due, _ in retry if i in mine and due <= sent_at]
                if released:
                    notes.targets.update(_targets_of(conn, released))
            counted = _settle(conn, deleted, retried, _message_rows(sends, sent_at))
            if notes is not None:
                notes.queues.update(m.queue for m in sends)
                ready = [i for i in released if i in mine]
                if ready:
                    notes.targets.update(_targets_of(conn, ready))
            return _Counted(list(lost), counted.delta)

        def ended(ok: bool) -> None:
            book.end_settle(held, ok, moved)

        refused: list[int] = await self._write_counted(write, notes, ended)
        unsettled = set(ids)
        return refused + [i for i, _ in messages if i not in unsettled]

    def _rows_by_id(self, ids: Sequence[int]) -> list[Delivery]:
        """The pending records with these ids (bytes from the log where shared)."""
        rows: list[Row] = []
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            rows += self._query(f"{_SELECT_DELIVERIES} WHERE d.id IN ({marks})", chunk)
        return sorted((Delivery(*row) for row in rows), key=lambda d: (d.due, d.id))

    def _arrived(self, first_id: int, deliveries: Sequence[NewDelivery]) -> None:
        by_target: dict[str, list[Position]] = {}
        for n, d in enumerate(deliveries):
            by_target.setdefault(d.target, []).append((d.due, first_id + n))
        for target, positions in by_target.items():
            self._leases.arrived(target, positions)

    # -- queues ----------------------------------------------------------------------------

    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        rows = _message_rows(messages, time.time())
        if not rows:
            self._check_open()
            return []
        notes = self._notes()
        if notes is not None:
            notes.queues.update(m.queue for m in messages)
        return await self._write(lambda c: _insert_messages(c, rows), notes)

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        if redrive is not None and redrive[1] < 1:
            raise ValueError(f"max_receive_count must be at least 1, not {redrive[1]}")
        if max_messages < 1:
            return []
        # redrive moves wake the dead-letter queue's polls: only actual moves, so two
        # queues that dead-letter into each other never wake each other for nothing
        notes = self._notes() if redrive is not None else None
        return await self._write(
            lambda c: _queue_receive(
                c,
                queue,
                max_messages=max_messages,
                visibility_timeout=visibility_timeout,
                now=now,
                redrive=redrive,
                notes=notes,
            ),
            notes,
        )

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        return await self._write(
            lambda c: _by_receipt(c, "DELETE FROM messages", (), queue, receipt)
        )

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        # a message made visible at once is news for the queue's long polls
        notes = self._notes() if timeout <= 0 else None

        def write(conn: sqlite3.Connection) -> bool:
            changed = _by_receipt(
                conn, "UPDATE messages SET visible_at=?", (now + timeout,), queue, receipt
            )
            if changed and notes is not None:
                notes.queues.add(queue)
            return changed

        return await self._write(write, notes)

    async def queue_purge(self, queue: str) -> None:
        def purge(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE queue=?", (queue,))
            conn.execute("DELETE FROM message_dedup WHERE queue=?", (queue,))

        await self._write(purge)

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        ((visible, in_flight, delayed),) = self._query(
            "SELECT coalesce(sum(visible_at<=?1), 0),"
            " coalesce(sum(visible_at>?1 AND receive_count>0), 0),"
            " coalesce(sum(visible_at>?1 AND receive_count=0), 0)"
            " FROM messages WHERE queue=?2",
            (now, queue),
        )
        return int(visible), int(in_flight), int(delayed)

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        ((due,),) = self._query(
            "SELECT min(visible_at) FROM messages WHERE queue=? AND visible_at>?", (queue, now)
        )
        return None if due is None else float(due)

    async def queue_oldest(self, queue: str) -> float | None:
        ((sent,),) = self._query("SELECT min(sent) FROM messages WHERE queue=?", (queue,))
        return None if sent is None else float(sent)
