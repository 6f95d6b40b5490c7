"""End to end through one store shared by several processes: PutEvents -> rule -> queue
target -> ReceiveMessage/DeleteMessageBatch, on SQLite, JetStream R1 and JetStream R3,
with 1, 2 and 3 eventyard processes, measured in one run.

For each configuration the bench starts its own store (SQLite in a data directory; one
NATS server for R1, a three-node cluster for R3, the pinned nats-server of
``tests/natsserver.py``) and its own processes, makes a bus, a queue and a rule that
sends every event to the queue, and waits until every process routes by the rule.
Then, for ``--duration`` seconds, ``--producers`` producers put batches of ``--batch``
events (each event carries its send time) through the processes in turn, while
``--consumers`` consumers per process receive (10 at a time, long polling) and delete
the messages through the next process; at most ``--window`` events are in flight (put,
not yet received), so the queueing the latency shows stays bounded. After the producers
stop, the consumers drain the queue. Then, for ``--idle`` seconds, one event at a time
measures the latency of an idle router. Reported per configuration: events delivered
per second (from the first put to the last receive of the load), the put rate, the
end-to-end latency (put sent -> message received) p50 and p99 under load and idle,
lost events (acknowledged, never received) and duplicates; ratios against SQLite with
one process.

SQLite is one process only (its store is a file that one process owns). This machine
has 2 cores shared by the producers, the consumers, the NATS servers and the eventyard
processes, so more processes cannot be faster here: read the process columns as "no
collapse", not as scaling.

    python bench/cluster.py                      # every configuration, ~3 minutes
    python bench/cluster.py --duration 30        # longer runs
    python bench/cluster.py --configs sqlite,r3 --processes 1,3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from _cluster import NatsCluster, ProcessGroup, nats_server_available, store_env

EVENTS_HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "AWSEvents.{}",
}
SQS_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.{}"}
BUS = "bench"
QUEUE = "bench-queue"


class CallFailed(Exception):
    """An API call answered an error."""


async def _call(
    session: aiohttp.ClientSession, url: str, service: str, op: str, body: dict[str, Any]
) -> Any:
    headers = dict(EVENTS_HEADERS if service == "events" else SQS_HEADERS)
    headers["X-Amz-Target"] = headers["X-Amz-Target"].format(op)
    async with session.post(url + "/", data=orjson.dumps(body), headers=headers) as answer:
        data = await answer.read()
        if answer.status != 200:
            raise CallFailed(f"{op} answered {answer.status}: {data[:300]!r}")
        return orjson.loads(data) if data else {}


@dataclass
class Run:
    """One configuration's counts and latencies."""

    sent: dict[int, float] = field(default_factory=dict)  # sequence -> perf_counter at send
    latencies: list[float] = field(default_factory=list)
    idle: bool = False  # the latency phase: one event in flight at a time
    idle_latencies: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    put_errors: int = 0
    receive_errors: int = 0
    first_put: float = 0.0
    last_receive: float = 0.0
    producing_ended: float = 0.0
    loaded: tuple[int, int] = (0, 0)  # (sent, received) of the load phase


async def _set_up(session: aiohttp.ClientSession, urls: list[str]) -> str:
    url = urls[0]
    await _call(session, url, "events", "CreateEventBus", {"Name": BUS})
    queue = await _call(session, url, "sqs", "CreateQueue", {"QueueName": QUEUE})
    attributes = await _call(
        session,
        url,
        "sqs",
        "GetQueueAttributes",
        {"QueueUrl": queue["QueueUrl"], "AttributeNames": ["QueueArn"]},
    )
    pattern = orjson.dumps({"source": ["bench"]}).decode()
    await _call(
        session,
        url,
        "events",
        "PutRule",
        {"Name": "all", "EventBusName": BUS, "EventPattern": pattern},
    )
    target = {"Id": "q", "Arn": attributes["Attributes"]["QueueArn"]}
    await _call(
        session,
        url,
        "events",
        "PutTargets",
        {"Rule": "all", "EventBusName": BUS, "Targets": [target]},
    )
    # every process must route by the rule (the catalog's change feed) before the clock
    # starts: a probe through each one must reach the queue
    for number, each in enumerate(urls):
        deadline = time.monotonic() + 60
        while True:
            entry = {"Source": "bench", "DetailType": "probe", "Detail": "{}", "EventBusName": BUS}
            await _call(session, each, "events", "PutEvents", {"Entries": [entry]})
            got = await _call(
                session,
                url,
                "sqs",
                "ReceiveMessage",
                {"QueueUrl": queue["QueueUrl"], "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1},
            )
            messages = got.get("Messages", [])
            for message in messages:
                await _call(
                    session,
                    url,
                    "sqs",
                    "DeleteMessage",
                    {"QueueUrl": queue["QueueUrl"], "ReceiptHandle": message["ReceiptHandle"]},
                )
            if messages:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {number} does not route by the new rule")
    return str(queue["QueueUrl"])


async def _produce(
    session: aiohttp.ClientSession,
    urls: list[str],
    *,
    start: int,
    run: Run,
    sequence: Iterator[int],
    batch: int,
    window: int,
    until: float,
) -> None:
    turn = start
    while time.perf_counter() < until:
        if len(run.sent) - len(run.seen) >= window:
            await asyncio.sleep(0.002)  # the window is full: wait for the consumers
            continue
        numbers = [next(sequence) for _ in range(batch)]
        now = time.perf_counter()
        entries = [
            {
                "Source": "bench",
                "DetailType": "load",
                "Detail": orjson.dumps({"n": n, "pad": "x" * 100}).decode(),
                "EventBusName": BUS,
            }
            for n in numbers
        ]
        for n in numbers:
            run.sent[n] = now
        try:
            answer = await _call(
                session, urls[turn % len(urls)], "events", "PutEvents", {"Entries": entries}
            )
        except (CallFailed, aiohttp.ClientError, TimeoutError):
            run.put_errors += 1
            for n in numbers:
                del run.sent[n]
            continue
        for n, result in zip(numbers, answer["Entries"], strict=True):
            if result.get("ErrorCode"):
                run.put_errors += 1
                del run.sent[n]
        turn += 1


async def _consume(
    session: aiohttp.ClientSession,
    urls: list[str],
    *,
    start: int,
    queue: str,
    run: Run,
    stop: asyncio.Event,
) -> None:
    turn = start
    while not stop.is_set():
        here, there = urls[turn % len(urls)], urls[(turn + 1) % len(urls)]
        turn += 1
        try:
            got = await _call(
                session,
                here,
                "sqs",
                "ReceiveMessage",
                {"QueueUrl": queue, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1},
            )
        except (CallFailed, aiohttp.ClientError, TimeoutError):
            run.receive_errors += 1
            continue
        messages = got.get("Messages", [])
        now = time.perf_counter()
        for message in messages:
            n = orjson.loads(message["Body"])["detail"].get("n")
            if n is None:
                continue  # a late probe
            if n in run.seen:
                run.duplicates += 1
                continue
            run.seen.add(n)
            if run.idle:
                run.idle_latencies.append(now - run.sent.get(n, now))
            else:
                run.latencies.append(now - run.sent.get(n, now))
                run.last_receive = now
        if messages:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            try:
                body = {"QueueUrl": queue, "Entries": entries}
                await _call(session, there, "sqs", "DeleteMessageBatch", body)
            except (CallFailed, aiohttp.ClientError, TimeoutError):
                run.receive_errors += 1  # undeleted: they come back after the visibility


async def measure(urls: list[str], args: argparse.Namespace) -> Run:
    run = Run()
    connector = aiohttp.TCPConnector(limit=args.producers + args.consumers * len(urls) + 8)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        queue = await _set_up(session, urls)
        stop = asyncio.Event()
        consumers = [
            asyncio.create_task(_consume(session, urls, start=i, queue=queue, run=run, stop=stop))
            for i in range(args.consumers * len(urls))
        ]
        sequence = itertools.count()
        run.first_put = time.perf_counter()
        until = run.first_put + args.duration
        await asyncio.gather(
            *(
                _produce(
                    session,
                    urls,
                    start=i,
                    run=run,
                    sequence=sequence,
                    batch=args.batch,
                    window=args.window,
                    until=until,
                )
                for i in range(args.producers)
            )
        )
        run.producing_ended = time.perf_counter()
        deadline = time.monotonic() + args.drain
        while len(run.seen) < len(run.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        loaded = (len(run.sent), len(run.seen))
        run.idle = True
        await _one_at_a_time(session, urls, run, sequence, time.perf_counter() + args.idle)
        stop.set()
        await asyncio.gather(*consumers, return_exceptions=True)
        run.loaded = loaded
    return run


async def _one_at_a_time(
    session: aiohttp.ClientSession, urls: list[str], run: Run, sequence: Iterator[int], until: float
) -> None:
    """The latency of an idle router: one event in flight, through each process in turn."""
    for turn in itertools.count():
        if time.perf_counter() >= until:
            return
        n = next(sequence)
        entry = {
            "Source": "bench",
            "DetailType": "probe",
            "Detail": orjson.dumps({"n": n}).decode(),
        }
        entry["EventBusName"] = BUS
        run.sent[n] = time.perf_counter()
        await _call(session, urls[turn % len(urls)], "events", "PutEvents", {"Entries": [entry]})
        deadline = time.perf_counter() + 30
        while n not in run.seen and time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)


@dataclass(frozen=True)
class Result:
    label: str
    processes: int
    delivered_per_s: float
    put_per_s: float
    p50_ms: float
    p99_ms: float
    idle_p50_ms: float
    idle_p99_ms: float
    events: int
    lost: int
    duplicates: int
    put_errors: int


def _percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99, in milliseconds."""
    ordered = sorted(values) or [float("nan")]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def _result(label: str, processes: int, run: Run) -> Result:
    span = max(run.last_receive - run.first_put, 1e-9)
    sent, received = run.loaded
    p50, p99 = _percentiles(run.latencies)
    idle_p50, idle_p99 = _percentiles(run.idle_latencies)
    return Result(
        label,
        processes,
        received / span,
        sent / max(run.producing_ended - run.first_put, 1e-9),
        p50,
        p99,
        idle_p50,
        idle_p99,
        len(run.sent),
        len(set(run.sent) - run.seen),
        run.duplicates,
        run.put_errors,
    )


@contextlib.contextmanager
def _store(kind: str, tmp: Path) -> Iterator[str | None]:
    """The NATS URL of a store of ``kind`` (None for SQLite), running for the block."""
    if kind == "sqlite":
        yield None
        return
    size = 3 if kind == "r3" else 1
    with NatsCluster(tmp / f"nats-{kind}", size=size) as nats:
        yield nats.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load each")
    parser.add_argument("--producers", type=int, default=8, help="PutEvents calls in flight")
    parser.add_argument("--window", type=int, default=1000, help="events in flight at most")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of one-event latency")
    parser.add_argument("--batch", type=int, default=10, help="entries per PutEvents")
    parser.add_argument("--consumers", type=int, default=3, help="receivers per process")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to drain at most")
    parser.add_argument("--configs", default="sqlite,r1,r3", help="of sqlite, r1, r3")
    parser.add_argument("--processes", default="1,2,3", help="process counts for JetStream")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.configs.split(",") if k.strip()]
    counts = [int(c) for c in args.processes.split(",")]
    if any(k not in ("sqlite", "r1", "r3") for k in kinds):
        parser.error("--configs takes sqlite, r1 and r3")
    if any(k != "sqlite" for k in kinds) and not nats_server_available():
        parser.error("the pinned nats-server is not installed (pip install -e '.[dev]')")
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            label = {"sqlite": "SQLite", "r1": "JetStream R1", "r3": "JetStream R3"}[kind]
            with _store(kind, Path(tmp)) as url:
                for processes in [1] if kind == "sqlite" else counts:
                    env = {
                        "EVENTYARD_LOG_LEVEL": "warning",
                        **store_env(url, 3 if kind == "r3" else 1),
                    }
                    group = ProcessGroup(Path(tmp) / f"{kind}-{processes}", processes, env)
                    with group.running():
                        run = asyncio.run(measure(group.urls, args))
                    results.append(_result(label, processes, run))
                    print(f"  measured {label} x{processes}", flush=True)
    base = results[0] if results and results[0].label == "SQLite" else None
    print(
        f"end to end PutEvents -> rule -> queue -> receive/delete; {args.producers} producers "
        f"x {args.batch}-entry batches for {args.duration:g} s, {args.consumers} consumers "
        f"per process, at most {args.window} events in flight; idle: one event at a time "
        f"for {args.idle:g} s"
    )
    columns = [
        ("store", "<14"),
        ("procs", ">5"),
        ("events/s", ">9"),
        ("ratio", ">6"),
        ("put/s", ">8"),
        ("p50 ms", ">8"),
        ("ratio", ">6"),
        ("p99 ms", ">8"),
        ("ratio", ">6"),
        ("idle p50", ">8"),
        ("ratio", ">6"),
        ("idle p99", ">8"),
        ("events", ">7"),
        ("lost", ">5"),
        ("dups", ">5"),
        ("errors", ">6"),
    ]
    header = " ".join(f"{name:{spec}}" for name, spec in columns)
    print(header)
    print("-" * len(header))

    def ratio(value: float, against: float | None) -> str:
        return f"{value / against:.2f}" if against else ""

    for r in results:
        cells = [
            r.label,
            r.processes,
            f"{r.delivered_per_s:,.0f}",
            ratio(r.delivered_per_s, base.delivered_per_s if base else None),
            f"{r.put_per_s:,.0f}",
            f"{r.p50_ms:.1f}",
            ratio(r.p50_ms, base.p50_ms if base else None),
            f"{r.p99_ms:.1f}",
            ratio(r.p99_ms, base.p99_ms if base else None),
            f"{r.idle_p50_ms:.1f}",
            ratio(r.idle_p50_ms, base.idle_p50_ms if base else None),
            f"{r.idle_p99_ms:.1f}",
            f"{r.events:,}",
            r.lost,
            r.duplicates,
            r.put_errors,
        ]
        print(" ".join(f"{cell!s:{spec}}" for cell, (_, spec) in zip(cells, columns, strict=True)))
    if base:
        print("ratios against SQLite with one process (events/s: higher is better; ms: lower)")


if __name__ == "__main__":
    main()
