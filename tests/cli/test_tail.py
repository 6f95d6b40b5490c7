"""``eventyard tail``: through the test runner and as the real console script."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventyard.sdk.client import Client
from eventyard.testing import ServerProcess
from tests.cli.conftest import EVENTYARD, Invoke, one_line_error, subprocess_env


@contextmanager
def producing(server: ServerProcess, entries: list[dict[str, object]]) -> Iterator[None]:
    """Put ``entries`` over and over in a thread until the block ends.

    A tail started meanwhile sees them without the test knowing when it subscribed.
    """
    stop = threading.Event()

    def produce() -> None:
        with Client(server.url, timeout=10) as client:
            while not stop.is_set():
                client.put_events(entries)
                stop.wait(0.05)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_tail_prints_one_json_line_per_event_matching_the_pattern(
    invoke: Invoke, server: ServerProcess
) -> None:
    entries: list[dict[str, object]] = [
        {"Source": "other", "DetailType": "Skip", "Detail": {}},
        {"Source": "wanted", "DetailType": "Keep", "Detail": {"k": 1}},
    ]
    with producing(server, entries):
        result = invoke("tail", "--pattern", '{"source": ["wanted"]}', "--count", "3", "-o", "json")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    events = [json.loads(line) for line in lines]
    assert {e["source"] for e in events} == {"wanted"}
    assert all(e["detail"] == {"k": 1} for e in events)
    assert result.stderr.startswith("tailing bus default at ")


def test_tail_table_line_shows_time_source_detail_type_and_id(
    invoke: Invoke, server: ServerProcess, client: Client
) -> None:
    client.create_bus("tail-table")
    entries: list[dict[str, object]] = [
        {"Source": "shop", "DetailType": "OrderPlaced", "Detail": {}, "EventBusName": "tail-table"}
    ]
    with producing(server, entries):
        result = invoke("tail", "--bus", "tail-table", "--count", "1")
    assert result.exit_code == 0, result.stderr
    (line,) = result.stdout.splitlines()
    time_text, source, detail_type, event_id = line.split()
    assert time_text.endswith("Z") and "T" in time_text
    assert (source, detail_type) == ("shop", "OrderPlaced")
    assert len(event_id) == 36


def test_tail_pattern_from_a_file(invoke: Invoke, server: ServerProcess, tmp_path: Path) -> None:
    pattern = tmp_path / "pattern.json"
    pattern.write_text('{"detail-type": ["FromFile"]}')
    entries: list[dict[str, object]] = [
        {"Source": "a", "DetailType": "Other", "Detail": {}},
        {"Source": "a", "DetailType": "FromFile", "Detail": {}},
    ]
    with producing(server, entries):
        result = invoke("tail", "-p", f"@{pattern}", "--count", "2", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert {json.loads(line)["detail-type"] for line in result.stdout.splitlines()} == {"FromFile"}


def test_tail_of_a_missing_bus_fails_with_one_line(invoke: Invoke) -> None:
    result = invoke("tail", "--bus", "missing")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        "error: ResourceNotFoundException: Event bus missing does not exist."
    )


def test_tail_with_an_invalid_pattern_is_a_usage_error_with_awss_message(invoke: Invoke) -> None:
    result = invoke("tail", "--pattern", '{"source": "not-a-list"}')
    assert result.exit_code == 2
    assert one_line_error(result).startswith(
        "error: --pattern: Event pattern is not valid. Reason: "
    )


def test_tail_pattern_that_is_not_json_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("tail", "--pattern", "{nope")
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: --pattern is not valid JSON")


def test_tail_of_an_unreachable_server_fails_with_one_line(invoke: Invoke) -> None:
    result = invoke("tail", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: cannot reach eventyard at http://127.0.0.1:9")


def test_tail_console_script_prints_events_and_exits_0_on_ctrl_c(
    server: ServerProcess, client: Client
) -> None:
    client.create_bus("tail-subprocess")
    process = subprocess.Popen(
        [EVENTYARD, "tail", "--bus", "tail-subprocess", "--output", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(server),
    )  # fmt: skip
    try:
        assert process.stderr is not None and process.stdout is not None
        assert process.stderr.readline().startswith("tailing bus tail-subprocess at ")
        ids = client.put_events(
            [{"Source": "sub", "DetailType": "T", "Detail": {"i": i}} for i in range(3)],
            bus="tail-subprocess",
        )
        seen = [json.loads(process.stdout.readline())["id"] for _ in ids]
        assert seen == ids
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
