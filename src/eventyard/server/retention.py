"""Retention: the log, the archives and the trace journal forget what is old enough.

Every ``retention_interval`` seconds (and once at start) :class:`Retention` deletes:

* the log records ingested more than ``log_retention`` ago (``7d`` by default), or
  ``log_retention_by_bus[bus]`` ago for a bus that has its own;
* the records of each archive archived more than its ``RetentionDays`` ago (0 keeps
  them forever, AWS's default);
* the trace journal entries older than ``trace_retention`` (``1d``).

``forever`` (or ``0``) keeps everything of that kind. A pending delivery keeps its
event whatever happens to the log record (the store copies it first).

With per-bus settings, one pass deletes what every bus may lose (older than the longest
retention, when none is ``forever``), buses of a shorter retention get their own pass.
Records of a bus deleted since fall under the global pass.

**Several processes** sharing a store each run retention: the deletes are idempotent
(a record deleted twice is deleted once, the second pass finds nothing), so this costs
a few redundant queries and never deletes more than the settings say.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Final

import structlog

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import StoreError
from eventyard.server.catalog import ARCHIVE, BUS, archive_store
from eventyard.server.config import Settings, parse_retention
from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock
from eventyard.server.store import Store

__all__ = ["DAY", "Retention", "RetentionPass"]

log = structlog.get_logger("eventyard.server.retention")

DAY: Final = 86400.0


@dataclass(slots=True)
class RetentionPass:
    """What one pass deleted: log records, archive records and trace entries."""

    log: int = 0
    archives: int = 0
    trace: int = 0


class Retention:
    """Deletes what the retention settings no longer keep, periodically.

    Args:
        store: the store to expire.
        settings: ``log_retention``, ``log_retention_by_bus``, ``trace_retention`` and
            ``retention_interval``.
        clock: what "now" is and what the task waits on (tests pass a manual clock).
    """

    def __init__(self, store: Store, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.log_retention = parse_retention(settings.log_retention)
        self.by_bus = {
            bus: parse_retention(value) for bus, value in settings.log_retention_by_bus.items()
        }
        self.trace_retention = parse_retention(settings.trace_retention)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run a pass now and then every ``retention_interval`` seconds."""
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="eventyard-retention")

    async def stop(self) -> None:
        """Stop; a pass under way is cancelled (what it deleted stays deleted)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = await self.run_once()
            except StoreError as exc:
                log.warning("retention pass failed; next pass as scheduled", error=str(exc))
            else:
                if done.log or done.archives or done.trace:
                    log.info(
                        "retention pass", log=done.log, archives=done.archives, trace=done.trace
                    )
            await self.clock.wait_until(
                self.clock.time() + self.settings.retention_interval, self._stop
            )

    async def run_once(self) -> RetentionPass:
        """One pass over the log, the archives and the trace journal.

        Raises:
            StoreError: the store failed (what was deleted before stays deleted).
        """
        now = self.clock.time()
        done = RetentionPass()
        done.log = await self._expire_log(now)
        for entry in await self.store.catalog_list(ARCHIVE):
            days = entry.doc.get("RetentionDays") or 0
            if isinstance(days, int | float) and days > 0:
                store = archive_store(entry.key, entry.doc)
                done.archives += await self.store.expire_archive(store, now - days * DAY)
        if self.trace_retention is not None:
            done.trace = await self.store.expire_trace(now - self.trace_retention)
        return done

    async def _expire_log(self, now: float) -> int:
        default = self.log_retention
        if not self.by_bus:
            return 0 if default is None else await self.store.expire_log(now - default)
        retentions = [default, *self.by_bus.values()]
        longest = None if None in retentions else max(r for r in retentions if r is not None)
        deleted = 0
        if longest is not None:
            deleted += await self.store.expire_log(now - longest)
        buses = {e.key for e in await self.store.catalog_list(BUS)} | {DEFAULT_BUS, *self.by_bus}
        for bus in sorted(buses):
            keep = self.by_bus.get(bus, default)
            if keep is not None and (longest is None or keep < longest):
                deleted += await self.store.expire_log(now - keep, bus)
        return deleted
