"""The EventBridge Scheduler invoker: fires each enabled schedule at each tick, once.

:class:`Invoker` runs one task beside the router, like the scheduled-rule
:class:`~eventyard.server.schedules.ticker.Ticker`, and with the same guarantee. Per
enabled schedule it keeps a *state* document (kind ``scheduler-state``, key = the
schedule's key)::

    {"Schedule": <ARN>, "Fingerprint": <timing fingerprint>, "Anchor": <epoch>,
     "Next": <tick|null>, "Due": <when Next fires|null>, "Fired": <last tick fired>,
     "Completed": <bool>}

``Next`` is the next tick, ``Due`` when it fires (the tick, or its point in the flexible
window). When ``Due`` has come, the invoker writes the tick's invocation (a log record and
one delivery to the schedule's target) together with the state advanced past the tick,
with ``expect_revision`` = the revision it read, in **one store transaction**
(:meth:`~eventyard.server.router.Router.ingest_claimed`). A tick's invocation exists
exactly when its claim does: a crash before the commit leaves the tick to fire after the
restart, a crash after it leaves it fired, and of two processes only one claims it.

**Missed ticks** follow the scheduled rules' policy: after downtime, the first missed
tick fires once, late (its payload's scheduled time is the tick's), and every later tick
whose time has passed is skipped (counted in ``eventyard_schedule_ticks_skipped_total``).

**Changes.** The API calls :meth:`Invoker.schedule_changed` after every committed
change, and the catalog feed (:meth:`Invoker.catalog_changed`) brings the changes other
processes make. A state starts afresh (a ``rate`` counts from now, or its ``StartDate``) when
its schedule is created or enabled, or its timing (expression, zone, dates, window)
changes; other changes (target, input, description) keep its position. Disabling or
deleting a schedule deletes its state.

**Completion.** A schedule whose last tick has fired (a one-time ``at``, or any whose
``EndDate`` has passed) is *completed*. With ``ActionAfterCompletion`` ``DELETE`` it is
then deleted, once the delivery of its last tick is settled (delivered or
dead-lettered), so that the delivery never loses its target on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Final

import structlog

from eventyard.errors import ConcurrentModification, InvalidScheduleExpression, StoreError
from eventyard.server.config import Settings
from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock
from eventyard.server.router import Router
from eventyard.server.schedules.definitions import (
    SCHEDULE,
    STATE,
    Definition,
    target_key,
)
from eventyard.server.schedules.ticker import LATE, SKIPPED
from eventyard.server.store import (
    CatalogChange,
    CatalogClaim,
    CatalogEntry,
    NewDelivery,
    NewEvent,
)

__all__ = ["Invoker"]

log = structlog.get_logger("eventyard.server.schedules")

# when nothing is due, look again this often anyway (every change wakes it at once)
_IDLE: Final = 3600.0
# after a store failure, wait this long (clock seconds) before trying again
_RETRY: Final = 1.0
# how often (real seconds) completed schedules to delete look whether their last
# delivery is settled
_COMPLETION_POLL: Final = 0.2
# a tick fired this long after its due time counts as late
_LATE_AFTER: Final = 60.0


class Invoker:
    """Fires the stored Scheduler schedules; see the module docstring.

    Args:
        router: the router through which invocations are written and delivered.
        settings: the server's settings (region, HTTP timeout, target concurrency).
        clock: where the time comes from (the wall clock unless a test gives another).
    """

    def __init__(self, router: Router, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.router = router
        self.store = router.store
        self.settings = settings
        self.clock = clock
        self._defs: dict[str, Definition] = {}
        # when each enabled schedule's next tick fires (None: never again)
        self._due: dict[str, float | None] = {}
        # completed schedules to delete once their last delivery is settled
        self._completing: set[str] = set()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._poll: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def load(self) -> None:
        """Register the target of every stored schedule with the router.

        Called before the router starts its delivery engine: deliveries of schedules
        left pending by the last run must find their target, or the engine would drop
        them as targets removed.
        """
        for entry in await self.store.catalog_list(SCHEDULE):
            definition = self._read(entry.key, entry.doc)
            if definition is not None:
                self._defs[entry.key] = definition
                self.router.routing.external_target_changed(target_key(entry.key), definition.spec)

    async def start(self) -> None:
        """Bring every schedule's state up to date and start firing (after :meth:`load`
        and the router's start)."""
        for entry in await self.store.catalog_list(SCHEDULE):
            self._dirty.add(entry.key)
        for entry in await self.store.catalog_list(STATE):
            self._dirty.add(entry.key)  # a state whose schedule is gone is forgotten
        while self._dirty:
            await self._sync_guarded(self._dirty.pop())
        self._task = asyncio.create_task(self._run(), name="eventyard-scheduler-invoker")

    async def stop(self) -> None:
        """Stop firing; a tick being fired is either committed whole or not at all."""
        if self._poll is not None:
            self._poll.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def settled(self) -> bool:
        """Whether every change it was told of has been taken into account."""
        return not self._dirty and not self._wake.is_set()

    @property
    def next_due(self) -> float | None:
        """When the next tick of any schedule fires (None: no tick is to come)."""
        return min((when for when in self._due.values() if when is not None), default=None)

    def schedule_changed(self, key: str) -> None:
        """Take a committed change of schedule ``key`` (created, updated, deleted) into
        account; the API calls it after each write."""
        self._dirty.add(key)
        self._wake.set()

    def catalog_changed(self, change: CatalogChange) -> None:
        """A catalog change applied by this process's feed (any process's write): a
        schedule's is taken into account like one made through this process's API."""
        if change.kind == SCHEDULE:
            self.schedule_changed(change.key)

    def definition(self, key: str) -> Definition | None:
        """The schedule of that key as the invoker knows it now."""
        return self._defs.get(key)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                deadline = await self.run_once()
            except StoreError as exc:
                log.warning("scheduler invoker: the store failed; trying again", error=str(exc))
                deadline = self.clock.time() + _RETRY
            except Exception:
                log.exception("scheduler invoker pass failed; trying again")
                deadline = self.clock.time() + _RETRY
            if self._completing and self._poll is None:
                self._poll = asyncio.get_running_loop().call_later(
                    _COMPLETION_POLL, self._poll_completed
                )
            if not self._wake.is_set():
                await self.clock.wait_until(deadline, self._wake)

    def _poll_completed(self) -> None:
        self._poll = None
        self._dirty.update(self._completing)
        self._wake.set()

    async def run_once(self) -> float:
        """Bring changed schedules up to date and fire every due tick; returns when the
        next tick is due (epoch seconds, the invoker's clock)."""
        while self._dirty:
            await self._sync_guarded(self._dirty.pop())
        now = self.clock.time()
        due = [key for key, when in self._due.items() if when is not None and when <= now]
        outcomes = await asyncio.gather(
            *(self._fire(key, now) for key in due), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        upcoming = [when for when in self._due.values() if when is not None]
        return min(upcoming, default=self.clock.time() + _IDLE)

    # -- state ---------------------------------------------------------------------------
    async def _sync_guarded(self, key: str) -> None:
        """:meth:`_sync`; a store failure puts the key back and is raised, anything else
        is logged and the schedule left alone (one bad schedule must not stop the rest)."""
        try:
            await self._sync(key)
        except StoreError:
            self._dirty.add(key)
            raise
        except Exception:
            log.exception("schedule could not be brought up to date; ignored", schedule=key)

    async def _sync(self, key: str) -> None:
        """Load schedule ``key`` and create, reset, complete or delete its state."""
        entry = await self.store.catalog_get(SCHEDULE, key)
        definition = None if entry is None else self._read(key, entry.doc)
        if definition is None:
            self._defs.pop(key, None)
            self.router.routing.external_target_changed(target_key(key), None)
            await self._forget(key)
            return
        self._defs[key] = definition
        # a disabled schedule keeps its target: deliveries already made still go out
        self.router.routing.external_target_changed(target_key(key), definition.spec)
        if not definition.enabled:
            await self._forget(key)
            return
        state = await self.store.catalog_get(STATE, key)
        while state is None or state.doc.get("Fingerprint") != definition.fingerprint:
            state = await self._start_state(definition, state)
        if state.doc.get("Completed"):
            self._due.pop(key, None)
            await self._complete(definition, entry)
        else:
            self._due[key] = state.doc.get("Due")

    def _read(self, key: str, doc: dict[str, Any]) -> Definition | None:
        """The definition of a stored schedule; None (logged) when it cannot be read."""
        try:
            return Definition.from_doc(key, doc, self.settings)
        except (InvalidScheduleExpression, KeyError, TypeError, ValueError, OverflowError):
            log.error("stored schedule cannot be read; ignored", schedule=key)
            return None

    async def _start_state(
        self, definition: Definition, entry: CatalogEntry | None
    ) -> CatalogEntry:
        """A fresh state for ``definition``, or whatever another process wrote first."""
        now = self.clock.time()
        timing = definition.timing
        anchor = timing.anchor(now)
        first = timing.first(now, anchor)
        doc: dict[str, Any] = {
            "Schedule": definition.arn,
            "Fingerprint": definition.fingerprint,
            "Anchor": anchor,
            "Next": first,
            "Due": None if first is None else timing.fire_time(definition.key, first),
            "Completed": first is None,
        }
        expect = entry.revision if entry is not None else 0
        try:
            revision = await self.store.catalog_put(
                STATE, definition.key, doc, expect_revision=expect
            )
        except ConcurrentModification:
            fresh = await self.store.catalog_get(STATE, definition.key)
            if fresh is not None:
                return fresh
            return await self._start_state(definition, None)
        return CatalogEntry(STATE, definition.key, doc, revision)

    async def _forget(self, key: str) -> None:
        self._due.pop(key, None)
        self._completing.discard(key)
        await self.store.catalog_delete(STATE, key)

    async def _complete(self, definition: Definition, entry: CatalogEntry | None) -> None:
        """A completed schedule: deleted (``ActionAfterCompletion`` ``DELETE``) once its
        last delivery is settled; kept as it is otherwise."""
        key = definition.key
        if not definition.delete_after or entry is None:
            self._completing.discard(key)
            return
        if target_key(key) in await self.store.pending_targets():
            self._completing.add(key)  # looked at again shortly (_poll_completed)
            return
        self._completing.discard(key)
        try:
            await self.store.catalog_delete(SCHEDULE, key, expect_revision=entry.revision)
        except ConcurrentModification:
            self._dirty.add(key)  # changed meanwhile (updated, or deleted elsewhere)
            return
        log.info("one-time schedule completed and deleted", schedule=definition.arn)
        self._defs.pop(key, None)
        self.router.routing.external_target_changed(target_key(key), None)
        await self._forget(key)

    # -- firing --------------------------------------------------------------------------
    async def _fire(self, key: str, now: float) -> None:
        """Fire schedule ``key``'s due tick, unless another process did; then move on."""
        definition = self._defs.get(key)
        state = await self.store.catalog_get(STATE, key)
        if (
            definition is None
            or state is None
            or state.doc.get("Fingerprint") != definition.fingerprint
        ):
            self._due.pop(key, None)
            self._dirty.add(key)
            self._wake.set()
            return
        tick, due = state.doc.get("Next"), state.doc.get("Due")
        if tick is None or due is None or due > now:
            self._due[key] = due  # another process fired it
            return
        timing = definition.timing
        anchor = float(state.doc.get("Anchor", tick))
        # the next tick whose firing time is still to come: later ones already past are
        # skipped (one catch-up per downtime, as scheduled rules)
        following = timing.next_after(tick, anchor)
        skipped = 0
        while following is not None and timing.fire_time(key, following) <= now:
            skipped += 1
            following = timing.next_after(following, anchor)
        following_due = None if following is None else timing.fire_time(key, following)
        claim = CatalogClaim(
            STATE,
            key,
            {
                **state.doc,
                "Next": following,
                "Due": following_due,
                "Fired": tick,
                "Completed": following is None,
            },
            expect_revision=state.revision,
        )
        invocation = definition.invocation(tick, due, self.settings.region)
        ingested = time.time()
        event = NewEvent(invocation.execution, invocation.bus, ingested, invocation.payload)
        delivery = NewDelivery(
            definition.spec.key,
            invocation.execution,
            invocation.payload,
            invocation.payload,
            ingested,
            ingested,
        )
        try:
            await self.router.ingest_claimed([event], [delivery], claim)
        except ConcurrentModification:
            fresh = await self.store.catalog_get(STATE, key)
            self._due[key] = None if fresh is None else fresh.doc.get("Due")
            return
        if skipped:
            SKIPPED.inc(skipped)
        if now - due >= _LATE_AFTER:
            LATE.inc()
            log.warning(
                "schedule fired late",
                schedule=definition.arn,
                tick=tick,
                late_by=round(now - due, 3),
                ticks_skipped=skipped,
            )
        if following is None:
            self._due.pop(key, None)
            self._dirty.add(key)  # completed: ActionAfterCompletion
            self._wake.set()
        else:
            self._due[key] = following_due
