"""The SQLite store's audit part: the log by time window, its retention, archives, trace.

The tables are made by ``migrations/0005_audit.sql``; :class:`Audit` serves the audit
methods of :class:`~eventyard.server.store.sqlite.SQLiteStore` on the store's reader
connection and its group-committing writer; :func:`ingest_marks` and
:func:`write_archives` run inside ingest's transaction.

**The log's time index is sparse: marks, not an index entry per event.** ``log_marks``
holds one row per bus and whole second of ingestion time that has records (and the same
for every bus together, bus ``''``): ``from_seq``, the smallest seq of the bus's records
at that second *or later*, and ``upto_seq``, the largest at that second *or earlier*. A
window ``[since, until)`` holds seconds ``low..high``; its records lie between the
``from_seq`` of the first mark at or after ``low`` and the ``upto_seq`` of the last mark
at or before ``high``: two seeks, then the log is read by its primary key (seq) over that
range, filtered by time and bus. That is exact whatever the times are (a clock that steps
back widens the ranges of the seconds around it, and the time filter drops what they
bring in) and proportional to the window (of every bus) while ingestion times are nearly
monotonic, which the server's clock makes them. Each page of a window costs the same two
seeks: a first version kept (min, max) seq per second and aggregated over the window's
seconds, which made each page cost the window's width (paging a 1-day window of the 10M
log of ``bench/search.py``: 16 s, against 100 ms for 1 hour).

The ingest path notes its events' (bus, second) in the writer's :class:`MarkBook`
(≈ 2 µs per call), and the writer upserts them once per group-commit batch, before its
COMMIT (four statements, for the bus and for every bus), where an index on
``log(time)`` adds one b-tree entry per event. ``bench/log_index.py`` measures the CPU of
the store's ingest statements per 10-event ingest (one delivery each, 50 ingests a
batch; variants interleaved batch by batch; this shared 2-core machine, loaded): no index
111-144 µs, marks +4 to +8 %, index on ``log(time)`` +16 to +17 % (three runs). Whole
ingests (``bench/store.py``, fsync included, interleaved runs against the code before
this index): a median ratio of 1.00, within the machine's noise (±40 % per run).

**Retention** (:meth:`Audit.expire_log`) finds the seq range of the expired seconds from
the marks and deletes it in chunks of :data:`LOG_CHUNK` seqs, each chunk its own write in
the writer's group commit: a huge expiry never holds the writer (which runs its
statements on the event loop) for longer than one chunk, and other writes commit between
chunks. The log's ``BEFORE DELETE`` trigger (``0001``) gives pending deliveries their
event's bytes. Then the marks of seconds wholly expired are dropped, in chunks too
(dropping a day's 432,000 marks of 4 buses in one write held the loop 1.5 s). The file
keeps SQLite's default ``auto_vacuum=NONE``: deleted pages go to the freelist and new
rows reuse them, so under steady ingest and retention the file stays the same size
(``tests/server/store/test_store_sqlite_audit.py`` checks it); it never shrinks by itself.

**Archives.** ``archives`` gives each archive key (any string) a small integer id and
keeps its event count and body bytes, updated in the transactions that add or delete its
records, so :meth:`Audit.archive_stats` is one primary-key read. An archive's record
``seq`` is ``(floor(event time) << 29) | n``, ``n`` counting from 1 within the archive
and second: the primary key ``(archive, seq)`` is in event time order, so a window of
event time is one range of it whatever order the events arrived in, and paging by
``seq`` continues in that range. Retention reads the ``(archive, archived)`` index.

**The trace journal** is a plain table indexed by ``(key, time)`` for reads; entries are
written by their own writes (group-committed with the others), never in an ingest. It
is written in time order, give or take one flush of the journal's writer, so retention
walks it in rowid order from the oldest and needs no index on time: an entry written
out of time order goes when the rows written before it have gone. That saves one of
the three B-tree writes of each entry, the bulk of tracing's cost.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Final, TypeVar

from eventyard.errors import StoreError
from eventyard.server.store.protocol import ArchiveRecord, LogRecord, NewEvent, TraceEntry

__all__ = [
    "ALL_BUSES",
    "ARCHIVE_CHUNK",
    "FROM_MARK",
    "LOG_CHUNK",
    "MARK_CHUNK",
    "TRACE_CHUNK",
    "UPTO_MARK",
    "ArchiveRow",
    "Audit",
    "MarkBook",
    "Marks",
    "archive_rows",
    "ingest_marks",
    "rebuild_derived",
    "write_archives",
]

T = TypeVar("T")
Row = tuple[Any, ...]
Query = Callable[[str, Sequence[Any]], list[Row]]
Write = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]

#: log seqs one retention write covers (≈ 4 ms of the writer each here, 10 ms loaded)
LOG_CHUNK: Final = 1024
#: log seqs one query of a bus's window examines before yielding to the event loop
SCAN_CHUNK: Final = 4096
#: marks one retention write drops (a day of seconds has 86,400 per bus)
MARK_CHUNK: Final = 4096
#: archive records one retention or drop write deletes
ARCHIVE_CHUNK: Final = 1024
#: trace entries one retention write deletes
TRACE_CHUNK: Final = 2048
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

#: the marks series of every bus together (bus names are never empty)
ALL_BUSES: Final = ""
# A mark (bus, second, from, upto): a new one's from_seq is also bounded by the next
# mark's (records of later seconds may have smaller seqs: the clock stepped back).
_UPSERT_MARK: Final = (
    "INSERT INTO log_marks (bus, second, from_seq, upto_seq) VALUES (?1, ?2,"
    " min(?3, coalesce((SELECT from_seq FROM log_marks WHERE bus=?1 AND second>?2"
    " ORDER BY second LIMIT 1), ?3)), ?4)"
    " ON CONFLICT (bus, second) DO UPDATE"
    " SET from_seq=min(from_seq, excluded.from_seq), upto_seq=max(upto_seq, excluded.upto_seq)"
)
# ... and its upto_seq bounds every later mark's (empty unless the clock stepped back)
_RAISE_LATER: Final = "UPDATE log_marks SET upto_seq=?1 WHERE bus=?2 AND second>?3 AND upto_seq<?1"
#: (second, from_seq) of a bus's first mark at or after a second
FROM_MARK: Final = (
    "SELECT second, from_seq FROM log_marks WHERE bus=? AND second>=? ORDER BY second LIMIT 1"
)
#: (second, upto_seq) of a bus's last mark at or before a second
UPTO_MARK: Final = (
    "SELECT second, upto_seq FROM log_marks WHERE bus=? AND second<=? ORDER BY second DESC LIMIT 1"
)
# The marks of a whole log (a migrated or repaired store): from_seq is a suffix minimum,
# upto_seq a prefix maximum over each bus's seconds.
_MARKS_OF_LOG: Final = """
INSERT INTO log_marks (bus, second, from_seq, upto_seq)
SELECT bus, second,
    min(first) OVER (PARTITION BY bus ORDER BY second DESC ROWS UNBOUNDED PRECEDING),
    max(last) OVER (PARTITION BY bus ORDER BY second ROWS UNBOUNDED PRECEDING)
FROM (
    SELECT bus, CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)) AS second,
        min(seq) AS first, max(seq) AS last
    FROM log GROUP BY 1, 2
    UNION ALL
    SELECT '', CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)), min(seq), max(seq)
    FROM log GROUP BY 2
)
"""
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
        # (bus, second) -> [smallest seq, largest seq] of the batch's records there
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
        """Upsert the noted marks and forget them.

        The batch's records have the newest seqs, so within each bus a mark's from_seq is
        the smallest first seq of the batch's marks at its second or later (and of the
        next stored mark, which the upsert reads), and its upto_seq the largest last seq
        of the batch's marks at its second or earlier; stored marks of later seconds are
        raised to it (none, unless the clock stepped back).
        """
        if not self._marks:
            return
        by_bus: dict[str, list[tuple[int, int, int]]] = {}
        every: dict[int, list[int]] = {}  # the series of every bus, merged here once a batch
        for (bus, second), (first, last) in self._marks.items():
            by_bus.setdefault(bus, []).append((second, first, last))
            found = every.get(second)
            if found is None:
                every[second] = [first, last]
            else:
                found[0] = min(found[0], first)
                found[1] = max(found[1], last)
        self._marks.clear()
        by_bus[ALL_BUSES] = [(second, first, last) for second, (first, last) in every.items()]
        upserts: list[Row] = []
        raises: list[Row] = []
        for bus, marks in by_bus.items():
            marks.sort()
            froms: list[int] = []
            low = math.inf
            for _, first, _ in reversed(marks):
                low = min(low, first)
                froms.append(int(low))
            froms.reverse()
            high = 0
            for (second, _, last), from_seq in zip(marks, froms, strict=True):
                high = max(high, last)
                upserts.append((bus, second, from_seq, high))
                raises.append((high, bus, second))
        conn.executemany(_UPSERT_MARK, upserts)
        conn.executemany(_RAISE_LATER, raises)

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
    conn.execute(_MARKS_OF_LOG)
    conn.execute(
        "UPDATE archives SET"
        " events=(SELECT count(*) FROM archive_events WHERE archive=archives.id),"
        " bytes=(SELECT coalesce(sum(length(body)), 0) FROM archive_events"
        " WHERE archive=archives.id)"
    )


# -- write operations of the audit methods (each one write of the group commit) -----------------


def _expire_log_chunk(
    conn: sqlite3.Connection, *, first: int, last: int, before: float, bus: str | None
) -> int:
    """Delete the records of seqs ``first..last`` ingested before ``before``."""
    sql = "DELETE FROM log WHERE seq BETWEEN ? AND ? AND time<?"
    args: list[Any] = [first, last, before]
    if bus is not None:
        sql += " AND bus=?"
        args.append(bus)
    return int(conn.execute(sql, args).rowcount)


def _prune_marks(conn: sqlite3.Connection, *, bus: str | None, below: int, top: int) -> int:
    """Drop up to :data:`MARK_CHUNK` marks of seconds below ``below`` whose records all
    had seqs up to ``top`` (all of them expired now): of ``bus``, or of every bus."""
    if bus is None:
        keys = "SELECT bus, second FROM log_marks WHERE second<? AND upto_seq<=? LIMIT ?"
        args: list[Any] = [below, top, MARK_CHUNK]
    else:
        keys = "SELECT bus, second FROM log_marks WHERE bus=? AND second<? AND upto_seq<=? LIMIT ?"
        args = [bus, below, top, MARK_CHUNK]
    return int(
        conn.execute(f"DELETE FROM log_marks WHERE (bus, second) IN ({keys})", args).rowcount
    )


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


def _expire_trace_chunk(
    conn: sqlite3.Connection, after: int, before: float
) -> tuple[int, int | None, int]:
    """Delete the expired entries of the next :data:`TRACE_CHUNK` rows after rowid
    ``after``: ``(deleted, the chunk's last rowid or None at the end, rows in it)``."""
    rows = conn.execute(
        "SELECT n FROM trace WHERE n>? ORDER BY n LIMIT ?", (after, TRACE_CHUNK)
    ).fetchall()
    if not rows:
        return 0, None, 0
    last = int(rows[-1][0])
    deleted = conn.execute(
        "DELETE FROM trace WHERE n>? AND n<=? AND time<?", (after, last, before)
    ).rowcount
    return int(deleted), last, len(rows)


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

    async def read_log_window(
        self, bus: str | None, since: float, until: float, after_seq: int, limit: int
    ) -> list[LogRecord]:
        """The window's records after ``after_seq``. Of one bus, the rows between its
        first and last marks are examined :data:`SCAN_CHUNK` seqs at a time (the other
        buses' records of the window are read too), yielding to the event loop between
        chunks: a quiet bus in a busy log costs the window's records, in short steps."""
        _check_window(since, until)
        span = self._log_span(bus, _second(since), _last_second_before(until))
        if span is None or limit < 1 or not since < until:
            return []
        first, last = max(span[0], after_seq + 1), span[1]
        if bus is None:
            if first > last:
                return []
            rows = self._query(
                _WINDOW + " ORDER BY seq LIMIT ?", [first, last, since, until, limit]
            )
            return [LogRecord(*row) for row in rows]
        found: list[LogRecord] = []
        while first <= last and len(found) < limit:
            end = min(first + SCAN_CHUNK - 1, last)
            rows = self._query(
                _WINDOW + " AND bus=? ORDER BY seq LIMIT ?",
                [first, end, since, until, bus, limit - len(found)],
            )
            found += [LogRecord(*row) for row in rows]
            first = end + 1
            if first <= last and len(found) < limit:
                await asyncio.sleep(0)
        return found

    def _log_span(self, bus: str | None, low: int, high: int) -> tuple[int, int] | None:
        """The seq range holding the records of seconds ``low..high`` (of ``bus``, or of
        every bus), None if there are none: two seeks in the marks."""
        series = ALL_BUSES if bus is None else bus
        first = self._query(FROM_MARK, (series, low))
        if not first or first[0][0] > high:
            return None
        last = self._query(UPTO_MARK, (series, high))
        return int(first[0][1]), int(last[0][1])

    async def expire_log(self, before: float, bus: str | None) -> int:
        top = _last_second_before(before)
        span = self._log_span(bus, _SECOND_MIN, top)
        if span is None:
            return 0
        first, last = span
        deleted = 0
        while first <= last:
            end = min(first + LOG_CHUNK - 1, last)
            deleted += await self._write(
                partial(_expire_log_chunk, first=first, last=end, before=before, bus=bus)
            )
            first = end + 1
        prune = partial(_prune_marks, bus=bus, below=_second(before), top=last)
        while await self._write(prune) == MARK_CHUNK:
            pass
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
        # the journal is written in time order, so rowid order is nearly time order: walk
        # it chunk by chunk while chunks hold expired entries (an entry stamped ahead by
        # a clock step does not stop the walk; the first chunk with none does)
        deleted, after = 0, 0
        while True:
            step: tuple[int, int | None, int] = await self._write(
                partial(_expire_trace_chunk, after=after, before=before)
            )
            n, last, size = step
            deleted += n
            if last is None or n == 0 or size < TRACE_CHUNK:
                return deleted
            after = last
