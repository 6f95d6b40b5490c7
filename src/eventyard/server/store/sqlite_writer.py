"""The SQLite store's writer: one connection, group commit, COMMIT on its own thread.

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
the next batch queues. Opening, migrating and the final checkpoint at close
(:mod:`.sqlite_files`) run there too.

**After each commit** the writer moves its count of pending delivery records by what
the batch's :class:`Counted` writes inserted or deleted, calls each write's
``on_outcome`` hook (told whether the write committed), and tells the store's listeners
the committed writes' notes, all before any caller wakes. Before each COMMIT it writes
the batch's log time marks (:class:`~.sqlite_audit.MarkBook`); after it, the commit
mark (:mod:`.wal`).

**Write failures.** While the disk refuses writes (full, I/O error), :attr:`Writer.failure`
says why, and the writer probes with a tiny write every :data:`PROBE_INTERVAL` seconds
until one succeeds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eventyard.errors import StoreError
from eventyard.server.store import sqlite_audit as audit
from eventyard.server.store.listeners import Listeners, Notes
from eventyard.server.store.sqlite_files import abort, close_writer, open_writer, store_error
from eventyard.server.store.wal import MarkWriter

__all__ = [
    "MAX_BATCH",
    "PROBE_INTERVAL",
    "Counted",
    "Write",
    "Writer",
    "commit_batch",
    "execute_batch",
    "fail_all",
    "set_outcomes",
]

# The most writes one transaction takes; bounds a batch's latency and memory under a flood.
MAX_BATCH: Final = 1024
# SQLITE_READONLY, SQLITE_IOERR (and its extended codes), SQLITE_FULL, SQLITE_CANTOPEN:
# the disk refuses writes; they may succeed again once it has room or comes back
_DISK_CODES: Final = frozenset({8, 10, 13, 14})
#: seconds between probe writes while the disk refuses writes
PROBE_INTERVAL: Final = 1.0


@dataclass(slots=True, frozen=True)
class Counted:
    """A write's result, and how it changed the number of pending deliveries.

    The writer applies ``delta`` to its count once the write is committed, whatever
    became of its caller (cancelled callers included), so the count never drifts.
    """

    value: Any
    delta: int


@dataclass(slots=True)
class Write:
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


class Writer:
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
        self._pending: list[Write] = []
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
            self._conn = await loop.run_in_executor(committer, open_writer, self.path, self._mark)
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
        self._pending.append(Write(fn, future, notes=notes, on_outcome=on_outcome))
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
            await loop.run_in_executor(committer, close_writer, conn, self._mark)
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
        if not execute_batch(conn, batch):
            self.marks.clear()
            self._failed(batch[0].error)
            self._finish(batch)
            return
        try:
            # the batch's time marks, in its transaction (sqlite_audit.MarkBook)
            self.marks.write(conn)
        except sqlite3.Error as exc:
            abort(conn)
            fail_all(batch, exc)
            self._failed(exc)
            self._finish(batch)
            return
        self._committing = True
        self._start_commit(batch)

    def _start_commit(self, batch: list[Write]) -> None:
        assert self._loop is not None and self._conn is not None
        commit = self._loop.run_in_executor(self._committer, commit_batch, self._conn, self._mark)
        commit.add_done_callback(lambda done: self._committed(batch, done.exception()))

    def _committed(self, batch: list[Write], exc: BaseException | None) -> None:
        self._committing = False
        if exc is None:
            self.commits += 1
            self._recovered()
        else:
            assert self._conn is not None
            abort(self._conn)
            fail_all(batch, exc)
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

    def _finish(self, batch: list[Write]) -> None:
        self.writes += len(batch)
        committed = Notes()
        for w in batch:
            # a write without error here is committed (a failed batch failed them all)
            if type(w.result) is Counted:
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
        set_outcomes(batch)
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


def _is_disk_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DISK_CODES


def _probe_write(conn: sqlite3.Connection) -> None:
    # rewrites the header's user_version with its own value: a real page write and fsync
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version = {int(version)}")


def commit_batch(conn: sqlite3.Connection, mark: MarkWriter) -> None:
    """COMMIT the batch's transaction, then record the commit mark (on the commit thread)."""
    # The one place the writer waits for the disk: the WAL append, its fsync and, every
    # 1000 pages (SQLite's default; 4096 measured the same within noise), the checkpoint.
    conn.execute("COMMIT")
    # After the fsync, before any caller is told: the mark never runs ahead of the WAL,
    # and every acknowledged transaction is in it.
    mark.record()


def execute_batch(conn: sqlite3.Connection, batch: Sequence[Write]) -> bool:
    """Run ``batch`` in a new transaction, one savepoint per write, without committing.

    Fills in each write's ``result`` or ``error``; a write that raises is rolled back to
    its savepoint and fails alone. Returns False if the whole transaction is gone (BEGIN
    failed, or SQLite aborted it: I/O error, disk full…): then every write has failed.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        fail_all(batch, exc)
        return False
    for w in batch:
        try:
            conn.execute("SAVEPOINT w")
            w.result = w.fn(conn)
            conn.execute("RELEASE w")
        except Exception as exc:
            if not conn.in_transaction:
                # The writes that "succeeded" before this one are gone too.
                fail_all(batch, exc)
                return False
            try:
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
            except sqlite3.Error as rollback_exc:
                abort(conn)
                fail_all(batch, rollback_exc)
                return False
            w.result, w.error = None, exc
    return True


def fail_all(batch: Sequence[Write], exc: BaseException) -> None:
    """Fail every write of ``batch`` with ``exc`` (as a StoreError unless it is one, or
    sqlite3's)."""
    if not isinstance(exc, sqlite3.Error | StoreError):
        # Whatever aborted the transaction, for the others in it this is a store failure.
        error = StoreError(f"SQLite store: transaction aborted: {exc!r}")
        error.__cause__ = exc
        exc = error
    for w in batch:
        w.result, w.error = None, exc


def set_outcomes(writes: Sequence[Write]) -> None:
    """Resolve the future of each write whose caller still waits."""
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
        return store_error("write failed", exc)
    if isinstance(exc, StoreError):
        error = StoreError(str(exc))
        error.__cause__ = exc.__cause__
        return error
    return exc
