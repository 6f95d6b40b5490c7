"""A local aiohttp webhook for the benches: a target that answers 200 to every event.

Not a bench itself (``make bench`` runs ``bench/[!_]*.py``). A bench subclasses
:class:`Webhook` and says in :meth:`Webhook.received` what it records of each event.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


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
