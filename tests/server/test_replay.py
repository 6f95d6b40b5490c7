"""The replayer across processes: a replay whose owner died is taken over and resumed from
the progress its owner recorded, so each archived event is replayed exactly once.

Two replayers share one store and router, as two processes share a store; each has its
own manual clock, so the first one's throttle holds it still after one batch.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from eventyard.envelope import format_time
from eventyard.server.api.aws import EventsApi
from eventyard.server.catalog import REPLAY
from eventyard.server.config import Settings
from eventyard.server.replay import Replayer
from eventyard.server.router import Router
from eventyard.server.store.sqlite import SQLiteStore
from tests.helpers import apoll_until
from tests.server.delivery.conftest import ManualClock

HOME = "111111111111"


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[Router]:
    store = SQLiteStore(str(tmp_path / "eventyard.db"))
    await store.open()
    router = Router(Settings(account_id=HOME, data_dir=str(tmp_path)), store)
    await router.start()
    try:
        yield router
    finally:
        await router.stop()
        await store.close()


async def test_a_dead_owners_replay_is_resumed_where_it_stopped(router: Router) -> None:
    api = EventsApi(router.store, router.settings, router)
    store = router.store
    bus_arn = f"arn:aws:events:us-east-1:{HOME}:event-bus/default"
    archive = await api.call("CreateArchive", {"ArchiveName": "all", "EventSourceArn": bus_arn})
    now = time.time()
    entries = [
        {"Source": "shop", "DetailType": "t", "Detail": "{}", "Time": format_time(now - 300)}
        for _ in range(6)
    ]
    put = await api.call("PutEvents", {"Entries": entries})
    originals = sorted(e["EventId"] for e in put["Entries"])
    await api.call(
        "StartReplay",
        {
            "ReplayName": "again",
            "EventSourceArn": archive["ArchiveArn"],
            "EventStartTime": now - 600,
            "EventEndTime": now - 60,
            "Destination": {"Arn": bus_arn},
        },
    )

    def sent(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            entry = await store.catalog_get(REPLAY, "again")
            assert entry is not None
            return bool(entry.doc.get("eventyard:Replayed") == count)

        return check

    # the first owner sends 2 events a second: one batch, then its clock holds it
    slow = Settings(account_id=HOME, replay_rate=2, replay_settle=0)
    clock = ManualClock(now)
    first = Replayer(router, slow, clock=clock, owner="first")
    await first.scan()
    assert first.running == ["again"]
    await apoll_until(sent(2), what="the first batch")
    await apoll_until(lambda: clock._sleepers, what="the throttle's wait")
    clock.advance(1.0)  # a second later, the next batch
    await apoll_until(sent(4), what="the second batch")
    # it dies: its task ends, nothing is handed back, its heartbeat grows old
    for task in first._running.values():
        task.cancel()
    await apoll_until(lambda: not first.running, what="the first owner's end")
    entry = await store.catalog_get(REPLAY, "again")
    assert entry is not None and entry.doc["State"] == "RUNNING"
    doc = {**entry.doc, "eventyard:Heartbeat": store.now() - 100}
    await store.catalog_put(REPLAY, "again", doc, expect_revision=entry.revision)

    second = Replayer(router, Settings(account_id=HOME, replay_settle=0), owner="second")
    await second.scan()
    assert second.running == ["again"]

    async def completed() -> bool:
        found = await store.catalog_get(REPLAY, "again")
        return found is not None and found.doc["State"] == "COMPLETED"

    await apoll_until(completed, what="the replay's completion")
    final = await store.catalog_get(REPLAY, "again")
    assert final is not None
    assert final.doc["eventyard:Owner"] == "second"
    assert final.doc["eventyard:Replayed"] == 6
    assert final.doc["EventLastReplayedTime"] == now - 60
    # the log: the 6 events, then each replayed once, with its replay-name
    bodies = [orjson.loads(r.body) for r in await store.read_log(0, 100)]
    again = sorted(b["id"] for b in bodies if b.get("replay-name") == "again")
    assert again == originals


async def test_a_window_of_years_with_few_events_takes_few_reads(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = EventsApi(router.store, router.settings, router)
    store = router.store
    bus_arn = f"arn:aws:events:us-east-1:{HOME}:event-bus/default"
    archive = await api.call("CreateArchive", {"ArchiveName": "all", "EventSourceArn": bus_arn})
    now = time.time()
    year = 365 * 86400
    times = [now - 9 * year, now - 9 * year + 30, now - 2 * year, now - 300]
    entries = [
        {"Source": "s", "DetailType": "t", "Detail": "{}", "Time": format_time(t)} for t in times
    ]
    await api.call("PutEvents", {"Entries": entries})
    reads = 0
    read_archive = store.read_archive

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await read_archive(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "read_archive", counted)
    await api.call(
        "StartReplay",
        {
            "ReplayName": "decade",
            "EventSourceArn": archive["ArchiveArn"],
            "EventStartTime": now - 10 * year,
            "EventEndTime": now - 60,
            "Destination": {"Arn": bus_arn},
        },
    )
    replayer = Replayer(router, Settings(account_id=HOME, replay_settle=0), owner="one")
    await replayer.scan()

    async def completed() -> bool:
        found = await store.catalog_get(REPLAY, "decade")
        return found is not None and found.doc["State"] == "COMPLETED"

    await apoll_until(completed, what="the replay's completion")
    final = await store.catalog_get(REPLAY, "decade")
    assert final is not None and final.doc["eventyard:Replayed"] == 4
    # five million one-minute slices, read in a few hundred probes and slices
    assert reads < 500, reads


async def test_a_replay_of_a_deleted_archive_fails_with_the_reason(router: Router) -> None:
    api = EventsApi(router.store, router.settings, router)
    bus_arn = f"arn:aws:events:us-east-1:{HOME}:event-bus/default"
    archive = await api.call("CreateArchive", {"ArchiveName": "gone", "EventSourceArn": bus_arn})
    now = time.time()
    await api.call(
        "StartReplay",
        {
            "ReplayName": "orphan",
            "EventSourceArn": archive["ArchiveArn"],
            "EventStartTime": now - 600,
            "EventEndTime": now - 60,
            "Destination": {"Arn": bus_arn},
        },
    )
    await api.call("DeleteArchive", {"ArchiveName": "gone"})
    await Replayer(router, Settings(account_id=HOME), owner="one").scan()

    async def failed() -> dict[str, object] | None:
        found = await api.call("DescribeReplay", {"ReplayName": "orphan"})
        return found if found["State"] == "FAILED" else None

    described = await apoll_until(failed, what="the replay's failure")
    assert described["StateReason"] == "Archive gone does not exist."
    assert "ReplayEndTime" in described


async def test_a_replay_whose_archive_is_deleted_mid_run_fails(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = EventsApi(router.store, router.settings, router)
    bus_arn = f"arn:aws:events:us-east-1:{HOME}:event-bus/default"
    archive = await api.call("CreateArchive", {"ArchiveName": "going", "EventSourceArn": bus_arn})
    now = time.time()
    await api.call(
        "StartReplay",
        {
            "ReplayName": "midway",
            "EventSourceArn": archive["ArchiveArn"],
            "EventStartTime": now - 600,
            "EventEndTime": now - 60,
            "Destination": {"Arn": bus_arn},
        },
    )
    read_archive = router.store.read_archive
    deletes: list[object] = []

    async def deleted_while_read(*args: object, **kwargs: object) -> object:
        if not deletes:  # the archive is deleted while the replay runs
            deletes.append(await api.call("DeleteArchive", {"ArchiveName": "going"}))
        return await read_archive(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(router.store, "read_archive", deleted_while_read)
    await Replayer(router, Settings(account_id=HOME, replay_settle=0), owner="one").scan()

    async def ended() -> dict[str, object] | None:
        found = await api.call("DescribeReplay", {"ReplayName": "midway"})
        return found if found["State"] in ("FAILED", "COMPLETED") else None

    described = await apoll_until(ended, what="the replay's end")
    assert described["State"] == "FAILED"
    assert described["StateReason"] == "Archive going does not exist."


async def test_an_archive_created_again_never_sees_its_predecessors_events(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = EventsApi(router.store, router.settings, router)
    bus_arn = f"arn:aws:events:us-east-1:{HOME}:event-bus/default"
    create = {"ArchiveName": "again", "EventSourceArn": bus_arn}
    await api.call("CreateArchive", create)
    await api.call("PutEvents", {"Entries": [{"Source": "s", "DetailType": "t", "Detail": "{}"}]})
    assert (await api.call("DescribeArchive", {"ArchiveName": "again"}))["EventCount"] == 1

    async def dies(archive: str) -> None:  # the process dies before the events are dropped
        return None

    monkeypatch.setattr(router.store, "drop_archive", dies)
    await api.call("DeleteArchive", {"ArchiveName": "again"})
    await api.call("CreateArchive", create)
    assert (await api.call("DescribeArchive", {"ArchiveName": "again"}))["EventCount"] == 0
