"""The settle batcher: the engine's outcomes (done, retry, dead-letter) in few writes.

Every lane hands its outcomes to one :class:`Settler`, whose task writes each batch in a
single ``store.settle(owner, ...)`` call: while one write is in flight the next batch
builds up, so the cost per record stays small under load. The store settles a record
only for the owner of its lease; a record it refuses (the lease passed to another
owner) is handed back to the engine as lost.

May import: the store protocol and the delivery metrics; never the engine, which
imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from eventyard.server.delivery.metrics import (
    DEAD_LETTERED,
    DELIVERED,
    DROPPED,
    SETTLE_BATCH,
    SETTLE_FAILURES,
)
from eventyard.server.store import NewMessage, Store

__all__ = ["Settler"]

_log = structlog.get_logger("eventyard.server.delivery")


class Settler:
    """Collects settle operations from every lane and writes them in batches.

    Operations for one record replace each other in the batch being built (a ``done``
    cancels an unwritten ``retry``), so one ``store.settle`` never gets conflicting
    orders for a record. If a batch fails, its operations are written one by one so a
    single bad one (say, a message for a queue deleted meanwhile) cannot block the rest.
    A record whose lease the store says is lost is handed to ``lost`` instead: nothing
    was written for it, and its new owner delivers it.
    """

    def __init__(
        self,
        store: Store,
        owner: str,
        *,
        forget: Callable[[int], None],
        retried: Callable[[int, bool], None],
        lost: Callable[[int], None],
        linger: float = 0.0,
    ) -> None:
        self._store = store
        self._owner = owner
        self._forget = forget
        self._retried = retried
        self._lost = lost
        self._linger = linger
        self._urgent = asyncio.Event()
        self._done: dict[int, asyncio.Future[None] | None] = {}
        self._messages: dict[int, NewMessage] = {}
        self._retry: dict[int, tuple[float, int]] = {}
        self._dead: dict[int, NewMessage | None] = {}
        # the ids of the batch being written
        self._writing: set[int] = set()
        self._wake = asyncio.Event()
        self._closing = False

    def holds(self, delivery_id: int) -> bool:
        """Whether an operation for the record waits or is being written."""
        return (
            delivery_id in self._done
            or delivery_id in self._retry
            or delivery_id in self._dead
            or delivery_id in self._writing
        )

    # -- operations, called from the lanes -----------------------------------------
    def done(self, delivery_id: int) -> None:
        self._retry.pop(delivery_id, None)
        self._done[delivery_id] = None
        self._wake.set()

    async def put_and_settle(self, delivery_id: int, message: NewMessage) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._retry.pop(delivery_id, None)
        self._done[delivery_id] = waiter
        self._messages[delivery_id] = message
        self._urgent.set()
        self._wake.set()
        await waiter

    def retry(self, delivery_id: int, due: float, attempts: int) -> None:
        """Write a retry, or give a record back unattempted (its own due and attempts)."""
        self._retry[delivery_id] = (due, attempts)
        self._wake.set()

    def dead(self, delivery_id: int, message: NewMessage | None) -> None:
        self._retry.pop(delivery_id, None)
        self._dead[delivery_id] = message
        self._wake.set()

    # -- the settle task -------------------------------------------------------------
    def close(self) -> None:
        """Ask :meth:`run` to write what it holds and return."""
        self._closing = True
        self._urgent.set()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            if self._linger > 0 and not self._urgent.is_set():
                # Nobody waits on these outcomes (a queue target's delivery does, and sets
                # _urgent): let more of them join, so settle commits rarely stand between
                # a producer's PutEvents and its own commit.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._linger)
            self._urgent.clear()
            self._wake.clear()
            if self._done or self._retry or self._dead:
                await self._flush()
            if self._closing and not (self._done or self._retry or self._dead):
                return

    async def _flush(self) -> None:
        done, self._done = self._done, {}
        messages, self._messages = self._messages, {}
        retry, self._retry = self._retry, {}
        dead, self._dead = self._dead, {}
        self._writing = {*done, *retry, *dead}
        try:
            await self._write(done, messages, retry, dead)
        finally:
            self._writing = set()

    async def _write(
        self,
        done: dict[int, asyncio.Future[None] | None],
        messages: dict[int, NewMessage],
        retry: dict[int, tuple[float, int]],
        dead: dict[int, NewMessage | None],
    ) -> None:
        SETTLE_BATCH.observe(len(done) + len(retry) + len(dead))
        try:
            lost = set(
                await self._store.settle(
                    self._owner,
                    done=list(done),
                    retry=[(i, due, attempts) for i, (due, attempts) in retry.items()],
                    dead=list(dead.items()),
                    messages=list(messages.items()),
                )
            )
        except Exception as exc:
            SETTLE_FAILURES.inc()
            _log.error(
                "settle batch failed; settling its records one by one",
                records=len(done) + len(retry) + len(dead),
                error=f"{type(exc).__name__}: {exc}",
            )
            await self._one_by_one(done, messages, retry, dead)
            return
        for delivery_id, waiter in done.items():
            if delivery_id in lost:
                self._lost(delivery_id)
            else:
                DELIVERED.inc()
                self._forget(delivery_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        for delivery_id, message in dead.items():
            if delivery_id in lost:
                self._lost(delivery_id)
                continue
            (DROPPED if message is None else DEAD_LETTERED).inc()
            self._forget(delivery_id)
        for delivery_id in retry:
            if delivery_id in lost:
                self._lost(delivery_id)
            else:
                self._retried(delivery_id, True)

    async def _one_by_one(
        self,
        done: dict[int, asyncio.Future[None] | None],
        messages: dict[int, NewMessage],
        retry: dict[int, tuple[float, int]],
        dead: dict[int, NewMessage | None],
    ) -> None:
        # Issued together, the store still group-commits them, but each one succeeds or
        # fails on its own.
        await asyncio.gather(
            *(self._settle_done(i, w, messages.get(i)) for i, w in done.items()),
            *(self._settle_retry(i, due, attempts) for i, (due, attempts) in retry.items()),
            *(self._settle_dead(i, message) for i, message in dead.items()),
        )

    async def _settle_done(
        self, delivery_id: int, waiter: asyncio.Future[None] | None, message: NewMessage | None
    ) -> None:
        try:
            lost = await self._store.settle(
                self._owner,
                done=[delivery_id],
                messages=[] if message is None else [(delivery_id, message)],
            )
        except Exception as exc:
            if waiter is not None:
                # A queue delivery: its target reports the failure, and the engine
                # retries or dead-letters it like any other failed attempt.
                if not waiter.done():
                    waiter.set_exception(exc)
                return
            # Delivered, but the record stays pending in the store: it is claimed and
            # delivered again once its lease ends (at least once).
            _log.error("cannot settle a delivered record", delivery_id=delivery_id, error=str(exc))
            self._forget(delivery_id)
            return
        if lost:
            self._lost(delivery_id)
        else:
            DELIVERED.inc()
            self._forget(delivery_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _settle_retry(self, delivery_id: int, due: float, attempts: int) -> None:
        try:
            lost = await self._store.settle(self._owner, retry=[(delivery_id, due, attempts)])
        except Exception as exc:
            # The retry stays scheduled in memory; only a restart before it is due would
            # see the old due time and attempt count.
            _log.error("cannot record a retry", delivery_id=delivery_id, error=str(exc))
            self._retried(delivery_id, False)
            return
        if lost:
            self._lost(delivery_id)
        else:
            self._retried(delivery_id, True)

    async def _settle_dead(self, delivery_id: int, message: NewMessage | None) -> None:
        if message is not None:
            try:
                lost = await self._store.settle(self._owner, dead=[(delivery_id, message)])
            except Exception as exc:
                _log.error(
                    "cannot write the dead-letter message; dropping the record",
                    delivery_id=delivery_id,
                    dlq=message.queue,
                    error=str(exc),
                )
            else:
                if lost:
                    self._lost(delivery_id)
                else:
                    DEAD_LETTERED.inc()
                    self._forget(delivery_id)
                return
        try:
            lost = await self._store.settle(self._owner, dead=[(delivery_id, None)])
        except Exception as exc:
            # The record stays pending in the store: claimed again once its lease ends.
            _log.error("cannot settle a dropped record", delivery_id=delivery_id, error=str(exc))
        else:
            if lost:
                self._lost(delivery_id)
                return
            DROPPED.inc()
        self._forget(delivery_id)
