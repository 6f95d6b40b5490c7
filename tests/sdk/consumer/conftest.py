"""Consumer fixtures: one real server per module, a client, and a running worker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from eventyard.sdk.client import AsyncClient
from eventyard.sdk.consumer import Consumer
from eventyard.sdk.worker import Clock
from eventyard.testing import ServerProcess

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("server")
    # abandoned long polls would hold a graceful stop for the default 10 s
    with ServerProcess(data, env={"EVENTYARD_SHUTDOWN_TIMEOUT": "1"}) as process:
        yield process


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, timeout=10.0) as c:
        yield c


@pytest.fixture
def bus() -> str:
    """A fresh bus name per test, so tests sharing the server never see each other."""
    return f"bus{next(_names)}"


@contextlib.asynccontextmanager
async def running(
    consumer: Consumer, client: AsyncClient, *, concurrency: int = 8, clock: Clock | None = None
) -> AsyncIterator[None]:
    """Set the consumer up, run it in the background, stop it gracefully on exit."""
    await consumer.setup(client)
    stop = asyncio.Event()
    task = asyncio.create_task(
        consumer.run(concurrency=concurrency, stop=stop, client=client, setup=False, clock=clock)
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition()`` to hold; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


async def queue_counts(client: AsyncClient, queue: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = await client.get_queue_attributes(queue)
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )
