"""Fixtures for delivery tests: a real SQLite store, a scriptable webhook server, an engine.

The webhook server is a real aiohttp server on 127.0.0.1, port 0. Each path answers
with a *behaviour*: an async function of the 1-based hit number on that path returning
the response (or never returning, for a hanging target, until the test ends).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock
from eventyard.server.delivery.engine import DeliveryEngine, TargetSpec
from eventyard.server.store import Delivery, NewDelivery, NewEvent, QueueMessage
from eventyard.server.store.sqlite import SQLiteStore
from tests.helpers import DEFAULT_TIMEOUT, apoll_until

RULE_ARN = "arn:aws:events:us-east-1:000000000000:rule/orders/placed"
QUEUE_ARN_PREFIX = "arn:aws:sqs:us-east-1:000000000000:"

Behaviour = Callable[[int], Awaitable[web.StreamResponse]]


def statuses(*codes: int, headers: dict[str, str] | None = None) -> Behaviour:
    """Answer hit n with ``codes[n-1]`` (the last code once they run out)."""

    async def answer(n: int) -> web.StreamResponse:
        return web.Response(status=codes[min(n, len(codes)) - 1], text="ok", headers=headers)

    return answer


@dataclass
class Hit:
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    at: float


@dataclass
class Webhook:
    """The scriptable receiving server."""

    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, behaviour: Behaviour | None = None) -> str:
        self.behaviours[path] = behaviour or statuses(200)
        return f"{self.base}{path}"

    def hits_on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def hang(self, n: int) -> web.StreamResponse:
        """A behaviour: never answer (until the test ends)."""
        await self.release.wait()
        return web.Response(status=200)

    def slow(self, seconds: float, *codes: int) -> Behaviour:
        """A behaviour: wait ``seconds`` on the first hit, then answer like statuses()."""
        after = statuses(*(codes or (200,)))

        async def answer(n: int) -> web.StreamResponse:
            if n == 1:
                await asyncio.sleep(seconds)
            return await after(n)

        return answer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.read()
        self.hits.append(Hit(path, request.headers, body, time.monotonic()))
        n = len(self.hits_on(path))
        self.in_flight[path] = self.in_flight.get(path, 0) + 1
        self.peak[path] = max(self.peak.get(path, 0), self.in_flight[path])
        try:
            return await self.behaviours.get(path, statuses(404))(n)
        finally:
            self.in_flight[path] -= 1

    async def wait_hits(self, path: str, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Hit]:
        await apoll_until(
            lambda: len(self.hits_on(path)) >= count, timeout, what=f"{count} hits on {path}"
        )
        return self.hits_on(path)


class ManualClock:
    """A :class:`~eventyard.server.delivery.clock.Clock` that moves only when told to.

    It starts at a round Unix time, so sums of whole seconds are exact. The engine waits
    for a retry's due time in :meth:`wait_until`; a test sees that wait with
    :meth:`next_deadline` and ends it with :meth:`advance`.
    """

    def __init__(self, start: float = 1_000_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self.now

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        if deadline <= self.now:
            return
        due: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (deadline, due)
        self._sleepers.append(entry)
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({due, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        """Move the time on, ending the waits it reaches."""
        self.now += seconds
        for entry in [e for e in self._sleepers if e[0] <= self.now]:
            self._sleepers.remove(entry)
            if not entry[1].done():
                entry[1].set_result(None)

    async def next_deadline(self, timeout: float = DEFAULT_TIMEOUT) -> float:
        """Wait until someone waits for a later time on this clock; return that time."""

        def waited() -> float | None:
            return min((d for d, _ in self._sleepers), default=None)

        deadline: float = await apoll_until(waited, timeout, what="a wait on the clock")
        return deadline

    async def advance_to_next(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait for the next wait on this clock, then move the time to its end."""
        self.advance(await self.next_deadline(timeout) - self.now)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    hook.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield hook
    finally:
        hook.release.set()
        await runner.cleanup()
        sock.close()


def refused_url() -> str:
    """A URL on a port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody"


class StoreClock:
    """The store's clock in delivery tests: the clock of the engine made last.

    The store judges due times and leases by its clock, the engine waits by its own;
    they must agree, so :meth:`Harness.engine` points this at the engine's clock.
    """

    def __init__(self) -> None:
        self.clock: Clock = SYSTEM_CLOCK

    def __call__(self) -> float:
        return self.clock.time()


@pytest.fixture
def store_clock() -> StoreClock:
    return StoreClock()


@pytest.fixture
async def store(tmp_path: Path, store_clock: StoreClock) -> AsyncIterator[SQLiteStore]:
    """An open SQLite store whose clock follows the engines' (see :class:`StoreClock`)."""
    db = SQLiteStore(str(tmp_path / "eventyard.db"), clock=store_clock)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


class Harness:
    """Targets, queues and engines over one store; every engine is stopped at teardown."""

    def __init__(self, store: Any, store_clock: StoreClock | None = None) -> None:
        self.store = store
        self.store_clock = store_clock
        self.specs: dict[str, TargetSpec] = {}
        self.queues: dict[str, str] = {}
        self.forwarded: list[tuple[str, bytes]] = []
        self.forward_error: BaseException | None = None
        self.engines: list[DeliveryEngine] = []

    def target(self, key: str, arn: str, **kw: Any) -> TargetSpec:
        spec = TargetSpec(key=key, arn=arn, rule_arn=RULE_ARN, **kw)
        self.specs[key] = spec
        return spec

    def queue(self, name: str) -> str:
        arn = QUEUE_ARN_PREFIX + name
        self.queues[arn] = name
        return arn

    async def forward_to_bus(self, arn: str, payload: bytes, rule_arn: str, account: str) -> None:
        if self.forward_error is not None:
            raise self.forward_error
        self.forwarded.append((arn, payload))

    async def engine(self, *, start: bool = True, store: Any = None, **kw: Any) -> DeliveryEngine:
        kw.setdefault("base_delay", 0.01)
        kw.setdefault("max_delay", 0.05)
        if self.store_clock is not None:
            self.store_clock.clock = kw.get("clock", SYSTEM_CLOCK)
        engine = DeliveryEngine(
            store or self.store,
            self.specs.get,
            forward_to_bus=self.forward_to_bus,
            queue_name_for_arn=self.queues.get,
            **kw,
        )
        self.engines.append(engine)
        if start:
            await engine.start()
        return engine

    async def add(
        self,
        target: str,
        count: int = 1,
        *,
        first_seen: float | None = None,
        due: float = 0.0,
        payload: bytes | None = None,
    ) -> list[Delivery]:
        """Ingest ``count`` events, each with one delivery record for ``target``."""
        now = time.time()
        events, deliveries = [], []
        for i in range(count):
            event_id = str(uuid.uuid4())
            body = orjson.dumps({"id": event_id, "source": "shop", "detail": {"n": i}})
            events.append(NewEvent(event_id, "orders", now, body))
            deliveries.append(
                NewDelivery(
                    target,
                    event_id,
                    body if payload is None else payload,
                    body,
                    now if first_seen is None else first_seen,
                    due,
                )
            )
        stored: list[Delivery] = await self.store.ingest(events, deliveries)
        return stored

    async def pending(self) -> list[Delivery]:
        records: list[Delivery] = await self.store.pending_deliveries(0, 100_000)
        return records

    async def wait_settled(self, count: int = 0, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until ``count`` records are pending in the store.

        A record leaves the store in the same write that records its outcome, and the
        engine counts the outcome in the metrics as soon as that write returns, so every
        outcome is visible then. With ``count`` 0 this also waits until the engines hold
        nothing and their last worker has finished (they only hold a window of the
        pending records, so with more pending their holdings vary).
        """

        async def settled() -> bool:
            if count == 0:
                held = sum(engine.pending for engine in self.engines)
                if held or any(e._workers for e in self.engines):
                    return False
            return len(await self.pending()) == count

        await apoll_until(settled, timeout, what=f"{count} records pending")

    async def messages(
        self, queue: str, count: int, timeout: float = DEFAULT_TIMEOUT
    ) -> list[QueueMessage]:
        """Receive ``count`` messages from ``queue`` (failing after ``timeout``)."""
        got: list[QueueMessage] = []

        async def received() -> bool:
            got.extend(await self.store.queue_receive(queue, 10, 60.0, time.time()))
            return len(got) >= count

        await apoll_until(received, timeout, what=f"{count} messages in {queue}")
        return got


@pytest.fixture
async def harness(store: SQLiteStore, store_clock: StoreClock) -> AsyncIterator[Harness]:
    h = Harness(store, store_clock)
    try:
        yield h
    finally:
        for engine in h.engines:
            await engine.stop(0.5)
