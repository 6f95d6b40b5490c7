"""FIFO queues (names ending ``.fifo``) on JetStream: group order and de-duplication.

A FIFO queue promises what a JetStream consumer cannot give on its own: each message
group's messages in sending order, *none* of a group while an earlier one of it is in
flight or delayed, and several consecutive messages of one group in one receive. A
consumer with ``MaxAckPending`` 1 per group would block groups but allow one message
per receive and one consumer (a raft group on R3) per group. So a FIFO queue keeps its
messages in a plain stream and its in-flight bookkeeping in one record that every
process updates by compare-and-set:

* **messages**: the stream ``<prefix>_qfifo`` (limits retention, direct gets), one
  subject per queue ``<prefix>.qf.<hash>``, payload as the standard queues' (a JSON
  head with id, attributes, sent time, group, dedup id and visible time, then the body).
  The stream sequence is the sending order. A deleted message is deleted by sequence.
* **state**: the latest message of ``<prefix>.qfs.<hash>`` in ``<prefix>_qfmeta``
  (``max_msgs_per_subject`` 1): for each received message not yet deleted its receive
  count, first receive, hidden-until time and group, and the sequences being deleted.
  Receive reads it, scans the queue's messages in order with batched direct gets
  (skipping the groups with a message hidden until after ``now``), and writes the new
  state with ``Nats-Expected-Last-Subject-Sequence``: of two processes that took the
  same messages from the same state only one write succeeds; the other reads again.
  Delete and change of visibility are compare-and-set writes of the same record, so a
  receipt is current exactly when its receive count is the recorded one.
* **de-duplication**: a key ``<prefix>.qfd.<hash>.<dedup hash>`` in ``<prefix>_qfmeta``
  with ``Nats-TTL`` :data:`DEDUP_INTERVAL`, created with expected last subject
  sequence 0 (atomic across processes; the server removes it when the TTL ends). It
  holds the first message's id, which a duplicate send answers. The message itself is
  then published with ``Nats-Msg-Id`` ``fifo:<key sequence>``, also by every duplicate:
  the stream's duplicate window (10 minutes, longer than the key lives, and kept after
  the message is deleted) drops it if the first publish landed, and stores it if the
  first sender died between the key and the publish, so a retried send is never lost.

Visibility is judged by the ``now`` the caller passes (as the SQLite store), so the
processes' clocks must agree. Why this design and what it costs are in
``docs/architecture.md`` ("The JetStream store", "Queues", "FIFO queues").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import random
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.fifo_records import Head as _Head
from eventyard.server.store.jetstream.fifo_records import State as _State
from eventyard.server.store.jetstream.fifo_records import decode as _decode
from eventyard.server.store.jetstream.fifo_records import encode as _encode
from eventyard.server.store.jetstream.fifo_records import is_fifo
from eventyard.server.store.jetstream.fifo_records import nats_errors as _nats_errors
from eventyard.server.store.jetstream.fifo_records import parse_receipt as _parse_receipt
from eventyard.server.store.jetstream.fifo_records import queue_hash as _hash
from eventyard.server.store.jetstream.fifo_records import receipt as _receipt
from eventyard.server.store.protocol import DEDUP_INTERVAL, NewMessage, QueueMessage

__all__ = ["SCAN_BATCH", "FifoQueues", "is_fifo"]

SCAN_BATCH = 256
"""Messages one direct get of a receive's scan returns at most."""

_SCAN_BYTES = 4 * 1024 * 1024  # and bytes (a message may be 1 MiB)
_TIMEOUT = 5.0
_TRIES = 50  # compare-and-set attempts before a receive or delete gives up
_GONE_AFTER = 60.0  # a deleted sequence is forgotten this long after its delete
_REDELETE = 10.0  # a deleted message still in the stream this long after is deleted again
_WRONG_LAST = 10071
_NO_MESSAGE = 10037
_IN_USE = 10058
_DIRECT_TRIES = 6
_BACKOFF = 0.002  # seconds: the first pause after losing a compare-and-set, doubled each time
_BACKOFF_MAX = 0.1


async def _contended(attempt: int) -> None:
    """Pause after losing a compare-and-set of a queue's state to another process.

    Retrying at once lets the processes that keep receiving win every round: one that
    lost a few times would lose all its tries. A random pause, longer after each loss
    (full jitter), spreads the writers out so that each gets its turn.
    """
    await asyncio.sleep(random.uniform(0, min(_BACKOFF_MAX, _BACKOFF * 2**attempt)))


@dataclass(slots=True)
class _Op:
    """A delete or change of visibility waiting for its queue's next state write."""

    seq: int
    count: int
    change: Callable[[_State, int], None]
    deletes: bool
    done: asyncio.Future[bool]


class _NoResponders(Exception):
    """A direct get nobody answered (a stream just created)."""


class _Conflict(Exception):
    """Another process wrote the queue's state since it was read: read again."""


class FifoQueues:
    """The FIFO queues of the JetStream store (see the module docstring).

    Args:
        nc, js: a connected client and its JetStream context, owned by the caller.
        prefix, replicas: the store's; the streams are ``<prefix>_qfifo`` and
            ``<prefix>_qfmeta``.
        clock: the store's clock (sent times, de-duplication).
        notify: told the queues that have new visible messages.
        dedup_interval: how long a de-duplication key is remembered (tests shorten it).
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        prefix: str,
        replicas: int,
        clock: Callable[[], float],
        notify: Callable[[Collection[str]], None],
        dedup_interval: float = DEDUP_INTERVAL,
    ) -> None:
        self._nc = nc
        self._js = js
        self._prefix = prefix
        self._replicas = replicas
        self._clock = clock
        self._notify = notify
        self._dedup_ttl = max(1, round(dedup_interval))
        self._stream = f"{prefix}_qfifo"
        self._meta = f"{prefix}_qfmeta"
        self._closed = False
        self._locks: dict[str, asyncio.Lock] = {}
        self._ops: dict[str, list[_Op]] = {}

    # -- set-up and plumbing ---------------------------------------------------------------

    async def setup(self) -> None:
        """Create the two streams (an identical create from another process is a no-op)."""
        common = {"retention": "limits", "storage": "file", "num_replicas": self._replicas}
        await self._ensure(
            {
                **common,
                "name": self._stream,
                "description": "eventyard: FIFO queue messages, one subject per queue",
                "subjects": [f"{self._prefix}.qf.>"],
                "duplicate_window": int(600 * 1e9),
                "allow_direct": True,
            }
        )
        await self._ensure(
            {
                **common,
                "name": self._meta,
                "description": "eventyard: FIFO queue states and de-duplication keys",
                "subjects": [
                    f"{self._prefix}.qfs.>",
                    f"{self._prefix}.qfd.>",
                    f"{self._prefix}.qfw.>",
                ],
                "max_msgs_per_subject": 1,
                "allow_msg_ttl": True,
                "allow_direct": True,
            }
        )

    async def _ensure(self, config: dict[str, Any]) -> None:
        name = config["name"]
        reply = await self._api(
            f"STREAM.CREATE.{name}", config, f"create stream {name}", allow=(_IN_USE,)
        )
        if reply.get("error") is None:
            return
        found = (await self._api(f"STREAM.INFO.{name}", {}, f"read stream {name}"))["config"]
        for key in ("retention", "num_replicas", "subjects"):
            if found.get(key) != config[key]:
                raise StoreError(
                    f"JetStream stream {name} exists with {key} {found.get(key)!r}, but this "
                    f"store wants {config[key]!r}: every process must use the same --replicas"
                )

    async def close(self) -> None:
        self._closed = True

    async def _api(
        self, subject: str, request: dict[str, Any], doing: str, *, allow: Collection[int] = ()
    ) -> dict[str, Any]:
        if self._closed:
            raise StoreError("the store is closed")
        with _nats_errors(doing):
            msg = await self._nc.request(
                f"$JS.API.{subject}", orjson.dumps(request), timeout=_TIMEOUT
            )
        try:
            reply: dict[str, Any] = orjson.loads(msg.data)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"JetStream: cannot {doing}: unreadable reply") from exc
        error = reply.get("error")
        if error is not None and error.get("err_code") not in allow:
            raise StoreError(f"JetStream: cannot {doing}: {error.get('description')}")
        return reply

    def _subject(self, queue: str) -> str:
        return f"{self._prefix}.qf.{_hash(queue)}"

    def _state_subject(self, queue: str) -> str:
        return f"{self._prefix}.qfs.{_hash(queue)}"

    def _delayed_subject(self, queue: str) -> str:
        return f"{self._prefix}.qfw.{_hash(queue)}"

    def _key_subject(self, queue: str, dedup: str) -> str:
        return f"{self._prefix}.qfd.{_hash(queue)}.{_hash(dedup)}"

    async def _last(self, subject: str) -> tuple[int, bytes] | None:
        """The sequence and data of the last message on ``subject`` in the meta stream."""
        reply = await self._api(
            f"STREAM.MSG.GET.{self._meta}",
            {"last_by_subj": subject},
            "read a FIFO queue record",
            allow=(_NO_MESSAGE,),
        )
        if reply.get("error") is not None:
            return None
        message = reply["message"]
        return int(message["seq"]), base64.b64decode(message.get("data", ""))

    async def _state(self, queue: str) -> _State:
        stored = await self._last(self._state_subject(queue))
        if stored is None:
            return _State()
        try:
            raw = orjson.loads(stored[1])
            return _State(
                revision=stored[0],
                taken={int(k): list(v) for k, v in raw["m"].items()},
                gone={int(k): list(v) for k, v in raw["x"].items()},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"JetStream: unreadable state of FIFO queue {queue}") from exc

    async def _write_state(self, queue: str, state: _State) -> None:
        """Compare-and-set the queue's state; :class:`_Conflict` if it changed since."""
        headers = {"Nats-Expected-Last-Subject-Sequence": str(state.revision)}
        try:
            await self._js.publish(self._state_subject(queue), state.encode(), headers=headers)
        except JetStreamError as exc:
            if getattr(exc, "err_code", None) == _WRONG_LAST:
                raise _Conflict from None
            raise StoreError(f"JetStream: cannot write the state of {queue}: {exc}") from exc
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise StoreError(f"JetStream: cannot write the state of {queue}: {exc}") from exc

    async def _scan(self, queue: str, after: int) -> tuple[list[_Head], bool]:
        """Messages of ``queue`` after sequence ``after`` in order (one batched direct get)
        and whether the stream has more."""
        found, more = await self._batch(self._stream, self._subject(queue), after, queue)
        return [_decode(seq, data) for seq, data in found], more

    async def _batch(
        self, stream: str, subject: str, after: int, queue: str
    ) -> tuple[list[tuple[int, bytes]], bool]:
        """One batched direct get: (sequence, data) of the messages on ``subject`` after
        ``after``, in order, and whether there are more.

        A new stream answers direct gets a moment after its creation (503, no responders,
        seen on a fresh R1 stream): that is retried for up to a second.
        """
        for attempt in range(_DIRECT_TRIES):
            try:
                return await self._batch_once(stream, subject, after, queue)
            except _NoResponders:
                await asyncio.sleep(0.05 * (attempt + 1))
        raise StoreError(f"JetStream: read FIFO queue {queue}: no direct get answers")

    async def _batch_once(
        self, stream: str, subject: str, after: int, queue: str
    ) -> tuple[list[tuple[int, bytes]], bool]:
        inbox = self._nc.new_inbox()
        got: list[tuple[int, bytes]] = []
        more = False
        request = {
            "seq": after + 1,
            "next_by_subj": subject,
            "batch": SCAN_BATCH,
            "max_bytes": _SCAN_BYTES,
        }
        with _nats_errors(f"read FIFO queue {queue}"):
            sub = await self._nc.subscribe(inbox)
            try:
                await self._nc.publish(
                    f"$JS.API.DIRECT.GET.{stream}", orjson.dumps(request), reply=inbox
                )
                while True:
                    msg = await sub.next_msg(timeout=_TIMEOUT)
                    headers = msg.headers or {}
                    status = headers.get("Status")
                    if status is None:
                        got.append((int(headers["Nats-Sequence"]), msg.data))
                        continue
                    if status == "204":  # end of batch
                        more = int(headers.get("Nats-Num-Pending", "0")) > 0
                    elif status == "503" and not got:
                        raise _NoResponders
                    elif status != "404":
                        raise StoreError(f"JetStream: read FIFO queue {queue}: status {status}")
                    break
            finally:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()
        return got, more and bool(got)

    # -- send ------------------------------------------------------------------------------

    async def put(
        self,
        messages: Sequence[NewMessage],
        dedup_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Put FIFO messages; returns their ids (a duplicate's is the first message's).

        The messages of one group are published one after the other in the given
        order, the groups side by side. ``dedup_ids`` (retry ids of the caller's own
        write) are used as ``Nats-Msg-Id`` of messages without a de-duplication key.
        """
        if self._closed:
            raise StoreError("the store is closed")
        now = self._clock()
        ids = [m.message_id or str(uuid.uuid4()) for m in messages]
        keys = await asyncio.gather(
            *(self._claim(m, i, now) for m, i in zip(messages, ids, strict=True) if m.dedup_id)
        )
        keyed = iter(keys)
        chains: dict[tuple[str, str], list[tuple[int, str, bytes]]] = {}
        for index, message in enumerate(messages):
            if message.dedup_id:
                first_id, key_seq = next(keyed)
                ids[index] = first_id
                msg_id = f"fifo:{key_seq}"
            else:
                msg_id = dedup_ids[index] if dedup_ids is not None else ids[index]
            payload = _encode(ids[index], message, now)
            if len(payload) + 1024 > self._nc.max_payload:
                raise StoreError(
                    f"a queue message of {len(payload)} bytes does not fit the NATS server's "
                    f"max_payload ({self._nc.max_payload} bytes)"
                )
            chain = chains.setdefault((message.queue, message.group_id or ""), [])
            chain.append((index, msg_id, payload))

        async def publish(queue: str, chain: list[tuple[int, str, bytes]]) -> None:
            for index, msg_id, payload in chain:
                with _nats_errors(f"put a message on {queue}"):
                    ack = await self._js.publish(
                        self._subject(queue), payload, headers={"Nats-Msg-Id": msg_id}
                    )
                delay = messages[index].delay
                if delay > 0 and not ack.duplicate:
                    await self._mark_delayed(queue, ack.seq, now + delay, delay)
                given = messages[index].message_id
                if ack.duplicate and given and dedup_ids is None and not messages[index].dedup_id:
                    raise StoreError(f"message id already in use: {given}")

        await asyncio.gather(*(publish(q, chain) for (q, _), chain in chains.items()))
        self._notify({m.queue for m in messages if m.delay <= 0})
        return ids

    async def _mark_delayed(self, queue: str, seq: int, visible: float, delay: float) -> None:
        """A marker of a delayed message, which the server removes when the delay ends:
        :meth:`counts` and :meth:`next_visible` read the markers, not the messages."""
        with _nats_errors(f"put a delayed message on {queue}"):
            await self._js.publish(
                f"{self._delayed_subject(queue)}.{seq}",
                orjson.dumps({"v": visible}),
                headers={"Nats-TTL": f"{math.ceil(delay) + 1}s"},
            )

    async def _claim(self, message: NewMessage, message_id: str, now: float) -> tuple[str, int]:
        """The de-duplication key of ``message``: (first message id, key sequence),
        created now with ``message_id`` unless the queue saw the key within the TTL."""
        assert message.dedup_id is not None
        subject = self._key_subject(message.queue, message.dedup_id)
        data = orjson.dumps({"id": message_id, "t": now})
        for _ in range(_TRIES):
            try:
                ack = await self._js.publish(
                    subject,
                    data,
                    headers={
                        "Nats-Expected-Last-Subject-Sequence": "0",
                        "Nats-TTL": f"{self._dedup_ttl}s",
                    },
                )
                return message_id, ack.seq
            except JetStreamError as exc:
                if getattr(exc, "err_code", None) != _WRONG_LAST:
                    raise StoreError(
                        f"JetStream: cannot de-duplicate on {message.queue}: {exc}"
                    ) from exc
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                raise StoreError(
                    f"JetStream: cannot de-duplicate on {message.queue}: {exc}"
                ) from exc
            seen = await self._last(subject)
            if seen is not None:  # else it expired between the two: create it again
                try:
                    return str(orjson.loads(seen[1])["id"]), seen[0]
                except (ValueError, KeyError, TypeError) as exc:
                    raise StoreError(f"JetStream: unreadable de-duplication key {subject}") from exc
        raise StoreError(f"JetStream: de-duplication key {subject} keeps changing")

    # -- receive ---------------------------------------------------------------------------

    async def receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        *,
        redrive: tuple[str, int] | None = None,
        move: Callable[[Sequence[NewMessage], Sequence[str]], Awaitable[list[str]]] | None = None,
    ) -> list[QueueMessage]:
        """Take up to ``max_messages`` messages: each group's in order, none of a group
        with a message hidden (in flight or delayed) at ``now``. Messages received more
        than the redrive count move to its queue (``move`` puts a non-FIFO one)."""
        if redrive is not None and redrive[1] < 1:
            raise ValueError(f"max_receive_count must be at least 1, not {redrive[1]}")
        if max_messages < 1:
            return []
        async with self._lock(queue):  # a receive conflicts with none of this process
            for attempt in range(_TRIES):
                try:
                    return await self._receive_once(
                        queue, max_messages, visibility_timeout, now, redrive=redrive, move=move
                    )
                except _Conflict:
                    await _contended(attempt)
        raise StoreError(f"JetStream: FIFO queue {queue} is too busy: receive gave up")

    async def _receive_once(
        self,
        queue: str,
        max_messages: int,
        timeout: float,
        now: float,
        *,
        redrive: tuple[str, int] | None,
        move: Callable[[Sequence[NewMessage], Sequence[str]], Awaitable[list[str]]] | None,
    ) -> list[QueueMessage]:
        state = await self._state(queue)
        stopped = state.busy(now)
        taken: list[_Head] = []
        moved: list[_Head] = []
        seen: set[int] = set()
        lost: list[int] = []
        after, complete = 0, False
        while not complete:
            batch, more = await self._scan(queue, after)
            full = False
            for head in batch:
                after = head.seq
                seen.add(head.seq)
                if head.seq in state.gone:
                    # deleted, not yet gone from the stream: its group waits for that
                    stopped.add(head.group)
                    if state.gone[head.seq][0] < now - _REDELETE:
                        lost.append(head.seq)  # its deleter died before deleting it
                    continue
                if head.group in stopped:
                    continue
                if head.visible > now:
                    stopped.add(head.group)  # delayed: the rest of its group waits
                    continue
                entry = state.taken.get(head.seq)
                if redrive is not None and entry is not None and entry[0] >= redrive[1]:
                    moved.append(head)
                    continue
                taken.append(head)
                if len(taken) >= max_messages:
                    full = True
                    break
            if full:
                break
            complete = not more
        changed = bool(taken or moved) | self._forget(state, seen, after, complete, now)
        if not changed:
            await self._delete_messages(queue, lost)
            return []
        received: list[QueueMessage] = []
        for head in taken:
            count, first = state.taken.get(head.seq, [0, now])[:2]
            state.taken[head.seq] = [count + 1, first, now + timeout, head.group]
            received.append(
                QueueMessage(
                    message_id=head.message_id,
                    body=head.body,
                    attributes=head.attributes,
                    receipt=_receipt(head.seq, count + 1),
                    sent=head.sent,
                    receive_count=count + 1,
                    first_receive=first,
                    group_id=head.group or None,
                    dedup_id=head.dedup,
                )
            )
        if moved:
            assert redrive is not None
            await self._move(queue, moved, redrive[0], move)
            for head in moved:
                state.taken.pop(head.seq, None)
                state.gone[head.seq] = [now, head.group]
        await self._write_state(queue, state)
        await self._delete_messages(queue, [h.seq for h in moved] + lost)
        if moved:
            self._notify((redrive[0],) if redrive else ())
        if timeout <= 0 and taken:
            self._notify((queue,))
        return received

    @staticmethod
    def _forget(state: _State, seen: set[int], after: int, complete: bool, now: float) -> bool:
        """Drop the records of messages the scan proved gone; whether any was dropped.

        A deleted sequence is kept a while (:data:`_GONE_AFTER`) even when the scan did
        not see it: a direct get on an R3 stream may come from a replica a little behind.
        """
        horizon = float("inf") if complete else after
        stale = [s for s in state.taken if s <= horizon and s not in seen]
        stale = [s for s in stale if state.taken[s][2] < now - _GONE_AFTER]
        old = [s for s, t in state.gone.items() if s <= horizon and s not in seen]
        old = [s for s in old if state.gone[s][0] < now - _GONE_AFTER]
        for s in stale:
            del state.taken[s]
        for s in old:
            del state.gone[s]
        return bool(stale or old)

    async def _move(
        self,
        queue: str,
        heads: list[_Head],
        dlq: str,
        move: Callable[[Sequence[NewMessage], Sequence[str]], Awaitable[list[str]]] | None,
    ) -> None:
        """Put ``heads`` on ``dlq`` with new ids, their sent time and group kept; the
        ``Nats-Msg-Id`` comes from the source sequence, so a retried move is dropped."""
        retry_ids = [f"redrive:{_hash(queue)}:{h.seq}" for h in heads]
        if not is_fifo(dlq):
            if move is None:
                raise StoreError(f"cannot move FIFO messages to the standard queue {dlq}")
            moves = [
                NewMessage(dlq, h.body, h.attributes, message_id=str(uuid.uuid4())) for h in heads
            ]
            await move(moves, retry_ids)
            return
        for head, retry_id in zip(heads, retry_ids, strict=True):
            message = NewMessage(
                dlq, head.body, head.attributes, group_id=head.group or None, dedup_id=head.dedup
            )
            payload = _encode(str(uuid.uuid4()), message, head.sent)
            with _nats_errors(f"move messages to {dlq}"):
                await self._js.publish(
                    self._subject(dlq), payload, headers={"Nats-Msg-Id": retry_id}
                )

    async def _delete_messages(self, queue: str, seqs: Sequence[int]) -> None:
        await asyncio.gather(
            *(
                self._api(
                    f"STREAM.MSG.DELETE.{self._stream}",
                    {"seq": seq, "no_erase": True},
                    f"delete a message of {queue}",
                    allow=(_NO_MESSAGE,),
                )
                for seq in seqs
            )
        )

    # -- receipts --------------------------------------------------------------------------

    async def _settle(
        self, queue: str, receipt: str, change: Callable[[_State, int], None], *, deletes: bool
    ) -> bool:
        """Apply ``change`` to the state if ``receipt`` is the message's latest receive.

        The settles of one queue waiting in this process are applied together, in one
        compare-and-set write (a group commit), by whichever of them gets the queue's
        lock first: concurrent deletes of one process never conflict with each other.
        """
        parsed = _parse_receipt(receipt)
        if parsed is None:
            return False
        op = _Op(parsed[0], parsed[1], change, deletes, asyncio.get_running_loop().create_future())
        self._ops.setdefault(queue, []).append(op)
        async with self._lock(queue):
            if not op.done.done():
                ops = self._ops.pop(queue, [])
                try:
                    await self._apply(queue, ops)
                except BaseException as exc:
                    failure = exc if isinstance(exc, Exception) else StoreError("cancelled")
                    for other in ops:
                        if other is not op and not other.done.done():
                            other.done.set_exception(failure)
                    raise
        return await op.done

    async def _apply(self, queue: str, ops: list[_Op]) -> None:
        for attempt in range(_TRIES):
            state = await self._state(queue)
            results: list[bool] = []
            for op in ops:
                entry = state.taken.get(op.seq)
                current = entry is not None and entry[0] == op.count
                if current:
                    op.change(state, op.seq)
                results.append(current)
            if any(results):
                try:
                    await self._write_state(queue, state)
                except _Conflict:
                    await _contended(attempt)
                    continue
            gone = [op.seq for op, ok in zip(ops, results, strict=True) if ok and op.deletes]
            await self._delete_messages(queue, gone)
            for op, ok in zip(ops, results, strict=True):
                op.done.set_result(ok)
            return
        raise StoreError(f"JetStream: FIFO queue {queue} is too busy: settle gave up")

    def _lock(self, queue: str) -> asyncio.Lock:
        lock = self._locks.get(queue)
        if lock is None:
            lock = self._locks[queue] = asyncio.Lock()
        return lock

    async def delete(self, queue: str, receipt: str) -> bool:
        """Delete by receipt: the state records the delete first (no receive takes the
        message after that, its group waits), then the message goes from the stream."""
        now = self._clock()

        def gone(state: _State, seq: int) -> None:
            state.gone[seq] = [now, state.taken.pop(seq)[3]]

        return await self._settle(queue, receipt, gone, deletes=True)

    async def change_visibility(self, queue: str, receipt: str, timeout: float, now: float) -> bool:
        """Hide a received message (and so its group) until ``now + timeout``."""

        def hide(state: _State, seq: int) -> None:
            state.taken[seq][2] = now + timeout

        changed = await self._settle(queue, receipt, hide, deletes=False)
        if changed and timeout <= 0:
            self._notify((queue,))
        return changed

    # -- purge, counts ---------------------------------------------------------------------

    async def purge(self, queue: str) -> None:
        """Delete the queue's messages, state and de-duplication keys."""
        for stream, subject in (
            (self._stream, self._subject(queue)),
            (self._meta, self._state_subject(queue)),
            (self._meta, f"{self._prefix}.qfd.{_hash(queue)}.*"),
            (self._meta, self._delayed_subject(queue) + ".*"),
        ):
            await self._api(f"STREAM.PURGE.{stream}", {"filter": subject}, f"purge {queue}")

    async def _total(self, queue: str) -> int:
        subject = self._subject(queue)
        info = await self._api(
            f"STREAM.INFO.{self._stream}", {"subjects_filter": subject}, f"count {queue}"
        )
        return int((info["state"].get("subjects") or {}).get(subject, 0))

    async def _delayed(self, queue: str, now: float) -> list[float]:
        """When the messages still delayed at ``now`` become visible (from their markers)."""
        times: list[float] = []
        after, more = 0, True
        while more:
            batch, more = await self._batch(
                self._meta, self._delayed_subject(queue) + ".*", after, queue
            )
            for seq, data in batch:
                after = seq
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    times.append(float(orjson.loads(data)["v"]))
        return [t for t in times if t > now]

    async def counts(self, queue: str, now: float) -> tuple[int, int, int]:
        """``(visible, in flight, delayed)``."""
        total, state, delayed = await asyncio.gather(
            self._total(queue), self._state(queue), self._delayed(queue, now)
        )
        in_flight = sum(1 for e in state.taken.values() if e[2] > now)
        return max(total - in_flight - len(delayed), 0), in_flight, len(delayed)

    async def next_visible(self, queue: str, now: float) -> float | None:
        """When the next hidden or delayed message becomes visible, or None."""
        state, delayed = await asyncio.gather(self._state(queue), self._delayed(queue, now))
        times = [float(e[2]) for e in state.taken.values() if e[2] > now]
        times += delayed
        return min(times) if times else None

    async def oldest(self, queue: str) -> float | None:
        """The sent time of the queue's first message (one direct get), None if empty."""
        reply = await self._api(
            f"STREAM.MSG.GET.{self._stream}",
            {"next_by_subj": self._subject(queue), "seq": 0},
            f"read FIFO queue {queue}",
            allow=(_NO_MESSAGE,),
        )
        if reply.get("error") is not None:
            return None
        message = reply["message"]
        return _decode(int(message["seq"]), base64.b64decode(message.get("data", ""))).sent
