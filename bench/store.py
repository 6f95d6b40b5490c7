"""Micro-benchmark of the SQLite store's ingest, and of where its writer should run.

Each of ``--coroutines`` coroutines loops: build ``--batch`` events of ~600 bytes, each
with one delivery (a PutEvents request with one matching rule), optionally burn
``--cpu-us`` of CPU holding the GIL (what the server does per request: HTTP, JSON,
matching), then ``await store.ingest(...)``. A probe coroutine sleeps 1 ms at a time and
records how late it wakes: how long the loop was blocked. Printed: events/s, latency of
the ``ingest`` await, loop lag, and the mean group-commit batch.

Three writers run the same batching code (``execute_batch`` + COMMIT):

* ``store``: the store as shipped: statements on the loop, COMMIT on a thread;
* ``loop``: everything on the loop, COMMIT too (the DESIGN.md prototype);
* ``thread``: everything on a writer thread with its own connection.

The numbers in ``eventyard.server.store.sqlite``'s docstring come from this script. It uses
private names of that module on purpose: the other two writers exist to be measured.

``--variant`` measures the log's time index (``eventyard.server.store.sqlite_audit``),
with the shipped writer, in ``--rounds`` interleaved rounds (medians printed):

* ``marks``: as shipped, one time mark per (bus, second) per group-commit batch;
* ``none``: no time index at all (the marks' writes skipped): the cost before it;
* ``time-index``: no marks, an index on ``log(time)`` instead (one entry per event);
* ``archive``: as shipped, every event also archived once (its body copied).

    .venv/bin/python bench/store.py [--duration 3] [--coroutines 50] [--batch 10]
    .venv/bin/python bench/store.py --variant marks --variant none --variant time-index
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from eventyard.server.store import NewDelivery, NewEvent, sqlite_audit
from eventyard.server.store.listeners import Listeners, Notes
from eventyard.server.store.sqlite import SQLiteStore
from eventyard.server.store.sqlite_files import open_writer
from eventyard.server.store.sqlite_writer import (
    Counted,
    Write,
    Writer,
    commit_batch,
    execute_batch,
    fail_all,
    set_outcomes,
)
from eventyard.server.store.wal import MarkWriter

__all__ = ["LoopWriter", "ThreadWriter", "main", "run"]

BODY = (
    b'{"version":"0","detail-type":"order.created","source":"shop","detail":{"x":"'
    + b"y" * 520
    + b'"}}'
)


class LoopWriter(Writer):
    """The store's writer with COMMIT (fsync, checkpoints) run on the loop as well."""

    def _start_commit(self, batch: list[Write]) -> None:
        assert self._conn is not None
        try:
            commit_batch(self._conn, self._mark)
        except sqlite3.Error as exc:
            self._committed(batch, exc)
        else:
            self._committed(batch, None)


class ThreadWriter:
    """A writer thread with its own connection: the loop only queues and awaits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.commits = 0
        self.writes = 0
        self.inbox: queue.SimpleQueue[Write | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # the log's time marks, noted and written on the thread, as the store's writer does
        self.marks = sqlite_audit.MarkBook()
        self.mark = MarkWriter(path)
        # what the store reads of its writer (nobody listens in this bench)
        self.pending = 0
        self.failure: str | None = None
        self.listeners = Listeners()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._run, args=(open_writer(self.path, self.mark),))
        self.thread.start()

    def submit(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        notes: Notes | None = None,
        on_outcome: Callable[[bool], None] | None = None,
    ) -> asyncio.Future[Any]:
        assert self.loop is not None
        future: asyncio.Future[Any] = self.loop.create_future()
        self.inbox.put(Write(fn, future, notes=notes, on_outcome=on_outcome))
        return future

    def close_mark(self) -> None:
        self.mark.close()

    async def stop(self) -> None:
        self.inbox.put(None)
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join)

    def _run(self, conn: sqlite3.Connection) -> None:
        assert self.loop is not None
        stopping = False
        while not stopping:
            batch: list[Write] = []
            item = self.inbox.get()
            while item is not None:
                batch.append(item)
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            if batch and execute_batch(conn, batch):
                try:
                    self.marks.write(conn)
                    commit_batch(conn, self.mark)
                    self.commits += 1
                except sqlite3.Error as exc:
                    fail_all(batch, exc)
            self.writes += len(batch)
            self.loop.call_soon_threadsafe(_finish, batch)
        conn.close()


def _finish(batch: list[Write]) -> None:
    for w in batch:
        if type(w.result) is Counted:
            w.result = w.result.value  # what the store's writer hands its callers
        if w.on_outcome is not None:
            w.on_outcome(w.error is None)
    set_outcomes(batch)


WRITERS: dict[str, Callable[[str], Any]] = {
    "store": Writer,
    "loop": LoopWriter,
    "thread": ThreadWriter,
}


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


VARIANTS = ("marks", "none", "time-index", "archive")


def _skip_marks(book: sqlite_audit.MarkBook, first_seq: int, marks: Any) -> None:
    pass


async def run(
    writer: str,
    *,
    duration: float,
    coroutines: int,
    batch: int,
    cpu_us: float,
    directory: str,
    variant: str = "marks",
) -> dict[str, float]:
    """Run one configuration; returns rate, latency and loop-lag percentiles, mean batch."""
    path = os.path.join(directory, f"{writer}-{uuid.uuid4().hex[:8]}.db")
    store = SQLiteStore(path)
    store._writer = WRITERS[writer](path)
    await store.open()
    add_marks = sqlite_audit.MarkBook.add
    if variant in {"none", "time-index"}:
        sqlite_audit.MarkBook.add = _skip_marks  # type: ignore[method-assign,assignment]
    if variant == "time-index":
        conn = store._writer._conn
        assert conn is not None
        conn.execute("CREATE INDEX log_by_time ON log (time)")
    archives = ("111111111111/bench",) if variant == "archive" else ()
    try:
        return await _load(
            store,
            duration=duration,
            coroutines=coroutines,
            batch=batch,
            cpu_us=cpu_us,
            archives=archives,
        )
    finally:
        sqlite_audit.MarkBook.add = add_marks  # type: ignore[method-assign]


async def _load(
    store: SQLiteStore,
    *,
    duration: float,
    coroutines: int,
    batch: int,
    cpu_us: float,
    archives: tuple[str, ...],
) -> dict[str, float]:
    latencies: list[float] = []
    lags: list[float] = []
    events = 0
    stop_at = time.perf_counter() + duration

    async def producer() -> None:
        nonlocal events
        while time.perf_counter() < stop_at:
            now = time.time()
            new_events, deliveries = [], []
            for _ in range(batch):
                event_id = str(uuid.uuid4())
                new_events.append(NewEvent(event_id, "default", now, BODY, archives))
                deliveries.append(NewDelivery("default/r/t", event_id, BODY, BODY, now, now))
            if cpu_us:
                _burn(cpu_us / 1e6)
            started = time.perf_counter()
            await store.ingest(new_events, deliveries)
            latencies.append(time.perf_counter() - started)
            events += batch

    async def probe() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - started - 0.001)

    began = time.perf_counter()
    await asyncio.gather(probe(), *(producer() for _ in range(coroutines)))
    elapsed = time.perf_counter() - began
    commits, writes = store.commits, store.writes
    await store.close()
    latencies.sort()
    lags.sort()
    return {
        "events_per_s": events / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1e3,
        "lag_max_ms": lags[-1] * 1e3,
        "batch": writes / max(commits, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--coroutines", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--cpu-us", type=float, action="append", help="default: 0 and 100")
    parser.add_argument("--writer", choices=list(WRITERS), action="append")
    parser.add_argument("--dir", default=None, help="where the database files go")
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of variants")
    args = parser.parse_args()
    if args.variant:
        _variants(args)
        return
    print(
        f"SQLite store ingest: {args.coroutines} coroutines x {args.batch} events "
        f"(~{len(BODY)} B, 1 delivery each), {args.duration:g} s per row"
    )
    print(
        f"{'writer':<8} {'cpu/req':>8} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'lag p99':>8} {'lag max':>8} {'batch':>6}"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        for cpu_us in args.cpu_us or [0.0, 100.0]:
            for writer in args.writer or list(WRITERS):
                r = asyncio.run(
                    run(
                        writer,
                        duration=args.duration,
                        coroutines=args.coroutines,
                        batch=args.batch,
                        cpu_us=cpu_us,
                        directory=directory,
                    )
                )
                print(
                    f"{writer:<8} {cpu_us:>6g}µs {r['events_per_s']:>10,.0f} "
                    f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['lag_p99_ms']:>8.2f}"
                    f" {r['lag_max_ms']:>8.2f} {r['batch']:>6.1f}"
                )


def _variants(args: argparse.Namespace) -> None:
    """Interleaved rounds of the time-index variants; medians per variant."""
    cpu_us = (args.cpu_us or [0.0])[0]
    print(
        f"SQLite store ingest by time-index variant: {args.coroutines} coroutines x "
        f"{args.batch} events (~{len(BODY)} B, 1 delivery each), {args.duration:g} s runs, "
        f"{args.rounds} interleaved rounds, {cpu_us:g} µs CPU per request"
    )
    rates: dict[str, list[float]] = {v: [] for v in args.variant}
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        for _ in range(args.rounds):
            for variant in args.variant:
                r = asyncio.run(
                    run(
                        "store",
                        duration=args.duration,
                        coroutines=args.coroutines,
                        batch=args.batch,
                        cpu_us=cpu_us,
                        directory=directory,
                        variant=variant,
                    )
                )
                rates[variant].append(r["events_per_s"])
    base = statistics.median(rates[args.variant[0]])
    print(f"{'variant':<12} {'median ev/s':>12} {'ratio':>7}  runs")
    for variant, values in rates.items():
        median = statistics.median(values)
        runs = " ".join(f"{v / 1000:.1f}k" for v in values)
        print(f"{variant:<12} {median:>12,.0f} {median / base:>7.3f}  {runs}")


if __name__ == "__main__":
    main()
