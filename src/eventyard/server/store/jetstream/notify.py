"""Cross-process wake-ups of a JetStream store: what its listeners hear.

* **Deliveries and queues**: after an ingest, a retry or a queue put, the writer publishes
  the target keys (queue names) on the core-NATS subject ``<prefix>.wake.deliveries``
  (``.queues``), newline-separated. Every process of the store subscribes to both, its
  own included, and passes them to its listeners. Core NATS is at most once: a lost
  wake-up costs only latency, since claimers also re-check (``Claim.next_due``) and
  long polls time out.
* **Catalog**: an ordered consumer on the catalog bucket delivers every change made
  after open, by any process, in revision order (a KV watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

from nats.aio.msg import Msg

from eventyard.server.store.jetstream.catalog import Catalog
from eventyard.server.store.jetstream.codec import Names
from eventyard.server.store.jetstream.connection import Link, nats_errors
from eventyard.server.store.protocol import CatalogChange, StoreListener

__all__ = ["Notifier"]

log = logging.getLogger("eventyard.store.jetstream")

_MAX_WAKE = 64_000
"""Bytes of names per wake-up message (well under NATS's default max payload)."""


class Notifier:
    """The store's listeners, and the subscriptions that feed them."""

    def __init__(self, link: Link, names: Names, catalog: Catalog) -> None:
        self._link = link
        self._names = names
        self._catalog = catalog
        self._listeners: list[StoreListener] = []
        self._subs: list[Any] = []
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, listener: StoreListener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        nc = self._link.nc
        with nats_errors("wake-up subscriptions", self._link):
            self._subs.append(
                await nc.subscribe(self._names.wake_deliveries, cb=self._on_deliveries)
            )
            self._subs.append(await nc.subscribe(self._names.wake_queues, cb=self._on_queues))
            await nc.flush()
        self._subs.append(await self._catalog.watch(self._on_catalog))

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    # -- outgoing ----------------------------------------------------------------------
    def deliveries_ready(self, targets: Collection[str]) -> None:
        self._publish(self._names.wake_deliveries, targets)

    def queues_ready(self, queues: Collection[str]) -> None:
        self._publish(self._names.wake_queues, queues)

    def _publish(self, subject: str, names: Collection[str]) -> None:
        if not names:
            return
        chunk: list[str] = []
        size = 0
        for name in sorted(names):
            if chunk and size + len(name) > _MAX_WAKE:
                self._send(subject, chunk)
                chunk, size = [], 0
            chunk.append(name)
            size += len(name.encode()) + 1
        self._send(subject, chunk)

    def _send(self, subject: str, names: list[str]) -> None:
        async def send() -> None:
            try:
                await self._link.nc.publish(subject, "\n".join(names).encode())
            except Exception as exc:  # a wake-up is a hint: log it and go on
                log.debug("wake-up on %s not sent: %s", subject, exc)

        task = asyncio.get_running_loop().create_task(send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    # -- incoming ----------------------------------------------------------------------
    async def _on_deliveries(self, msg: Msg) -> None:
        names = set(msg.data.decode().split("\n"))
        for listener in list(self._listeners):
            _call(listener.deliveries_ready, names)

    async def _on_queues(self, msg: Msg) -> None:
        names = set(msg.data.decode().split("\n"))
        for listener in list(self._listeners):
            _call(listener.queues_ready, names)

    def _on_catalog(self, change: CatalogChange) -> None:
        for listener in list(self._listeners):
            _call(listener.catalog_changed, change)


def _call(method: Any, argument: Any) -> None:
    try:
        method(argument)
    except Exception:
        log.exception("store listener failed")
