"""JetStream queues (SQS-style): placeholder until the queue branch lands.

The real module (branch ``jsqueues``) keeps one stream of queue messages, a subject and
a consumer per queue (ack = delete, nak(delay) = visibility change). This placeholder
has its interface and refuses every call, so the rest of the JetStream store can be
built and tested without it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import nats.aio.client
from nats.js import JetStreamContext

from eventyard.errors import StoreError
from eventyard.server.store.protocol import NewMessage, QueueMessage

__all__ = ["JetStreamQueues"]


def _not_built() -> StoreError:
    return StoreError("JetStream queues: not built yet")


class JetStreamQueues:
    """The queue operations of the JetStream store (placeholder)."""

    def __init__(
        self,
        nc: nats.aio.client.Client,
        js: JetStreamContext,
        *,
        prefix: str,
        replicas: int,
        clock: Callable[[], float],
        notify: Callable[[Collection[str]], None],
    ) -> None:
        self._nc = nc
        self._js = js
        self._prefix = prefix
        self._replicas = replicas
        self._clock = clock
        self._notify = notify

    async def setup(self) -> None:
        """Create or verify the queue streams (nothing yet)."""

    async def put(
        self, messages: Sequence[NewMessage], dedup_ids: Sequence[str] | None = None
    ) -> list[str]:
        raise _not_built()

    async def close(self) -> None:
        """Release what the queues hold (nothing yet)."""

    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        raise _not_built()

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        raise _not_built()

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        raise _not_built()

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        raise _not_built()

    async def queue_purge(self, queue: str) -> None:
        raise _not_built()

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        raise _not_built()

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        raise _not_built()
