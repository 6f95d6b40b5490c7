"""The trace journal's writer: what happened to each event after ingest, written in batches.

The delivery engine tells the journal of every attempt (target, attempt number, HTTP
status or error, outcome ``delivered`` / ``retry`` / ``dead`` / ``dropped``) and of
every dead letter (queue and message id, reason); a queue target's attempt names the
message it made; the SQS API tells of each receive and delete of a message of
eventyard's queues (keyed by the message id). The trace service
(:mod:`eventyard.server.trace`) reads them back with :meth:`Store.trace_append`'s twin,
:meth:`Store.trace_read`.

Writing is off the hot path: :meth:`TraceJournal.record` appends to a buffer and
returns; a background task writes the buffer with one ``store.trace_append`` every
``linger`` seconds (100 ms), or as soon as ``batch`` entries wait. Nothing awaits a
trace write. The journal is best effort by design (the store's protocol says so too):
entries written when the store fails are dropped and counted, and past ``limit``
buffered entries new ones are dropped, so a store outage never grows memory without
bound. With the ``trace`` setting false, :meth:`record` does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from prometheus_client import Counter

from eventyard.errors import StoreError
from eventyard.server.store import Store, TraceEntry

__all__ = [
    "ATTEMPT",
    "DEAD_LETTER",
    "QUEUE_DELETE",
    "QUEUE_RECEIVE",
    "TraceJournal",
]

log = structlog.get_logger("eventyard.server.journal")

#: the kinds of trace entries
ATTEMPT = "attempt"
DEAD_LETTER = "dead-letter"
QUEUE_RECEIVE = "queue-receive"
QUEUE_DELETE = "queue-delete"

WRITTEN = Counter("eventyard_trace_entries_total", "trace journal entries written")
DROPPED = Counter(
    "eventyard_trace_entries_dropped_total",
    "trace journal entries lost (the store failed, or the buffer was full)",
)


class TraceJournal:
    """A buffered writer of :class:`~eventyard.server.store.TraceEntry` records.

    Args:
        store: where entries go (``trace_append``).
        enabled: False makes every ``record`` a no-op (the ``trace`` setting).
        linger: seconds a buffered entry waits at most before it is written.
        batch: buffered entries that trigger a write at once.
        limit: buffered entries past which new ones are dropped (a failing store).
        clock: the time stamped on entries (epoch seconds).
    """

    def __init__(
        self,
        store: Store,
        *,
        enabled: bool = True,
        linger: float = 0.1,
        batch: int = 1000,
        limit: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self._store = store
        self._linger = linger
        self._batch = batch
        self._limit = limit
        self._clock = clock
        self._buffer: list[TraceEntry] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Lock | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background writer (a no-op when disabled or started)."""
        if self.enabled and self._task is None:
            self._stopping = False
            self._flushing = asyncio.Lock()
            self._task = asyncio.create_task(self._run(), name="eventyard-trace-journal")

    async def stop(self) -> None:
        """Stop the writer after its last write (never cancelled in the middle of one),
        then write what is buffered. Idempotent: calling it again writes the entries
        recorded since (the runtime does, after every component has stopped)."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._full.set()
            await task
        await self.flush()

    async def flush(self) -> None:
        """Write every buffered entry now (tests, shutdown)."""
        if not self._buffer:
            return
        lock = self._flushing or asyncio.Lock()
        async with lock:
            entries, self._buffer = self._buffer, []
            self._full.clear()
            if not entries:
                return
            try:
                await self._store.trace_append(entries)
            except asyncio.CancelledError:
                self._buffer[:0] = entries  # not written: kept for the next flush
                raise
            except StoreError as exc:
                DROPPED.inc(len(entries))
                log.warning(
                    "trace entries lost: the store failed", entries=len(entries), error=str(exc)
                )
                return
            WRITTEN.inc(len(entries))

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._linger)
            try:
                await self.flush()
            except Exception:
                log.exception("trace journal write crashed")

    # -- recording (never blocks) ----------------------------------------------------------
    def record(self, key: str, kind: str, target: str, detail: dict[str, Any]) -> None:
        """Buffer one entry, stamped now; written within ``linger`` seconds."""
        if not self.enabled:
            return
        buffer = self._buffer
        if len(buffer) >= self._limit:
            DROPPED.inc()
            return
        buffer.append(TraceEntry(key, self._clock(), kind, target, orjson.dumps(detail)))
        if len(buffer) >= self._batch:
            self._full.set()

    def attempt(
        self,
        event_id: str,
        target: str,
        attempt: int,
        outcome: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error: str | None = None,
        made: dict[str, Any] | None = None,
    ) -> None:
        """One delivery attempt of ``event_id`` to target key ``target``.

        ``outcome``: ``delivered``, ``retry`` (another attempt is due), ``dead`` (given
        up: see the dead-letter entry), ``deferred`` (held back by a rate limit, no call
        made). ``made``: what the attempt made (a queue target's ``message_id`` and
        ``queue``; an HTTP target's ``status``).
        """
        if not self.enabled:
            return
        detail: dict[str, Any] = {"attempt": attempt, "outcome": outcome}
        if made:
            detail.update(made)
        if status is not None:
            detail["status"] = status
        if error_code is not None:
            detail["error_code"] = error_code
        if error is not None:
            detail["error"] = error[:1024]
        self.record(event_id, ATTEMPT, target, detail)

    def dead_letter(
        self,
        event_id: str,
        target: str,
        *,
        queue: str | None,
        message_id: str | None,
        reason: str,
        error: str | None = None,
        exhausted: str | None = None,
    ) -> None:
        """``event_id``'s delivery to ``target`` was given up: put on dead-letter queue
        ``queue`` as ``message_id``, or dropped (``queue`` None) for ``reason``."""
        if not self.enabled:
            return
        detail: dict[str, Any] = {"queue": queue, "message_id": message_id, "reason": reason}
        if error is not None:
            detail["error"] = error[:1024]
        if exhausted is not None:
            detail["exhausted"] = exhausted
        self.record(event_id, DEAD_LETTER, target, detail)

    def queue_receive(self, message_id: str, queue: str, receive_count: int) -> None:
        """Message ``message_id`` of ``queue`` was received (its ``receive_count``-th)."""
        self.record(message_id, QUEUE_RECEIVE, queue, {"receive_count": receive_count})

    def queue_delete(self, message_id: str, queue: str) -> None:
        """Message ``message_id`` of ``queue`` was deleted by its consumer."""
        self.record(message_id, QUEUE_DELETE, queue, {})
