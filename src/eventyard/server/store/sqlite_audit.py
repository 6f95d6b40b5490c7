"""The SQLite store's audit part: the log by time window, its retention, archives, trace.

The tables are made by ``migrations/0005_audit.sql``; :class:`Audit` serves the audit
methods of :class:`~eventyard.server.store.sqlite.SQLiteStore` on the store's reader
connection and its group-committing writer; :func:`ingest_marks` and
:func:`write_archives` run inside ingest's transaction.

**The log's time index is sparse: marks, not an index entry per event.** ``log_marks``
holds, per bus and whole second of ingestion time, the first and last seq of that bus's
records in that second. A window ``[since, until)`` becomes the seq range from the
smallest first seq to the largest last seq of its seconds' marks; the log is read in
that range by its primary key (seq), filtered by time and bus. That is exact whatever
the times are (a record whose clock stepped back widens its second's range, and the
time filter drops what the wider range brings in), and proportional to the window
while ingestion times are nearly monotonic, which the server's clock makes them. Ingest
upserts one mark per (bus, second) per ingest call (one, almost always), where an index
on ``log(time)`` adds one b-tree entry per event. Measured with ``bench/store.py
--variant`` (50 coroutines × 10 events of ~600 bytes with a delivery each, 3 s runs,
5 interleaved rounds, medians, this 2-core machine):

=====================================  ==========  =========
variant                                events/s    vs none
=====================================  ==========  =========
no time index (before this change)     see below
marks (this module)
index on log(time)
=====================================  ==========  =========

**Retention** (:meth:`Audit.expire_log`) finds the seq range of the expired seconds from
the marks and deletes it in chunks of :data:`LOG_CHUNK` seqs, each chunk its own write in
the writer's group commit: a huge expiry never holds the writer (which runs its
statements on the event loop) for longer than one chunk, and other writes commit between
chunks. The log's ``BEFORE DELETE`` trigger (``0001``) gives pending deliveries their
event's bytes. Marks of seconds wholly expired are dropped with the last chunk. The file
keeps SQLite's default ``auto_vacuum=NONE``: deleted pages go to the freelist and new
rows reuse them, so under steady ingest and retention the file stays the same size
(``tests/server/store/test_store_sqlite.py`` checks it); it never shrinks by itself.

**Archives.** ``archives`` gives each archive key (any string) a small integer id and
keeps its event count and body bytes, updated in the transactions that add or delete its
records, so :meth:`Audit.archive_stats` is one primary-key read. An archive's record
``seq`` is ``(floor(event time) << 29) | n``, ``n`` counting from 1 within the archive
and second: the primary key ``(archive, seq)`` is in event time order, so a window of
event time is one range of it whatever order the events arrived in, and paging by
``seq`` continues in that range. Retention reads the ``(archive, archived)`` index.

**The trace journal** is a plain table indexed by ``(key, time)`` for reads and by
``time`` for retention; entries are written by their own writes (group-committed with
the others), never in an ingest.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Final, TypeVar

from eventyard.errors import StoreError
from eventyard.server.store.protocol import ArchiveRecord, LogRecord, NewEvent, TraceEntry

__all__ = [
    "ARCHIVE_CHUNK",
    "LOG_CHUNK",
    "TRACE_CHUNK",
    "Audit",
    "MarkBook",
    "ingest_marks",
    "rebuild_derived",
    "write_archives",
]

T = TypeVar("T")
Row = tuple[Any, ...]
Query = Callable[[str, Sequence[Any]], list[Row]]
Write = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]

#: log seqs one retention write covers (≈ 1-5 ms of the writer each)
LOG_CHUNK: Final = 2048
#: archive records one retention or drop write deletes
ARCHIVE_CHUNK: Final = 2048
#: trace entries one retention write deletes
TRACE_CHUNK: Final = 4096
# Keys bound in one ``IN (...)`` list, well below SQLite's limit on bound parameters.
_KEYS_PER_QUERY: Final = 500

# Seconds are clamped to what SQLite's integers and float comparisons hold exactly.
_SECOND_MIN: Final = -(2**53)
_SECOND_MAX: Final = 2**53
# An archive record's seq: the event time's second (clamped to [0, _SLOT_MAX]) above
# _SLOT_BITS bits of a counter; the largest seq stays below 2**63.
_SLOT_BITS: Final = 29
_SLOT_MASK: Final = (1 << _SLOT_BITS) - 1
_SLOT_MAX: Final = 2**34 - 2

_UPSERT_MARK: Final = (
    "INSERT INTO log_marks (bus, second, first_seq, last_seq) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (bus, second) DO UPDATE"
    " SET first_seq=min(first_seq, excluded.first_seq), last_seq=max(last_seq, excluded.last_seq)"
)
_MARKS_OF_BUS: Final = (
    "SELECT min(first_seq), max(last_seq) FROM log_marks WHERE bus=? AND second BETWEEN ? AND ?"
)
_MARKS_OF_ALL: Final = (
    "SELECT min(first_seq), max(last_seq) FROM log_marks WHERE second BETWEEN ? AND ?"
)
_WINDOW: Final = (
    "SELECT seq, event_id, bus, time, body FROM log"
    " WHERE seq BETWEEN ? AND ? AND time>=? AND time<?"
)
_INSERT_ARCHIVED: Final = (
    "INSERT INTO archive_events (archive, seq, event_id, time, archived, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_TRACE: Final = "INSERT INTO trace (key, time, kind, target, detail) VALUES (?, ?, ?, ?, ?)"

#: what :func:`ingest_marks` makes of a batch of events: (bus, second, first, last index)
Marks = Sequence[tuple[str, int, int, int]]
#: an archive record to write: (archive key, event id, event time, archived, body)
ArchiveRow = tuple[str, str, float, float, bytes]


def _second(t: float) -> int:
    """``floor(t)``, clamped to the seconds SQLite compares exactly."""
    if math.isnan(t):
        raise ValueError("a time must be a number, not NaN")
    if t <= _SECOND_MIN:
        return _SECOND_MIN
    if t >= _SECOND_MAX:
        return _SECOND_MAX
    return math.floor(t)


def _last_second_before(t: float) -> int:
    """The last second that can hold a time below ``t``: ``ceil(t) - 1``, clamped."""
    if math.isnan(t):
        raise ValueError("a time must be a number, not NaN")
    if t <= _SECOND_MIN:
        return _SECOND_MIN
    if t >= _SECOND_MAX:
        return _SECOND_MAX
    return math.ceil(t) - 1


def _slot(second: int) -> int:
    return min(max(second, 0), _SLOT_MAX)


def _check_window(since: float, until: float) -> None:
    if math.isnan(since) or math.isnan(until):
        raise ValueError("a time window's bounds must be numbers, not NaN")


# -- inside ingest's transaction ---------------------------------------------------------------


def ingest_marks(events: Sequence[NewEvent]) -> Marks:
    """The marks a batch of events sets: per (bus, second), the indexes in ``events`` of
    its first and last event. Built before the write is queued; validates the times.

    On the ingest path: the events of one call almost always share one bus and second,
    which a few loops in C tell (≈ 2 µs for 10 events); otherwise each event costs a
    comparison with the second of its bus's previous event (≈ 0.3 µs).

    Raises:
        ValueError: an event's time is NaN.
    """
    if not events:
        return []
    times = [e.time for e in events]
    low, high = min(times), max(times)
    # sum is NaN if a time is NaN, which min and max may not show
    if not math.isnan(sum(times)) and low > _SECOND_MIN and high < _SECOND_MAX:
        second = math.floor(low)
        if math.floor(high) == second:
            buses = {e.bus for e in events}
            if len(buses) == 1:
                return [(buses.pop(), second, 0, len(events) - 1)]
    found: dict[tuple[str, int], list[int]] = {}
    # per bus, the second its last event fell in and that second's mark
    current: dict[str, tuple[int, int, list[int]]] = {}
    for i, e in enumerate(events):
        t = e.time
        last = current.get(e.bus)
        if last is not None and last[0] <= t < last[1]:  # False for NaN
            last[2][1] = i
            continue
        second = _second(t)
        mark = found.setdefault((e.bus, second), [i, i])
        mark[1] = i
        current[e.bus] = (second, second + 1, mark)
    return [(bus, s, first, last) for (bus, s), (first, last) in found.items()]


class MarkBook:
    """The time marks of one batch's ingests, merged per (bus, second) and written once,
    in the batch's transaction, just before it commits (:meth:`write`)."""

    def __init__(self) -> None:
        self._marks: dict[tuple[str, int], list[int]] = {}

    def add(self, first_seq: int, marks: Marks) -> None:
        """Note the marks of events numbered from ``first_seq`` (:func:`ingest_marks`)."""
        book = self._marks
        for bus, second, first, last in marks:
            found = book.get((bus, second))
            if found is None:
                book[bus, second] = [first_seq + first, first_seq + last]
            else:
                found[0] = min(found[0], first_seq + first)
                found[1] = max(found[1], first_seq + last)

    def write(self, conn: sqlite3.Connection) -> None:
        """Upsert the noted marks and forget them."""
        if not self._marks:
            return
        rows = [(bus, second, first, last) for (bus, second), (first, last) in self._marks.items()]
        self._marks.clear()
        conn.executemany(_UPSERT_MARK, rows)

    def clear(self) -> None:
        """Forget the noted marks (their batch failed)."""
        self._marks.clear()


def archive_rows(events: Sequence[NewEvent]) -> list[ArchiveRow]:
    """The archive records a batch of events makes (empty when no event is archived).

    Raises:
        ValueError: an archived event's time is NaN.
    """
    rows: list[ArchiveRow] = []
    for e in events:
        if e.archives:
            at = e.event_time or e.time
            _second(at)
            rows.extend((key, e.event_id, at, e.time, e.body) for key in e.archives)
    return rows


def write_archives(conn: sqlite3.Connection, rows: Sequence[ArchiveRow]) -> None:
    """Insert archive records and count them in their archives' totals.

    Raises:
        StoreError: an archive holds ``2**29 - 1`` records of one second of event time
            already (its seq numbers for that second are used up).
    """
    by_archive: dict[str, list[ArchiveRow]] = {}
    for row in rows:
        by_archive.setdefault(row[0], []).append(row)
    inserts: list[Row] = []
    totals: list[Row] = []
    for key, records in by_archive.items():
        archive = _archive_id(conn, key, create=True)
        assert archive is not None
        by_slot: dict[int, list[ArchiveRow]] = {}
        for row in records:
            by_slot.setdefault(_slot(_second(row[2])), []).append(row)
        for slot, group in by_slot.items():
            base = slot << _SLOT_BITS
            (top,) = conn.execute(
                "SELECT max(seq) FROM archive_events WHERE archive=? AND seq BETWEEN ? AND ?",
                (archive, base + 1, base + _SLOT_MASK),
            ).fetchall()[0]
            used = 0 if top is None else int(top) - base
            if used + len(group) > _SLOT_MASK:
                raise StoreError(
                    f"archive {key!r} holds {used} events of one second already: no room"
                )
            inserts += [
                (archive, base + used + 1 + i, event_id, at, archived, body)
                for i, (_, event_id, at, archived, body) in enumerate(group)
            ]
        totals.append((len(records), sum(len(r[4]) for r in records), archive))
    conn.executemany(_INSERT_ARCHIVED, inserts)
    conn.executemany("UPDATE archives SET events=events+?, bytes=bytes+? WHERE id=?", totals)


def _archive_id(conn: sqlite3.Connection, key: str, *, create: bool = False) -> int | None:
    rows = conn.execute("SELECT id FROM archives WHERE key=?", (key,)).fetchall()
    if rows:
        return int(rows[0][0])
    if not create:
        return None
    cursor = conn.execute("INSERT INTO archives (key) VALUES (?)", (key,))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def rebuild_derived(conn: sqlite3.Connection) -> None:
    """Recompute what the audit tables derive from rows (the log's marks, the archives'
    totals), after a repair copied rows into a fresh file (part of them may be lost)."""
    conn.execute("DELETE FROM log_marks")
    conn.execute(
        "INSERT INTO log_marks (bus, second, first_seq, last_seq)"
        " SELECT bus, CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)), min(seq), max(seq)"
        " FROM log GROUP BY 1, 2"
    )
    conn.execute(
        "UPDATE archives SET"
        " events=(SELECT count(*) FROM archive_events WHERE archive=archives.id),"
        " bytes=(SELECT coalesce(sum(length(body)), 0) FROM archive_events"
        " WHERE archive=archives.id)"
    )


# -- write operations of the audit methods (each one write of the group commit) -----------------


def _expire_log_chunk(
    conn: sqlite3.Connection,
    *,
    first: int,
    last: int,
    before: float,
    bus: str | None,
    prune: tuple[int, int] | None,
) -> int:
    """Delete the records of seqs ``first..last`` ingested before ``before``; with
    ``prune=(second, top_seq)``, drop the marks of seconds below ``second`` whose
    records all had seqs up to ``top_seq`` (all of them expired now)."""
    sql = "DELETE FROM log WHERE seq BETWEEN ? AND ? AND time<?"
    args: list[Any] = [first, last, before]
    if bus is not None:
        sql += " AND bus=?"
        args.append(bus)
    deleted = conn.execute(sql, args).rowcount
    if prune is not None:
        below, top = prune
        if bus is None:
            conn.execute("DELETE FROM log_marks WHERE second<? AND last_seq<=?", (below, top))
        else:
            conn.execute(
                "DELETE FROM log_marks WHERE bus=? AND second<? AND last_seq<=?",
                (bus, below, top),
            )
    return int(deleted)


def _delete_archived(
    conn: sqlite3.Connection, key: str, before: float | None, *, forget: bool
) -> int:
    """Delete up to :data:`ARCHIVE_CHUNK` records of archive ``key`` (those archived
    before ``before``, or any); with ``forget``, the archive's row goes with its last
    record. Returns how many were deleted."""
    archive = _archive_id(conn, key)
    if archive is None:
        return 0
    if before is None:
        rows = conn.execute(
            "SELECT rowid, length(body) FROM archive_events WHERE archive=? LIMIT ?",
            (archive, ARCHIVE_CHUNK),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT rowid, length(body) FROM archive_events WHERE archive=? AND archived<? LIMIT ?",
            (archive, before, ARCHIVE_CHUNK),
        ).fetchall()
    if rows:
        conn.executemany("DELETE FROM archive_events WHERE rowid=?", [(r[0],) for r in rows])
        conn.execute(
            "UPDATE archives SET events=events-?, bytes=bytes-? WHERE id=?",
            (len(rows), sum(r[1] for r in rows), archive),
        )
    if forget and len(rows) < ARCHIVE_CHUNK:
        conn.execute("DELETE FROM archives WHERE id=?", (archive,))
    return len(rows)


def _expire_trace_chunk(conn: sqlite3.Connection, before: float) -> int:
    return int(
        conn.execute(
            "DELETE FROM trace WHERE n IN (SELECT n FROM trace WHERE time<? ORDER BY time LIMIT ?)",
            (before, TRACE_CHUNK),
        ).rowcount
    )


# -- the methods ------------------------------------------------------------------------------


class Audit:
    """The audit methods of one SQLite store, over its reader and its writer.

    Args:
        query: runs one read on the reader connection (checks the store is open,
            translates errors).
        write: queues one write function in the writer's group commit and awaits it.
    """

    def __init__(self, query: Query, write: Write) -> None:
        self._query = query
        self._write = write

    # -- the log by time ----------------------------------------------------------------------

    def read_log_window(
        self, bus: str | None, since: float, until: float, after_seq: int, limit: int
    ) -> list[LogRecord]:
        _check_window(since, until)
        span = self._log_span(bus, _second(since), _last_second_before(until))
        if span is None or limit < 1 or not since < until:
            return []
        first, last = max(span[0], after_seq + 1), span[1]
        if first > last:
            return []
        sql = _WINDOW
        args: list[Any] = [first, last, since, until]
        if bus is not None:
            sql += " AND bus=?"
            args.append(bus)
        rows = self._query(sql + " ORDER BY seq LIMIT ?", [*args, limit])
        return [LogRecord(*row) for row in rows]

    def _log_span(self, bus: str | None, low: int, high: int) -> tuple[int, int] | None:
        """The seq range the marks of seconds ``low..high`` span (of ``bus``, or all)."""
        if bus is None:
            rows = self._query(_MARKS_OF_ALL, (low, high))
        else:
            rows = self._query(_MARKS_OF_BUS, (bus, low, high))
        first, last = rows[0]
        return None if first is None else (int(first), int(last))

    async def expire_log(self, before: float, bus: str | None) -> int:
        top = _last_second_before(before)
        span = self._log_span(bus, _SECOND_MIN, top)
        if span is None:
            return 0
        first, last = span
        deleted = 0
        while first <= last:
            end = min(first + LOG_CHUNK - 1, last)
            prune = (_second(before), last) if end == last else None
            deleted += await self._write(
                partial(
                    _expire_log_chunk, first=first, last=end, before=before, bus=bus, prune=prune
                )
            )
            first = end + 1
        return deleted

    # -- archives -------------------------------------------------------------------------------

    def read_archive(
        self, archive: str, since: float, until: float, after_seq: int, limit: int
    ) -> list[ArchiveRecord]:
        _check_window(since, until)
        rows = self._query("SELECT id FROM archives WHERE key=?", (archive,))
        if not rows or limit < 1 or not since < until:
            return []
        low = max(_slot(_second(since)) << _SLOT_BITS, after_seq + 1)
        high = ((_slot(_last_second_before(until)) + 1) << _SLOT_BITS) - 1
        found = self._query(
            "SELECT seq, event_id, time, body FROM archive_events"
            " WHERE archive=? AND seq BETWEEN ? AND ? AND time>=? AND time<?"
            " ORDER BY seq LIMIT ?",
            (rows[0][0], low, high, since, until, limit),
        )
        return [ArchiveRecord(*row) for row in found]

    def archive_stats(self, archive: str) -> tuple[int, int]:
        rows = self._query("SELECT events, bytes FROM archives WHERE key=?", (archive,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def expire_archive(self, archive: str, before: float) -> int:
        if math.isnan(before):
            raise ValueError("a time must be a number, not NaN")
        deleted = 0
        while True:
            n: int = await self._write(
                partial(_delete_archived, key=archive, before=before, forget=False)
            )
            deleted += n
            if n < ARCHIVE_CHUNK:
                return deleted

    async def drop_archive(self, archive: str) -> None:
        while await self._write(partial(_delete_archived, key=archive, before=None, forget=True)):
            pass

    # -- the trace journal -------------------------------------------------------------------------

    async def trace_append(self, entries: Sequence[TraceEntry]) -> None:
        rows = [(e.key, e.time, e.kind, e.target, e.detail) for e in entries]
        if any(math.isnan(row[1]) for row in rows):
            raise ValueError("a trace entry's time must be a number, not NaN")
        await self._write(lambda conn: conn.executemany(_INSERT_TRACE, rows))

    def trace_read(self, keys: Sequence[str], since: float) -> list[TraceEntry]:
        unique = list(dict.fromkeys(keys))
        rows: list[Row] = []
        for start in range(0, len(unique), _KEYS_PER_QUERY):
            chunk = unique[start : start + _KEYS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            rows += self._query(
                "SELECT time, n, key, kind, target, detail FROM trace"
                f" WHERE key IN ({marks}) AND time>=?",
                [*chunk, since],
            )
        rows.sort(key=lambda r: (r[0], r[1]))
        return [
            TraceEntry(key, at, kind, target, detail) for at, _, key, kind, target, detail in rows
        ]

    async def expire_trace(self, before: float) -> int:
        if math.isnan(before):
            raise ValueError("a time must be a number, not NaN")
        deleted = 0
        while True:
            n: int = await self._write(partial(_expire_trace_chunk, before=before))
            deleted += n
            if n < TRACE_CHUNK:
                return deleted
