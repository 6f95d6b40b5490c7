"""Wake-ups for long polls: a queue that receives messages wakes its waiting receivers.

Long-polling ``ReceiveMessage`` calls wait on :meth:`QueueSignals.wait`; every path that
puts messages on a queue (SendMessage, queue targets, dead-letter moves) calls
:meth:`QueueSignals.notify`. A wake-up is a hint to look again, never a promise that a
message is there, so receivers always re-read the store.
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

    def notify(self, queues: Iterable[str]) -> None:
        """Wake everyone waiting on any of ``queues``."""
        for queue in queues:
            for waiter in self._waiters.pop(queue, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, queue: str, timeout: float) -> bool:
        """Wait until ``queue`` is notified or ``timeout`` passes; True if notified."""
        if timeout <= 0:
            return False
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
