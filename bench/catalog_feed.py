"""How fast a router converges on catalog changes it did not make.

A :class:`~eventyard.server.router.Router` runs over a SQLite store; ``--changes`` rule
changes are written straight to the store (as another process would: puts, with every
fifth one a delete), one every ``0..--spacing`` ms at random. For each, convergence is
the time from the start of the write until the router has applied it, or a later
change of the same key (the feed keeps only the latest; a feed subscriber notes the
moment). Two runs:

* ``notified``: the store tells the router of each commit (the normal path);
* ``resync``: every notification is lost (the store's ``listen`` registers nothing), so
  only the periodic read of the feed (``--interval`` s, ``catalog_resync_interval``)
  applies the changes: convergence is then up to one interval;
* ``jetstream R1`` / ``jetstream R3``: the router runs over one JetStreamStore and the
  changes are written through another (two processes sharing a store: the change
  crosses the NATS server, the KV watch and the router's feed), on one server or a
  3-node cluster started for the run (the pinned nats-server of ``tests/natsserver.py``).

Printed per run: p50, p99 and max convergence in ms, and how many changes applied.

    .venv/bin/python bench/catalog_feed.py [--changes 300] [--spacing 10] [--interval 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eventyard.server.catalog import RULE
from eventyard.server.config import Settings
from eventyard.server.router import Router
from eventyard.server.store import CatalogChange, StoreListener
from eventyard.server.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.natsserver import NatsCluster, nats_server_available  # noqa: E402

__all__ = ["main", "run"]


class _Deaf:
    """The store with every notification lost."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def listen(self, listener: StoreListener) -> None:
        pass


def _rule(n: int) -> dict[str, Any]:
    return {
        "Name": f"r{n}",
        "Arn": f"arn:aws:events:us-east-1:000000000000:rule/r{n}",
        "EventBusName": "default",
        "EventPattern": '{"source": ["bench"]}',
        "State": "ENABLED",
        "Targets": [{"Id": "t", "Arn": "https://example.com/hook"}],
    }


async def run(mode: str, changes: int, spacing_ms: float, interval: float) -> list[float]:
    """Convergence times (seconds) of ``changes`` changes in ``mode``."""
    with tempfile.TemporaryDirectory(prefix="eventyard-feed-bench-") as directory:
        if mode.startswith("jetstream"):
            size = 3 if mode.endswith("R3") else 1
            with NatsCluster(Path(directory) / "nats", size=size) as cluster:
                from eventyard.server.store.jetstream import JetStreamStore

                writer = JetStreamStore(cluster.urls, prefix="feedbench", replicas=size)
                reader = JetStreamStore(cluster.urls, prefix="feedbench", replicas=size)
                await writer.open()
                await reader.open()
                try:
                    return await _converge(reader, writer, directory, changes, spacing_ms, interval)
                finally:
                    await writer.close()
                    await reader.close()
        store = SQLiteStore(str(Path(directory) / "eventyard.db"))
        await store.open()
        try:
            seen = store if mode == "notified" else _Deaf(store)
            return await _converge(
                seen, store, directory, changes=changes, spacing_ms=spacing_ms, interval=interval
            )
        finally:
            await store.close()


async def _converge(
    seen: Any, written: Any, directory: str, *, changes: int, spacing_ms: float, interval: float
) -> list[float]:
    """Write ``changes`` changes through ``written``; a router over ``seen`` applies them."""
    settings = Settings(data_dir=directory, catalog_resync_interval=interval)
    router = Router(settings, seen)
    # per key, when each of its writes not yet applied started; a change applied
    # covers every earlier write of its key (the feed keeps only the latest)
    started: dict[str, list[float]] = {}
    converged: list[float] = []
    done = asyncio.Event()

    def applied(change: CatalogChange) -> None:
        now = time.perf_counter()
        converged.extend(now - t for t in started.pop(change.key, ()))
        if len(converged) == changes:
            done.set()

    router.feed.subscribe(applied)
    await router.start()
    try:
        rng = random.Random(7)
        for n in range(changes):
            await asyncio.sleep(rng.uniform(0, spacing_ms) / 1000)
            if n % 5 == 4:  # delete the rule put four changes ago
                key = f"default/r{n - 4}"
                started.setdefault(key, []).append(time.perf_counter())
                await written.catalog_delete(RULE, key)
            else:
                key = f"default/r{n}"
                started.setdefault(key, []).append(time.perf_counter())
                await written.catalog_put(RULE, key, _rule(n))
        await asyncio.wait_for(done.wait(), interval * 3 + 10)
    finally:
        await router.stop()
    return converged


def _report(mode: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"{mode:>9}: {len(ms)} changes applied, convergence p50 {statistics.median(ms):.3f} ms,"
        f" p99 {p99:.3f} ms, max {ms[-1]:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--spacing", type=float, default=10.0, help="ms between writes, at most")
    parser.add_argument("--interval", type=float, default=1.0, help="resync interval, s")
    args = parser.parse_args()
    modes = ["notified", "resync"]
    if nats_server_available():
        modes += ["jetstream R1", "jetstream R3"]
    else:
        print("jetstream: skipped (pip install -e '.[dev]' installs the pinned nats-server)")
    for mode in modes:
        _report(mode, asyncio.run(run(mode, args.changes, args.spacing, args.interval)))


if __name__ == "__main__":
    main()
