"""``eventyard archives`` and ``eventyard replay``: archive a bus, replay it to the end."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from typer.testing import Result

from eventyard import Event
from eventyard.cli.archives import parse_when
from eventyard.sdk.client import Client
from tests.cli.conftest import Invoke, one_line_error


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_archive_a_bus_then_replay_it_to_completion(invoke: Invoke, client: Client) -> None:
    tag = uuid.uuid4().hex[:8]
    bus, archive = f"cli-bus-{tag}", f"cli-archive-{tag}"
    client.create_bus(bus)
    created = json.loads(
        _ok(
            invoke(
                "archives", "create", archive, "--bus", bus, "--pattern", '{"source": ["cli"]}',
                "--retention-days", "3", "-o", "json",
            )
        )
    )  # fmt: skip
    assert created["ArchiveArn"].endswith(f":archive/{archive}")
    then = datetime.now(UTC) - timedelta(minutes=5)
    stamp = then.isoformat().replace("+00:00", "Z")
    client.put_events(
        [
            Event(source="cli", detail_type="t", detail={"n": n}, time=stamp, bus=bus)
            for n in range(2)
        ]
        + [Event(source="other", detail_type="t", time=stamp, bus=bus)]
    )
    shown = json.loads(_ok(invoke("archives", "show", archive, "-o", "json")))
    assert (shown["EventCount"], shown["RetentionDays"]) == (2, 3)
    listed = json.loads(_ok(invoke("archives", "list", "--prefix", archive, "-o", "json")))
    assert [a["ArchiveName"] for a in listed] == [archive]

    result = invoke("replay", "--archive", archive, "--from", "10m", "--to", "1m", "-o", "json")
    final = json.loads(_ok(result))
    assert final["State"] == "COMPLETED"
    assert final["ReplayName"].startswith(archive)
    assert final["EventLastReplayedTime"] == final["EventEndTime"]
    shown = json.loads(_ok(invoke("replays", "show", final["ReplayName"], "-o", "json")))
    assert shown["State"] == "COMPLETED"
    rows = _ok(invoke("replays", "list", "--prefix", final["ReplayName"])).splitlines()
    assert rows[1].split()[:3] == [final["ReplayName"], "COMPLETED", "100%"]
    cancel = invoke("replays", "cancel", final["ReplayName"])
    assert one_line_error(cancel).startswith("error: IllegalStatusException: ")

    # an empty window is the server's ValidationException, on one line
    bad = invoke("replay", "--archive", archive, "--from", "1m", "--to", "10m")
    assert "EventStartTime must be before EventEndTime" in one_line_error(bad)
    assert bad.exit_code == 1
    assert one_line_error(invoke("replay", "--archive", archive, "--from", "soon")).startswith(
        "error: --from: 'soon' is not a time"
    )
    assert _ok(invoke("archives", "delete", archive)) == f"deleted archive {archive}\n"
    assert json.loads(_ok(invoke("archives", "list", "--prefix", archive, "-o", "json"))) == []


def test_times_are_iso_epoch_now_or_a_duration_ago() -> None:
    now = 1_800_000_000.0
    eight = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    assert parse_when("2027-01-15T08:00:00Z", now=now) == eight
    assert parse_when("2027-01-15T08:00:00", now=now) == eight  # no zone: UTC
    assert parse_when("2027-01-15T09:00:00+01:00", now=now) == eight
    assert parse_when("1700000000.5", now=now) == 1_700_000_000.5
    assert parse_when("now", now=now) == now
    assert parse_when("90m", now=now) == now - 5400
    assert parse_when("2d", now=now) == now - 2 * 86400
