"""What is particular to the SQLite store's audit part: the time marks and their query
plans, chunked retention, a compact file, the migration of an older log.

The contract (what every store answers) is ``test_store_audit.py``.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.server.store import NewEvent, TraceEntry
from eventyard.server.store import sqlite_audit as audit
from eventyard.server.store.sqlite import SQLiteStore
from eventyard.server.store.sqlite_files import MIGRATIONS

T0 = 1_800_000_000.0
BODY = b'{"detail":"' + b"x" * 600 + b'"}'


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "eventyard.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(str(db_path)) as store:
        yield store


def events(first: int, count: int, t: float, archives: tuple[str, ...] = ()) -> list[NewEvent]:
    return [NewEvent(f"e{first + n}", "b", t + n * 0.001, BODY, archives) for n in range(count)]


def plan(db: SQLiteStore, sql: str, args: tuple[Any, ...]) -> str:
    conn = db._reader
    assert conn is not None
    return " / ".join(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


async def test_window_reads_are_index_seeks_and_ranges(db: SQLiteStore) -> None:
    """A window's seq range is two seeks in the marks; the log is read by that range, an
    archive by (archive, seq), the trace by (key, time): never a scan of a table."""
    for sql in (audit.FROM_MARK, audit.UPTO_MARK):
        found = plan(db, sql, ("b", 1))
        assert found.startswith("SEARCH log_marks USING PRIMARY KEY (bus=? AND second"), found
    window = plan(db, audit._WINDOW + " AND bus=? ORDER BY seq LIMIT ?", (1, 2, 1.0, 2.0, "b", 9))
    assert window == "SEARCH log USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
    archived = plan(
        db,
        "SELECT seq FROM archive_events WHERE archive=? AND seq BETWEEN ? AND ?"
        " AND time>=? AND time<? ORDER BY seq LIMIT ?",
        (1, 1, 2, 1.0, 2.0, 9),
    )
    assert "(archive=? AND seq>? AND seq<?)" in archived and "SCAN" not in archived
    traced = plan(db, "SELECT * FROM trace WHERE key IN (?, ?) AND time>=?", ("a", "b", 1.0))
    assert traced == "SEARCH trace USING INDEX trace_by_key (key=? AND time>?)"


async def test_marks_bound_each_second_of_a_clock_that_steps_back(db: SQLiteStore) -> None:
    """from_seq: the smallest seq at this second or later; upto_seq: the largest at this
    second or earlier; per bus, and for every bus together (bus '')."""
    await db.ingest([NewEvent("e1", "a", T0 + 10.5, b"{}"), NewEvent("e2", "b", T0 + 12, b"{}")])
    await db.ingest([NewEvent("e3", "a", T0 + 11, b"{}"), NewEvent("e4", "a", T0 + 9, b"{}")])
    conn = db._reader
    assert conn is not None
    marks = conn.execute(
        "SELECT bus, second - ?, from_seq, upto_seq FROM log_marks ORDER BY bus, second",
        (int(T0),),
    ).fetchall()
    assert marks == [
        ("", 9, 1, 4),
        ("", 10, 1, 4),
        ("", 11, 2, 4),
        ("", 12, 2, 4),
        ("a", 9, 1, 4),
        ("a", 10, 1, 4),
        ("a", 11, 3, 4),
        ("b", 12, 2, 2),
    ]


async def test_a_log_of_an_older_store_gets_its_time_marks(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    for statement in (s for migration in MIGRATIONS[:4] for s in migration):
        conn.execute(statement)
    conn.execute("PRAGMA user_version=4")
    times = [-2.5, -0.5, 0.5, T0, T0 + 0.9, T0 + 1.2, T0 - 3]  # the last stepped back
    conn.executemany(
        "INSERT INTO log (event_id, bus, time, body) VALUES (?, ?, ?, ?)",
        [(f"e{n}", "b" if n % 2 else "a", t, b"{}") for n, t in enumerate(times)],
    )
    conn.close()
    async with SQLiteStore(str(db_path)) as store:
        found = await store.read_log_window(None, -1.0, 1.0)
        assert [r.event_id for r in found] == ["e1", "e2"]
        assert [r.event_id for r in await store.read_log_window("a", T0 - 5, T0 + 2)] == [
            "e4",
            "e6",
        ]
        assert [r.event_id for r in await store.read_log_window(None, -math.inf, math.inf)] == [
            f"e{n}" for n in range(7)
        ]


async def test_retention_deletes_in_chunks_that_other_writes_commit_between(
    db: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "LOG_CHUNK", 10)
    for n in range(10):
        await db.ingest(events(n * 10, 10, T0 + n))
    writes = db.writes
    expiry = asyncio.ensure_future(db.expire_log(T0 + 100))
    await db.catalog_put("k", "meanwhile", {})
    assert not expiry.done()  # the put committed between two chunks of the expiry
    assert await expiry == 100
    assert db.writes - writes >= 10 + 1
    assert await db.read_log() == []
    # the marks of the seconds wholly expired went with the last chunk
    assert await db.read_log_window(None, -math.inf, math.inf) == []
    conn = db._reader
    assert conn is not None
    assert conn.execute("SELECT count(*) FROM log_marks").fetchall() == [(0,)]


async def test_the_file_stays_the_same_size_under_steady_ingest_and_retention(
    db: SQLiteStore,
) -> None:
    """Retention frees pages that later ingests reuse (auto_vacuum is off): once the
    retained window is full the file does not grow."""
    conn = db._reader
    assert conn is not None
    sizes = []
    for cycle in range(8):
        t = T0 + cycle * 10
        for n in range(0, 1000, 100):
            await db.ingest(events(cycle * 1000 + n, 100, t))
        await db.trace_append([TraceEntry(f"e{cycle}", t, "attempt", "b/r/t", b"{}")] * 50)
        await db.expire_log(t - 5)  # keep the newest cycle
        await db.expire_trace(t - 5)
        sizes.append(conn.execute("PRAGMA page_count").fetchall()[0][0])
    assert len(await db.read_log(0, 10_000)) == 1000
    assert max(sizes[2:]) <= sizes[1] * 1.05, sizes


async def test_an_archive_numbers_its_records_in_event_time_order(db: SQLiteStore) -> None:
    arrivals = [T0 + 30, T0 + 10, T0 + 20, T0 + 10.5, T0 - 5000]
    await db.ingest(
        [
            NewEvent(f"e{n}", "b", T0 + 100 + n, b"{}", ("acct/x",), event_time=t)
            for n, t in enumerate(arrivals)
        ]
    )
    records = await db.read_archive("acct/x", -math.inf, math.inf)
    assert [r.event_id for r in records] == ["e4", "e1", "e3", "e2", "e0"]
    assert records[1].seq >> 29 == records[2].seq >> 29 == int(T0 + 10)  # one second
    assert records[2].seq == records[1].seq + 1


async def test_nan_times_are_refused(db: SQLiteStore) -> None:
    nan = math.nan
    with pytest.raises(ValueError, match="NaN"):
        await db.ingest([NewEvent("e", "b", nan, b"{}")])
    with pytest.raises(ValueError, match="NaN"):
        await db.ingest([NewEvent("e", "b", T0, b"{}", ("acct/x",), event_time=nan)])
    with pytest.raises(ValueError, match="NaN"):
        await db.read_log_window("b", nan, T0)
    with pytest.raises(ValueError, match="NaN"):
        await db.read_archive("acct/x", T0, nan)
    with pytest.raises(ValueError, match="NaN"):
        await db.expire_log(nan)
    with pytest.raises(ValueError, match="NaN"):
        await db.trace_append([TraceEntry("e", nan, "attempt", "t", b"{}")])
    assert await db.read_log() == []


async def test_rebuild_derived_restores_marks_and_archive_totals(
    db: SQLiteStore, db_path: Path
) -> None:
    await db.ingest(events(0, 5, T0, archives=("acct/x",)))
    totals = await db.archive_stats("acct/x")
    await db.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DELETE FROM log_marks")
    conn.execute("UPDATE archives SET events=0, bytes=0")
    audit.rebuild_derived(conn)
    conn.close()
    async with SQLiteStore(str(db_path)) as store:
        assert len(await store.read_log_window("b", T0, T0 + 1)) == 5
        assert await store.archive_stats("acct/x") == totals == (5, 5 * len(BODY))
