"""What is particular to the SQLite store: group commit, failures, migrations, pragmas.

These tests may look inside the store (its file, its writer) where the contract suite
must not.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.errors import ConcurrentModification, StoreError
from eventyard.server.store import (
    CatalogEntry,
    NewDelivery,
    NewEvent,
    NewMessage,
    open_store,
    sqlite_files,
    sqlite_writer,
)
from eventyard.server.store.sqlite import SQLiteStore
from eventyard.server.store.sqlite_files import MIGRATIONS, load_migrations


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "eventyard.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(str(db_path)) as store:
        yield store


def peek(db_path: Path, sql: str) -> list[Any]:
    """Read the file with a separate plain connection, as an operator's shell would."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- group commit ----------------------------------------------------------------------------


async def test_concurrent_writes_share_one_commit(db: SQLiteStore) -> None:
    commits, writes = db.commits, db.writes
    revisions = await asyncio.gather(*(db.catalog_put("k", str(n), {"n": n}) for n in range(200)))
    assert revisions == [1] * 200
    assert (db.commits - commits, db.writes - writes) == (1, 200)
    assert len(await db.catalog_list("k")) == 200


async def test_a_lone_write_commits_at_once_without_waiting_for_company(db: SQLiteStore) -> None:
    commits = db.commits
    for n in range(5):
        await db.catalog_put("k", str(n), {})
    assert db.commits - commits == 5


async def test_a_flood_is_committed_in_batches_of_at_most_max_batch(db: SQLiteStore) -> None:
    commits = db.commits
    count = 2 * sqlite_writer.MAX_BATCH + 100
    await asyncio.gather(*(db.queue_send([NewMessage("q", str(n))]) for n in range(count)))
    assert db.commits - commits == 3
    assert await db.queue_counts("q", 0.0) == (0, 0, count)  # visible later than t=0


async def test_a_failing_write_fails_alone_and_the_rest_of_its_batch_commits(
    db: SQLiteStore,
) -> None:
    (taken,) = await db.queue_send([NewMessage("q", "first")])
    base = await db.catalog_put("k", "x", {"v": 0})
    commits = db.commits
    results = await asyncio.gather(
        db.catalog_put("k", "a", {}),
        db.catalog_put("k", "x", {"v": 1}, expect_revision=base + 5),
        db.queue_send([NewMessage("q", "dup", message_id=taken)]),
        db.ingest([NewEvent("e1", "default", 1.0, b"{}")]),
        return_exceptions=True,
    )
    assert db.commits - commits == 1
    assert results[0] == 1
    assert isinstance(results[1], ConcurrentModification)
    assert isinstance(results[2], StoreError)
    assert isinstance(results[2].__cause__, sqlite3.IntegrityError)
    assert "UNIQUE" in str(results[2])
    assert results[3] == []
    assert [r.event_id for r in await db.read_log()] == ["e1"]
    entry = await db.catalog_get("k", "x")
    assert entry is not None and entry.doc == {"v": 0}


async def test_a_failed_commit_fails_every_caller_of_the_batch(
    db: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_commit(conn: sqlite3.Connection, mark: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_writer, "commit_batch", broken_commit)
    results = await asyncio.gather(
        *(db.catalog_put("k", str(n), {}) for n in range(5)),
        db.ingest([NewEvent("e1", "default", 1.0, b"{}")]),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results)
    assert all("disk I/O error" in str(r) for r in results)
    # Six distinct exception objects: each caller gets its own traceback.
    assert len({id(r) for r in results}) == 6
    monkeypatch.undo()
    # Nothing of the failed batch is there, and the store still works.
    assert await db.catalog_list("k") == []
    assert await db.read_log() == []
    assert await db.catalog_put("k", "after", {}) == 1
    assert [e.key for e in await db.catalog_list("k")] == ["after"]


async def test_a_write_that_aborts_the_transaction_fails_the_whole_batch(
    db: SQLiteStore,
) -> None:
    # SQLite rolls a whole transaction back on some errors (I/O, disk full); a write that
    # ends the transaction itself has the same effect on the writes before it.
    def aborts(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")

    async def abort() -> None:
        await db._writer.submit(aborts)

    commits = db.commits
    results = await asyncio.gather(
        db.catalog_put("k", "before", {}),
        abort(),
        db.catalog_put("k", "after", {}),
        return_exceptions=True,
    )
    assert db.commits == commits
    assert all(isinstance(r, StoreError) for r in results), results
    assert await db.catalog_list("k") == []
    assert await db.catalog_put("k", "later", {}) == 1


async def test_a_write_cancelled_before_its_batch_runs_is_not_written(db: SQLiteStore) -> None:
    commits = db.commits
    task = asyncio.ensure_future(db.catalog_put("k", "cancelled", {}))
    await asyncio.sleep(0)  # the task queues its write; the batch runs one iteration later
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.catalog_get("k", "cancelled") is None
    assert db.commits == commits


async def test_reads_see_each_write_as_soon_as_it_returns(db: SQLiteStore) -> None:
    for n in range(20):
        await db.catalog_put("k", "x", {"n": n})
        entry = await db.catalog_get("k", "x")
        assert entry is not None and entry.doc == {"n": n}


# -- file, pragmas, migrations -----------------------------------------------------------------


async def test_the_file_is_in_wal_mode_with_full_sync(db: SQLiteStore, db_path: Path) -> None:
    assert peek(db_path, "PRAGMA journal_mode") == [("wal",)]
    conn = db._writer._conn
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchall() == [(2,)]  # FULL


async def test_a_new_file_is_migrated_to_the_latest_version(db: SQLiteStore, db_path: Path) -> None:
    assert peek(db_path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    tables = {row[0] for row in peek(db_path, "SELECT name FROM sqlite_master")}
    assert {"catalog", "log", "deliveries", "messages", "messages_by_visibility"} <= tables


async def test_each_migration_is_applied_once_and_in_order(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLiteStore(str(db_path)) as store:
        await store.catalog_put("k", "kept", {})
    monkeypatch.setattr(
        sqlite_files,
        "MIGRATIONS",
        (
            *MIGRATIONS,
            ("CREATE TABLE applied (n INTEGER)", "INSERT INTO applied VALUES (2)"),
            ("INSERT INTO applied SELECT max(n) + 1 FROM applied",),
        ),
    )
    for _ in range(3):
        async with SQLiteStore(str(db_path)) as store:
            assert await store.catalog_get("k", "kept") is not None
    assert peek(db_path, "SELECT n FROM applied") == [(2,), (3,)]
    assert peek(db_path, "PRAGMA user_version") == [(len(MIGRATIONS) + 2,)]


async def test_a_catalog_of_an_older_store_enters_the_feed_in_key_order(db_path: Path) -> None:
    """Migration 4 numbers the documents of an older store 1..n, tombstones included
    (as deletes), and later changes go on from there."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    for statement in (s for migration in MIGRATIONS[:2] for s in migration):
        conn.execute(statement)
    conn.execute("PRAGMA user_version=2")
    conn.executemany(
        "INSERT INTO catalog (kind, key, doc, revision) VALUES (?, ?, ?, ?)",
        [("rule", "b/r", '{"n": 1}', 4), ("bus", "z", None, 2), ("bus", "a", "{}", 1)],
    )
    conn.close()
    async with SQLiteStore(str(db_path)) as store:
        changes = await store.catalog_changes()
        assert [(c.revision, c.kind, c.key) for c in changes] == [
            (1, "bus", "a"),
            (2, "bus", "z"),
            (3, "rule", "b/r"),
        ]
        assert changes[1].entry is None
        assert changes[2].entry == CatalogEntry("rule", "b/r", {"n": 1}, 4)
        assert await store.catalog_revision() == 3
        assert await store.catalog_put("bus", "z", {}) == 3  # the tombstone's count goes on
        assert [(c.revision, c.key) for c in await store.catalog_changes(after=3)] == [(4, "z")]


async def test_tombstones_stay_in_the_feed(db: SQLiteStore, db_path: Path) -> None:
    for n in range(50):
        await db.catalog_put("rule", f"b/r{n}", {})
        await db.catalog_delete("rule", f"b/r{n}")
    deletes = [c for c in await db.catalog_changes() if c.entry is None]
    assert len(deletes) == 50
    assert peek(db_path, "SELECT count(*) FROM catalog WHERE doc IS NULL") == [(50,)]


def test_migration_files_split_into_whole_statements(tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text(
        "-- a comment\nCREATE TABLE t (x TEXT DEFAULT ';');\n\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t\nBEGIN\n    SELECT 1; SELECT 2;\nEND;\n"
    )
    (tmp_path / "0002_second.sql").write_text("DROP TABLE t;")
    (tmp_path / "notes.sql").write_text("not a migration")
    assert load_migrations(tmp_path) == (
        (
            "CREATE TABLE t (x TEXT DEFAULT ';');",
            "CREATE TRIGGER t_ins AFTER INSERT ON t\nBEGIN\n    SELECT 1; SELECT 2;\nEND;",
        ),
        ("DROP TABLE t;",),
    )


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"0001_a.sql": "SELECT 1;", "0003_c.sql": "SELECT 3;"}, "not numbered"),
        ({"0002_b.sql": "SELECT 2;"}, "not numbered"),
        ({"0001_a.sql": "CREATE TABLE t (x"}, "ends inside a statement"),
    ],
)
def test_bad_migration_files_are_refused(tmp_path: Path, files: dict[str, str], error: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(RuntimeError, match=error):
        load_migrations(tmp_path)


async def test_a_file_from_a_newer_eventyard_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this eventyard supports"):
        await SQLiteStore(str(db_path)).open()


async def test_a_file_that_is_not_a_database_is_a_store_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="is damaged and was not opened") as caught:
        await SQLiteStore(str(db_path)).open()
    assert isinstance(caught.value.__cause__, sqlite3.Error)


async def test_a_directory_as_the_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        await SQLiteStore(str(tmp_path)).open()


async def test_missing_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        await store.catalog_put("k", "x", {})
    assert path.is_file()


async def test_use_before_open_is_a_store_error(db_path: Path) -> None:
    store = SQLiteStore(str(db_path))
    with pytest.raises(StoreError, match="not open"):
        await store.catalog_get("k", "x")
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.open()


async def test_use_from_another_event_loop_is_a_store_error(db: SQLiteStore) -> None:
    with pytest.raises(StoreError, match="event loop"):
        await asyncio.to_thread(asyncio.run, db.catalog_get("k", "x"))


async def test_open_store_picks_sqlite_by_url_or_directory(tmp_path: Path) -> None:
    by_url = open_store(f"sqlite://{tmp_path}/url.db")
    by_dir = open_store(str(tmp_path / "dir") + "/")
    assert isinstance(by_url, SQLiteStore) and by_url.path == f"{tmp_path}/url.db"
    assert isinstance(by_dir, SQLiteStore) and by_dir.path == f"{tmp_path}/dir/eventyard.db"
    with pytest.raises(StoreError, match="unknown store URL"):
        open_store("redis://localhost")


async def test_a_catalog_document_that_is_not_json_is_a_type_error(db: SQLiteStore) -> None:
    with pytest.raises(TypeError, match="not JSON"):
        await db.catalog_put("k", "x", {"bad": object()})


async def test_redrive_needs_a_positive_max_receive_count(db: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="max_receive_count"):
        await db.queue_receive("q", 1, 30, 0.0, ("dlq", 0))


# -- deliveries share the log's bytes ---------------------------------------------------------


async def test_a_delivery_of_a_logged_event_stores_its_bytes_once(
    db: SQLiteStore, db_path: Path
) -> None:
    body = b'{"detail":"' + b"x" * 1000 + b'"}'
    await db.ingest(
        [NewEvent("e1", "default", 1.0, body)],
        [
            NewDelivery("plain", "e1", body, body, 1.0, 1.0),
            NewDelivery("rendered", "e1", b"rendered", body, 1.0, 1.0),
        ],
    )
    rows = peek(db_path, "SELECT target, seq, event, payload FROM deliveries ORDER BY id")
    assert rows == [("plain", 1, None, None), ("rendered", 1, None, b"rendered")]


async def test_deleting_log_records_keeps_the_events_of_pending_deliveries(
    db: SQLiteStore, db_path: Path
) -> None:
    events = [NewEvent(f"e{n}", "default", float(n), f'{{"n":{n}}}'.encode()) for n in range(3)]
    stored = await db.ingest(
        events, [NewDelivery("t", e.event_id, e.body, e.body, 1, 1) for e in events]
    )
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM log WHERE seq <= 2")
    conn.commit()
    conn.close()
    assert [r.event_id for r in await db.read_log()] == ["e2"]
    assert await db.pending_deliveries() == stored


# -- queues: the SQLite store judges visibility by the ``now`` it is given -------------------
# The contract (test_store_queues.py) runs on real time for every store; the SQLite store
# also takes any ``now``, which these tests use to check its exact times and counts.


async def test_queue_visibility_follows_the_given_now(db: SQLiteStore) -> None:
    await db.queue_send([NewMessage("q", "m")])
    now = time.time()
    (first,) = await db.queue_receive("q", 10, 30, now)
    assert await db.queue_receive("q", 10, 30, now + 29.9) == []
    (again,) = await db.queue_receive("q", 10, 30, now + 30)
    assert (again.message_id, again.receive_count, again.first_receive) == (
        first.message_id,
        2,
        now,
    )
    (old_enough,) = await db.queue_receive("q", 10, 30, now + 61)
    assert await db.queue_delete("q", again.receipt) is False
    assert await db.queue_delete("q", old_enough.receipt) is True


async def test_queue_counts_and_next_visible_are_exact(db: SQLiteStore) -> None:
    await db.queue_send([NewMessage("q", body) for body in "abcd"])
    await db.queue_send([NewMessage("q", "delayed", delay=600)])
    now = time.time()
    first, *_ = await db.queue_receive("q", 3, 50, now)
    assert await db.queue_counts("q", now) == (1, 3, 1)
    assert await db.queue_change_visibility("q", first.receipt, 20, now)
    assert await db.queue_next_visible("q", now) == now + 20
    assert await db.queue_next_visible("q", now + 20) == now + 50
    # once the timeout ends the received ones count as visible again
    assert await db.queue_counts("q", now + 50) == (4, 0, 1)
    assert await db.queue_next_visible("q", now + 50) is not None  # the delayed one
    assert await db.queue_counts("q", now + 600) == (5, 0, 0)
    assert await db.queue_next_visible("q", now + 600) is None


async def test_sqlite_claims_page_through_a_backlog_in_due_order(tmp_path: Path) -> None:
    """SQLite keeps one (due, id) order across claims, not only within one."""
    async with SQLiteStore(str(tmp_path / "claims.db")) as store:
        now = store.now()
        body = b'{"id": "e"}'
        dues = [now - 100 + n % 7 for n in range(25)]
        stored = await store.ingest(
            [NewEvent("e", "b", now, body)],
            [NewDelivery("b/r/t", "e", body, body, now, due) for due in dues],
        )
        flat = []
        while claim := (await store.claim_deliveries("a", "b/r/t", 4, 300.0)).deliveries:
            flat += claim
        assert flat == sorted(stored, key=lambda d: (d.due, d.id))
