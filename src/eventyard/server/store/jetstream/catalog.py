"""The catalog of a JetStream store: a KV bucket of history 1, and its change feed.

A document is the value of KV key ``<kind>.<key>`` (both :func:`encode_token`-ed), its
JSON as the value. The KV revision is the stream sequence of the bucket's stream: global
across keys, never reused, so it is both :attr:`CatalogEntry.revision` and the change
feed's revision. With history 1 the bucket's stream keeps only the latest message of
each key, which is exactly the compaction the protocol allows; a delete is a ``DEL``
marker that stays, so a reader of the feed sees deletes too.

Optimistic concurrency is the server's: a write carries
``Nats-Expected-Last-Subject-Sequence``, so two processes expecting the same revision
cannot both win. Reads of one key go to the stream leader (``STREAM.MSG.GET``), so a
process reads its own writes; listings and the feed use direct batch gets.
"""

from __future__ import annotations

import json
from typing import Any

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from eventyard.errors import ConcurrentModification, StoreError
from eventyard.server.store.jetstream.codec import Names, decode_token, encode_token
from eventyard.server.store.jetstream.connection import Link, nats_errors
from eventyard.server.store.protocol import CatalogChange, CatalogEntry

__all__ = ["Catalog", "conflict"]

_WRONG_LAST = (10071, 10164)
_EXPECT_LAST = "Nats-Expected-Last-Subject-Sequence"
_OP = "KV-Operation"


def conflict(expected: int, found: int) -> ConcurrentModification:
    return ConcurrentModification(
        f"Resource was modified concurrently; expected revision {expected}, found {found}."
    )


def _encode_doc(doc: dict[str, Any]) -> bytes:
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise StoreError(f"catalog document is not JSON: {exc}") from exc


class Catalog:
    """Catalog reads and writes over one KV bucket."""

    def __init__(self, link: Link, names: Names) -> None:
        self._link = link
        self._names = names
        self._stream = names.catalog_stream
        self._pre = names.catalog_subjects

    def subject(self, kind: str, key: str) -> str:
        return f"{self._pre}{encode_token(kind)}.{encode_token(key)}"

    def change_of(
        self, subject: str, seq: int, data: bytes, headers: dict[str, str] | None
    ) -> CatalogChange | None:
        """The change a message of the bucket's stream records (None: not ours)."""
        rest = subject[len(self._pre) :]
        kind_token, _, key_token = rest.partition(".")
        if not key_token:
            return None
        kind, key = decode_token(kind_token), decode_token(key_token)
        if headers and headers.get(_OP) in ("DEL", "PURGE"):
            return CatalogChange(seq, kind, key, None)
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise StoreError(f"catalog {kind}/{key} revision {seq} is not JSON") from exc
        return CatalogChange(seq, kind, key, CatalogEntry(kind, key, doc, seq))

    def change_of_msg(self, msg: Msg) -> CatalogChange | None:
        headers = msg.headers or {}
        seq = int(headers.get("Nats-Sequence", "0")) or msg.metadata.sequence.stream
        subject = headers.get("Nats-Subject", msg.subject)
        return self.change_of(subject, seq, msg.data, headers)

    async def _current(self, kind: str, key: str) -> tuple[int, CatalogEntry | None]:
        """``(seq of the key's latest message or 0, the live entry or None)``."""
        subject = self.subject(kind, key)
        with nats_errors("catalog read", self._link):
            try:
                raw = await self._link.js.get_msg(self._stream, subject=subject)
            except nats.js.errors.NotFoundError:
                return 0, None
        assert raw.seq is not None
        change = self.change_of(subject, raw.seq, raw.data or b"", raw.headers)
        return raw.seq, None if change is None else change.entry

    async def get(self, kind: str, key: str) -> CatalogEntry | None:
        _, entry = await self._current(kind, key)
        return entry

    async def put(
        self, kind: str, key: str, doc: dict[str, Any], expect_revision: int | None
    ) -> int:
        data = _encode_doc(doc)
        subject = self.subject(kind, key)
        if expect_revision is None:
            (ack,) = await self._link.publish_many([(subject, data, {})], "catalog put")
            return ack.seq
        # Read first: a deleted key still has its DEL marker, whose sequence is the
        # key's last one, so the server's check alone would let a write expecting the
        # marker's revision (seen in the change feed) succeed on a missing document,
        # and "must not exist" must expect the marker.
        last, entry = await self._current(kind, key)
        found = 0 if entry is None else entry.revision
        if found != expect_revision:
            raise conflict(expect_revision, found)
        while True:
            (ack,) = await self._link.publish_many(
                [(subject, data, {_EXPECT_LAST: str(last)})], "catalog put", check=False
            )
            if ack.error is None:
                return ack.seq
            if ack.error_code not in _WRONG_LAST:
                raise StoreError(ack.error)
            seq, entry = await self._current(kind, key)
            found = 0 if entry is None else entry.revision
            if expect_revision == 0 and entry is None and seq != last:
                last = seq  # deleted again meanwhile: still "does not exist"
                continue
            raise conflict(expect_revision, found)

    async def delete(self, kind: str, key: str, expect_revision: int | None) -> bool:
        subject = self.subject(kind, key)
        while True:
            seq, entry = await self._current(kind, key)
            current = 0 if entry is None else entry.revision
            if expect_revision is not None and expect_revision != current:
                raise conflict(expect_revision, current)
            if entry is None:
                return False
            headers = {_OP: "DEL", _EXPECT_LAST: str(seq)}
            (ack,) = await self._link.publish_many(
                [(subject, b"", headers)], "catalog delete", check=False
            )
            if ack.error is None:
                return True
            if ack.error_code not in _WRONG_LAST:
                raise StoreError(ack.error)
            # Changed between the read and the delete: an unconditional delete tries
            # again, a conditional one reports the change on the next round.

    async def conditional_write(self, kind: str, key: str, doc: dict[str, Any], expect: int) -> int:
        """The catalog write of an ingest's claim (raises ConcurrentModification)."""
        return await self.put(kind, key, doc, expect)

    async def entries(self, kind: str, prefix: str) -> list[CatalogEntry]:
        msgs = await self._link.direct_batch(
            self._stream, 1, f"{self._pre}{encode_token(kind)}.>", 10_000_000, "catalog list"
        )
        entries = []
        for msg in msgs:
            change = self.change_of_msg(msg)
            if change is None or change.entry is None or not change.key.startswith(prefix):
                continue
            entries.append(change.entry)
        entries.sort(key=lambda e: e.key)
        return entries

    async def revision(self) -> int:
        with nats_errors("catalog revision", self._link):
            info = await self._link.js.stream_info(self._stream)
        return int(info.state.last_seq)

    async def changes(self, after: int, limit: int) -> list[CatalogChange]:
        if limit <= 0:
            return []
        msgs = await self._link.direct_batch(
            self._stream, after + 1, f"{self._pre}>", limit, "catalog changes"
        )
        changes = [self.change_of_msg(msg) for msg in msgs]
        return [c for c in changes if c is not None]

    async def watch(self, on_change: Any) -> Any:
        """Subscribe to every new change (from now on); ``on_change(change)`` per change.

        An ordered push consumer delivering new messages only: the subscription is
        in place when this returns.
        """

        async def deliver(msg: Msg) -> None:
            change = self.change_of(
                msg.subject, msg.metadata.sequence.stream, msg.data, msg.headers
            )
            if change is not None:
                on_change(change)

        with nats_errors("catalog watch", self._link):
            return await self._link.js.subscribe(
                f"{self._pre}>",
                stream=self._stream,
                cb=deliver,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.NEW,
                inactive_threshold=300.0,
            )
