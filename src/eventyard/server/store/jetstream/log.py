"""The event log and ingest of a JetStream store.

The log is a limits-retention stream, one subject per bus (``<prefix>.log.<bus>``, and
``….o.<bucket>`` for events whose ingestion time was far from the clock when they were
stored),
one message per event; its stream sequence is :attr:`LogRecord.seq`. Windows of
ingestion time and retention go by the server's time index (:mod:`.timeindex`); the
archive copies of an ingest are written with it (:mod:`.archives`). :meth:`Ingest.ingest`
publishes the events, their delivery records and their queue messages, all with
``Nats-Msg-Id`` (events: the event id; records: event id and target; messages: their
message id), in order on one connection, and returns once every publish is
acknowledged: JetStream acks a message once it is stored on a quorum of the stream's
replicas (with ``sync_interval: always``, fsynced), so an acknowledged ingest is durable.

**All or nothing** by the journal (:mod:`.journal`): the ingest is written as one journal
message first, then applied to the three streams with ids fixed in the entry; an entry a
crash left half-applied is applied again by a process's recovery, and applying twice
stores everything once within the duplicate window. JetStream's atomic batch publish
covers one stream only, so it cannot make this atomic by itself.

**A catalog claim** (the scheduler's tick) makes the ingest exactly-once across
processes: the journal entry and every message of the ingest get ids derived from
``(kind, key, expect_revision, index)``, so a second claimer of the same revision writes
only duplicates. The claim's conditional KV write comes after the journal entry and
before the ingest is applied: only one claimer's write succeeds, and a claimer whose
write fails discards its entry and raises. A claimer that finds the revision already
moved raises before writing anything. The limit: a claimer that dies between its
journal entry and its KV write leaves an entry that recovery applies (the tick's events
without the claim); the next claimer of that revision writes the same ids (duplicates)
and claims, so the tick happens once, provided it comes within the duplicate window.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace

from nats.aio.msg import Msg

from eventyard.errors import ConcurrentModification, StoreError
from eventyard.server.store.jetstream import timeindex
from eventyard.server.store.jetstream.archives import Archives
from eventyard.server.store.jetstream.catalog import Catalog, conflict
from eventyard.server.store.jetstream.codec import Names, fmt_float
from eventyard.server.store.jetstream.connection import Link, nats_errors
from eventyard.server.store.jetstream.deliveries import Deliveries, delivery_message
from eventyard.server.store.jetstream.journal import Entry, Journal, encode_entry
from eventyard.server.store.protocol import (
    CatalogClaim,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
)

__all__ = ["EventLog"]

log = logging.getLogger("eventyard.store.jetstream")

_EVENT = "Ey-Event-Id"
_TIME = "Ey-Time"
#: how many of its own recent event ids a process remembers to leave out of follow_log
_OWN_KEPT = 100_000

_STOPPING: set[asyncio.Future[None]] = set()

PutMessages = Callable[[Sequence[NewMessage], Sequence[str] | None], Awaitable[list[str]]]


def _time_of(msg: Msg) -> float:
    try:
        return float((msg.headers or {})[_TIME])
    except (KeyError, ValueError) as exc:
        raise StoreError(f"log record is malformed: {exc}") from exc


class EventLog:
    """Ingest (log + delivery records + queue messages) and log reads."""

    def __init__(  # noqa: PLR0917 - the parts it joins
        self,
        link: Link,
        names: Names,
        catalog: Catalog,
        deliveries: Deliveries,
        put_messages: PutMessages,
        ready: Callable[[Collection[str]], None],
        archives: Archives,
    ) -> None:
        self._archives = archives
        self._link = link
        self._names = names
        self._catalog = catalog
        self._deliveries = deliveries
        self._put_messages = put_messages
        self._ready = ready
        self._journal = Journal(link, names, self.apply)
        self._warned = False
        self.journaled = True
        # the ids of events this process appended lately, which follow_log leaves out
        self._own: dict[str, None] = {}

    @property
    def journal(self) -> Journal:
        return self._journal

    async def ingest(
        self,
        events: Sequence[NewEvent],
        deliveries: Sequence[NewDelivery],
        messages: Sequence[NewMessage],
        claim: CatalogClaim | None,
    ) -> list[Delivery]:
        if claim is not None:
            current = await self._catalog.get(claim.kind, claim.key)
            found = 0 if current is None else current.revision
            if found != claim.expect_revision:
                raise conflict(claim.expect_revision, found)
            key = f"claim:{claim.kind}:{claim.key}:{claim.expect_revision}"
        else:
            key = uuid.uuid4().hex
        for e in events:
            self._own[e.event_id] = None
        while len(self._own) > _OWN_KEPT:
            del self._own[next(iter(self._own))]
        given = [m for m in messages if m.message_id and not m.derived]
        if given:
            # A message id given by the caller must fail the ingest if it is in use
            # (the queues check it when it is its own de-duplication id): put those
            # first, before anything else of the ingest exists. Derived ids (the
            # engine's dead letters) are the journaled entry's, like ids made here.
            await self._put_messages(given, None)
        entry = Entry(
            key,
            claim is not None,
            tuple(events),
            tuple(deliveries),
            tuple(
                m if m.message_id else replace(m, message_id=str(uuid.uuid4()))
                for m in messages
                if m.derived or not m.message_id
            ),
        )
        if not self.journaled:
            # Unjournaled: publish first, then claim (ids derived from the claim make a
            # second claimer's publishes duplicates; see the module docstring).
            stored = await self.apply(entry)
            if claim is not None:
                await self._catalog.put(claim.kind, claim.key, claim.doc, claim.expect_revision)
            return stored
        data = encode_entry(entry)
        seq = None
        if self._journal.fits(data):
            ack = await self._journal.write(entry, data)
            seq = None if ack.duplicate else ack.seq
        elif not self._warned:
            self._warned = True
            log.warning("an ingest of %d bytes is too big to journal: applied directly", len(data))
        if claim is not None:
            try:
                await self._catalog.put(claim.kind, claim.key, claim.doc, claim.expect_revision)
            except ConcurrentModification:
                if seq is not None:
                    await self._journal.discard(seq)
                raise
        stored = await self.apply(entry)
        if seq is not None:
            self._journal.applied(seq)
        return stored

    def follow(self, bus: str, on_event: Callable[[bytes], None]) -> Callable[[], None]:
        """A core NATS subscription to the bus's log subject: every process sees what
        the server stores there as it is published; this process's own events are left
        out. Returns the function that ends it."""
        own = self._own
        nc = self._link.nc

        async def got(msg: Msg) -> None:
            event_id = (msg.headers or {}).get(_EVENT)
            if event_id is not None and event_id not in own:
                on_event(msg.data)

        subscribing = asyncio.gather(
            nc.subscribe(self._names.log_subject(bus), cb=got),
            nc.subscribe(self._names.log_subject(bus) + ".o.*", cb=got),
        )

        def stop() -> None:
            async def unsubscribe() -> None:
                try:
                    for subscription in await subscribing:
                        await subscription.unsubscribe()
                except Exception as exc:  # a closed connection: nothing left to end
                    log.debug("ending a log subscription failed: %s", exc)

            task = asyncio.ensure_future(unsubscribe())
            _STOPPING.add(task)
            task.add_done_callback(_STOPPING.discard)

        return stop

    async def apply(self, entry: Entry) -> list[Delivery]:
        """Write a journaled ingest to the log, deliveries and queues (idempotent)."""
        base = entry.key if entry.claimed else None
        items = []
        archived: list[tuple[str, NewEvent]] = []
        for i, e in enumerate(entry.events):
            msg_id = e.event_id if base is None else f"{base}:e{i}"
            headers = {"Nats-Msg-Id": msg_id, _EVENT: e.event_id, _TIME: fmt_float(e.time)}
            subject = self._names.log_subject(e.bus)
            if not timeindex.on_clock(e.time):
                subject = timeindex.off_subject(subject, e.time)
            items.append((subject, e.body, headers))
            if e.archives:
                archived.append((msg_id, e))
        for i, d in enumerate(entry.deliveries):
            msg_id = f"{d.event_id}:{d.target}" if base is None else f"{base}:d{i}"
            items.append(delivery_message(self._names, d, msg_id))
        if archived:
            items += self._archives.items(archived, entry.key)
        dedup = [f"{entry.key}:m{i}" for i in range(len(entry.messages))]
        with self._deliveries.writing():
            publishing = self._link.publish_many(items, "ingest")
            if entry.messages:
                put = self._put_messages(entry.messages, dedup)
                acks, _ = await asyncio.gather(publishing, put)
            else:
                acks = await publishing
            records = acks[len(entry.events) : len(entry.events) + len(entry.deliveries)]
            self._deliveries.added(sum(1 for a in records if not a.duplicate))
        if entry.deliveries:
            self._ready({d.target for d in entry.deliveries})
        return [
            Delivery(a.seq, d.target, d.event_id, d.payload, d.event, d.first_seen, d.due, 0)
            for a, d in zip(records, entry.deliveries, strict=True)
        ]

    async def read(self, after_seq: int, limit: int) -> list[LogRecord]:
        if limit <= 0:
            return []
        msgs = await self._link.direct_batch(
            self._names.log_stream, after_seq + 1, f"{self._names.prefix}.log.>", limit, "read log"
        )
        return [self._record(m) for m in msgs]

    def _record(self, msg: Msg) -> LogRecord:
        headers = msg.headers or {}
        try:
            # a direct get names the subject in a header, a consumer delivers on it
            bus = self._names.bus_of(headers.get("Nats-Subject") or msg.subject)
            return LogRecord(
                timeindex.seq_of(msg),
                headers[_EVENT],
                bus,
                float(headers[_TIME]),
                msg.data,
            )
        except (KeyError, ValueError) as exc:
            raise StoreError(f"log record is malformed: {exc}") from exc

    async def window(
        self, bus: str | None, since: float, until: float, after_seq: int, limit: int
    ) -> list[LogRecord]:
        """The records of ``bus`` (all when None) ingested in ``[since, until)``."""
        msgs = await timeindex.window(
            self._link,
            self._names.log_stream,
            self._subject(bus),
            since,
            until,
            after_seq,
            limit,
            _time_of,
        )
        return [self._record(m) for m in msgs]

    async def expire(self, before: float, bus: str | None) -> int:
        """Delete the records of ``bus`` (all when None) ingested before ``before``."""
        return await timeindex.expire(
            self._link, self._names.log_stream, self._subject(bus), before, _time_of
        )

    def _subject(self, bus: str | None) -> str:
        """The on-clock log subject of ``bus`` (a wildcard when None)."""
        return self._names.log_subject(bus) if bus is not None else f"{self._names.prefix}.log.*"

    async def last_seq(self) -> int:
        with nats_errors("log state", self._link):
            info = await self._link.js.stream_info(self._names.log_stream)
        return int(info.state.last_seq)
