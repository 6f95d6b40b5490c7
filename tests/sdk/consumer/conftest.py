"""Consumer fixtures: the session's shared server, an observed client, a running worker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from eventyard.sdk.client import AsyncClient, Message
from eventyard.sdk.consumer import Consumer
from eventyard.sdk.worker import Clock
from eventyard.testing import ServerProcess
from tests.conftest import BACKENDS

_names = itertools.count()


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, shared_server_on: Callable[[str], ServerProcess]
) -> ServerProcess:
    """The shared server of each backend: tests use fresh bus names, never meeting."""
    return shared_server_on(request.param)


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[ObservedClient]:
    async with ObservedClient(server.url, timeout=10.0) as c:
        yield c


@pytest.fixture
def bus() -> str:
    """A fresh bus name per test, so tests sharing the server never see each other."""
    return f"bus{next(_names)}"


@contextlib.asynccontextmanager
async def running(
    consumer: Consumer, client: AsyncClient, *, concurrency: int = 8, clock: Clock | None = None
) -> AsyncIterator[asyncio.Event]:
    """Set the consumer up, run it in the background, stop it gracefully on exit.

    Yields the worker's stop event, for a test that stops it earlier.
    """
    await consumer.setup(client)
    stop = asyncio.Event()
    task = asyncio.create_task(
        consumer.run(concurrency=concurrency, stop=stop, client=client, setup=False, clock=clock)
    )
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


class ObservedClient(AsyncClient):
    """A real client that shows which queues it is receiving from right now.

    A test waits on :meth:`receiving` for a worker to be in its long poll, instead of
    sleeping and hoping it is.
    """

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._receiving: dict[str, int] = {}
        self.visibility_changes: list[tuple[str, int]] = []

    def receiving(self, queue: str) -> bool:
        """Whether a receive from ``queue`` is in flight."""
        return self._receiving.get(queue, 0) > 0

    async def receive_messages(self, queue: str, **options: Any) -> list[Message]:
        self._receiving[queue] = self._receiving.get(queue, 0) + 1
        try:
            return await super().receive_messages(queue, **options)
        finally:
            self._receiving[queue] -= 1

    async def change_visibility(self, queue: str, receipt: str, timeout: int) -> None:
        self.visibility_changes.append((queue, timeout))
        await super().change_visibility(queue, receipt, timeout)


async def queue_counts(client: AsyncClient, queue: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = await client.get_queue_attributes(queue)
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )
