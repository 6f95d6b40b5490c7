"""The SQLite write-ahead log, read before SQLite opens it: is anything committed missing?

SQLite trusts its WAL blindly. A WAL whose header is invalid is ignored whole, and the
frames after the first one whose salt or checksum is wrong are ignored too (see
https://www.sqlite.org/fileformat2.html#walformat), so a truncated, zeroed or corrupted
WAL opens as an *older* database: half the messages gone, and no error anywhere. A crash
leaves a WAL that ends the same way (an unacknowledged transaction cut short), which is
why SQLite cannot tell the two apart. This module can, well enough to refuse the damage
and accept every crash:

- :func:`scan` reads the WAL file: its header, then each frame's salts and cumulative
  checksum, as SQLite's recovery does, and finds where the valid chain ends, the last
  commit frame in it, and whether *committed transactions* follow the break (frames of
  the current generation, with a commit mark, whose checksum chains from the frame
  before them: a writer only ever appends, so a crash never leaves those behind a break).
- The **commit mark** (``<database>.walmark``, :class:`CommitMark`) is written by the
  store after every commit: the WAL's header, how many frames are committed and how many
  of them have been copied into the database file (read from SQLite's WAL-index, the
  ``-shm`` file, whose layout the same document describes). It is not fsynced: after
  ``kill -9`` the page cache keeps it exact, after a power cut it may be older than the
  WAL, never newer (it is written after the WAL's fsync). It also keeps the page of the
  last commit frame (its number and a CRC-32 of its bytes): any connection that closes
  last checkpoints the WAL and deletes it (an operator's ``sqlite3`` after a crash does),
  and only a complete checkpoint does, so that page in the database file tells a WAL that
  was copied and deleted from one that was lost (:func:`in_database`).
- :func:`judge` compares the two: a WAL of the mark's generation whose valid committed
  frames end before the mark's count lost acknowledged transactions; a missing or
  replaced WAL whose frames were not all in the database did too (the mark counts frames
  not yet copied, and the database file does not hold the last commit's page).

What can and cannot be told apart is written down in ``docs/architecture.md``
("Storage integrity").
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Final, Literal

__all__ = [
    "MARK_SUFFIX",
    "CommitMark",
    "MarkWriter",
    "WalSalvage",
    "WalScan",
    "WalTransaction",
    "WalVerdict",
    "in_database",
    "judge",
    "read_after_break",
    "read_mark",
    "scan",
    "wal_checksum",
]

WAL_HEADER: Final = 32
FRAME_HEADER: Final = 24
_MAGIC_LE: Final = 0x377F0682
_MAGIC_BE: Final = 0x377F0683
_VERSION: Final = 3007000
_MASK: Final = 0xFFFFFFFF

#: the commit mark's file, beside the database: ``<database>.walmark``
MARK_SUFFIX: Final = ".walmark"
_MARK_MAGIC: Final = b"EYWM"
_MARK_FORMAT: Final = struct.Struct(">4sI32sIIII")  # magic, format, WAL header, frames...
# ...format 2 adds the last commit frame's page: its number, the database's size in pages
# after that commit, and a CRC-32 of the page's bytes (see CommitMark.page)...
_MARK_PAGE: Final = struct.Struct(">III")
_MARK_SIZES: Final = {1: _MARK_FORMAT.size + 4, 2: _MARK_FORMAT.size + _MARK_PAGE.size + 4}
# ...and a CRC-32 of the rest


def wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), continuing ``s0, s1``."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    pairs = iter(words)
    for a, b in zip(pairs, pairs, strict=True):
        s0 = (s0 + a + s1) & _MASK
        s1 = (s1 + b + s0) & _MASK
    return s0, s1


@dataclass(frozen=True, slots=True)
class WalScan:
    """What a WAL file holds, as SQLite's recovery would read it.

    Attributes:
        path: the WAL file.
        size: its size in bytes (0 if it does not exist).
        header: its 32-byte header, if that header is valid.
        header_problem: why the header is not valid (None if it is, or the file is empty).
        page_size: the page size the header gives (0 without a valid header).
        frames: valid frames in the chain from the header.
        committed: frames up to and including the last commit frame of the chain: what
            SQLite will read. Transactions after it are not committed.
        checksum: the cumulative checksum after the last committed frame.
        end: why the chain ended where it did (``end of file``, ``partial frame``…).
        stray_commits: commit frames of this generation after the chain's end whose
            checksum chains from the frame before them: committed transactions that
            SQLite would silently skip.
    """

    path: str
    size: int
    header: bytes | None
    header_problem: str | None
    page_size: int
    frames: int
    committed: int
    checksum: tuple[int, int]
    end: str
    stray_commits: int

    @property
    def frame_size(self) -> int:
        return FRAME_HEADER + self.page_size

    @property
    def committed_end(self) -> int:
        """Where the committed frames end: the size to cut a damaged WAL back to."""
        return WAL_HEADER + self.committed * self.frame_size if self.header else 0

    @property
    def salts(self) -> bytes | None:
        return self.header[16:24] if self.header else None


def _header_problem(raw: bytes) -> str | None:
    if len(raw) < WAL_HEADER:
        return f"only {len(raw)} bytes, shorter than a WAL header"
    magic, version, page_size = struct.unpack(">III", raw[:12])
    if magic not in (_MAGIC_LE, _MAGIC_BE):
        return "no WAL magic number"
    if version != _VERSION:
        return f"unknown WAL format version {version}"
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        return f"invalid page size {page_size}"
    expected = wal_checksum(raw[:24], 0, 0, magic == _MAGIC_BE)
    if struct.unpack(">II", raw[24:32]) != expected:
        return "header checksum mismatch"
    return None


def scan(path: str) -> WalScan:
    """Read the WAL at ``path`` frame by frame (it may not exist).

    Costs one checksum pass over the file (about 0.1 s per 1,000 frames of 4 KiB); a
    store shut down cleanly leaves no WAL.

    Raises:
        OSError: the file exists but cannot be read.
    """
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return WalScan(path, 0, None, None, 0, 0, 0, (0, 0), "no WAL file", 0)
    with file:
        size = os.fstat(file.fileno()).st_size
        raw = file.read(WAL_HEADER)
        if size == 0:
            return WalScan(path, 0, None, None, 0, 0, 0, (0, 0), "empty WAL file", 0)
        problem = _header_problem(raw)
        if problem is not None:
            return WalScan(path, size, None, problem, 0, 0, 0, (0, 0), "invalid header", 0)
        page_size = struct.unpack(">I", raw[8:12])[0]
        big = struct.unpack(">I", raw[:4])[0] == _MAGIC_BE
        salts = raw[16:24]
        s0, s1 = struct.unpack(">II", raw[24:32])
        frames = committed = 0
        checksum = (s0, s1)
        end = "end of file"
        step = FRAME_HEADER + page_size
        while True:
            frame = file.read(step)
            if len(frame) < step:
                end = "end of file" if not frame else "partial frame"
                break
            pgno, commit = struct.unpack(">II", frame[:8])
            if frame[8:16] != salts:
                end = f"frame {frames + 1} is not of this WAL's generation"
                break
            if pgno == 0:
                end = f"frame {frames + 1} has page number 0"
                break
            s0, s1 = wal_checksum(frame[:8] + frame[FRAME_HEADER:], s0, s1, big)
            if struct.unpack(">II", frame[16:24]) != (s0, s1):
                end = f"frame {frames + 1} checksum mismatch"
                break
            frames += 1
            if commit:
                committed, checksum = frames, (s0, s1)
        strays = _stray_commits(file, raw, frames, step, big) if end != "end of file" else 0
    return WalScan(path, size, raw, None, page_size, frames, committed, checksum, end, strays)


def _stray_commits(file: BinaryIO, header: bytes, frames: int, step: int, big: bool) -> int:
    """Count committed frames of this generation beyond the chain's end (frame ``frames``)."""
    salts = header[16:24]
    count = 0
    previous: bytes | None = None
    file.seek(WAL_HEADER + frames * step)
    while True:
        frame: bytes = file.read(step)
        if len(frame) < step:
            return count
        if frame[8:16] != salts:
            previous = None
            continue
        pgno, commit = struct.unpack(">II", frame[:8])
        if commit and pgno and previous is not None:
            p0, p1 = struct.unpack(">II", previous[16:24])
            chained = wal_checksum(frame[:8] + frame[FRAME_HEADER:], p0, p1, big)
            if struct.unpack(">II", frame[16:24]) == chained:
                count += 1
        previous = frame


@dataclass(frozen=True, slots=True)
class WalTransaction:
    """A transaction found after the valid chain's end by :func:`read_after_break`.

    Attributes:
        first: its first frame (1-based).
        last: its last frame: a commit frame whose checksum verified, or the last frame
            read when the transaction never reached one.
        verified: whether every frame of it verified and it ends in a commit frame.
        db_pages: the database's size in pages after it (its commit frame's field).
        pages: the page numbers it wrote (as its frame headers say).
        problem: why it is not verified (None if it is).
        cut: the WAL ends before its commit frame and every frame it still holds
            verified: the WAL was cut short there (truncated), nothing in it is damaged.
    """

    first: int
    last: int
    verified: bool
    db_pages: int
    pages: frozenset[int]
    problem: str | None
    cut: bool = False


@dataclass(frozen=True, slots=True)
class WalSalvage:
    """The committed transactions behind a damaged frame, and the newest verified copy of
    every page they wrote.

    Attributes:
        transactions: every transaction after the valid chain, in WAL order.
        pages: page number -> its bytes, from the newest verified transaction writing it.
        db_pages: the database's size in pages after the last verified transaction (0 if
            none verified).
    """

    transactions: tuple[WalTransaction, ...]
    pages: dict[int, bytes]
    db_pages: int

    @property
    def verified(self) -> list[WalTransaction]:
        return [t for t in self.transactions if t.verified]

    @property
    def lost(self) -> list[WalTransaction]:
        return [t for t in self.transactions if not t.verified]

    def not_rewritten(self, lost: WalTransaction) -> list[int]:
        """The pages ``lost`` wrote that no later verified transaction wrote again: what
        it changed on them is gone (a page rewritten later carries its changes along)."""
        later: set[int] = set()
        for t in self.transactions:
            if t.verified and t.first > lost.last:
                later |= t.pages
        return sorted(lost.pages - later)


def read_after_break(wal: WalScan, up_to: int) -> WalSalvage:
    """Read the frames after ``wal``'s committed frames, up to frame ``up_to``, and verify
    each one the way its successor would: its checksum continued from the checksum the
    frame before it *stores* (not from a recomputed one, which a damaged frame breaks).

    A transaction is kept only if every frame of it verifies and it ends in a verified
    commit frame; a frame that does not verify cannot be trusted to say where its
    transaction ends either, so everything up to the next verified commit frame goes with
    it. ``up_to`` must be a frame that is known to have been committed (the commit mark's
    count): frames after it may be the leftovers of a commit that failed.

    Raises:
        OSError: the WAL cannot be read.
    """
    if wal.header is None or up_to <= wal.committed:
        return WalSalvage((), {}, 0)
    big = struct.unpack(">I", wal.header[:4])[0] == _MAGIC_BE
    salts = wal.header[16:24]
    step = wal.frame_size
    transactions: list[WalTransaction] = []
    newest: dict[int, int] = {}  # page -> frame, over verified transactions only
    db_pages = 0
    previous = wal.checksum
    first, ok, problem, cut = wal.committed + 1, True, None, False
    pages: set[int] = set()
    frames: dict[int, int] = {}
    with open(wal.path, "rb") as file:
        file.seek(WAL_HEADER + wal.committed * step)
        for number in range(wal.committed + 1, up_to + 1):
            frame = file.read(step)
            if len(frame) < step:
                problem = problem or f"frame {number} is missing (the WAL ends)"
                cut, ok = ok, False
                break
            pgno, commit = struct.unpack(">II", frame[:8])
            stored = struct.unpack(">II", frame[16:24])
            valid = (
                frame[8:16] == salts
                and pgno != 0
                and stored == wal_checksum(frame[:8] + frame[FRAME_HEADER:], *previous, big)
            )
            previous = stored
            if not valid:
                ok = False
                problem = problem or f"frame {number} checksum mismatch"
            pages.add(pgno)
            frames[pgno] = number
            if valid and commit:
                transactions.append(
                    WalTransaction(first, number, ok, commit, frozenset(pages), problem)
                )
                if ok:
                    newest.update(frames)
                    db_pages = commit
                first, ok, problem, pages, frames = number + 1, True, None, set(), {}
        if first <= up_to:
            # every frame verified and the WAL's last whole frame is the last one read
            cut = cut or (ok and up_to == (wal.size - WAL_HEADER) // step)
            problem = problem or f"no commit frame verifies up to frame {up_to}"
            transactions.append(
                WalTransaction(first, up_to, False, 0, frozenset(pages), problem, cut)
            )
        data: dict[int, bytes] = {}
        for pgno, number in newest.items():
            if pgno <= db_pages:  # pages past the end were dropped by a later commit
                file.seek(WAL_HEADER + (number - 1) * step + FRAME_HEADER)
                data[pgno] = file.read(wal.page_size)
    return WalSalvage(tuple(transactions), data, db_pages)


# -- the commit mark -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageEvidence:
    """The page of the last commit frame, as the WAL held it: what the database file
    holds at that page once a checkpoint has copied the commit into it.

    Attributes:
        pgno: the page number (1-based).
        db_pages: the database's size in pages after the commit (the frame's "commit"
            field); a complete checkpoint leaves the file at least that long.
        crc: CRC-32 of the page's bytes.
    """

    pgno: int
    db_pages: int
    crc: int


@dataclass(frozen=True, slots=True)
class CommitMark:
    """What the store had committed when it last wrote the mark.

    Attributes:
        header: the WAL's 32-byte header then (empty when there was no WAL).
        frames: frames committed in that WAL (SQLite's ``mxFrame``).
        backfilled: how many of them had been copied into the database file.
        checksum: the cumulative checksum after the last committed frame.
        page: the last commit frame's page (None when unknown, or in a format 1 mark):
            tells a WAL that a checkpoint copied into the database file and SQLite then
            deleted from one that was lost.
    """

    header: bytes
    frames: int
    backfilled: int
    checksum: tuple[int, int]
    page: PageEvidence | None = None

    @property
    def salts(self) -> bytes | None:
        return self.header[16:24] if self.header else None

    def encode(self) -> bytes:
        body = _MARK_FORMAT.pack(
            _MARK_MAGIC,
            2,
            self.header.ljust(WAL_HEADER, b"\0"),
            self.frames,
            self.backfilled,
            *self.checksum,
        )
        page = self.page or PageEvidence(0, 0, 0)
        body += _MARK_PAGE.pack(page.pgno, page.db_pages, page.crc)
        return body + struct.pack(">I", zlib.crc32(body))


CLEAN: Final = CommitMark(b"", 0, 0, (0, 0))


def in_database(db_path: str, mark: CommitMark) -> bool:
    """Whether the database file holds the mark's last commit frame's page as the WAL
    held it, and is at least as long as the database was after that commit.

    SQLite deletes (or empties) a WAL only after a checkpoint copied every committed frame
    into the database file, and it copies each page's newest frame; the last commit's page
    then sits in the file as the mark saw it. A WAL that was lost instead (deleted by hand,
    restored without it) leaves the file as the last checkpoint before it did: that page
    older, unless the last transaction rewrote it with the same bytes.
    """
    page = mark.page
    if page is None or not page.pgno or not mark.header:
        return False
    page_size = struct.unpack(">I", mark.header[8:12])[0]
    try:
        with open(db_path, "rb") as file:
            if os.fstat(file.fileno()).st_size < max(page.db_pages, page.pgno) * page_size:
                return False
            file.seek((page.pgno - 1) * page_size)
            data = file.read(page_size)
    except OSError:
        return False
    return len(data) == page_size and zlib.crc32(data) == page.crc


def read_mark(db_path: str) -> CommitMark | str | None:
    """The commit mark beside ``db_path``: None if there is none, a str if it is unreadable."""
    try:
        with open(db_path + MARK_SUFFIX, "rb") as file:
            raw = file.read(max(_MARK_SIZES.values()) + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read {db_path}{MARK_SUFFIX}: {exc.strerror}"
    invalid = f"{db_path}{MARK_SUFFIX} is not a valid commit mark"
    if len(raw) not in _MARK_SIZES.values() or struct.unpack(">I", raw[-4:])[0] != zlib.crc32(
        raw[:-4]
    ):
        return invalid
    magic, version, header, frames, backfilled, c0, c1 = _MARK_FORMAT.unpack_from(raw)
    if magic != _MARK_MAGIC or _MARK_SIZES.get(version) != len(raw):
        return invalid
    page = None
    if version >= 2:
        evidence = PageEvidence(*_MARK_PAGE.unpack_from(raw, _MARK_FORMAT.size))
        page = evidence if evidence.pgno else None
    header = b"" if header == bytes(WAL_HEADER) else header
    return CommitMark(header, frames, backfilled, (c0, c1), page)


# The WAL-index header at the start of the -shm file, in the machine's byte order: iVersion,
# unused, iChange, isInit, bigEndCksum, szPage, mxFrame, nPage, aFrameCksum[2], aSalt (8 raw
# bytes), aCksum[2]; the checkpoint info (nBackfill first) follows two copies of it, at 96.
_SHM_HEADER: Final = struct.Struct("=IIIBBHII2I8s2I")
_SHM_BACKFILL: Final = 96


class MarkWriter:
    """Writes the commit mark after each commit (on the store's commit thread).

    One ``pread`` of the WAL-index, one of the last commit frame (to checksum its page)
    and one ``pwrite`` of 72 bytes per commit, no fsync.
    """

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._fd: int | None = None
        self._shm: int | None = None
        self._wal: int | None = None
        self._header = b""
        self._last: bytes | None = None

    def open(self) -> None:
        """Open the mark (0600); the WAL-index and the WAL are opened once SQLite made them."""
        self._fd = os.open(self.db_path + MARK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def record(self) -> None:
        """Write what the WAL-index says is committed now (quietly skipped if unreadable)."""
        if self._fd is None:
            return
        try:
            if self._shm is None:
                self._shm = os.open(self.db_path + "-shm", os.O_RDONLY | os.O_CLOEXEC)
            raw = os.pread(self._shm, _SHM_BACKFILL + 4, 0)
        except OSError:
            return
        if len(raw) < _SHM_BACKFILL + 4:
            return
        version, _, _, init, _, _, frames, _, c0, c1, salts, _, _ = _SHM_HEADER.unpack(
            raw[: _SHM_HEADER.size]
        )
        if version != _VERSION or not init:
            return
        (backfilled,) = struct.unpack("=I", raw[_SHM_BACKFILL:])
        if frames == 0:
            self._write(CommitMark(b"", 0, 0, (0, 0)))
            return
        if self._header[16:24] != salts:
            self._header = self._read_wal_header(salts)
        if not self._header:
            return
        page = self._commit_page(frames, (c0, c1))
        self._write(CommitMark(self._header, frames, min(backfilled, frames), (c0, c1), page))

    def clean(self) -> None:
        """Record that no WAL holds anything (after a checkpoint emptied it)."""
        self._write(CLEAN)

    def close(self) -> None:
        for fd in (self._fd, self._shm, self._wal):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._shm = self._wal = None

    def _commit_page(self, frames: int, checksum: tuple[int, int]) -> PageEvidence | None:
        """The page of commit frame ``frames``, if the WAL holds the frame the index names."""
        page_size = struct.unpack(">I", self._header[8:12])[0]
        try:
            if self._wal is None:
                self._wal = os.open(self.db_path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
            frame = os.pread(
                self._wal,
                FRAME_HEADER + page_size,
                WAL_HEADER + (frames - 1) * (FRAME_HEADER + page_size),
            )
        except OSError:
            return None
        if len(frame) != FRAME_HEADER + page_size or frame[8:16] != self._header[16:24]:
            return None
        pgno, db_pages = struct.unpack(">II", frame[:8])
        if not db_pages or struct.unpack(">II", frame[16:24]) != checksum:
            return None
        return PageEvidence(pgno, db_pages, zlib.crc32(frame[FRAME_HEADER:]))

    def _read_wal_header(self, salts: bytes) -> bytes:
        try:
            with open(self.db_path + "-wal", "rb") as file:
                header = file.read(WAL_HEADER)
        except OSError:
            return b""
        return header if len(header) == WAL_HEADER and header[16:24] == salts else b""

    def _write(self, mark: CommitMark) -> None:
        data = mark.encode()
        if data == self._last or self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, data, 0)
            self._last = data


# -- the verdict -----------------------------------------------------------------------------

State = Literal["absent", "valid", "torn tail", "damaged"]


@dataclass(frozen=True, slots=True)
class WalVerdict:
    """Whether a WAL can be opened, and why.

    Attributes:
        state: ``absent`` (no WAL, or an empty one), ``valid``, ``torn tail`` (an
            unacknowledged transaction cut by a crash, which SQLite drops: fine) or
            ``damaged`` (committed transactions would be lost: refuse).
        detail: one sentence for a person.
        scan: the WAL as read.
        mark: the commit mark, if there was a valid one.
        lost_frames: committed frames the WAL no longer holds, when the mark tells.
    """

    state: State
    detail: str
    scan: WalScan
    mark: CommitMark | None
    lost_frames: int = 0

    @property
    def ok(self) -> bool:
        return self.state != "damaged"


def judge(wal: WalScan, mark: CommitMark | str | None) -> WalVerdict:
    """Classify ``wal`` given the store's commit mark (see the module docstring)."""
    valid_mark = mark if isinstance(mark, CommitMark) else None

    def damaged(detail: str, lost: int = 0) -> WalVerdict:
        return WalVerdict("damaged", f"{wal.path}: {detail}", wal, valid_mark, lost)

    if wal.size > 0 and wal.header is None:
        return damaged(
            f"the WAL header is invalid ({wal.header_problem}) on a {wal.size}-byte WAL; "
            "SQLite would ignore every frame in it"
        )
    if wal.stray_commits and not _ends_at_mark(wal, valid_mark):
        return damaged(
            f"the WAL's valid frames end at frame {wal.frames} ({wal.end}), but "
            f"{wal.stray_commits} committed transaction(s) of the same WAL follow; SQLite "
            "would silently drop them"
        )
    unsaved = valid_mark is not None and valid_mark.frames > valid_mark.backfilled
    checkpointed = (
        valid_mark is not None
        and unsaved
        and in_database(wal.path.removesuffix("-wal"), valid_mark)
    )
    if wal.header is None:
        if checkpointed:
            return WalVerdict(
                "absent",
                f"{wal.path}: {wal.end}; its last committed transaction is in the database "
                "file (a checkpoint copied the WAL before it was deleted)",
                wal,
                valid_mark,
            )
        if valid_mark is not None and unsaved:
            return damaged(
                f"the WAL is missing, but it held {valid_mark.frames} committed frames, "
                f"{valid_mark.frames - valid_mark.backfilled} of them not yet copied into the "
                f"database file{_RESTORED}",
                valid_mark.frames - valid_mark.backfilled,
            )
        return WalVerdict("absent", f"{wal.path}: {wal.end}", wal, valid_mark)
    if valid_mark is not None and valid_mark.frames:
        if valid_mark.header == wal.header:
            if wal.committed < valid_mark.frames:
                return damaged(
                    f"the WAL's committed frames end at frame {wal.committed} ({wal.end}), "
                    f"but frame {valid_mark.frames} was committed",
                    valid_mark.frames - wal.committed,
                )
        elif unsaved and not checkpointed and not _next_generation(valid_mark.header, wal.header):
            return damaged(
                "the WAL is not the one the store last committed to, and that one held "
                f"frames not yet copied into the database file{_RESTORED}",
                valid_mark.frames - valid_mark.backfilled,
            )
    if wal.stray_commits:
        return WalVerdict(
            "torn tail",
            f"{wal.path}: {wal.committed} committed frames, where the commit mark ends; "
            f"{wal.stray_commits} commit frame(s) after the break ({wal.end}) are what a "
            "commit that failed left behind, never acknowledged",
            wal,
            valid_mark,
        )
    if wal.committed < wal.frames or wal.end == "partial frame":
        return WalVerdict(
            "torn tail",
            f"{wal.path}: {wal.committed} committed frames; an unfinished transaction after "
            f"them ({wal.end}) is dropped",
            wal,
            valid_mark,
        )
    return WalVerdict("valid", f"{wal.path}: {wal.committed} committed frames", wal, valid_mark)


# The mark belongs to the files it was written with: a copy restored without it looks
# like a lost WAL. Say so, so that whoever restored it knows that recovering is safe.
_RESTORED: Final = (
    " (if the database was restored from a copy without its WAL and commit mark, "
    "the copy is what the store holds and store recover keeps all of it)"
)


def _ends_at_mark(wal: WalScan, mark: CommitMark | None) -> bool:
    """Whether the WAL's committed frames end exactly where the mark says the last commit
    ended: same WAL, same frame count, same cumulative checksum.

    Frames after that point were not committed when the mark was written, so commit
    frames among them are not acknowledged transactions: a COMMIT whose fsync failed
    leaves its frames in the file (SQLite rolls it back and the next, shorter transaction
    overwrites only the start of them), and they still chain among themselves.
    """
    return (
        mark is not None
        and mark.header == wal.header
        and mark.frames == wal.committed
        and mark.checksum == wal.checksum
    )


def _next_generation(before: bytes, after: bytes) -> bool:
    """Whether ``after`` is the header SQLite writes when it restarts the WAL ``before``
    (it does so only once every frame is in the database): salt-1 plus one."""
    salt_before = int.from_bytes(before[16:20], "big")
    salt_after = int.from_bytes(after[16:20], "big")
    return salt_after == (salt_before + 1) & _MASK
