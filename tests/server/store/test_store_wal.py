"""The WAL check at start-up: every crash opens, every loss of committed data is refused.

A "crash" here is a copy of the store's files taken while it is open and idle between
commits: what ``kill -9`` leaves (the page cache keeps every write). A torn transaction
is built from two such copies, one before and one after a commit that was never
acknowledged. ``store recover`` is checked on the same damaged files.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

from eventyard.errors import StoreError
from eventyard.server.store import NewEvent
from eventyard.server.store.repair import check, recover
from eventyard.server.store.sqlite import SQLiteStore
from eventyard.server.store.wal import (
    FRAME_HEADER,
    MARK_SUFFIX,
    WAL_HEADER,
    CommitMark,
    judge,
    read_mark,
    scan,
    wal_checksum,
)

_FILES = ("", "-wal", MARK_SUFFIX)


def _event(i: int) -> NewEvent:
    return NewEvent(f"id-{i}", "default", 0.0, b'{"n": %d, "pad": "%s"}' % (i, b"x" * 1500))


def _snapshot(path: Path, into: Path) -> Path:
    """The store's files as kill -9 would leave them (no -shm: SQLite rebuilds it)."""
    into.mkdir(parents=True, exist_ok=True)
    for suffix in _FILES:
        source = Path(str(path) + suffix)
        if source.exists():
            shutil.copyfile(source, str(into / "eventyard.db") + suffix)
    return into / "eventyard.db"


async def _crashed(tmp_path: Path, events: int, more: int = 0) -> tuple[Path, Path | None]:
    """A crashed store holding ``events`` events; with ``more``, also a copy taken after
    ``more`` further events (one transaction each) to cut a torn tail from."""
    path = tmp_path / "live" / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        for i in range(events):
            await store.ingest([_event(i)])
        crashed = _snapshot(path, tmp_path / "crashed")
        later = None
        if more:
            for i in range(events, events + more):
                await store.ingest([_event(i)])
            later = _snapshot(path, tmp_path / "later")
    return crashed, later


async def _event_ids(path: Path) -> list[str]:
    async with SQLiteStore(str(path)) as store:
        return [r.event_id for r in await store.read_log(limit=10_000)]


def _wal(path: Path) -> Path:
    return Path(str(path) + "-wal")


def _frame_size(path: Path) -> int:
    return FRAME_HEADER + struct.unpack(">I", _wal(path).read_bytes()[8:12])[0]


def _refused(path: Path) -> str:
    return f"{path}-wal is damaged and the store was not opened"


def _recover_hint(path: Path) -> str:
    return f"eventyard store recover --data-dir {path.parent}"


# -- crashes open ------------------------------------------------------------------------------


async def test_a_crashed_store_opens_with_every_committed_event(tmp_path: Path) -> None:
    crashed, _ = await _crashed(tmp_path, 40)
    verdict = judge(scan(str(_wal(crashed))), read_mark(str(crashed)))
    assert verdict.state == "valid", verdict.detail
    assert await _event_ids(crashed) == [f"id-{i}" for i in range(40)]
    # and it stays openable after a clean close, which leaves no WAL
    assert not _wal(crashed).exists()
    assert await _event_ids(crashed) == [f"id-{i}" for i in range(40)]


@pytest.mark.parametrize("with_mark", [True, False], ids=["with mark", "without mark"])
async def test_a_transaction_cut_mid_frame_by_a_crash_is_dropped_and_the_store_opens(
    tmp_path: Path, with_mark: bool
) -> None:
    crashed, later = await _crashed(tmp_path, 30, more=3)
    assert later is not None
    committed = _wal(crashed).stat().st_size
    full = _wal(later).read_bytes()
    assert len(full) > committed + _frame_size(crashed)
    # the unacknowledged transactions' frames were being written: cut inside one of them
    _wal(crashed).write_bytes(full[: committed + _frame_size(crashed) + 100])
    if not with_mark:
        Path(str(crashed) + MARK_SUFFIX).unlink()
    verdict = judge(scan(str(_wal(crashed))), read_mark(str(crashed)))
    assert verdict.state == "torn tail", verdict.detail
    assert await _event_ids(crashed) == [f"id-{i}" for i in range(30)]


async def test_the_commit_mark_follows_every_commit(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        for i in range(5):
            await store.ingest([_event(i)])
            mark = read_mark(str(path))
            assert not isinstance(mark, str)
            assert mark is not None
            assert mark.frames == scan(str(_wal(path))).committed
    assert read_mark(str(path)) == CommitMark(b"", 0, 0, (0, 0))  # closed clean: no WAL


# -- damage is refused -------------------------------------------------------------------------


@pytest.mark.parametrize("with_mark", [True, False], ids=["with mark", "without mark"])
async def test_a_corrupted_frame_in_the_middle_is_refused(tmp_path: Path, with_mark: bool) -> None:
    crashed, _ = await _crashed(tmp_path, 40)
    frame = _frame_size(crashed)
    with _wal(crashed).open("r+b") as file:  # a few bytes of frame 20's page
        file.seek(WAL_HEADER + 19 * frame + FRAME_HEADER + 1000)
        file.write(b"\xff\xfe\xfd\xfc")
    if not with_mark:
        Path(str(crashed) + MARK_SUFFIX).unlink()
    with pytest.raises(StoreError) as refused:
        await SQLiteStore(str(crashed)).open()
    assert _refused(crashed) in str(refused.value)
    assert _recover_hint(crashed) in str(refused.value)
    assert "checksum mismatch" in str(refused.value)


async def test_a_wal_truncated_at_a_frame_boundary_within_committed_data_is_refused(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 40)
    frame = _frame_size(crashed)
    frames = (_wal(crashed).stat().st_size - WAL_HEADER) // frame
    os.truncate(_wal(crashed), WAL_HEADER + (frames // 2) * frame)
    with pytest.raises(StoreError) as refused:
        await SQLiteStore(str(crashed)).open()
    message = str(refused.value)
    assert _refused(crashed) in message
    assert f"but frame {frames} was committed" in message
    assert _recover_hint(crashed) in message


async def test_a_zeroed_wal_header_is_refused(tmp_path: Path) -> None:
    crashed, _ = await _crashed(tmp_path, 20)
    with _wal(crashed).open("r+b") as file:
        file.write(bytes(WAL_HEADER))
    with pytest.raises(StoreError) as refused:
        await SQLiteStore(str(crashed)).open()
    assert "the WAL header is invalid (no WAL magic number)" in str(refused.value)
    assert _recover_hint(crashed) in str(refused.value)


async def test_a_deleted_wal_whose_frames_were_not_copied_is_refused(tmp_path: Path) -> None:
    crashed, _ = await _crashed(tmp_path, 20)
    _wal(crashed).unlink()
    with pytest.raises(StoreError, match="the WAL is missing, but it held"):
        await SQLiteStore(str(crashed)).open()


async def test_the_wal_checksums_are_sqlites_own(tmp_path: Path) -> None:
    crashed, _ = await _crashed(tmp_path, 3)
    written = scan(str(_wal(crashed)))
    assert written.header_problem is None  # the header SQLite wrote checks out
    assert written.committed == written.frames > 0  # and so does every frame
    data = bytearray(_wal(crashed).read_bytes())
    data[31] ^= 1
    _wal(crashed).write_bytes(bytes(data))
    assert scan(str(_wal(crashed))).header_problem == "header checksum mismatch"
    assert wal_checksum(bytes(8), 1, 2, False) == (3, 5)


# -- check and recover -------------------------------------------------------------------------


async def test_check_reports_a_healthy_store_and_its_counts(tmp_path: Path) -> None:
    crashed, _ = await _crashed(tmp_path, 12)
    report = check(str(crashed), full=True)
    assert report.healthy
    assert report.integrity == ["ok"]
    assert report.counts == {"events": 12, "deliveries": 0, "messages": 0}
    # checking changed nothing: the WAL is still there, whole
    assert judge(scan(str(_wal(crashed))), read_mark(str(crashed))).state == "valid"


async def test_check_and_recover_refuse_while_a_store_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        await store.ingest([_event(0)])
        with pytest.raises(StoreError, match=rf"in use by process {os.getpid()}"):
            check(str(path))
        with pytest.raises(StoreError, match=rf"in use by process {os.getpid()}"):
            recover(str(path))


async def test_recover_cuts_a_truncated_wal_back_to_its_last_commit_and_keeps_a_backup(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 40)
    frame = _frame_size(crashed)
    frames = (_wal(crashed).stat().st_size - WAL_HEADER) // frame  # migrations, then events
    os.truncate(_wal(crashed), WAL_HEADER + (frames * 2 // 3) * frame + 300)  # mid-frame
    assert not check(str(crashed)).healthy
    damaged = {p.name: p.read_bytes() for p in crashed.parent.iterdir()}

    report = recover(str(crashed), now=lambda: 1_800_000_000.0)

    backup = Path(report.backup)
    assert backup.name == "backup-20270115T080000Z"
    assert {p.name: p.read_bytes() for p in backup.iterdir()} == {
        name: data for name, data in damaged.items() if name != "eventyard.db.lock"
    }
    assert any("committed" in line for line in report.lost), report.lost
    assert check(str(crashed), full=True).healthy
    kept = await _event_ids(crashed)
    assert 0 < len(kept) < 40
    assert kept == [f"id-{i}" for i in range(len(kept))]  # a prefix: no hole


async def test_recover_rebuilds_a_zeroed_wal_header_from_the_commit_mark(tmp_path: Path) -> None:
    crashed, _ = await _crashed(tmp_path, 20)
    with _wal(crashed).open("r+b") as file:
        file.write(bytes(WAL_HEADER))
    report = recover(str(crashed))
    assert "the WAL's header, rebuilt from the commit mark" in report.kept
    assert await _event_ids(crashed) == [f"id-{i}" for i in range(20)]


async def test_recover_rebuilds_a_damaged_database_file_from_its_readable_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        for i in range(200):
            await store.ingest([_event(i)])
    page = 4096
    pages = path.stat().st_size // page
    with path.open("r+b") as file:  # two zeroed pages in the middle of the log's b-tree
        file.seek((pages // 2) * page)
        file.write(bytes(2 * page))
    assert not check(str(path)).healthy

    report = recover(str(path))

    assert report.rebuilt
    assert any(line.startswith("log: rows with seq") for line in report.lost), report.lost
    assert check(str(path), full=True).healthy
    kept = await _event_ids(path)
    assert 150 < len(kept) < 200
    assert kept[0] == "id-0" and kept[-1] == "id-199"
    # new events never reuse a lost sequence number
    async with SQLiteStore(str(path)) as store:
        await store.ingest([_event(999)])
        assert (await store.read_log(after_seq=199))[-1].seq == 201


async def test_recover_reads_a_database_file_whose_header_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        for i in range(30):
            await store.ingest([_event(i)])
    with path.open("r+b") as file:
        file.write(bytes(100))
    report = recover(str(path))
    assert "the database file's header, rebuilt" in report.kept
    assert await _event_ids(path) == [f"id-{i}" for i in range(30)]


async def test_a_damaged_store_refused_at_open_is_left_byte_for_byte_as_found(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live" / "eventyard.db"
    async with SQLiteStore(str(path)) as store:  # most events in the database file...
        for i in range(200):
            await store.ingest([_event(i)])
    async with SQLiteStore(str(path)) as store:  # ...and the newest in the WAL, at kill -9
        for i in range(200, 230):
            await store.ingest([_event(i)])
        crashed = _snapshot(path, tmp_path / "crashed")
    pages = crashed.stat().st_size // 4096
    with crashed.open("r+b") as file:  # two zeroed pages in the middle of the log's b-tree
        file.seek((pages // 2) * 4096)
        file.write(bytes(2 * 4096))
    found = {name: Path(str(crashed) + name).read_bytes() for name in _FILES}
    assert len(found["-wal"]) > WAL_HEADER

    with pytest.raises(StoreError, match="is damaged and was not opened"):
        await SQLiteStore(str(crashed)).open()

    # the WAL was not checkpointed into the damaged file nor deleted: the evidence stays
    assert {name: Path(str(crashed) + name).read_bytes() for name in _FILES} == found
    report = check(str(crashed))
    assert report.wal.state == "valid", report.wal.detail
    assert not report.healthy


# -- a WAL that SQLite itself checkpointed and deleted is not a loss ---------------------------


def _read_with_sqlite(path: Path) -> int:
    """What an operator does after a crash: look with the sqlite3 module. Closing its
    (read-write) connection checkpoints the WAL into the database file and deletes it."""
    conn = sqlite3.connect(path)
    try:
        count = int(conn.execute("SELECT count(*) FROM log").fetchone()[0])
    finally:
        conn.close()
    return count


async def test_a_wal_checkpointed_and_deleted_by_another_connection_after_a_crash_opens(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 40)
    mark = read_mark(str(crashed))
    assert isinstance(mark, CommitMark) and mark.frames > mark.backfilled  # all uncopied
    assert _read_with_sqlite(crashed) == 40
    assert not _wal(crashed).exists()

    verdict = judge(scan(str(_wal(crashed))), read_mark(str(crashed)))
    assert verdict.state == "absent", verdict.detail
    assert "its last committed transaction is in the database file" in verdict.detail
    assert check(str(crashed)).healthy
    assert await _event_ids(crashed) == [f"id-{i}" for i in range(40)]


async def test_a_damaged_wal_that_another_connection_checkpointed_and_deleted_is_refused(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 40)
    frame = _frame_size(crashed)
    with _wal(crashed).open("r+b") as file:  # SQLite will read only the frames before it
        file.seek(WAL_HEADER + 19 * frame + FRAME_HEADER + 1000)
        file.write(b"\xff\xfe\xfd\xfc")
    assert _read_with_sqlite(crashed) < 40  # it checkpointed what it could read...
    assert not _wal(crashed).exists()  # ...and deleted the rest

    with pytest.raises(StoreError, match="the WAL is missing, but it held"):
        await SQLiteStore(str(crashed)).open()


async def test_an_old_mark_without_the_commit_page_still_refuses_a_missing_wal(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 20)
    mark = read_mark(str(crashed))
    assert isinstance(mark, CommitMark) and mark.page is not None
    # a format 1 mark (as the first version wrote it) has no page to compare
    body = bytearray(mark.encode()[:56])
    body[4:8] = (1).to_bytes(4, "big")
    old = bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "big")
    Path(str(crashed) + MARK_SUFFIX).write_bytes(old)
    assert read_mark(str(crashed)) == CommitMark(
        mark.header, mark.frames, mark.backfilled, mark.checksum
    )
    _read_with_sqlite(crashed)
    with pytest.raises(StoreError, match="the WAL is missing, but it held"):
        await SQLiteStore(str(crashed)).open()


# -- what a commit whose fsync failed leaves behind -------------------------------------------


async def _continued(crashed: Path, into: Path, events: range, one_transaction: bool) -> Path:
    """A copy of ``crashed`` that went on to commit ``events``, as kill -9 leaves it."""
    into.mkdir()
    for suffix in _FILES:
        if Path(str(crashed) + suffix).exists():
            shutil.copyfile(str(crashed) + suffix, str(into / "eventyard.db") + suffix)
    path = into / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        if one_transaction:
            await store.ingest([_event(i) for i in events])
        else:
            for i in events:
                await store.ingest([_event(i)])
        return _snapshot(path, into / "crashed")


async def test_frames_a_failed_commit_left_behind_the_last_commit_are_not_damage(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 30)
    # A big transaction wrote its frames, commit frame included, but its fsync failed:
    # SQLite rolled it back and the next, one-event transaction overwrote its first frames.
    failed = await _continued(crashed, tmp_path / "failed", range(100, 120), True)
    after = await _continued(crashed, tmp_path / "after", range(30, 31), True)
    written, failed_wal = _wal(after).read_bytes(), _wal(failed).read_bytes()
    assert len(failed_wal) > len(written) + 2 * _frame_size(after)
    _wal(after).write_bytes(written + failed_wal[len(written) :])
    wal = scan(str(_wal(after)))
    assert wal.stray_commits == 1, wal  # its commit frame chains from the frames before it

    verdict = judge(wal, read_mark(str(after)))
    assert verdict.state == "torn tail", verdict.detail
    assert "a commit that failed left behind" in verdict.detail
    # without a mark they cannot be told from transactions behind a damaged frame
    assert judge(wal, None).state == "damaged"
    assert await _event_ids(after) == [f"id-{i}" for i in range(31)]


# -- recover keeps the committed transactions behind a damaged frame ---------------------------


def _flip(path: Path, frame_number: int) -> None:
    """Flip one byte in the page of WAL frame ``frame_number`` (1-based)."""
    frame = _frame_size(path)
    with _wal(path).open("r+b") as file:
        file.seek(WAL_HEADER + (frame_number - 1) * frame + FRAME_HEADER + 1000)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))


def _missing_seqs(lost: list[str]) -> set[int]:
    """The sequence numbers a recover report's ``events: N of the M appended…`` names."""
    [line] = [line for line in lost if line.startswith("events: ")] or ["events: (seq )"]
    seqs: set[int] = set()
    for part in line.rsplit("(seq ", 1)[1].rstrip(")").split(", "):
        if part:
            low, _, high = part.partition("..")
            seqs.update(range(int(low), int(high or low) + 1))
    return seqs


def _commit_frames(path: Path) -> list[int]:
    """The numbers of the WAL's commit frames (1-based), in order."""
    data = _wal(path).read_bytes()
    frame = _frame_size(path)
    return [
        n
        for n in range(1, (len(data) - WAL_HEADER) // frame + 1)
        if struct.unpack(">I", data[WAL_HEADER + (n - 1) * frame + 4 :][:4])[0]
    ]


def _appended_by(lost: str, commits: list[int], events: int) -> set[int]:
    """The sequence numbers of the events the transactions in a report's ``the
    transaction(s) in WAL frames A..B`` line appended, when the last ``events``
    transactions of the WAL each appended one event."""
    first, last = map(int, lost.split("WAL frames ", 1)[1].split(" ", 1)[0].split(".."))
    offset = len(commits) - events  # the transactions before the first event
    return {k - offset + 1 for k, c in enumerate(commits) if first <= c <= last and k >= offset}


async def test_recover_keeps_the_verified_transactions_behind_a_damaged_frame(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 60)
    wal = scan(str(_wal(crashed)))
    commits = _commit_frames(crashed)
    # a frame of an event's transaction (the migrations' come first), with many behind it
    flipped = commits[-45]
    _flip(crashed, flipped)
    damaged = scan(str(_wal(crashed)))
    assert damaged.committed < flipped and damaged.stray_commits > 10

    report = recover(str(crashed))

    assert any(line.startswith("the WAL behind the damage: ") for line in report.kept)
    [lost] = [line for line in report.lost if line.startswith("the transaction(s) in WAL")]
    assert f"(frame {flipped} checksum mismatch)" in lost
    assert check(str(crashed), full=True).healthy
    # Only events the lost transaction(s) appended can be gone, and the report names them:
    # a row of a verified transaction is on a page it wrote, which is laid over, and a row
    # from before the damage that the lost transaction moved (a page split) comes back from
    # the database as it stood before the damage, whatever the page layout. Here the lost
    # transaction's pages were not all rewritten later, so some of its events are gone.
    missing = _missing_seqs(report.lost)
    assert "no later transaction rewrote" in lost
    assert missing and missing <= _appended_by(lost, commits, 60), report.lost
    assert await _event_ids(crashed) == [f"id-{i}" for i in range(60) if i + 1 not in missing]
    assert wal.committed == wal.frames  # (the crash left no torn tail to account for)


async def test_recover_names_the_pages_a_damaged_transaction_took_with_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live" / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        for i in range(10):
            await store.ingest([_event(i)])
        frames_before = scan(str(_wal(path))).committed
        await store.catalog_put("rule", "orders", {"pattern": "x" * 1500})  # its own pages
        for i in range(10, 40):
            await store.ingest([_event(i)])
        crashed = _snapshot(path, tmp_path / "crashed")
    # damage the catalog put's frames: no later transaction rewrites the catalog's page
    _flip(crashed, frames_before + 1)

    report = recover(str(crashed))

    [lost] = [line for line in report.lost if line.startswith("the transaction(s) in WAL")]
    assert f"frames {frames_before + 1}.." in lost
    assert "no later transaction rewrote" in lost, lost
    assert check(str(crashed), full=True).healthy
    assert await _event_ids(crashed) == [f"id-{i}" for i in range(40)]  # every event
    async with SQLiteStore(str(crashed)) as store:
        assert await store.catalog_get("rule", "orders") is None  # the put is what was lost


async def test_recover_does_not_apply_what_a_failed_commit_left_without_a_mark(
    tmp_path: Path,
) -> None:
    crashed, _ = await _crashed(tmp_path, 30)
    failed = await _continued(crashed, tmp_path / "failed", range(100, 120), True)
    after = await _continued(crashed, tmp_path / "after", range(30, 31), True)
    written = _wal(after).read_bytes()
    _wal(after).write_bytes(written + _wal(failed).read_bytes()[len(written) :])
    Path(str(after) + MARK_SUFFIX).unlink()

    report = recover(str(after))

    assert any("no commit mark of this WAL vouches for them" in line for line in report.lost)
    assert await _event_ids(after) == [f"id-{i}" for i in range(31)]


async def test_recover_reports_exactly_the_events_each_damaged_transaction_took_along(
    tmp_path: Path,
) -> None:
    """Damage, in turn, each of the last transactions. Where the lost one linked a new
    page into the log's b-tree and no later transaction did it again, the merged file is
    inconsistent and the rows on that page cannot be reached: the report says so, and
    names every missing event; what it does not name is kept."""
    crashed, _ = await _crashed(tmp_path, 60)
    commits = _commit_frames(crashed)
    paths = set()
    for k in range(len(commits) - 8, len(commits) - 1):
        case = tmp_path / f"case-{k}"
        shutil.copytree(crashed.parent, case)
        path = case / "eventyard.db"
        _flip(path, commits[k - 1] + 1)  # the first frame of transaction k + 1

        report = recover(str(path))

        assert check(str(path), full=True).healthy
        missing = _missing_seqs(report.lost)
        assert len(missing) <= 2, report.lost
        assert await _event_ids(path) == [f"id-{i}" for i in range(60) if i + 1 not in missing]
        inconsistent = any("the merged database is inconsistent" in x for x in report.lost)
        paths.add("inconsistent" if inconsistent else "consistent")
    assert paths == {"consistent", "inconsistent"}  # both ways were taken


async def test_recover_keeps_every_transaction_before_the_point_a_wal_was_cut(
    tmp_path: Path,
) -> None:
    """A WAL cut short keeps every transaction committed before the cut, and is reported
    the same way whether the cut falls on a commit frame or inside a transaction (whose
    frames all verify but never reach their commit frame: nothing there is damaged)."""
    crashed, _ = await _crashed(tmp_path, 30)
    commits = _commit_frames(crashed)
    frame = _frame_size(crashed)
    end = commits[-10]
    assert commits[-9] - end > 1  # the next transaction has more than one frame
    for inside in (0, 1):  # on the commit frame, then inside the next transaction
        case = tmp_path / f"cut-{inside}"
        shutil.copytree(crashed.parent, case)
        path = case / "eventyard.db"
        os.truncate(_wal(path), WAL_HEADER + (end + inside) * frame)

        report = recover(str(path))

        assert report.lost[0].startswith(f"the WAL after frame {end} "), report.lost
        assert not any(line.startswith("the transaction(s) in WAL") for line in report.lost)
        assert check(str(path), full=True).healthy
        kept = len(commits) - 10 - (len(commits) - 30) + 1  # the events committed up to it
        assert await _event_ids(path) == [f"id-{i}" for i in range(kept)]
