"""SystemEvents on its own: transitions told once (by whichever process claims them),
dead letters rate-limited per queue, late schedules, and emitting that never raises."""

from __future__ import annotations

import asyncio
from typing import Any

from eventyard.errors import StoreError
from eventyard.server.config import Settings
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.store import CatalogClaim, Store
from eventyard.server.store.sqlite import SQLiteStore
from eventyard.server.system_events import (
    DLQ_MESSAGES,
    MONITOR,
    SCHEDULE_LATE,
    TARGET_CHANGE,
    SystemEvents,
)

RULE = "arn:aws:events:us-east-1:000000000000:rule/r"
DLQ = "arn:aws:sqs:us-east-1:000000000000:dlq"


class Recorder:
    """An emitter that writes the claim like the router does (through ingest)."""

    def __init__(self, store: Store, fail: bool = False) -> None:
        self.store = store
        self.fail = fail
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def emit_system(
        self,
        account: str,
        detail_type: str,
        resources: list[str],
        detail: dict[str, Any],
        claim: CatalogClaim | None = None,
    ) -> None:
        if self.fail:
            raise StoreError("disk full")
        await self.store.ingest([], [], [], claim=claim)
        self.events.append((account, detail_type, detail))


def _spec(dlq: str | None = DLQ) -> TargetSpec:
    return TargetSpec(key="default/r/hook", arn="https://example.com/", rule_arn=RULE, dlq_arn=dlq)


async def _settled(events: SystemEvents) -> None:
    while events._tasks:
        await asyncio.wait(set(events._tasks))


async def test_a_failing_target_is_told_once_by_one_of_two_processes(store: SQLiteStore) -> None:
    settings = Settings(target_failing_after=2)
    one, two = Recorder(store), Recorder(store)
    first, second = SystemEvents(one, store, settings), SystemEvents(two, store, settings)
    first.start()
    second.start()
    try:
        for events in (first, second):
            for _ in range(3):
                events.attempt_failed(_spec(), "HTTP_500", "Internal Server Error")
        await _settled(first)
        await _settled(second)
        told = one.events + two.events
        assert [(t, d["state"]) for _, t, d in told] == [(TARGET_CHANGE, "FAILING")]
        assert told[0][2]["consecutive-failures"] == 2
        assert told[0][2]["error-code"] == "HTTP_500"
        entry = await store.catalog_get(MONITOR, "target:default/r/hook")
        assert entry is not None and entry.doc["state"] == "FAILING"
        first.attempt_succeeded(_spec())
        await _settled(first)
        assert [d["state"] for _, _, d in one.events][-1] == "HEALTHY"
    finally:
        await first.stop()
        await second.stop()


async def test_dead_letters_are_told_at_once_then_counted_per_interval(
    store: SQLiteStore,
) -> None:
    recorder = Recorder(store)
    events = SystemEvents(recorder, store, Settings(dlq_event_interval=0.2))
    events.start()
    try:
        for _ in range(5):
            events.dead_lettered(_spec(), "HTTP_500")
        events.dead_lettered(_spec(dlq=None), "HTTP_500")  # no queue: nothing to tell
        await _settled(events)
        assert [d["messages"] for _, t, d in recorder.events if t == DLQ_MESSAGES] == [1]
        while sum(d["messages"] for _, _, d in recorder.events) < 5:
            await asyncio.sleep(0.05)
            await _settled(events)
        assert [d["messages"] for _, _, d in recorder.events] == [1, 4]
        assert recorder.events[0][2]["queue-arn"] == DLQ
    finally:
        await events.stop()


async def test_only_late_schedules_are_told_and_emitting_never_raises(
    store: SQLiteStore,
) -> None:
    recorder = Recorder(store)
    events = SystemEvents(recorder, store, Settings(schedule_late_after=30))
    events.start()
    try:
        events.schedule_late("000000000000", RULE, 1000.0, 1010.0, 0)
        events.schedule_late("000000000000", RULE, 1000.0, 1100.0, 1)
        await _settled(events)
        assert [(t, d["late-seconds"], d["ticks-skipped"]) for _, t, d in recorder.events] == [
            (SCHEDULE_LATE, 100.0, 1)
        ]
        recorder.fail = True
        events.resource_changed("000000000000", "queue", "q", "arn", "CREATED")
        events.attempt_failed(_spec(), "X", None)
        events.attempt_failed(_spec(), "X", None)
        events.attempt_failed(_spec(), "X", None)
        await _settled(events)  # logged and counted, not raised
    finally:
        await events.stop()
