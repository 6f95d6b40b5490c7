"""Archives on JetStream: copies of events kept by event time, with their count and size.

All archives share one stream, ``<prefix>_archive`` (limits retention, file storage):

* **records**: an archived event is one message on
  ``<prefix>.arc.<archive>.<hour>.<n|o>``: ``<hour>`` is the hour of the *event's* own
  time (``floor(event_time / 3600)``), so a read of an event-time window
  (:meth:`Archives.read`, replays) reads only the subjects of the hours it spans, and
  keeps the records in the window: its cost is the records of those hours, whatever
  order the events came in (PutEvents may set an old ``Time``). ``n``/``o`` says whether
  the archiving time (the ingestion time) was on-clock (:mod:`.timeindex`), which is what
  expiry goes by. Records are written by the ingest, from its journal entry, with
  ``Nats-Msg-Id`` ``<event msg id>:a:<archive hash>``: applying an entry again stores
  nothing twice. A window of many hours merges those hours' subjects by sequence
  (:func:`.timeindex.merged`).
* **the ledger** of an archive (``<prefix>.arcstat.<archive>``): its count and size
  (the sum of the bodies' lengths) as deltas. Each ingest writes one delta per archive
  it touches, in the same publish as the records, with the id ``<entry key>:s:<archive
  hash>``: a journal entry applied twice counts once. Expiry writes a negative delta of
  what it deleted (message by message: a record deleted by two processes at once counts
  for the one whose delete succeeded). :meth:`Archives.stats` sums the ledger, and
  rolls it up into one message (``Nats-Rollup: sub``, conditional on the ledger's last
  sequence, so a delta written meanwhile is never lost); every process also rolls up
  the ledgers it wrote to, every :data:`ROLLUP_INTERVAL` s.

The limit: a process that dies after deleting expired records and before writing their
negative delta leaves the count and size too high by that batch (at most 500 records).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Sequence

from nats.aio.msg import Msg

from eventyard.errors import StoreError
from eventyard.server.store.jetstream import timeindex
from eventyard.server.store.jetstream.codec import Names, fmt_float
from eventyard.server.store.jetstream.connection import Link
from eventyard.server.store.protocol import ArchiveRecord, NewEvent

__all__ = ["ROLLUP_INTERVAL", "Archives"]

log = logging.getLogger("eventyard.store.jetstream")

ROLLUP_INTERVAL = 10.0
"""Seconds between a process's roll-ups of the ledgers it wrote deltas to."""

_HOUR = 3600
_ENUMERATE_HOURS = 48  # a longer window lists the archive's subjects instead
_EVENT = "Ey-Event-Id"
_TIME = "Ey-Time"
_ARCHIVED = "Ey-Archived"
_WRONG_LAST = 10071  # a publish whose expected last subject sequence moved

Item = tuple[str, bytes, dict[str, str]]


def _hash(archive: str) -> str:
    return hashlib.blake2b(archive.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _time(msg: Msg) -> float:
    return float((msg.headers or {})[_TIME])


def _hour_of(subject: str) -> int:
    try:
        return int(subject.split(".")[-2])
    except ValueError:
        return -(2**62)  # not a record subject: in no window


def _archived(msg: Msg) -> float:
    return float((msg.headers or {})[_ARCHIVED])


class Archives:
    """Archive records and ledgers of one store."""

    def __init__(self, link: Link, names: Names) -> None:
        self._link = link
        self._names = names
        self._stream = names.archive_stream
        self._touched: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    # -- writes (from the ingest) ------------------------------------------------------
    def items(self, events: Sequence[tuple[str, NewEvent]], entry_key: str) -> list[Item]:
        """The publishes that archive ``events`` (each with its log message id): the
        records and one ledger delta per archive."""
        items: list[Item] = []
        totals: dict[str, list[int]] = {}
        for msg_id, e in events:
            if not e.archives:
                continue
            moment = e.event_time or e.time
            hour = math.floor(moment / _HOUR)
            clock = timeindex.on_clock(e.time)
            headers = {_EVENT: e.event_id, _TIME: fmt_float(moment), _ARCHIVED: fmt_float(e.time)}
            for archive in dict.fromkeys(e.archives):
                subject = self._names.archive_subject(archive, hour, clock)
                mine = {"Nats-Msg-Id": f"{msg_id}:a:{_hash(archive)}", **headers}
                items.append((subject, e.body, mine))
                total = totals.setdefault(archive, [0, 0])
                total[0] += 1
                total[1] += len(e.body)
        for archive, (count, size) in totals.items():
            delta = json.dumps({"n": count, "b": size}).encode()
            msg_id = f"{entry_key}:s:{_hash(archive)}"
            items.append((self._names.archive_ledger(archive), delta, {"Nats-Msg-Id": msg_id}))
            self._touched.add(archive)
        return items

    # -- reads -------------------------------------------------------------------------
    async def read(
        self, archive: str, since: float, until: float, after_seq: int, limit: int
    ) -> list[ArchiveRecord]:
        if limit <= 0 or since >= until:
            return []
        first, last = math.floor(since / _HOUR), math.ceil(until / _HOUR) - 1
        if last - first < _ENUMERATE_HOURS:
            hours = list(range(first, last + 1))
        else:  # a long window: only the hours that have records
            hours = sorted(
                {h for h in map(_hour_of, await self._subjects(archive)) if first <= h <= last}
            )
        filters = [self._names.archive_subject(archive, h, None) for h in hours]
        out: list[ArchiveRecord] = []
        batches = timeindex.merged(
            self._link, self._stream, filters, after_seq + 1, "read archive", limit
        )
        async with contextlib.aclosing(batches):
            async for msgs in batches:
                for msg in msgs:
                    if since <= _time(msg) < until:
                        out.append(self._record(msg))
                        if len(out) >= limit:
                            return out
        return out

    async def _subjects(self, archive: str) -> list[str]:
        """The subjects that hold records of ``archive`` (one per event hour and clock)."""
        return await timeindex.listed(self._link, self._stream, self._names.archive_all(archive))

    def _record(self, msg: Msg) -> ArchiveRecord:
        try:
            headers = msg.headers or {}
            return ArchiveRecord(
                timeindex.seq_of(msg), headers[_EVENT], float(headers[_TIME]), msg.data
            )
        except (KeyError, ValueError) as exc:
            raise StoreError(f"archive record is malformed: {exc}") from exc

    async def stats(self, archive: str) -> tuple[int, int]:
        return await self._rollup(archive, at_least=64)

    async def _rollup(self, archive: str, at_least: int) -> tuple[int, int]:
        """Sum the ledger; replace it by its sum once it has ``at_least`` messages."""
        subject = self._names.archive_ledger(archive)
        count = size = messages = last = 0
        async for msgs in timeindex.scan(self._link, self._stream, subject, 1, "archive stats"):
            for msg in msgs:
                try:
                    delta = json.loads(msg.data)
                    count, size = count + int(delta["n"]), size + int(delta["b"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise StoreError(f"archive ledger message is malformed: {exc}") from exc
                messages += 1
                last = timeindex.seq_of(msg)
        if messages >= max(at_least, 2):
            headers = {
                "Nats-Rollup": "sub",
                "Nats-Expected-Last-Subject-Sequence": str(last),
            }
            total = json.dumps({"n": count, "b": size}).encode()
            (ack,) = await self._link.publish_many(
                [(subject, total, headers)], "archive ledger roll-up", check=False
            )
            if ack.error is not None and ack.error_code != _WRONG_LAST:
                raise StoreError(ack.error)
        return count, size

    # -- retention ---------------------------------------------------------------------
    async def expire(self, archive: str, before: float) -> int:
        """Delete the records archived before ``before``, a scan batch at a time (only
        their seqs and sizes are held); write each batch's negative delta."""
        on = self._names.archive_subject(archive, "*", True)
        off = self._names.archive_subject(archive, "*", False)
        removed = 0
        for subject, stop in ((on, before + timeindex.LAG), (off, None)):
            batches = timeindex.older(
                self._link, self._stream, subject, 1, before, _archived, stop_stamp=stop
            )
            async for found in batches:
                removed += await self._delete(archive, dict(found))
        return removed

    async def _delete(self, archive: str, sizes: dict[int, int]) -> int:
        """Delete the records ``sizes`` names (seq: size) and write their negative delta
        (of those this call deleted: one gone meanwhile was counted by its deleter)."""
        deleted = await timeindex.delete(self._link, self._stream, sorted(sizes))
        if deleted:
            delta = {"n": -len(deleted), "b": -sum(sizes[s] for s in deleted)}
            await self._link.publish_many(
                [
                    (
                        self._names.archive_ledger(archive),
                        json.dumps(delta).encode(),
                        {"Nats-Msg-Id": f"x:{uuid.uuid4().hex}"},
                    )
                ],
                "archive ledger",
            )
        return len(deleted)

    async def drop(self, archive: str) -> None:
        await timeindex.purge(self._link, self._stream, self._names.archive_all(archive), None)
        await timeindex.purge(self._link, self._stream, self._names.archive_ledger(archive), None)

    # -- background --------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(ROLLUP_INTERVAL)
            touched, self._touched = self._touched, set()
            for archive in touched:
                try:
                    await self._rollup(archive, at_least=2)
                except StoreError as exc:
                    log.warning("archive ledger roll-up of %r failed: %s", archive, exc)
                    self._touched.add(archive)
