"""The trace journal's writer (batched, off the hot path) and the time-ordered event ids."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import orjson
import pytest

from eventyard.envelope import event_id_time, new_event_id
from eventyard.errors import StoreError
from eventyard.server.journal import ATTEMPT, QUEUE_DELETE, TraceJournal
from eventyard.server.store import SQLiteStore, TraceEntry


def test_event_ids_are_uuid7_carrying_the_ingestion_millisecond() -> None:
    now = 1_767_225_600.1234
    ids = [new_event_id(now) for _ in range(100)]
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == 100
    assert {event_id_time(i) for i in ids} == {1_767_225_600.123}
    assert event_id_time(new_event_id()) == pytest.approx(time.time(), abs=1)
    assert event_id_time(str(uuid.uuid4())) is None
    assert event_id_time("not-an-id") is None


async def test_recorded_entries_are_written_in_one_batch_and_read_back(
    store: SQLiteStore,
) -> None:
    journal = TraceJournal(store, clock=lambda: 100.0)
    journal.attempt("e1", "b/r/t", 1, "retry", status=500, error_code="HTTP_5XX", error="boom")
    journal.queue_delete("m1", "q")
    await journal.flush()
    (attempt,) = await store.trace_read(["e1"])
    assert (attempt.kind, attempt.target, attempt.time) == (ATTEMPT, "b/r/t", 100.0)
    assert orjson.loads(attempt.detail) == {
        "attempt": 1,
        "outcome": "retry",
        "status": 500,
        "error_code": "HTTP_5XX",
        "error": "boom",
    }
    assert [e.kind for e in await store.trace_read(["m1"])] == [QUEUE_DELETE]


class _Recording:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail
        self.written = asyncio.Event()

    async def trace_append(self, entries: Sequence[TraceEntry]) -> None:
        if self.fail:
            raise StoreError("disk full")
        self.batches.append(len(entries))
        self.written.set()


async def test_a_disabled_journal_records_nothing_and_a_failing_store_loses_only_entries() -> None:
    recording = _Recording()
    off = TraceJournal(recording, enabled=False)  # type: ignore[arg-type]
    off.attempt("e", "t", 1, "delivered")
    off.queue_receive("m", "q", 1)
    await off.flush()
    assert recording.batches == []

    failing = _Recording(fail=True)
    journal = TraceJournal(failing, limit=3)  # type: ignore[arg-type]
    for n in range(5):
        journal.queue_receive(f"m{n}", "q", 1)  # past the limit: dropped, never blocks
    await journal.flush()  # the store fails: the entries are lost, nothing raises
    await journal.flush()


async def test_the_background_writer_flushes_full_batches_and_on_stop() -> None:
    recording = _Recording()
    journal = TraceJournal(recording, linger=60.0, batch=2)  # type: ignore[arg-type]
    journal.start()
    journal.queue_receive("m1", "q", 1)
    journal.queue_receive("m2", "q", 1)  # a full batch wakes the writer at once
    await asyncio.wait_for(recording.written.wait(), 10)  # long before the 60 s linger
    assert recording.batches == [2]
    journal.queue_receive("m3", "q", 1)
    await journal.stop()  # writes what is left
    assert recording.batches == [2, 1]


async def test_stop_waits_for_a_write_in_progress_and_writes_what_came_after() -> None:
    recording = _Recording()
    started, release = asyncio.Event(), asyncio.Event()
    append = recording.trace_append

    async def slow_append(entries: Sequence[TraceEntry]) -> None:
        started.set()
        await release.wait()
        await append(entries)

    recording.trace_append = slow_append  # type: ignore[method-assign]
    journal = TraceJournal(recording, linger=60.0, batch=2)  # type: ignore[arg-type]
    journal.start()
    journal.queue_receive("m1", "q", 1)
    journal.queue_receive("m2", "q", 1)
    await asyncio.wait_for(started.wait(), 10)  # the writer is in the middle of a write
    stopping = asyncio.create_task(journal.stop())
    await asyncio.sleep(0)
    journal.queue_receive("m3", "q", 1)
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert recording.batches == [2, 1]  # nothing lost
    journal.queue_receive("m4", "q", 1)  # recorded after stop: the next stop writes it
    await journal.stop()
    assert recording.batches == [2, 1, 1]
