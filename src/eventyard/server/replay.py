"""The replayer: runs the replays StartReplay records, in whichever process claims them.

A replay (catalog kind ``replay``, :class:`~eventyard.server.catalog.ReplayDoc`) goes
``STARTING`` → ``RUNNING`` → ``COMPLETED``, or ``CANCELLING`` → ``CANCELLED`` after
CancelReplay, or ``FAILED`` when its archive or bus is gone. Every process runs a
:class:`Replayer`; exactly one of them runs each replay:

* **Claiming.** A replayer takes a replay that nobody owns, or whose owner's heartbeat is
  older than ``delivery_lease`` (by the store's clock: the owner died), by a catalog
  compare-and-set that writes its owner id and a heartbeat: of several processes trying
  at once, one wins. The owner renews the heartbeat every third of the lease.
* **Progress is transactional.** Each batch of replayed events is ingested with the
  replay's next document (its cursor: the slice and the last archive record replayed, and
  ``EventLastReplayedTime``) as the ingest's catalog claim
  (:class:`~eventyard.server.store.CatalogClaim`): the events and the progress that says
  they were replayed are written together or not at all. A process that takes over a
  dead owner's replay resumes from the cursor, so no event is replayed twice and none is
  skipped. A batch whose claim fails (CancelReplay, or another owner) writes nothing.
* **Order.** The window ``[EventStartTime, EventEndTime)`` is read in one-minute slices of
  event time, oldest first (AWS's order); within a slice, in archive order.
* **Settling.** A slice is replayed once ``replay_settle`` seconds have passed since its
  end: events whose ``time`` falls in it may still be arriving (in flight, or from a
  producer whose clock is behind). A replay whose window reaches into the future waits
  for it, ``RUNNING``.
* **Throttling.** A replay sends at most ``replay_rate`` events per second, and none while
  ingest is throttled by the delivery backlog (:mod:`eventyard.server.backpressure`):
  a replay never starves live traffic.
* **Cancelling** is seen at the next batch (the claim fails) or at once while waiting
  (the replay's catalog change wakes it).

Events go back through :meth:`eventyard.server.router.Router.replay`: with ``replay-name``,
to every rule of the bus or only those of ``Destination.FilterArns``, into no archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from typing import Any, Final

import structlog

from eventyard.errors import ConcurrentModification, StoreError
from eventyard.server.catalog import ARCHIVE, REPLAY, archive_store
from eventyard.server.config import Settings
from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock
from eventyard.server.router import Router
from eventyard.server.store import CatalogChange, CatalogClaim, CatalogEntry

__all__ = ["SLICE", "Replayer"]

log = structlog.get_logger("eventyard.server.replay")

#: the width of a replay's slices of event time, in seconds (AWS's)
SLICE: Final = 60.0
_OWNER: Final = "eventyard:Owner"
_HEARTBEAT: Final = "eventyard:Heartbeat"
_CURSOR: Final = "eventyard:Cursor"
_REPLAYED: Final = "eventyard:Replayed"
_LIVE: Final = ("STARTING", "RUNNING", "CANCELLING")
# seconds between two attempts after the store failed
_STORE_RETRY: Final = 1.0
_MAX_BATCH: Final = 100


class _Stop(Exception):
    """The replay is no longer this replayer's to run (finished, cancelled, taken over)."""


class Replayer:
    """Claims and runs replays.

    Args:
        router: puts replayed events on their bus; its catalog feed tells of replays
            started and cancelled.
        settings: ``replay_rate``, ``replay_settle`` and ``delivery_lease``.
        clock: what settling and throttling wait on (tests pass a manual clock).
        owner: this replayer's id in the replays it owns (default: host, pid, random).
    """

    def __init__(
        self,
        router: Router,
        settings: Settings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        owner: str | None = None,
    ) -> None:
        self.router = router
        self.store = router.store
        self.settings = settings
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = settings.delivery_lease
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start claiming replays (after the router started)."""
        self.router.feed.subscribe(self.catalog_changed)
        self._task = asyncio.create_task(self._run(), name="eventyard-replayer")

    async def stop(self) -> None:
        """Stop every replay this process runs and give them up, so that a process
        started next (this one again, or another) resumes them at once."""
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        for key in list(self._running):
            with contextlib.suppress(StoreError, ConcurrentModification):
                await self._release(key)
        self._running.clear()

    async def _release(self, key: str) -> None:
        entry = await self.store.catalog_get(REPLAY, key)
        if entry is not None and entry.doc.get(_OWNER) == self.owner:
            doc = {k: v for k, v in entry.doc.items() if k not in (_OWNER, _HEARTBEAT)}
            await self.store.catalog_put(REPLAY, key, doc, expect_revision=entry.revision)

    def catalog_changed(self, change: CatalogChange) -> None:
        """A replay was started, changed or cancelled (by any process): look again.

        The claimer looks at once for a replay that nobody owns (started, or handed
        back); a dead owner's replay it finds on its periodic look. The replay's own
        runner here wakes for any change of it (a cancel)."""
        if change.kind != REPLAY:
            return
        wake = self._wakes.get(change.key)
        if wake is not None:
            wake.set()
        doc = change.entry.doc if change.entry is not None else None
        if doc is not None and doc.get("State") in _LIVE and not doc.get(_OWNER):
            self._wake.set()

    @property
    def running(self) -> list[str]:
        """The keys of the replays this process runs now."""
        return list(self._running)

    # -- claiming --------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.scan()
            except StoreError as exc:
                log.warning("replays could not be read; trying again", error=str(exc))
            await self.clock.wait_until(self.clock.time() + self.lease / 3, self._wake)

    async def scan(self) -> None:
        """Claim every replay that needs a runner and start running it."""
        now = self.store.now()
        for entry in await self.store.catalog_list(REPLAY):
            if entry.key in self._running or entry.doc.get("State") not in _LIVE:
                continue
            owner = entry.doc.get(_OWNER)
            alive = float(entry.doc.get(_HEARTBEAT) or 0) + self.lease > now
            if owner and owner != self.owner and alive:
                continue
            claimed = await self._claim(entry)
            if claimed is not None:
                task = asyncio.create_task(self._guarded(claimed), name=f"replay {entry.key}")
                self._running[entry.key] = task

    async def _claim(self, entry: CatalogEntry) -> CatalogEntry | None:
        doc = dict(entry.doc)
        doc[_OWNER] = self.owner
        doc[_HEARTBEAT] = self.store.now()
        if doc.get("State") == "STARTING":
            doc["State"] = "RUNNING"
        try:
            revision = await self.store.catalog_put(
                REPLAY, entry.key, doc, expect_revision=entry.revision
            )
        except ConcurrentModification:
            return None  # another process claimed it, or it changed: the next scan sees
        return CatalogEntry(REPLAY, entry.key, doc, revision)

    # -- running ---------------------------------------------------------------------------
    async def _guarded(self, entry: CatalogEntry) -> None:
        key = entry.key
        self._wakes[key] = asyncio.Event()
        try:
            while True:
                try:
                    await _Run(self, entry).run()
                    return
                except _Stop:
                    return
                except StoreError as exc:
                    log.warning(
                        "replay interrupted by the store; resuming", replay=key, error=str(exc)
                    )
                    await asyncio.sleep(_STORE_RETRY)
                    fresh = await self._mine(key)
                    if fresh is None:
                        return
                    entry = fresh
                except Exception:
                    log.exception("replay failed", replay=key)
                    await self._fail(key, "The replay failed on an internal error.")
                    return
        finally:
            self._wakes.pop(key, None)
            self._running.pop(key, None)

    async def _mine(self, key: str) -> CatalogEntry | None:
        """The replay's entry while it is this replayer's and live, else None."""
        entry = await self.store.catalog_get(REPLAY, key)
        if entry is None or entry.doc.get("State") not in _LIVE:
            return None
        if entry.doc.get(_OWNER) != self.owner:
            return None
        return entry

    async def _fail(self, key: str, reason: str) -> None:
        with contextlib.suppress(StoreError, ConcurrentModification):
            entry = await self._mine(key)
            if entry is not None:
                doc = dict(entry.doc)
                doc.update(State="FAILED", StateReason=reason, ReplayEndTime=time.time())
                await self.store.catalog_put(REPLAY, key, doc, expect_revision=entry.revision)


class _Run:
    """One replay being run by its owner: a cursor over slices and the document that
    records it (``entry``, always the latest this run wrote or read)."""

    def __init__(self, replayer: Replayer, entry: CatalogEntry) -> None:
        self.r = replayer
        self.entry = entry
        doc = entry.doc
        self.key = entry.key
        self.name = str(doc["ReplayName"])
        self.bus = str(doc["eventyard:Bus"])
        self.archive = str(doc["eventyard:Archive"])
        self.store_key = str(doc.get("eventyard:ArchiveStore") or self.archive)
        rules = doc.get("eventyard:Rules")
        self.rules: frozenset[str] | None = frozenset(rules) if rules else None
        self.end = float(doc["EventEndTime"])
        start = float(doc["EventStartTime"])
        cursor = doc.get(_CURSOR) or [start, 0]
        self.slice, self.after = float(cursor[0]), int(cursor[1])
        self.rate = replayer.settings.replay_rate
        self.batch = max(1, min(_MAX_BATCH, int(self.rate)))
        self.next_send = 0.0
        self.beat = replayer.store.now()

    @property
    def wake(self) -> asyncio.Event:
        return self.r._wakes.setdefault(self.key, asyncio.Event())

    async def run(self) -> None:
        store = self.r.store
        if self.entry.doc.get("State") == "CANCELLING":
            await self._finish("CANCELLED")
        await self._check_sources()
        while self.slice < self.end:
            if self.after == 0:
                await self._skip_empty()
                if self.slice >= self.end:
                    break
            slice_end = min(self.slice + SLICE, self.end)
            await self._wait_until(slice_end + self.r.settings.replay_settle)
            while True:
                records = await store.read_archive(
                    self.store_key, self.slice, slice_end, self.after, self.batch
                )
                if not records:
                    break
                await self._throttle(len(records))
                progress = max([r.time for r in records])
                await self._send([r.body for r in records], records[-1].seq, progress)
                if len(records) < self.batch:
                    break
            self.slice, self.after = slice_end, 0
            if store.now() - self.beat >= self.r.lease / 3 or self.slice >= self.end:
                if self.slice < self.end:
                    await self._check_sources()  # deleted meanwhile: the rest is lost
                await self._write({_CURSOR: [self.slice, 0], "EventLastReplayedTime": self.slice})
        await self._check_sources()  # an archive deleted meanwhile reads empty: not done
        await self._finish("COMPLETED")

    async def _check_sources(self) -> None:
        """End the replay ``FAILED`` when its archive or its bus is gone."""
        entry = await self.r.store.catalog_get(ARCHIVE, self.archive)
        if entry is None or archive_store(entry.key, entry.doc) != self.store_key:
            # deleted (and perhaps created again: another incarnation, other events)
            await self._finish("FAILED", f"Archive {self.archive_name} does not exist.")
        if not self.r.router.routing.has_bus(self.bus):
            await self._finish("FAILED", "The destination event bus does not exist.")

    async def _skip_empty(self) -> None:
        """Move past the settled slices that hold no event, by probes of doubling width
        (a window of years with a few events costs a few reads, not one per minute)."""
        width = SLICE
        while True:
            settled = self.r.clock.time() - self.r.settings.replay_settle
            probe_end = min(self.slice + width, self.end)
            if probe_end > settled:
                # only what has settled, in whole slices: the rest waits slice by slice
                probe_end = self.slice + (settled - self.slice) // SLICE * SLICE
            if probe_end <= self.slice:
                return
            if await self.r.store.read_archive(self.store_key, self.slice, probe_end, 0, 1):
                return
            await self._check_sources()  # empty because the archive was deleted?
            self.slice = probe_end
            if self.slice >= self.end:
                return
            width *= 2

    @property
    def archive_name(self) -> str:
        return str(self.entry.doc.get("EventSourceArn", "")).rpartition("/")[2]

    def _next(self, changes: dict[str, Any]) -> dict[str, Any]:
        doc = dict(self.entry.doc)
        doc.update(changes)
        doc[_HEARTBEAT] = self.r.store.now()
        last = doc.get("EventLastReplayedTime")
        previous = self.entry.doc.get("EventLastReplayedTime")
        if isinstance(last, float | int) and isinstance(previous, float | int):
            doc["EventLastReplayedTime"] = max(float(last), float(previous))
        return doc

    async def _send(self, bodies: list[bytes], last_seq: int, progress: float) -> None:
        """Replay one batch with the progress it makes, as one transaction."""
        while True:
            doc = self._next(
                {
                    _CURSOR: [self.slice, last_seq],
                    "EventLastReplayedTime": min(progress, self.end),
                    _REPLAYED: int(self.entry.doc.get(_REPLAYED) or 0) + len(bodies),
                }
            )
            claim = CatalogClaim(REPLAY, self.key, doc, self.entry.revision)
            try:
                await self.r.router.replay(self.bus, bodies, self.name, self.rules, claim)
            except ConcurrentModification:
                await self._reread()  # raises _Stop unless it is still ours to run
                continue
            self.after = last_seq
            self.beat = doc[_HEARTBEAT]
            # the claim wrote doc; its revision is the store's to tell
            await self._reread()
            return

    async def _write(self, changes: dict[str, Any]) -> None:
        """Write progress (and the heartbeat) by compare-and-set."""
        while True:
            doc = self._next(changes)
            try:
                revision = await self.r.store.catalog_put(
                    REPLAY, self.key, doc, expect_revision=self.entry.revision
                )
            except ConcurrentModification:
                await self._reread()
                continue
            self.entry = CatalogEntry(REPLAY, self.key, doc, revision)
            self.beat = doc[_HEARTBEAT]
            return

    async def _reread(self) -> None:
        """Take the replay's latest document; stop when it is no longer this run's
        (ending it ``CANCELLED`` when it was cancelled)."""
        entry = await self.r.store.catalog_get(REPLAY, self.key)
        if entry is None or entry.doc.get(_OWNER) != self.r.owner:
            raise _Stop
        self.entry = entry
        state = entry.doc.get("State")
        if state == "CANCELLING":
            await self._finish("CANCELLED")
        if state not in _LIVE:
            raise _Stop

    async def _finish(self, state: str, reason: str | None = None) -> None:
        changes: dict[str, Any] = {"State": state, "ReplayEndTime": time.time()}
        if state == "COMPLETED":
            changes["EventLastReplayedTime"] = self.end
        if reason is not None:
            changes["StateReason"] = reason
        while True:
            doc = self._next(changes)
            try:
                await self.r.store.catalog_put(
                    REPLAY, self.key, doc, expect_revision=self.entry.revision
                )
            except ConcurrentModification:
                entry = await self.r.store.catalog_get(REPLAY, self.key)
                if entry is None or entry.doc.get(_OWNER) != self.r.owner:
                    raise _Stop from None
                self.entry = entry
                if entry.doc.get("State") == "CANCELLING" and state == "COMPLETED":
                    changes = {"State": "CANCELLED", "ReplayEndTime": time.time()}
                continue
            log.info("replay ended", replay=self.key, state=state)
            raise _Stop

    async def _wait_until(self, deadline: float) -> None:
        """Wait for ``deadline`` (the clock's), heartbeating; stop on a cancel."""
        clock = self.r.clock
        while clock.time() < deadline:
            beat_due = self.beat + self.r.lease / 3
            wait = min(deadline, clock.time() + max(0.0, beat_due - self.r.store.now()))
            self.wake.clear()
            await clock.wait_until(wait, self.wake)
            if self.wake.is_set():
                await self._reread()
            if self.r.store.now() >= beat_due:
                await self._write({})

    async def _throttle(self, count: int) -> None:
        """Hold the next batch to ``replay_rate`` and while ingest is throttled."""
        clock = self.r.clock
        while self.r.router.backpressure.reason() is not None:
            await self._wait_until(clock.time() + 1.0)
        now = clock.time()
        if self.next_send > now:
            await self._wait_until(self.next_send)
        self.next_send = max(now, self.next_send) + count / self.rate
