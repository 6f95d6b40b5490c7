"""The SQLite store's queues: messages, receipts, FIFO groups and dead-letter moves.

The tables are ``messages`` (one row per message, ``n`` its sending order) and
``message_dedup`` (``migrations/``); :class:`Queues` serves the queue methods of
:class:`~eventyard.server.store.sqlite.SQLiteStore` on the store's reader connection
and its group-committing writer (:mod:`.sqlite_writer`); :func:`message_rows` and
:func:`insert_messages` also serve ingest and settle, inside their transactions.

**Queues follow SQS**: a receive hides a message for the visibility timeout and returns a
receipt handle that encodes the message id and a random token. Only the *latest* receipt
of a message is valid: once the message is received again, older receipts are stale and
``queue_delete`` / ``queue_change_visibility`` with them return False (SQS lets an old
receipt delete the message; refusing it tells a slow consumer that somebody else now owns
it). A receipt stays valid after its timeout expires until the next receive.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol, TypeVar

import orjson

from eventyard.server.store.listeners import Notes
from eventyard.server.store.protocol import DEDUP_INTERVAL, NewMessage, QueueMessage
from eventyard.server.store.sqlite_files import Query, Row, fetch_all, fetch_one

__all__ = ["Queues", "Write", "insert_messages", "message_rows"]

T = TypeVar("T")


class Write(Protocol):
    """Queues one write function in the writer's group commit, with the notes it records
    for the store's listeners, and awaits its result."""

    def __call__(
        self, fn: Callable[[sqlite3.Connection], T], notes: Notes | None = None, /
    ) -> Awaitable[T]: ...


_INSERT_MESSAGE: Final = (
    "INSERT INTO messages (id, queue, body, attributes, sent, visible_at, group_id, dedup_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def message_rows(messages: Sequence[NewMessage], now: float) -> list[Row]:
    """The rows :func:`insert_messages` inserts for ``messages`` sent at ``now``."""
    return [
        (
            m.message_id or str(uuid.uuid4()),
            m.queue,
            m.body,
            orjson.dumps(m.attributes).decode(),
            now,
            now + m.delay,
            m.group_id,
            m.dedup_id,
        )
        for m in messages
    ]


def insert_messages(conn: sqlite3.Connection, rows: list[Row]) -> list[str]:
    """Insert message rows; returns each one's message id.

    A row with a de-duplication key its queue saw within :data:`DEDUP_INTERVAL` is not
    inserted: its id is the first message's. Expired keys are dropped as sends pass.
    """
    if not any(row[7] is not None for row in rows):
        conn.executemany(_INSERT_MESSAGE, rows)
        return [row[0] for row in rows]
    now = rows[0][4]
    conn.execute("DELETE FROM message_dedup WHERE expires<=?", (now,))
    ids: list[str] = []
    for row in rows:
        message_id, queue, dedup = row[0], row[1], row[7]
        if dedup is not None:
            seen = fetch_one(
                conn,
                "SELECT message_id FROM message_dedup WHERE queue=? AND dedup_id=?",
                (queue, dedup),
            )
            if seen is not None:
                ids.append(str(seen[0]))
                continue
            conn.execute(
                "INSERT INTO message_dedup (queue, dedup_id, message_id, expires)"
                " VALUES (?, ?, ?, ?)",
                (queue, dedup, message_id, now + DEDUP_INTERVAL),
            )
        conn.execute(_INSERT_MESSAGE, row)
        ids.append(message_id)
    return ids


def _receipt(message_id: str, token: str) -> str:
    return base64.urlsafe_b64encode(f"{message_id}:{token}".encode()).decode()


def _parse_receipt(receipt: str) -> tuple[str, str] | None:
    try:
        text = base64.urlsafe_b64decode(receipt.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        return None
    message_id, sep, token = text.partition(":")
    return (message_id, token) if sep and message_id and token else None


# -- write operations (each runs inside a batch's transaction, under its own savepoint) -------


def _queue_receive(
    conn: sqlite3.Connection,
    queue_name: str,
    *,
    max_messages: int,
    visibility_timeout: float,
    now: float,
    redrive: tuple[str, int] | None,
    notes: Notes | None = None,
) -> list[QueueMessage]:
    if queue_name.endswith(".fifo"):
        return _fifo_receive(
            conn,
            queue_name,
            max_messages=max_messages,
            visibility_timeout=visibility_timeout,
            now=now,
            redrive=redrive,
            notes=notes,
        )
    received: list[QueueMessage] = []
    seen: set[int] = set()
    hidden_until = now + visibility_timeout
    while len(received) < max_messages:
        # Over-fetch by what this call already took: with a zero timeout those messages
        # are still visible, and they must not be returned twice.
        wanted = max_messages - len(received)
        rows = fetch_all(
            conn,
            f"SELECT {_RECEIVED_COLUMNS} FROM messages"
            " WHERE queue=? AND visible_at<=? ORDER BY visible_at, receive_count, n LIMIT ?",
            (queue_name, now, wanted + len(seen)),
        )
        rows = [r for r in rows if r[0] not in seen][:wanted]
        if not rows:
            break
        taking = _Taking(now, hidden_until, redrive)
        for row in rows:
            seen.add(row[0])
            taking.take(row)
        received += taking.finish(conn, notes)
        if not taking.moved:
            break
    return received


# n, id, body, attributes, sent, receive_count, first_receive, group_id, dedup_id, visible_at
_RECEIVED_COLUMNS: Final = (
    "n, id, body, attributes, sent, receive_count, first_receive, group_id, dedup_id, visible_at"
)


class _Taking:
    """The messages one receive takes and the ones it moves to the dead-letter queue."""

    def __init__(self, now: float, hidden_until: float, redrive: tuple[str, int] | None) -> None:
        self.now = now
        self.hidden_until = hidden_until
        self.redrive = redrive
        self.updates: list[Row] = []
        self.moved: list[Row] = []
        self.received: list[QueueMessage] = []

    def take(self, row: Row) -> bool:
        """Take ``row`` (True), or move it to the dead-letter queue (False)."""
        n, message_id, body, attributes, sent, count, first_receive, group, dedup, _ = row
        if self.redrive is not None and count >= self.redrive[1]:
            self.moved.append((n, body, attributes, sent, group, dedup))
            return False
        token = secrets.token_hex(8)
        first = self.now if first_receive is None else first_receive
        self.updates.append((self.hidden_until, count + 1, first, token, n))
        self.received.append(
            QueueMessage(
                message_id=message_id,
                body=body,
                attributes=orjson.loads(attributes),
                receipt=_receipt(message_id, token),
                sent=sent,
                receive_count=count + 1,
                first_receive=first,
                group_id=group,
                dedup_id=dedup,
            )
        )
        return True

    def finish(self, conn: sqlite3.Connection, notes: Notes | None) -> list[QueueMessage]:
        if self.updates:
            conn.executemany(
                "UPDATE messages SET visible_at=?, receive_count=?, first_receive=?, receipt=?"
                " WHERE n=?",
                self.updates,
            )
        if self.moved:
            assert self.redrive is not None
            conn.executemany("DELETE FROM messages WHERE n=?", [(m[0],) for m in self.moved])
            # Moved to the dead-letter queue with a new id, visible there at once (no
            # de-duplication: it is a move); the original sent time is kept, as SQS keeps
            # SentTimestamp, and so is a FIFO message's group.
            conn.executemany(
                _INSERT_MESSAGE,
                [
                    (str(uuid.uuid4()), self.redrive[0], body, attrs, sent, self.now, group, dedup)
                    for _, body, attrs, sent, group, dedup in self.moved
                ],
            )
            if notes is not None:
                notes.queues.add(self.redrive[0])
        return self.received


_FIFO_GROUP: Final = (
    f"SELECT {_RECEIVED_COLUMNS} FROM messages WHERE queue=? AND group_id=? AND n>?"
    " ORDER BY n LIMIT ?"
)
_FIFO_LOOSE: Final = (
    f"SELECT {_RECEIVED_COLUMNS} FROM messages WHERE queue=? AND group_id IS NULL AND n>?"
    " ORDER BY n LIMIT ?"
)


def _fifo_receive(
    conn: sqlite3.Connection,
    queue_name: str,
    *,
    max_messages: int,
    visibility_timeout: float,
    now: float,
    redrive: tuple[str, int] | None,
    notes: Notes | None,
) -> list[QueueMessage]:
    """Receive from a FIFO queue: each group's messages in sending order, none of a group
    whose earliest message is in flight (or still delayed).

    The groups whose head (earliest message) is visible are found from the group index
    (one pass in SQLite, not in Python), oldest head first; each is then read in order
    until one of its messages is not visible. A backlog behind an in-flight head is not
    read at all, and other queues' messages never are.
    """
    taking = _Taking(now, now + visibility_timeout, redrive)
    heads = fetch_all(
        conn,
        "SELECT m.group_id FROM messages m JOIN (SELECT group_id, min(n) AS head FROM messages"
        " WHERE queue=? AND group_id IS NOT NULL GROUP BY group_id) h ON m.n=h.head"
        " WHERE m.visible_at<=? ORDER BY m.n",
        (queue_name, now),
    )
    groups: list[str | None] = [str(row[0]) for row in heads]
    # messages without a group (none are written by the API) are one more group
    ((loose,),) = fetch_all(
        conn, "SELECT min(n) FROM messages WHERE queue=? AND group_id IS NULL", (queue_name,)
    )
    if loose is not None:
        groups.append(None)
    for group in groups:
        after, blocked = 0, False
        while not blocked and len(taking.received) < max_messages:
            limit = max_messages - len(taking.received)
            # "group_id=?" lets SQLite read the group index ("IS ?" would not)
            rows = (
                fetch_all(conn, _FIFO_LOOSE, (queue_name, after, limit))
                if group is None
                else fetch_all(conn, _FIFO_GROUP, (queue_name, group, after, limit))
            )
            if not rows:
                break
            for row in rows:
                if row[9] > now:
                    blocked = True  # in flight or delayed: the rest of its group waits
                    break
                taking.take(row)  # taken, or moved to the dead-letter queue
                after = row[0]
        if len(taking.received) >= max_messages:
            break
    return taking.finish(conn, notes)


def _by_receipt(
    conn: sqlite3.Connection, sql: str, head: Sequence[Any], queue_name: str, receipt: str
) -> bool:
    parsed = _parse_receipt(receipt)
    if parsed is None:
        return False
    message_id, token = parsed
    cursor = conn.execute(
        sql + " WHERE id=? AND queue=? AND receipt=?", (*head, message_id, queue_name, token)
    )
    return cursor.rowcount == 1


# -- the methods ------------------------------------------------------------------------------


class Queues:
    """The queue methods of one SQLite store, over its reader and its writer.

    Args:
        query: runs one read on the reader connection (checks the store is open,
            translates errors).
        write: queues one write function, with its notes, in the writer's group commit
            and awaits it.
        notes: somewhere for a write to record what it changes, if anyone listens.
        check_open: raises StoreError unless the store is open and used from its loop.
    """

    def __init__(
        self,
        query: Query,
        write: Write,
        notes: Callable[[], Notes | None],
        check_open: Callable[[], None],
    ) -> None:
        self._query = query
        self._write = write
        self._notes = notes
        self._check_open = check_open

    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        rows = message_rows(messages, time.time())
        if not rows:
            self._check_open()
            return []
        notes = self._notes()
        if notes is not None:
            notes.queues.update(m.queue for m in messages)
        return await self._write(lambda c: insert_messages(c, rows), notes)

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        if redrive is not None and redrive[1] < 1:
            raise ValueError(f"max_receive_count must be at least 1, not {redrive[1]}")
        if max_messages < 1:
            return []
        # redrive moves wake the dead-letter queue's polls: only actual moves, so two
        # queues that dead-letter into each other never wake each other for nothing
        notes = self._notes() if redrive is not None else None
        return await self._write(
            lambda c: _queue_receive(
                c,
                queue,
                max_messages=max_messages,
                visibility_timeout=visibility_timeout,
                now=now,
                redrive=redrive,
                notes=notes,
            ),
            notes,
        )

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        return await self._write(
            lambda c: _by_receipt(c, "DELETE FROM messages", (), queue, receipt)
        )

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        # a message made visible at once is news for the queue's long polls
        notes = self._notes() if timeout <= 0 else None

        def write(conn: sqlite3.Connection) -> bool:
            changed = _by_receipt(
                conn, "UPDATE messages SET visible_at=?", (now + timeout,), queue, receipt
            )
            if changed and notes is not None:
                notes.queues.add(queue)
            return changed

        return await self._write(write, notes)

    async def queue_purge(self, queue: str) -> None:
        def purge(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE queue=?", (queue,))
            conn.execute("DELETE FROM message_dedup WHERE queue=?", (queue,))

        await self._write(purge)

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        ((visible, in_flight, delayed),) = self._query(
            "SELECT coalesce(sum(visible_at<=?1), 0),"
            " coalesce(sum(visible_at>?1 AND receive_count>0), 0),"
            " coalesce(sum(visible_at>?1 AND receive_count=0), 0)"
            " FROM messages WHERE queue=?2",
            (now, queue),
        )
        return int(visible), int(in_flight), int(delayed)

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        ((due,),) = self._query(
            "SELECT min(visible_at) FROM messages WHERE queue=? AND visible_at>?", (queue, now)
        )
        return None if due is None else float(due)

    async def queue_oldest(self, queue: str) -> float | None:
        ((sent,),) = self._query("SELECT min(sent) FROM messages WHERE queue=?", (queue,))
        return None if sent is None else float(sent)
