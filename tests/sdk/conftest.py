"""SDK fixtures: the session's shared real server, both twins behind one awaitable face, a stub.

``api`` is parametrized over the twins: for :class:`Client` every method runs in a
worker thread and is awaited, so one async test body checks both. ``stub`` is a tiny
local HTTP server whose answers a test scripts, for the cases a real server cannot be
made to produce (throttled entries, garbage answers, hangs).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from eventyard.sdk.client import AsyncClient, Client
from eventyard.testing import ServerProcess
from tests.conftest import BACKENDS

_names = itertools.count()


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, shared_server_on: Callable[[str], ServerProcess]
) -> ServerProcess:
    """The shared server of each backend; tests name their resources with ``name``."""
    return shared_server_on(request.param)


class Twin:
    """Either twin with awaitable methods: the sync client's calls run in a thread."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.client = client
        self.is_async = isinstance(client, AsyncClient)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if self.is_async:
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

        return call


async def close(client: Client | AsyncClient) -> None:
    if isinstance(client, AsyncClient):
        await client.aclose()
    else:
        client.close()


@pytest.fixture(params=["sync", "async"])
async def make_twin(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Twin]]:
    """Build a twin (``Client`` or ``AsyncClient`` per the parameter); closed at the end."""
    made: list[Client | AsyncClient] = []

    def make(url: str | None = None, **options: Any) -> Twin:
        cls = Client if request.param == "sync" else AsyncClient
        client = cls(url, **options)
        made.append(client)
        return Twin(client)

    yield make
    for client in made:
        await close(client)


@pytest.fixture
def api(make_twin: Callable[..., Twin], server: ServerProcess) -> Twin:
    """A twin connected to the module's real server."""
    return make_twin(server.url)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Unique resource names: the module's server is shared by its tests."""
    serial = next(_names)

    def make(kind: str) -> str:
        return f"{kind}-{serial}"

    return make


@dataclass
class StubRequest:
    target: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Stub:
    """A local HTTP server answering with ``respond(request, number) -> answer``.

    An answer is ``(status, body)`` or ``(status, body, headers)``; ``body`` is JSON-encoded
    unless it is bytes. The special answers ``"close"`` (drop the connection without a
    word) and ``("sleep", seconds, answer)`` exist for transport failures.
    """

    url: str = ""
    requests: list[StubRequest] = field(default_factory=list)
    respond: Callable[[StubRequest, int], Any] = lambda request, number: (200, {})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def targets(self) -> list[str]:
        with self.lock:
            return [r.target for r in self.requests]


@pytest.fixture
def stub() -> Iterator[Stub]:
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = StubRequest(
                self.headers.get("X-Amz-Target", ""),
                json.loads(body) if body else {},
                dict(self.headers.items()),
            )
            with stub.lock:
                stub.requests.append(request)
                number = len(stub.requests)
            answer = stub.respond(request, number)
            if isinstance(answer, tuple) and answer[0] == "sleep":
                time.sleep(answer[1])
                answer = answer[2]
            if answer == "close":
                self.close_connection = True
                return
            status, payload, *rest = answer
            headers = rest[0] if rest else {}
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield stub
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
