"""Contract: what a store acknowledged is there after close and reopen, and after kill -9.

Power loss cannot be simulated here; the SQLite store's answer to it is
``synchronous=FULL`` (COMMIT returns after the WAL's fsync), checked in its own tests.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from store_factories import StoreFactory

from eventyard.errors import StoreError
from eventyard.server.store import NewDelivery, NewEvent, NewMessage, Store

CRASH_WRITER = Path(__file__).with_name("store_crash_writer.py")


async def test_everything_written_is_there_after_close_and_reopen(
    store_factory: StoreFactory, location: Path
) -> None:
    first = store_factory(location)
    await first.open()
    revision = await first.catalog_put("rule", "default/r", {"State": "ENABLED"})
    await first.catalog_put("rule", "default/gone", {})
    await first.catalog_delete("rule", "default/gone")
    e1 = NewEvent("e1", "default", 1.0, b'{"n":1}')
    e2 = NewEvent("e2", "default", 2.0, b'{"n":2}')
    stored = await first.ingest(
        [e1, e2],
        [
            NewDelivery("default/r/t", "e1", e1.body, e1.body, 1.0, 5.0),
            NewDelivery("default/r/t", "e2", b"rendered", e2.body, 2.0, 6.0),
        ],
    )
    await first.claim_deliveries("durability", "default/r/t", 10, 300.0)
    assert await first.settle("durability", retry=[(stored[1].id, 60.0, 2)]) == []
    await first.queue_send([NewMessage("q", "m1"), NewMessage("q", "m2", delay=600)])
    now = time.time()
    (received,) = await first.queue_receive("q", 1, 300, now)
    log = await first.read_log()
    pending = await first.pending_deliveries()
    await first.close()

    second = store_factory(location)
    await second.open()
    try:
        entry = await second.catalog_get("rule", "default/r")
        assert entry is not None and (entry.doc, entry.revision) == ({"State": "ENABLED"}, revision)
        assert await second.catalog_get("rule", "default/gone") is None
        assert (
            await second.catalog_put("rule", "default/r", {}, expect_revision=revision) > revision
        )
        assert await second.read_log() == log
        assert await second.last_seq() == log[-1].seq
        assert await second.pending_deliveries() == pending
        assert (pending[1].due, pending[1].attempts) == (60.0, 2)
        assert await second.queue_counts("q", now) == (0, 1, 1)
        assert await second.queue_delete("q", received.receipt) is True
        # Numbering continues where it stopped: no reused sequence or delivery id.
        more = await second.ingest(
            [NewEvent("e3", "default", 3.0, b"{}")],
            [NewDelivery("t", "e3", b"{}", b"{}", 3.0, 3.0)],
        )
        assert (await second.read_log(log[-1].seq))[0].seq > log[-1].seq
        assert more[0].id > max(d.id for d in pending)
    finally:
        await second.close()


async def test_close_is_idempotent_and_the_closed_store_refuses_work(store: Store) -> None:
    await store.close()
    await store.close()
    calls: list[Any] = [
        store.catalog_get("k", "x"),
        store.catalog_list("k"),
        store.catalog_put("k", "x", {}),
        store.catalog_delete("k", "x"),
        store.ingest([NewEvent("e", "default", 1.0, b"{}")]),
        store.read_log(),
        store.last_seq(),
        store.pending_deliveries(),
        store.claim_deliveries("o", "t", 1, 30.0),
        store.renew_leases("o", [1], 30.0),
        store.settle("o", done=[1]),
        store.queue_send([NewMessage("q", "m")]),
        store.queue_receive("q", 1, 30, time.time()),
        store.queue_delete("q", "r"),
        store.queue_change_visibility("q", "r", 0, time.time()),
        store.queue_purge("q"),
        store.queue_counts("q", time.time()),
        store.queue_next_visible("q", time.time()),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            await call


async def test_close_waits_for_writes_already_queued(
    store_factory: StoreFactory, location: Path
) -> None:
    first = store_factory(location)
    await first.open()
    writes = [asyncio.ensure_future(first.catalog_put("k", str(n), {"n": n})) for n in range(50)]
    await asyncio.sleep(0)  # let every write reach the store
    await first.close()
    revisions = await asyncio.gather(*writes)
    second = store_factory(location)
    await second.open()
    try:
        listed = await second.catalog_list("k")
        assert sorted(e.doc["n"] for e in listed) == list(range(50))
        assert all(isinstance(r, int) for r in revisions)
    finally:
        await second.close()


# Kill points: right at the start, after many batches, and a few ms after an ack (which
# lands mid-batch or mid-commit more often: then the log holds writes nobody saw acked).
@pytest.mark.parametrize("kill_point", [(20, 0.0), (3000, 0.0), (1000, 0.004), (1000, 0.013)])
async def test_every_acknowledged_write_survives_kill_9(
    store_name: str,
    store_factory: StoreFactory,
    location: Path,
    tmp_path: Path,
    kill_point: tuple[int, float],
) -> None:
    acks_before_kill, delay = kill_point
    stderr_path = tmp_path / "writer.stderr"
    with stderr_path.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CRASH_WRITER),
            store_name,
            str(location),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert child.stdout is not None
    output = b""
    try:
        while output.count(b"\n") < acks_before_kill:
            line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
            if not line:
                pytest.fail(f"the writer exited early:\n{stderr_path.read_text()}")
            output += line
        await asyncio.sleep(delay)
    finally:
        # SIGKILL while the writers are still going: no cleanup, no close().
        child.send_signal(signal.SIGKILL)
        await child.wait()
    output += await child.stdout.read()
    assert child.returncode == -signal.SIGKILL
    # Every ack the child wrote before it died is in the pipe (one write per line).
    lines = output.decode().splitlines()
    events = {line.split()[1] for line in lines if line.startswith("E ")}
    puts: dict[str, int] = {}
    for line in lines:
        if line.startswith("C "):
            _, key, counter = line.split()
            puts[key] = max(puts.get(key, -1), int(counter))
    assert len(events) >= acks_before_kill // 3

    reopened = store_factory(location)
    await reopened.open()
    try:
        logged = {r.event_id for r in await reopened.read_log(0, 10_000_000)}
        assert events <= logged, f"lost {len(events - logged)} acknowledged events"
        # Each ingest was atomic: every logged event has its delivery and its message.
        delivered = {d.event_id for d in await reopened.pending_deliveries(0, 10_000_000)}
        messages = await reopened.queue_receive("crash", 10_000_000, 60, time.time())
        assert logged == delivered == {m.body for m in messages}
        for key, counter in puts.items():
            entry = await reopened.catalog_get("crash", key)
            assert entry is not None and entry.doc["i"] >= counter
    finally:
        await reopened.close()
