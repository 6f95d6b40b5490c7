""" "Why didn't my rule fire?": the trace and the search against a real server, per backend.

One event on bus ``orders`` meets five rules: one wants another field value, one a
field the event lacks, one is disabled, one delivers to a webhook that answers 500
(retried once, then dead-lettered), one to a queue whose message is received and
deleted. A second event goes to a bus that does not exist, where a rule of another bus
would have matched it.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from eventyard import Client, Trace
from eventyard.errors import InvalidEventPattern, ResourceNotFound, ValidationError
from eventyard.testing import ServerProcess
from tests.conftest import BACKENDS, backend_server
from tests.e2e.conftest import E2E_SETTINGS, Receiver
from tests.helpers import poll_until


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp(f"trace-e2e-{request.param}")
    with backend_server(request, request.param, data_dir, env=E2E_SETTINGS) as process:
        yield process


def _setup(sdk: Client, failing: Receiver, suffix: str) -> tuple[str, str, str]:
    bus, other = f"orders-{suffix}", f"other-{suffix}"
    inbox, dlq = f"inbox-{suffix}", f"dlq-{suffix}"
    sdk.create_bus(bus)
    sdk.create_bus(other)
    sdk.create_queue(inbox)
    sdk.create_queue(dlq)
    sdk.put_rule("by-state", {"detail": {"state": ["shipped"]}}, bus=bus)
    sdk.put_rule("by-region", {"detail": {"region": ["eu"]}}, bus=bus)
    sdk.put_rule("off", {"source": ["shop"]}, bus=bus, enabled=False)
    sdk.put_rule("fails", {"source": ["shop"]}, bus=bus)
    sdk.put_targets(
        "fails",
        [
            {
                "Id": "hook",
                "Arn": failing.url,
                "RetryPolicy": {"MaximumRetryAttempts": 1},
                "DeadLetterConfig": {"Arn": sdk.queue_arn(dlq)},
            }
        ],
        bus=bus,
    )
    sdk.put_rule("to-queue", {"source": ["shop"]}, bus=bus)
    sdk.put_targets("to-queue", [{"Id": "q", "Arn": sdk.queue_arn(inbox)}], bus=bus)
    sdk.put_rule("elsewhere", {"detail-type": ["order"]}, bus=other)
    return bus, inbox, dlq


def _until(sdk: Client, event_id: str, done: Callable[[Trace], bool]) -> Trace:
    """The trace once ``done`` holds (the journal is written within ~100 ms)."""
    found: list[Trace] = []

    def ready() -> bool:
        found[:] = [sdk.trace(event_id)]
        return done(found[0])

    poll_until(ready, what="the trace to show the deliveries")
    return found[0]


def test_trace_answers_why_each_rule_did_or_did_not_fire(
    server: ServerProcess, receiver_factory: Callable[[int], Receiver]
) -> None:
    failing = receiver_factory(500)
    suffix = uuid.uuid4().hex[:8]
    with Client(server.url) as sdk:
        bus, inbox, dlq = _setup(sdk, failing, suffix)
        event = {"Source": "shop", "DetailType": "order", "Detail": '{"state": "pending"}'}
        (event_id,) = sdk.put_events([event], bus=bus)
        (lost_id,) = sdk.put_events([event], bus=f"nowhere-{suffix}")

        (message,) = sdk.receive_messages(inbox, wait=5)
        sdk.delete_message(inbox, message.receipt)
        (dead,) = sdk.receive_messages(dlq, wait=10)
        assert dead.attributes["ERROR_CODE"] == "HTTP_5XX"

        def complete(t: Trace) -> bool:
            hook, queue = t.target("fails", "hook"), t.target("to-queue", "q")
            return (
                hook is not None
                and hook.dead_letter is not None
                and queue is not None
                and any(len(m.history) >= 2 for m in queue.messages)
                and any(m.history for m in hook.messages)
            )

        trace = _until(sdk, event_id, complete)

        assert trace.found and trace.records[0].bus == bus
        assert "as they are now" in trace.rules_note
        state, region, off = trace.rule("by-state"), trace.rule("by-region"), trace.rule("off")
        assert state is not None and not state.matched and state.explanation is not None
        (wrong,) = state.explanation.mismatches
        assert (wrong.path, wrong.kind, wrong.actual) == ("detail.state", "value", ("pending",))
        assert region is not None and region.explanation is not None
        assert region.explanation.mismatches[0].kind == "missing"
        assert off is not None and not off.matched and off.state == "DISABLED"
        assert off.reason is not None and "disabled" in off.reason
        fails = trace.rule("fails")
        assert fails is not None and fails.matched

        hook = trace.target("fails", "hook")
        assert hook is not None and hook.dead_letter is not None
        assert [(a.attempt, a.outcome, a.status) for a in hook.attempts] == [
            (1, "retry", 500),
            (2, "dead", 500),
        ]
        assert hook.dead_letter.queue == dlq and hook.dead_letter.message_id == dead.id
        assert [step.kind for step in hook.messages[0].history] == ["queue-receive"]

        queue = trace.target("to-queue", "q")
        assert queue is not None
        assert [(a.outcome, a.message_id) for a in queue.attempts] == [("delivered", message.id)]
        assert [step.kind for step in queue.messages[0].history] == [
            "queue-receive",
            "queue-delete",
        ]

        lost = sdk.trace(lost_id)
        (nowhere,) = lost.buses
        assert not nowhere.exists and nowhere.message is not None
        assert "No such bus" in nowhere.message
        assert {(o.bus, o.rule) for o in nowhere.other_buses} >= {
            (f"other-{suffix}", "elsewhere"),
            (bus, "fails"),
        }


def test_search_finds_events_by_pattern_and_window_page_by_page(server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    bus = f"search-{suffix}"
    with Client(server.url) as sdk:
        sdk.create_bus(bus)
        entries: list[dict[str, Any]] = [
            {"Source": "shop", "DetailType": "order", "Detail": f'{{"n": {n}}}'} for n in range(7)
        ]
        ids = sdk.put_events(entries, bus=bus)
        found = sdk.search_events(bus, pattern={"detail": {"n": [{"numeric": [">=", 2]}]}})
        assert [e.id for e in found] == ids[2:]
        assert found[0].event["detail"] == {"n": 2}
        paged = sdk.search_events(bus, since="5m", limit=None)
        assert [e.id for e in paged] == ids
        assert [e.id for e in sdk.search_events(bus, limit=3)] == ids[:3]
        url = f"{server.url}/v1/buses/{bus}/events"
        first = httpx.get(url, params={"limit": "4"}).json()
        second = httpx.get(url, params={"limit": "4", "next": first["next"]}).json()
        assert [e["id"] for e in first["events"] + second["events"]] == ids
        assert second["next"] is None
        refused = httpx.get(url, params={"next": first["next"], "pattern": '{"source": ["shop"]}'})
        assert refused.status_code == 400 and "another search" in refused.json()["message"]
        assert sdk.search_events(bus, since="1h", until="30m") == []
        with pytest.raises(InvalidEventPattern, match="Event pattern is not valid"):
            sdk.search_events(bus, pattern={"detail": "x"})
        with pytest.raises(ResourceNotFound, match="does not exist"):
            sdk.search_events(f"no-such-{suffix}")
        with pytest.raises(ValidationError, match="since must be"):
            sdk.search_events(bus, since="yesterday")
        # out-of-range times and forged tokens are refused, never a 500
        digest = hashlib.sha256(f"{bus}\n".encode()).hexdigest()[:16]
        forged = orjson.dumps({"d": digest, "s": -1e300, "u": 1e300, "a": 0})
        for params in (
            {"since": "1e20", "until": "1e21"},
            {"since": "99999999999w"},
            {"since": "-inf"},
            {"next": base64.urlsafe_b64encode(forged).decode()},
        ):
            bad = httpx.get(url, params=params)
            assert bad.status_code == 400 and "ValidationException" in bad.text, params
        far = httpx.get(f"{server.url}/v1/events/ffffffff-ffff-7fff-bfff-ffffffffffff/trace")
        assert far.status_code == 400 and "after 9999" in far.json()["message"]
        with pytest.raises(ValidationError, match="at most one day"):
            sdk.trace(str(uuid.uuid4()), since="2d")
        with pytest.raises(ValidationError, match="not a time-ordered id"):
            sdk.trace(str(uuid.uuid4()))
        old = sdk.trace(str(uuid.uuid4()), since="1h")
        assert not old.found and old.message is not None
