"""What archives cost at ingest, and how fast a replay runs, in process on SQLite.

Prints one table: events/s through the router (``PutEvents`` of 10-entry batches, 8
concurrent callers, group commit) on a bus

* with no archive (the baseline: an archive elsewhere costs nothing here),
* with an archive keeping every event,
* with an archive whose pattern keeps one event in two,

then the rate at which one replay sends those archived events back (``replay_rate``
lifted out of the way). ``BENCH_EVENTS`` (default 10,000) sets the events per run; five
interleaved rounds, the median shown. A bus with no rule skips matching altogether: its
archive's pattern costs what a rule's pattern would.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from eventyard.server.api.aws import EventsApi
from eventyard.server.catalog import REPLAY
from eventyard.server.config import Settings
from eventyard.server.replay import Replayer
from eventyard.server.router import Router
from eventyard.server.store.sqlite import SQLiteStore

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000"))
CALLERS = 8
ROUNDS = 5
ACCOUNT = "111111111111"


async def _put(api: EventsApi, bus: str, count: int, when: str) -> float:
    batches = count // 10

    async def caller(n: int) -> None:
        for i in range(n, batches, CALLERS):
            entries = [
                {
                    "Source": "shop",
                    "DetailType": "t",
                    "Detail": f'{{"n": {i * 10 + j}, "half": {j % 2}}}',
                    "EventBusName": bus,
                    "Time": when,
                }
                for j in range(10)
            ]
            await api.call("PutEvents", {"Entries": entries})

    start = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(CALLERS)))
    return count / (time.perf_counter() - start)


async def _run(path: Path) -> list[tuple[str, float]]:
    store = SQLiteStore(str(path / "eventyard.db"))
    await store.open()
    settings = Settings(account_id=ACCOUNT, data_dir=str(path), max_backlog=0, replay_rate=1e9)
    router = Router(settings, store)
    await router.start()
    api = EventsApi(store, settings, router)
    rows: list[tuple[str, float]] = []
    try:
        arn = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/"
        for bus in ("plain", "every", "half", "elsewhere"):
            await api.call("CreateEventBus", {"Name": bus})
        await api.call("CreateArchive", {"ArchiveName": "every", "EventSourceArn": arn + "every"})
        await api.call(
            "CreateArchive",
            {
                "ArchiveName": "half",
                "EventSourceArn": arn + "half",
                "EventPattern": '{"detail": {"half": [1]}}',
            },
        )
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
        runs = (
            ("no archive on the bus", "plain"),
            ("an archive of every event", "every"),
            ("an archive with a pattern (1 in 2)", "half"),
        )
        # interleaved rounds: the store grows alike under each, the machine's noise too
        rates: dict[str, list[float]] = {bus: [] for _, bus in runs}
        for _ in range(ROUNDS):
            for _, bus in runs:
                rates[bus].append(await _put(api, bus, EVENTS, when))
        rows.extend((f"ingest, {label}", statistics.median(rates[bus])) for label, bus in runs)
        archive = await api.call("DescribeArchive", {"ArchiveName": "every"})
        now = time.time()
        await api.call(
            "StartReplay",
            {
                "ReplayName": "bench",
                "EventSourceArn": archive["ArchiveArn"],
                "EventStartTime": now - 3600,
                "EventEndTime": now - 60,
                "Destination": {"Arn": arn + "every"},
            },
        )
        replayer = Replayer(router, settings)
        start = time.perf_counter()
        await replayer.scan()
        while True:
            entry = await store.catalog_get(REPLAY, "bench")
            assert entry is not None
            if entry.doc["State"] not in ("STARTING", "RUNNING"):
                break
            await asyncio.sleep(0.05)
        replayed: Any = entry.doc.get("eventyard:Replayed")
        rows.append((f"replay ({replayed} events)", replayed / (time.perf_counter() - start)))
        await replayer.stop()
    finally:
        await router.stop()
        await store.close()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(_run(Path(tmp)))
    base = rows[0][1]
    print(f"{'run':<48} {'events/s':>10} {'vs no archive':>14}")
    for label, rate in rows:
        print(f"{label:<48} {rate:>10,.0f} {rate / base:>13.2f}x")


if __name__ == "__main__":
    main()
