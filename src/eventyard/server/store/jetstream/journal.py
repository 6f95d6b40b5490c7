"""The ingest journal: what makes an ingest all-or-nothing across three streams.

An ingest writes to the log, the deliveries and the queues, three streams that no
JetStream transaction spans. So it is written first as **one** journal message (all its
events, records and messages), and only then applied: published to the three streams
with ``Nats-Msg-Id`` ids fixed in the entry, so applying an entry twice stores
everything once (within :data:`~.streams.DUPLICATE_WINDOW`). An entry that was written
is applied by someone: by its writer at once, or, if the writer died or failed half-way,
by any process's recovery (:meth:`Journal.recover`: at open every entry of other
writers, then every 10 s the entries older than :data:`RECOVER_AFTER`). So after a
crash the log, the records and the messages of an ingest are all there or none are,
once a process has opened the store.

Each process writes on its own subject (``<prefix>.journal.<writer>``) and purges what
it applied once a second (``STREAM.PURGE`` up to its oldest entry not yet applied), so
the journal holds only the last second's entries. An entry bigger than the connection's
maximum payload is not journaled (applied directly, not atomic; logged).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.codec import Names
from eventyard.server.store.jetstream.connection import Link, Published
from eventyard.server.store.jetstream.timeindex import parse_stamp
from eventyard.server.store.protocol import NewDelivery, NewEvent, NewMessage

__all__ = ["RECOVER_AFTER", "Entry", "Journal", "decode_entry", "encode_entry"]

log = logging.getLogger("eventyard.store.jetstream")

RECOVER_AFTER = 30.0
"""Seconds after which another process applies a writer's unapplied journal entry."""

PURGE_INTERVAL = 1.0
RECOVER_INTERVAL = 10.0


@dataclass(slots=True, frozen=True)
class Entry:
    """One ingest as journaled: ``key`` derives every id of what it writes.

    ``key`` is the claim's ``claim:<kind>:<key>:<revision>`` (so a second claimer's
    entry is a duplicate) or a fresh uuid; ``claimed`` says which. Every message has
    its message id set.
    """

    key: str
    claimed: bool
    events: tuple[NewEvent, ...]
    deliveries: tuple[NewDelivery, ...]
    messages: tuple[NewMessage, ...]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_entry(entry: Entry) -> bytes:
    bodies = {e.event_id: e.body for e in entry.events}
    doc: dict[str, Any] = {
        "k": entry.key,
        "c": entry.claimed,
        "e": [
            [e.event_id, e.bus, e.time, _b64(e.body)]
            + ([list(e.archives), e.event_time] if e.archives else [])
            for e in entry.events
        ],
        "d": [
            [
                d.target,
                d.event_id,
                None if d.payload == d.event else _b64(d.payload),
                None if bodies.get(d.event_id) == d.event else _b64(d.event),
                d.first_seen,
                d.due,
            ]
            for d in entry.deliveries
        ],
        "m": [[m.queue, m.body, m.attributes, m.delay, m.message_id] for m in entry.messages],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_entry(data: bytes) -> Entry:
    """The entry :func:`encode_entry` wrote.

    Raises:
        StoreError: ``data`` is not a journal entry.
    """
    try:
        doc = json.loads(data)
        events = tuple(_event(*fields) for fields in doc["e"])
        bodies = {e.event_id: e.body for e in events}
        deliveries = []
        for target, event_id, payload, event, first_seen, due in doc["d"]:
            event_bytes = bodies[event_id] if event is None else base64.b64decode(event)
            payload_bytes = event_bytes if payload is None else base64.b64decode(payload)
            deliveries.append(
                NewDelivery(
                    target, event_id, payload_bytes, event_bytes, float(first_seen), float(due)
                )
            )
        messages = tuple(
            NewMessage(queue, body, attributes, float(delay), message_id)
            for queue, body, attributes, delay, message_id in doc["m"]
        )
        return Entry(str(doc["k"]), bool(doc["c"]), events, tuple(deliveries), messages)
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"unreadable ingest journal entry: {exc}") from exc


def _event(  # noqa: PLR0917 - the fields of a journaled event, in order
    event_id: str,
    bus: str,
    moment: float,
    body: str,
    archives: list[str] | None = None,
    event_time: float = 0.0,
) -> NewEvent:
    return NewEvent(
        event_id,
        bus,
        float(moment),
        base64.b64decode(body),
        tuple(str(a) for a in archives or ()),
        float(event_time),
    )


class Journal:
    """This process's journal subject: write, mark applied, purge, recover others."""

    def __init__(self, link: Link, names: Names, apply: Callable[[Entry], Awaitable[Any]]) -> None:
        self._link = link
        self._names = names
        self._apply = apply
        self.writer = uuid.uuid4().hex[:16]
        self.subject = names.journal_subject(self.writer)
        self._in_flight: set[int] = set()
        self._last = 0
        self._purged_to = 0
        self._task: asyncio.Task[None] | None = None

    def fits(self, data: bytes) -> bool:
        """Whether an encoded entry fits in one message (headers and all)."""
        return len(data) + 4096 <= self._link.nc.max_payload

    async def write(self, entry: Entry, data: bytes) -> Published:
        """Journal ``entry``; a claimed entry already journaled comes back as duplicate."""
        (ack,) = await self._link.publish_many(
            [(self.subject, data, {"Nats-Msg-Id": entry.key})], "ingest journal"
        )
        if not ack.duplicate:
            self._in_flight.add(ack.seq)
            self._last = max(self._last, ack.seq)
        return ack

    def applied(self, seq: int) -> None:
        self._in_flight.discard(seq)

    async def discard(self, seq: int) -> None:
        """Remove an entry that must not be applied (its claim failed)."""
        try:
            await self._link.api(
                f"$JS.API.STREAM.MSG.DELETE.{self._names.journal_stream}",
                {"seq": seq, "no_erase": True},
                "ingest journal discard",
            )
        finally:
            self._in_flight.discard(seq)

    # -- background --------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreError):
            await self._purge()

    async def _run(self) -> None:
        next_recovery = time.monotonic() + RECOVER_INTERVAL
        while True:
            await asyncio.sleep(PURGE_INTERVAL)
            try:
                await self._purge()
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + RECOVER_INTERVAL
                    await self.recover(RECOVER_AFTER)
            except StoreError as exc:
                log.warning("ingest journal upkeep failed (will retry): %s", exc)

    async def _purge(self) -> None:
        """Purge this writer's applied entries (all before the oldest in flight)."""
        upto = min(self._in_flight) if self._in_flight else self._last + 1
        if upto <= self._purged_to + 1 or self._last == 0:
            return
        await self._purge_subject(self.subject, upto)
        self._purged_to = upto - 1

    async def _purge_subject(self, subject: str, upto: int) -> None:
        await self._link.api(
            f"$JS.API.STREAM.PURGE.{self._names.journal_stream}",
            {"filter": subject, "seq": upto},
            "ingest journal purge",
        )

    async def recover(self, min_age: float) -> int:
        """Apply journal entries at least ``min_age`` s old; returns how many.

        Entries of this writer still in flight are its own business unless they are
        old (their apply failed). Applying is idempotent, so a writer that is alive and
        applying the same entry right now does no harm.
        """
        msgs = await self._link.direct_batch(
            self._names.journal_stream,
            1,
            f"{self._names.prefix}.journal.>",
            100_000,
            "ingest journal recovery",
        )
        applied = 0
        done: dict[str, int] = {}
        for msg in msgs:
            headers = msg.headers or {}
            subject = headers.get("Nats-Subject", "")
            seq = int(headers.get("Nats-Sequence", "0"))
            age = time.time() - parse_stamp(headers.get("Nats-Time-Stamp"))
            if age < min_age or (subject == self.subject and age < RECOVER_AFTER):
                continue
            await self._apply(decode_entry(msg.data))
            applied += 1
            self._in_flight.discard(seq)
            if subject != self.subject:
                done[subject] = seq
        for subject, seq in done.items():
            await self._purge_subject(subject, seq + 1)
        if applied:
            log.info("recovered %d ingest journal entries", applied)
        return applied
