"""The embedded SQLite store: one file, WAL mode, one writer doing group commit.

Everything eventyard must not lose lives in one SQLite database (see
:mod:`eventyard.server.store` for the protocol). The file runs in WAL mode with
``synchronous=FULL``: COMMIT returns only after the WAL is fsynced, so a write whose
coroutine has returned survives ``kill -9`` and power loss. :class:`SQLiteStore` serves
the protocol; its parts live beside it:

- :mod:`.sqlite_files`: opening the file, its numbered migrations, the integrity checks
  at start-up (the WAL against its commit mark, then ``quick_check``) and the clean close.
- :mod:`.sqlite_writer`: the one write connection and its group commit: every write
  (catalog put, ingest, settle, queue send/receive/delete…) is a small function of that
  connection, run with the others queued in the same loop iteration in one transaction,
  each under its own savepoint; statements run on the loop, COMMIT on a dedicated
  thread (its module docstring has the measurements behind that choice).
- :mod:`.sqlite_catalog`: the catalog and its change feed: each row carries its per-key
  revision and the global revision of its latest change, so the feed is the table read
  in that order (compacted to the latest change per key; tombstones are kept).
- :mod:`.sqlite_audit`: the log by time window, log retention, archives, the trace
  journal; ingest notes its events' time marks in the writer's
  :class:`~.sqlite_audit.MarkBook`, which the writer upserts once per batch, just before
  COMMIT, and writes archive copies only for events that name archives.
- :mod:`.sqlite_deliveries`: pending delivery records, their claims with leases kept in
  memory (:mod:`.leases`), and settles.
- :mod:`.sqlite_queues`: SQS queues: messages, receipts, FIFO groups, dead-letter moves.

This module holds the store itself and ingest, which writes a request's log records,
deliveries and queue messages in one write.

**Reads** use a second connection, on the loop, for the reason the writer's statements
run there (:mod:`.sqlite_writer`): a WAL reader never waits for the writer, and each
read is one autocommit statement, so it sees every write whose future has resolved. Page
big reads (``read_log``) with modest limits.

**Deliveries share bytes with the log.** A delivery's event (and usually its payload)
is the envelope the log already holds; the row then points at the log record instead
of repeating ~2 × 600 bytes, which tripled the bytes written per event and cost a third
of the ingest rate. A trigger copies the bytes into the delivery if the log record is
ever deleted.

**Pending deliveries are counted, not scanned.** The store counts the pending delivery
records once when it opens; from then on every committed ingest and settle moves the
count by the rows it inserted or deleted (:meth:`SQLiteStore.pending_count`), which
ingest reads on every request to throttle.

**Listeners** (:meth:`SQLiteStore.listen`) hear of every committed write's catalog
changes, new deliveries and queue messages: each write records its notes as it runs
(:mod:`.listeners`), and the writer tells them once the batch is committed, before any
of its callers resumes; a rolled-back write's notes are dropped.

The store belongs to the event loop that opened it, and assumes it is the only writer of
its file (another process writing would make the loop wait on SQLite's lock).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

import orjson

from eventyard.errors import StoreError
from eventyard.server.store import sqlite_audit as audit
from eventyard.server.store import sqlite_catalog as catalog
from eventyard.server.store import sqlite_queues as queues
from eventyard.server.store.filelock import StoreLock
from eventyard.server.store.leases import LeaseBook
from eventyard.server.store.listeners import Notes
from eventyard.server.store.protocol import (
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
from eventyard.server.store.sqlite_deliveries import Deliveries
from eventyard.server.store.sqlite_files import (
    Row,
    close_quietly,
    connect,
    fetch_all,
    store_error,
)
from eventyard.server.store.sqlite_writer import Counted, Writer

__all__ = ["SQLiteStore"]

T = TypeVar("T")


_INSERT_LOG: Final = "INSERT INTO log (event_id, bus, time, body) VALUES (?, ?, ?, ?)"
_INSERT_DELIVERY: Final = (
    "INSERT INTO deliveries (target, event_id, seq, event, payload, first_seen, due)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


# -- ingest (runs inside a batch's transaction, under its own savepoint) ------------------


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
        queues.insert_messages(conn, messages)
    return first_id


def _last_rowid(conn: sqlite3.Connection) -> int:
    return int(fetch_all(conn, "SELECT last_insert_rowid()")[0][0])


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
        self._writer = Writer(path)
        self._lock = StoreLock(path + ".lock")
        self._reader: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"
        self._audit = audit.Audit(self._query, self._write)
        self._deliveries = Deliveries(
            self._query, self._write_counted, self._notes, self._leases, clock
        )
        self._queues = queues.Queues(self._query, self._write, self._notes, self._check_open)

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
        store probes with a tiny write every :data:`~.sqlite_writer.PROBE_INTERVAL` seconds.
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
            self._reader = connect(self.path, writer=False)
        except sqlite3.Error as exc:
            await self._writer.stop()
            self._writer.close_mark()
            self._lock.release()
            raise store_error(f"cannot open {self.path}", exc) from exc
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
            close_quietly(self._reader)
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
        fn: Callable[[sqlite3.Connection], Counted],
        notes: Notes | None = None,
        on_outcome: Callable[[bool], None] | None = None,
    ) -> Any:
        # The writer unwraps the Counted: the caller gets its value.
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
        # and forth once per row (see .sqlite_writer's docstring).
        self._check_open()
        assert self._reader is not None
        try:
            return fetch_all(self._reader, sql, args)
        except sqlite3.Error as exc:
            raise store_error("read failed", exc) from exc

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
        message_rows = queues.message_rows(messages, time.time())
        claim_doc = None if claim is None else catalog.encode_doc(claim.doc)
        notes = self._notes()
        if notes is not None:
            notes.targets.update(d.target for d in deliveries)
            notes.queues.update(m.queue for m in messages)

        first_ids: list[int] = []

        def write(conn: sqlite3.Connection) -> Counted:
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
            return Counted(first, len(delivery_rows))

        def committed(ok: bool) -> None:
            # records created behind a target's claim mark must be found by its claims
            if ok and first_ids and deliveries:
                self._deliveries.arrived(first_ids[0], deliveries)

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

    # -- deliveries, claims, settles (see .sqlite_deliveries) ---------------------------

    async def pending_deliveries(self, after_id: int = 0, limit: int = 1000) -> list[Delivery]:
        return await self._deliveries.pending_deliveries(after_id, limit)

    async def pending_targets(self) -> list[str]:
        return await self._deliveries.pending_targets()

    def pending_count(self) -> int:
        """Pending delivery records: counted once at open, then kept by the writer."""
        self._check_open()
        return self._writer.pending

    def now(self) -> float:
        return self._clock()

    async def claim_deliveries(self, owner: str, target: str, limit: int, lease: float) -> Claim:
        self._check_open()
        return await self._deliveries.claim_deliveries(owner, target, limit, lease)

    async def renew_leases(self, owner: str, ids: Sequence[int], lease: float) -> list[int]:
        self._check_open()
        return await self._deliveries.renew_leases(owner, ids, lease)

    async def settle(
        self,
        owner: str,
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, float, int]] = (),
        dead: Sequence[tuple[int, NewMessage | None]] = (),
        messages: Sequence[tuple[int, NewMessage]] = (),
    ) -> list[int]:
        self._check_open()
        return await self._deliveries.settle(owner, done, retry, dead, messages)

    # -- queues (see .sqlite_queues) ------------------------------------------------------

    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        return await self._queues.queue_send(messages)

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        return await self._queues.queue_receive(
            queue, max_messages, visibility_timeout, now, redrive
        )

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        return await self._queues.queue_delete(queue, receipt)

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        return await self._queues.queue_change_visibility(queue, receipt, timeout, now)

    async def queue_purge(self, queue: str) -> None:
        await self._queues.queue_purge(queue)

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        return await self._queues.queue_counts(queue, now)

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        return await self._queues.queue_next_visible(queue, now)

    async def queue_oldest(self, queue: str) -> float | None:
        return await self._queues.queue_oldest(queue)
