"""The SQLite store's deliveries: pending records, their claims with leases, and settles.

The table is ``deliveries`` (``migrations/``); ingest inserts its rows (see
:mod:`.sqlite`), and :class:`Deliveries` serves the delivery methods of
:class:`~eventyard.server.store.sqlite.SQLiteStore` on the store's reader connection
and its group-committing writer (:mod:`.sqlite_writer`).

**Deliveries are claimed with leases kept in memory.** The file lock admits one process
per file, so the leases of :meth:`Deliveries.claim_deliveries` live in this process
(:mod:`.leases`), not in the database: a lease cannot outlive its process, and a restart
clears them all, which is right, since it ended every owner. A claim is one indexed
range read after the target's claim mark (plus the positions released behind it), so it
never reads the leased records of a large backlog again. A settle decides ownership as
its write runs in the batch and ends the leases with the commit
(:meth:`.sqlite_writer.Writer.submit` takes an ``on_outcome`` hook, told whether the
write committed, before any caller wakes); a refused id is returned and nothing is
written for it.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from eventyard.server.store.leases import LeaseBook, Position
from eventyard.server.store.listeners import Notes
from eventyard.server.store.protocol import Claim, Delivery, NewDelivery, NewMessage
from eventyard.server.store.sqlite_files import Query, Row, fetch_all
from eventyard.server.store.sqlite_queues import insert_messages, message_rows
from eventyard.server.store.sqlite_writer import Counted

__all__ = ["CountedWrite", "Deliveries"]

#: queues one write function in the writer's group commit, with its notes and its
#: ``on_outcome`` hook, and awaits the value of the :class:`Counted` it returns
CountedWrite = Callable[
    [Callable[[sqlite3.Connection], Counted], Notes | None, Callable[[bool], None] | None],
    Awaitable[Any],
]

# Ids bound in one ``IN (...)`` list, well below SQLite's limit on bound parameters.
_IDS_PER_QUERY: Final = 500
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


def _settle(
    conn: sqlite3.Connection,
    done: list[tuple[int]],
    retry: list[tuple[float, int, int]],
    messages: list[Row],
) -> Counted:
    removed = 0
    if done:
        removed = conn.executemany("DELETE FROM deliveries WHERE id=?", done).rowcount
    if retry:
        conn.executemany("UPDATE deliveries SET due=?, attempts=? WHERE id=?", retry)
    if messages:
        insert_messages(conn, messages)
    return Counted(None, -removed)


def _targets_of(conn: sqlite3.Connection, ids: Sequence[int]) -> set[str]:
    """The targets of the delivery records ``ids``."""
    targets: set[str] = set()
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT DISTINCT target FROM deliveries WHERE id IN ({marks})"
        targets.update(t for (t,) in fetch_all(conn, sql, chunk))
    return targets


# -- the methods ------------------------------------------------------------------------------


class Deliveries:
    """The delivery methods of one SQLite store, over its reader, its writer and its leases.

    Args:
        query: runs one read on the reader connection (checks the store is open,
            translates errors).
        write: queues one counted write function, with its notes and ``on_outcome``
            hook, in the writer's group commit and awaits it.
        notes: somewhere for a write to record what it changes, if anyone listens.
        leases: the store's leases and claim marks.
        clock: the store's clock, by which due times and leases are judged.
    """

    def __init__(
        self,
        query: Query,
        write: CountedWrite,
        notes: Callable[[], Notes | None],
        leases: LeaseBook,
        clock: Callable[[], float],
    ) -> None:
        self._query = query
        self._write_counted = write
        self._notes = notes
        self._leases = leases
        self._clock = clock

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
            ") SELECT target FROM t WHERE target IS NOT NULL",
            (),
        )
        return [target for (target,) in rows]

    async def claim_deliveries(self, owner: str, target: str, limit: int, lease: float) -> Claim:
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
        ids = [*done, *(i for i, _, _ in retry), *(i for i, _ in dead)]
        if not ids:
            return [i for i, _ in messages]  # a message without its settle is not written
        sent_at = time.time()
        book = self._leases
        held: set[int] = set()
        lost: list[int] = []
        moved = {i: due for i, due, _ in retry}
        notes = self._notes()

        def write(conn: sqlite3.Connection) -> Counted:
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
            counted = _settle(conn, deleted, retried, message_rows(sends, sent_at))
            if notes is not None:
                notes.queues.update(m.queue for m in sends)
                ready = [i for i in released if i in mine]
                if ready:
                    notes.targets.update(_targets_of(conn, ready))
            return Counted(list(lost), counted.delta)

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

    def arrived(self, first_id: int, deliveries: Sequence[NewDelivery]) -> None:
        """Tell the leases of the records ``first_id``… that an ingest just committed:
        records created behind a target's claim mark must be found by its claims."""
        by_target: dict[str, list[Position]] = {}
        for n, d in enumerate(deliveries):
            by_target.setdefault(d.target, []).append((d.due, first_id + n))
        for target, positions in by_target.items():
            self._leases.arrived(target, positions)
