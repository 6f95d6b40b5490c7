"""Several ``eventyard serve`` processes on one JetStream store (``--store nats://``).

Each process has its own data directory (its admin socket, its lock) and all of them
the same master key: a key made through one process's admin socket signs requests to
another, a bus made through one is listed by the other. Two processes on one data
directory, or a process with no shared master key, are refused with one clear line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventyard.testing import ServerProcess
from tests.conftest import TEST_MASTER_KEY, jetstream_available, require, store_prefix
from tests.e2e.conftest import E2E_SETTINGS, aws, new_key
from tests.helpers import poll_until
from tests.natsserver import NatsCluster


@pytest.fixture
def store_env(nats_cluster: NatsCluster) -> dict[str, str]:
    require(jetstream_available(), "the JetStream store (eventyard[jetstream]) is not installed")
    return {
        **E2E_SETTINGS,
        "EVENTYARD_STORE": nats_cluster.url,
        "EVENTYARD_STORE_PREFIX": store_prefix(),
        "EVENTYARD_MASTER_KEY": TEST_MASTER_KEY,
        "EVENTYARD_SHUTDOWN_TIMEOUT": "1",
    }


@pytest.fixture
def two(tmp_path: Path, store_env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    servers = [ServerProcess(tmp_path / name, env=store_env) for name in ("a", "b")]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _serve(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``eventyard serve`` expected to refuse to start: its exit and its words."""
    return subprocess.run(
        [sys.executable, "-m", "eventyard", "serve", "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_two_processes_share_the_catalog_and_the_keys(
    two: list[ServerProcess], tmp_path: Path, store_env: dict[str, str]
) -> None:
    a, b = two
    # made through a's admin socket, sealed with the shared master key
    key = new_key(a.data_dir, **store_env)
    events_a = aws("events", a.url, key["AccessKeyId"], key["SecretAccessKey"])
    events_b = aws("events", b.url, key["AccessKeyId"], key["SecretAccessKey"])
    events_a.create_event_bus(Name="shared")

    def listed() -> bool:
        buses = events_b.list_event_buses()["EventBuses"]
        return "shared" in {bus["Name"] for bus in buses}

    poll_until(listed, what="the bus made through a, listed by b")


def test_a_second_process_on_one_data_dir_is_refused(
    two: list[ServerProcess], store_env: dict[str, str]
) -> None:
    result = _serve(two[0].data_dir, {**os.environ, **store_env})
    assert result.returncode != 0
    assert result.stdout == ""
    assert "is in use" in result.stderr
    assert "needs its own --data-dir" in result.stderr


def test_a_process_without_the_shared_master_key_is_refused(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    env = {k: v for k, v in {**os.environ, **store_env}.items() if k != "EVENTYARD_MASTER_KEY"}
    result = _serve(tmp_path / "c", env)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "needs the master key they all use" in result.stderr
    assert "EVENTYARD_MASTER_KEY" in result.stderr


def test_a_tail_on_one_process_shows_the_events_put_through_another(
    two: list[ServerProcess],
) -> None:
    """``eventyard tail`` on a cluster: the tailed process shows what the others accept
    (through the store), and its own events once."""
    import json
    import threading

    import httpx

    from tests.e2e.conftest import client

    a, b = two
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with (
            httpx.Client(base_url=b.url, timeout=30) as http,
            http.stream("GET", "/v1/buses/default/tail") as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line.removeprefix("data: "))["id"])
                if stop.is_set():
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    through_a, through_b = client("events", a.url), client("events", b.url)
    entry = {"Source": "tail", "DetailType": "t", "Detail": "{}"}
    put: list[str] = []

    def one_from_a_arrived() -> bool:
        put.append(through_a.put_events(Entries=[entry])["Entries"][0]["EventId"])
        return any(event_id in seen for event_id in put)

    poll_until(one_from_a_arrived, what="an event put through the other process")
    mine = through_b.put_events(Entries=[entry])["Entries"][0]["EventId"]
    theirs = through_a.put_events(Entries=[entry])["Entries"][0]["EventId"]
    poll_until(lambda: mine in seen and theirs in seen, what="both events in the tail")
    stop.set()
    through_a.put_events(Entries=[entry])  # lets the reader see the stop
    reader.join(10)
    assert len(seen) == len(set(seen))  # each event once: its own not twice
    assert set(seen) <= {*put, mine, theirs} | set(seen[-1:])
