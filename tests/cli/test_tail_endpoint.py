"""``GET /v1/buses/{bus}/tail``: the Server-Sent Events stream ``eventyard tail`` reads.

The app runs in-process under uvicorn on a loop this module owns, so the tests can look
at the router's taps (given back on disconnect) and overfill one (``event: dropped``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from eventyard.sdk.client import Client
from eventyard.server.api.app import create_app
from eventyard.server.config import Settings
from eventyard.server.router import Router


@dataclass
class Served:
    url: str
    app: Starlette
    loop: asyncio.AbstractEventLoop

    @property
    def router(self) -> Router:
        router = self.app.state.runtime.router
        assert isinstance(router, Router)
        return router

    def taps(self, bus: str) -> int:
        return len(self.router.taps.of(bus))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    app = create_app(Settings(port=port, data_dir=str(tmp_path_factory.mktemp("tail-data"))))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", ws="none",
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=[sock]),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", app, loop)
    finally:
        server.should_exit = True
        thread.join(15)
        loop.close()
        sock.close()


@pytest.fixture
def client(served: Served) -> Iterator[Client]:
    with Client(served.url, timeout=10) as sdk:
        yield sdk


def _frames(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(kind, text) per SSE block: ("comment", text) or (event name, data)."""
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
        elif not line and data:
            yield event, "\n".join(data)
            event, data = "message", []


def _events(frames: Iterator[tuple[str, str]], count: int) -> list[dict[str, Any]]:
    events = []
    for kind, text in frames:
        if kind == "event":
            events.append(json.loads(text))
            if len(events) == count:
                return events
    raise AssertionError("the stream ended early")


def _tail(served: Served, bus: str = "default", **params: str) -> Any:
    http = httpx.Client(base_url=served.url, timeout=10)
    return http, http.stream("GET", f"/v1/buses/{bus}/tail", params=params)


def test_tail_streams_the_envelopes_of_events_put_after_it_started(
    served: Served, client: Client
) -> None:
    http, stream = _tail(served)
    with http, stream as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        frames = _frames(response)
        assert next(frames) == ("comment", "tailing bus default")
        ids = client.put_events(
            [{"Source": "shop", "DetailType": "OrderPlaced", "Detail": {"n": n}} for n in (1, 2)]
        )
        events = _events(frames, 2)
    assert [e["id"] for e in events] == ids
    assert [e["detail"] for e in events] == [{"n": 1}, {"n": 2}]
    assert events[0]["source"] == "shop" and events[0]["detail-type"] == "OrderPlaced"


def test_tail_with_a_pattern_sends_only_matching_events_of_its_bus(
    served: Served, client: Client
) -> None:
    client.create_bus("tail-orders")
    http, stream = _tail(
        served, "tail-orders", pattern='{"detail": {"total": [{"numeric": [">", 100]}]}}'
    )
    with http, stream as response:
        frames = _frames(response)
        next(frames)
        client.put_events(
            {"Source": "s", "DetailType": "T", "Detail": {"total": 500}}
        )  # default bus
        client.put_events(
            [{"Source": "s", "DetailType": "T", "Detail": {"total": t}} for t in (5, 150, 50, 101)],
            bus="tail-orders",
        )
        events = _events(frames, 2)
    assert [e["detail"]["total"] for e in events] == [150, 101]


def test_tail_of_a_bus_that_does_not_exist_is_404(served: Served) -> None:
    answer = httpx.get(f"{served.url}/v1/buses/no-such-bus/tail")
    assert answer.status_code == 404
    assert answer.json() == {
        "__type": "ResourceNotFoundException",
        "message": "Event bus no-such-bus does not exist.",
    }


def test_tail_with_an_invalid_pattern_is_400_with_the_pattern_error(served: Served) -> None:
    answer = httpx.get(f"{served.url}/v1/buses/default/tail", params={"pattern": '{"a": 1}'})
    assert answer.status_code == 400
    body = answer.json()
    assert body["__type"] == "InvalidEventPatternException"
    assert body["message"].startswith("Event pattern is not valid. Reason: ")


def test_tail_with_a_keepalive_out_of_range_is_400(served: Served) -> None:
    answer = httpx.get(f"{served.url}/v1/buses/default/tail", params={"keepalive": "0"})
    assert answer.status_code == 400
    assert answer.json()["__type"] == "ValidationException"


def test_idle_tail_sends_keepalive_comments(served: Served) -> None:
    http, stream = _tail(served, keepalive="1")
    started = time.monotonic()
    with http, stream as response:
        frames = _frames(response)
        assert next(frames) == ("comment", "tailing bus default")
        assert next(frames) == ("comment", "keepalive")
    assert 0.9 <= time.monotonic() - started < 5


def test_tail_gives_its_tap_back_when_the_client_disconnects(
    served: Served, client: Client
) -> None:
    client.create_bus("tail-disconnect")
    http, stream = _tail(served, "tail-disconnect")
    with http, stream as response:
        frames = _frames(response)  # kept: dropping the generator closes the connection
        next(frames)
        assert served.taps("tail-disconnect") == 1
    deadline = time.monotonic() + 5
    while served.taps("tail-disconnect") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert served.taps("tail-disconnect") == 0


def test_tail_reports_events_dropped_for_a_slow_reader(served: Served, client: Client) -> None:
    client.create_bus("tail-slow")
    http, stream = _tail(served, "tail-slow")
    with http, stream as response:
        frames = _frames(response)
        next(frames)
        body = json.dumps({"id": "x", "source": "s", "detail-type": "T", "detail": {}}).encode()

        async def overfill() -> None:
            # one callback: the stream cannot take anything out meanwhile
            for tap in served.router.taps.of("tail-slow"):
                for _ in range(tap.queue.maxsize + 7):
                    tap.offer(body)

        asyncio.run_coroutine_threadsafe(overfill(), served.loop).result(5)
        for kind, text in frames:
            if kind == "dropped":
                assert json.loads(text) == {"count": 7}
                break
        else:
            raise AssertionError("no dropped event")


def test_tail_ends_when_the_server_stops_being_ready(served: Served) -> None:
    runtime = served.app.state.runtime
    http, stream = _tail(served)
    try:
        with http, stream as response:
            frames = _frames(response)
            next(frames)
            runtime.ready = False
            started = time.monotonic()
            rest = list(frames)  # ends: the server closed the stream
            assert time.monotonic() - started < 3
            assert not [frame for frame in rest if frame[0] == "event"]
    finally:
        runtime.ready = True


def test_tail_of_a_bus_given_by_arn(served: Served, client: Client) -> None:
    arn = client.describe_bus("default")["Arn"]
    http, stream = _tail(served, arn.replace("/", "%2F"))
    with http, stream as response:
        assert response.status_code == 200
        frames = _frames(response)
        assert next(frames) == ("comment", "tailing bus default")
