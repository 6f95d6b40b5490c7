"""The server's lifecycle: clean SIGTERM, live streams end, state survives a restart."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx

from tests.e2e.conftest import answered, client
from tests.helpers import DEFAULT_TIMEOUT


def test_sigterm_with_an_open_tail_stream_exits_cleanly_and_promptly(server: Any) -> None:
    connected = threading.Event()
    ended = threading.Event()

    def tail() -> None:
        try:
            with httpx.stream("GET", server.url + "/v1/buses/default/tail", timeout=30) as r:
                connected.set()  # the server has answered: the stream is open
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError:
            pass
        ended.set()

    threading.Thread(target=tail, daemon=True).start()
    assert connected.wait(DEFAULT_TIMEOUT), "the tail stream did not open"
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 5, "an open tail must not hold the shutdown"
    assert ended.wait(5)


def test_catalog_and_queued_messages_survive_a_graceful_restart(server_factory: Any) -> None:
    first = server_factory()
    events, sqs = client("events", first.url), client("sqs", first.url)
    events.create_event_bus(Name="kept")
    url = sqs.create_queue(QueueName="kept-q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    assert first.stop() == 0

    second = server_factory(first.data_dir)
    events, sqs = client("events", second.url), client("sqs", second.url)
    assert events.describe_event_bus(Name="kept")["Name"] == "kept"
    url = sqs.get_queue_url(QueueName="kept-q")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
    assert [m["Body"] for m in got] == ["hello"]


def _open_long_poll(url: str, queue_url: str) -> socket.socket:
    """Start a raw ReceiveMessage long poll (20 s) and return its socket, unanswered."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"QueueUrl": queue_url, "WaitTimeSeconds": 20}).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n"
        b"X-Amz-Target: AmazonSQS.ReceiveMessage\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def test_a_long_poll_whose_client_left_takes_no_message(server: Any) -> None:
    sqs = client("sqs", server.url)
    url = sqs.create_queue(QueueName="abandoned")["QueueUrl"]
    poll = _open_long_poll(server.url, url)
    answered(server)  # the poll is in the server
    poll.close()
    answered(server)  # and the server has seen its client leave
    sqs.send_message(QueueUrl=url, MessageBody="for whoever asks next")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", [])
    assert [m["Body"] for m in got] == ["for whoever asks next"]


def test_sigterm_answers_open_long_polls_at_once(server: Any) -> None:
    sqs = client("sqs", server.url)
    url = sqs.create_queue(QueueName="polled")["QueueUrl"]
    poll = _open_long_poll(server.url, url)
    answered(server)  # the poll is in the server
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 5, "a long poll must not hold the shutdown"
    poll.settimeout(5)
    assert poll.recv(100).startswith(b"HTTP/1.1 200")
    poll.close()
