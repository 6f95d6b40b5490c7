"""The delivery engine: attempts, retries with backoff, dead-letters and settles.

After the router has committed an event and its delivery records, it hands the records
to :meth:`DeliveryEngine.submit`. The engine delivers each to its target and settles the
record in the store: ``done`` once delivered, ``retry`` (new due time and attempt count)
after a retryable failure, ``dead`` (with its dead-letter message, if the target has a
DLQ) when it gives up. A record not yet settled stays pending in the store, and the
engine (or the next one, after a restart) reads it again: delivery is at least once.

**A bounded window.** The engine holds at most ``window`` records in memory (the
``delivery_window`` setting); the store holds the backlog. Each target has a *lane*
that knows where its records on disk begin, as a cursor in ``(due, id)`` order, and
when the next one is due. Whenever a lane with records due on disk has at most half its
share in memory, the scheduler reads the next page of that target with
:meth:`Store.deliveries_by_due` (earliest due lane first, one page per lane per pass).
The share is the window divided by the lanes with work, so a dead target's backlog
never holds more than its share; when a target with no records in memory needs room in
a full window, ready records of the targets above their share go back to the store
(nothing is lost: they are there unchanged). New records beyond the window stay in the
store only, and move the lane's cursor back so they are read in their turn. A failed
attempt's retry waits in the store, not in memory: once the retry (new due time and
attempt count) is written the record leaves memory, and the lane reads it again when
it is due. Start-up lists the targets with pending records and reads one window.

Targets fail independently. Each lane has a FIFO of ready records and up to
``TargetSpec.concurrency`` worker tasks, which exist only while there is work, so a
dead or slow target holds only its own workers and its share of the window. Settles
from every lane are collected by one settle task that writes each batch in a single
``store.settle`` call: while one write is in flight the next batch builds up, so the
cost per record stays small under load.

Backoff is exponential from ``base_delay`` (doubling, capped at ``max_delay``) with
equal or full jitter; a ``Retry-After`` from the target is honoured if it is longer.
A record is dead-lettered when a failure is not retryable, after ``max_attempts``
retries, or when the next attempt would come ``max_age`` seconds or more after the
event was first seen (a record that waited in the store past its age is dead-lettered
before its attempt, with ``EVENT_EXPIRED`` unless this engine saw its last failure).

Those decisions, and the scheduler's wait for the next due record, take the time from
one :class:`~eventyard.server.delivery.clock.Clock` (the wall clock unless another is
given), so tests move time on by hand instead of waiting out backoffs and ages.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import random
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal, Protocol, TypeVar, cast

import structlog
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from eventyard.errors import DeliveryError
from eventyard.server.config import Settings
from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock
from eventyard.server.delivery.destinations import ApiDestinations
from eventyard.server.delivery.outbound import OutboundPolicy, outbound_allow
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import DeliveryDeferred, Target, TargetKind, target_kind
from eventyard.server.delivery.targets.api_destination import ApiDestinationTarget
from eventyard.server.delivery.targets.bus import BusTarget
from eventyard.server.delivery.targets.http import HttpTarget
from eventyard.server.delivery.targets.queue import QueueTarget
from eventyard.server.store import Delivery, NewMessage, Store

__all__ = [
    "ATTEMPTS",
    "ATTEMPT_SECONDS",
    "BACKLOG",
    "DELIVERIES",
    "SETTLE_BATCH",
    "SETTLE_FAILURES",
    "WINDOW",
    "DeliveryEngine",
    "DeliveryObserver",
]

_log = structlog.get_logger("eventyard.server.delivery")

Jitter = Literal["full", "equal", "none"]

# -- metrics -------------------------------------------------------------------------

_M = TypeVar("_M", Counter, Gauge, Histogram)


def _metric(name: str, make: Callable[[], _M]) -> _M:
    # prometheus_client refuses a second collector with the same name, which happens
    # when this module is imported again (reloads, test runners): reuse the first one.
    existing = REGISTRY._names_to_collectors.get(name)
    if existing is not None:
        return cast(_M, existing)
    return make()


DELIVERIES: Final = _metric(
    "eventyard_deliveries",
    lambda: Counter(
        "eventyard_deliveries",
        "Delivery records finished: delivered, dead_lettered (to a DLQ) or dropped.",
        ["outcome"],
    ),
)
ATTEMPTS: Final = _metric(
    "eventyard_delivery_attempts",
    lambda: Counter(
        "eventyard_delivery_attempts",
        "Delivery attempts by target kind and result (success, retryable, failed).",
        ["kind", "result"],
    ),
)
ATTEMPT_SECONDS: Final = _metric(
    "eventyard_delivery_attempt_seconds",
    lambda: Histogram(
        "eventyard_delivery_attempt_seconds",
        "Duration of one delivery attempt.",
        ["kind"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    ),
)
SETTLE_BATCH: Final = _metric(
    "eventyard_delivery_settle_batch_size",
    lambda: Histogram(
        "eventyard_delivery_settle_batch_size",
        "Delivery records settled by one store write.",
        buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    ),
)
SETTLE_FAILURES: Final = _metric(
    "eventyard_delivery_settle_failures",
    lambda: Counter(
        "eventyard_delivery_settle_failures",
        "Batched settle writes the store refused (their records are then settled one by one).",
    ),
)
BACKLOG: Final = _metric(
    "eventyard_delivery_backlog",
    lambda: Gauge(
        "eventyard_delivery_backlog",
        "Delivery records pending in the store: committed, not yet delivered, "
        "dead-lettered or dropped.",
    ),
)
WINDOW: Final = _metric(
    "eventyard_delivery_window",
    lambda: Gauge(
        "eventyard_delivery_window",
        "Delivery records held in memory by the engine (at most delivery_window): ready, "
        "in an attempt, or waiting for their outcome to be written.",
    ),
)

# The running engines, whose stores' pending counts make the backlog gauge.
_RUNNING: Final[weakref.WeakSet[DeliveryEngine]] = weakref.WeakSet()


def _backlog() -> float:
    return float(sum(engine.backlog for engine in list(_RUNNING)))


BACKLOG.set_function(_backlog)

_DELIVERED = DELIVERIES.labels(outcome="delivered")
_DEAD_LETTERED = DELIVERIES.labels(outcome="dead_lettered")
_DROPPED = DELIVERIES.labels(outcome="dropped")
# Children bound once: ``labels()`` takes a lock and a dict look-up on every call.
_KINDS: Final[tuple[TargetKind, ...]] = ("http", "queue", "bus", "api-destination")
_SECONDS = {kind: ATTEMPT_SECONDS.labels(kind) for kind in _KINDS}
_RESULTS = {
    (kind, result): ATTEMPTS.labels(kind, result)
    for kind in _KINDS
    for result in ("success", "retryable", "failed")
}

_DEFAULT_SETTINGS: Final = Settings()

# -- internal records ----------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Job:
    """A record the engine holds, with the last failure (for the dead-letter message).

    ``stored`` is false while the record in memory differs from the one in the store (a
    retry whose write failed, an attempt that crashed): such a job is never evicted.
    """

    delivery: Delivery
    error_code: str = ""
    error_message: str = ""
    stored: bool = True


#: the cursor of a target whose records are all ahead of it
_START: Final = (-math.inf, 0)


@dataclass(slots=True, eq=False)
class _Lane:
    """One target: its ready records and workers, and where its records on disk begin.

    ``ceiling`` is the spec's concurrency (0 until the first attempt reads it) and
    ``limit`` the concurrency allowed now: it halves on every retryable failure and grows
    by one on every success, up to the ceiling (additive increase, multiplicative
    decrease). A dead target thus holds one connection instead of all of them, and its
    timeouts stop arriving in bursts that would cost every other target CPU. ``active``
    counts workers inside an attempt, so ``workers - active`` are about to take a job.

    ``held`` counts the target's records in memory (ready, in an attempt, or waiting for
    their outcome to be written). ``disk`` says the store may hold records of the target
    that memory does not; every such record comes after ``after`` in ``(due, id)``
    order, and none is due before ``next_due``. While a page is being read, positions
    that move back (records leaving memory, new records) collect in ``low`` and
    ``low_due`` and are applied once the page is in.
    """

    key: str
    limit: int = 1
    ceiling: int = 0
    ready: deque[_Job] = field(default_factory=deque)
    workers: int = 0
    active: int = 0
    held: int = 0
    disk: bool = False
    after: tuple[float, int] = _START
    next_due: float = math.inf
    loading: bool = False
    low: tuple[float, int] | None = None
    low_due: float = math.inf


_START_LIMIT = 4
# seconds before a lane whose page could not be read tries again
_LOAD_RETRY = 1.0


class _Settler:
    """Collects settle operations from every lane and writes them in batches.

    Operations for one record replace each other in the batch being built (a ``done``
    cancels an unwritten ``retry``), so one ``store.settle`` never gets conflicting
    orders for a record. If a batch fails, its operations are written one by one so a
    single bad one (say, a message for a queue deleted meanwhile) cannot block the rest.
    """

    def __init__(
        self,
        store: Store,
        forget: Callable[[int], None],
        retried: Callable[[int, bool], None],
        linger: float = 0.0,
    ) -> None:
        self._store = store
        self._forget = forget
        self._retried = retried
        self._linger = linger
        self._urgent = asyncio.Event()
        self._done: dict[int, asyncio.Future[None] | None] = {}
        self._messages: dict[int, NewMessage] = {}
        self._retry: dict[int, tuple[float, int]] = {}
        self._dead: dict[int, NewMessage | None] = {}
        self._wake = asyncio.Event()
        self._closing = False

    # -- operations, called from the lanes -----------------------------------------
    def done(self, delivery_id: int) -> None:
        self._retry.pop(delivery_id, None)
        self._done[delivery_id] = None
        self._wake.set()

    async def put_and_settle(self, delivery_id: int, message: NewMessage) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._retry.pop(delivery_id, None)
        self._done[delivery_id] = waiter
        self._messages[delivery_id] = message
        self._urgent.set()
        self._wake.set()
        await waiter

    def retry(self, delivery_id: int, due: float, attempts: int) -> None:
        self._retry[delivery_id] = (due, attempts)
        self._wake.set()

    def dead(self, delivery_id: int, message: NewMessage | None) -> None:
        self._retry.pop(delivery_id, None)
        self._dead[delivery_id] = message
        self._wake.set()

    # -- the settle task -------------------------------------------------------------
    def close(self) -> None:
        """Ask :meth:`run` to write what it holds and return."""
        self._closing = True
        self._urgent.set()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            if self._linger > 0 and not self._urgent.is_set():
                # Nobody waits on these outcomes (a queue target's delivery does, and sets
                # _urgent): let more of them join, so settle commits rarely stand between
                # a producer's PutEvents and its own commit.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._linger)
            self._urgent.clear()
            self._wake.clear()
            if self._done or self._retry or self._dead:
                await self._flush()
            if self._closing and not (self._done or self._retry or self._dead):
                return

    async def _flush(self) -> None:
        done, self._done = self._done, {}
        messages, self._messages = self._messages, {}
        retry, self._retry = self._retry, {}
        dead, self._dead = self._dead, {}
        SETTLE_BATCH.observe(len(done) + len(retry) + len(dead))
        try:
            await self._store.settle(
                done=list(done),
                retry=[(i, due, attempts) for i, (due, attempts) in retry.items()],
                dead=list(dead.items()),
                messages=list(messages.values()),
            )
        except Exception as exc:
            SETTLE_FAILURES.inc()
            _log.error(
                "settle batch failed; settling its records one by one",
                records=len(done) + len(retry) + len(dead),
                error=f"{type(exc).__name__}: {exc}",
            )
            await self._one_by_one(done, messages, retry, dead)
            return
        for delivery_id, waiter in done.items():
            _DELIVERED.inc()
            self._forget(delivery_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        for delivery_id, message in dead.items():
            (_DROPPED if message is None else _DEAD_LETTERED).inc()
            self._forget(delivery_id)
        for delivery_id in retry:
            self._retried(delivery_id, True)

    async def _one_by_one(
        self,
        done: dict[int, asyncio.Future[None] | None],
        messages: dict[int, NewMessage],
        retry: dict[int, tuple[float, int]],
        dead: dict[int, NewMessage | None],
    ) -> None:
        # Issued together, the store still group-commits them, but each one succeeds or
        # fails on its own.
        await asyncio.gather(
            *(self._settle_done(i, w, messages.get(i)) for i, w in done.items()),
            *(self._settle_retry(i, due, attempts) for i, (due, attempts) in retry.items()),
            *(self._settle_dead(i, message) for i, message in dead.items()),
        )

    async def _settle_done(
        self, delivery_id: int, waiter: asyncio.Future[None] | None, message: NewMessage | None
    ) -> None:
        try:
            await self._store.settle(
                done=[delivery_id], messages=[] if message is None else [message]
            )
        except Exception as exc:
            if waiter is not None:
                # A queue delivery: its target reports the failure, and the engine
                # retries or dead-letters it like any other failed attempt.
                if not waiter.done():
                    waiter.set_exception(exc)
                return
            # Delivered, but the record stays pending in the store: the next start
            # delivers it again (at least once).
            _log.error("cannot settle a delivered record", delivery_id=delivery_id, error=str(exc))
            self._forget(delivery_id)
            return
        _DELIVERED.inc()
        self._forget(delivery_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _settle_retry(self, delivery_id: int, due: float, attempts: int) -> None:
        try:
            await self._store.settle(retry=[(delivery_id, due, attempts)])
        except Exception as exc:
            # The retry stays scheduled in memory; only a restart before it is due would
            # see the old due time and attempt count.
            _log.error("cannot record a retry", delivery_id=delivery_id, error=str(exc))
            self._retried(delivery_id, False)
        else:
            self._retried(delivery_id, True)

    async def _settle_dead(self, delivery_id: int, message: NewMessage | None) -> None:
        if message is not None:
            try:
                await self._store.settle(dead=[(delivery_id, message)])
            except Exception as exc:
                _log.error(
                    "cannot write the dead-letter message; dropping the record",
                    delivery_id=delivery_id,
                    dlq=message.queue,
                    error=str(exc),
                )
            else:
                _DEAD_LETTERED.inc()
                self._forget(delivery_id)
                return
        try:
            await self._store.settle(dead=[(delivery_id, None)])
        except Exception as exc:
            # The record stays pending in the store: the next start tries it again.
            _log.error("cannot settle a dropped record", delivery_id=delivery_id, error=str(exc))
        else:
            _DROPPED.inc()
        self._forget(delivery_id)


# -- the engine ----------------------------------------------------------------------


class DeliveryObserver(Protocol):
    """Told of attempts' outcomes (the system events: target health, dead letters).

    Calls come from the event loop and must not block.
    """

    def attempt_succeeded(self, spec: TargetSpec) -> None:
        """An attempt to deliver to ``spec`` succeeded."""

    def attempt_failed(
        self, spec: TargetSpec, error_code: str | None, error_message: str | None
    ) -> None:
        """An attempt to deliver to ``spec`` failed (retryable or not)."""

    def dead_lettered(self, spec: TargetSpec, error_code: str | None) -> None:
        """A record of ``spec`` was given to its dead-letter queue."""


class DeliveryEngine:
    """Delivers pending delivery records to their targets.

    Args:
        store: the store holding the delivery records (and the queues).
        resolve: the current :class:`TargetSpec` of a target key, or None if the target
            was removed (its records are then dropped).
        forward_to_bus: ``await forward_to_bus(bus_arn, payload, rule_arn, account)`` puts an
            event on a bus for a rule; used by event-bus targets.
        queue_name_for_arn: the local queue an SQS ARN names, or None if it does not
            exist; used by queue targets and dead-letter queues.
        settings: the server settings; ``retry_base_delay`` and ``retry_max_delay``
            are the backoff's and ``delivery_window`` the window's, unless given here.
        base_delay: seconds before the first retry; each further retry doubles it.
        max_delay: the cap of the backoff, in seconds.
        jitter: ``"equal"`` waits between half and all of the backoff, ``"full"``
            between none and all of it, ``"none"`` exactly the backoff.
        window: the most delivery records held in memory at once; the others wait in
            the store until there is room.
        page_size: records read per store call when the window is refilled.
        settle_linger: seconds a batch of outcomes nobody waits for (done, retry,
            dead-letter) may wait for more to join before it is written. A crash in that
            window only means those records are delivered again (at least once).
        settle_grace: seconds :meth:`stop` allows the last settle write even when its
            own timeout is spent.
        user_agent: the webhooks' ``User-Agent``; ``eventyard/<version>`` by default.
        http_limit_per_host: connections per webhook host, 0 for no limit.
        clock: where due times and event ages read the time, and retries wait for
            their due time; the system's wall clock by default (tests pass one they
            advance by hand).
        rng: the random source of the jitter.
        api_destinations: resolves API destination targets (their connections and
            secrets); without it such targets are dead-lettered as unsupported.
    """

    def __init__(
        self,
        store: Store,
        resolve: Callable[[str], TargetSpec | None],
        *,
        forward_to_bus: Callable[[str, bytes, str, str], Awaitable[None]],
        queue_name_for_arn: Callable[[str], str | None],
        settings: Settings | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        jitter: Jitter = "equal",
        window: int | None = None,
        page_size: int = 1000,
        settle_grace: float = 5.0,
        settle_linger: float = 0.02,
        user_agent: str | None = None,
        http_limit_per_host: int = 0,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        observer: DeliveryObserver | None = None,
        api_destinations: ApiDestinations | None = None,
    ) -> None:
        known = settings or _DEFAULT_SETTINGS
        base_delay = known.retry_base_delay if base_delay is None else base_delay
        max_delay = known.retry_max_delay if max_delay is None else max_delay
        window = known.delivery_window if window is None else window
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter must be 'full', 'equal' or 'none', not {jitter!r}")
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        if window < 1:
            raise ValueError("window must be >= 1")
        self._store = store
        self._resolve = resolve
        self._observer = observer
        self._queue_name_for_arn = queue_name_for_arn
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._jitter = jitter
        self._window = window
        self._page_size = page_size
        self._settle_grace = settle_grace
        self._clock = clock
        # bound once: read on every admit, attempt and failure
        self._now = clock.time
        self._rng = rng or random.Random()
        self._settler = _Settler(store, self._forget, self._retried, settle_linger)
        # without settings (unit tests) webhooks are unrestricted; a server always has them
        policy = None if settings is None else OutboundPolicy.parse(outbound_allow(settings))
        self._http = HttpTarget(
            user_agent=user_agent, limit_per_host=http_limit_per_host, policy=policy
        )
        self._targets: dict[TargetKind, Target] = {
            "http": self._http,
            "queue": QueueTarget(queue_name_for_arn, self._settler),
            "bus": BusTarget(forward_to_bus),
        }
        self._api_destinations: ApiDestinationTarget | None = None
        if api_destinations is not None:
            self._api_destinations = ApiDestinationTarget(api_destinations, policy=policy)
            self._targets["api-destination"] = self._api_destinations
        self._lanes: dict[str, _Lane] = {}
        # the records in memory, each with its lane; len() <= window at all times
        self._known: dict[int, _Lane] = {}
        self._peak = 0
        # failed attempts whose retry is being written: forgotten once it is
        self._retrying: dict[int, _Job] = {}
        # jobs that wait in memory (a retry the store refused, a crashed attempt)
        self._heap: list[tuple[float, int, _Job]] = []
        # lanes whose records on disk are due now, and when the others' next one is
        self._due: dict[str, _Lane] = {}
        self._timers: list[tuple[float, int, _Lane]] = []
        self._seq = itertools.count()
        # while a page is read, ids forgotten meanwhile must not come back from it
        self._loading = 0
        self._gone: set[int] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._settle_task: asyncio.Task[None] | None = None
        self._state: Literal["new", "running", "stopping", "stopped"] = "new"

    @property
    def pending(self) -> int:
        """Records held in memory: ready, in flight or waiting for an outcome's write."""
        return len(self._known)

    @property
    def peak(self) -> int:
        """The most records held in memory at once so far (never above :attr:`window`)."""
        return self._peak

    @property
    def window(self) -> int:
        """The most records the engine holds in memory at once."""
        return self._window

    @property
    def backlog(self) -> int:
        """Records pending in the store (0 once the store is closed)."""
        try:
            return self._store.pending_count()
        except Exception:
            return 0

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the engine: find the targets with pending records and fill the window.

        Only a window of the pending records is read; the rest is paged in as room
        frees up. Records submitted meanwhile are not scheduled twice.

        Raises:
            RuntimeError: the engine was already started.
            StoreError: the store could not be read (the engine is then stopped).
        """
        if self._state != "new":
            raise RuntimeError("a DeliveryEngine can be started once")
        self._state = "running"
        self._settle_task = asyncio.create_task(self._settler.run(), name="eventyard-settle")
        try:
            targets = await self._store.pending_targets()
            for key in targets:
                self._lower(self._lane(key), -math.inf, 1)
            await self._pass()
        except BaseException:
            await self.stop(0)
            raise
        self._scheduler = asyncio.create_task(self._schedule(), name="eventyard-scheduler")
        _RUNNING.add(self)
        _log.info(
            "delivery engine started",
            pending=self.backlog,
            targets=len(targets),
            in_memory=len(self._known),
            window=self._window,
        )

    def submit(self, deliveries: Sequence[Delivery]) -> None:
        """Schedule newly committed delivery records. Never blocks.

        Records the window has no room for stay in the store and are paged in later.
        Call from the event loop. Before :meth:`start` and after :meth:`stop` this does
        nothing: the records are durable and the next start loads them.
        """
        if self._state != "running":
            return
        now = self._now()
        for delivery in deliveries:
            if delivery.id in self._known:
                continue
            lane = self._lane(delivery.target)
            if (
                not lane.disk
                and delivery.due <= now
                and lane.held < self._cap()
                and len(self._known) < self._window
            ):
                self._admit(lane, delivery)
            else:
                self._lower(lane, delivery.due, delivery.id)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work and let attempts in flight finish for up to ``timeout`` s.

        Attempts still running then are cancelled. Settles of finished attempts are
        written; every record not settled stays pending in the store for the next
        :meth:`start`. The webhook connection pool is closed. Idempotent.
        """
        if self._state in ("stopping", "stopped"):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        started = self._state == "running"
        self._state = "stopping"
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        if self._workers:
            _, unfinished = await asyncio.wait(
                set(self._workers), timeout=max(0.0, deadline - loop.time())
            )
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
        if self._settle_task is not None:
            self._settler.close()
            grace = max(deadline - loop.time(), self._settle_grace)
            try:
                await asyncio.wait_for(self._settle_task, grace)
            except TimeoutError:
                _log.error("last settle write timed out; its records stay pending")
        await self._http.close()
        if self._api_destinations is not None:
            await self._api_destinations.close()
        left = len(self._known)
        WINDOW.dec(left)
        self._known.clear()
        self._retrying.clear()
        self._lanes.clear()
        self._heap.clear()
        self._due.clear()
        self._timers.clear()
        _RUNNING.discard(self)
        self._state = "stopped"
        if started:
            _log.info("delivery engine stopped", left_in_memory=left)

    # -- the window ------------------------------------------------------------------
    def _lane(self, key: str) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
        return lane

    def _cap(self) -> int:
        """Each target's fair share of the window: no page takes a lane past it, and a
        lane above it gives ready records back when another lane needs room."""
        return max(1, self._window // max(1, len(self._lanes)))

    def _admit(self, lane: _Lane, delivery: Delivery) -> None:
        """Take a due record into memory and hand it to its lane."""
        self._known[delivery.id] = lane
        lane.held += 1
        WINDOW.inc()
        held = len(self._known)
        self._peak = max(self._peak, held)
        lane.ready.append(_Job(delivery))
        self._fill(lane.key, lane)

    def _forget(self, delivery_id: int) -> None:
        """A record leaves memory (settled, or left to the store)."""
        lane = self._known.pop(delivery_id, None)
        if lane is None:
            return
        self._retrying.pop(delivery_id, None)
        if self._loading:
            self._gone.add(delivery_id)
        lane.held -= 1
        WINDOW.dec()
        if self._due:
            self._wake.set()  # room for a lane that waits for some
        self._drop_if_idle(lane)

    def _drop_if_idle(self, lane: _Lane) -> None:
        if (
            lane.held == 0
            and not lane.disk
            and lane.workers == 0
            and not lane.ready
            and self._lanes.get(lane.key) is lane
        ):
            del self._lanes[lane.key]

    def _lower(self, lane: _Lane, due: float, delivery_id: int) -> None:
        """Note that the store holds a record of ``lane`` that memory does not."""
        position = (due, delivery_id - 1)  # the greatest position before (due, id)
        if lane.loading:
            # applied when the page being read is in (see _load)
            if lane.low is None or position < lane.low:
                lane.low = position
            lane.low_due = min(lane.low_due, due)
            return
        if not lane.disk or position < lane.after:
            # without records on disk there was no cursor to keep
            lane.after = position
        lane.disk = True
        if due < lane.next_due:
            lane.next_due = due
            self._due_or_timer(lane)

    def _due_or_timer(self, lane: _Lane) -> None:
        if lane.next_due <= self._now():
            self._due[lane.key] = lane
        else:
            self._due.pop(lane.key, None)
            heapq.heappush(self._timers, (lane.next_due, next(self._seq), lane))
            if len(self._timers) > 2 * len(self._lanes) + 64:
                # lanes whose next due time moved earlier several times left stale entries
                self._timers = [
                    (t.next_due, next(self._seq), t)
                    for t in self._lanes.values()
                    if t.disk and t.next_due > self._now()
                ]
                heapq.heapify(self._timers)
        self._wake.set()

    def _retried(self, delivery_id: int, written: bool) -> None:
        """A retry's write ended: the record now waits in the store, or (refused) here."""
        job = self._retrying.pop(delivery_id, None)
        lane = self._known.get(delivery_id)
        if job is None or lane is None:
            return
        if not written:
            job.stored = False
            self._push(job)
            return
        if self._state == "running":
            self._lower(lane, job.delivery.due, delivery_id)
        self._forget(delivery_id)

    def _push(self, job: _Job) -> None:
        heapq.heappush(self._heap, (job.delivery.due, next(self._seq), job))
        if self._heap[0][2] is job:
            self._wake.set()

    async def _schedule(self) -> None:
        while True:
            self._wake.clear()
            await self._pass()
            deadline = min(
                self._heap[0][0] if self._heap else math.inf,
                self._timers[0][0] if self._timers else math.inf,
            )
            if self._wake.is_set():
                # more to do at once; a store that answers without suspending must not
                # keep the loop from the attempts this pass started
                await asyncio.sleep(0)
                continue
            if deadline == math.inf:
                await self._wake.wait()
            else:
                await self._clock.wait_until(deadline, self._wake)

    async def _pass(self) -> None:
        """Dispatch what has come due, then refill the window from the store."""
        now = self._now()
        heap = self._heap
        while heap and heap[0][0] <= now:
            self._dispatch(heapq.heappop(heap)[2])
        timers = self._timers
        while timers and timers[0][0] <= now:
            lane = heapq.heappop(timers)[2]
            if self._lanes.get(lane.key) is lane and lane.disk and lane.next_due <= now:
                self._due[lane.key] = lane
        if not self._due:
            return
        # Earliest due first, one page per lane per pass: a target with a deep backlog
        # takes its share of the window and no more.
        for lane in sorted(self._due.values(), key=lambda lane: lane.next_due):
            if self._state != "running":
                return
            if self._lanes.get(lane.key) is not lane or not lane.disk:
                self._due.pop(lane.key, None)
                continue
            cap = self._cap()
            if lane.held > cap // 2:
                continue  # enough in memory; its forgets wake us
            want = cap - lane.held
            room = self._window - len(self._known)
            if room < want:
                self._evict(want - room, cap)
                room = self._window - len(self._known)
            if room > 0:
                await self._load(lane, min(want, room), now)

    def _evict(self, needed: int, cap: int) -> None:
        """Leave ready records of targets above their share to the store, newest first."""
        for lane in sorted(self._lanes.values(), key=lambda lane: -lane.held):
            while needed > 0 and lane.held > cap and lane.ready and lane.ready[-1].stored:
                delivery = lane.ready.pop().delivery
                self._lower(lane, delivery.due, delivery.id)
                self._forget(delivery.id)
                needed -= 1
            if needed <= 0 or lane.held <= cap:
                return

    async def _load(self, lane: _Lane, want: int, now: float) -> None:
        """Read up to ``want`` due records of ``lane`` from the store into memory."""
        after = lane.after
        more = True
        next_due = math.inf
        lane.loading = True
        lane.low, lane.low_due = None, math.inf
        self._loading += 1
        try:
            while want > 0 and next_due == math.inf and self._state == "running":
                limit = min(want, self._page_size)
                page = await self._store.deliveries_by_due(
                    lane.key, None if after == _START else after, limit
                )
                for delivery in page:
                    if delivery.due > now:
                        next_due = delivery.due  # not due yet: the lane's next wake-up
                        break
                    if delivery.id not in self._known and delivery.id not in self._gone:
                        if len(self._known) >= self._window:
                            next_due = delivery.due  # no room after all: later
                            break
                        self._admit(lane, delivery)
                        want -= 1
                    after = (delivery.due, delivery.id)
                if next_due == math.inf and len(page) < limit:
                    more = False  # the lane's whole backlog is in memory now
                    break
        except Exception as exc:
            _log.error("cannot read pending deliveries", target=lane.key, error=str(exc))
            next_due = min(next_due, now + _LOAD_RETRY)
        finally:
            self._loading -= 1
            if not self._loading:
                self._gone.clear()
            lane.loading = False
        if more and next_due == math.inf:
            next_due = now  # a full page: there may be more due right now
        if lane.low is not None:
            after = min(after, lane.low)
            more = True
            next_due = min(next_due, lane.low_due)
        lane.after = after
        lane.disk = more
        lane.next_due = next_due if more else math.inf
        if more:
            self._due_or_timer(lane)
        else:
            self._due.pop(lane.key, None)
            self._drop_if_idle(lane)

    def _dispatch(self, job: _Job) -> None:
        lane = self._known.get(job.delivery.id)
        if lane is None:
            return
        lane.ready.append(job)
        self._fill(lane.key, lane)

    def _fill(self, key: str, lane: _Lane) -> None:
        while lane.workers < lane.limit and lane.workers - lane.active < len(lane.ready):
            lane.workers += 1
            task = asyncio.create_task(self._work(key, lane))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self, key: str, lane: _Lane) -> None:
        try:
            while lane.ready and self._state == "running" and lane.workers <= lane.limit:
                job = lane.ready.popleft()
                lane.active += 1
                try:
                    await self._attempt(key, lane, job)
                except Exception:
                    # A bug (ours or in resolve / queue_name_for_arn): keep the record
                    # and try it again later rather than lose it from memory.
                    _log.exception(
                        "delivery attempt crashed", delivery_id=job.delivery.id, target=key
                    )
                    job.delivery = replace(job.delivery, due=self._now() + self._max_delay)
                    job.stored = False
                    self._push(job)
                finally:
                    lane.active -= 1
        finally:
            lane.workers -= 1
            if lane.workers == 0:
                self._drop_if_idle(lane)

    # -- one attempt -----------------------------------------------------------------
    async def _attempt(self, key: str, lane: _Lane, job: _Job) -> None:
        delivery = job.delivery
        spec = self._resolve(key)
        if spec is None:
            _log.info(
                "delivery dropped: target removed",
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                target=key,
            )
            self._settler.dead(delivery.id, None)
            return
        if spec.concurrency != lane.ceiling:
            first = lane.ceiling == 0
            lane.ceiling = spec.concurrency
            # a new lane starts small and grows by one per success (slow start), so a
            # target that is down from the start holds a few connections, not all
            start = min(spec.concurrency, _START_LIMIT)
            lane.limit = start if first else min(lane.limit, spec.concurrency)
            self._fill(key, lane)
        if self._now() - delivery.first_seen >= spec.max_age:
            if not job.error_code:
                job.error_code = "EVENT_EXPIRED"
                job.error_message = f"event older than {spec.max_age:g} s before its attempt"
            self._dead_letter(spec, job, "MaximumEventAgeInSeconds", max(0, delivery.attempts - 1))
            return
        kind = target_kind(spec.arn)
        if kind is None:
            job.error_code = "UNSUPPORTED_TARGET"
            job.error_message = f"eventyard cannot deliver to {spec.arn}"
            self._dead_letter(spec, job, None, delivery.attempts)
            return
        target = self._targets.get(kind)
        if target is None:
            job.error_code = "UNSUPPORTED_TARGET"
            job.error_message = f"this engine cannot deliver to {spec.arn}"
            self._dead_letter(spec, job, None, delivery.attempts)
            return
        started = time.perf_counter()
        try:
            await target.send(spec, delivery)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:
            _log.exception(
                "delivery target raised an unexpected error",
                delivery_id=delivery.id,
                target=key,
                kind=kind,
            )
            error = DeliveryError(
                f"{type(exc).__name__}: {exc}", retryable=True, error_code="INTERNAL_FAILURE"
            )
        else:
            _SECONDS[kind].observe(time.perf_counter() - started)
            _RESULTS[kind, "success"].inc()
            if self._observer is not None:
                self._observer.attempt_succeeded(spec)
            if not target.settles:
                self._settler.done(delivery.id)
            if lane.limit < lane.ceiling:
                lane.limit += 1
                self._fill(key, lane)
            return
        _SECONDS[kind].observe(time.perf_counter() - started)
        if error.retryable:
            lane.limit = max(1, lane.limit // 2)
        self._failed(spec, job, error, kind)

    def _failed(self, spec: TargetSpec, job: _Job, error: DeliveryError, kind: TargetKind) -> None:
        delivery = job.delivery
        job.error_code = error.error_code
        job.error_message = error.message
        if self._observer is not None:
            self._observer.attempt_failed(spec, error.error_code, error.message)
        # The attempts made before this one are the retries made so far, this one included.
        retries = delivery.attempts
        if not error.retryable:
            _RESULTS[kind, "failed"].inc()
            self._dead_letter(spec, job, None, retries)
            return
        _RESULTS[kind, "retryable"].inc()
        if retries >= spec.max_attempts:
            self._dead_letter(spec, job, "MaximumRetryAttempts", retries)
            return
        attempt = delivery.attempts + 1
        delay = self._backoff(attempt)
        if isinstance(error, DeliveryDeferred):
            delay = max(delay, error.retry_after)
        due = self._now() + delay
        if due - delivery.first_seen >= spec.max_age:
            self._dead_letter(spec, job, "MaximumEventAgeInSeconds", retries)
            return
        job.delivery = replace(delivery, due=due, attempts=attempt)
        # the record waits for its due time in the store, not here: forgotten once the
        # retry is written (_retried), paged in again when it is due
        self._retrying[delivery.id] = job
        self._settler.retry(delivery.id, due, attempt)
        _log.debug(
            "delivery will be retried",
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            target=spec.key,
            attempt=attempt,
            delay=round(delay, 3),
            error_code=error.error_code,
        )

    def _backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self._max_delay, self._base_delay * 2.0 ** min(attempt - 1, 64))
        if self._jitter == "full":
            return self._rng.uniform(0.0, ceiling)
        if self._jitter == "equal":
            return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)
        return ceiling

    def _dead_letter(
        self, spec: TargetSpec, job: _Job, exhausted: str | None, retries: int
    ) -> None:
        delivery = job.delivery
        message = self._dead_letter_message(
            spec,
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            event=delivery.event,
            error_code=job.error_code,
            error_message=job.error_message,
            retries=retries,
            exhausted=exhausted,
        )
        if message is not None and self._observer is not None:
            self._observer.dead_lettered(spec, job.error_code)
        self._settler.dead(delivery.id, message)

    def dead_letter_unrenderable(
        self, spec: TargetSpec, event_id: str, event: bytes, error: DeliveryError
    ) -> NewMessage | None:
        """The dead letter of a match whose input could not be rendered (too large,
        invalid JSON…), for the caller to store with the event; None without a DLQ.

        Such a match gets no delivery record: it can never succeed, so it is never
        attempted nor retried. Its dead letter carries the same attributes as any other
        (``RETRY_ATTEMPTS`` 0), and counts as dead-lettered or dropped.
        """
        message = self._dead_letter_message(
            spec,
            delivery_id=None,
            event_id=event_id,
            event=event,
            error_code=error.error_code,
            error_message=error.message,
            retries=0,
            exhausted=None,
        )
        (_DROPPED if message is None else _DEAD_LETTERED).inc()
        if message is not None and self._observer is not None:
            self._observer.dead_lettered(spec, error.error_code)
        return message

    def _dead_letter_message(
        self,
        spec: TargetSpec,
        *,
        delivery_id: int | None,
        event_id: str,
        event: bytes,
        error_code: str,
        error_message: str,
        retries: int,
        exhausted: str | None,
    ) -> NewMessage | None:
        context = {
            "delivery_id": delivery_id,
            "event_id": event_id,
            "target": spec.key,
            "error_code": error_code,
            "error": error_message,
            "retry_attempts": retries,
            "exhausted": exhausted,
        }
        if spec.dlq_arn is None:
            _log.warning("delivery dropped: failed and the target has no DLQ", **context)
            return None
        queue = self._queue_name_for_arn(spec.dlq_arn)
        if queue is None:
            _log.error(
                "delivery dropped: the dead-letter queue does not exist",
                dlq=spec.dlq_arn,
                **context,
            )
            return None
        attributes = {
            "RULE_ARN": _string(spec.rule_arn),
            "TARGET_ARN": _string(spec.arn),
            "ERROR_CODE": _string(error_code),
            "ERROR_MESSAGE": _string(error_message[:4096] or error_code),
            "RETRY_ATTEMPTS": _string(str(retries)),
        }
        if exhausted is not None:
            attributes["EXHAUSTED_RETRY_CONDITION"] = _string(exhausted)
        _log.warning("delivery dead-lettered", dlq=queue, **context)
        return NewMessage(queue, body=event.decode("utf-8", "replace"), attributes=attributes)


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}
