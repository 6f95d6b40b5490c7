"""Connection deadlines and the connection cap: slow clients cannot hold the server."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from eventyard.server.connections import guarded_protocol, raise_open_file_limit
from tests.helpers import closed_by_server


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = b"ok:%d" % len(body)
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A server whose deadlines are 0.5 s, or the seconds given by indirect parametrisation."""
    timeout = getattr(request, "param", 0.5)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    protocol = guarded_protocol(header_timeout=timeout, body_timeout=timeout, max_connections=300)
    config = uvicorn.Config(_app, http=protocol, log_level="critical", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        running.should_exit = True
        thread.join(10)
        sock.close()


def _get(address: tuple[str, int]) -> bytes:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read()
    finally:
        connection.close()


def test_slow_header_clients_are_cut_off_and_others_are_served_meanwhile(
    server: tuple[str, int],
) -> None:
    slow = [socket.create_connection(server) for _ in range(200)]
    try:
        for conn in slow:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        assert _get(server) == b"ok:0"
        assert all(closed_by_server(conn) for conn in slow)
    finally:
        for conn in slow:
            conn.close()


def test_a_body_that_never_ends_is_cut_off(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        assert closed_by_server(conn)


@pytest.mark.parametrize("server", [30.0], indirect=True)
def test_a_keep_alive_connection_keeps_working_for_prompt_requests(
    server: tuple[str, int],
) -> None:
    connection = http.client.HTTPConnection(*server, timeout=5)
    try:
        for _ in range(3):
            connection.request("POST", "/", body=b"hi")
            assert connection.getresponse().read() == b"ok:2"
    finally:
        connection.close()


def test_connections_past_the_cap_are_closed_at_once(server: tuple[str, int]) -> None:
    held = [socket.create_connection(server) for _ in range(300)]
    try:
        extra = socket.create_connection(server)
        with extra:
            assert closed_by_server(extra)
    finally:
        for conn in held:
            conn.close()


def test_the_open_file_limit_is_raised_up_to_the_hard_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_file_limit(soft) == soft
    if hard != resource.RLIM_INFINITY and hard > soft:
        assert raise_open_file_limit(hard) == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
