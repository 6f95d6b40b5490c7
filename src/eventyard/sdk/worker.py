"""The worker runtime: what runs a :class:`~eventyard.sdk.consumer.Consumer`'s handlers.

:meth:`Consumer.run <eventyard.sdk.consumer.Consumer.run>` hands its consumer to a
:class:`Worker`, which long-polls each handler's queue in lanes of receives, bounds the
handler calls in flight by ``concurrency`` slots, settles each event by its
:class:`~eventyard.sdk.handler.Outcome` as :mod:`eventyard.sdk.settle` decides
(acknowledgements go up to ten per DeleteMessageBatch request, retries are timed here or
become the message's visibility timeout, the last failed attempt moves the message to
the dead-letter queue), keeps the leases of held messages alive, and stops gracefully
when asked. ``eventyard worker module:consumer`` runs one through
:func:`eventyard.sdk.consumer.run_worker`.

This module imports no consumer (it runs a :class:`Runnable`): the consumer imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from eventyard.errors import EventyardError
from eventyard.sdk.handler import MAX_VISIBILITY, Handler, Outcome
from eventyard.sdk.settle import settle

if TYPE_CHECKING:
    from eventyard.sdk.client import AsyncClient, Message

__all__ = ["Clock", "Runnable", "SystemClock", "Worker"]

_MAX_BATCH = 10
_MAX_REASON = 4096
#: Seconds an acknowledgement waits for others of its queue to share a DeleteMessageBatch.
_ACK_LINGER = 0.01
#: DeleteMessageBatch requests in flight per queue.
_ACK_REQUESTS = 2

# The worker logs under the consumer's logger name, as it did before the split.
_log = structlog.get_logger("eventyard.sdk.consumer")


@dataclass(slots=True, eq=False)
class _Lease:
    """A received message the worker holds: its visibility is extended until settled."""

    handler: Handler
    message: Message
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    settled: bool = False


@dataclass(slots=True, eq=False)
class _Backlog:
    """Whether a queue's last receive came back full: more receives may then run at once."""

    full: bool = False


class _Acks:
    """Acknowledgements on their way out, deleted up to 10 per DeleteMessageBatch request.

    An acknowledged lease waits at most ``linger`` seconds for others of its queue to
    share its request; ten waiting go at once. At most ``_ACK_REQUESTS`` requests per
    queue are in flight (a few connections serve a busy worker); what waits meanwhile
    goes when one returns. Until its request is sent a lease is still held, so the
    lease keeper goes on extending it. A delete that fails is logged and the message
    comes back after its visibility timeout: delivered at least once, never lost.
    """

    def __init__(self, client: AsyncClient, leases: set[_Lease], linger: float) -> None:
        self.client = client
        self.leases = leases
        self.linger = linger
        self.waiting: dict[str, list[_Lease]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.due: set[str] = set()  # queues whose waiting acks have lingered enough
        self.requests: dict[str, int] = {}  # requests in flight per queue
        self.sending: set[asyncio.Task[None]] = set()
        self.draining = False

    def add(self, lease: _Lease) -> None:
        """Delete the lease's message with the next batch of its queue."""
        queue = lease.handler.queue
        batch = self.waiting.setdefault(queue, [])
        batch.append(lease)
        if len(batch) >= _MAX_BATCH:
            self._send(queue)
        elif queue not in self.timers and queue not in self.due:
            loop = asyncio.get_running_loop()
            self.timers[queue] = loop.call_later(self.linger, self._lingered, queue)

    def _lingered(self, queue: str) -> None:
        self.timers.pop(queue, None)
        self.due.add(queue)
        self._send(queue)

    def _send(self, queue: str) -> None:
        """Start requests for the queue's waiting acks, as far as the cap allows."""
        while self.requests.get(queue, 0) < _ACK_REQUESTS:
            batch = self.waiting.get(queue)
            if not batch or not (len(batch) >= _MAX_BATCH or queue in self.due or self.draining):
                return
            taken = batch[:_MAX_BATCH]
            del batch[:_MAX_BATCH]
            if not batch:
                del self.waiting[queue]
                self.due.discard(queue)
                timer = self.timers.pop(queue, None)
                if timer is not None:
                    timer.cancel()
            for lease in taken:
                # No lease lock: an extension racing the delete does no harm, whichever
                # reaches the server first.
                lease.settled = True
                self.leases.discard(lease)
            self.requests[queue] = self.requests.get(queue, 0) + 1
            task = asyncio.create_task(self._delete(queue, taken), name=f"ack {queue}")
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    async def _delete(self, queue: str, batch: list[_Lease]) -> None:
        receipts = [lease.message.receipt for lease in batch]
        try:
            failed = set(await self.client.delete_messages(queue, receipts))
            error = "the server refused the receipt"
        except EventyardError as exc:
            failed, error = set(receipts), str(exc)
        finally:
            self.requests[queue] -= 1
        if failed:
            _log.error(
                "acknowledging failed: the messages come back after their visibility timeout",
                queue=queue,
                message_ids=[
                    lease.message.id for lease in batch if lease.message.receipt in failed
                ],
                error=error,
            )
        self._send(queue)  # what waited for this request

    async def drain(self) -> None:
        """Send every waiting acknowledgement now; return when all requests are done."""
        self.draining = True
        for queue in list(self.waiting):
            self._send(queue)
        while self.sending:
            await asyncio.gather(*self.sending, return_exceptions=True)

    async def abort(self) -> None:
        """Send nothing more, and cancel the requests in flight."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.waiting.clear()
        sending = list(self.sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)


class Clock(Protocol):
    """Where the worker reads the time and waits: retry timers, lease extension and the
    pause after a failed receive. Tests pass a clock they advance by hand."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed."""
        await asyncio.sleep(seconds)


class Runnable(Protocol):
    """What a worker runs: a :class:`~eventyard.sdk.consumer.Consumer` (this module does
    not import it, since the consumer's ``run`` starts a worker)."""

    @property
    def name(self) -> str:
        """Names the consumer in logs."""
        ...

    @property
    def bus(self) -> str:
        """The bus the events come from."""
        ...

    @property
    def handlers(self) -> tuple[Handler, ...]:
        """The handlers, each with its own queue."""
        ...

    @property
    def poll_wait(self) -> int:
        """Seconds one receive waits for events."""
        ...

    @property
    def visibility_timeout(self) -> int:
        """Seconds a received event stays hidden (extended while held)."""
        ...

    def backoff(self, attempt: int) -> float:
        """Seconds before retrying after failed attempt ``attempt``."""
        ...


class Worker:
    """One run of a consumer: pollers, handler tasks, batched acks, lease keeping, stop.

    ``concurrency`` slots bound the handler calls; a handler's slot is free again once
    its outcome is known (an acknowledgement then waits in :class:`_Acks` without
    holding a slot). Each queue has lanes of receives. Lane 0 always polls: it asks for
    as many messages as slots are free but reserves none, since its long poll on an
    idle queue must not keep slots from the other handlers' queues; what it brings
    beyond the free slots waits in the worker for one (held and extended meanwhile).
    The other lanes run only while the queue's receives come back full (a backlog,
    so their receives return at once) and reserve a slot for each message they ask
    for, so that they never bring more than there are slots.
    """

    def __init__(
        self,
        consumer: Runnable,
        client: AsyncClient,
        concurrency: int,
        clock: Clock | None = None,
    ) -> None:
        self.consumer = consumer
        self.clock: Clock = clock or SystemClock()
        self.client = client
        self.concurrency = concurrency
        self.free = concurrency  # slots neither running a handler nor reserved by a receive
        self.slots = asyncio.Condition()
        self.batch = min(_MAX_BATCH, concurrency)  # what a poller's extra lanes wait for
        self.stopping = asyncio.Event()
        # set once no receive is in flight any more (the pollers have returned after a stop)
        self.polled = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.leases: set[_Lease] = set()
        self.acks = _Acks(client, self.leases, _ACK_LINGER)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        # Lane 0 of a queue always polls; the others join while its receives come back
        # full, so a backlog is fetched by several receives at once and an idle queue
        # costs one long poll at a time.
        lanes = max(1, math.ceil(self.concurrency / _MAX_BATCH))
        pollers = []
        for handler in self.consumer.handlers:
            backlog = _Backlog()
            pollers += [
                asyncio.create_task(
                    self._poll(handler, backlog, lane), name=f"poll {handler.queue}"
                )
                for lane in range(lanes)
            ]
        keeper = asyncio.create_task(self._keep_leases(), name="keep leases")
        stopped = asyncio.create_task(stop.wait())
        _log.info(
            "worker started",
            consumer=self.consumer.name,
            queues=[h.queue for h in self.consumer.handlers],
        )
        try:
            await asyncio.wait([stopped, *pollers], return_when=asyncio.FIRST_COMPLETED)
            async with self.slots:
                self.stopping.set()
                self.slots.notify_all()
            _log.info(
                "worker stopping",
                running=len(self.tasks),
                poll_wait=self.consumer.poll_wait,
                hint="stop again to quit at once",
            )
            # Receives in flight are not cut short: a cancelled long poll would go on
            # in the server and hide what it takes until the visibility timeout ends.
            await asyncio.gather(*pollers, return_exceptions=True)
            self.polled.set()
            while self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.acks.drain()  # the lease keeper still runs: waiting acks stay held
        except asyncio.CancelledError:
            # cancelled: quit at once; unsettled events reappear after their visibility
            pending = [*pollers, *self.tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.acks.abort()
            raise
        finally:
            stopped.cancel()
            keeper.cancel()
            await asyncio.gather(stopped, keeper, return_exceptions=True)
        _log.info("worker stopped", consumer=self.consumer.name)
        for poller in pollers:
            if not poller.cancelled() and poller.exception() is not None:
                raise typing.cast(BaseException, poller.exception())

    async def _poll(self, handler: Handler, backlog: _Backlog, lane: int) -> None:
        """Receive from the handler's queue as slots allow, until the worker stops."""
        failures = 0

        def may_receive() -> bool:
            if lane == 0:
                return self.free > 0
            return backlog.full and self.free >= self.batch

        while True:
            async with self.slots:
                await self.slots.wait_for(lambda: self.stopping.is_set() or may_receive())
                if self.stopping.is_set():
                    return
                wanted = min(_MAX_BATCH, self.free)
                reserved = wanted if lane else 0
                self.free -= reserved
            try:
                messages = await self.client.receive_messages(
                    handler.queue,
                    max_messages=wanted,
                    wait=self.consumer.poll_wait,
                    visibility_timeout=self.consumer.visibility_timeout,
                )
            except EventyardError as exc:
                async with self.slots:
                    backlog.full = False
                    self._free(reserved)
                failures += 1
                pause = min(2.0**failures, 30.0)
                _log.warning("receive failed", queue=handler.queue, error=str(exc), retry_in=pause)
                await self._pause(pause)
                continue
            failures = 0
            async with self.slots:
                full = len(messages) == wanted
                if full and not backlog.full:
                    self.slots.notify_all()  # the other lanes may join
                backlog.full = full
                self._free(max(reserved - len(messages), 0))
            # Every received message gets its attempt, even after a stop began: a
            # receive counts towards max_attempts, so giving it back unhandled would
            # spend an attempt for nothing.
            for n, message in enumerate(messages):
                lease = _Lease(handler, message)
                self.leases.add(lease)
                started = n < reserved or self.free > 0
                if n >= reserved and started:
                    self.free -= 1  # taken now, so the next receive asks for no more than is left
                self._spawn(self._process(lease, started))

    async def _process(self, lease: _Lease, started: bool) -> None:
        """Handle a message in its slot (waiting for one unless ``started``), then free it."""
        if not started:
            async with self.slots:
                await self.slots.wait_for(lambda: self.free > 0)
                self.free -= 1
        try:
            await self._handle(lease)
        finally:
            async with self.slots:
                self._free(1)

    def _free(self, count: int) -> None:
        """Give back ``count`` slots (``slots`` held), waking the pollers only if that
        lets one receive: waking every lane for each finished handler costs more CPU
        than the handler."""
        before = self.free
        self.free += count
        if before < 1 <= self.free or before < self.batch <= self.free:
            self.slots.notify_all()

    async def _handle(self, lease: _Lease) -> None:
        handler, message = lease.handler, lease.message
        attempt = message.receive_count
        event_id: str | None = None
        try:
            event = dataclasses.replace(message.event(), bus=self.consumer.bus)
        except EventyardError as exc:
            outcome = Outcome("invalid", f"not an event: {exc}")
        else:
            event_id = event.id
            outcome = await handler.attempt(event)
        context = {
            "handler": handler.name,
            "event_id": event_id,
            "message_id": message.id,
            "attempt": attempt,
        }
        verdict = settle(
            outcome,
            attempt=attempt,
            max_attempts=handler.max_attempts,
            backoff=self.consumer.backoff,
            is_event=event_id is not None,
        )
        if verdict.action == "ack":
            self.acks.add(lease)
            _log.debug("acknowledged", **context)
        elif verdict.action == "drop":
            self.acks.add(lease)
            _log.info("dropped", reason=outcome.reason, **context)
        elif verdict.action == "dead-letter":
            code = verdict.code
            await self._settle_lease(lease, lambda: self._dead_letter(lease, code, outcome.reason))
            _log.warning(
                "dead-lettered",
                reason=outcome.reason,
                dlq=handler.dead_letter_queue,
                exc_info=outcome.error,
                **context,
            )
        else:
            delay = verdict.delay
            if outcome.kind == "retry":
                _log.info("retry requested", delay=delay, reason=outcome.reason, **context)
            else:
                _log.warning(
                    "handler failed",
                    retry_in=delay,
                    error=outcome.reason,
                    exc_info=outcome.error,
                    **context,
                )
            if delay < self.consumer.poll_wait:
                # Timed here, not by the queue: a long poll already waiting would not
                # see the earlier visibility until it ends, and this way fractions of a
                # second count. The lease is kept (and extended) until then.
                self._spawn(self._retry_later(lease, delay))
            else:
                await self._settle_lease(lease, lambda: self._release(lease, delay))

    async def _settle_lease(self, lease: _Lease, settle: Callable[[], Awaitable[None]]) -> None:
        """Run ``settle`` for a held message; it is no longer kept alive afterwards."""
        async with lease.lock:
            lease.settled = True
            self.leases.discard(lease)
            try:
                await settle()
            except EventyardError as exc:
                # the message reappears when its visibility ends: retried, never lost
                _log.error("settling failed", message_id=lease.message.id, error=str(exc))

    async def _release(self, lease: _Lease, delay: float) -> None:
        """Make the message visible again after ``delay`` seconds (whole seconds)."""
        timeout = min(math.ceil(delay), MAX_VISIBILITY)
        await self.client.change_visibility(lease.handler.queue, lease.message.receipt, timeout)

    async def _dead_letter(self, lease: _Lease, code: str, reason: str) -> None:
        handler, message = lease.handler, lease.message
        attributes = {
            "ERROR_CODE": code,
            "ERROR_MESSAGE": reason[:_MAX_REASON] or code,
            "HANDLER": handler.name,
            "ATTEMPTS": str(message.receive_count),
        }
        await self.client.send_message(
            handler.dead_letter_queue, message.body, attributes=attributes
        )
        await self.client.delete_message(handler.queue, message.receipt)

    async def _retry_later(self, lease: _Lease, delay: float) -> None:
        """Release the message when its retry is due, or at once on stop (keeping the rest
        of its delay as its visibility, so the next worker honours it)."""
        due = self.clock.now() + delay
        await self._pause(delay)
        if self.stopping.is_set():
            # A receive still in flight would take the message back the moment it is
            # released, and this stopping worker would handle it again: release it once
            # the pollers are done (the lease is kept and extended until then).
            await self.polled.wait()
        await self._settle_lease(
            lease, lambda: self._release(lease, max(due - self.clock.now(), 0))
        )

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` on the clock, or less if the worker stops meanwhile."""
        if self.stopping.is_set():
            return
        slept = asyncio.ensure_future(self.clock.sleep(seconds))
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((slept, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            slept.cancel()
            stopped.cancel()
            await asyncio.gather(slept, stopped, return_exceptions=True)

    async def _keep_leases(self) -> None:
        """Extend held messages' visibility so that slow handlers keep their events."""
        timeout = self.consumer.visibility_timeout
        period = max(timeout / 3, 1.0)
        while True:
            await self.clock.sleep(period)
            by_queue: dict[str, list[_Lease]] = {}
            for lease in self.leases:
                by_queue.setdefault(lease.handler.queue, []).append(lease)
            await asyncio.gather(
                *(self._extend(queue, leases, timeout) for queue, leases in by_queue.items())
            )

    async def _extend(self, queue: str, leases: list[_Lease], timeout: int) -> None:
        """Extend the leases of one queue, 10 per ChangeMessageVisibilityBatch request.

        The leases' locks are held meanwhile, so no lease is released while its
        extension is in flight (a late extension would undo the release's visibility);
        a lease whose lock is taken is being settled and is skipped.
        """
        async with contextlib.AsyncExitStack() as stack:
            held: list[_Lease] = []
            for lease in leases:
                if lease.settled or lease.lock.locked():
                    continue
                await stack.enter_async_context(lease.lock)
                if not lease.settled:
                    held.append(lease)
            if not held:
                return
            receipts = [lease.message.receipt for lease in held]
            try:
                failed = set(await self.client.change_visibility_batch(queue, receipts, timeout))
            except EventyardError as exc:
                _log.debug("lease extension failed", queue=queue, error=str(exc))
                return
            if failed:
                _log.debug(
                    "lease extension failed",
                    queue=queue,
                    message_ids=[
                        lease.message.id for lease in held if lease.message.receipt in failed
                    ],
                )
