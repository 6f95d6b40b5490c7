"""kill -9 during sustained concurrent PutEvents loses no acknowledged event."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Receiver, client

_HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}


def _producer(url: str, worker: int, acked: list[str], stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        entries = [
            {"Source": "crash", "DetailType": "t", "Detail": json.dumps({"w": worker, "n": n + i})}
            for i in range(10)
        ]
        n += 10
        body = json.dumps({"Entries": entries}).encode()
        request = urllib.request.Request(url, data=body, headers=_HEADERS, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                result = json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError):
            return  # the server died: whatever was not answered was not acknowledged
        acked.extend(e["EventId"] for e in result["Entries"] if "EventId" in e)


def test_kill_9_during_concurrent_put_events_loses_no_acknowledged_event(
    server_factory: Any, receiver_factory: Any, tmp_path: Path
) -> None:
    data = tmp_path / "crash"
    hook: Receiver = receiver_factory(200)
    server = server_factory(data)
    events = client("events", server.url)
    events.put_rule(Name="all", EventPattern='{"source": ["crash"]}')
    events.put_targets(Rule="all", Targets=[{"Id": "hook", "Arn": hook.url}])

    acked: list[str] = []
    stop = threading.Event()
    producers = [
        threading.Thread(target=_producer, args=(server.url, w, acked, stop)) for w in range(8)
    ]
    for thread in producers:
        thread.start()
    time.sleep(1.5)
    server.kill()
    stop.set()
    for thread in producers:
        thread.join(10)
    assert len(acked) > 100, "the producers should have been acknowledged before the kill"

    restarted = server_factory(data)
    expected = set(acked)
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline and not expected <= seen:
        seen = {r.headers["X-Eventyard-Event-Id"] for r in hook.wait_for(0)}
        time.sleep(0.1)
    missing = expected - seen
    assert not missing, f"{len(missing)} of {len(expected)} acknowledged events never delivered"
    assert restarted.stop() == 0
