"""``eventyard events search`` and ``eventyard trace`` against the shared server."""

from __future__ import annotations

import json
import uuid

from eventyard.sdk.client import Client
from tests.cli.conftest import Invoke, one_line_error
from tests.helpers import poll_until


def test_events_search_prints_a_table_and_json_lines(invoke: Invoke, client: Client) -> None:
    bus = f"cli-search-{uuid.uuid4().hex[:8]}"
    client.create_bus(bus)
    ids = client.put_events(
        [
            {"Source": "shop", "DetailType": kind, "Detail": "{}"}
            for kind in ("paid", "refunded", "paid")
        ],
        bus=bus,
    )
    pattern = '{"detail-type": ["paid"]}'
    table = invoke("events", "search", "--bus", bus, "--pattern", pattern, "--since", "10m")
    assert table.exit_code == 0, table.stderr
    assert [line.split()[1] for line in table.stdout.splitlines()[1:]] == [ids[0], ids[2]]
    lines = invoke("events", "search", "-b", bus, "--json", "--limit", "1").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids[:1]
    bad = invoke("events", "search", "-b", bus, "--pattern", '{"source": "x"}')
    assert "Event pattern is not valid" in one_line_error(bad)


def test_trace_prints_a_tree_with_the_failing_field_and_json(
    invoke: Invoke, client: Client
) -> None:
    bus = f"cli-trace-{uuid.uuid4().hex[:8]}"
    queue = f"cli-trace-q-{uuid.uuid4().hex[:8]}"
    client.create_bus(bus)
    client.create_queue(queue)
    client.put_rule("wants-eu", {"detail": {"region": ["eu"]}}, bus=bus)
    client.put_rule("all", {"source": ["shop"]}, bus=bus)
    client.put_targets("all", [{"Id": "q", "Arn": client.queue_arn(queue)}], bus=bus)
    (event_id,) = client.put_events(
        [{"Source": "shop", "DetailType": "x", "Detail": '{"region": "us"}'}], bus=bus
    )
    poll_until(lambda: client.trace(event_id).targets, what="the queue delivery's trace")
    tree = invoke("trace", event_id)
    assert tree.exit_code == 0, tree.stderr
    assert "wants-eu  did not fire" in tree.stdout
    assert 'detail.region is "us"; the pattern expects "eu"' in tree.stdout
    assert "all  matched → q" in tree.stdout
    assert "delivered" in tree.stdout and f"→ queue {queue}" in tree.stdout
    data = json.loads(invoke("trace", event_id, "--json").stdout)
    assert data["event_id"] == event_id and data["found"] is True
    assert "not a time-ordered id" in one_line_error(invoke("trace", str(uuid.uuid4())))
