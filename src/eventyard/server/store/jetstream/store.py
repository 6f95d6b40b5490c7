"""JetStreamStore: the Store protocol over NATS JetStream, for many eventyard processes.

Any number of processes open a store with the same servers and prefix and share
everything in it: the catalog (:mod:`.catalog`), the log and ingest (:mod:`.log`), the
delivery records with their leases (:mod:`.deliveries`), the queues (:mod:`.queues`),
the archives (:mod:`.archives`), the trace journal (:mod:`.trace`) and the wake-ups
between processes (:mod:`.notify`). This module opens and closes them,
refuses work on a closed store, and lets :meth:`close` wait for the calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from eventyard.errors import StoreError
from eventyard.server.store.jetstream import timeindex
from eventyard.server.store.jetstream.archives import Archives
from eventyard.server.store.jetstream.catalog import Catalog
from eventyard.server.store.jetstream.codec import Names
from eventyard.server.store.jetstream.connection import Link
from eventyard.server.store.jetstream.deliveries import Deliveries
from eventyard.server.store.jetstream.fifo import FifoQueues, is_fifo
from eventyard.server.store.jetstream.log import EventLog
from eventyard.server.store.jetstream.notify import Notifier
from eventyard.server.store.jetstream.queues import JetStreamQueues
from eventyard.server.store.jetstream.streams import ensure_streams
from eventyard.server.store.jetstream.trace import Trace
from eventyard.server.store.protocol import (
    ArchiveRecord,
    CatalogChange,
    CatalogClaim,
    CatalogEntry,
    Claim,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
    QueueMessage,
    StoreListener,
    TraceEntry,
)

__all__ = ["JetStreamStore"]


class JetStreamStore:
    """The store on NATS JetStream (see the package docstring and docs/architecture.md).

    ``servers`` are ``nats://host:port`` URLs of one NATS system; ``prefix`` names the
    streams and the bucket (processes with the same prefix share one store);
    ``replicas`` is the replica count of every stream (1, 3 or 5). ``clock`` is the
    store's clock (:meth:`now`): due times are judged by it, and it must run at real
    speed, since the server times leases (``AckWait``) and delays in real time.
    ``atomic_ingest=False`` skips the ingest journal (:mod:`.journal`): ingests get
    faster (one write round trip instead of two) but one cut short by a crash may leave
    part of its events, records and messages.
    """

    def __init__(
        self,
        servers: Sequence[str],
        *,
        prefix: str = "eventyard",
        replicas: int = 1,
        clock: Callable[[], float] = time.time,
        name: str = "eventyard",
        atomic_ingest: bool = True,
    ) -> None:
        self._names = Names(prefix)
        self._servers = list(servers)
        self._replicas = replicas
        self._clock = clock
        self._link = Link(self._servers, name=name)
        self._catalog = Catalog(self._link, self._names)
        self._notifier = Notifier(self._link, self._names, self._catalog)
        self._queues: JetStreamQueues | None = None
        self._fifo: FifoQueues | None = None
        self._deliveries = Deliveries(
            self._link, self._names, clock, self._put, self._notifier.deliveries_ready
        )
        self._archives = Archives(self._link, self._names)
        self._trace = Trace(self._link, self._names)
        self._log = EventLog(
            self._link,
            self._names,
            self._catalog,
            self._deliveries,
            self._put,
            self._notifier.deliveries_ready,
            self._archives,
        )
        self._log.journaled = atomic_ingest
        self._state = "new"  # new -> open -> closed
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __repr__(self) -> str:
        return f"JetStreamStore({self._servers!r}, prefix={self._names.prefix!r})"

    # -- life cycle --------------------------------------------------------------------
    async def open(self) -> None:
        if self._state == "open":
            return
        if self._state == "closed":
            raise StoreError("the JetStream store is closed")
        await self._link.connect()
        try:
            await ensure_streams(self._link, self._names, self._replicas)
            await timeindex.check_clock(self._link, self._names.log_stream)
            self._queues = JetStreamQueues(
                self._link.nc,
                self._link.js,
                prefix=self._names.prefix,
                replicas=self._replicas,
                clock=self._clock,
                notify=self._notifier.queues_ready,
            )
            await self._queues.setup()
            self._fifo = FifoQueues(
                self._link.nc,
                self._link.js,
                prefix=self._names.prefix,
                replicas=self._replicas,
                clock=self._clock,
                notify=self._notifier.queues_ready,
            )
            await self._fifo.setup()
            await self._deliveries.start()
            await self._notifier.start()
            # Ingests other processes journaled but did not finish (they died): apply
            # them before this store answers anything.
            await self._log.journal.recover(0.0)
            self._log.journal.start()
            self._archives.start()
        except BaseException:
            await self._archives.stop()
            await self._deliveries.stop()
            await self._link.close()
            raise
        self._state = "open"

    async def close(self) -> None:
        if self._state == "closed":
            return
        was_open = self._state == "open"
        self._state = "closed"
        if not was_open:
            return
        await self._idle.wait()
        await self._deliveries.give_back()
        await self._log.journal.stop()
        await self._archives.stop()
        await self._notifier.stop()
        await self._deliveries.stop()
        if self._queues is not None:
            with contextlib.suppress(StoreError):
                await self._queues.close()
        if self._fifo is not None:
            await self._fifo.close()
        await self._link.close()

    def write_failure(self) -> str | None:
        if self._state != "open":
            return None
        return self._link.failure()

    @contextlib.asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        if self._state != "open":
            raise StoreError(f"the JetStream store is {self._state}, not open")
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    @property
    def queues(self) -> JetStreamQueues:
        if self._queues is None:
            raise StoreError("the JetStream store is not open")
        return self._queues

    @property
    def fifo(self) -> FifoQueues:
        if self._fifo is None:
            raise StoreError("the JetStream store is not open")
        return self._fifo

    async def _put(
        self, messages: Sequence[NewMessage], dedup_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Put messages on their queues: FIFO ones through :mod:`.fifo`, others through
        :mod:`.queues`; the ids come back in the given order."""
        fifo = [i for i, m in enumerate(messages) if is_fifo(m.queue)]
        if not fifo:
            return await self.queues.put(messages, dedup_ids)
        rest = [i for i, m in enumerate(messages) if not is_fifo(m.queue)]

        def pick(indexes: list[int]) -> tuple[list[NewMessage], list[str] | None]:
            chosen = [messages[i] for i in indexes]
            return chosen, None if dedup_ids is None else [dedup_ids[i] for i in indexes]

        ids = [""] * len(messages)
        for indexes, put in ((rest, self.queues.put), (fifo, self.fifo.put)):
            if indexes:
                for i, message_id in zip(indexes, await put(*pick(indexes)), strict=True):
                    ids[i] = message_id
        return ids

    # -- catalog -----------------------------------------------------------------------
    async def catalog_get(self, kind: str, key: str) -> CatalogEntry | None:
        async with self._call():
            return await self._catalog.get(kind, key)

    async def catalog_list(self, kind: str, prefix: str = "") -> list[CatalogEntry]:
        async with self._call():
            return await self._catalog.entries(kind, prefix)

    async def catalog_put(
        self, kind: str, key: str, doc: dict[str, Any], *, expect_revision: int | None = None
    ) -> int:
        async with self._call():
            return await self._catalog.put(kind, key, doc, expect_revision)

    async def catalog_delete(
        self, kind: str, key: str, *, expect_revision: int | None = None
    ) -> bool:
        async with self._call():
            return await self._catalog.delete(kind, key, expect_revision)

    async def catalog_revision(self) -> int:
        async with self._call():
            return await self._catalog.revision()

    async def catalog_changes(self, after: int = 0, limit: int = 1000) -> list[CatalogChange]:
        async with self._call():
            return await self._catalog.changes(after, limit)

    def listen(self, listener: StoreListener) -> None:
        self._notifier.add(listener)

    def follow_log(self, bus: str, on_event: Callable[[bytes], None]) -> Callable[[], None]:
        if self._state != "open":
            raise StoreError("the JetStream store is not open")
        return self._log.follow(bus, on_event)

    # -- log ---------------------------------------------------------------------------
    async def ingest(
        self,
        events: Sequence[NewEvent],
        deliveries: Sequence[NewDelivery] = (),
        messages: Sequence[NewMessage] = (),
        *,
        claim: CatalogClaim | None = None,
    ) -> list[Delivery]:
        async with self._call():
            if not (events or deliveries or messages or claim):
                return []
            return await self._log.ingest(events, deliveries, messages, claim)

    async def read_log(self, after_seq: int = 0, limit: int = 1000) -> list[LogRecord]:
        async with self._call():
            return await self._log.read(after_seq, limit)

    async def last_seq(self) -> int:
        async with self._call():
            return await self._log.last_seq()

    async def read_log_window(
        self,
        bus: str | None,
        since: float,
        until: float,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[LogRecord]:
        async with self._call():
            return await self._log.window(bus, since, until, after_seq, limit)

    async def expire_log(self, before: float, bus: str | None = None) -> int:
        async with self._call():
            return await self._log.expire(before, bus)

    # -- archives ----------------------------------------------------------------------
    async def read_archive(
        self,
        archive: str,
        since: float,
        until: float,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[ArchiveRecord]:
        async with self._call():
            return await self._archives.read(archive, since, until, after_seq, limit)

    async def archive_stats(self, archive: str) -> tuple[int, int]:
        async with self._call():
            return await self._archives.stats(archive)

    async def expire_archive(self, archive: str, before: float) -> int:
        async with self._call():
            return await self._archives.expire(archive, before)

    async def drop_archive(self, archive: str) -> None:
        async with self._call():
            await self._archives.drop(archive)

    # -- trace journal -----------------------------------------------------------------
    async def trace_append(self, entries: Sequence[TraceEntry]) -> None:
        async with self._call():
            if entries:
                await self._trace.append(entries)

    async def trace_read(self, keys: Sequence[str], since: float = 0.0) -> list[TraceEntry]:
        async with self._call():
            return await self._trace.read(keys, since) if keys else []

    async def expire_trace(self, before: float) -> int:
        async with self._call():
            return await self._trace.expire(before)

    # -- deliveries --------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    async def pending_deliveries(self, after_id: int = 0, limit: int = 1000) -> list[Delivery]:
        async with self._call():
            return await self._deliveries.pending(after_id, limit)

    async def pending_targets(self) -> list[str]:
        async with self._call():
            return await self._deliveries.targets()

    def pending_count(self) -> int:
        return self._deliveries.pending_count()

    async def claim_deliveries(self, owner: str, target: str, limit: int, lease: float) -> Claim:
        async with self._call():
            return await self._deliveries.claim(owner, target, limit, lease)

    async def renew_leases(self, owner: str, ids: Sequence[int], lease: float) -> list[int]:
        async with self._call():
            return await self._deliveries.renew(owner, ids, lease)

    async def settle(
        self,
        owner: str,
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, float, int]] = (),
        dead: Sequence[tuple[int, NewMessage | None]] = (),
        messages: Sequence[tuple[int, NewMessage]] = (),
    ) -> list[int]:
        async with self._call():
            return await self._deliveries.settle(owner, done, retry, dead, messages)

    # -- queues (FIFO ones: .fifo) -------------------------------------------------------
    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        async with self._call():
            return await self._put(messages)

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        async with self._call():
            if is_fifo(queue):
                return await self.fifo.receive(
                    queue,
                    max_messages,
                    visibility_timeout,
                    now,
                    redrive=redrive,
                    move=self.queues.put,
                )
            return await self.queues.queue_receive(
                queue, max_messages, visibility_timeout, now, redrive
            )

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        async with self._call():
            if is_fifo(queue):
                return await self.fifo.delete(queue, receipt)
            return await self.queues.queue_delete(queue, receipt)

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        async with self._call():
            if is_fifo(queue):
                return await self.fifo.change_visibility(queue, receipt, timeout, now)
            return await self.queues.queue_change_visibility(queue, receipt, timeout, now)

    async def queue_purge(self, queue: str) -> None:
        async with self._call():
            if is_fifo(queue):
                await self.fifo.purge(queue)
            else:
                await self.queues.queue_purge(queue)

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        async with self._call():
            if is_fifo(queue):
                return await self.fifo.counts(queue, now)
            return await self.queues.queue_counts(queue, now)

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        async with self._call():
            if is_fifo(queue):
                return await self.fifo.next_visible(queue, now)
            return await self.queues.queue_next_visible(queue, now)

    async def queue_oldest(self, queue: str) -> float | None:
        async with self._call():
            if is_fifo(queue):
                return await self.fifo.oldest(queue)
            return await self.queues.queue_oldest(queue)
