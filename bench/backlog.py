"""Memory and ingest of a real ``eventyard serve`` behind a dead webhook, up to 1,000,000
pending deliveries.

One rule sends every ``load`` event to a webhook on a loopback port nobody listens on
(connections are refused: the target is dead, every attempt fails and is retried with
the default backoff, so no delivery ever leaves the backlog). Producers put events in
10-entry batches from 64 concurrent connections; at each checkpoint the load pauses
and the table gets a row:

* the server's resident memory (RSS, from ``/proc``) and how many deliveries the engine
  holds in memory (``eventyard_delivery_window``; the rest waits in the store);
* the ingest rate since the previous checkpoint;
* the latency of a *probe*: one event for a second, healthy target (a webhook in this
  process), from PutEvents until it arrives. It shows that the dead target's backlog
  does not stand in front of other targets (no head-of-line blocking).

The server is then restarted over the full backlog (SIGTERM, start again on the same
data directory) and measured again. The main run uses ``max_backlog`` above the number
of events, so it never throttles; a second, short run with ``max_backlog`` 50,000 shows
where throttling starts (``ThrottlingException`` answers) and that the backlog stops
there.

Settings: ``BENCH_BACKLOG_EVENTS`` (default 1,000,000) and ``BENCH_THROTTLE_AT`` (50,000).

On the JetStream store: ``--jetstream`` starts a NATS server of its own (the pinned
nats-server, as the tests do; ``--nats-nodes 3 --replicas 3`` a cluster), ``--store
nats://host:4222`` uses one that runs; ``--processes N`` runs N eventyard processes on
that store, the load spread over them, and the table shows each one's RSS (the
throttling run is SQLite's alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import boto3
import orjson

from _cluster import NatsCluster, ProcessGroup, rss_mib, store_env
from _webhook import HEADERS, Probe, dead_url, metric
from eventyard.testing import ServerProcess

REGION = "us-east-1"
EVENTS = int(os.environ.get("BENCH_BACKLOG_EVENTS", "1000000"))
THROTTLE_AT = int(os.environ.get("BENCH_THROTTLE_AT", "50000"))
CLIENTS = 64
BATCH = 10


def _checkpoints(total: int) -> list[int]:
    marks = [0, 100_000, 250_000, 500_000, 1_000_000]
    return sorted({m for m in marks if m < total} | {total})


def _batch(offset: int) -> bytes:
    entries = [
        {
            "Source": "bench.shop",
            "DetailType": "load",
            "Detail": orjson.dumps(
                {"order": offset + i, "amount": 42.5, "items": ["a", "b"], "customer": "c" * 40}
            ).decode(),
            "EventBusName": "bench",
        }
        for i in range(BATCH)
    ]
    return orjson.dumps({"Entries": entries})


class Load:
    """Puts ``load`` events until a target count, or until the server throttles."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.accepted = 0
        self.throttled = 0
        self.throttled_at: int | None = None

    async def until(self, session: aiohttp.ClientSession, total: int) -> None:
        async def client(url: str) -> None:
            while self.accepted < total and self.throttled_at is None:
                offset = self.accepted
                async with session.post(url, data=_batch(offset), headers=HEADERS) as r:
                    body = await r.read()
                if r.status == 200:
                    self.accepted += BATCH
                elif b"ThrottlingException" in body:
                    self.throttled += 1
                    if self.throttled_at is None:
                        self.throttled_at = self.accepted
                else:
                    raise RuntimeError(f"PutEvents answered {r.status}: {body[:200]!r}")

        urls = self.urls
        await asyncio.gather(*(client(urls[i % len(urls)]) for i in range(CLIENTS)))


def _setup(url: str, dead: str, probe: str) -> None:
    events = boto3.client(
        "events",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    events.create_event_bus(Name="bench")
    events.put_rule(Name="dead", EventBusName="bench", EventPattern='{"detail-type": ["load"]}')
    events.put_targets(Rule="dead", EventBusName="bench", Targets=[{"Id": "dead", "Arn": dead}])
    events.put_rule(Name="probe", EventBusName="bench", EventPattern='{"detail-type": ["probe"]}')
    events.put_targets(Rule="probe", EventBusName="bench", Targets=[{"Id": "probe", "Arn": probe}])


Row = tuple[str, float, list[float], float, float, float, float]


async def _measure(
    group: ProcessGroup, probe: Probe, session: aiohttp.ClientSession, label: str
) -> tuple[list[float], float, float, float]:
    """Every process's RSS, the backlog, the deliveries held in memory, a probe's latency."""
    backlog = metric(group.urls[0], "eventyard_delivery_backlog")
    window = sum(metric(url, "eventyard_delivery_window") for url in group.urls)
    rss = [rss_mib(pid) for pid in group.pids()]
    latency = await probe.latency_ms(session, group.urls[0] + "/", label)
    return rss, backlog, window, latency


async def backlog_run(
    data: Path, processes: int, env: dict[str, str], nats_pids: list[int]
) -> tuple[list[Row], float]:
    probe = Probe()
    await probe.start()
    env = {"EVENTYARD_MAX_BACKLOG": str(2 * EVENTS), "EVENTYARD_LOG_LEVEL": "warning", **env}
    group = ProcessGroup(data, processes, env).start()
    rows: list[Row] = []
    try:
        _setup(group.urls[0], dead_url(), probe.url)
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(connector=connector) as session:
            load = Load([url + "/" for url in group.urls])
            last, last_at = 0, time.perf_counter()
            for mark in _checkpoints(EVENTS):
                await load.until(session, mark)
                now = time.perf_counter()
                rate = (load.accepted - last) / (now - last_at) if load.accepted > last else 0.0
                rss, backlog, window, latency = await _measure(group, probe, session, f"m{mark}")
                nats = sum(rss_mib(pid) for pid in nats_pids)
                label = f"{load.accepted:,} events put"
                rows.append((label, backlog, rss, window, latency, rate, nats))
                last, last_at = load.accepted, time.perf_counter()
        stopped = time.perf_counter()
        group.stop()
        group.start()
        restart = time.perf_counter() - stopped
        async with aiohttp.ClientSession() as session:
            rss, backlog, window, latency = await _measure(group, probe, session, "restart")
            nats = sum(rss_mib(pid) for pid in nats_pids)
            rows.append(("after a restart", backlog, rss, window, latency, 0.0, nats))
            await asyncio.sleep(10)  # the engine pages and retries meanwhile
            rss, backlog, window, latency = await _measure(group, probe, session, "restart+10")
            nats = sum(rss_mib(pid) for pid in nats_pids)
            rows.append(("10 s after the restart", backlog, rss, window, latency, 0.0, nats))
        return rows, restart
    finally:
        group.stop()
        await probe.stop()


async def throttle_run(data: Path) -> tuple[int | None, int, float, int]:
    env = {"EVENTYARD_MAX_BACKLOG": str(THROTTLE_AT), "EVENTYARD_LOG_LEVEL": "warning"}
    server = ServerProcess(data, env=env).start()
    try:
        _setup(server.url, dead_url(), "http://127.0.0.1:9/never")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as s:
            load = Load([server.url + "/"])
            await load.until(s, 2 * THROTTLE_AT)
        backlog = metric(server.url, "eventyard_delivery_backlog")
        with urllib.request.urlopen(server.url + "/livez", timeout=10) as answer:
            assert answer.status == 200
        try:
            urllib.request.urlopen(server.url + "/readyz", timeout=10)
            ready = 200
        except urllib.error.HTTPError as exc:
            ready = exc.code
        return load.throttled_at, load.throttled, backlog, ready
    finally:
        server.stop()


@contextlib.contextmanager
def _store(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[str, dict[str, str], list[int]]]:
    """The store the run uses, in words, the environment that selects it, and the pids
    of the NATS servers this bench started."""
    if args.store:
        yield args.store, store_env(args.store, args.replicas), []
    elif args.jetstream:
        with NatsCluster(tmp / "nats", size=args.nats_nodes) as nats:
            pids = [n.process.pid for n in nats.nodes if n.process is not None]
            what = f"JetStream R{args.replicas} on {args.nats_nodes} NATS node(s)"
            yield what, store_env(nats.url, args.replicas), pids
    else:
        yield "SQLite", {}, []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="a running NATS server's URL (nats://host:4222)")
    parser.add_argument("--jetstream", action="store_true", help="start a NATS server to use")
    parser.add_argument("--nats-nodes", type=int, default=1, help="with --jetstream")
    parser.add_argument("--replicas", type=int, default=1, help="JetStream replicas")
    parser.add_argument("--processes", type=int, default=1, help="eventyard processes")
    args = parser.parse_args()
    shared = bool(args.store or args.jetstream)
    if args.processes > 1 and not shared:
        parser.error("several processes need a shared store: --jetstream or --store")
    with tempfile.TemporaryDirectory() as tmp, _store(args, Path(tmp)) as (store, env, nats):
        data = Path(tmp) / "backlog"
        rows, restart = asyncio.run(backlog_run(data, args.processes, env, nats))
        throttle = None if shared else asyncio.run(throttle_run(Path(tmp) / "throttle"))
    print(
        f"{store}, {args.processes} process(es); dead webhook, {EVENTS:,} events put in "
        f"{BATCH}-entry batches by {CLIENTS} clients"
    )
    header = ("backlog", "RSS MiB", "in memory", "probe ms", "events/s")
    print(f"{'':<24} {header[0]:>10} {header[1]:>8} {header[2]:>9} {header[3]:>9} {header[4]:>9}")
    print("-" * 74)
    for label, backlog, rss, window, latency, rate, nats in rows:
        shown = f"{rate:>9,.0f}" if rate else f"{'':>9}"
        each = " / ".join(f"{r:.1f}" for r in rss) if len(rss) > 1 else ""
        if nats:
            each += f"  nats-server {nats:.1f}"
        print(
            f"{label:<24} {backlog:>10,.0f} {max(rss):>8.1f} {window:>9,.0f} {latency:>9.1f} "
            f"{shown} {each}".rstrip()
        )
    print("-" * 74)
    if len(rows[0][2]) > 1:
        print("RSS MiB is the largest eventyard process's; each one's follows the row")
    ingest = rows[: len(_checkpoints(EVENTS))]
    full = ingest[-1]
    for start in (ingest[0], ingest[1] if len(ingest) > 2 else ingest[0]):
        growth = max(b - a for a, b in zip(start[2], full[2], strict=True))
        print(f"RSS growth from {start[1]:,.0f} to {full[1]:,.0f} pending: {growth:+.1f} MiB")
    print(f"restart over the full backlog until ready: {restart:.1f} s")
    if throttle is not None:
        throttled_at, refused, held, ready = throttle
        print(
            f"throttling (max_backlog {THROTTLE_AT:,}): first ThrottlingException at "
            f"{throttled_at if throttled_at is not None else 'never'} events accepted; "
            f"{refused:,} requests refused; backlog held at {held:,.0f}; /readyz {ready}"
        )


if __name__ == "__main__":
    main()
