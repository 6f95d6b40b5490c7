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
    flood); not told for the targets of rules on the system bus (see below).
``Queue Threshold Crossed``
    a queue tagged ``eventyard:alarm-depth`` (visible messages) or
    ``eventyard:alarm-age`` (seconds, the age of its oldest message) went over its
    threshold (``ALARM``) or back under it (``OK``), checked every ``monitor_interval``.
``Scheduled Rule Fired Late``
    a scheduled rule fired ``schedule_late_after`` seconds or more after its tick (a
    process was down or overloaded), with the ticks it skipped.

State transitions (target health, queue alarms) are claimed in the catalog (kind
``monitor``) in the same transaction as their event, like the scheduler's ticks: among
several processes sharing a store, exactly one tells each transition. A process that
did not see a target fail (it started after, or another process delivered) still
tells its recovery: a success of a target it knows no failure of checks the catalog's
state (at most once a minute per target) and tells ``HEALTHY`` when it says
``FAILING``.

Dead letters of the targets of rules on the system bus itself are not told: an alert
rule whose target fails into the queue it watches would otherwise feed itself forever
(each dead letter an event, each event a dead letter). The queue's threshold alarms
still see them. The in-memory state of targets that no longer exist is dropped at each
check of the queues, so it does not grow with the targets ever created. The system bus is
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
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
from prometheus_client import Counter

from eventyard.errors import ConcurrentModification
from eventyard.server.config import Settings
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets.api_destination import RATE_LIMITED
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
    "forget_queue",
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
# the measures of the queue alarms (SQS attribute names)
_METRICS: Final = ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage")
#: seconds between two checks of the told state of a target that succeeds here
_RECHECK: Final = 60.0

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
        exists: whether a target key still names a target (None: never forgotten).
    """

    def __init__(
        self,
        emitter: Emitter,
        store: Store,
        settings: Settings,
        *,
        exists: Callable[[str], bool] | None = None,
    ) -> None:
        self._emitter = emitter
        self._store = store
        self._settings = settings
        self._exists = exists
        self._health: dict[str, _Health] = {}
        #: when a target without failures here last had its catalog state checked
        self._checked: dict[str, float] = {}
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
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None]) -> None:
        """Run ``work``; a failure (the store's, reading a claim) is logged, never left in
        a task nobody awaits."""
        try:
            await work
        except Exception as exc:
            EMITTED.labels("unknown", "failed").inc()
            log.error("cannot tell a system event", error=f"{type(exc).__name__}: {exc}")

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
            # failures told by another process, or before a restart, are in the catalog
            now = time.monotonic()
            last = self._checked.get(spec.key)
            if last is None or now - last >= max(self._settings.monitor_interval, _RECHECK):
                self._checked[spec.key] = now
                self._spawn(self._recovered(spec))
            return
        if health.failing:
            self._spawn(self._tell_target(spec, "HEALTHY", health.failures, (None, None)))
        del self._health[spec.key]

    def attempt_failed(
        self, spec: TargetSpec, error_code: str | None, error_message: str | None
    ) -> None:
        """An attempt to deliver to ``spec`` failed (a call eventyard's own rate limit
        held back, ``RATE_LIMITED``, is no failure of the target)."""
        if error_code == RATE_LIMITED:
            return
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

    async def _recovered(self, spec: TargetSpec) -> None:
        """Tell ``HEALTHY`` if the catalog says the target is ``FAILING``."""
        try:
            entry = await self._store.catalog_get(MONITOR, f"target:{spec.key}")
        except Exception as exc:
            log.error("cannot read a target's told state", target=spec.key, error=str(exc))
            return
        if entry is not None and entry.doc.get("state") == "FAILING":
            await self._tell_target(spec, "HEALTHY", 0, (None, None))

    def target_removed(self, key: str) -> None:
        """Forget a target that no longer exists."""
        self._health.pop(key, None)
        self._checked.pop(key, None)

    def prune(self) -> None:
        """Forget what is kept about targets that no longer exist and dead-letter
        queues told long enough ago (called at each check of the queues)."""
        if self._exists is not None:
            for key in [k for k in (*self._health, *self._checked) if not self._exists(k)]:
                self.target_removed(key)
        horizon = time.monotonic() - self._settings.dlq_event_interval
        for arn in [
            arn
            for arn, state in self._dead.items()
            if state.flush is None and not state.untold and state.last_told <= horizon
        ]:
            del self._dead[arn]

    def dead_lettered(self, spec: TargetSpec, error_code: str | None) -> None:
        """A record of ``spec`` went to its dead-letter queue (``spec.dlq_arn``)."""
        if spec.dlq_arn is None or _on_system_bus(spec.rule_arn):
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
            self.prune()
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
                DEPTH_TAG: (_METRICS[0], float(visible)),
                AGE_TAG: (
                    _METRICS[1],
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
                await self._transition(_queue_key(entry.key, metric), state, "OK", event, detail)


def _queue_key(queue: str, metric: str) -> str:
    return f"queue:{queue}:{metric}"


async def forget_queue(store: Store, queue: str) -> None:
    """Drop the told alarm states of a deleted queue (internal name ``queue``), so a queue
    created again with its name starts at ``OK``: its first crossing is told."""
    for metric in _METRICS:
        await store.catalog_delete(MONITOR, _queue_key(queue, metric))


def _on_system_bus(rule_arn: str) -> bool:
    """Whether ``rule_arn`` names a rule of a system bus (``...:rule/eventyard/<name>``)."""
    _, _, path = rule_arn.partition(":rule/")
    return path.startswith(SYSTEM_BUS + "/")


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
