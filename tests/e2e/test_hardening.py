"""A server facing hostile or failing conditions answers clearly and recovers.

Slow clients are cut off without taking ``/livez`` down; a full disk makes PutEvents
answer a retryable error and ``/readyz`` 503 until writes succeed again; a second
server on the same data directory is refused with the holder named.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.testing import ServerProcess
from tests.e2e.conftest import client
from tests.helpers import closed_by_server, poll_until


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_thousand_slow_header_sockets_neither_take_livez_down_nor_stay(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, env={"EVENTYARD_HEADER_TIMEOUT": "2"}).start()
    try:
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        slow = []
        try:
            for _ in range(1000):
                conn = socket.create_connection((host, port))
                conn.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                slow.append(conn)
            assert _get(server.url + "/livez") == (200, {"status": "ok"})
            assert all(closed_by_server(conn) for conn in slow)
        finally:
            for conn in slow:
                conn.close()
        assert _get(server.url + "/readyz")[0] == 200
    finally:
        server.stop()


def test_a_second_server_on_the_same_data_dir_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    first = ServerProcess(tmp_path).start()
    try:
        assert first.process is not None
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "eventyard",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert second.stdout == ""
        [line] = second.stderr.strip().splitlines()
        assert line.startswith("error: ")
        assert f"in use by process {first.process.pid} on " in line
    finally:
        first.stop()


def test_a_full_disk_refuses_puts_retryably_and_readyz_says_why_until_room_returns(
    small_disk: Path,
) -> None:
    server = ServerProcess(small_disk / "data").start()
    try:
        events = client("events", server.url)
        entry = {"Source": "s", "DetailType": "d", "Detail": json.dumps({"x": "y" * 5000})}
        refused = None
        for _ in range(400):
            try:
                events.put_events(Entries=[entry] * 10)
            except events.exceptions.ClientError as exc:
                refused = exc.response
                break
        assert refused is not None, "the disk never filled up"
        assert refused["Error"]["Code"] == "InternalException"
        assert "disk refuses writes" in refused["Error"]["Message"]
        assert "Nothing in it was acknowledged" in refused["Error"]["Message"]
        assert refused["ResponseMetadata"]["HTTPStatusCode"] == 500  # boto3 retries it
        status, body = _get(server.url + "/readyz")
        assert status == 503
        assert body["status"] == "unavailable"
        assert "full" in body["reason"]
        assert _get(server.url + "/livez")[0] == 200
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        poll_until(lambda: _get(server.url + "/readyz")[0] == 200)
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    finally:
        server.stop()


def test_a_target_whose_input_would_be_huge_fails_alone_and_small(server: Any) -> None:
    events, sqs = client("events", server.url), client("sqs", server.url)
    arns = {}
    for name in ("huge-input", "plain-input"):
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        arns[name] = (url, attributes["Attributes"]["QueueArn"])
    events.create_event_bus(Name="amplify")
    events.put_rule(Name="all", EventBusName="amplify", EventPattern='{"source": ["s"]}')
    transformer = {"InputPathsMap": {"a": "$.detail.a"}, "InputTemplate": "<a>" * 2000}
    events.put_targets(
        Rule="all",
        EventBusName="amplify",
        Targets=[
            {"Id": "huge", "Arn": arns["huge-input"][1], "InputTransformer": transformer},
            {"Id": "plain", "Arn": arns["plain-input"][1]},
        ],
    )
    detail = json.dumps({"a": "x" * 40_000})  # 2,000 copies would be an 80 MB message
    entry = {"EventBusName": "amplify", "Source": "s", "DetailType": "d", "Detail": detail}
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    received = sqs.receive_message(QueueUrl=arns["plain-input"][0], WaitTimeSeconds=10)
    assert json.loads(received["Messages"][0]["Body"])["detail"]["a"] == "x" * 40_000
    # the plain target's message came from the same ingest: the huge one had no delivery
    counts = sqs.get_queue_attributes(
        QueueUrl=arns["huge-input"][0],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:4010/",
        "http://[::ffff:127.0.0.1]:22/",
        "http://10.0.0.1/hook",
        "http://localhost:6379/",
        f"http://{socket.gethostname()}:5432/",  # a name this machine resolves to loopback
    ],
)
def test_webhooks_on_private_addresses_are_refused_by_default(
    strict_server: ServerProcess, url: str
) -> None:
    events = client("events", strict_server.url)
    events.put_rule(Name="hooks", EventPattern='{"source": ["s"]}')
    try:
        events.put_targets(Rule="hooks", Targets=[{"Id": "t", "Arn": url}])
    except events.exceptions.ClientError as exc:
        error = exc.response["Error"]
    else:
        raise AssertionError(f"{url} was accepted")
    assert error["Code"] == "ValidationException"
    assert f"Target t: the URL {url} is not allowed" in error["Message"]
    assert "outbound_allow" in error["Message"]


def test_non_http_schemes_are_no_webhooks(strict_server: ServerProcess) -> None:
    events = client("events", strict_server.url)
    events.put_rule(Name="schemes", EventPattern='{"source": ["s"]}')
    for url in ("file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO"):
        with pytest.raises(events.exceptions.ClientError) as refused:
            events.put_targets(Rule="schemes", Targets=[{"Id": "t", "Arn": url}])
        assert "only http and https URLs are allowed" in str(refused.value)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the default outbound policy (public addresses only)."""
    data = tmp_path_factory.mktemp("strict")
    server = ServerProcess(data, env={"EVENTYARD_OUTBOUND_ALLOW": ""}).start()
    try:
        yield server
    finally:
        server.stop()
