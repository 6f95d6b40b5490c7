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


async def test_a_target_failing_before_a_restart_is_told_healthy_after_it(
    store: SQLiteStore,
) -> None:
    # the process that told FAILING stopped; the catalog still says FAILING. The next
    # process's first success must tell HEALTHY (else the state stays FAILING for good
    # and the target's next failures are never told).
    settings = Settings(target_failing_after=1)
    before = Recorder(store)
    old = SystemEvents(before, store, settings)
    old.start()
    old.attempt_failed(_spec(), "HTTP_500", "down")
    await _settled(old)
    await old.stop()
    assert [d["state"] for _, _, d in before.events] == ["FAILING"]

    after = Recorder(store)
    new = SystemEvents(after, store, settings)
    new.start()
    try:
        new.attempt_succeeded(_spec())
        await _settled(new)
        assert [d["state"] for _, _, d in after.events] == ["HEALTHY"]
        new.attempt_failed(_spec(), "HTTP_500", "down again")
        await _settled(new)
        assert [d["state"] for _, _, d in after.events] == ["HEALTHY", "FAILING"]
    finally:
        await new.stop()


async def test_the_health_of_removed_targets_is_forgotten(store: SQLiteStore) -> None:
    existing = {"default/r/hook"}
    events = SystemEvents(
        Recorder(store), store, Settings(target_failing_after=5), exists=existing.__contains__
    )
    events.start()
    try:
        for index in range(100):
            spec = TargetSpec(key=f"default/r/t{index}", arn="https://example.com/", rule_arn=RULE)
            events.attempt_failed(spec, "HTTP_500", None)
        events.attempt_failed(_spec(), "HTTP_500", None)
        events.prune()
        assert set(events._health) == {"default/r/hook"}
    finally:
        await events.stop()


async def test_dead_letters_of_system_bus_rules_are_not_told_again(store: SQLiteStore) -> None:
    # an alert rule on the system bus whose target fails into the queue it watches would
    # otherwise feed itself: each dead letter a new event, each event a new dead letter
    recorder = Recorder(store)
    events = SystemEvents(recorder, store, Settings(dlq_event_interval=0))
    events.start()
    try:
        alert = TargetSpec(
            key="000000000000/eventyard/alert/chat",
            arn="https://example.com/",
            rule_arn="arn:aws:events:us-east-1:000000000000:rule/eventyard/alert",
            dlq_arn=DLQ,
        )
        events.dead_lettered(alert, "HTTP_500")
        events.dead_lettered(_spec(), "HTTP_500")
        await _settled(events)
        assert [d["rule-arn"] for _, t, d in recorder.events if t == DLQ_MESSAGES] == [RULE]
    finally:
        await events.stop()


async def test_rate_limit_deferrals_of_eventyard_itself_are_no_target_failures(
    store: SQLiteStore,
) -> None:
    # an API destination's own rate limit holds calls back (error code RATE_LIMITED):
    # the destination did not fail, so a burst must not tell the target FAILING
    recorder = Recorder(store)
    events = SystemEvents(recorder, store, Settings(target_failing_after=2))
    events.start()
    try:
        for _ in range(5):
            events.attempt_failed(_spec(), "RATE_LIMITED", "the next call slot is 12 s away")
        await _settled(events)
        assert recorder.events == []
    finally:
        await events.stop()


class _QueueHooks:
    def __init__(self) -> None:
        from eventyard.server.signals import QueueSignals

        self.signals = QueueSignals()

    async def sync_catalog(self) -> None:
        pass

    def resource_changed(self, *_: Any, **__: Any) -> None:
        pass


async def test_a_queue_created_again_starts_its_alarms_afresh(store: SQLiteStore) -> None:
    # the deleted queue's ALARM must not make the new queue's crossing go untold
    from eventyard.server.api.sqs import QueuesApi
    from eventyard.server.system_events import QUEUE_THRESHOLD

    settings = Settings(account_id="000000000000")
    api = QueuesApi(store, settings, _QueueHooks())
    recorder = Recorder(store)
    events = SystemEvents(recorder, store, settings)
    events.start()
    try:
        for _ in range(2):
            url = (
                await api.call(
                    "CreateQueue", {"QueueName": "busy", "tags": {"eventyard:alarm-depth": "1"}}
                )
            )["QueueUrl"]
            await api.call("SendMessage", {"QueueUrl": url, "MessageBody": "m"})
            await events.check_queues()
            await api.call("DeleteQueue", {"QueueUrl": url})
        told = [d["state"] for _, t, d in recorder.events if t == QUEUE_THRESHOLD]
        assert told == ["ALARM", "ALARM"]
    finally:
        await events.stop()


async def test_a_store_failure_while_telling_a_transition_is_logged_not_lost(
    tmp_path: Any,
) -> None:
    # the claim's read fails (the store is closed): the error must be logged, not left
    # in a task nobody awaits ("Task exception was never retrieved", at best)
    from structlog.testing import capture_logs

    store = SQLiteStore(str(tmp_path / "closed.db"))
    await store.open()
    await store.close()
    events = SystemEvents(Recorder(store), store, Settings(target_failing_after=1))
    events.start()
    try:
        with capture_logs() as logs:
            events.attempt_failed(_spec(), "HTTP_500", None)
            tasks = set(events._tasks)
            await asyncio.wait(tasks)
        assert all(not task.cancelled() and task.exception() is None for task in tasks)
        assert any(entry["event"] == "cannot tell a system event" for entry in logs)
    finally:
        await events.stop()
