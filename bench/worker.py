"""Events through one ``eventyard worker``: throughput and end-to-end latency.

Prints one table:

* throughput (events/s): a burst of events is published with PutEvents; a rule puts
  them on a handler's queue, and one worker process with a no-op handler receives and
  acknowledges (deletes) them. Measured from the first PutEvents until the queue is
  empty, for two ``--concurrency`` settings, with the CPU time the worker and the
  server spent per event meanwhile (from ``/proc``; ``nan`` without it);
* end-to-end latency p50/p99 (ms) at a steady rate well under that throughput: from
  just before PutEvents (the time travels in ``detail``) until the handler runs.

The server, the worker and this load generator are three processes. Set
``BENCH_EVENTS`` and ``BENCH_LATENCY_SECONDS`` to change the run's size, and
``BENCH_PROFILE`` to a directory to run the worker under cProfile (a stats file per run).

Medians of 5 runs on the 2-core development machine, before and after the worker
batched its work (DeleteMessageBatch instead of one DeleteMessage per event, several
receives in flight, ``sniffio`` installed so httpcore stops retrying its import):

    measure (one worker, no-op handler)             before       after
    --concurrency 8 (events/s)                         560       2,140
      worker / server CPU per event (ms)       1.68 / 0.62 0.22 / 0.28
    --concurrency 32 (events/s)                        502       2,442
      worker / server CPU per event (ms)       1.94 / 0.51 0.20 / 0.26
    end-to-end p50 / p99 at 200 events/s (ms)  3.32 / 9.52 2.71 / 5.23

The three processes share the two cores, so a burst is bound by all three of them,
not by the worker alone.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from eventyard import Event
from eventyard.errors import ResourceNotFound
from eventyard.sdk.client import AsyncClient
from eventyard.sdk.consumer import Consumer
from eventyard.testing import ServerProcess

__all__ = ["consumer"]

EVENTS = int(os.environ.get("BENCH_EVENTS", "5000"))
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "5"))
PROFILE = os.environ.get("BENCH_PROFILE")
RATE = 200  # events/s for the latency run
PUBLISHERS = 8
WARM_UP = 50
BUS = "bench"
REPO = Path(__file__).resolve().parent.parent

consumer = Consumer(bus=BUS, name="bench", poll_wait=1)
_out: int | None = None


@consumer.on({"source": ["bench"]})
async def noop(event: Event) -> None:
    """Does nothing but note how long the event took to get here."""
    global _out
    if _out is None:
        _out = os.open(os.environ["BENCH_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_out, f"{time.time() - event.detail['t']:.6f}\n".encode())


def _received(path: Path) -> list[float]:
    try:
        return [float(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


async def _start_worker(url: str, out: Path, concurrency: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "eventyard", "worker", "bench.worker:consumer"]
    if PROFILE:  # cProfile the worker process, one stats file per run
        stats = Path(PROFILE) / f"worker-{out.stem}.pstats"
        command[1:3] = ["-m", "cProfile", "-o", str(stats), "-m", "eventyard"]
    command += ["--url", url, "--concurrency", str(concurrency)]
    env = {**os.environ, "BENCH_OUT": str(out), "EVENTYARD_LOG_LEVEL": "warning"}
    worker = subprocess.Popen(command, cwd=REPO, env=env)
    async with AsyncClient(url) as client:
        rule = consumer.handler(noop).rule
        deadline = time.monotonic() + 30
        while True:  # set up once the rule has its queue target
            try:
                if await client.list_targets(rule, bus=BUS):
                    break
            except ResourceNotFound:
                pass
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit("the worker did not start")
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # its first long poll is under way
    return worker


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    if worker.wait(30) != 0:
        raise SystemExit(f"the worker exited with {worker.returncode}")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far; NaN without ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _events(count: int) -> list[Event]:
    return [
        Event(source="bench", detail_type="Tick", detail={"t": time.time(), "n": n})
        for n in range(count)
    ]


@dataclass(slots=True, frozen=True)
class Burst:
    """What a burst measured: rates, and CPU milliseconds per event in each process."""

    published: float
    acked: float
    worker_cpu: float
    server_cpu: float


async def throughput(url: str, server_pid: int, work: Path, concurrency: int) -> Burst:
    """Publish a burst of EVENTS events and time them through the worker."""
    out = work / f"burst-{concurrency}.txt"
    worker = await _start_worker(url, out, concurrency)
    queue = consumer.handler(noop).queue
    try:
        async with AsyncClient(url) as client:
            cpu = _cpu_seconds(worker.pid), _cpu_seconds(server_pid)
            started = time.perf_counter()

            async def publish(share: int) -> None:
                for _ in range(0, share, 10):
                    await client.put_events(_events(10), bus=BUS)

            await asyncio.gather(*(publish(EVENTS // PUBLISHERS) for _ in range(PUBLISHERS)))
            published = time.perf_counter() - started
            total = EVENTS // PUBLISHERS * PUBLISHERS
            while len(_received(out)) < total:
                await asyncio.sleep(0.05)
            while True:
                counts = await client.get_queue_attributes(queue)
                if (
                    counts["ApproximateNumberOfMessages"]
                    == "0"
                    == (counts["ApproximateNumberOfMessagesNotVisible"])
                ):
                    break
                await asyncio.sleep(0.02)
            acked = time.perf_counter() - started
            worker_cpu = _cpu_seconds(worker.pid) - cpu[0]
            server_cpu = _cpu_seconds(server_pid) - cpu[1]
    finally:
        _stop(worker)
    return Burst(
        total / published, total / acked, worker_cpu * 1000 / total, server_cpu * 1000 / total
    )


async def latency(url: str, work: Path) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, events) at RATE events/s for LATENCY_SECONDS, one event per call."""
    out = work / "latency.txt"
    worker = await _start_worker(url, out, 8)
    count = int(RATE * LATENCY_SECONDS)
    try:
        async with AsyncClient(url) as client:
            await client.put_events(_events(WARM_UP), bus=BUS)  # connections, first calls
            while len(_received(out)) < WARM_UP:
                await asyncio.sleep(0.05)
            start = time.perf_counter()
            sends = []
            for n in range(count):
                delay = start + n / RATE - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sends.append(asyncio.create_task(client.put_events(_events(1), bus=BUS)))
            await asyncio.gather(*sends)
            deadline = time.monotonic() + 30
            while len(_received(out)) < WARM_UP + count and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    finally:
        _stop(worker)
    seconds = sorted(_received(out)[WARM_UP:])
    cuts = statistics.quantiles(seconds, n=100)
    return cuts[49] * 1000, cuts[98] * 1000, len(seconds)


async def run(url: str, server_pid: int, work: Path) -> None:
    async with AsyncClient(url) as client:
        await consumer.setup(client)
    rows: list[tuple[str, str]] = []
    for concurrency in (8, 32):
        burst = await throughput(url, server_pid, work, concurrency)
        rows += [
            (f"PutEvents -> ack, --concurrency {concurrency} (events/s)", f"{burst.acked:,.0f}"),
            ("  publishing rate meanwhile (events/s)", f"{burst.published:,.0f}"),
            ("  worker CPU per event (ms)", f"{burst.worker_cpu:.3f}"),
            ("  server CPU per event (ms)", f"{burst.server_cpu:.3f}"),
        ]
    p50, p99, count = await latency(url, work)
    rows.append((f"end-to-end at {RATE} events/s: p50 (ms)", f"{p50:.2f}"))
    rows.append((f"end-to-end at {RATE} events/s: p99 (ms)", f"{p99:.2f}"))
    rows.append(("  events received", f"{count:,}"))
    print(f"{'measure (one worker, no-op handler)':<52} {'value':>14}")
    print("-" * 67)
    for name, value in rows:
        print(f"{name:<52} {value:>14}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"EVENTYARD_SHUTDOWN_TIMEOUT": "1", "EVENTYARD_LOG_LEVEL": "warning"}
        with ServerProcess(Path(tmp) / "data", env=env) as server:
            asyncio.run(run(server.url, server.process.pid, Path(tmp)))


if __name__ == "__main__":
    main()
