"""A dead target's backlog beside a healthy target: pacing a failing target, on and off.

After an outage a dead target can have a backlog of retries all due at once (a million
of them in ``bench/backlog.py``). Unpaced, the engine attempts them as fast as one
worker goes (a refused connection costs almost nothing to the target, but each attempt
costs eventyard an attempt and a retry written to the store), and the healthy targets
wait for the CPU and the store. With ``failing_target_interval`` (the default, 1 s) a
target whose last ``target_failing_after`` attempts failed gets one attempt per pause.

Each round starts a real ``eventyard serve`` (SQLite, a new data directory), puts
``BENCH_DEAD_EVENTS`` events (default 20,000) for a webhook on a port nobody listens
on, with ``retry_max_delay`` 1 s so that the whole backlog stays due (the state a long
outage leaves), waits 3 s for the ingest's own work to end, then for
``BENCH_DEAD_SECONDS`` (default 10) measures:

* the latency of probes, one event at a time for a second, healthy webhook, from
  PutEvents until it arrives (p50, p99), 0.2 s apart;
* the server's CPU (user + system, from ``/proc``) per wall second;
* the dead target's attempts per second (``eventyard_delivery_attempts_total``).

Rounds alternate pacing on (``failing_target_interval`` 1) and off (0), ``--rounds``
of each (default 3), so both see the same machine; the table ends with the medians and
their ratios (off / on).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import boto3
import orjson

from _webhook import HEADERS, Probe, dead_url, metric
from eventyard.testing import ServerProcess

REGION = "us-east-1"
EVENTS = int(os.environ.get("BENCH_DEAD_EVENTS", "20000"))
SECONDS = float(os.environ.get("BENCH_DEAD_SECONDS", "10"))
SETTLE = 3.0  # seconds between the last put and the measurement
PROBE_EVERY = 0.2  # seconds between a probe's arrival and the next probe
CLIENTS = 16
BATCH = 10
RETRIES = 'eventyard_delivery_attempts_total{kind="http",result="retryable"}'


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/<pid>/stat``, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    events.put_targets(
        Rule="dead",
        EventBusName="bench",
        # retried for as long as the round lasts
        Targets=[{"Id": "dead", "Arn": dead, "RetryPolicy": {"MaximumRetryAttempts": 185}}],
    )
    events.put_rule(Name="probe", EventBusName="bench", EventPattern='{"detail-type": ["probe"]}')
    events.put_targets(Rule="probe", EventBusName="bench", Targets=[{"Id": "probe", "Arn": probe}])


async def _fill(session: aiohttp.ClientSession, url: str) -> None:
    """Put EVENTS events for the dead target from CLIENTS connections."""
    offsets = iter(range(0, EVENTS, BATCH))

    async def client() -> None:
        for offset in offsets:
            entries = [
                {
                    "Source": "bench.shop",
                    "DetailType": "load",
                    "Detail": orjson.dumps({"order": offset + i}).decode(),
                    "EventBusName": "bench",
                }
                for i in range(BATCH)
            ]
            body = orjson.dumps({"Entries": entries})
            async with session.post(url, data=body, headers=HEADERS) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"PutEvents answered {answer.status}")

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


Result = tuple[float, float, float, float]  # probe p50 ms, probe p99 ms, CPU %, retries/s


async def _round(directory: Path, interval: float, number: int) -> Result:
    probe = Probe()
    await probe.start()
    env = {
        "EVENTYARD_LOG_LEVEL": "warning",
        "EVENTYARD_RETRY_BASE_DELAY": "0.1",
        "EVENTYARD_RETRY_MAX_DELAY": "1",
        "EVENTYARD_FAILING_TARGET_INTERVAL": str(interval),
        "EVENTYARD_MAX_BACKLOG": "0",
    }
    server = ServerProcess(directory, env=env).start()
    try:
        assert server.process is not None
        pid = server.process.pid
        _setup(server.url, dead_url(), probe.url)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as s:
            await _fill(s, server.url + "/")
            await asyncio.sleep(SETTLE)  # the ingest's own work done: only the backlog
            retries, cpu, started = metric(server.url, RETRIES, 0.0), _cpu_seconds(pid), time.time()
            latencies = []
            while time.time() - started < SECONDS:
                name = f"r{number}-{len(latencies)}"
                latencies.append(await probe.latency_ms(s, server.url + "/", name))
                await asyncio.sleep(PROBE_EVERY)
            wall = time.time() - started
            cpu = (_cpu_seconds(pid) - cpu) / wall * 100
            rate = (metric(server.url, RETRIES, 0.0) - retries) / wall
        p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
        return statistics.median(latencies), p99, cpu, rate
    finally:
        server.stop()
        await probe.stop()


async def run(rounds: int) -> None:
    print(
        f"SQLite; a dead webhook with {EVENTS:,} retries due (retry_max_delay 1 s) beside a "
        f"healthy one; {SECONDS:g} s measured per round"
    )
    header = ("pacing", "round", "probe p50 ms", "probe p99 ms", "server CPU %", "retries/s")
    print("{:<8} {:>5} {:>13} {:>13} {:>13} {:>10}".format(*header))
    results: dict[str, list[Result]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="eventyard-dead-") as tmp:
        for number in range(rounds):
            for label, interval in (("on", 1.0), ("off", 0.0)):
                result = await _round(Path(tmp) / f"{label}{number}", interval, number)
                results[label].append(result)
                p50, p99, cpu, rate = result
                row = f"{p50:>13.1f} {p99:>13.1f} {cpu:>13.0f} {rate:>10.0f}"
                print(f"{label:<8} {number + 1:>5} {row}")
    medians = {
        label: [statistics.median(column) for column in zip(*rows, strict=True)]
        for label, rows in results.items()
    }
    for label in ("on", "off"):
        p50, p99, cpu, rate = medians[label]
        print(f"{label + ' med':<8} {'':>5} {p50:>13.1f} {p99:>13.1f} {cpu:>13.0f} {rate:>10.0f}")
    ratios = [off / on if on else float("inf") for on, off in zip(*medians.values(), strict=True)]
    print("off / on       {:>13.2f} {:>13.2f} {:>13.2f} {:>10.2f}".format(*ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternated")
    args = parser.parse_args()
    asyncio.run(run(args.rounds))


if __name__ == "__main__":
    main()
