"""Three eventyard processes on a three-node JetStream cluster (R3) survive kill -9.

One rule sends every event of a bus to a queue and to a slow webhook (0.2 s an event, so
the processes always hold claimed deliveries). Producers put batches through all
three processes (each starts on its own endpoint and moves to the next one when its
endpoint fails), and a consumer receives on each endpoint and deletes through another
one. An entry counts as sent only once a PutEvents answer acknowledged it (an EventId,
no ErrorCode); a failed call or entry is sent again with the same key, so an event the
store kept before the failure may come twice, and is reported as a duplicate.

In order, on the same cluster: (a) kill -9 one eventyard process mid-stream: its leased
deliveries are taken over by the others after the lease (2 s here); (b) kill -9 one NATS
node; (c) restart both. After each, every acknowledged event must reach the queue; the
duplicates (same key received twice: a producer's retry, or a redelivery) are counted
and printed, never failed on.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from eventyard.testing import ServerProcess
from tests.conftest import TEST_MASTER_KEY, jetstream_available, require
from tests.e2e.conftest import E2E_SETTINGS, REGION, new_key
from tests.helpers import poll_until
from tests.natsserver import NATS_SERVER, NatsCluster, nats_server_available

LEASE = 2.0  # seconds: a dead process's claimed deliveries come back after this
VISIBILITY = 5  # seconds: the queue's messages a dead receive took come back after this
SLOW_HOOK = 0.2  # seconds the webhook target takes for each event
BATCH = 10
# acknowledged events not yet received at most: the producers wait beyond it, so that the
# consumers keep up and what the kills hold up is not hidden behind a long queue
WINDOW = 500
BUS = "cluster"
QUEUE = "cluster-queue"
# how long every acknowledged event has to reach the queue after a failure: the lease,
# a NATS leader election and a loaded 2-core machine's slowness, with a wide margin
CATCH_UP = 90.0


def _client(service: str, url: str, key: dict[str, str], attempts: int = 2) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(
            retries={"total_max_attempts": attempts, "mode": "standard"},
            connect_timeout=2,
            read_timeout=15,
        ),
    )


@dataclass
class Cluster:
    """The NATS cluster, the three eventyard processes and the shared access key."""

    nats: NatsCluster
    servers: list[ServerProcess]
    key: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def urls(self) -> list[str]:
        """The endpoints of the processes that run now."""
        with self.lock:
            return [
                s.url for s in self.servers if s.process is not None and s.process.poll() is None
            ]


@dataclass
class Tally:
    """What the producers had acknowledged and what the consumer received."""

    acked: set[str] = field(default_factory=set)
    received: dict[str, int] = field(default_factory=dict)  # key -> times received
    hooked: dict[str, int] = field(default_factory=dict)  # key -> times the webhook got it
    event_ids: dict[str, int] = field(default_factory=dict)  # EventId -> times received
    put_failures: int = 0
    odd_answers: list[str] = field(default_factory=list)  # PutEvents answers with no Entries
    entry_failures: dict[str, int] = field(default_factory=dict)  # ErrorCode -> count
    receive_failures: int = 0
    receives: int = 0
    empty_receives: int = 0
    last_receive_failure: str = ""
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def missing(self) -> set[str]:
        """Acknowledged events that the queue or the webhook has not had yet."""
        with self.lock:
            return (self.acked - set(self.received)) | (self.acked - set(self.hooked))

    def in_flight(self) -> int:
        """Events acknowledged and not yet received (a bound keeps the queue short)."""
        with self.lock:
            return len(self.acked) - min(len(self.received), len(self.hooked))

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def duplicates(self) -> tuple[int, int]:
        """(keys received more than once, EventIds received more than once) by the queue."""
        with self.lock:
            keys = sum(n - 1 for n in self.received.values())
            ids = sum(n - 1 for n in self.event_ids.values())
            return keys, ids

    def hook_duplicates(self) -> int:
        """Keys the webhook got more than once."""
        with self.lock:
            return sum(n - 1 for n in self.hooked.values())


def _produce(cluster: Cluster, tally: Tally, number: int, stop: threading.Event) -> None:
    """Put batches of fresh keys until ``stop``; resend what was not acknowledged."""
    clients: dict[str, Any] = {}
    sequence = 0
    pending: list[str] = []
    turn = number
    while not stop.is_set():
        if tally.in_flight() >= WINDOW:
            stop.wait(0.01)  # the consumers are behind: let them catch up
            continue
        while len(pending) < BATCH:
            pending.append(f"p{number}-{sequence}")
            sequence += 1
        urls = cluster.urls()
        if not urls:
            continue
        url = urls[turn % len(urls)]
        events = clients.get(url) or clients.setdefault(url, _client("events", url, cluster.key))
        entries = [
            {
                "Source": "cluster.test",
                "DetailType": "Tick",
                "Detail": json.dumps({"key": key}),
                "EventBusName": BUS,
            }
            for key in pending
        ]
        try:
            answer = events.put_events(Entries=entries)
        except Exception:  # a dead endpoint, a timeout, a 5xx: the next endpoint, again
            with tally.lock:
                tally.put_failures += 1
            turn += 1
            continue
        if "Entries" not in answer:
            # not a PutEvents answer (seen once under load; nothing in it acknowledges
            # an entry): count it with the failed puts and send the batch again
            with tally.lock:
                tally.put_failures += 1
                tally.odd_answers.append(repr(answer)[:300])
            turn += 1
            continue
        kept = []
        for key, result in zip(pending, answer["Entries"], strict=True):
            if result.get("EventId") and not result.get("ErrorCode"):
                with tally.lock:
                    tally.acked.add(key)
            else:
                kept.append(key)
                with tally.lock:
                    code = str(result.get("ErrorCode"))
                    tally.entry_failures[code] = tally.entry_failures.get(code, 0) + 1
        pending = kept


def _consume(cluster: Cluster, tally: Tally, number: int, stop: threading.Event) -> None:
    """Receive on one endpoint, delete through the next one, until ``stop``."""
    clients: dict[str, Any] = {}
    turn = number
    queue_url = ""
    while not stop.is_set():
        urls = cluster.urls()
        if not urls:
            continue
        here, there = urls[turn % len(urls)], urls[(turn + 1) % len(urls)]
        sqs = clients.get(here) or clients.setdefault(here, _client("sqs", here, cluster.key))
        other = clients.get(there) or clients.setdefault(there, _client("sqs", there, cluster.key))
        try:
            if not queue_url:
                queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
            answer = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = answer.get("Messages", [])
            with tally.lock:
                tally.receives += 1
                tally.empty_receives += not messages
            for message in messages:
                event = json.loads(message["Body"])
                key = event["detail"]["key"]
                with tally.lock:
                    tally.received[key] = tally.received.get(key, 0) + 1
                    tally.event_ids[event["id"]] = tally.event_ids.get(event["id"], 0) + 1
            if messages:
                other.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
        except Exception as exc:  # the endpoint died: the next one (undeleted ones come back)
            with tally.lock:
                tally.receive_failures += 1
                tally.last_receive_failure = repr(exc)[:300]
            turn += 1


@contextlib.contextmanager
def _slow_webhook(tally: Tally) -> Iterator[str]:
    """A webhook that takes SLOW_HOOK seconds to answer each event (a slow target: its
    deliveries stay claimed for that long, so a killed process always holds some)."""
    pause = threading.Event()  # never set: wait() is the target's work time

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            key = json.loads(body)["detail"].get("key", "")
            pause.wait(SLOW_HOOK)
            with tally.lock:
                tally.hooked[key] = tally.hooked.get(key, 0) + 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _traffic(cluster: Cluster, tally: Tally, hook: str) -> Iterator[threading.Event]:
    """The set-up, then three producers and three consumers until the block ends."""
    _set_up(cluster, hook)
    stop_producing, stop_consuming = threading.Event(), threading.Event()
    producers = [
        threading.Thread(target=_produce, args=(cluster, tally, i, stop_producing), daemon=True)
        for i in range(3)
    ]
    consumers = [
        threading.Thread(target=_consume, args=(cluster, tally, i, stop_consuming), daemon=True)
        for i in range(3)
    ]
    for thread in producers + consumers:
        thread.start()
    try:
        yield stop_producing
    finally:
        stop_producing.set()
        for thread in producers:
            thread.join(30)
        stop_consuming.set()
        for thread in consumers:
            thread.join(30)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require(nats_server_available(), f"the pinned nats-server is not installed at {NATS_SERVER}")
    require(jetstream_available(), "the JetStream store (eventyard[jetstream]) is not installed")
    with NatsCluster(tmp_path / "nats", size=3) as nats:
        prefix = f"c{uuid.uuid4().hex[:8]}"
        store = {
            "EVENTYARD_STORE": nats.url,
            "EVENTYARD_STORE_REPLICAS": "3",
            "EVENTYARD_STORE_PREFIX": prefix,
            "EVENTYARD_MASTER_KEY": TEST_MASTER_KEY,
        }
        env = {
            **E2E_SETTINGS,
            **store,
            "EVENTYARD_DELIVERY_LEASE": str(LEASE),
            "EVENTYARD_SHUTDOWN_TIMEOUT": "1",
        }
        # the access key is made on the store before any server runs (the admin
        # command opens the JetStream store itself); every process opens it with the
        # shared master key
        key = new_key(tmp_path / "admin", **env)
        servers = [ServerProcess(tmp_path / f"eventyard{i}", env=env) for i in range(3)]
        try:
            for server in servers:
                server.start()
            yield Cluster(nats, servers, key)
        finally:
            for server in servers:
                server.stop()


def _set_up(cluster: Cluster, hook: str) -> None:
    """The bus, the queue, the rule (to the queue and the slow webhook), and every
    process routing by them."""
    url = cluster.servers[0].url
    events, sqs = _client("events", url, cluster.key), _client("sqs", url, cluster.key)
    events.create_event_bus(Name=BUS)
    # a receive in flight at a kill took its messages along: they come back after this
    queue_url = sqs.create_queue(
        QueueName=QUEUE, Attributes={"VisibilityTimeout": str(VISIBILITY)}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events.put_rule(
        Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["cluster.test"]})
    )
    events.put_targets(
        Rule="all",
        EventBusName=BUS,
        Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}, {"Id": "hook", "Arn": hook}],
    )
    # the other processes learn of the rule through the catalog's change feed: wait
    # until a probe put through each process reaches the queue
    for number, server in enumerate(cluster.servers):
        put = _client("events", server.url, cluster.key)
        probe = json.dumps({"key": f"probe-{number}"})

        def routed(put: Any = put, probe: str = probe) -> bool:
            put.put_events(
                Entries=[
                    {
                        "Source": "cluster.test",
                        "DetailType": "Probe",
                        "Detail": probe,
                        "EventBusName": BUS,
                    }
                ]
            )
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in got.get("Messages", []):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return any(
                json.loads(m["Body"])["detail"] == json.loads(probe)
                for m in got.get("Messages", [])
            )

        poll_until(routed, 60, what=f"process {number} routing by the new rule")


def _run_until(tally: Tally, count: int, what: str) -> None:
    poll_until(lambda: tally.acked_count() >= count, 120, interval=0.05, what=what)


def _all_arrive(tally: Tally, what: str) -> float:
    """Wait until every acknowledged event arrived; the seconds it took."""
    started = time.monotonic()
    poll_until(lambda: not tally.missing(), CATCH_UP, interval=0.1, what=what)
    return time.monotonic() - started


def _metric(cluster: Cluster, url: str, name: str) -> str:
    """One metric of a process (``/metrics`` is the operator's: the key's bearer token)."""
    token = cluster.key["BearerToken"]
    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        text = answer.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return found[1] if found else "?"


def _state_of(cluster: Cluster) -> str:
    """Each live process's delivery backlog and the queue's counts, for a failure."""
    lines = []
    for url in cluster.urls():
        try:
            backlog = _metric(cluster, url, "eventyard_delivery_backlog")
            window = _metric(cluster, url, "eventyard_delivery_window")
            sqs = _client("sqs", url, cluster.key)
            queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
            counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
            attributes = counts["Attributes"]
            lines.append(
                f"{url}: backlog {backlog}, in memory {window}, "
                f"queue visible {attributes.get('ApproximateNumberOfMessages')}, in flight "
                f"{attributes.get('ApproximateNumberOfMessagesNotVisible')}"
            )
        except Exception as exc:  # a diagnosis: say what failed and go on
            lines.append(f"{url}: {exc}")
    return "\n".join(lines)


def _stage(report: list[str], tally: Tally, what: str) -> None:
    """Note where the test is (printed with -s, and in a failure's captured output)."""
    keys, _ = tally.duplicates()
    line = (
        f"{time.monotonic() - tally.started:.1f} s {what}: {tally.acked_count()} "
        f"acknowledged, {len(tally.missing())} not yet received, {keys} duplicates, "
        f"{len(tally.hooked)} at the webhook ({tally.hook_duplicates()} twice), "
        f"{tally.put_failures} failed puts, entries refused {tally.entry_failures}, "
        f"{tally.receives} receives ({tally.empty_receives} empty, {tally.receive_failures} "
        "failed)"
    )
    report.append(line)
    print(line, tally.last_receive_failure, flush=True)


@pytest.mark.timeout(480)
def test_kill_9_of_a_process_or_a_nats_node_loses_no_acknowledged_event(
    cluster: Cluster,
) -> None:
    tally = Tally()
    report: list[str] = []
    with _slow_webhook(tally) as hook, _traffic(cluster, tally, hook) as stop_producing:
        _run_until(tally, 300, "300 events acknowledged before the first kill")
        _stage(report, tally, "before the kills")

        # (a) kill -9 one eventyard process mid-stream
        victim = cluster.servers[1]
        held = _metric(cluster, victim.url, "eventyard_delivery_window")
        killed_at = time.monotonic()
        acked_before = set(tally.acked)
        with cluster.lock:
            victim.kill()

        def arrived(where: dict[str, int]) -> bool:
            with tally.lock:
                return acked_before <= set(where)

        poll_until(lambda: arrived(tally.hooked), CATCH_UP, interval=0.05, what="the webhook")
        hooked_after = time.monotonic() - killed_at
        poll_until(lambda: arrived(tally.received), CATCH_UP, interval=0.05, what="the queue")
        report.append(
            f"(a) process killed holding {held} claimed deliveries: what was acknowledged "
            f"before had all reached the webhook {hooked_after:.2f} s after the kill (lease "
            f"{LEASE} s) and the queue {time.monotonic() - killed_at:.2f} s after (visibility "
            f"{VISIBILITY} s)"
        )
        _run_until(tally, len(acked_before) + 300, "300 more events on two processes")
        _stage(report, tally, "(a) after 300 more on two processes")

        # (b) kill -9 one NATS node (its clients reconnect to the others)
        acked_before = set(tally.acked)
        cluster.nats.nodes[2].kill()
        killed_at = time.monotonic()
        _run_until(tally, len(acked_before) + 300, "300 more events on two NATS nodes")
        _stage(report, tally, "(b) after 300 more on two NATS nodes")
        report.append(
            f"(b) NATS node killed: 300 more events acknowledged in "
            f"{time.monotonic() - killed_at:.2f} s"
        )

        # (c) restart both
        cluster.nats.nodes[2].start()
        cluster.nats.nodes[2].wait_healthy(60)
        with cluster.lock:
            cluster.servers[1].start()
        acked_before = set(tally.acked)
        _run_until(tally, len(acked_before) + 300, "300 more events after the restarts")
        _stage(report, tally, "(c) after 300 more after the restarts")
        stop_producing.set()
        try:
            took = _all_arrive(tally, "every acknowledged event in the queue")
        finally:
            print(_state_of(cluster), flush=True)
    keys, ids = tally.duplicates()
    report.append(
        f"(c) restarted: {len(tally.acked)} events acknowledged, {len(tally.missing())} lost, "
        f"{keys} duplicates by key ({ids} by EventId: redeliveries), "
        f"{tally.hook_duplicates()} at the webhook, "
        f"{tally.put_failures} failed PutEvents calls retried (answers with no Entries: "
        f"{tally.odd_answers}), entries refused and "
        f"sent again {tally.entry_failures}, "
        f"{tally.receive_failures} failed receives; the last arrived {took:.2f} s after "
        f"the producers stopped"
    )
    print("\n".join(report))
    assert not tally.missing()
