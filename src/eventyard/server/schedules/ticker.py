"""The scheduler: fires each enabled scheduled rule at each tick, exactly once.

:class:`Ticker` runs one task beside the router. It keeps, per scheduled rule, a
*schedule state* document in the catalog (kind ``schedule``, key = the rule's key)::

    {"Rule": <rule ARN>, "Expression": <expression>, "Anchor": <epoch>, "Next": <epoch|null>,
     "Fired": <epoch of the last tick fired>}

``Next`` is the next tick to fire. When it is due, the ticker builds the rule's scheduled
event and hands it to :meth:`Router.fire_scheduled` together with a *claim*: the state
document advanced past the tick, written with ``expect_revision`` = the revision it read,
**in the same store transaction as the event and its deliveries**
(:class:`~eventyard.server.store.CatalogClaim`). So:

* a tick's event exists exactly when its claim does: a crash before the commit leaves
  neither (the restarted ticker finds the tick still due and fires it), a crash after it
  leaves both (the restarted ticker finds the tick claimed);
* of two processes sharing a store that both find a tick due, one commits and the other
  gets :class:`~eventyard.errors.ConcurrentModification`, writes nothing, and re-reads.

Missed ticks (the server was down, or the store refused writes): when the ticker finds
``Next`` in the past, it fires that one tick, late, with its own scheduled ``time``, and
skips every later tick already past: ``Next`` becomes the first tick after now. At most
one catch-up event per rule, however long the downtime (AWS does not backfill either);
the skipped ticks are counted in ``eventyard_schedule_ticks_skipped_total`` and logged.

A rule's state starts when the ticker first sees the rule enabled with a schedule (a
``rate`` counts from there, to the minute), and starts afresh when its expression
changes. Disabling or deleting a rule deletes its state, so a disabled rule fires
nothing, not even a catch-up tick once enabled again: a re-enabled ``rate`` counts from
the moment it was enabled, a ``cron`` fires at its next time.

Time comes from an injectable :class:`~eventyard.server.delivery.clock.Clock`; tests
advance a manual clock instead of waiting for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import structlog
from prometheus_client import Counter

from eventyard.errors import ConcurrentModification, InvalidScheduleExpression, StoreError
from eventyard.server.catalog import RULE, Rule, rule_doc
from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock
from eventyard.server.router import Router
from eventyard.server.routing import ScheduledRule
from eventyard.server.schedules.expression import Schedule, floor_minute, parse
from eventyard.server.store import CatalogClaim, CatalogEntry

__all__ = ["SCHEDULE", "Ticker"]

log = structlog.get_logger("eventyard.server.schedules")

#: the catalog kind of the schedule state documents
SCHEDULE: Final = "schedule"

SKIPPED = Counter(
    "eventyard_schedule_ticks_skipped_total",
    "ticks of scheduled rules not fired because they were missed (downtime)",
)
LATE = Counter(
    "eventyard_schedule_ticks_late_total",
    "ticks of scheduled rules fired later than one minute after their time",
)

# when nothing is scheduled, look again this often anyway (a safety net: every change
# of a scheduled rule wakes the ticker at once)
_IDLE: Final = 3600.0
# how long to wait before trying again after the store failed
_RETRY: Final = 1.0
# a tick fired this long after its time counts as late
_LATE_AFTER: Final = 60.0


class Ticker:
    """Fires the router's scheduled rules; see the module docstring.

    Args:
        router: the router whose scheduled rules it fires (and through which it writes).
        clock: where the time comes from (the wall clock unless a test gives another).
    """

    def __init__(self, router: Router, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.router = router
        self.store = router.store
        self.clock = clock
        # the next tick of each rule whose state is known (None: never fires again)
        self._next: dict[str, float | None] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._parsed: dict[str, Schedule] = {}
        router.routing.on_schedule_change(self._changed)

    async def start(self) -> None:
        """Forget the state of rules that no longer fire on schedule, then start ticking."""
        for entry in await self.store.catalog_list(SCHEDULE):
            # the stored rule decides, not this process's view of it
            rule = await self.store.catalog_get(RULE, entry.key)
            if rule is None or not Rule.from_doc(entry.key, rule_doc(rule)).fires_on_schedule:
                await self._forget(entry.key)
        self._dirty.update(rule.key for rule in self.router.routing.scheduled_rules())
        self._task = asyncio.create_task(self._run(), name="eventyard-scheduler")

    async def stop(self) -> None:
        """Stop ticking; a tick being fired is either committed whole or not at all."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def settled(self) -> bool:
        """Whether every rule change it was told of has been taken into account."""
        return not self._dirty and not self._wake.is_set()

    def _changed(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                deadline = await self.run_once()
            except StoreError as exc:
                log.warning("scheduler: the store failed; trying again", error=str(exc))
                deadline = self.clock.time() + _RETRY
            except Exception:
                log.exception("scheduler pass failed; trying again")
                deadline = self.clock.time() + _RETRY
            if not self._wake.is_set():
                await self.clock.wait_until(deadline, self._wake)

    async def run_once(self) -> float:
        """Bring the changed rules' states up to date and fire every due tick.

        Returns when the next tick is due (epoch seconds).
        """
        while self._dirty:
            await self._sync(self._dirty.pop())
        now = self.clock.time()
        due = [key for key, tick in self._next.items() if tick is not None and tick <= now]
        # concurrently, so that the store commits the ticks of one minute together
        outcomes = await asyncio.gather(
            *(self._fire(key, now) for key in due), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        upcoming = [due for due in self._next.values() if due is not None]
        return min(upcoming, default=self.clock.time() + _IDLE)

    # -- state ---------------------------------------------------------------------------
    def _schedule(self, expression: str) -> Schedule | None:
        schedule = self._parsed.get(expression)
        if schedule is None:
            try:
                schedule = self._parsed[expression] = parse(expression)
            except InvalidScheduleExpression:
                return None  # PutRule validated it; a hand-edited store may not have
        return schedule

    async def _sync(self, key: str) -> None:
        """Create, reset or delete the state of rule ``key`` after a change."""
        rule = self.router.routing.scheduled_rule(key)
        if rule is None:
            await self._forget(key)
            return
        entry = await self.store.catalog_get(SCHEDULE, key)
        while entry is None or entry.doc.get("Expression") != rule.expression:
            entry = await self._start_state(rule, entry)
        self._next[key] = entry.doc.get("Next")

    async def _start_state(self, rule: ScheduledRule, entry: CatalogEntry | None) -> CatalogEntry:
        """A fresh state for ``rule`` (anchored now), or whatever another process wrote
        first."""
        now = self.clock.time()
        schedule = self._schedule(rule.expression)
        anchor = floor_minute(now)
        doc: dict[str, Any] = {
            "Rule": rule.arn,
            "Expression": rule.expression,
            "Anchor": anchor,
            "Next": None if schedule is None else schedule.next_after(now, anchor=anchor),
        }
        expect = entry.revision if entry is not None else 0
        try:
            revision = await self.store.catalog_put(SCHEDULE, rule.key, doc, expect_revision=expect)
        except ConcurrentModification:
            fresh = await self.store.catalog_get(SCHEDULE, rule.key)
            if fresh is not None:
                return fresh
            return await self._start_state(rule, None)
        return CatalogEntry(SCHEDULE, rule.key, doc, revision)

    async def _forget(self, key: str) -> None:
        self._next.pop(key, None)
        await self.store.catalog_delete(SCHEDULE, key)

    # -- firing --------------------------------------------------------------------------
    async def _fire(self, key: str, now: float) -> None:
        """Fire rule ``key``'s due tick, unless another process did; then move on."""
        entry = await self.store.catalog_get(SCHEDULE, key)
        rule = self.router.routing.scheduled_rule(key)
        if entry is None or rule is None or entry.doc.get("Expression") != rule.expression:
            self._dirty.add(key)  # changed meanwhile: sync it on the next pass
            self._next.pop(key, None)
            self._wake.set()
            return
        tick = entry.doc.get("Next")
        if tick is None or tick > now:
            self._next[key] = tick  # another process fired it
            return
        schedule = self._schedule(rule.expression)
        anchor = float(entry.doc.get("Anchor", tick))
        following = None if schedule is None else schedule.next_after(now, anchor=anchor)
        claim = CatalogClaim(
            SCHEDULE,
            key,
            {**entry.doc, "Next": following, "Fired": tick},
            expect_revision=entry.revision,
        )
        try:
            await self.router.fire_scheduled(rule, tick, claim)
        except ConcurrentModification:
            # another process claimed it (or changed the state): look again
            fresh = await self.store.catalog_get(SCHEDULE, key)
            self._next[key] = None if fresh is None else fresh.doc.get("Next")
            return
        self._next[key] = following
        skipped = _skipped(schedule, tick, now, anchor)
        if skipped:
            SKIPPED.inc(skipped)
        self.router.system_events.schedule_late(rule.account, rule.arn, tick, now, skipped)
        if now - tick >= _LATE_AFTER:
            LATE.inc()
            log.warning(
                "scheduled rule fired late",
                rule=rule.arn,
                tick=tick,
                late_by=round(now - tick, 3),
                ticks_skipped=skipped,
            )


def _skipped(schedule: Schedule | None, tick: float, now: float, anchor: float) -> int:
    """How many ticks after ``tick`` up to ``now`` were missed (counted up to 1000)."""
    if schedule is None:
        return 0
    count = 0
    following = schedule.next_after(tick, anchor=anchor)
    while following is not None and following <= now and count < 1000:
        count += 1
        following = schedule.next_after(following, anchor=anchor)
    return count
