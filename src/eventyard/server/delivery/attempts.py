"""One attempt of a delivery record, and its outcome: :class:`Attempts`.

A worker of the engine (:mod:`.engine`) hands each ready record to
:meth:`Attempts.attempt`, which reads the target's current :class:`TargetSpec` (a
removed target's records are dropped), sets the lane's concurrency from it (a new lane
starts at four attempts in flight and grows by one per success: slow start), waits for
the pace of a failing target, sends the record through its target kind, and settles
the outcome through the settle batcher (:mod:`.settler`): ``done`` once delivered,
``retry`` with a new due time after a retryable failure, ``dead`` with its dead-letter
message (:mod:`.dead_letters`) when it gives up. Every outcome is counted in the
metrics (:mod:`.metrics`), told to the :class:`DeliveryObserver` and recorded in the
trace journal.

A failed record waits out a backoff, and a failing target's attempts are paced, as
the engine's :class:`~eventyard.server.delivery.retry.RetryPolicy` says (:mod:`.retry`).
A record is dead-lettered when a failure is not retryable, after ``max_attempts``
retries, or when the next attempt would come ``max_age`` seconds or more after the
event was first seen (a record that waited in the store past its age is dead-lettered
before its attempt, with ``EVENT_EXPIRED`` unless this engine saw its last failure). A
destination's own rate limit defers a record without using up an attempt.

The engine owns the record in memory: a retry is handed back to it (its ``retrying``
map) until the store has it, and what an attempt changes in a lane's limit is acted on
through the engine's ``fill``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final, Protocol

import structlog

from eventyard.errors import DeliveryError
from eventyard.server.delivery.clock import Clock
from eventyard.server.delivery.dead_letters import dead_letter_message
from eventyard.server.delivery.lanes import Job, Lane
from eventyard.server.delivery.metrics import (
    ATTEMPT_SECONDS,
    ATTEMPTS,
    DEAD_LETTERED,
    DROPPED,
    PACED,
)
from eventyard.server.delivery.retry import RetryPolicy
from eventyard.server.delivery.settler import Settler
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import DeliveryDeferred, Target, TargetKind, target_kind
from eventyard.server.delivery.targets.api_destination import RATE_LIMITED
from eventyard.server.delivery.targets.queue import derived_message_id
from eventyard.server.journal import TraceJournal
from eventyard.server.store import NewMessage

__all__ = ["Attempts", "DeliveryObserver"]

_log = structlog.get_logger("eventyard.server.delivery")

# Children bound once: ``labels()`` takes a lock and a dict look-up on every call.
_KINDS: Final[tuple[TargetKind, ...]] = ("http", "queue", "bus", "api-destination")
_SECONDS = {kind: ATTEMPT_SECONDS.labels(kind) for kind in _KINDS}
_RESULTS = {
    (kind, result): ATTEMPTS.labels(kind, result)
    for kind in _KINDS
    for result in ("success", "retryable", "failed")
}

_START_LIMIT = 4


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


class Attempts:
    """Attempts records for one engine and settles their outcomes.

    Args:
        resolve: the current :class:`TargetSpec` of a target key, or None if the target
            was removed.
        targets: the target kinds the engine delivers to (the engine's own dict).
        queue_name_for_arn: the local queue an SQS ARN names, or None; for dead letters.
        settler: where outcomes are written.
        policy: the backoff and the pace of a failing target.
        clock: what a paced attempt waits on.
        now: the store's clock (:meth:`Store.now`).
        stopping: set when the engine stops; ends the waits of paced attempts.
        running: whether the engine still runs.
        fill: ``fill(key, lane)`` starts workers up to the lane's limit.
        retrying: the engine's failed records whose retry is being written, by id.
        observer: told of successes, failures and dead letters, if given.
        journal: where each attempt and dead letter is recorded, if tracing is on.
    """

    def __init__(
        self,
        *,
        resolve: Callable[[str], TargetSpec | None],
        targets: dict[TargetKind, Target],
        queue_name_for_arn: Callable[[str], str | None],
        settler: Settler,
        policy: RetryPolicy,
        clock: Clock,
        now: Callable[[], float],
        stopping: asyncio.Event,
        running: Callable[[], bool],
        fill: Callable[[str, Lane], None],
        retrying: dict[int, Job],
        observer: DeliveryObserver | None,
        journal: TraceJournal | None,
    ) -> None:
        self._resolve = resolve
        self._targets = targets
        self._queue_name_for_arn = queue_name_for_arn
        self._settler = settler
        self._policy = policy
        self._clock = clock
        self._now = now
        self._stopping = stopping
        self._running = running
        self._fill = fill
        self._retrying = retrying
        self._observer = observer
        self._journal = journal

    async def attempt(self, key: str, lane: Lane, job: Job) -> None:
        """Attempt ``job`` (a record of ``lane``, target ``key``) and settle its outcome."""
        ready = self._sendable(key, lane, job)
        if ready is None:
            return
        if self._policy.paces(lane.streak):
            if not await self._paced(lane, job):
                return
            # the wait may have been long: the target may be gone or changed, and the
            # record past its age, by now
            ready = self._sendable(key, lane, job)
            if ready is None:
                return
        spec, kind, target = ready
        delivery = job.delivery
        started = time.perf_counter()
        try:
            made = await target.send(spec, delivery)
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
            if self._journal is not None:
                self._journal.attempt(
                    delivery.event_id, key, delivery.attempts + 1, "delivered", made=made
                )
            if not target.settles:
                self._settler.done(delivery.id)
            lane.streak = 0
            lane.next_attempt = 0.0
            if lane.limit < lane.ceiling:
                lane.limit += 1
                self._fill(key, lane)
            return
        _SECONDS[kind].observe(time.perf_counter() - started)
        if error.retryable:
            lane.limit = max(1, lane.limit // 2)
            if not (isinstance(error, DeliveryDeferred) and error.error_code == RATE_LIMITED):
                lane.streak += 1
        self._failed(spec, job, error, kind)

    def _sendable(
        self, key: str, lane: Lane, job: Job
    ) -> tuple[TargetSpec, TargetKind, Target] | None:
        """The target to send ``job`` to now, or None if the record was settled instead
        (its target removed, its age passed, its target of a kind this engine cannot
        deliver to)."""
        delivery = job.delivery
        spec = self._resolve(key)
        if spec is None:
            _log.info(
                "delivery dropped: target removed",
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                target=key,
            )
            if self._journal is not None:
                self._journal.dead_letter(
                    delivery.event_id, key, queue=None, message_id=None, reason="TARGET_REMOVED"
                )
            self._settler.dead(delivery.id, None)
            return None
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
            return None
        kind = target_kind(spec.arn)
        if kind is None:
            job.error_code = "UNSUPPORTED_TARGET"
            job.error_message = f"eventyard cannot deliver to {spec.arn}"
            self._dead_letter(spec, job, None, delivery.attempts)
            return None
        target = self._targets.get(kind)
        if target is None:
            job.error_code = "UNSUPPORTED_TARGET"
            job.error_message = f"this engine cannot deliver to {spec.arn}"
            self._dead_letter(spec, job, None, delivery.attempts)
            return None
        return spec, kind, target

    async def _paced(self, lane: Lane, job: Job) -> bool:
        """Wait for the failing lane's next attempt time, and book the one after it.

        False if the job must not be attempted now: its lease was lost meanwhile, or
        the engine is stopping (:meth:`DeliveryEngine.stop
        <eventyard.server.delivery.engine.DeliveryEngine.stop>` gives it back to the store,
        unattempted).
        """
        pause = self._policy.pause(lane.streak)
        now = self._now()
        # never further ahead than the lane's workers can have booked (a clock stepped
        # back would otherwise hold the lane for the step)
        slot = min(max(now, lane.next_attempt), now + pause * max(1, lane.workers))
        booked = lane.next_attempt = slot + pause
        if slot > now:
            PACED.inc()
            await self._clock.wait_until(slot, self._stopping)
        if job.gone or not self._running():
            if lane.next_attempt == booked:
                lane.next_attempt = slot  # unused: the next attempt may take it
            return False
        return True

    def _failed(self, spec: TargetSpec, job: Job, error: DeliveryError, kind: TargetKind) -> None:
        delivery = job.delivery
        job.error_code = error.error_code
        job.error_message = error.message
        if self._observer is not None:
            self._observer.attempt_failed(spec, error.error_code, error.message)
        # The attempts made before this one are the retries made so far, this one included.
        retries = delivery.attempts
        if isinstance(error, DeliveryDeferred) and error.error_code == RATE_LIMITED:
            # held back by the destination's own rate limit: no call was made, so it is
            # no attempt and uses up no retry (EventBridge queues such events too)
            self._journal_failure(spec, job, error, "deferred")
            self._postpone(spec, job, error.retry_after)
            return
        if not error.retryable:
            _RESULTS[kind, "failed"].inc()
            self._journal_failure(spec, job, error, "dead")
            self._dead_letter(spec, job, None, retries)
            return
        _RESULTS[kind, "retryable"].inc()
        if retries >= spec.max_attempts:
            self._journal_failure(spec, job, error, "dead")
            self._dead_letter(spec, job, "MaximumRetryAttempts", retries)
            return
        attempt = delivery.attempts + 1
        delay = self._policy.backoff(attempt)
        if isinstance(error, DeliveryDeferred):
            delay = max(delay, error.retry_after)
        due = self._now() + delay
        if due - delivery.first_seen >= spec.max_age:
            self._journal_failure(spec, job, error, "dead")
            self._dead_letter(spec, job, "MaximumEventAgeInSeconds", retries)
            return
        self._journal_failure(spec, job, error, "retry", due)
        job.delivery = replace(delivery, due=due, attempts=attempt)
        # the record waits for its due time in the store, not here: forgotten once the
        # retry is written (the engine's _retried), claimed again when it is due
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

    def _journal_failure(
        self,
        spec: TargetSpec,
        job: Job,
        error: DeliveryError,
        outcome: str,
        retry_at: float | None = None,
    ) -> None:
        """Record a failed attempt of ``job`` and what comes of it."""
        if self._journal is None:
            return
        delivery = job.delivery
        self._journal.attempt(
            delivery.event_id,
            spec.key,
            delivery.attempts + 1,
            outcome,
            status=error.status,
            error_code=error.error_code,
            error=error.message,
            made=None if retry_at is None else {"retry_at": retry_at},
        )

    def _postpone(self, spec: TargetSpec, job: Job, wait: float) -> None:
        """Put ``job`` back, due in ``wait`` seconds, with its attempts unchanged."""
        delivery = job.delivery
        due = self._now() + wait
        if due - delivery.first_seen >= spec.max_age:
            self._dead_letter(spec, job, "MaximumEventAgeInSeconds", delivery.attempts)
            return
        job.delivery = replace(delivery, due=due)
        self._retrying[delivery.id] = job
        self._settler.retry(delivery.id, due, delivery.attempts)

    def _dead_letter(self, spec: TargetSpec, job: Job, exhausted: str | None, retries: int) -> None:
        """Settle ``job`` as dead, with its dead letter if ``spec`` has a DLQ."""
        delivery = job.delivery
        message = dead_letter_message(
            spec,
            self._queue_name_for_arn,
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            event=delivery.event,
            error_code=job.error_code,
            error_message=job.error_message,
            retries=retries,
            exhausted=exhausted,
            message_id=derived_message_id(
                delivery.event_id, spec.key, delivery.id, delivery.first_seen, "dead"
            ),
        )
        if message is not None and self._observer is not None:
            self._observer.dead_lettered(spec, job.error_code)
        if self._journal is not None:
            self._journal.dead_letter(
                delivery.event_id,
                spec.key,
                queue=None if message is None else message.queue,
                message_id=None if message is None else message.message_id,
                reason=job.error_code,
                error=job.error_message,
                exhausted=exhausted,
            )
        self._settler.dead(delivery.id, message)

    def unrenderable(
        self,
        spec: TargetSpec,
        event_id: str,
        event: bytes,
        error: DeliveryError,
        ingested: float,
    ) -> NewMessage | None:
        """The dead letter of a match whose input could not be rendered, or None
        (:meth:`~eventyard.server.delivery.engine.DeliveryEngine.dead_letter_unrenderable`)."""
        message = dead_letter_message(
            spec,
            self._queue_name_for_arn,
            delivery_id=None,
            event_id=event_id,
            event=event,
            error_code=error.error_code,
            error_message=error.message,
            retries=0,
            exhausted=None,
            message_id=derived_message_id(event_id, spec.key, ingested, "dead"),
        )
        (DROPPED if message is None else DEAD_LETTERED).inc()
        if message is not None and self._observer is not None:
            self._observer.dead_lettered(spec, error.error_code)
        if self._journal is not None:
            self._journal.dead_letter(
                event_id,
                spec.key,
                queue=None if message is None else message.queue,
                message_id=None if message is None else message.message_id,
                reason=error.error_code,
                error=error.message,
            )
        return message
