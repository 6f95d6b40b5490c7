"""The delivery engine: claims due records, attempts them, retries with backoff, settles.

The router commits an event and its delivery records, then tells the engine which
targets have new records (:meth:`DeliveryEngine.deliveries_ready`, the store's listener
call). The engine *claims* due records of a target from the store
(:meth:`Store.claim_deliveries`), which leases them to this engine's ``owner`` for
``delivery_lease`` seconds: in a cluster, several processes share one store, and a
record is attempted by the one that holds its lease. The engine delivers each record to
its target and settles it: ``done`` once delivered, ``retry`` (new due time and attempt
count) after a retryable failure, ``dead`` (with its dead-letter message, if the target
has a DLQ) when it gives up. The store settles a record only for the owner of its lease;
a record not yet settled stays pending and is claimed again once its lease ends (by the
next start, or by another process if this one died): delivery is at least once.

**Leases.** Every third of the lease, one ``renew_leases`` call extends the leases of
every record the engine holds (ready, in an attempt, or waiting for its outcome's
write). Ids the store reports lost (the lease ended and another owner claimed the
record) are forgotten at once; an attempt already in flight finishes, its settle is
refused, and the record counts in ``eventyard_delivery_leases_lost``. The owner id is
unique per engine (host, process id, random suffix). :meth:`stop` gives back the leases
of records it did not attempt, so another process can take them at once.

**A bounded window.** The engine holds at most ``window`` records in memory (the
``delivery_window`` setting); the store holds the backlog. Each target has a *lane*
that knows whether the store may have claimable records of it, and when the next one
is due. Whenever a lane with records due in the store has at most half its share in
memory, the scheduler claims the next page of that target (earliest due lane first,
one claim per lane per pass). The share is the window divided by the lanes with work,
so a dead target's backlog never holds more than its share; when a target with no
records in memory needs room in a full window, ready records of the targets above
their share are given back to the store (a ``retry`` with their own due time and
attempt count, which releases the lease). A failed attempt's retry waits in the store,
not in memory: once the retry is written the record leaves memory, and the lane claims
it again when it is due.

A lane learns of work from three sources: the store's ``deliveries_ready`` hint (new
records, or records due again), the ``next_due`` of its last claim (the earliest due
time or lease end among the target's other records: a record whose owner died becomes
claimable when its lease ends, and the lane's timer wakes for it), and, at start and
every third renewal, the store's list of targets with pending records (so a missed hint
costs a delay, never a record).

Targets fail independently. Each lane has a FIFO of ready records and up to
``TargetSpec.concurrency`` worker tasks, which exist only while there is work, so a
dead or slow target holds only its own workers and its share of the window. Settles
from every lane are collected by one settle batcher (:mod:`.settler`) that writes each
batch in a single ``store.settle`` call: while one write is in flight the next batch
builds up, so the cost per record stays small under load. Metrics: :mod:`.metrics`.

Each attempt, and what comes of it (done, a retry after a backoff, the pace of a
failing target, a dead letter), is :class:`~eventyard.server.delivery.attempts.Attempts`'
business (:mod:`.attempts`), with the retry policy of :mod:`.retry` and the dead-letter
messages of :mod:`.dead_letters`; the lanes and the records in memory (jobs) are the
records of :mod:`.lanes`.

Due times and ages are computed with the store's clock (:meth:`Store.now`, by which
the store judges due times and leases), and the scheduler waits for the next due record
through a :class:`~eventyard.server.delivery.clock.Clock` (the wall clock unless another is
given), so tests that give both a clock they move by hand need not wait out backoffs,
ages and leases. Lease renewals run on the event loop's own timer: leases are the
store's business, and a hand-moved clock would only move them on in jumps.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import os
import random
import secrets
import socket
import weakref
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace
from typing import Final, Literal

import structlog

from eventyard.errors import DeliveryError
from eventyard.server.config import Settings
from eventyard.server.delivery.attempts import Attempts, DeliveryObserver
from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock
from eventyard.server.delivery.destinations import ApiDestinations
from eventyard.server.delivery.lanes import Job, Lane
from eventyard.server.delivery.metrics import BACKLOG, LEASES_LOST, WINDOW
from eventyard.server.delivery.outbound import OutboundPolicy, outbound_allow
from eventyard.server.delivery.retry import Jitter, RetryPolicy
from eventyard.server.delivery.settler import Settler
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import Target, TargetKind
from eventyard.server.delivery.targets.api_destination import ApiDestinationTarget
from eventyard.server.delivery.targets.bus import BusTarget
from eventyard.server.delivery.targets.http import HttpTarget
from eventyard.server.delivery.targets.queue import QueueTarget
from eventyard.server.journal import TraceJournal
from eventyard.server.store import Delivery, NewMessage, Store

__all__ = ["DeliveryEngine", "DeliveryObserver"]

_log = structlog.get_logger("eventyard.server.delivery")

# The running engines, whose stores' pending counts make the backlog gauge.
_RUNNING: Final[weakref.WeakSet[DeliveryEngine]] = weakref.WeakSet()


def _backlog() -> float:
    return float(sum(engine.backlog for engine in list(_RUNNING)))


BACKLOG.set_function(_backlog)

_DEFAULT_SETTINGS: Final = Settings()

# seconds before a lane whose claim failed (or found only records it holds) tries again
_CLAIM_RETRY = 1.0


def _owner_id() -> str:
    """A lease owner id unique to one engine: host, process and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


# -- the engine ----------------------------------------------------------------------


class DeliveryEngine:
    """Claims due delivery records from the store and delivers them to their targets.

    Args:
        store: the store holding the delivery records (and the queues).
        resolve: the current :class:`TargetSpec` of a target key, or None if the target
            was removed (its records are then dropped).
        forward_to_bus: ``await forward_to_bus(bus_arn, payload, rule_arn, account)`` puts an
            event on a bus for a rule; used by event-bus targets.
        queue_name_for_arn: the local queue an SQS ARN names, or None if it does not
            exist; used by queue targets and dead-letter queues.
        settings: the server settings; ``retry_base_delay`` and ``retry_max_delay``
            are the backoff's, ``delivery_window`` the window's and ``delivery_lease``
            the lease's, unless given here.
        base_delay: seconds before the first retry; each further retry doubles it.
        max_delay: the cap of the backoff, in seconds.
        jitter: ``"equal"`` waits between half and all of the backoff, ``"full"``
            between none and all of it, ``"none"`` exactly the backoff.
        window: the most delivery records held in memory at once; the others wait in
            the store until there is room.
        page_size: records claimed per store call at most.
        lease: seconds a claim or renewal leases records for (renewed every third).
        owner: this engine's lease owner id; unique per engine by default.
        settle_linger: seconds a batch of outcomes nobody waits for (done, retry,
            dead-letter) may wait for more to join before it is written. A crash in that
            window only means those records are delivered again (at least once).
        settle_grace: seconds :meth:`stop` allows the last settle write even when its
            own timeout is spent.
        user_agent: the webhooks' ``User-Agent``; ``eventyard/<version>`` by default.
        http_limit_per_host: connections per webhook host, 0 for no limit.
        clock: how the scheduler waits for a due time (the time itself is the store's,
            :meth:`Store.now`); the wall clock by default (tests pass one they advance
            by hand, and give the store the same).
        failing_after: retryable failures in a row after which a target is paced;
            ``target_failing_after`` of the settings unless given.
        failing_interval: the longest pause between two attempts of a failing target
            (0: no pacing); ``failing_target_interval`` of the settings unless given.
        rng: the random source of the jitter.
        api_destinations: resolves API destination targets (their connections and
            secrets); without it such targets are dead-lettered as unsupported.
        journal: where each attempt and dead letter is recorded for the trace
            (:mod:`eventyard.server.journal`); none by default.
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
        lease: float | None = None,
        owner: str | None = None,
        settle_grace: float = 5.0,
        settle_linger: float = 0.02,
        user_agent: str | None = None,
        http_limit_per_host: int = 0,
        clock: Clock = SYSTEM_CLOCK,
        failing_after: int | None = None,
        failing_interval: float | None = None,
        rng: random.Random | None = None,
        observer: DeliveryObserver | None = None,
        api_destinations: ApiDestinations | None = None,
        journal: TraceJournal | None = None,
    ) -> None:
        known = settings or _DEFAULT_SETTINGS
        self._retry = RetryPolicy.from_settings(
            known,
            base_delay=base_delay,
            max_delay=max_delay,
            jitter=jitter,
            failing_after=failing_after,
            failing_interval=failing_interval,
            rng=rng,
        )
        window = known.delivery_window if window is None else window
        lease = known.delivery_lease if lease is None else lease
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        if window < 1:
            raise ValueError("window must be >= 1")
        if not lease > 0:
            raise ValueError("lease must be > 0")
        self._store = store
        self._window = window
        self._page_size = page_size
        self._lease = lease
        self.owner = owner or _owner_id()
        self._settle_grace = settle_grace
        self._clock = clock
        # bound once: read on every admit, attempt and failure
        self._now = store.now
        self._settler = Settler(
            store,
            self.owner,
            forget=self._forget,
            retried=self._retried,
            lost=self._lost,
            linger=settle_linger,
        )
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
        self._lanes: dict[str, Lane] = {}
        # the records in memory (all leased to this engine); len() <= window at all times
        self._known: dict[int, Job] = {}
        self._peak = 0
        # failed attempts whose retry is being written: forgotten once it is
        self._retrying: dict[int, Job] = {}
        # records given back (forgotten already) whose release is being written: their
        # lane claims again once it is, as the store holds them back until then
        self._releasing: dict[int, tuple[Lane, float]] = {}
        # jobs that wait in memory (a retry the store refused, a crashed attempt)
        self._heap: list[tuple[float, int, Job]] = []
        # lanes whose records in the store are due now, and when the others' next one is
        self._due: dict[str, Lane] = {}
        self._timers: list[tuple[float, int, Lane]] = []
        self._seq = itertools.count()
        self._workers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # set when the engine stops: ends the waits of paced attempts
        self._stopping = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._settle_task: asyncio.Task[None] | None = None
        self._state: Literal["new", "running", "stopping", "stopped"] = "new"
        self._attempts = Attempts(
            resolve=resolve,
            targets=self._targets,
            queue_name_for_arn=queue_name_for_arn,
            settler=self._settler,
            policy=self._retry,
            clock=clock,
            now=self._now,
            stopping=self._stopping,
            running=self._running,
            fill=self._fill,
            retrying=self._retrying,
            observer=observer,
            # None when tracing is off: one test per attempt, no call
            journal=journal if journal is not None and journal.enabled else None,
        )

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
    def lease(self) -> float:
        """Seconds a claim or renewal leases records for."""
        return self._lease

    @property
    def backlog(self) -> int:
        """Records pending in the store (0 once the store is closed)."""
        try:
            return self._store.pending_count()
        except Exception:
            return 0

    def _running(self) -> bool:
        return self._state == "running"

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the engine: find the targets with pending records and claim a window.

        Only a window of the pending records is claimed; the rest is claimed as room
        frees up.

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
                self._note(self._lane(key), -math.inf)
            await self._pass()
        except BaseException:
            await self.stop(0)
            raise
        self._scheduler = asyncio.create_task(self._schedule(), name="eventyard-scheduler")
        self._renewer = asyncio.create_task(self._renew(), name="eventyard-lease-renewal")
        _RUNNING.add(self)
        _log.info(
            "delivery engine started",
            owner=self.owner,
            pending=self.backlog,
            targets=len(targets),
            in_memory=len(self._known),
            window=self._window,
            lease=self._lease,
        )

    def deliveries_ready(self, targets: Collection[str]) -> None:
        """Records of these targets were created or became due: claim them soon.

        The store's listener call (:meth:`StoreListener.deliveries_ready`), for records
        written by any process. A hint: a target without claimable records costs one
        claim. Never blocks; does nothing unless the engine runs.
        """
        if self._state != "running":
            return
        now = self._now()
        for key in targets:
            self._note(self._lane(key), now)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work and let attempts in flight finish for up to ``timeout`` s.

        Attempts still running then are cancelled. Settles of finished attempts are
        written, and the records held but not settled are given back to the store
        (claimable at once by another process); every record not settled stays pending
        for the next :meth:`start`. The webhook connection pool is closed. Idempotent.
        """
        if self._state in ("stopping", "stopped"):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        started = self._state == "running"
        self._state = "stopping"
        self._stopping.set()
        for task in (self._scheduler, self._renewer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._workers:
            _, unfinished = await asyncio.wait(
                set(self._workers), timeout=max(0.0, deadline - loop.time())
            )
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
        if self._settle_task is not None:
            for job in list(self._known.values()):
                if not self._settler.holds(job.delivery.id):
                    # a give-back, with the due time and attempts it should have now
                    self._settler.retry(job.delivery.id, job.delivery.due, job.delivery.attempts)
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
        for job in self._known.values():
            job.gone = True
        self._known.clear()
        self._retrying.clear()
        self._releasing.clear()
        self._lanes.clear()
        self._heap.clear()
        self._due.clear()
        self._timers.clear()
        _RUNNING.discard(self)
        self._state = "stopped"
        if started:
            _log.info("delivery engine stopped", left_in_memory=left)

    # -- leases ----------------------------------------------------------------------
    async def _renew(self) -> None:
        """Renew the leases of every record held, every third of the lease, in one call;
        every third renewal also looks for targets with records no hint announced."""
        for tick in itertools.count(1):
            await asyncio.sleep(self._lease / 3)
            ids = list(self._known)
            if ids:
                try:
                    lost = await self._store.renew_leases(self.owner, ids, self._lease)
                except Exception as exc:
                    _log.error("cannot renew delivery leases", records=len(ids), error=str(exc))
                else:
                    for delivery_id in lost:
                        self._lost(delivery_id)
            if tick % 3 == 0:
                await self._sweep()

    async def _sweep(self) -> None:
        try:
            targets = await self._store.pending_targets()
        except Exception as exc:
            _log.error("cannot list targets with pending deliveries", error=str(exc))
            return
        now = self._now()
        for key in targets:
            lane = self._lanes.get(key)
            if lane is None or not lane.disk:
                self._note(self._lane(key), now)

    def _lost(self, delivery_id: int) -> None:
        """The store says another owner holds the record now: forget it, write nothing."""
        self._releasing.pop(delivery_id, None)
        if delivery_id in self._known:
            LEASES_LOST.inc()
            _log.debug("delivery lease lost to another owner", delivery_id=delivery_id)
            self._forget(delivery_id)

    # -- the window ------------------------------------------------------------------
    def _lane(self, key: str) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(key)
        return lane

    def _cap(self) -> int:
        """Each target's fair share of the window: no claim takes a lane past it, and a
        lane above it gives ready records back when another lane needs room."""
        return max(1, self._window // max(1, len(self._lanes)))

    def _admit(self, lane: Lane, delivery: Delivery) -> None:
        """Take a claimed due record into memory and hand it to its lane."""
        job = Job(delivery, lane)
        self._known[delivery.id] = job
        lane.held += 1
        WINDOW.inc()
        held = len(self._known)
        self._peak = max(self._peak, held)
        lane.ready.append(job)
        self._fill(lane.key, lane)

    def _forget(self, delivery_id: int) -> None:
        """A record leaves memory (settled, given back, or its lease lost)."""
        job = self._known.pop(delivery_id, None)
        if job is None:
            return
        job.gone = True
        lane = job.lane
        self._retrying.pop(delivery_id, None)
        lane.held -= 1
        WINDOW.dec()
        if self._due:
            self._wake.set()  # room for a lane that waits for some
        self._drop_if_idle(lane)

    def _drop_if_idle(self, lane: Lane) -> None:
        if (
            lane.held == 0
            and not lane.disk
            and lane.workers == 0
            and not lane.ready
            and not lane.claiming
            and self._lanes.get(lane.key) is lane
        ):
            del self._lanes[lane.key]

    def _note(self, lane: Lane, due: float) -> None:
        """Note that the store may hold a claimable record of ``lane`` from ``due`` on."""
        if lane.claiming:
            lane.noted = min(lane.noted, due)  # applied when the claim is in
            return
        lane.disk = True
        if due <= lane.next_due:
            lane.next_due = due
            self._due_or_timer(lane)

    def _due_or_timer(self, lane: Lane) -> None:
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

    def _release(self, lane: Lane, delivery: Delivery) -> None:
        """Give a record back to the store unattempted (its own due time and attempts)."""
        self._releasing[delivery.id] = (lane, delivery.due)
        self._settler.retry(delivery.id, delivery.due, delivery.attempts)

    def _retried(self, delivery_id: int, written: bool) -> None:
        """A retry's write ended: the record now waits in the store, or (refused) here."""
        released = self._releasing.pop(delivery_id, None)
        if released is not None:
            if self._state == "running":
                lane, due = released
                # not written: the record is claimable once its lease ends
                self._note(lane, due if written else self._now() + self._lease)
            return
        job = self._retrying.pop(delivery_id, None)
        if job is None or job.gone:
            return
        if not written:
            job.stored = False
            self._push(job)
            return
        if self._state == "running":
            self._note(job.lane, job.delivery.due)
        self._forget(delivery_id)

    def _push(self, job: Job) -> None:
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
        """Dispatch what has come due, then claim records for the lanes that need some."""
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
        # Earliest due first, one claim per lane per pass: a target with a deep backlog
        # takes its share of the window and no more.
        for lane in sorted(self._due.values(), key=lambda lane: lane.next_due):
            if self._state != "running":
                return
            if self._lanes.get(lane.key) is not lane or not lane.disk:
                self._due.pop(lane.key, None)
                continue
            if lane.claiming:
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
                await self._claim(lane, min(want, room))

    def _evict(self, needed: int, cap: int) -> None:
        """Give ready records of targets above their share back to the store, newest
        first (a retry with their own due time and attempts releases their lease)."""
        for lane in sorted(self._lanes.values(), key=lambda lane: -lane.held):
            while needed > 0 and lane.held > cap and lane.ready and lane.ready[-1].stored:
                job = lane.ready.pop()
                if job.gone:
                    continue
                self._forget(job.delivery.id)
                self._release(lane, job.delivery)
                needed -= 1
            if needed <= 0 or lane.held <= cap:
                return

    async def _claim(self, lane: Lane, want: int) -> None:
        """Claim up to ``want`` due records of ``lane`` from the store into memory, a
        page (``page_size``) per store call."""
        self._due.pop(lane.key, None)
        lane.claiming = True
        lane.noted = math.inf
        admitted = 0
        next_due = math.inf
        try:
            while want > 0 and self._state == "running":
                limit = min(want, self._page_size)
                claim = await self._store.claim_deliveries(self.owner, lane.key, limit, self._lease)
                for delivery in claim.deliveries:
                    if delivery.id in self._known:
                        continue  # ours already: our lease had ended, the claim renewed it
                    if self._state != "running" or len(self._known) >= self._window:
                        # no room after all (the engine stops): give it back
                        self._release(lane, delivery)
                        continue
                    self._admit(lane, delivery)
                    admitted += 1
                    want -= 1
                next_due = math.inf if claim.next_due is None else claim.next_due
                if len(claim.deliveries) < limit or next_due > self._now():
                    break  # nothing more is due now
        except Exception as exc:
            _log.error("cannot claim pending deliveries", target=lane.key, error=str(exc))
            next_due = self._now() + _CLAIM_RETRY
        finally:
            lane.claiming = False
        if not admitted and next_due <= self._now():
            # a store that says "due now" but gave nothing new must not spin us
            next_due = self._now() + _CLAIM_RETRY
        next_due = min(next_due, lane.noted)
        lane.noted = math.inf
        lane.disk = next_due < math.inf
        lane.next_due = next_due
        if lane.disk:
            self._due_or_timer(lane)
        else:
            self._drop_if_idle(lane)

    def _dispatch(self, job: Job) -> None:
        if job.gone:
            return
        lane = job.lane
        lane.ready.append(job)
        self._fill(lane.key, lane)

    def _fill(self, key: str, lane: Lane) -> None:
        while lane.workers < lane.limit and lane.workers - lane.active < len(lane.ready):
            lane.workers += 1
            task = asyncio.create_task(self._work(key, lane))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self, key: str, lane: Lane) -> None:
        try:
            while lane.ready and self._state == "running" and lane.workers <= lane.limit:
                job = lane.ready.popleft()
                if job.gone:
                    continue  # its lease was lost meanwhile
                lane.active += 1
                try:
                    await self._attempts.attempt(key, lane, job)
                except Exception:
                    # A bug (ours or in resolve / queue_name_for_arn): keep the record
                    # and try it again later rather than lose it from memory.
                    _log.exception(
                        "delivery attempt crashed", delivery_id=job.delivery.id, target=key
                    )
                    job.delivery = replace(job.delivery, due=self._now() + self._retry.max_delay)
                    job.stored = False
                    self._push(job)
                finally:
                    lane.active -= 1
        finally:
            lane.workers -= 1
            if lane.workers == 0:
                self._drop_if_idle(lane)

    def dead_letter_unrenderable(
        self,
        spec: TargetSpec,
        event_id: str,
        event: bytes,
        error: DeliveryError,
        ingested: float,
    ) -> NewMessage | None:
        """The dead letter of a match whose input could not be rendered (too large,
        invalid JSON…), for the caller to store with the event; None without a DLQ.

        Such a match gets no delivery record: it can never succeed, so it is never
        attempted nor retried. Its dead letter carries the same attributes as any other
        (``RETRY_ATTEMPTS`` 0), and counts as dead-lettered or dropped. Its id is
        derived from the event, the target and ``ingested`` (the event's ingestion time).
        """
        return self._attempts.unrenderable(spec, event_id, event, error, ingested)
