"""Retention (:mod:`eventyard.server.retention`) over each store: one pass deletes the log
records, archive records and trace entries its settings no longer keep, and only those.

The pass's clock is injected: "now" is the store's clock, and the records are stamped
days before it, as a server running that long would have them.
"""

from __future__ import annotations

import asyncio

from eventyard.server.config import Settings
from eventyard.server.retention import DAY, Retention
from eventyard.server.store import NewEvent, Store, TraceEntry


class _At:
    """A clock that stays at one time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        await wake.wait()


def _event(event_id: str, bus: str, when: float, archives: tuple[str, ...] = ()) -> NewEvent:
    body = f'{{"id":"{event_id}"}}'.encode()
    return NewEvent(event_id, bus, when, body, archives, when if archives else 0.0)


async def test_a_pass_deletes_what_the_settings_no_longer_keep(store: Store) -> None:
    now = store.now()
    for bus in ("orders", "keep", "short"):
        await store.catalog_put("bus", bus, {"Name": bus})
    await store.catalog_put("archive", "a-day", {"ArchiveName": "a-day", "RetentionDays": 1})
    await store.catalog_put("archive", "a-ever", {"ArchiveName": "a-ever", "RetentionDays": 0})
    both = ("a-day", "a-ever")
    await store.ingest(
        [
            _event("orders-old", "orders", now - 8 * DAY, both),  # past 7d and the archive's day
            _event("orders-2d", "orders", now - 2 * DAY, both),  # in the log's 7d, past 1 day
            _event("orders-new", "orders", now - 60, both),
            _event("keep-old", "keep", now - 30 * DAY),  # its bus keeps everything
            _event("short-2d", "short", now - 2 * DAY),  # its bus keeps one day
            _event("short-new", "short", now - 60),
        ]
    )
    await store.trace_append(
        [
            TraceEntry("orders-2d", now - 2 * DAY, "attempt", "t", b"{}"),
            TraceEntry("orders-new", now - 60, "attempt", "t", b"{}"),
        ]
    )
    settings = Settings(
        log_retention="7d",
        log_retention_by_bus={"keep": "forever", "short": "1d"},
        trace_retention="1d",
    )

    done = await Retention(store, settings, clock=_At(now)).run_once()

    assert sorted(r.event_id for r in await store.read_log(0, 100)) == [
        "keep-old",
        "orders-2d",
        "orders-new",
        "short-new",
    ]
    window = (now - 100 * DAY, now + 1)
    assert [r.event_id for r in await store.read_archive("a-day", *window)] == ["orders-new"]
    assert [r.event_id for r in await store.read_archive("a-ever", *window)] == [
        "orders-old",
        "orders-2d",
        "orders-new",
    ]
    assert await store.archive_stats("a-day") == (1, len(b'{"id":"orders-new"}'))
    traced = await store.trace_read(["orders-2d", "orders-new"])
    assert [e.key for e in traced] == ["orders-new"]
    assert (done.log, done.archives, done.trace) == (2, 2, 1)

    # a second pass (another process's, or the next one) finds nothing more to delete
    again = await Retention(store, settings, clock=_At(now)).run_once()
    assert (again.log, again.archives, again.trace) == (0, 0, 0)
