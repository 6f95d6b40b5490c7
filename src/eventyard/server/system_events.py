"""eventyard's own events: state changes of its resources, on each account's system bus.

Every account has a system bus, ``eventyard``, where eventyard puts events about that
account's resources, AWS-style (``source`` ``eventyard``, the resource's ARN in
``resources``, the facts in ``detail``). Users react to them with ordinary rules: "a
dead-letter queue received messages → an API destination of a chat webhook" is a rule
on the system bus. The detail types:

``Resource State Change``
    a bus, rule, target or queue was ``CREATED``, ``UPDATED`` or ``DELETED`` through the
    API; emitted by the process that served the call (``resource-type``, ``name``,
    ``change``).
``Target State Change``
    a target started failing (``FAILING``: ``target_failing_after`` attempts in a row
    failed) or recovered (``HEALTHY``: an attempt succeeded after it failed), with the
    last error.
``Dead-Letter Queue Messages``
    a dead-letter queue received messages: the first at once, later ones counted and
    told at most once per ``dlq_event_interval`` per queue (so an alert on them cannot
    flood, even if its own deliveries fail into the same queue).
``Queue Threshold Crossed``
    a queue tagged ``eventyard:alarm-depth`` (visible messages) or
    ``eventyard:alarm-age`` (seconds, the age of its oldest message) went over its
    threshold (``ALARM``) or back under it (``OK``), checked every ``monitor_interval``.
``Scheduled Rule Fired Late``
    a scheduled rule fired ``schedule_late_after`` seconds or more after its tick (a
    process was down or overloaded), with the ticks it skipped.

State transitions (target health, queue alarms) are claimed in the catalog (kind
``monitor``) in the same transaction as their event, like the scheduler's ticks: among
several processes sharing a store, exactly one tells each transition. The system bus is
created for the home account at start-up; another account creates it (CreateEventBus
``eventyard``) to receive its events: until then they are not kept, as no rule could
match them.
Emitting never raises: a failure is logged and counted, and the operation that caused
the event goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
from prometheus_client import Counter

from eventyard.errors import ConcurrentModification
from eventyard.server.config import Settings
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.store import CatalogClaim, Store

__all__ = [
    "DLQ_MESSAGES",
    "MONITOR",
    "QUEUE_THRESHOLD",
    "RESOURCE_CHANGE",
    "SCHEDULE_LATE",
    "SOURCE",
    "SYSTEM_BUS",
    "TARGET_CHANGE",
    "Emitter",
    "SystemEvents",
]

log = structlog.get_logger("eventyard.server.system_events")

SYSTEM_BUS: Final = "eventyard"
SOURCE: Final = "eventyard"
RESOURCE_CHANGE: Final = "Resource State Change"
TARGET_CHANGE: Final = "Target State Change"
DLQ_MESSAGES: Final = "Dead-Letter Queue Messages"
QUEUE_THRESHOLD: Final = "Queue Threshold Crossed"
SCHEDULE_LATE: Final = "Scheduled Rule Fired Late"
#: the catalog kind holding the last told state of each monitored thing
MONITOR: Final = "monitor"
DEPTH_TAG: Final = "eventyard:alarm-depth"
AGE_TAG: Final = "eventyard:alarm-age"

EMITTED = Counter(
    "eventyard_system_events",
    "eventyard's own events put on the system buses, by detail type and result.",
    ["detail_type", "result"],
)


class Emitter(Protocol):
    """What the system events need from the router."""

    async def emit_system(
        self,
        account: str,
        detail_type: str,
        resources: list[str],
        detail: dict[str, Any],
        claim: CatalogClaim | None = None,
    ) -> None:
        """Put one event on ``account``'s system bus (with ``claim`` in its transaction).

        Raises:
            ConcurrentModification: the claim's expectation failed; nothing was written.
            StoreError: the store failed; nothing was written.
        """


@dataclass(slots=True)
class _Health:
    failures: int = 0
    failing: bool = False
    last_error: tuple[str | None, str | None] = (None, None)


@dataclass(slots=True)
class _DeadLetters:
    last_told: float = 0.0
    untold: int = 0
    flush: asyncio.TimerHandle | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    account: str = ""
    resources: list[str] = field(default_factory=list)


class SystemEvents:
    """Tells eventyard's own state changes on the system buses (see the module docstring).

    Args:
        emitter: the router.
        store: for the catalog claims of transitions and the queue monitor.
        settings: ``target_failing_after``, ``dlq_event_interval``, ``monitor_interval``,
            ``schedule_late_after``, the region and the home account.
    """

    def __init__(self, emitter: Emitter, store: Store, settings: Settings) -> None:
        self._emitter = emitter
        self._store = store
        self._settings = settings
        self._health: dict[str, _Health] = {}
        self._dead: dict[str, _DeadLetters] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the queue monitor. Call from the event loop."""
        self._running = True
        self._monitor = asyncio.create_task(self._watch_queues(), name="eventyard-monitor")

    async def stop(self) -> None:
        """Stop the monitor; let events being written finish (for up to 5 s)."""
        self._running = False
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for state in self._dead.values():
            if state.flush is not None:
                state.flush.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if not self._running:
            work.close()
            return
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(
        self,
        account: str,
        detail_type: str,
        resources: list[str],
        detail: dict[str, Any],
        claim: CatalogClaim | None = None,
    ) -> bool:
        """Emit; True if written. Never raises (but for a lost claim, which is False)."""
        try:
            await self._emitter.emit_system(account, detail_type, resources, detail, claim)
        except ConcurrentModification:
            return False
        except Exception as exc:
            EMITTED.labels(detail_type, "failed").inc()
            log.error("cannot put a system event", detail_type=detail_type, error=str(exc))
            return False
        EMITTED.labels(detail_type, "emitted").inc()
        return True

    async def _transition(
        self,
        key: str,
        state: str,
        normal: str,
        event: tuple[str, str, list[str]],
        detail: dict[str, Any],
    ) -> bool:
        """Tell ``key``'s move to ``state`` unless it is already told (by any process).

        ``normal`` is the state of a key never told; ``event`` is ``(account, detail
        type, resources)``.
        """
        account, detail_type, resources = event
        for _ in range(3):
            entry = await self._store.catalog_get(MONITOR, key)
            previous = normal if entry is None else str(entry.doc.get("state"))
            if previous == state:
                return False
            claim = CatalogClaim(
                MONITOR,
                key,
                {"state": state, "since": time.time()},
                expect_revision=0 if entry is None else entry.revision,
            )
            told = {**detail, "previous-state": previous}
            if await self._emit(account, detail_type, resources, told, claim):
                return True
        return False

    # -- resources ---------------------------------------------------------------------
    def resource_changed(
        self, account: str, resource_type: str, name: str, arn: str, change: str, **more: Any
    ) -> None:
        """A bus, rule, target or queue was created, updated or deleted through the API."""
        detail = {"resource-type": resource_type, "name": name, "change": change, **more}
        self._spawn(self._quietly(self._emit(account, RESOURCE_CHANGE, [arn], detail)))

    @staticmethod
    async def _quietly(work: Awaitable[bool]) -> None:
        await work

    # -- deliveries (the engine calls these) -------------------------------------------
    def attempt_succeeded(self, spec: TargetSpec) -> None:
        """An attempt to deliver to ``spec`` succeeded."""
        health = self._health.get(spec.key)
        if health is None:
            return
        if health.failing:
            self._spawn(self._tell_target(spec, "HEALTHY", health.failures, (None, None)))
        del self._health[spec.key]

    def attempt_failed(
        self, spec: TargetSpec, error_code: str | None, error_message: str | None
    ) -> None:
        """An attempt to deliver to ``spec`` failed."""
        health = self._health.setdefault(spec.key, _Health())
        health.failures += 1
        health.last_error = (error_code, error_message)
        if not health.failing and health.failures >= self._settings.target_failing_after:
            health.failing = True
            self._spawn(self._tell_target(spec, "FAILING", health.failures, health.last_error))

    async def _tell_target(
        self, spec: TargetSpec, state: str, failures: int, error: tuple[str | None, str | None]
    ) -> None:
        detail: dict[str, Any] = {
            "state": state,
            "rule-arn": spec.rule_arn,
            "target-id": spec.key.rsplit("/", 1)[-1],
            "target-arn": spec.arn,
            "consecutive-failures": failures,
        }
        if error[0] is not None:
            detail["error-code"] = error[0]
        if error[1] is not None:
            detail["error-message"] = error[1][:1000]
        account = spec.account or self._settings.account_id
        event = (account, TARGET_CHANGE, [spec.rule_arn])
        await self._transition(f"target:{spec.key}", state, "HEALTHY", event, detail)

    def target_removed(self, key: str) -> None:
        """Forget a target that no longer exists."""
        self._health.pop(key, None)

    def dead_lettered(self, spec: TargetSpec, error_code: str | None) -> None:
        """A record of ``spec`` went to its dead-letter queue (``spec.dlq_arn``)."""
        if spec.dlq_arn is None:
            return
        arn = spec.dlq_arn
        state = self._dead.setdefault(arn, _DeadLetters())
        state.account = arn.split(":")[4] if arn.count(":") >= 5 else self._settings.account_id
        state.resources = [arn]
        state.detail = {
            "queue-arn": arn,
            "rule-arn": spec.rule_arn,
            "target-id": spec.key.rsplit("/", 1)[-1],
            "error-code": error_code,
        }
        state.untold += 1
        now = time.monotonic()
        wait = state.last_told + self._settings.dlq_event_interval - now
        if wait <= 0 and state.flush is None:
            self._tell_dead(arn)
        elif state.flush is None:
            loop = asyncio.get_running_loop()
            state.flush = loop.call_later(wait, self._tell_dead, arn)

    def _tell_dead(self, arn: str) -> None:
        state = self._dead.get(arn)
        if state is None or not state.untold:
            return
        state.flush = None
        state.last_told = time.monotonic()
        detail = {**state.detail, "messages": state.untold}
        state.untold = 0
        self._spawn(self._quietly(self._emit(state.account, DLQ_MESSAGES, state.resources, detail)))

    # -- schedules ---------------------------------------------------------------------
    def schedule_late(
        self, account: str, rule_arn: str, tick: float, fired: float, skipped: int
    ) -> None:
        """A scheduled rule fired ``fired - tick`` seconds after its tick."""
        if fired - tick < self._settings.schedule_late_after:
            return
        detail = {
            "rule-arn": rule_arn,
            "scheduled-time": _iso(tick),
            "fired-time": _iso(fired),
            "late-seconds": round(fired - tick, 3),
            "ticks-skipped": skipped,
        }
        self._spawn(self._quietly(self._emit(account, SCHEDULE_LATE, [rule_arn], detail)))

    # -- queues ------------------------------------------------------------------------
    async def _watch_queues(self) -> None:
        while True:
            await asyncio.sleep(self._settings.monitor_interval)
            try:
                await self.check_queues()
            except Exception as exc:
                log.error("cannot check the queues' alarms", error=str(exc))

    async def check_queues(self) -> None:
        """Compare every tagged queue with its thresholds and tell what crossed."""
        now = time.time()
        for entry in await self._store.catalog_list("queue"):
            tags = entry.doc.get("Tags") or {}
            if DEPTH_TAG not in tags and AGE_TAG not in tags:
                continue
            arn = str(entry.doc.get("Arn", ""))
            account = arn.split(":")[4] if arn.count(":") >= 5 else self._settings.account_id
            visible, _, _ = await self._store.queue_counts(entry.key, now)
            oldest = await self._store.queue_oldest(entry.key)
            measured = {
                DEPTH_TAG: ("ApproximateNumberOfMessagesVisible", float(visible)),
                AGE_TAG: (
                    "ApproximateAgeOfOldestMessage",
                    0.0 if oldest is None else max(0.0, now - oldest),
                ),
            }
            for tag, (metric, value) in measured.items():
                threshold = _number(tags.get(tag))
                if threshold is None:
                    continue
                state = "ALARM" if value >= threshold else "OK"
                detail = {
                    "state": state,
                    "queue-arn": arn,
                    "metric": metric,
                    "threshold": threshold,
                    "value": round(value, 3),
                }
                event = (account, QUEUE_THRESHOLD, [arn])
                await self._transition(f"queue:{entry.key}:{metric}", state, "OK", event, detail)


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
