"""The store protocol: catalog, log, deliveries and queues.

A store keeps everything eventyard must not lose. It has four parts:

* the **catalog**: small JSON documents (buses, rules with their targets, tags, queue
  definitions) keyed by ``(kind, key)`` with a revision for optimistic concurrency;
* the **log**: every accepted event, appended in order, numbered by a sequence;
* the **deliveries**: one durable record per (event, rule, target) match still to be
  delivered, with its attempt count and the time it is due;
* the **queues**: eventyard's own durable SQS-style queues (pull consumers, DLQs);
* the **audit** part: the log read by time window (search, trace), its retention, the
  archives (copies of the events of a bus that match an archive's pattern, kept for the
  archive's own retention, read back by event time for replays) and the trace journal
  (what happened to each event after ingest: attempts, dead letters, queue receives).

:meth:`Store.ingest` writes events, their delivery records and their queue messages in
one transaction, so an acknowledged event always has its matches on disk. Stores batch
concurrent writes into one transaction and one fsync (group commit).

**Many processes, one store.** Any number of eventyard processes may share one store
(the JetStream store; the SQLite store admits one process per file, but keeps the same
contract). So nothing a process holds in memory is the truth:

* due delivery records are *claimed* with a lease (:meth:`Store.claim_deliveries`); a
  record is one owner's until its lease ends, and only that owner can settle or renew
  it. Due times and leases are judged by the store's clock (:meth:`Store.now`);
* the catalog has a change feed over a global revision (:meth:`Store.catalog_changes`),
  so every process converges on every change;
* a store tells its listeners (:meth:`Store.listen`) about catalog changes, new due
  deliveries and queue messages, whichever process wrote them: that is how long polls
  and delivery engines wake across processes. A notification is a hint to look again,
  never the data itself: a listener that missed one still converges by reading.

The implementations are :mod:`eventyard.server.store.sqlite` (embedded, the default) and
:mod:`eventyard.server.store.jetstream` (NATS JetStream, for scale-out). Both run the
same contract tests (``tests/server/store``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DEDUP_INTERVAL",
    "ArchiveRecord",
    "CatalogChange",
    "CatalogClaim",
    "CatalogEntry",
    "Claim",
    "Delivery",
    "LogRecord",
    "NewDelivery",
    "NewEvent",
    "NewMessage",
    "QueueMessage",
    "Store",
    "StoreListener",
    "TraceEntry",
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
class CatalogChange:
    """One entry of the catalog's change feed.

    ``revision`` is the global revision of the change: it grows across all keys, so a
    reader that has seen every change up to ``r`` asks for ``catalog_changes(after=r)``.
    ``entry`` is the document as the change left it, None when the change deleted it.
    """

    revision: int
    kind: str
    key: str
    entry: CatalogEntry | None


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
    """An event to append to the log: its id, bus, ingestion time and envelope JSON.

    ``archives``: the keys of the archives that keep a copy of it (those whose pattern it
    matches), written in the same transaction; ``event_time`` is the event's own ``time``
    field as epoch seconds (the archive's key; 0 means ``time``).
    """

    event_id: str
    bus: str
    time: float
    body: bytes
    archives: tuple[str, ...] = ()
    event_time: float = 0.0


@dataclass(slots=True, frozen=True)
class ArchiveRecord:
    """An event as an archive holds it: ``time`` is the event's own ``time`` field (the
    key replays and archive reads use), ``seq`` orders records of one archive.

    ``seq`` need not follow arrival: the SQLite store numbers an archive's records in
    event time order (so a window is one range of its key), and a record archived later
    with an earlier event time gets a lower ``seq``.
    """

    seq: int
    event_id: str
    time: float
    body: bytes


@dataclass(slots=True, frozen=True)
class TraceEntry:
    """One thing that happened to an event (or to a queue message) after ingest.

    ``key`` is what the entry is found by: an event id, or a queue message id (a queue
    target's delivery records the message id it made in its ``detail``; the receives
    and deletes of that message are keyed by it). ``kind`` is one of ``attempt``,
    ``dead-letter``, ``queue-receive``, ``queue-delete`` (the trace service gives them
    meaning; a store keeps them opaque). ``target`` is a target key or a queue name.
    ``detail`` is a small JSON object's bytes (status, error, attempt number...).
    """

    key: str
    time: float
    kind: str
    target: str
    detail: bytes


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
class Claim:
    """What :meth:`Store.claim_deliveries` returns.

    ``deliveries`` are now leased to the caller. ``next_due`` is the store's best
    knowledge of when this target's next record becomes claimable (the earliest due time
    or lease end among its other pending records), None when it has none left; a store
    that cannot tell returns a time to ask again. Listeners are told of new records
    (:meth:`StoreListener.deliveries_ready`), so a claimer need not poll for those.
    """

    deliveries: list[Delivery]
    next_due: float | None


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

    ``derived``: ``message_id`` is derived from what the message is for (the delivery
    engine hashes the delivery record a queue message or dead letter settles), so a
    write retried after a failure or a crash puts it with the same id: a store that may
    meet it twice (JetStream: a settle retried, a record redelivered) takes the second
    put as that same message, de-duplicated, never an error.
    """

    queue: str
    body: str
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    delay: float = 0.0
    message_id: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    derived: bool = False


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


class StoreListener(Protocol):
    """What a store tells about changes, made by this process or any other.

    Calls come from the event loop, after the change is durable, possibly batched and
    possibly more than once; they must not block. Missing one must never lose data: the
    listener's owner re-reads (the catalog feed, a claim, a receive) on its own schedule.
    """

    def catalog_changed(self, change: CatalogChange) -> None:
        """A catalog document was put or deleted (in global revision order)."""

    def deliveries_ready(self, targets: Collection[str]) -> None:
        """Delivery records of these target keys were created or became due again."""

    def queues_ready(self, queues: Collection[str]) -> None:
        """Messages were put on these queues (sent, delivered, dead-lettered, redriven)."""


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

    async def catalog_revision(self) -> int:
        """The global revision of the newest catalog change (0 before any)."""

    async def catalog_changes(self, after: int = 0, limit: int = 1000) -> list[CatalogChange]:
        """Changes with a global revision above ``after``, oldest first, at most ``limit``.

        A store may compact the feed to the latest change of each key (a reader that
        starts at 0 sees each live document once, and a delete at least as long as a
        reader could still hold the deleted document); reading from a revision onward
        always ends on the current state of every key.
        """

    def listen(self, listener: StoreListener) -> None:
        """Register ``listener`` for changes made by any process from now on."""

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

    async def read_log_window(
        self,
        bus: str | None,
        since: float,
        until: float,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[LogRecord]:
        """Log records of ``bus`` (every bus if None) ingested in ``[since, until)``,
        with ``seq > after_seq``, in ``seq`` order, at most ``limit``.

        Uses a time index: the cost is proportional to the records in the window (of
        all buses at worst), never to the whole log. A page ends at ``limit``; the next
        page passes the last ``seq`` as ``after_seq``.
        """

    async def expire_log(self, before: float, bus: str | None = None) -> int:
        """Delete the log records ingested before ``before`` (of ``bus`` only, or of
        every bus); returns how many. Pending deliveries keep their events; the space
        is reused (the log stays compact under retention)."""

    def follow_log(self, bus: str, on_event: Callable[[bytes], None]) -> Callable[[], None]:
        """Call ``on_event`` with the envelope JSON of each event *other processes*
        append to ``bus`` from now on (as they are appended; a hint for live views such
        as ``eventyard tail``, never a delivery: it may miss events); returns the
        function that stops it. Events this process appends are its own to show. A store
        only one process writes (SQLite) has nothing to tell.
        """

    # -- deliveries ------------------------------------------------------------------
    def now(self) -> float:
        """The store's clock, in seconds since the epoch: due times and leases use it."""

    async def pending_deliveries(self, after_id: int = 0, limit: int = 1000) -> list[Delivery]:
        """Pending delivery records with ``id > after_id``, by id.

        A recovery and inspection helper (``eventyard store``): it ignores leases and
        claims nothing; delivery engines use :meth:`claim_deliveries`.
        """

    async def pending_targets(self) -> list[str]:
        """The target keys that have pending delivery records, sorted."""

    def pending_count(self) -> int:
        """How many delivery records are pending; cheap (no scan), exact once writes return.

        A record counts from the commit of the ingest that made it until the commit of
        the settle that ends it (``done`` or ``dead``). Ingest throttles on this. A
        store shared by processes may return a figure a moment old.
        """

    async def claim_deliveries(self, owner: str, target: str, limit: int, lease: float) -> Claim:
        """Lease up to ``limit`` due records of ``target`` to ``owner`` for ``lease`` s.

        A record is due when its due time has come by :meth:`now` and it is not leased
        (a lease that has ended counts as none: the owner is presumed dead). Records come
        in ``(due, id)`` order as far as the store keeps one. A claimed record is the
        owner's until the lease ends or the owner settles it.
        """

    async def renew_leases(self, owner: str, ids: Sequence[int], lease: float) -> list[int]:
        """Extend ``owner``'s leases on ``ids`` to ``lease`` s from now.

        Returns the ids whose lease ``owner`` no longer holds (ended and claimed by
        another, or settled): the caller must forget them and settle nothing for them.
        """

    async def settle(
        self,
        owner: str,
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, float, int]] = (),
        dead: Sequence[tuple[int, NewMessage | None]] = (),
        messages: Sequence[tuple[int, NewMessage]] = (),
    ) -> list[int]:
        """Settle ``owner``'s leased deliveries; returns the ids it could not settle.

        Each record is settled only if ``owner`` still holds its lease; the ids whose
        lease was lost are returned and nothing is written for them (their new owner
        delivers them again: delivery is at least once). A store that writes in
        transactions settles the rest in one.

        ``done``: ids delivered (deleted). ``retry``: ``(id, due, attempts)``: release
        the record, due again at ``due`` (the store's clock) with ``attempts`` attempts
        made; releasing an unattempted record (giving it back) is a retry with its own
        ``due`` and ``attempts``. ``dead``: ``(id, dlq_message)``: the record is deleted
        and the message, if any, is put on its queue. ``messages``: ``(id, message)``
        put on their queues with the settle of ``id`` (a queue target's delivery is its
        message plus its ``done``), only if that id is settled.
        """

    # -- archives --------------------------------------------------------------------------
    async def read_archive(
        self,
        archive: str,
        since: float,
        until: float,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[ArchiveRecord]:
        """Records of ``archive`` whose event time is in ``[since, until)``, with
        ``seq > after_seq``, in ``seq`` order, at most ``limit``; cost proportional to
        the window."""

    async def archive_stats(self, archive: str) -> tuple[int, int]:
        """``(event count, size in bytes of the bodies)`` of ``archive``."""

    async def expire_archive(self, archive: str, before: float) -> int:
        """Delete the records of ``archive`` archived (ingested) before ``before``;
        returns how many."""

    async def drop_archive(self, archive: str) -> None:
        """Delete every record of ``archive`` (DeleteArchive)."""

    # -- trace journal -----------------------------------------------------------------------
    async def trace_append(self, entries: Sequence[TraceEntry]) -> None:
        """Record trace entries (batched by the caller; written durably but outside the
        ingest transaction: losing the last entries in a crash loses no event)."""

    async def trace_read(self, keys: Sequence[str], since: float = 0.0) -> list[TraceEntry]:
        """The entries of those keys recorded at or after ``since`` (the event's
        ingestion time is a good lower bound), in time order."""

    async def expire_trace(self, before: float) -> int:
        """Delete the trace entries recorded before ``before``; returns how many. A
        store may keep an entry appended out of time order (after later ones) until the
        entries appended before it have expired."""

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
