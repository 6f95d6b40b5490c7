"""Latency of time-window reads of the log (``Store.read_log_window``) on a large log.

Fills a fresh store with ``--events`` events (10,000,000 by default) spread over
``--days`` of simulated ingestion time on ``--buses`` buses (round robin), written
straight through ``Store.ingest`` in batches of ``--batch`` events. The clock jitters
(±0.2 s) and steps back a second every 100,000 events, as real clocks do. Then it reads
windows of one bus, every page of each (1000 records a page), at several places of the
log (near its start, middle and end), ``--queries`` windows per row at random offsets,
and prints p50/p99 latency per window size beside the records found; last, for
comparison, the time of a full scan of the log (``read_log`` from the first record to
the last, filtered by bus and time as a search without a time index must).

The cost of a window read follows the records in the window (of every bus), not the
size of the log: a 1-minute window costs the same near the start as near the end.

    .venv/bin/python bench/search.py                   # SQLite, 10M events, a few minutes
    .venv/bin/python bench/search.py --events 200000   # a quick run
    .venv/bin/python bench/search.py --store jetstream --events 1000000   # JetStream
    .venv/bin/python bench/search.py --store jetstream --live              # its time index

Measured on this shared 2-core machine (loaded: other sessions' test suites ran beside
it), SQLite, 10,000,000 events (≈ 4.2 GB), p50 / p99 ms, every page read:

==========  ========  ====================  ====================  ====================
window      records   start                 middle                end
==========  ========  ====================  ====================  ====================
1 minute    248       1.7-4.1 / 9-12        1.0-3.1 / 3-26        0.6-1.3 / 3-19
1 hour      14,881    104-250 / 136-626     96-305 / 136-419      80-201 / 118-411
1 day       357,143   3,717 / 4,339         5,021 / 5,712         4,619 / 4,991
full scan   14,876    70-113 s (read_log over all 10M records, for the 1 hour)
==========  ========  ====================  ====================  ====================

(ranges: three runs; the 1-day row: the last one.) Expiring the first day (1,428,573
records) took 30 s in chunks; the event loop was held at most 72 ms at once (p99 25 ms).

JetStream: see docs/architecture.md, "The audit part" (5M simulated and 300k live
events).

``--store`` is ``sqlite`` (a new file in a temporary directory, the default),
``jetstream`` (a one-node nats-server this bench starts, the pinned one of
``tests/natsserver.py``, in a temporary directory) or any store URL
:func:`eventyard.server.store.open_store` accepts (a ``nats://`` one gets streams of its
own, under a fresh prefix).

``--live`` ingests with the real clock instead of simulated times, as fast as the store
takes it, and reads windows of 1 s, 10 s and 1 min of that: the JetStream store finds
those through the server's own time index (records stored as they happen), while records
of simulated times, far from the clock, are in its "off-clock" buckets of 10 minutes
(see ``eventyard.server.store.jetstream.timeindex``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from eventyard.server.store import NewEvent, Store, open_store

__all__ = ["fill", "main", "open_bench_store", "run"]

#: the simulated log starts here (2026-01-01T00:00:00Z)
START = 1_767_225_600.0
WINDOWS = (("1 minute", 60.0), ("1 hour", 3600.0), ("1 day", 86400.0))
LIVE_WINDOWS = (("1 second", 1.0), ("10 seconds", 10.0), ("1 minute", 60.0))
PLACES = (("start", 0.02), ("middle", 0.5), ("end", 0.97))
PAGE = 1000


@contextlib.asynccontextmanager
async def open_bench_store(kind: str) -> AsyncIterator[Store]:
    """An open, empty store of ``kind``: ``sqlite`` (a new file in a temporary
    directory, removed afterwards) or a store URL for :func:`open_store`."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="eventyard-search-") as directory:
            store = open_store(directory)
            await store.open()
            try:
                yield store
            finally:
                await store.close()
        return
    if kind == "jetstream":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.natsserver import NatsCluster

        with (
            tempfile.TemporaryDirectory(prefix="eventyard-search-") as directory,
            # reads are measured, not fsyncs: the server's default sync interval (2 min)
            NatsCluster(Path(directory), sync="2m") as cluster,
        ):
            async with open_bench_store(cluster.url) as store:
                yield store
        return
    if kind.startswith("nats://"):
        from eventyard.server.store.jetstream import JetStreamStore

        store = JetStreamStore(kind.split(","), prefix=f"search{uuid.uuid4().hex[:8]}")
    else:
        store = open_store(kind)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


_BODY: Final = (
    b'{"version":"0","id":"%032x","detail-type":"order.created","source":"shop",'
    b'"account":"111111111111","time":"%d","region":"us-east-1","resources":[],'
    b'"detail":{"order":%d,"bus":"%s","items":[{"sku":"A-%d","qty":%d}],"note":"'
    + b"x" * 60
    + b'"}}'
)


def body(n: int, bus: bytes, t: float) -> bytes:
    """An envelope of ~300 bytes."""
    return _BODY % (n, t, n, bus, n % 977, n % 5)


async def fill(
    store: Store, *, events: int, days: float, buses: int, batch: int, live: bool = False
) -> float:
    """Write the simulated log (live: with the real clock); returns the seconds it took.

    The next batch is built while the previous one commits (its fsync runs on the
    store's commit thread).
    """
    rng = random.Random(7)
    jitter = [rng.uniform(-0.2, 0.2) for _ in range(1021)]
    step = days * 86400 / events
    names = [f"bus-{b}" for b in range(buses)]
    encoded = [name.encode() for name in names]
    began = time.perf_counter()
    writing: asyncio.Future[Any] | None = None
    for first in range(0, events, batch):
        chunk = []
        now = time.time()
        for n in range(first, min(first + batch, events)):
            # the clock jitters, and steps back a second for 50 events every 100,000
            t = START + n * step + jitter[n % 1021] - (n % 100_000 < 50)
            if live:
                t = now
            b = n % buses
            chunk.append(NewEvent(f"{n:032x}", names[b], t, body(n, encoded[b], t)))
        if writing is not None:
            await writing
        writing = asyncio.ensure_future(store.ingest(chunk))
        await asyncio.sleep(0)  # let the writer run the batch's statements
    if writing is not None:
        await writing
    return time.perf_counter() - began


async def read_window(store: Store, bus: str, since: float, until: float) -> int:
    """Read every page of a window; returns how many records it held."""
    found, after = 0, 0
    while True:
        page = await store.read_log_window(bus, since, until, after, PAGE)
        found += len(page)
        if len(page) < PAGE:
            return found
        after = page[-1].seq


async def full_scan(store: Store, bus: str, since: float, until: float) -> tuple[float, int]:
    """What a search without a time index costs: every record of the log, filtered."""
    began = time.perf_counter()
    found, after = 0, 0
    while page := await store.read_log(after, PAGE):
        found += sum(1 for r in page if r.bus == bus and since <= r.time < until)
        after = page[-1].seq
    return time.perf_counter() - began, found


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)]


async def run(args: argparse.Namespace) -> None:
    start, span, windows = START, args.days * 86400, WINDOWS
    if args.live:
        print(
            f"read_log_window on a log of {args.events:,} events ingested now (the real "
            f"clock), {args.buses} buses; store: {args.store}"
        )
    else:
        print(
            f"read_log_window on a log of {args.events:,} events over {args.days:g} days "
            f"({args.events / span:,.1f} events/s), {args.buses} buses; store: {args.store}"
        )
    async with open_bench_store(args.store) as store:
        start = time.time() if args.live else START
        took = await fill(
            store,
            events=args.events,
            days=args.days,
            buses=args.buses,
            batch=args.batch,
            live=args.live,
        )
        print(f"filled in {took:.0f} s ({args.events / took:,.0f} events/s)\n")
        if args.live:
            span, windows = time.time() - start, LIVE_WINDOWS
        rng = random.Random(11)
        print(f"{'window':<10} {'place':<7} {'records':>8} {'p50 ms':>9} {'p99 ms':>9}")
        for label, width in windows:
            queries = args.queries if width < 86400 else max(3, args.queries // 4)
            if width > span / 4:
                continue
            for place, where in PLACES:
                latencies, counts = [], []
                for _ in range(queries):
                    since = start + where * (span - width) + rng.uniform(-0.01, 0.01) * span
                    since = min(max(start, since), start + span - width)
                    began = time.perf_counter()
                    counts.append(await read_window(store, "bus-0", since, since + width))
                    latencies.append((time.perf_counter() - began) * 1e3)
                print(
                    f"{label:<10} {place:<7} {statistics.mean(counts):>8,.0f} "
                    f"{percentile(latencies, 0.5):>9.2f} {percentile(latencies, 0.99):>9.2f}"
                )
        if not args.no_full_scan:
            label, width = windows[1]
            since = start + 0.5 * span
            seconds, found = await full_scan(store, "bus-0", since, since + width)
            windowed = await read_window(store, "bus-0", since, since + width)
            print(
                f"{'full scan':<10} {'-':<7} {found:>8,} {seconds * 1e3:>9.0f}"
                f"{'':>10}  ({label} of bus-0 found by reading all {args.events:,} records;"
                f" the window read found {'the same' if windowed == found else windowed})"
            )
        await expire_first_day(store, start + span / 7)


async def expire_first_day(store: Store, before: float) -> None:
    """Expire the log's first day (a seventh of it), timing it and how long the loop was
    held at once (a store's retention must never hold its writer for long)."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - began - 0.001)

    watching = asyncio.ensure_future(probe())
    began = time.perf_counter()
    deleted = await store.expire_log(before)
    seconds = time.perf_counter() - began
    done.set()
    await watching
    print(
        f"\nexpire_log of the log's first seventh (a day of 7): {deleted:,} records in"
        f" {seconds:.1f} s; the loop was"
        f" held at most {max(lags, default=0) * 1e3:.0f} ms at once"
        f" (p99 {percentile(lags, 0.99) * 1e3:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=7.0, help="the simulated time span")
    parser.add_argument("--buses", type=int, default=4)
    parser.add_argument("--batch", type=int, default=5000, help="events per ingest")
    parser.add_argument("--queries", type=int, default=20, help="windows per row")
    parser.add_argument("--store", default="sqlite", help="sqlite, jetstream, or a store URL")
    parser.add_argument("--live", action="store_true", help="ingest with the real clock")
    parser.add_argument("--no-full-scan", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
