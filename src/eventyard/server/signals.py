"""Wake-ups for long polls: a queue that receives messages wakes its waiting receivers.

Long-polling ``ReceiveMessage`` calls wait on :meth:`QueueSignals.wait`; every path that
puts messages on a queue (SendMessage, queue targets, dead-letter moves) calls
:meth:`QueueSignals.notify`. A wake-up is a hint to look again, never a promise that a
message is there, so receivers always re-read the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from eventyard.server.store import (
    CatalogClaim,
    CatalogEntry,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
    QueueMessage,
    Store,
)

__all__ = ["NotifyingStore", "QueueSignals"]


class QueueSignals:
    """Per-queue wake-up events for long polling."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.closed = False

    def close(self) -> None:
        """Shutdown: wake every waiter now; later waits return at once."""
        self.closed = True
        for waiters in list(self._waiters.values()):
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._waiters.clear()

    def waiting(self, queue: str) -> bool:
        """Whether anyone waits on ``queue`` now."""
        return bool(self._waiters.get(queue))

    def notify(self, queues: Iterable[str]) -> None:
        """Wake everyone waiting on any of ``queues``."""
        for queue in queues:
            for waiter in self._waiters.pop(queue, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, queue: str, timeout: float) -> bool:
        """Wait until ``queue`` is notified or ``timeout`` passes; True if notified."""
        if timeout <= 0 or self.closed:
            return self.closed
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(queue, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(queue)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    with contextlib.suppress(KeyError):
                        del self._waiters[queue]


class NotifyingStore:
    """A store wrapper that wakes long polls whenever messages land on a queue.

    Every write path that can put messages on a queue (``ingest``, ``settle``,
    ``queue_send`` and redrive moves in ``queue_receive``) notifies the queues it touched
    once the write has committed. Everything else is passed through unchanged.
    """

    def __init__(self, store: Store, signals: QueueSignals) -> None:
        self.inner = store
        self.signals = signals

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    def write_failure(self) -> str | None:
        return self.inner.write_failure()

    async def catalog_get(self, kind: str, key: str) -> CatalogEntry | None:
        return await self.inner.catalog_get(kind, key)

    async def catalog_list(self, kind: str, prefix: str = "") -> list[CatalogEntry]:
        return await self.inner.catalog_list(kind, prefix)

    async def catalog_put(
        self, kind: str, key: str, doc: dict[str, Any], *, expect_revision: int | None = None
    ) -> int:
        return await self.inner.catalog_put(kind, key, doc, expect_revision=expect_revision)

    async def catalog_delete(
        self, kind: str, key: str, *, expect_revision: int | None = None
    ) -> bool:
        return await self.inner.catalog_delete(kind, key, expect_revision=expect_revision)

    async def ingest(
        self,
        events: Sequence[NewEvent],
        deliveries: Sequence[NewDelivery] = (),
        messages: Sequence[NewMessage] = (),
        *,
        claim: CatalogClaim | None = None,
    ) -> list[Delivery]:
        stored = await self.inner.ingest(events, deliveries, messages, claim=claim)
        if messages:
            self.signals.notify({m.queue for m in messages})
        return stored

    async def read_log(self, after_seq: int = 0, limit: int = 1000) -> list[LogRecord]:
        return await self.inner.read_log(after_seq, limit)

    async def last_seq(self) -> int:
        return await self.inner.last_seq()

    async def pending_deliveries(self, after_id: int = 0, limit: int = 1000) -> list[Delivery]:
        return await self.inner.pending_deliveries(after_id, limit)

    async def deliveries_by_due(
        self, target: str, after: tuple[float, int] | None = None, limit: int = 1000
    ) -> list[Delivery]:
        return await self.inner.deliveries_by_due(target, after, limit)

    async def pending_targets(self) -> list[str]:
        return await self.inner.pending_targets()

    def pending_count(self) -> int:
        return self.inner.pending_count()

    async def settle(
        self,
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, float, int]] = (),
        dead: Sequence[tuple[int, NewMessage | None]] = (),
        messages: Sequence[NewMessage] = (),
    ) -> None:
        await self.inner.settle(done, retry, dead, messages)
        queues = {m.queue for m in messages} | {m.queue for _, m in dead if m is not None}
        if queues:
            self.signals.notify(queues)

    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        ids = await self.inner.queue_send(messages)
        self.signals.notify({m.queue for m in messages})
        return ids

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        # redrive moves are announced by the receiver itself, which knows whether the
        # dead-letter queue has visible messages; a blanket wake-up here could make two
        # queues that dead-letter into each other wake each other's polls forever
        return await self.inner.queue_receive(queue, max_messages, visibility_timeout, now, redrive)

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        return await self.inner.queue_delete(queue, receipt)

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        changed = await self.inner.queue_change_visibility(queue, receipt, timeout, now)
        if changed and timeout <= 0:
            self.signals.notify((queue,))
        return changed

    async def queue_purge(self, queue: str) -> None:
        await self.inner.queue_purge(queue)

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        return await self.inner.queue_counts(queue, now)

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        return await self.inner.queue_next_visible(queue, now)

    async def queue_oldest(self, queue: str) -> float | None:
        return await self.inner.queue_oldest(queue)
