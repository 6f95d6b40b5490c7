"""Storage faults end to end: a damaged WAL stops ``serve``, ``store recover`` repairs it,
and ``kill -9`` at any moment of a busy server never looks like damage."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from eventyard.server.store.wal import FRAME_HEADER, WAL_HEADER, scan
from eventyard.testing import ServerProcess
from tests.e2e.conftest import ACCOUNT, E2E_SETTINGS, REGION, client
from tests.helpers import poll_until

_HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}


def _eventyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventyard", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **E2E_SETTINGS},
    )


def _serve_refused(data: Path) -> str:
    """Run ``serve`` on a damaged store: it must exit 1 with one ``error:`` line."""
    served = _eventyard("serve", "--port", "0", "--data-dir", str(data))
    assert served.returncode == 1, served.stderr
    assert served.stdout == ""
    [line] = served.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def _field(output: str, label: str) -> str:
    """The value of the first ``label   value`` line of a store command's output."""
    for line in output.splitlines():
        name, _, value = line.partition(" ")
        if name == label:
            return value.strip()
    raise AssertionError(f"no {label!r} line in {output!r}")


def _queue_messages(url: str, name: str) -> list[str]:
    sqs = client("sqs", url)
    queue = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return bodies
        bodies += [m["Body"] for m in got["Messages"]]


def test_a_truncated_wal_stops_serve_and_store_recover_brings_it_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env=E2E_SETTINGS).start()
    sqs = client("sqs", server.url)
    queue = sqs.create_queue(QueueName="orders")["QueueUrl"]
    for n in range(60):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"n": n, "pad": "x" * 3000}))
    server.kill()

    wal = data / "eventyard.db-wal"
    scanned = scan(str(wal))
    assert scanned.committed > 20
    os.truncate(wal, WAL_HEADER + (scanned.committed // 2) * (FRAME_HEADER + scanned.page_size))

    line = _serve_refused(data)
    assert f"{wal} is damaged and the store was not opened" in line
    assert f"run: eventyard store recover --data-dir {data}" in line

    checked = _eventyard("store", "check", "--data-dir", str(data))
    assert checked.returncode == 1
    assert _field(checked.stdout, "wal").startswith("damaged: ")
    assert checked.stderr.strip() == (
        f"error: the store {data}/eventyard.db is damaged; recover it with: "
        f"eventyard store recover --data-dir {data}"
    )

    recovered = _eventyard("store", "recover", "--data-dir", str(data))
    assert recovered.returncode == 0, recovered.stderr
    backup = next(
        line.split()[1] for line in recovered.stdout.splitlines() if line.startswith("backup")
    )
    kept_files = {p.name: p.stat().st_size for p in Path(backup).iterdir()}
    # the WAL as it was found, before recover cut it back
    assert kept_files["eventyard.db-wal"] > wal.stat().st_size
    assert "eventyard.db" in kept_files
    assert _field(recovered.stdout, "lost").startswith("the WAL after frame")

    healthy = _eventyard("store", "check", "--data-dir", str(data), "--full")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert _field(healthy.stdout, "integrity_check") == "ok"

    restarted = ServerProcess(data, env=E2E_SETTINGS).start()
    try:
        kept = [json.loads(body)["n"] for body in _queue_messages(restarted.url, "orders")]
        assert sorted(kept) == list(range(len(kept)))  # a prefix of what was sent, no hole
        assert len(kept) < 60
    finally:
        assert restarted.stop() == 0


def _fill(sqs: Any, queue: str, count: int) -> None:
    """Send ``count`` padded messages ``{"n": 0..count-1}``, ten to a batch."""
    for n in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"n": n + i, "pad": "x" * 3000})}
            for i in range(10)
        ]
        assert not sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed")


def test_a_damaged_database_page_stops_serve_and_recover_rebuilds_from_readable_rows(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env=E2E_SETTINGS).start()
    sqs = client("sqs", server.url)
    queue = sqs.create_queue(QueueName="orders")["QueueUrl"]
    _fill(sqs, queue, 200)
    assert server.stop() == 0  # everything in the database file, no WAL
    database = data / "eventyard.db"
    pages = database.stat().st_size // 4096
    with database.open("r+b") as file:  # two pages of the messages' b-tree
        file.seek((pages * 2 // 3) * 4096)
        file.write(bytes(2 * 4096))

    line = _serve_refused(data)
    assert f"{database} is damaged and was not opened" in line
    assert f"run: eventyard store recover --data-dir {data}" in line
    assert _eventyard("store", "check", "--data-dir", str(data)).returncode == 1

    recovered = _eventyard("store", "recover", "--data-dir", str(data))
    assert recovered.returncode == 0, recovered.stderr
    assert _field(recovered.stdout, "rebuilt") == f"{database} from the readable rows"
    assert _eventyard("store", "check", "--data-dir", str(data), "--full").returncode == 0

    restarted = ServerProcess(data, env=E2E_SETTINGS).start()
    try:
        kept = {json.loads(body)["n"] for body in _queue_messages(restarted.url, "orders")}
        assert 100 < len(kept) <= 200
        assert kept <= set(range(200))
    finally:
        assert restarted.stop() == 0


def test_store_commands_refuse_while_a_server_holds_the_data_dir(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env=E2E_SETTINGS).start()
    try:
        assert server.process is not None
        for command in ("check", "recover"):
            refused = _eventyard("store", command, "--data-dir", str(tmp_path / "data"))
            assert refused.returncode == 1
            [line] = refused.stderr.strip().splitlines()
            assert f"in use by process {server.process.pid} on " in line
            assert not any(p.name.startswith("backup-") for p in (tmp_path / "data").iterdir())
    finally:
        assert server.stop() == 0


def test_a_clean_stop_leaves_no_wal_and_check_passes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env=E2E_SETTINGS).start()
    client("events", server.url).create_event_bus(Name="orders")
    assert server.stop() == 0
    assert not (data / "eventyard.db-wal").exists()
    checked = _eventyard("store", "check", "--data-dir", str(data))
    assert checked.returncode == 0, checked.stderr
    assert _field(checked.stdout, "wal") == "absent: no WAL file"


def test_a_sqlite3_look_after_kill_9_checkpoints_the_wal_and_serve_still_starts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env=E2E_SETTINGS).start()
    sqs = client("sqs", server.url)
    queue = sqs.create_queue(QueueName="orders")["QueueUrl"]
    for n in range(40):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"n": n, "pad": "x" * 2000}))
    server.kill()
    assert scan(str(data / "eventyard.db-wal")).committed > 0
    # an operator looks: closing the connection checkpoints the WAL and deletes it
    with contextlib.closing(sqlite3.connect(data / "eventyard.db")) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 40
    assert not (data / "eventyard.db-wal").exists()

    restarted = ServerProcess(data, env=E2E_SETTINGS).start()
    try:
        kept = sorted(json.loads(body)["n"] for body in _queue_messages(restarted.url, "orders"))
        assert kept == list(range(40))
    finally:
        assert restarted.stop() == 0


def test_serve_refusing_a_damaged_database_leaves_every_file_as_it_was(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env=E2E_SETTINGS).start()
    sqs = client("sqs", server.url)
    queue = sqs.create_queue(QueueName="orders")["QueueUrl"]
    _fill(sqs, queue, 150)
    assert server.stop() == 0  # most messages in the database file...
    server = ServerProcess(data, env=E2E_SETTINGS).start()
    queue = client("sqs", server.url).get_queue_url(QueueName="orders")["QueueUrl"]
    for n in range(150, 160):
        client("sqs", server.url).send_message(QueueUrl=queue, MessageBody=json.dumps({"n": n}))
    server.kill()  # ...and the newest in the WAL
    database = data / "eventyard.db"
    pages = database.stat().st_size // 4096
    with database.open("r+b") as file:
        file.seek((pages // 2) * 4096)
        file.write(bytes(2 * 4096))
    names = ("eventyard.db", "eventyard.db-wal", "eventyard.db.walmark")
    found = {name: (data / name).read_bytes() for name in names}

    assert f"{database} is damaged and was not opened" in _serve_refused(data)

    assert {name: (data / name).read_bytes() for name in names} == found
    checked = _eventyard("store", "check", "--data-dir", str(data))
    assert _field(checked.stdout, "wal").startswith("valid: ")


# -- kill -9 never looks like damage ---------------------------------------------------------


def _producer(url: str, acked: list[str], stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        entries = [
            {"Source": "crash", "DetailType": "t", "Detail": json.dumps({"n": n, "p": "x" * 1500})}
            for _ in range(10)
        ]
        n += 1
        request = urllib.request.Request(
            url, data=json.dumps({"Entries": entries}).encode(), headers=_HEADERS, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                result = json.loads(answer.read())
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            return  # the server died: what was not answered was not acknowledged
        acked.extend(e["EventId"] for e in result["Entries"] if "EventId" in e)


def _crash_once(data: Path, iteration: int, setup: bool) -> int:
    """Start (which must succeed), load, kill -9; returns how many events were acked."""
    server = ServerProcess(data, env=E2E_SETTINGS).start()
    if setup:
        events = client("events", server.url)
        queue = client("sqs", server.url).create_queue(QueueName="sink")["QueueUrl"]
        assert queue
        events.put_rule(Name="all", EventPattern='{"source": ["crash"]}')
        events.put_targets(
            Rule="all", Targets=[{"Id": "q", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:sink"}]
        )
    acked: list[str] = []
    stop = threading.Event()
    producers = [
        threading.Thread(target=_producer, args=(server.url, acked, stop)) for _ in range(4)
    ]
    for thread in producers:
        thread.start()
    # a different moment each time: early, mid-batch, around the WAL's checkpoints
    target = 40 + (iteration * 137) % 900
    poll_until(lambda: len(acked) >= target, 60, what=f"{target} acknowledged events")
    server.kill()
    stop.set()
    for thread in producers:
        thread.join(15)
    return len(acked)


def test_kill_9_during_ingest_always_restarts_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    iterations = int(os.environ.get("EVENTYARD_KILL9_ITERATIONS", "3"))
    acked = 0
    for iteration in range(iterations):
        acked += _crash_once(data, iteration, setup=iteration == 0)
    # the last crash too: check finds it healthy, and every acknowledged event is there
    checked = _eventyard("store", "check", "--data-dir", str(data))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert int(_field(checked.stdout, "events")) >= acked
    final = ServerProcess(data, env=E2E_SETTINGS).start()
    assert final.stop() == 0
