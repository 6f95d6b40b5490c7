"""Reading and expiring JetStream records by the time they carry, without a scan.

The log, the archives and the trace journal keep records whose time (an ``Ey-Time``
header) is the caller's: the ingestion time, the archiving time, the trace entry's time.
JetStream indexes every message by another time, its own store time stamp
(``Nats-Time-Stamp``, the server's clock when it stored the message), and can find the
first message stored at or after any instant (a direct get with ``start_time``: a
binary search, not a scan). Both times agree when a record is stored as it happens, so
that index serves ours:

* **on-clock** records are those whose time was at most :data:`LATE` seconds before
  the writer's clock when it published them (and not after it: the router stamps an
  event with the clock of the process that then writes it). Their server stamp is then
  at most :data:`LEAD` before their time (clocks of eventyard hosts and NATS servers
  that agree within :data:`CLOCKS`, as NTP keeps them; :func:`check_clock` warns at
  open when they do not) and at most :data:`LAG` after it (the lateness, the publish's
  own delay, the clocks). They go to one subject (``…log.<bus>``, ``…trace.<bucket>``):
  a read of ``[since, until)`` starts at the first message stamped at
  ``since - LEAD``, stops at the first one stamped at ``until + LAG``, and keeps the
  records whose own time is in the window. Its cost is the records of the window plus
  ``LEAD + LAG`` seconds of them.
* **off-clock** records (a time far from now: an ingest applied late by the journal's
  recovery, a log filled with made-up times) go to subjects of their own, one per
  :data:`OFF_BUCKET` seconds of their own time (``<subject>.o.<bucket>``): a window
  reads the buckets it spans, whole. There are few such records in a real system.

Expiry (:func:`expire`) purges the on-clock records stamped before ``before - LEAD``
in one ``STREAM.PURGE`` (the space is reused, block by block), then deletes one by one
the records near the boundary whose own time is older; off-clock buckets wholly before
``before`` are purged, and the one across it is read and deleted from.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import UTC, datetime

import nats.errors
from nats.aio.msg import Msg

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.connection import Link

__all__ = [
    "CLOCKS",
    "LAG",
    "LATE",
    "LEAD",
    "check_clock",
    "delete",
    "expire",
    "first_seq_at",
    "on_clock",
    "purge",
    "scan",
    "seq_of",
    "stamp_of",
]

log = logging.getLogger("eventyard.store.jetstream")

LATE = 2.0
"""Seconds a record's time may lie behind the writer's clock for it to be on-clock."""

_AHEAD = 0.5  # ... and ahead of it (a clock that steps back)

CLOCKS = 2.5
"""Seconds by which the clocks of eventyard hosts and NATS servers may differ."""

LEAD = _AHEAD + CLOCKS
"""Seconds by which the server may stamp an on-clock record before its own time."""

LAG = LATE + 3.0 + CLOCKS
"""Seconds by which the server may stamp an on-clock record after its own time (its
lateness, 3 s for the publish to reach the server, the clocks)."""

_BATCH = 1000
_FIRST = 100  # messages of each subject a merge reads first
_PARALLEL = 16  # direct gets a merge has in flight at once
OFF_BUCKET = 600.0
"""Seconds of a record's own time that one off-clock subject holds."""
_NAMED_BUCKETS = 256  # a longer range lists the off-clock subjects instead


def on_clock(moment: float) -> bool:
    """Whether a record of time ``moment`` published now is on-clock."""
    return -LATE <= moment - time.time() <= _AHEAD


def fmt_stamp(moment: float) -> str:
    """``moment`` (epoch seconds) as the RFC 3339 time JetStream requests take."""
    moment = max(moment, 0.0)
    whole = datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{round((moment % 1) * 1e9) % 1_000_000_000:09d}Z"


def parse_stamp(text: str | None) -> float:
    """Seconds since the epoch of a ``Nats-Time-Stamp`` (RFC 3339, nanoseconds); 0.0
    for a missing or unreadable one."""
    if not text:
        return 0.0
    whole, _, fraction = text.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(whole + "+00:00").timestamp()
    except ValueError:
        return 0.0
    return moment + (float("0." + fraction) if fraction.isdigit() else 0.0)


def stamp_of(msg: Msg) -> float:
    """The server's store time of a message read by a direct get."""
    return parse_stamp((msg.headers or {}).get("Nats-Time-Stamp"))


def seq_of(msg: Msg) -> int:
    """The stream sequence of a message read by a direct get or from a consumer."""
    try:
        header = (msg.headers or {}).get("Nats-Sequence")
        return int(header) if header is not None else int(msg.metadata.sequence.stream)
    except (ValueError, nats.errors.Error) as exc:
        raise StoreError(f"a read message has no stream sequence: {exc}") from exc


async def check_clock(link: Link, stream: str) -> float:
    """How far the server's clock is ahead of this host's (seconds, within the round
    trip), from the time a ``STREAM.INFO`` answer carries; logs a warning when it is
    more than :data:`CLOCKS`, since on-clock records then lose their margins."""
    before = time.time()
    answer = await link.api(f"$JS.API.STREAM.INFO.{stream}", {}, "clock check")
    after = time.time()
    stamp = parse_stamp(answer.get("ts"))
    if not stamp:
        return 0.0
    offset = stamp - (before + after) / 2
    if abs(offset) > CLOCKS:
        log.warning(
            "the NATS server's clock is %.1f s %s this host's: keep them within %.0f s "
            "(NTP), or windows of the log, archives and trace may miss records at their edges",
            abs(offset),
            "ahead of" if offset > 0 else "behind",
            CLOCKS,
        )
    return offset


async def _direct(
    link: Link, stream: str, request: dict[str, object], want: int, what: str
) -> tuple[list[Msg], bool]:
    """One direct (batch) get; returns its messages and whether more may follow."""
    msgs, end = await link.collect(
        f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), expect=want, what=what
    )
    if end is None:
        return msgs, True
    status = (end.headers or {}).get("Status")
    if status == "404":
        return msgs, False
    if status == "503":
        message = f"JetStream {what} failed: no server answers for {stream}"
        link.note_failure(message)
        raise StoreError(message)
    if status != "204":
        raise StoreError(f"JetStream {what} failed: status {status}")
    return msgs, int((end.headers or {}).get("Nats-Num-Pending", "0")) > 0


async def last_seq(link: Link, stream: str) -> int:
    """The sequence of the last message stored in ``stream`` (0 when none ever was)."""
    answer = await link.api(f"$JS.API.STREAM.INFO.{stream}", {}, f"state of {stream}")
    return int(answer.get("state", {}).get("last_seq", 0))


async def first_seq_at(link: Link, stream: str, subject: str, moment: float) -> int | None:
    """The sequence of the first message of ``subject`` stamped at or after ``moment``,
    None if there is none (a binary search on the server)."""
    request = {"start_time": fmt_stamp(moment), "next_by_subj": subject, "batch": 1}
    msgs, _ = await _direct(link, stream, request, 1, "time lookup")
    return seq_of(msgs[0]) if msgs else None


async def scan(
    link: Link, stream: str, subject: str, start_seq: int, what: str
) -> AsyncGenerator[list[Msg]]:
    """The messages of ``subject`` (wildcards allowed) from ``start_seq`` on, in order,
    a batch at a time (direct batch gets); the caller stops when it has read enough."""
    seq = max(start_seq, 1)
    want = 100
    while True:
        request = {"seq": seq, "batch": want, "next_by_subj": subject}
        msgs, more = await _direct(link, stream, request, want, what)
        if msgs:
            yield msgs
            seq = seq_of(msgs[-1]) + 1
        if not more or not msgs:
            return
        want = min(want * 4, _BATCH)


async def _first(  # noqa: PLR0917 - one read of a merge
    link: Link, stream: str, subject: str, start_seq: int, size: int, gate: asyncio.Semaphore
) -> list[Msg]:
    """Up to ``size`` messages of ``subject`` from ``start_seq``."""
    request = {"seq": max(start_seq, 1), "batch": size, "next_by_subj": subject}
    async with gate:
        msgs, _ = await _direct(link, stream, request, size, f"read {stream}")
    return msgs


async def _merge(  # noqa: PLR0917 - merged's
    link: Link, stream: str, filters: Sequence[str], start_seq: int, what: str, want: int
) -> AsyncGenerator[list[Msg]]:
    """A k-way merge by sequence of the subjects ``filters``: the first messages of
    each are read at once (:data:`_PARALLEL` requests in flight; about ``want`` in all),
    then each subject is read on in batches as the merge reaches it."""
    gate = asyncio.Semaphore(_PARALLEL)
    size = max(4, min(_FIRST, want // len(filters) + 1))
    firsts = await asyncio.gather(
        *(_first(link, stream, f, start_seq, size, gate) for f in filters)
    )
    readers: list[AsyncGenerator[list[Msg]]] = []
    buffers: list[deque[Msg]] = []
    heap: list[tuple[int, int]] = []
    for index, first in enumerate(firsts):
        buffers.append(deque(first))
        readers.append(_nothing())
        if first:
            if len(first) == size:
                readers[index] = scan(link, stream, filters[index], seq_of(first[-1]) + 1, what)
            heapq.heappush(heap, (seq_of(first[0]), index))
    try:
        out: list[Msg] = []
        while heap:
            _, index = heapq.heappop(heap)
            out.append(buffers[index].popleft())
            if not buffers[index]:
                buffers[index].extend(await anext(readers[index], []))
            if buffers[index]:
                heapq.heappush(heap, (seq_of(buffers[index][0]), index))
            if len(out) >= _BATCH:
                yield out
                out = []
        if out:
            yield out
    finally:
        for reader in readers:
            await reader.aclose()


async def purge(link: Link, stream: str, subject: str, before_seq: int | None) -> int:
    """Purge the messages of ``subject`` (below ``before_seq``; all when None)."""
    request: dict[str, object] = {"filter": subject}
    if before_seq is not None:
        request["seq"] = before_seq
    answer = await link.api(f"$JS.API.STREAM.PURGE.{stream}", request, f"purge {stream}")
    return int(answer.get("purged", 0))


async def delete(link: Link, stream: str, seqs: Sequence[int]) -> list[int]:
    """Delete these messages; returns the sequences this call deleted (a message
    already gone, deleted by another process meanwhile, is not among them)."""
    deleted: list[int] = []
    subject = f"$JS.API.STREAM.MSG.DELETE.{stream}"
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        items = [
            (subject, json.dumps({"seq": seq, "no_erase": True}).encode(), None) for seq in chunk
        ]
        replies = await link.request_many(items, f"delete from {stream}")
        for seq, reply in zip(chunk, replies, strict=True):
            answer = json.loads(reply.data or b"{}")
            if answer.get("success"):
                deleted.append(seq)
            elif "no message found" not in str(answer.get("error", {}).get("description")):
                raise StoreError(f"JetStream delete from {stream} failed: {answer.get('error')}")
    return deleted


TimeOf = Callable[[Msg], float]


async def older(  # noqa: PLR0917 - a scan's stream, subject, start and test
    link: Link,
    stream: str,
    subject: str,
    start_seq: int,
    before: float,
    time_of: TimeOf,
    *,
    stop_stamp: float | None,
) -> AsyncGenerator[list[tuple[int, int]]]:
    """The messages of ``subject`` from ``start_seq`` whose own time is before
    ``before``, a scan batch at a time, as ``(seq, size)`` (no bodies are kept, so
    expiring millions of records holds one batch); reading stops at the first message
    stamped at ``stop_stamp`` (the whole subject when None). The caller may delete a
    batch before it reads the next."""
    async for msgs in scan(link, stream, subject, start_seq, f"expiry scan of {stream}"):
        found: list[tuple[int, int]] = []
        stopped = False
        for msg in msgs:
            if stop_stamp is not None and stamp_of(msg) >= stop_stamp:
                stopped = True
                break
            if time_of(msg) < before:
                found.append((seq_of(msg), len(msg.data)))
        del msgs
        if found:
            yield found
        if stopped:
            return


def off_subject(on: str, moment: float) -> str:
    """The subject of an off-clock record of time ``moment`` beside subject ``on``:
    ``<on>.o.<bucket>``, one bucket per :data:`OFF_BUCKET` seconds of its own time."""
    return f"{on}.o.{math.floor(moment / OFF_BUCKET)}"


def _bucket(subject: str) -> int:
    try:
        return int(subject.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return -(2**62)  # not a bucket subject


async def listed(link: Link, stream: str, pattern: str) -> list[str]:
    """The subjects of ``stream`` matching ``pattern`` that hold messages."""
    subjects: list[str] = []
    offset = 0
    while True:
        answer = await link.api(
            f"$JS.API.STREAM.INFO.{stream}",
            {"subjects_filter": pattern, "offset": offset},
            f"subjects of {stream}",
        )
        found = list((answer.get("state") or {}).get("subjects") or {})
        subjects += found
        offset += len(found)
        if not found or offset >= int(answer.get("total", 0)):
            return subjects


async def off_subjects(
    link: Link, stream: str, on: str, first: float | None, last: float | None
) -> list[str]:
    """The off-clock subjects (or subject patterns) beside ``on`` whose bucket may hold
    times in ``[first, last]`` (None: unbounded): the buckets of a short range are named,
    those of a long one are listed from the server."""
    low = -(2**62) if first is None else math.floor(first / OFF_BUCKET)
    high = 2**62 if last is None else math.floor(last / OFF_BUCKET)
    if high - low < _NAMED_BUCKETS:
        return [f"{on}.o.{b}" for b in range(low, high + 1)]
    return sorted(s for s in await listed(link, stream, f"{on}.o.*") if low <= _bucket(s) <= high)


def merged(  # noqa: PLR0917 - the subjects and the reading
    link: Link, stream: str, filters: Sequence[str], start_seq: int, what: str, want: int
) -> AsyncGenerator[list[Msg]]:
    """The messages of any of ``filters`` from ``start_seq``, in sequence order; the
    caller expects to read about ``want`` of them (it may stop before, or read on)."""
    if not filters:
        return _nothing()
    if len(filters) == 1:
        return scan(link, stream, filters[0], start_seq, what)
    return _merge(link, stream, filters, start_seq, what, want)


async def _nothing() -> AsyncGenerator[list[Msg]]:
    empty: tuple[list[Msg], ...] = ()
    for nothing in empty:
        yield nothing


async def expire(link: Link, stream: str, on: str, before: float, time_of: TimeOf) -> int:
    """Delete the records of the on-clock subject ``on`` (wildcards allowed) and of its
    off-clock buckets whose own time is before ``before``; returns how many.

    Without a cut (every record of ``on`` is older), the purge is bounded by the last
    sequence read before the lookup: a record stored meanwhile is newer, and stays."""
    last = await last_seq(link, stream)
    cut = await first_seq_at(link, stream, on, before - LEAD)
    removed = await purge(link, stream, on, last + 1 if cut is None else cut)
    if cut is not None:
        removed += await _remove(link, stream, on, cut, before, time_of, before + LAG)
    edge = math.floor(before / OFF_BUCKET)
    for subject in await listed(link, stream, f"{on}.o.*"):
        if _bucket(subject) < edge:
            removed += await purge(link, stream, subject, None)
        elif _bucket(subject) == edge:
            removed += await _remove(link, stream, subject, 1, before, time_of, None)
    return removed


async def _remove(  # noqa: PLR0917 - expire's boundary
    link: Link,
    stream: str,
    subject: str,
    start_seq: int,
    before: float,
    time_of: TimeOf,
    stop_stamp: float | None,
) -> int:
    """Remove the records of ``subject`` from ``start_seq`` (up to the first stamped at
    ``stop_stamp``) whose own time is before ``before``: the leading run of them by one
    purge, the stragglers after it one by one."""
    run_end: int | None = None  # the purge bound: the leading run is below it
    in_run, done = True, False
    stragglers: list[int] = []
    async for msgs in scan(link, stream, subject, start_seq, f"expiry scan of {stream}"):
        for msg in msgs:
            if stop_stamp is not None and stamp_of(msg) >= stop_stamp:
                done = True
                break
            if time_of(msg) >= before:
                in_run = False
            elif in_run:
                run_end = seq_of(msg) + 1
            else:
                stragglers.append(seq_of(msg))
        if done:
            break
    removed = 0 if run_end is None else await purge(link, stream, subject, run_end)
    return removed + len(await delete(link, stream, stragglers))


async def window(  # noqa: PLR0917 - the subject, the window and the page
    link: Link,
    stream: str,
    on: str,
    since: float,
    until: float,
    after_seq: int,
    limit: int,
    time_of: TimeOf,
) -> list[Msg]:
    """The records of ``on`` and its off-clock buckets whose own time is in
    ``[since, until)``, with a sequence above ``after_seq``, in sequence order, at most
    ``limit``."""
    if limit <= 0 or since >= until:
        return []
    start = await first_seq_at(link, stream, on, since - LEAD)
    picked: list[Msg] = []
    if start is not None:
        async for msgs in scan(link, stream, on, max(start, after_seq + 1), f"read {stream}"):
            if _pick(msgs, picked, since, until, limit, time_of, until + LAG):
                break
    strays: list[Msg] = []
    filters = await off_subjects(link, stream, on, since, until)
    async with contextlib.aclosing(
        merged(link, stream, filters, after_seq + 1, f"read {stream}", limit)
    ) as batches:
        async for msgs in batches:
            if _pick(msgs, strays, since, until, limit, time_of, None):
                break
    if strays:
        picked = sorted(picked + strays, key=seq_of)
    return picked[:limit]


def _pick(  # noqa: PLR0917 - one filter step of window
    msgs: list[Msg],
    picked: list[Msg],
    since: float,
    until: float,
    limit: int,
    time_of: TimeOf,
    stop_stamp: float | None,
) -> bool:
    """Add the messages in the window to ``picked``; True once reading can stop."""
    for msg in msgs:
        if stop_stamp is not None and stamp_of(msg) >= stop_stamp:
            return True
        if since <= time_of(msg) < until:
            picked.append(msg)
            if len(picked) >= limit:
                return True
    return False
