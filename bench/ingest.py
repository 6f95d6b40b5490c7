"""Ingest throughput and end-to-end latency of a real ``eventyard serve``.

Prints one table:

* durable PutEvents throughput (events/s): concurrent clients send 10-entry batches;
  every acknowledged event is committed (fsync) to the embedded SQLite store;
* the same HTTP load against a minimal Starlette/uvicorn app that parses the JSON and
  answers 200: the ceiling of this machine's HTTP stack, and our ratio to it;
* end-to-end latency p50/p99 from the PutEvents call until a local HTTP target
  receives the event, at a steady 1,000 events/s, sent as 1,000 single-event requests/s
  (each event's own latency) and as 100 ten-event batches/s (an event then also waits
  for the POSTs of the events ahead of it in its batch: one POST per event costs the
  server about 0.1 ms of CPU, mostly the loopback send);
* the same latency while a second target of the same rule is down (it accepts
  connections and never answers), to show that targets fail independently.

The load generator runs in its own process (aiohttp, keep-alive connections).
``BENCH_SECONDS``, ``BENCH_LATENCY_SECONDS``, ``BENCH_CLIENTS`` and ``BENCH_RATE`` (the
latency runs' events/s) change the run; a low rate measures one event's own latency.

``--trace`` measures instead what the trace journal costs ingest: two servers, one with
``trace = true`` and one with ``trace = false``, each with a rule that sends every event
to a queue (so every event is delivered, and with tracing on, journalled); rounds of the
throughput load alternate between them (``BENCH_TRACE_ROUNDS``, default 5), each round
starting once the other server has delivered its backlog; the table gives each side's
median and the ratio on / off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import orjson

from _webhook import Webhook
from eventyard.testing import ServerProcess

ACCOUNT, REGION = "111111111111", "us-east-1"
HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}
THROUGHPUT_SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "8"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "64"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))  # events/s for the latency runs
TRACE_ROUNDS = int(os.environ.get("BENCH_TRACE_ROUNDS", "5"))
_BACKLOG = re.compile(rb"^eventyard_delivery_backlog (\S+)$", re.MULTILINE)

MINIMAL_APP = textwrap.dedent(
    """
    import sys, orjson, uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def root(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(b'{"FailedEntryCount": 0}', media_type="application/x-amz-json-1.1")

    app = Starlette(routes=[Route("/", root, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, loop="uvloop", http="httptools")
    """
)


def _batch(detail_type: str) -> bytes:
    entries = [
        {
            "Source": "bench.shop",
            "DetailType": detail_type,
            "Detail": orjson.dumps(
                {"order": i, "amount": 42.5, "items": ["a", "b"], "customer": "c" * 40}
            ).decode(),
            "EventBusName": "bench",
        }
        for i in range(10)
    ]
    return orjson.dumps({"Entries": entries})


async def _load(url: str, seconds: float, clients: int) -> tuple[int, int]:
    body = _batch("load")
    connector = aiohttp.TCPConnector(limit=clients)
    deadline = time.monotonic() + seconds
    ok = errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal ok, errors
            while time.monotonic() < deadline:
                async with session.post(url, data=body, headers=HEADERS) as answer:
                    await answer.read()
                    if answer.status == 200:
                        ok += 10
                    else:
                        errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return ok, errors


def _load_process(url: str, seconds: float, clients: int, out: Any) -> None:
    out.send(asyncio.run(_load(url, seconds, clients)))


def throughput(url: str) -> float:
    """Events/s acknowledged, measured by a generator in its own process."""
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(
        target=_load_process, args=(url, THROUGHPUT_SECONDS, CLIENTS, child)
    )
    proc.start()
    ok, errors = parent.recv()
    proc.join()
    if errors:
        print(f"  ({errors} failed requests)", file=sys.stderr)
    return ok / THROUGHPUT_SECONDS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def minimal_app_throughput() -> float:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", MINIMAL_APP, str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        return throughput(f"http://127.0.0.1:{port}/")
    finally:
        proc.terminate()
        proc.wait()


class Receiver(Webhook):
    """An aiohttp endpoint that records ingest-to-receipt latency of each event."""

    def __init__(self) -> None:
        super().__init__("hook")
        self.latencies: list[float] = []

    def received(self, event: dict[str, Any]) -> None:
        self.latencies.append(time.time() - event["detail"]["sent"])


async def _steady(
    url: str, receiver: Receiver, seconds: float, batch: int
) -> tuple[float, float, int]:
    """Send 1,000 events/s in ``batch``-entry requests evenly spaced; returns p50, p99 in ms."""
    receiver.latencies.clear()
    interval = batch / RATE
    sent = 0
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        tasks = []

        async def one() -> None:
            entries = [
                {
                    "Source": "bench.shop",
                    "DetailType": "latency",
                    "Detail": orjson.dumps({"sent": time.time(), "n": i}).decode(),
                    "EventBusName": "bench",
                }
                for i in range(batch)
            ]
            payload = orjson.dumps({"Entries": entries})
            async with session.post(url, data=payload, headers=HEADERS) as answer:
                await answer.read()

        while time.monotonic() - start < seconds:
            tasks.append(asyncio.create_task(one()))
            sent += batch
            next_at = start + len(tasks) * interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)
    deadline = time.monotonic() + 10
    while len(receiver.latencies) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    values = sorted(receiver.latencies)
    p50 = statistics.median(values) * 1000
    p99 = values[int(len(values) * 0.99) - 1] * 1000
    return p50, p99, len(values)


class Hanging:
    """A target that is down: it accepts connections and never answers."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.AbstractServer | None = None
        self.url = ""

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reader.read()  # until the client gives up or the bench ends

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/down"

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0.1)  # let the handlers see EOF and return
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def latency(url: str) -> dict[str, tuple[float, float, int]]:
    events = boto3.client(
        "events",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    receiver = Receiver()
    await receiver.start()
    hanging = Hanging()
    await hanging.start()
    try:
        events.put_rule(
            Name="latency", EventBusName="bench", EventPattern='{"detail-type": ["latency"]}'
        )
        events.put_targets(
            Rule="latency", EventBusName="bench", Targets=[{"Id": "up", "Arn": receiver.url}]
        )
        results = {
            "1-entry requests": await _steady(url, receiver, LATENCY_SECONDS, 1),
            "10-entry batches": await _steady(url, receiver, LATENCY_SECONDS, 10),
        }
        events.put_targets(
            Rule="latency",
            EventBusName="bench",
            Targets=[
                {"Id": "down", "Arn": hanging.url, "RetryPolicy": {"MaximumRetryAttempts": 0}}
            ],
        )
        await asyncio.sleep(0.2)
        results["1-entry, one target down"] = await _steady(url, receiver, LATENCY_SECONDS, 1)
        results["10-entry, one target down"] = await _steady(url, receiver, LATENCY_SECONDS, 10)
        return results
    finally:
        await hanging.stop()
        await receiver.stop()


def _drained(url: str, timeout: float = 300.0) -> None:
    """Wait until the server has delivered every pending record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
            match = _BACKLOG.search(answer.read())
        if match is not None and float(match[1]) == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} still has deliveries pending after {timeout:g} s")


def _purge(url: str) -> None:
    """Empty the sink queue, so every round starts from the same store."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName="sink")["QueueUrl"])


def _traced_server(stack: contextlib.ExitStack, data: Path, trace: bool) -> tuple[str, int]:
    env = {
        "EVENTYARD_ACCOUNT_ID": ACCOUNT,
        "EVENTYARD_REGION": REGION,
        "EVENTYARD_TRACE": "true" if trace else "false",
    }
    server = stack.enter_context(ServerProcess(data, env=env))
    events = boto3.client(
        "events",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    sqs = boto3.client(
        "sqs",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    queue = sqs.create_queue(QueueName="sink")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.create_event_bus(Name="bench")
    events.put_rule(Name="all", EventBusName="bench", EventPattern='{"source": ["bench.shop"]}')
    events.put_targets(Rule="all", EventBusName="bench", Targets=[{"Id": "q", "Arn": arn}])
    assert server.process is not None
    return str(server.url), server.process.pid


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trace_cost() -> None:
    """Ingest with the trace journal on and off, interleaved in one run.

    Each round reports the acknowledged events/s and the server's CPU time per event,
    from the load's start until every delivery of it is done (ingest + delivery +
    journal): the machine is shared, and CPU per event is the steadier of the two.
    """
    rates: dict[str, list[float]] = {"on": [], "off": []}
    costs: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers = {
            "on": _traced_server(stack, Path(tmp) / "on", trace=True),
            "off": _traced_server(stack, Path(tmp) / "off", trace=False),
        }
        for n in range(TRACE_ROUNDS):
            for side in ("on", "off") if n % 2 == 0 else ("off", "on"):
                for url, _ in servers.values():
                    _drained(url)
                    _purge(url)
                url, pid = servers[side]
                before = _cpu(pid)
                rate = throughput(url + "/")
                _drained(url)
                time.sleep(0.3)  # the journal's last batch (written every 100 ms)
                rates[side].append(rate)
                costs[side].append((_cpu(pid) - before) / (rate * THROUGHPUT_SECONDS) * 1e6)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    cpu_on, cpu_off = statistics.median(costs["on"]), statistics.median(costs["off"])
    print(f"{'measure':<60} {'value':>10}")
    print("-" * 71)
    print(f"{'rounds per side (interleaved)':<60} {TRACE_ROUNDS:>10}")
    print(f"{'PutEvents + queue delivery, trace on: median events/s':<60} {on:>10,.0f}")
    print(f"{'PutEvents + queue delivery, trace off: median events/s':<60} {off:>10,.0f}")
    print(f"{'throughput, trace on / trace off':<60} {on / off:>10.3f}")
    print(f"{'server CPU per event, trace on: median (us)':<60} {cpu_on:>10.1f}")
    print(f"{'server CPU per event, trace off: median (us)':<60} {cpu_off:>10.1f}")
    print(f"{'CPU per event, trace on / trace off':<60} {cpu_on / cpu_off:>10.3f}")
    for side in ("on", "off"):
        shown = ", ".join(
            f"{r:,.0f}/s {c:.0f}us" for r, c in zip(rates[side], costs[side], strict=True)
        )
        print(f"  rounds, trace {side}: {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--trace",
        action="store_true",
        help="measure the trace journal's cost: ingest with trace on vs off, interleaved",
    )
    if parser.parse_args().trace:
        trace_cost()
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {"EVENTYARD_ACCOUNT_ID": ACCOUNT, "EVENTYARD_REGION": REGION}
        with ServerProcess(Path(tmp) / "data", env=env) as server:
            boto3.client(
                "events",
                endpoint_url=server.url,
                region_name=REGION,
                aws_access_key_id="x",
                aws_secret_access_key="x",
            ).create_event_bus(Name="bench")
            ingest = throughput(server.url + "/")
            lat = asyncio.run(latency(server.url + "/"))
    ceiling = minimal_app_throughput()

    print(f"{'measure':<52} {'value':>14}")
    print("-" * 67)
    print(f"{'durable PutEvents, 10-entry batches (events/s)':<52} {ingest:>14,.0f}")
    print(f"{'minimal Starlette/uvicorn app, same load (events/s)':<52} {ceiling:>14,.0f}")
    print(f"{'eventyard / minimal app':<52} {ingest / ceiling:>14.1%}")
    for name, (p50, p99, count) in lat.items():
        print(f"{f'end-to-end at {RATE:,} ev/s, {name}: p50 (ms)':<52} {p50:>14.2f}")
        print(f"{f'end-to-end at {RATE:,} ev/s, {name}: p99 (ms)':<52} {p99:>14.2f}")
        print(f"{f'  events received ({name})':<52} {count:>14,}")
    for size in ("1-entry", "10-entry"):
        up = lat[f"{size} requests" if size == "1-entry" else f"{size} batches"][1]
        down = lat[f"{size}, one target down"][1]
        print(f"{f'p99 with a target down / all up ({size})':<52} {down / up:>14.2f}")


if __name__ == "__main__":
    main()
