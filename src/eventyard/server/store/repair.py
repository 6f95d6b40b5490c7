"""Check and recover an SQLite store that is not running: ``eventyard store check|recover``.

:func:`check` reports what start-up would find (the WAL analysis of :mod:`.wal`, SQLite's
``quick_check`` or full ``integrity_check``) and how much the store holds; it changes
nothing: SQLite reads the files through a read-only connection, which never checkpoints.

:func:`recover` first copies every file of the store into a new, timestamped directory
beside it, then salvages what can be read:

1. **The WAL.** A WAL whose header is gone gets it back from the commit mark when the
   frames are of the mark's generation; then the WAL is cut after its last valid commit
   frame. The committed transactions behind a damaged frame are not given up: each frame
   after it is verified by continuing the checksum from the one its predecessor *stores*
   (:func:`.wal.read_after_break`), up to the last frame the commit mark counts (later
   commit frames may be what a failed commit left). A transaction is salvaged when all
   its frames verify and it ends in a verified commit frame; the damaged transaction
   (and, its commit frame being unreadable, everything up to the next verified commit
   frame) is lost, and so are those of its page changes no later transaction rewrote
   (a page image rewritten later carries them along). Without a commit mark of the
   WAL's generation, nothing behind the damage is salvaged: it cannot be told from
   the leftovers of a failed commit, which SQLite rolled back.
2. **The database file.** The WAL's committed frames are checkpointed into it. If
   ``integrity_check`` still finds damage (or the file's header is gone), the store is
   rebuilt into a fresh file with the current schema: every row that can still be read,
   table by table, skipping the key ranges that sit on unreadable pages (each reported),
   and deliveries whose event was lost with them. The fresh file replaces the damaged one.
3. **Merging the salvaged pages.** The newest verified copy of each salvaged page is
   laid over a copy of the checkpointed file, and the store is rebuilt from that copy's
   readable rows, never served from it as it is: without the lost transaction's pages
   its b-trees may disagree (a parent pointing at a split the lost transaction made).
   If the merged copy fails ``integrity_check``, the rows of the file as it stood before
   the damage fill in what it lacks (rows deleted after the damage may come back; they
   are counted). The events appended after the damage that are missing are named by
   sequence number.

Both hold the store's lock, so neither runs beside a server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from eventyard.errors import StoreError
from eventyard.server.store.filelock import StoreLock
from eventyard.server.store.sqlite_audit import rebuild_derived
from eventyard.server.store.sqlite_files import migrate, read_only
from eventyard.server.store.wal import (
    FRAME_HEADER,
    MARK_SUFFIX,
    WAL_HEADER,
    CommitMark,
    MarkWriter,
    WalSalvage,
    WalVerdict,
    judge,
    read_after_break,
    read_mark,
    scan,
)

__all__ = ["CheckReport", "RecoverReport", "check", "recover"]

#: the tables whose rows are counted, as (label, table)
_COUNTED: Final = (("events", "log"), ("deliveries", "deliveries"), ("messages", "messages"))
_CHUNK: Final = 256


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What :func:`check` found.

    Attributes:
        path: the database file.
        wal: the WAL's verdict.
        integrity: ``["ok"]`` or SQLite's list of problems (or why it could not run).
        counts: rows per kind (events, deliveries, messages) if they could be counted.
    """

    path: str
    wal: WalVerdict
    integrity: list[str]
    counts: dict[str, int]

    @property
    def healthy(self) -> bool:
        return self.wal.ok and self.integrity == ["ok"]


@dataclass(slots=True)
class RecoverReport:
    """What :func:`recover` did: where the backup is, what was kept and what was lost."""

    backup: str
    kept: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    rebuilt: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def _files(path: str) -> list[str]:
    return [path, path + "-wal", path + "-shm", path + MARK_SUFFIX]


def _locked(path: str) -> StoreLock:
    if not os.path.exists(path):
        raise StoreError(f"there is no store at {path}")
    lock = StoreLock(path + ".lock")
    lock.acquire()  # a running server holds it: refused with who it is
    return lock


def _integrity(conn: sqlite3.Connection, *, full: bool) -> list[str]:
    pragma = "integrity_check(20)" if full else "quick_check(20)"
    return [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}").fetchall()]


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        label: int(conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        for label, table in _COUNTED
    }


def check(path: str, *, full: bool = False) -> CheckReport:
    """Check the store at ``path`` (the database file) without changing it.

    Raises:
        StoreError: there is no store there, or a server holds it.
    """
    lock = _locked(path)
    try:
        verdict = judge(scan(path + "-wal"), read_mark(path))
        integrity: list[str]
        counts: dict[str, int] = {}
        try:
            conn = read_only(path)
            try:
                integrity = _integrity(conn, full=full)
                if integrity == ["ok"]:
                    counts = _counts(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            integrity = [f"cannot read the database: {exc}"]
        return CheckReport(path, verdict, integrity, counts)
    finally:
        lock.release()


# -- recover ---------------------------------------------------------------------------------


def recover(path: str, *, now: Callable[[], float] = time.time) -> RecoverReport:
    """Back the store up, then salvage it in place (see the module docstring).

    Raises:
        StoreError: there is no store there, a server holds it, or the backup cannot be
            written (then nothing was changed).
    """
    lock = _locked(path)
    try:
        report = RecoverReport(_backup(path, now()))
        salvage = _salvage_wal(path, report)
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + "-shm")  # SQLite rebuilds it from the WAL
        problems = _checkpoint_and_check(path)
        if salvage is not None and salvage.pages:
            if problems != ["ok"]:
                report.lost.append(f"the database file is damaged: {'; '.join(problems)}")
            _merge_and_rebuild(path, salvage, report)
        elif problems == ["ok"]:
            conn = read_only(path)
            try:
                report.counts = _counts(conn)
            finally:
                conn.close()
            report.kept.append(f"the database file {path} passes integrity_check")
        else:
            report.lost.append(f"the database file is damaged: {'; '.join(problems)}")
            _rebuild(path, report)
        _mark_clean(path)
        return report
    finally:
        lock.release()


def _backup(path: str, when: float) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    backup = os.path.join(directory, f"backup-{stamp}")
    n = 1
    while os.path.exists(backup):
        n += 1
        backup = os.path.join(directory, f"backup-{stamp}-{n}")
    try:
        os.mkdir(backup, 0o700)
        for file in _files(path):
            if os.path.exists(file):
                copy = os.path.join(backup, os.path.basename(file))
                shutil.copyfile(file, copy)
                os.chmod(copy, 0o600)
                _fsync(copy)
        _fsync(backup)
        _fsync(directory)
    except OSError as exc:
        raise StoreError(
            f"cannot back up the store into {backup}: {exc.strerror}; nothing was changed"
        ) from exc
    return backup


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _salvage_wal(path: str, report: RecoverReport) -> WalSalvage | None:
    """Cut a damaged WAL back to its valid committed frames; return the verified
    transactions behind the damage that the commit mark vouches for (None if none)."""
    wal_path = path + "-wal"
    mark = read_mark(path)
    verdict = judge(scan(wal_path), mark)
    wal = verdict.scan
    if verdict.ok:
        if wal.committed:
            report.kept.append(f"the WAL: {wal.committed} committed frames, intact")
        return None
    if wal.header is None and wal.size > 0:
        if isinstance(mark, CommitMark) and _restore_header(wal_path, mark):
            report.kept.append("the WAL's header, rebuilt from the commit mark")
            verdict = judge(scan(wal_path), mark)
            wal = verdict.scan
        else:
            os.remove(wal_path)
            report.lost.append(
                f"the WAL ({wal.size} bytes): its header is gone and no commit mark of its "
                "generation can rebuild it, so its frames cannot be verified"
            )
            return None
    if wal.header is None:  # the WAL is missing: what it held is gone
        report.lost.append(verdict.detail)
        return None
    total = (wal.size - WAL_HEADER) // wal.frame_size
    # Only frames the mark counts as committed are salvaged: after them, commit frames may
    # be what a commit whose fsync failed left behind, which SQLite rolled back.
    marked = mark.frames if isinstance(mark, CommitMark) and mark.header == wal.header else 0
    vouched = marked > 0
    salvage = read_after_break(wal, min(marked, total)) if vouched else None
    with open(wal_path, "r+b") as file:
        file.truncate(wal.committed_end)
        os.fsync(file.fileno())
    report.kept.append(f"the WAL: {wal.committed} committed frames, up to the damage")
    if salvage is not None and not salvage.verified and all(t.cut for t in salvage.lost):
        # Nothing verified behind the last commit frame and nothing there is damaged: the
        # WAL was cut short inside a transaction, reported as a cut at a commit frame is.
        salvage = None
    if salvage is not None and salvage.transactions:
        _report_salvage(salvage, report)
        counted = salvage.transactions[-1].last
        if counted < marked:
            report.lost.append(
                f"WAL frames {counted + 1}..{marked}: committed, but the WAL no longer holds them"
            )
        if total > counted:
            report.lost.append(
                f"WAL frames {counted + 1}..{total}: not committed when the commit mark was "
                "last written (an unacknowledged transaction, or what a failed commit left)"
            )
        return salvage
    parts = []
    if total > wal.committed:
        parts.append(f"{total - wal.committed} frames behind it were dropped")
    if wal.stray_commits:
        parts.append(
            f"with {wal.stray_commits} committed transaction(s), not salvaged: "
            + (
                "the commit mark does not count them"
                if vouched
                else "no commit mark of this WAL vouches for them (they may be what a "
                "failed commit left behind)"
            )
        )
    if verdict.lost_frames:
        parts.append(f"{verdict.lost_frames} committed frames the WAL no longer held are gone")
    lost = f"the WAL after frame {wal.committed} ({wal.end}): {', '.join(parts) or 'nothing'}"
    report.lost.append(lost)
    return None


def _report_salvage(salvage: WalSalvage, report: RecoverReport) -> None:
    verified = salvage.verified
    if verified:
        frames = sum(t.last - t.first + 1 for t in verified)
        report.kept.append(
            f"the WAL behind the damage: {len(verified)} committed transaction(s) "
            f"({frames} frames), each frame verified by its checksum chain; the newest "
            f"copy of their {len(salvage.pages)} pages applied"
        )
    for lost in salvage.lost:
        gone = salvage.not_rewritten(lost)
        if not lost.pages:
            fate = "nothing"
        elif not gone:
            fate = (
                f"nothing it wrote: each of its {len(lost.pages)} pages was rewritten by a "
                "later transaction, which carries its changes"
            )
        else:
            shown = ", ".join(map(str, gone[:10])) + (", ..." if len(gone) > 10 else "")
            fate = f"its changes to {len(gone)} page(s) no later transaction rewrote ({shown})"
        report.lost.append(
            f"the transaction(s) in WAL frames {lost.first}..{lost.last} ({lost.problem}): "
            f"lost with it: {fate}"
        )


def _restore_header(wal_path: str, mark: CommitMark) -> bool:
    """Put the mark's WAL header back if the WAL's first frame is of its generation."""
    if not mark.header:
        return False
    page_size = struct.unpack(">I", mark.header[8:12])[0]
    with open(wal_path, "r+b") as file:
        file.seek(WAL_HEADER)
        first = file.read(FRAME_HEADER)
        if len(first) < FRAME_HEADER or first[8:16] != mark.header[16:24]:
            return False
        if os.fstat(file.fileno()).st_size < WAL_HEADER + FRAME_HEADER + page_size:
            return False
        file.seek(0)
        file.write(mark.header)
        os.fsync(file.fileno())
    return True


def _checkpoint_and_check(path: str) -> list[str]:
    """Copy the WAL's committed frames into the file, then run ``integrity_check``."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        return [f"cannot open it: {exc}"]
    try:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return _integrity(conn, full=True)
    except sqlite3.Error as exc:
        return [f"cannot read it: {exc}"]
    finally:
        conn.close()


def _mark_clean(path: str) -> None:
    writer = MarkWriter(path)
    writer.open()
    try:
        if os.path.exists(path + "-wal") and os.path.getsize(path + "-wal"):
            return  # left as it is: the next start reads the WAL without a mark
        writer.clean()
    finally:
        writer.close()


# -- rebuild -----------------------------------------------------------------------------------


def _rebuild(path: str, report: RecoverReport, sources: Sequence[str] = ()) -> None:
    """Copy every readable row into a fresh file, which then replaces ``path``.

    Rows are read from ``sources`` in order (``path`` alone by default); a row whose key
    an earlier source already gave is not taken again, so a later source only fills in
    what the earlier ones could not read.
    """
    fresh = path + ".rebuilt"
    for file in (fresh, fresh + "-wal", fresh + "-shm", fresh + "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(file)
    readable: list[str] = []
    dst = sqlite3.connect(fresh, isolation_level=None)
    try:
        migrate(dst)
        dst.execute("BEGIN")
        tables = [
            str(r[0])
            for r in dst.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            ).fetchall()
        ]
        for n, source in enumerate(sources or [path]):
            source_path = _readable_source(source, report)
            if source_path is None:
                continue
            readable.append(source_path)
            src = read_only(source_path)
            try:
                for table in tables:
                    before = _count(dst, table)
                    copied, gaps = _copy_table(src, dst, table)
                    if n == 0:
                        report.kept.append(f"{table}: {copied} rows")
                        report.lost.extend(f"{table}: {gap}" for gap in gaps)
                    elif added := _count(dst, table) - before:
                        report.kept.append(
                            f"{table}: {added} more rows only the state before the damage "
                            "holds (a later change to them, or their deletion, is lost)"
                        )
                _carry_sequences(src, dst)
            finally:
                src.close()
        if readable:
            orphans = dst.execute(
                "DELETE FROM deliveries WHERE seq IS NOT NULL AND seq NOT IN (SELECT seq FROM log)"
            ).rowcount
            if orphans:
                report.lost.append(f"deliveries: {orphans} whose event was lost")
            # the log's time marks and the archives' totals follow the rows kept
            rebuild_derived(dst)
        dst.execute("COMMIT")
        problems = _integrity(dst, full=True)
        if problems != ["ok"]:
            raise StoreError(f"the rebuilt store {fresh} fails integrity_check: {problems}")
        report.counts = _counts(dst)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot rebuild the store into {fresh}: {exc}") from exc
    finally:
        dst.close()
        for source_path in readable:
            if source_path.endswith(".salvage"):  # a copy _readable_source made
                for file in (source_path, source_path + "-wal", source_path + "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(file)
    _fsync(fresh)
    # The old WAL must not meet the new file: remove it first (it is in the backup).
    for file in (path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(file)
    os.replace(fresh, path)
    os.chmod(path, 0o600)
    _fsync(os.path.dirname(os.path.abspath(path)))
    report.rebuilt = True


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


# -- merging the pages salvaged from behind a damaged WAL frame -----------------------------


def _merge_and_rebuild(path: str, salvage: WalSalvage, report: RecoverReport) -> None:
    """Apply the salvaged pages to a copy of the database and rebuild the store from it.

    The copy holds the database as of the last transaction before the damage, with the
    newest verified copy of every page written after it laid over. Each of those pages is
    intact, but the lost transaction's own pages are missing: where a later transaction
    did not rewrite them, the merged b-trees can disagree with each other (a parent
    pointing at a page split the lost transaction made, say). So the merged file is not
    served as it is: it is checked, and its rows are read through :func:`_rebuild`,
    which skips what cannot be read; when it is inconsistent, the rows of the database
    as it stood before the damage fill in what the merged file lacks.
    """
    merged = path + ".merged"
    _remove_db(merged)
    try:
        shutil.copyfile(path, merged)
        if os.path.exists(path + "-wal") and os.path.getsize(path + "-wal"):
            # the checkpoint before could not empty the WAL: fold it into the copy
            shutil.copyfile(path + "-wal", merged + "-wal")
            conn = sqlite3.connect(merged, isolation_level=None)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.close()
        _lay_pages(merged, salvage)
        before = _max_seq(path)
        assigned = _sequence(merged, "log")
        try:
            conn = read_only(merged)
            try:
                problems = _integrity(conn, full=True)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            problems = [f"cannot read it: {exc}"]
        if problems == ["ok"]:
            report.kept.append("the merged database passes integrity_check")
            _rebuild(path, report, [merged])
        else:
            report.lost.append(
                "the merged database is inconsistent where the lost transaction's pages are "
                f"missing ({'; '.join(problems[:3])}): its readable rows are kept, and the "
                "rows of the database before the damage fill in"
            )
            _rebuild(path, report, [merged, path])
        _report_missing_events(path, before, assigned, report)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot merge the salvaged WAL pages into {merged}: {exc}") from exc
    finally:
        _remove_db(merged)


def _remove_db(path: str) -> None:
    for file in (path, path + "-wal", path + "-shm", path + "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(file)


def _lay_pages(db: str, salvage: WalSalvage) -> None:
    """Write each salvaged page at its place and size the file as the last verified
    transaction left the database."""
    page_size = len(next(iter(salvage.pages.values())))
    with open(db, "r+b") as file:
        for pgno, data in sorted(salvage.pages.items()):
            file.seek((pgno - 1) * page_size)
            file.write(data)
        file.truncate(salvage.db_pages * page_size)
        # The header's page count is trusted while "version-valid-for" equals the change
        # counter; page 1 may come from before the last transaction that grew the file.
        file.seek(24)
        counter = file.read(4)
        file.seek(28)
        file.write(struct.pack(">I", salvage.db_pages))
        file.seek(92)
        file.write(counter)
        os.fsync(file.fileno())


def _max_seq(db: str) -> int:
    """The newest event's sequence number in ``db`` (0 if none or unreadable)."""
    try:
        conn = read_only(db)
        try:
            return int(conn.execute("SELECT coalesce(max(seq), 0) FROM log").fetchall()[0][0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _sequence(db: str, table: str) -> int:
    """The last AUTOINCREMENT number ``db`` handed out for ``table`` (0 if unreadable)."""
    try:
        conn = read_only(db)
        try:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name=?", (table,))
            found = row.fetchall()
            return int(found[0][0]) if found else 0
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _report_missing_events(path: str, before: int, assigned: int, report: RecoverReport) -> None:
    """Name the events appended after the damage that the rebuilt store lacks."""
    if assigned <= before:
        return
    conn = read_only(path)
    try:
        kept = {
            int(r[0])
            for r in conn.execute(
                "SELECT seq FROM log WHERE seq > ? AND seq <= ?", (before, assigned)
            ).fetchall()
        }
    finally:
        conn.close()
    missing = [seq for seq in range(before + 1, assigned + 1) if seq not in kept]
    appended = assigned - before
    if not missing:
        report.kept.append(f"events: all {appended} appended after the damage")
        return
    ranges: list[str] = []
    start = prev = missing[0]
    for seq in [*missing[1:], None]:
        if seq is not None and seq == prev + 1:
            prev = seq
            continue
        ranges.append(str(start) if start == prev else f"{start}..{prev}")
        if seq is not None:
            start = prev = seq
    report.lost.append(
        f"events: {len(missing)} of the {appended} appended after the damage "
        f"(seq {', '.join(ranges[:10])}{', ...' if len(ranges) > 10 else ''})"
    )


def _readable_source(path: str, report: RecoverReport) -> str | None:
    """The file to read rows from: ``path``, or a copy with a rebuilt header if SQLite
    does not recognise ``path`` as a database any more (None if even that fails)."""
    try:
        conn = read_only(path)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return path
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        pass
    patched = path + ".salvage"
    shutil.copyfile(path, patched)
    if os.path.exists(path + "-wal"):
        shutil.copyfile(path + "-wal", patched + "-wal")
    with open(patched, "r+b") as file:
        page = _guess_page_size(file.read(65536))
        file.seek(0)
        file.write(_fresh_header(page, os.fstat(file.fileno()).st_size // page))
    try:
        conn = read_only(patched)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        report.lost.append(f"the database file cannot be read at all ({exc}): every row")
        os.remove(patched)
        return None
    report.kept.append("the database file's header, rebuilt")
    return patched


def _guess_page_size(head: bytes) -> int:
    """The page size: where page 2 starts with a b-tree page type (4096 if unclear)."""
    for size in (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512):
        if len(head) > size and head[size] in (2, 5, 10, 13):
            return size
    return 4096


def _fresh_header(page_size: int, pages: int) -> bytes:
    header = bytearray(100)
    header[0:16] = b"SQLite format 3\0"
    struct.pack_into(">H", header, 16, 1 if page_size == 65536 else page_size)
    header[18], header[19] = 2, 2  # WAL: SQLite reads the -wal file only in WAL mode
    header[21], header[22], header[23] = 64, 32, 32
    struct.pack_into(">I", header, 24, 1)  # change counter
    struct.pack_into(">I", header, 28, pages)
    struct.pack_into(">I", header, 40, 1)  # schema cookie
    struct.pack_into(">I", header, 44, 4)  # schema format
    struct.pack_into(">I", header, 56, 1)  # UTF-8
    struct.pack_into(">I", header, 92, 1)  # version-valid-for = change counter
    struct.pack_into(">I", header, 96, 3045000)
    return bytes(header)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})").fetchall()]


def _copy_table(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str
) -> tuple[int, list[str]]:
    try:
        source_columns = set(_columns(src, table))
    except sqlite3.DatabaseError as exc:
        return 0, [f"the table cannot be read ({exc})"]
    columns = [c for c in _columns(dst, table) if c in source_columns]
    if not columns:
        return 0, ["the table is missing from the damaged file"]
    insert = (
        f"INSERT OR IGNORE INTO {table} ({', '.join(columns)})"
        f" VALUES ({', '.join('?' * len(columns))})"
    )
    info = dst.execute(f"PRAGMA table_info({table})").fetchall()
    keys = [str(r[1]) for r in sorted(info, key=lambda r: r[5]) if r[5]]
    rowid = len(keys) == 1 and any(r[1] == keys[0] and r[2] == "INTEGER" for r in info)
    if rowid:
        return _copy_by_rowid(src, dst, table, key=keys[0], columns=columns, insert=insert)
    return _copy_both_ends(src, dst, table, columns=columns, keys=keys or columns, insert=insert)


def _copy_by_rowid(
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    table: str,
    *,
    key: str,
    columns: Sequence[str],
    insert: str,
) -> tuple[int, list[str]]:
    # ``key >= last + 1``, not ``key > last``: SQLite seeks a b-tree to the bound's value,
    # and past an unreadable page the first readable key must be reached by seeking to it
    # (a seek to ``last`` lands on the unreadable page again).
    select = f"SELECT {key}, {', '.join(columns)} FROM {table} WHERE {key}>=? ORDER BY {key}"
    copied, gaps, last, limit = 0, [], -(2**63), _CHUNK
    while True:
        if last == 2**63 - 1:
            break
        try:
            rows = src.execute(select + " LIMIT ?", (last + 1, limit)).fetchall()
        except sqlite3.DatabaseError:
            if limit > 1:
                limit = 1  # read up to the bad page one row at a time
                continue
            following = _next_readable(src, table, key, last)
            first = "the start" if last == -(2**63) else f"{last + 1}"
            if following is None:
                gaps.append(f"rows from {key} {first} to the end are unreadable")
                break
            gaps.append(f"rows with {key} {first}..{following - 1} are unreadable")
            last, limit = following - 1, _CHUNK
            continue
        if not rows:
            break
        dst.executemany(insert, [row[1:] for row in rows])
        copied += len(rows)
        last, limit = rows[-1][0], _CHUNK
    return copied, gaps


def _next_readable(src: sqlite3.Connection, table: str, key: str, after: int) -> int | None:
    """The first key past the unreadable range that starts after ``after``.

    Each probe seeks to its own value (``key >= at``), so the smallest probe that reads
    finds the first readable key itself, also when that key is the probe's value (a row
    right after the unreadable page is kept, not skipped)."""
    probe = f"SELECT {key} FROM {table} WHERE {key}>=? ORDER BY {key} LIMIT 1"

    def first_after(at: int) -> tuple[bool, Any]:
        try:
            rows = src.execute(probe, (at,)).fetchall()
        except sqlite3.DatabaseError:
            return False, None
        return True, rows[0][0] if rows else None

    low, step = after, 1
    while True:
        high = min(after + step, 2**63 - 1)
        readable, found = first_after(high)
        if readable:
            break
        if high == 2**63 - 1:
            return None
        low, step = high, step * 2
    while high - low > 1:  # the smallest probe that reads
        middle = (low + high) // 2
        ok, value = first_after(middle)
        if ok:
            high, found = middle, value
        else:
            low = middle
    return int(found) if found is not None else None


def _copy_both_ends(
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    table: str,
    *,
    columns: Sequence[str],
    keys: Sequence[str],
    insert: str,
) -> tuple[int, list[str]]:
    """Copy a table without a rowid: forwards up to the first unreadable page, then
    backwards from the end up to it."""
    select = f"SELECT {', '.join(columns)} FROM {table}"
    copied = 0
    for order in ("ASC", "DESC"):
        cursor = src.execute(f"{select} ORDER BY {', '.join(f'{c} {order}' for c in keys)}")
        try:
            for row in cursor:
                dst.execute(insert, row)
                copied += 1
            return copied, []
        except sqlite3.DatabaseError:
            continue
    copied = int(dst.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    return copied, ["the rows between the readable ends are unreadable"]


def _carry_sequences(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    """Keep AUTOINCREMENT counters where they were: new ids never reuse old ones."""
    try:
        old = dict(src.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    except sqlite3.DatabaseError:
        old = {}
    for name, seq in old.items():
        dst.execute("UPDATE sqlite_sequence SET seq=max(seq, ?) WHERE name=?", (seq, name))
        dst.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name=?)",
            (name, seq, name),
        )
