"""The event log and ingest of a JetStream store.

The log is a limits-retention stream, one subject per bus (``<prefix>.log.<bus>``), one
message per event; its stream sequence is :attr:`LogRecord.seq`. :meth:`Ingest.ingest`
publishes the events, their delivery records and their queue messages, all with
``Nats-Msg-Id`` (events: the event id; records: event id and target; messages: their
message id), in order on one connection, and returns once every publish is
acknowledged: JetStream acks a message once it is stored on a quorum of the stream's
replicas (with ``sync_interval: always``, fsynced), so an acknowledged ingest is durable.

**Not one transaction.** The three streams are separate, and JetStream's atomic batch
publish (server 2.12+) covers one stream only, so an ingest that fails half-way (the
process dies, the connection drops) may leave some of its messages written. Its caller
got no ack, so nothing acknowledged is lost and nothing is half-acknowledged; a retry
with the same ids de-duplicates within :data:`~.streams.DUPLICATE_WINDOW`.

**A catalog claim** (the scheduler's tick) makes the ingest exactly-once across
processes: every message of the ingest gets an id derived from ``(kind, key,
expect_revision, index)``, so a second claimer of the same revision publishes only
duplicates; the claim's conditional KV write comes after the publishes, and only one
claimer's write can succeed. A claimer that finds the revision already moved raises
before publishing anything. The limit: a claimer that dies between its publishes and
its KV write leaves the events without the claim; the next claimer of that revision
re-publishes with the same ids (duplicates, nothing new) and claims, so the tick happens
once, provided it comes within the duplicate window.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from nats.aio.msg import Msg

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.catalog import Catalog, conflict
from eventyard.server.store.jetstream.codec import Names, decode_token, fmt_float
from eventyard.server.store.jetstream.connection import Link, nats_errors
from eventyard.server.store.jetstream.deliveries import Deliveries, delivery_message
from eventyard.server.store.protocol import (
    CatalogClaim,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
)

__all__ = ["EventLog"]

_EVENT = "Ey-Event-Id"
_TIME = "Ey-Time"

PutMessages = Callable[[Sequence[NewMessage], Sequence[str] | None], Awaitable[list[str]]]


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
    ) -> None:
        self._link = link
        self._names = names
        self._catalog = catalog
        self._deliveries = deliveries
        self._put_messages = put_messages
        self._ready = ready

    async def ingest(
        self,
        events: Sequence[NewEvent],
        deliveries: Sequence[NewDelivery],
        messages: Sequence[NewMessage],
        claim: CatalogClaim | None,
    ) -> list[Delivery]:
        base = None
        if claim is not None:
            entry = await self._catalog.get(claim.kind, claim.key)
            found = 0 if entry is None else entry.revision
            if found != claim.expect_revision:
                raise conflict(claim.expect_revision, found)
            base = f"claim:{claim.kind}:{claim.key}:{claim.expect_revision}"
        items = []
        for i, e in enumerate(events):
            headers = {
                "Nats-Msg-Id": e.event_id if base is None else f"{base}:e{i}",
                _EVENT: e.event_id,
                _TIME: fmt_float(e.time),
            }
            items.append((self._names.log_subject(e.bus), e.body, headers))
        for i, d in enumerate(deliveries):
            msg_id = f"{d.event_id}:{d.target}" if base is None else f"{base}:d{i}"
            items.append(delivery_message(self._names, d, msg_id))
        # With a claim, messages de-duplicate like the rest; without one, a message id
        # already in use must fail the ingest, which is the queues' own check.
        dedup = None if base is None else [f"{base}:m{i}" for i in range(len(messages))]
        if messages:
            # Queue messages first: a duplicate message id fails the ingest before any
            # of its events or records exist.
            await self._put_messages(messages, dedup)
        acks = await self._link.publish_many(items, "ingest")
        records = acks[len(events) :]
        self._deliveries.added(sum(1 for a in records if not a.duplicate))
        stored = [
            Delivery(a.seq, d.target, d.event_id, d.payload, d.event, d.first_seen, d.due, 0)
            for a, d in zip(records, deliveries, strict=True)
        ]
        if claim is not None:
            await self._catalog.put(claim.kind, claim.key, claim.doc, claim.expect_revision)
        if deliveries:
            self._ready({d.target for d in deliveries})
        return stored

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
            subject = headers["Nats-Subject"]
            bus = decode_token(subject[len(self._names.prefix) + 5 :])
            return LogRecord(
                int(headers["Nats-Sequence"]),
                headers[_EVENT],
                bus,
                float(headers[_TIME]),
                msg.data,
            )
        except (KeyError, ValueError) as exc:
            raise StoreError(f"log record is malformed: {exc}") from exc

    async def last_seq(self) -> int:
        with nats_errors("log state", self._link):
            info = await self._link.js.stream_info(self._names.log_stream)
        return int(info.state.last_seq)
