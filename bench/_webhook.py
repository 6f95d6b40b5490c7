"""A local aiohttp webhook for the benches: a target that answers 200 to every event.

Not a bench itself (``make bench`` runs ``bench/[!_]*.py``). A bench subclasses
:class:`Webhook` and says in :meth:`Webhook.received` what it records of each event;
:class:`Probe` is the healthy target whose latency shows that another target's trouble
does not stand in front of it; :func:`dead_url` is a target that refuses every
connection, and :func:`metric` reads one sample of a server's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.request
from typing import Any

import aiohttp
import orjson
from aiohttp import web

#: the headers of a PutEvents call on the AWS JSON protocol
HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}


class Webhook:
    """Serves ``POST /<path>`` on a free loopback port once :meth:`start` returned."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.runner: web.AppRunner | None = None
        self.url = ""

    def received(self, event: dict[str, Any]) -> None:
        """Called with each delivered event (the whole EventBridge envelope)."""
        raise NotImplementedError

    async def handle(self, request: web.Request) -> web.Response:
        self.received(orjson.loads(await request.read()))
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(f"/{self.path}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/{self.path}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class Probe(Webhook):
    """The healthy target: records when each probe event arrives."""

    def __init__(self) -> None:
        super().__init__("probe")
        self.arrived: dict[str, float] = {}

    def received(self, event: dict[str, Any]) -> None:
        self.arrived[event["detail"]["probe"]] = time.perf_counter()

    async def latency_ms(self, session: aiohttp.ClientSession, url: str, name: str) -> float:
        entry = {
            "Source": "bench.shop",
            "DetailType": "probe",
            "Detail": orjson.dumps({"probe": name}).decode(),
            "EventBusName": "bench",
        }
        sent = time.perf_counter()
        async with session.post(url, data=orjson.dumps({"Entries": [entry]}), headers=HEADERS) as r:
            assert r.status == 200, await r.text()
        deadline = sent + 60
        while name not in self.arrived and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        if name not in self.arrived:
            return float("inf")
        return (self.arrived[name] - sent) * 1000


def dead_url() -> str:
    """A webhook URL on a loopback port nobody listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"  # closed again


def metric(url: str, name: str, missing: float = float("nan")) -> float:
    """One sample of a server's ``/metrics`` (``name`` with its labels, if any), or
    ``missing`` when it has none yet."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else missing
