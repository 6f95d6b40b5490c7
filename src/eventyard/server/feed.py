"""Following the catalog's change feed: every process converges on every catalog change.

What a process holds of the catalog in memory (the router's matchers, targets, buses and
queues; the keyring's cache) must follow changes that *any* process makes to the shared
store. :class:`CatalogFollower` keeps it in step through two paths that meet in one
idempotent apply:

* **notifications**: the store tells its listeners of each committed change
  (:meth:`~eventyard.server.store.StoreListener.catalog_changed`, with the document),
  which :meth:`CatalogFollower.offer` applies at once;
* **reads** of the feed (:meth:`~eventyard.server.store.Store.catalog_changes` after the
  last revision read): at start, every ``resync_interval`` seconds as the safety net for
  a lost notification, and when the process that made a change asks
  (:meth:`CatalogFollower.sync`: read-your-writes, whichever store it is).

A change is applied only when it is newer than what was applied for its key: each key
remembers the global revision of its last applied change, so a change that arrives twice
(notified, then read) applies once, a late one never overwrites a newer one, and a
delete is never undone by an older put. Only reads move the *cursor* (the revision up to
which the feed has been read: a notification may skip changes whose own notifications
were lost); a change at or below the cursor is known to be covered, and keys whose last
applied change is at or below it are forgotten, so memory stays bounded by the changes
in flight.

**Start.** :meth:`start` reads the feed's current revision ``R``, loads what the
subscribers need from the catalog (their ``load``), sets the cursor to ``R`` and reads
every change after ``R``. Notifications that arrive before then are dropped: the read
after ``R`` covers them, and an older one applied over the loaded state could not be
told apart from a newer one.

Subscribers (:meth:`subscribe`) get each applied change; one that raises is logged, the
others still get it, and the feed goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import structlog

from eventyard.errors import StoreError
from eventyard.server.store import CatalogChange, CatalogEntry, Store

__all__ = ["CatalogFollower", "CatalogSubscriber"]

log = structlog.get_logger("eventyard.server.feed")

#: applies one catalog change to what a component holds in memory
CatalogSubscriber = Callable[[CatalogChange], None]

# changes read per page of the feed
_PAGE: Final = 500


class CatalogFollower:
    """Applies the catalog's changes, from notifications and reads, once each, in order.

    Args:
        store: the store whose feed it follows.
        resync_interval: seconds between two reads of the feed while running.
    """

    def __init__(self, store: Store, resync_interval: float) -> None:
        self.store = store
        self.resync_interval = resync_interval
        #: the global revision up to which the feed has been read
        self.cursor = 0
        #: changes applied so far (notified or read), for tests and metrics
        self.applied = 0
        self._subscribers: list[CatalogSubscriber] = []
        # per (kind, key): the global revision of its last applied change above the cursor
        self._last: dict[tuple[str, str], int] = {}
        self._started = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, subscriber: CatalogSubscriber) -> None:
        """Call ``subscriber`` with every change applied from now on."""
        self._subscribers.append(subscriber)

    async def start(self, load: Callable[[], Awaitable[Iterable[CatalogEntry]]]) -> None:
        """Load the catalog, catch up with the feed, then resync periodically.

        ``load`` returns the entries to apply as the starting state (as changes at the
        feed's revision before it was called); it may return only the kinds the
        subscribers hold.
        """
        revision = await self.store.catalog_revision()
        for entry in await load():
            self._apply(CatalogChange(revision, entry.kind, entry.key, entry))
        self.cursor = revision
        self._started = True
        await self.sync()
        self._task = asyncio.create_task(self._resync(), name="eventyard-catalog-resync")

    async def stop(self) -> None:
        """Stop the periodic resync."""
        self._started = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def offer(self, change: CatalogChange) -> None:
        """Apply a notified change, unless a newer one of its key was applied already."""
        if self._started and change.revision > self.cursor:
            self._apply_if_newer(change)

    async def sync(self) -> None:
        """Read and apply every change after the cursor: when this returns, every change
        committed before it was called is applied here.

        Raises:
            StoreError: the store could not be read.
        """
        async with self._lock:
            while True:
                page = await self.store.catalog_changes(after=self.cursor, limit=_PAGE)
                for change in page:
                    self._apply_if_newer(change)
                if page:
                    self.cursor = max(self.cursor, page[-1].revision)
                if len(page) < _PAGE:
                    break
            if self._last:
                self._last = {k: r for k, r in self._last.items() if r > self.cursor}

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_interval)
            try:
                await self.sync()
            except StoreError as exc:
                log.warning("catalog resync failed; trying again", error=str(exc))
            except Exception:
                log.exception("catalog resync failed; trying again")

    def _apply_if_newer(self, change: CatalogChange) -> None:
        key = (change.kind, change.key)
        if self._last.get(key, 0) >= change.revision:
            return
        self._last[key] = change.revision
        self._apply(change)

    def _apply(self, change: CatalogChange) -> None:
        self.applied += 1
        for subscriber in self._subscribers:
            try:
                subscriber(change)
            except Exception:
                log.exception("applying a catalog change failed", kind=change.kind, key=change.key)
