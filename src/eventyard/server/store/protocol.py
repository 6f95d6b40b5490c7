"""The store protocol: catalog, log, deliveries and queues.

A store keeps everything eventyard must not lose. It has four parts:

* the **catalog**: small JSON documents (buses, rules with their targets, tags, queue
  definitions) keyed by ``(kind, key)`` with a revision for optimistic concurrency;
* the **log**: every accepted event, appended in order, numbered by a sequence;
* the **deliveries**: one durable record per (event, rule, target) match still to be
  delivered, with its attempt count and the time it is due;
* the **queues**: eventyard's own durable SQS-style queues (pull consumers, DLQs).

:meth:`Store.ingest` writes events, their delivery records and their queue messages in
one transaction, so an acknowledged event always has its matches on disk. Stores batch
concurrent writes into one transaction and one fsync (group commit).

The first implementation is :mod:`eventyard.server.store.sqlite`; a JetStream store will
implement the same protocol and run the same contract tests (``tests/store``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DEDUP_INTERVAL",
    "CatalogClaim",
    "CatalogEntry",
    "Delivery",
    "LogRecord",
    "NewDelivery",
    "NewEvent",
    "NewMessage",
    "QueueMessage",
    "Store",
]


@dataclass(slots=True, frozen=True)
class CatalogEntry:
    """One catalog document and its revision.

    ``revision`` is positive and grows on every put of the key; it is never reused for
    the key, not even after a delete, so an ``expect_revision`` read before a delete never
    matches the re-created document. Compare revisions, do not compute them: the SQLite
    store counts from 1 per key, a KV-backed store may number across keys.
    """

    kind: str
    key: str
    doc: dict[str, Any]
    revision: int


@dataclass(slots=True, frozen=True)
class CatalogClaim:
    """A conditional catalog write that :meth:`Store.ingest` makes in its transaction.

    The document ``doc`` replaces ``(kind, key)`` only if its revision is still
    ``expect_revision`` (0: the key does not exist); otherwise nothing of the ingest
    happens and it raises :class:`eventyard.errors.ConcurrentModification`. The
    scheduler claims each tick this way, so a tick's event exists exactly when its claim
    does, whichever process wrote it and whatever crashed.
    """

    kind: str
    key: str
    doc: dict[str, Any]
    expect_revision: int


@dataclass(slots=True, frozen=True)
class NewEvent:
    """An event to append to the log: its id, bus, ingestion time and envelope JSON."""

    event_id: str
    bus: str
    time: float
    body: bytes


@dataclass(slots=True, frozen=True)
class LogRecord:
    """An event as the log holds it; ``seq`` is the log's order, starting at 1."""

    seq: int
    event_id: str
    bus: str
    time: float
    body: bytes


@dataclass(slots=True, frozen=True)
class NewDelivery:
    """A match to deliver: ``target`` is the target key ``<bus>/<rule>/<target-id>``.

    ``payload`` is the rendered input (Input / InputPath / InputTransformer applied);
    ``event`` is the original envelope, needed for the dead-letter message. ``first_seen``
    is the ingestion time, from which ``MaximumEventAgeInSeconds`` counts.
    """

    target: str
    event_id: str
    payload: bytes
    event: bytes
    first_seen: float
    due: float


@dataclass(slots=True, frozen=True)
class Delivery:
    """A pending delivery record. ``attempts`` counts the attempts already made."""

    id: int
    target: str
    event_id: str
    payload: bytes
    event: bytes
    first_seen: float
    due: float
    attempts: int


@dataclass(slots=True, frozen=True)
class NewMessage:
    """A message to put on a queue. ``attributes`` are SQS message attributes.

    ``attributes`` maps a name to ``{"DataType": "String", "StringValue": "..."}``
    (or ``BinaryValue``), as SQS has them. ``delay`` is seconds before it is visible.
    ``message_id`` defaults to a new uuid4; an id already in use fails the write that
    sends it (:class:`eventyard.errors.StoreError`), with everything else in that call.

    FIFO queues: ``group_id`` is the message group (receive returns a group's messages
    in the order they were sent, and none of a group while one of it is in flight);
    ``dedup_id`` is the de-duplication key, already scoped by the caller (queue or
    group): a message whose key the queue saw in the last :data:`DEDUP_INTERVAL` seconds
    is accepted but not enqueued, and its send answers the first message's id.
    """

    queue: str
    body: str
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    delay: float = 0.0
    message_id: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None


#: How long a FIFO queue remembers a de-duplication key (SQS: five minutes).
DEDUP_INTERVAL = 300.0


@dataclass(slots=True, frozen=True)
class QueueMessage:
    """A received message. ``receipt`` is valid until the message is received again.

    Only the latest receipt of a message works (unlike SQS, where an older one may still
    delete it): a consumer whose receipt went stale learns the message is someone else's.
    A FIFO queue's message carries its ``group_id`` and ``dedup_id`` as sent (None on
    a standard queue).
    """

    message_id: str
    body: str
    attributes: dict[str, dict[str, str]]
    receipt: str
    sent: float
    receive_count: int
    first_receive: float
    group_id: str | None = None
    dedup_id: str | None = None


class Store(Protocol):
    """What eventyard needs from durable storage. All methods are coroutines.

    Every write is durable when its coroutine returns; a write whose caller is cancelled
    may or may not have happened. Errors from the storage engine are raised as
    :class:`eventyard.errors.StoreError`, so is any use of a closed store.
    """

    async def open(self) -> None:
        """Open (creating and migrating if needed) the store."""

    async def close(self) -> None:
        """Flush pending writes and close. Idempotent."""

    def write_failure(self) -> str | None:
        """Why writes fail right now (disk full, I/O error…), or None while they succeed.

        A store that sees its writes fail keeps trying on its own, so this clears once
        the cause is gone even if nobody writes.
        """

    # -- catalog -------------------------------------------------------------------
    async def catalog_get(self, kind: str, key: str) -> CatalogEntry | None:
        """One document, or None."""

    async def catalog_list(self, kind: str, prefix: str = "") -> list[CatalogEntry]:
        """Documents of one kind whose key starts with ``prefix``, sorted by key."""

    async def catalog_put(
        self, kind: str, key: str, doc: dict[str, Any], *, expect_revision: int | None = None
    ) -> int:
        """Create or replace a document; returns its new revision.

        ``expect_revision=None`` writes unconditionally; ``0`` requires that the key does
        not exist; ``n`` requires the current revision to be ``n``. A failed expectation
        raises :class:`eventyard.errors.ConcurrentModification`.
        """

    async def catalog_delete(
        self, kind: str, key: str, *, expect_revision: int | None = None
    ) -> bool:
        """Delete a document; returns whether it existed."""

    # -- log + matches, in one transaction ----------------------------------------------
    async def ingest(
        self,
        events: Sequence[NewEvent],
        deliveries: Sequence[NewDelivery] = (),
        messages: Sequence[NewMessage] = (),
        *,
        claim: CatalogClaim | None = None,
    ) -> list[Delivery]:
        """Append events, enqueue their deliveries and queue messages atomically.

        With a ``claim``, its catalog write is part of the same transaction: when its
        expectation fails, :class:`eventyard.errors.ConcurrentModification` is raised and
        nothing is written.

        Returns the stored delivery records (with ids) in the order given.
        """

    async def read_log(self, after_seq: int = 0, limit: int = 1000) -> list[LogRecord]:
        """Log records with ``seq > after_seq``, in order."""

    async def last_seq(self) -> int:
        """The sequence of the newest log record, 0 if the log is empty."""

    # -- deliveries ------------------------------------------------------------------
    async def pending_deliveries(self, after_id: int = 0, limit: int = 1000) -> list[Delivery]:
        """Pending delivery records with ``id > after_id``, by id (a recovery helper)."""

    async def deliveries_by_due(
        self, target: str, after: tuple[float, int] | None = None, limit: int = 1000
    ) -> list[Delivery]:
        """Pending records of ``target`` in ``(due, id)`` order, at most ``limit``.

        ``after=(due, id)`` starts after that position (records with a later due time,
        or the same due time and a greater id); None starts at the first. Records due
        in the future are included: the caller sees when the next one is due. The
        delivery engine pages its bounded window with this, one target at a time.
        """

    async def pending_targets(self) -> list[str]:
        """The target keys that have pending delivery records, sorted."""

    def pending_count(self) -> int:
        """How many delivery records are pending; cheap (no scan), exact once writes return.

        A record counts from the commit of the ingest that made it until the commit of
        the settle that ends it (``done`` or ``dead``). Ingest throttles on this.
        """

    async def settle(
        self,
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, float, int]] = (),
        dead: Sequence[tuple[int, NewMessage | None]] = (),
        messages: Sequence[NewMessage] = (),
    ) -> None:
        """Settle deliveries in one transaction.

        ``messages`` are put on their queues in the same transaction (a queue target's
        delivery is its message plus its ``done``).

        ``done``: ids delivered (deleted). ``retry``: ``(id, due, attempts)`` to try again.
        ``dead``: ``(id, dlq_message)``; the record is deleted and the message, if any, is
        put on its queue in the same transaction.
        """

    # -- queues ------------------------------------------------------------------------
    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        """Put messages on their queues; returns their message ids."""

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        """Take up to ``max_messages`` visible messages, hiding them for the timeout.

        ``redrive=(dlq, max_receive_count)``: a message already received
        ``max_receive_count`` times is moved to queue ``dlq`` (same body and attributes,
        a new message id, visible at once) instead of being returned, and the receive
        goes on to the next message. ``max_receive_count`` must be at least 1.
        """

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        """Delete by receipt handle; False if the receipt is unknown or stale."""

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        """Make a received message visible again after ``timeout`` seconds."""

    async def queue_purge(self, queue: str) -> None:
        """Delete every message of the queue and forget its FIFO de-duplication keys
        (DeleteQueue purges: a queue created again with the name must not drop its
        first sends as duplicates of the deleted queue's)."""

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        """``(visible, in flight, delayed)`` message counts."""

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        """When the next hidden or delayed message becomes visible, or None."""

    async def queue_oldest(self, queue: str) -> float | None:
        """When the queue's oldest message was sent (its ``sent`` time), None if empty."""
