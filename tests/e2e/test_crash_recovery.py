"""kill -9 during sustained concurrent PutEvents loses no acknowledged event."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Receiver, client
from tests.helpers import poll_until

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
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
            # the server died (IncompleteRead: in the middle of an answer): whatever was
            # not answered in full was not acknowledged
            return
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
    # well over the 100 acknowledgements asserted below, so the kill hits a busy server
    poll_until(lambda: len(acked) >= 300, what="300 acknowledged events")
    server.kill()
    stop.set()
    for thread in producers:
        thread.join(10)
    assert len(acked) > 100, "the producers should have been acknowledged before the kill"

    restarted = server_factory(data)
    expected = set(acked)

    def seen() -> set[str]:
        return {r.headers["X-Eventyard-Event-Id"] for r in hook.received()}

    poll_until(
        lambda: expected <= seen(), 60, interval=0.1, what=f"{len(expected)} events delivered"
    )
    assert restarted.stop() == 0
