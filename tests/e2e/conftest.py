"""End-to-end fixtures: private ``eventyard serve`` processes, boto3 clients, HTTP receivers.

The servers here are private (``server`` per test, ``server_factory`` for restarts):
these tests stop, kill and restart them, or wait for them to be idle.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from eventyard.testing import ServerProcess
from tests.helpers import DEFAULT_TIMEOUT, poll_until

ACCOUNT = "111111111111"
REGION = "us-east-1"
#: The end-to-end servers' settings: the recorded account, and short retry delays.
E2E_SETTINGS = {
    "EVENTYARD_ACCOUNT_ID": ACCOUNT,
    "EVENTYARD_REGION": REGION,
    "EVENTYARD_RETRY_BASE_DELAY": "0.05",
    "EVENTYARD_RETRY_MAX_DELAY": "0.2",
}


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """A local HTTP endpoint that records what it gets and answers with ``status``."""

    status: int = 200
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [json.loads(r.body) for r in self.requests]

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Received]:
        """Wait until at least ``count`` requests have arrived; return all of them."""
        poll_until(lambda: len(self.received()) >= count, timeout, what=f"{count} requests")
        return self.received()


_BACKLOG = re.compile(rb"^eventyard_delivery_backlog (\S+)$", re.MULTILINE)


def deliveries_idle(server: ServerProcess, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until ``server`` has no pending delivery: every match has been attempted and settled.

    ``eventyard_delivery_backlog`` counts a record from its commit (before PutEvents
    answers) until the commit of its outcome, so after this nothing more reaches any
    target of what was put before.
    """

    def idle() -> bool:
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as answer:
            match = _BACKLOG.search(answer.read())
        assert match is not None, "no eventyard_delivery_backlog metric"
        return float(match[1]) == 0

    poll_until(idle, timeout, what="no delivery record left")


def answered(server: ServerProcess) -> None:
    """Make one request on a new connection and wait for its answer.

    The server reads connections in the order their data arrives, so once this is
    answered, a request sent before it on another connection has been taken in.
    """
    with urllib.request.urlopen(server.url + "/readyz", timeout=5) as answer:
        assert answer.status == 200


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[int], Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def make(status: int = 200) -> Receiver:
        receiver = Receiver(status=status)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append(Received(body, dict(self.headers.items())))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        return receiver

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def make(data_dir: Path | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", env={**E2E_SETTINGS, **env})
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


# -- accounts and keys (the real admin commands, in a subprocess) ----------------------------


def eventyard(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``eventyard ARGS --data-dir DATA_DIR`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "eventyard", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def new_key(data_dir: Path, account: str = ACCOUNT, **env: str) -> dict[str, str]:
    """An access key of ``account`` (created with the account when it does not exist)."""
    listed = eventyard(data_dir, "accounts", "list", "--output", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    if account not in {a["AccountId"] for a in json.loads(listed.stdout)}:
        made = eventyard(data_dir, "accounts", "create", "--id", account, env=env)
        assert made.returncode == 0, made.stderr
    created = eventyard(data_dir, "keys", "create", "--account", account, "-o", "json", env=env)
    assert created.returncode == 0, created.stderr
    key: dict[str, str] = json.loads(created.stdout)
    return key


def aws(service: str, url: str, key_id: str, secret: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def refused(call: Any) -> tuple[str, int]:
    """The error code and HTTP status boto3 reports for a refused call."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]
