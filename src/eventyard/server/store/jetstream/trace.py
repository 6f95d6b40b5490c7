"""The trace journal on JetStream: what happened to events after ingest, by key.

One stream, ``<prefix>_trace`` (limits retention, file storage, :data:`MAX_AGE` as a
safety net under :meth:`Trace.expire`, which the trace service runs by its own
retention). An entry is one message on one of :data:`BUCKETS` subjects,
``<prefix>.trace.<bucket>`` (``….o.<time bucket>`` when its time is off-clock, see
:mod:`.timeindex`), the bucket being a hash of its key: never one subject per key, since
nats-server keeps every subject's state in memory and a busy system traces millions of
keys. The key, time, kind and target are a JSON header (``Ey-Trace``); the body is the
detail.

:meth:`Trace.read` reads, for the buckets of the keys asked, the entries stamped since
``since - LEAD`` (the server finds where by a binary search on time), and keeps the
keys asked: its cost is the entries of those buckets since ``since``, about
``1/BUCKETS`` of all entries since then per key, plus the bucket's off-clock entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence

from nats.aio.msg import Msg

from eventyard.errors import StoreError
from eventyard.server.store.jetstream import timeindex
from eventyard.server.store.jetstream.codec import Names
from eventyard.server.store.jetstream.connection import Link
from eventyard.server.store.protocol import TraceEntry

__all__ = ["BUCKETS", "MAX_AGE", "Trace"]

BUCKETS = 1024
"""How many subjects the trace entries are spread over (by a hash of their key)."""

MAX_AGE = 30 * 86400.0
"""Seconds after which the server drops a trace entry whatever the trace retention."""

_META = "Ey-Trace"


def bucket_of(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def _entry(msg: Msg) -> TraceEntry:
    try:
        key, moment, kind, target = json.loads((msg.headers or {})[_META])
        return TraceEntry(str(key), float(moment), str(kind), str(target), msg.data)
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"trace entry is malformed: {exc}") from exc


def _time(msg: Msg) -> float:
    return _entry(msg).time


class Trace:
    """Appends, reads and expiry of the trace journal."""

    def __init__(self, link: Link, names: Names) -> None:
        self._link = link
        self._names = names
        self._stream = names.trace_stream

    async def append(self, entries: Sequence[TraceEntry]) -> None:
        items = []
        for e in entries:
            meta = json.dumps([e.key, e.time, e.kind, e.target], ensure_ascii=True)
            subject = self._names.trace_subject(bucket_of(e.key))
            if not timeindex.on_clock(e.time):
                subject = timeindex.off_subject(subject, e.time)
            items.append((subject, e.detail, {_META: meta}))
        for start in range(0, len(items), 1000):
            await self._link.publish_many(items[start : start + 1000], "trace append")

    async def read(self, keys: Sequence[str], since: float) -> list[TraceEntry]:
        wanted = set(keys)
        found: list[tuple[float, int, TraceEntry]] = []

        def keep(msgs: list[Msg]) -> None:
            for msg in msgs:
                entry = _entry(msg)
                if entry.key in wanted and entry.time >= since:
                    found.append((entry.time, timeindex.seq_of(msg), entry))

        for bucket in sorted({bucket_of(k) for k in wanted}):
            on = self._names.trace_subject(bucket)
            start = await timeindex.first_seq_at(
                self._link, self._stream, on, since - timeindex.LEAD
            )
            if start is not None:
                async for msgs in timeindex.scan(self._link, self._stream, on, start, "trace"):
                    keep(msgs)
            off = await timeindex.off_subjects(self._link, self._stream, on, since, None)
            async with contextlib.aclosing(
                timeindex.merged(self._link, self._stream, off, 1, "trace", 1000)
            ) as batches:
                async for msgs in batches:
                    keep(msgs)
        found.sort(key=lambda f: (f[0], f[1]))
        return [entry for _, _, entry in found]

    async def expire(self, before: float) -> int:
        return await timeindex.expire(
            self._link, self._stream, self._names.trace_subject("*"), before, _time
        )
