"""Wake-ups for long polls: a queue that receives messages wakes its waiting receivers.

Long-polling ``ReceiveMessage`` calls wait on :meth:`QueueSignals.wait`. The store tells
its listeners of every write that puts messages on a queue (SendMessage, queue targets,
dead letters, redrive moves, a message made visible at once), whichever process made it
(:meth:`~eventyard.server.store.StoreListener.queues_ready`); the router, listening,
calls :meth:`QueueSignals.notify`. A wake-up is a hint to look again, never a promise
that a message is there, so receivers always re-read the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

__all__ = ["QueueSignals"]


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
