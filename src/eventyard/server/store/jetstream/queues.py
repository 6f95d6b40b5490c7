"""SQS-style queues on JetStream: one work-queue stream, one durable consumer per queue.

The queue contract of :class:`eventyard.server.store.protocol.Store` (visibility,
receipts, redrive, delays, counts) built from JetStream's own mechanisms, so that any
number of eventyard processes share a queue without talking to each other:

* **messages**: the stream ``<prefix>_queues`` (work-queue retention: a message exists
  until it is acked), one subject per queue ``<prefix>.q.<queue>``. A message's payload
  is a JSON header line (message id, SQS attributes, sent time) and the body.
* **receive**: a durable pull consumer per queue, shared by all processes. A fetch
  delivers each message to one fetcher only; the consumer's ``num_delivered`` is the
  receive count; ``AckWait`` (30 s, SQS's default visibility) hides a fetched message,
  and ``nak`` with a delay sets any other visibility (the server keeps the message
  pending and redelivers it when the delay ends; a delay of 0 redelivers at once).
* **receipts**: the delivery's ack reply subject (``$JS.ACK.<stream>.<consumer>.<dc>.
  <sseq>...``), which any process can publish to: ``+ACK`` deletes (work-queue
  retention removes the message), ``-NAK {"delay"}`` changes the visibility. The server
  accepts an ack or nak from an *older* delivery of a message too, so the latest receive
  of each message is recorded in a small memory stream ``<prefix>_qreceipts`` (the
  latest record per message: its delivery count and first receive time); a receipt
  whose delivery count is not the recorded one is stale and refused. The record also
  carries ``ApproximateFirstReceiveTimestamp``, which JetStream does not keep.
* **delays** (``DelaySeconds``): a message sent with a delay is published as a
  scheduled message (nats-server 2.12+ message scheduling, ``Nats-Schedule: @at``) on
  ``<prefix>.qd.<queue>.<id>``; at its time the server publishes it to the queue's
  subject and removes the schedule. Until then no consumer sees it, so it is never
  counted as a receive, and a second consumer (``delayed_<hash>``, memory,
  never fetched) counts the delayed messages of the queue as its ``num_pending``.
* **redrive**: at receive time, a message delivered more than ``max_receive_count``
  times is published to the dead-letter queue (``Nats-Msg-Id`` derived from the stream
  sequence, so a retried move never duplicates) and then acked.
* **de-duplication**: every put carries ``Nats-Msg-Id`` (the caller's dedup id, else the
  message id), so a put retried within the stream's duplicate window never duplicates.

Visibility is judged by the *server's* clock: ``now`` arguments are taken as the time
of the call (the first receive time reported, the base of :meth:`queue_next_visible`),
never to move time forward. The differences from the SQLite store, and why, are in
``docs/architecture.md`` ("The JetStream store", "Queues").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import orjson
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.codec import Names
from eventyard.server.store.jetstream.connection import status_of
from eventyard.server.store.jetstream.queuewire import (
    QueueNames,
    Receipt,
    decode_message,
    encode_message,
    make_receipt,
    nak,
    parse_receipt,
    parse_record,
    record,
    schedule_at,
)
from eventyard.server.store.protocol import NewMessage, QueueMessage

__all__ = ["ACK_WAIT", "DUPLICATE_WINDOW", "MAX_IN_FLIGHT", "RECHECK", "JetStreamQueues"]

_log = structlog.get_logger("eventyard.server.store.jetstream")

ACK_WAIT = 30.0
"""The consumers' ``AckWait``: a receive with this visibility needs no ``nak``; a process
that dies between a fetch and its ``nak`` leaves the message hidden this long."""

MAX_IN_FLIGHT = 120_000
"""The consumers' ``MaxAckPending``: SQS's limit of in-flight messages per queue."""

DUPLICATE_WINDOW = 600.0
"""Seconds within which a put with a ``Nats-Msg-Id`` already seen is dropped."""

RECHECK = 1.0
"""When hidden messages exist but this process set none of their deadlines,
:meth:`JetStreamQueues.queue_next_visible` says to look again this much later."""

_TIMEOUT = 5.0  # seconds for one JetStream API request
_CATCH_UP = 1.0  # seconds a pull waits for a stored message its consumer has not counted yet
_ACK_TIMEOUT = 2.0  # an ack or nak of a message the consumer never delivered gets no reply
_RECEIPTS_BYTES = 64 * 1024 * 1024  # the receipt records' memory bound (oldest go first)
_DEADLINES_PER_QUEUE = 1024
_IN_USE = 10058  # stream name already in use with a different configuration
_NO_MESSAGE = 10037
_NO_CONSUMER = 10014
_NO_STREAM = 10059


@contextlib.contextmanager
def _nats_errors(doing: str) -> Iterator[None]:
    """Translate the NATS client's exceptions into :class:`StoreError`."""
    try:
        yield
    except StoreError:
        raise
    except (nats.errors.Error, JetStreamError, TimeoutError, OSError) as exc:
        raise StoreError(f"JetStream: cannot {doing}: {exc or type(exc).__name__}") from exc


@dataclass(slots=True, frozen=True)
class _Fetched:
    """A message a fetch delivered, decoded."""

    msg: Msg
    seq: int
    deliveries: int
    message_id: str
    attributes: dict[str, dict[str, str]]
    sent: float
    body: str


class JetStreamQueues:
    """The queue part of the JetStream store (see the module docstring).

    Args:
        nc, js: a connected client and its JetStream context, owned by the caller.
        prefix: the store's prefix; its streams are ``<prefix>_queues`` and
            ``<prefix>_qreceipts``.
        replicas: the streams' replicas (1, 3 or 5).
        clock: the store's clock, for sent times and delays.
        notify: called with the queues that have new visible messages after every
            durable write that made them (a hint for long polls, in any process).
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
    ) -> None:
        Names(prefix)  # refuses a prefix that cannot name streams and subjects
        self._nc = nc
        self._js = js
        self._prefix = prefix
        self._replicas = replicas
        self._clock = clock
        self._notify = notify
        self._stream = f"{prefix}_queues"
        self._receipts_stream = f"{prefix}_qreceipts"
        self._queues: dict[str, QueueNames] = {}
        self._consumers: set[str] = set()
        self._deadlines: dict[str, list[float]] = {}
        self._hidden: dict[str, bool] = {}  # queues whose last next_visible saw hidden ones
        self._closed = False

    # -- set-up ----------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the streams, or check that existing ones fit; idempotent and safe to
        run from several processes at once (an identical create is a no-op)."""
        self._check_open()
        await self._ensure_stream(
            {
                "name": self._stream,
                "description": "eventyard: SQS-style queue messages, one subject per queue",
                "subjects": [f"{self._prefix}.q.>", f"{self._prefix}.qd.>"],
                "retention": "workqueue",
                "storage": "file",
                "num_replicas": self._replicas,
                "duplicate_window": int(DUPLICATE_WINDOW * 1e9),
                "allow_msg_schedules": True,
            }
        )
        await self._ensure_receipts()

    async def _ensure_receipts(self) -> None:
        """The receipt records' stream: memory, so a single server forgets it (stream
        and records) when it restarts; a read that finds it gone creates it again."""
        await self._ensure_stream(
            {
                "name": self._receipts_stream,
                "description": "eventyard: the latest receive of each queue message",
                "subjects": [f"{self._prefix}.qr.>"],
                "retention": "limits",
                "storage": "memory",
                "num_replicas": self._replicas,
                "max_msgs_per_subject": 1,
                "max_bytes": _RECEIPTS_BYTES,
                "discard": "old",
            }
        )

    async def _ensure_stream(self, config: dict[str, Any]) -> None:
        name = config["name"]
        reply = await self._api(
            f"STREAM.CREATE.{name}", config, f"create stream {name}", allow=(_IN_USE,)
        )
        if reply.get("error") is None:
            return
        info = await self._api(f"STREAM.INFO.{name}", {}, f"read stream {name}")
        found = info["config"]
        for key in ("retention", "num_replicas", "subjects", "storage"):
            if found.get(key) != config[key]:
                raise StoreError(
                    f"JetStream stream {name} exists with {key} {found.get(key)!r}, but this "
                    f"store wants {config[key]!r}: every process must use the same --replicas"
                )
        if config.get("allow_msg_schedules") and not found.get("allow_msg_schedules"):
            raise StoreError(f"JetStream stream {name} does not allow message schedules")

    async def close(self) -> None:
        """Forget the consumers this process knew; the client is the caller's."""
        self._closed = True
        self._consumers.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    # -- plumbing --------------------------------------------------------------------------

    async def _api(
        self, subject: str, request: dict[str, Any], doing: str, *, allow: Collection[int] = ()
    ) -> dict[str, Any]:
        """One JetStream API request; an error reply raises :class:`StoreError` unless
        ``allow`` names its code (the caller then reads ``reply["error"]``)."""
        self._check_open()
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

    def _queue(self, name: str) -> QueueNames:
        queue = self._queues.get(name)
        if queue is None:
            if len(self._queues) > 10_000:
                self._queues.clear()
            queue = self._queues[name] = QueueNames.of(self._prefix, name)
        return queue

    async def _consumer(self, queue: QueueNames) -> None:
        """Create the queue's consumer (an identical create is a no-op on the server)."""
        if queue.consumer in self._consumers:
            return
        config = {
            "durable_name": queue.consumer,
            "description": f"eventyard queue {queue.name[:200]}",
            "ack_policy": "explicit",
            "ack_wait": int(ACK_WAIT * 1e9),
            "max_deliver": -1,
            "max_ack_pending": MAX_IN_FLIGHT,
            "filter_subject": queue.subject,
            "deliver_policy": "all",
            "replay_policy": "instant",
        }
        await self._api(
            f"CONSUMER.CREATE.{self._stream}.{queue.consumer}",
            {"stream_name": self._stream, "config": config},
            f"create the consumer of queue {queue.name}",
        )
        self._consumers.add(queue.consumer)

    async def _delayed(self, queue: QueueNames) -> int:
        """How many delayed messages the queue has: the ``num_pending`` of its counter, a
        consumer that never fetches (created on first use: memory, gone after an idle
        hour). Best effort: while the counter cannot be read or made (a node of an R3
        stream is down and it does not exist yet), 0, with a warning."""
        subject = f"CONSUMER.INFO.{self._stream}.{queue.counter}"
        doing = f"count delayed messages of {queue.name}"
        try:
            info = await self._api(subject, {}, doing, allow=(_NO_CONSUMER,))
            if info.get("error") is not None:
                config = {
                    "durable_name": queue.counter,
                    "ack_policy": "explicit",
                    "filter_subject": queue.delayed,
                    "mem_storage": True,  # replicas: the stream's (a work queue wants the same)
                    "inactive_threshold": int(3600 * 1e9),
                }
                info = await self._api(
                    f"CONSUMER.CREATE.{self._stream}.{queue.counter}",
                    {"stream_name": self._stream, "config": config},
                    doing,
                )
        except StoreError as exc:
            self._check_open()
            _log.warning("delayed messages not counted", queue=queue.name, error=str(exc))
            return 0
        return int(info.get("num_pending", 0))

    async def _take(self, queue: QueueNames, batch: int) -> list[Msg]:
        """Up to ``batch`` messages the consumer delivers now, making the consumer again
        if another process purged the queue.

        A ``no_wait`` fetch is answered from the consumer's count of waiting messages,
        which the server brings up to date asynchronously after it has acknowledged a
        publish: right after a send (most often to a consumer just made) it can answer
        "no messages" while one is stored. So an empty answer is checked against the
        stream itself (:meth:`_undelivered`), and when a message waits it is pulled with
        a request that waits for it (the server hands it out once its count catches up).
        """
        got = await self._fetch(queue, batch)
        if got is None:
            self._consumers.discard(queue.consumer)
            await self._consumer(queue)
            got = await self._fetch(queue, batch) or []
        if got or not await self._undelivered(queue):
            return got
        got = await self._fetch(queue, 1, wait=_CATCH_UP) or []
        if got and batch > 1:
            got += await self._fetch(queue, batch - 1) or []
        return got

    async def _undelivered(self, queue: QueueNames) -> bool:
        """Whether the stream holds a message of the queue that its consumer has not
        delivered yet: the subject's last message lies beyond the consumer's delivered
        sequence (a work queue keeps no acknowledged message)."""
        last = await self._api(
            f"STREAM.MSG.GET.{self._stream}",
            {"last_by_subj": queue.subject},
            f"read queue {queue.name}",
            allow=(_NO_MESSAGE,),
        )
        if last.get("error") is not None:
            return False
        info = await self._api(
            f"CONSUMER.INFO.{self._stream}.{queue.consumer}",
            {},
            f"read the consumer of queue {queue.name}",
            allow=(_NO_CONSUMER,),
        )
        if info.get("error") is not None:
            return False
        delivered = int(info.get("delivered", {}).get("stream_seq", 0))
        return int(last["message"]["seq"]) > delivered

    async def _fetch(self, queue: QueueNames, batch: int, wait: float = 0) -> list[Msg] | None:
        """Up to ``batch`` messages the consumer delivers now (``no_wait``), or within
        ``wait`` seconds (until ``batch`` came); None when the consumer does not exist."""
        inbox = self._nc.new_inbox()
        got: list[Msg] = []
        request: dict[str, Any] = {"batch": batch}
        if wait > 0:
            request["expires"] = int(wait * 1e9)
        else:
            request["no_wait"] = True
        with _nats_errors(f"receive from queue {queue.name}"):
            sub = await self._nc.subscribe(inbox)
            try:
                await self._nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{queue.consumer}",
                    orjson.dumps(request),
                    reply=inbox,
                )
                while len(got) < batch:
                    msg = await sub.next_msg(timeout=_TIMEOUT)
                    status = status_of(msg)
                    if status is None:
                        got.append(msg)
                    elif status in ("404", "408", "409"):
                        break  # no (more) messages, or the request ended
                    elif status == "503" and not got:
                        return None  # no consumer (another process purged the queue)
                    else:
                        raise StoreError(f"JetStream: fetch from {queue.name}: status {status}")
            finally:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()
        return got

    async def _reply(self, queue: QueueNames, subject: str, seq: int, payload: bytes) -> bool:
        """Ack or nak one delivery of message ``seq`` and wait for the server's answer.

        False when the consumer never delivered that message (the server ignores such an
        ack without an answer); no answer for a delivered one means the server is in
        trouble (a consumer leader being elected): :class:`StoreError`.
        """
        self._check_open()
        try:
            await self._nc.request(subject, payload, timeout=_ACK_TIMEOUT)
        except nats.errors.TimeoutError:
            info = await self._api(
                f"CONSUMER.INFO.{self._stream}.{queue.consumer}", {}, f"settle on {queue.name}"
            )
            if seq <= int(info.get("delivered", {}).get("stream_seq", 0)):
                raise StoreError(
                    f"JetStream: no answer to an ack or nak on queue {queue.name}"
                ) from None
            return False
        except (nats.errors.Error, OSError) as exc:
            raise StoreError(f"JetStream: cannot settle a queue message: {exc}") from exc
        return True

    async def _get(
        self, seq: int | None = None, last_by_subject: str | None = None
    ) -> tuple[str, bytes] | None:
        """The subject and data of one stored message (a queue message by sequence, or
        the receipt record of a subject), None if there is none."""
        request: dict[str, Any]
        if last_by_subject is not None:
            stream, request = self._receipts_stream, {"last_by_subj": last_by_subject}
        else:
            stream, request = self._stream, {"seq": seq}
        reply = await self._api(
            f"STREAM.MSG.GET.{stream}",
            request,
            "read a queue message",
            allow=(_NO_MESSAGE, _NO_STREAM) if last_by_subject else (_NO_MESSAGE,),
        )
        error = reply.get("error")
        if error is not None:
            if error.get("err_code") == _NO_STREAM:
                await self._ensure_receipts()
            return None
        message: dict[str, Any] = reply["message"]
        return str(message["subject"]), base64.b64decode(message.get("data", ""))

    async def _record_of(self, queue: QueueNames, seq: int) -> tuple[int, float] | None:
        """The latest receive record of a message: (delivery count, first receive time);
        None when there is none or it cannot be read now (the records are best effort:
        a failover of their stream must not stop receives and deletes)."""
        try:
            stored = await self._get(last_by_subject=f"{queue.receipts}{seq}")
        except StoreError as exc:
            self._check_open()
            _log.warning("queue receive record not read", queue=queue.name, error=str(exc))
            return None
        return None if stored is None else parse_record(*stored)

    # -- put -------------------------------------------------------------------------------

    async def put(
        self, messages: Sequence[NewMessage], dedup_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Put messages on their queues; returns their message ids.

        Each publish carries ``Nats-Msg-Id`` (``dedup_ids[i]``, else the message id), so a
        put retried within :data:`DUPLICATE_WINDOW` never duplicates. A delayed message is
        scheduled (``Nats-Schedule``) and appears on its queue when the delay ends. The
        publishes of one call are concurrent, not atomic: a failure raises
        :class:`StoreError` after some may have been stored (retry with the same dedup
        ids). A message id given by the caller that was already put within the window
        raises :class:`StoreError` (later, the store cannot tell).
        """
        self._check_open()
        if dedup_ids is not None and len(dedup_ids) != len(messages):
            raise ValueError("dedup_ids must have one id per message")
        now = self._clock()
        ids = [m.message_id or str(uuid.uuid4()) for m in messages]
        items: list[tuple[str, bytes, dict[str, str]]] = []
        visible: set[str] = set()
        deadlines: list[tuple[str, float]] = []
        for i, (message, message_id) in enumerate(zip(messages, ids, strict=True)):
            queue = self._queue(message.queue)
            dedup = dedup_ids[i] if dedup_ids is not None else message_id
            headers = {"Nats-Msg-Id": dedup}
            subject = queue.subject
            if message.delay > 0:
                subject = queue.schedule_subject(dedup)
                headers["Nats-Schedule"] = schedule_at(now + message.delay)
                headers["Nats-Schedule-Target"] = queue.subject
                deadlines.append((message.queue, now + message.delay))
            else:
                visible.add(message.queue)
            payload = encode_message(message_id, message.attributes, message.body, now)
            if len(payload) + 1024 > self._nc.max_payload:
                raise StoreError(
                    f"a queue message of {len(payload)} bytes does not fit the NATS server's "
                    f"max_payload ({self._nc.max_payload} bytes); SQS messages reach 1 MiB: "
                    "set max_payload: 2MB in the server configuration"
                )
            items.append((subject, payload, headers))
        with _nats_errors("put queue messages"):
            acks = await asyncio.gather(
                *(self._js.publish(subject, data, headers=h) for subject, data, h in items)
            )
        for queue_name, deadline in deadlines:
            self._remember(queue_name, deadline)
        if visible:
            self._notify(visible)
        if dedup_ids is None:
            given = [
                m.message_id
                for m, ack in zip(messages, acks, strict=True)
                if ack.duplicate and m.message_id
            ]
            if given:
                raise StoreError(f"message id already in use: {given[0]}")
        return ids

    async def queue_send(self, messages: Sequence[NewMessage]) -> list[str]:
        """Put messages on their queues; returns their message ids."""
        return await self.put(messages)

    # -- receive ---------------------------------------------------------------------------

    async def queue_receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout: float,
        now: float,
        redrive: tuple[str, int] | None = None,
    ) -> list[QueueMessage]:
        """Take up to ``max_messages`` visible messages, hiding them for the timeout.

        See the protocol; ``now`` is the first receive time reported, the visibility
        timeout runs on the server's clock from this call.
        """
        if redrive is not None and redrive[1] < 1:
            raise ValueError(f"max_receive_count must be at least 1, not {redrive[1]}")
        self._check_open()
        if max_messages < 1:
            return []
        names = self._queue(queue)
        await self._consumer(names)
        taken: list[_Fetched] = []
        while len(taken) < max_messages:
            batch = await self._take(names, max_messages - len(taken))
            fetched = [self._decoded(m) for m in batch]
            if not fetched:
                break
            limit = redrive[1] if redrive is not None else None
            dead = [f for f in fetched if limit is not None and f.deliveries > limit]
            taken += [f for f in fetched if limit is None or f.deliveries <= limit]
            if not dead:
                break
            assert redrive is not None
            await self._redrive(names, dead, redrive[0])
        if not taken:
            return []
        firsts = await self._first_receives(names, taken, now)
        received = [
            QueueMessage(
                message_id=f.message_id,
                body=f.body,
                attributes=f.attributes,
                receipt=make_receipt(f.msg.reply),
                sent=f.sent,
                receive_count=f.deliveries,
                first_receive=first,
            )
            for f, first in zip(taken, firsts, strict=True)
        ]
        await self._hide(names, taken, firsts, visibility_timeout, now)
        return received

    def _decoded(self, msg: Msg) -> _Fetched:
        meta = msg.metadata
        message_id, attributes, sent, body = decode_message(msg.data)
        return _Fetched(
            msg=msg,
            seq=meta.sequence.stream,
            deliveries=meta.num_delivered,
            message_id=message_id,
            attributes=attributes,
            sent=sent,
            body=body,
        )

    async def _redrive(self, queue: QueueNames, dead: list[_Fetched], dlq: str) -> None:
        """Move ``dead`` to ``dlq`` (new ids, sent time kept), then ack them."""
        dlq_names = self._queue(dlq)
        with _nats_errors(f"move messages to {dlq}"):
            await asyncio.gather(
                *(
                    self._js.publish(
                        dlq_names.subject,
                        encode_message(str(uuid.uuid4()), f.attributes, f.body, f.sent),
                        headers={"Nats-Msg-Id": f"redrive:{queue.consumer}:{f.seq}"},
                    )
                    for f in dead
                )
            )
        self._notify((dlq,))
        await asyncio.gather(*(self._reply(queue, f.msg.reply, f.seq, b"+ACK") for f in dead))

    async def _first_receives(
        self, queue: QueueNames, taken: list[_Fetched], now: float
    ) -> list[float]:
        """The first receive time of each message: ``now`` for a first delivery, else
        from its receipt record (``now`` if the record is gone)."""
        again = [f for f in taken if f.deliveries > 1]
        records = await asyncio.gather(*(self._record_of(queue, f.seq) for f in again))
        known = {f.seq: r[1] for f, r in zip(again, records, strict=True) if r}
        return [known.get(f.seq, now) if f.deliveries > 1 else now for f in taken]

    async def _hide(
        self,
        queue: QueueNames,
        taken: list[_Fetched],
        firsts: list[float],
        timeout: float,
        now: float,
    ) -> None:
        """Set each message's visibility (no ``nak`` for :data:`ACK_WAIT`) and record
        its receive. A record that cannot be written is skipped: it only sharpens the
        stale-receipt check and the first receive time, which then fall back."""
        records = [
            self._js.publish(f"{queue.receipts}{f.seq}", record(f.deliveries, first))
            for f, first in zip(taken, firsts, strict=True)
        ]
        naks = [
            self._reply(queue, f.msg.reply, f.seq, nak(timeout))
            for f in taken
            if timeout != ACK_WAIT
        ]
        outcomes = await asyncio.gather(*records, *naks, return_exceptions=True)
        for outcome in outcomes[len(records) :]:
            if isinstance(outcome, BaseException):
                raise outcome  # a StoreError from _reply
        lost = [o for o in outcomes[: len(records)] if isinstance(o, BaseException)]
        if lost:
            _log.warning("queue receive records not written", queue=queue.name, error=str(lost[0]))
        if timeout == 0:
            self._notify((queue.name,))
        else:
            self._remember(queue.name, now + timeout)

    # -- receipts --------------------------------------------------------------------------

    async def _current(self, queue: QueueNames, receipt: str) -> Receipt | None:
        """The receipt if it names the latest receive of a message still on ``queue``."""
        parsed = parse_receipt(receipt, self._stream, queue.consumer)
        if parsed is None:
            return None
        message, record = await asyncio.gather(
            self._get(seq=parsed.seq), self._record_of(queue, parsed.seq)
        )
        if message is None or message[0] != queue.subject:
            return None
        if record is not None and record[0] > parsed.deliveries:
            return None  # received again since: stale (a record behind was not written)
        return parsed

    async def queue_delete(self, queue: str, receipt: str) -> bool:
        """Delete by receipt handle; False if the receipt is unknown or stale."""
        self._check_open()
        names = self._queue(queue)
        parsed = await self._current(names, receipt)
        if parsed is None:
            return False
        return await self._reply(names, parsed.subject, parsed.seq, b"+ACK")

    async def queue_change_visibility(
        self, queue: str, receipt: str, timeout: float, now: float
    ) -> bool:
        """Make a received message visible again ``timeout`` seconds from now."""
        self._check_open()
        names = self._queue(queue)
        parsed = await self._current(names, receipt)
        if parsed is None or not await self._reply(names, parsed.subject, parsed.seq, nak(timeout)):
            return False
        if timeout <= 0:
            self._notify((queue,))
        else:
            self._remember(queue, now + timeout)
        return True

    # -- purge, counts ---------------------------------------------------------------------

    async def queue_purge(self, queue: str) -> None:
        """Delete every message of the queue, delayed ones and receive records included,
        and its consumers (the next use creates them again), so that a deleted queue
        (DeleteQueue purges) leaves nothing on the server."""
        self._check_open()
        names = self._queue(queue)
        for stream, subject in (
            (self._stream, names.subject),
            (self._stream, names.delayed),
            (self._receipts_stream, names.receipts + "*"),
        ):
            await self._api(
                f"STREAM.PURGE.{stream}",
                {"filter": subject},
                f"purge queue {queue}",
                allow=(_NO_STREAM,) if stream == self._receipts_stream else (),
            )
        for consumer in (names.consumer, names.counter):
            await self._api(
                f"CONSUMER.DELETE.{self._stream}.{consumer}",
                {},
                f"purge queue {queue}",
                allow=(_NO_CONSUMER,),
            )
        self._consumers.discard(names.consumer)
        self._deadlines.pop(queue, None)

    async def queue_counts(self, queue: str, now: float) -> tuple[int, int, int]:
        """``(visible, in flight, delayed)``, from the consumers' info.

        Visible: not yet delivered; in flight: delivered and not deleted (a message
        whose visibility ended counts here until it is received again); delayed: still
        scheduled.
        """
        self._check_open()
        names = self._queue(queue)
        await self._consumer(names)
        subject = f"CONSUMER.INFO.{self._stream}.{names.consumer}"
        info, delayed = await asyncio.gather(
            self._api(subject, {}, f"count queue {queue}", allow=(_NO_CONSUMER,)),
            self._delayed(names),
        )
        if info.get("error") is not None:  # purged by another process: create it again
            self._consumers.discard(names.consumer)
            await self._consumer(names)
            info = await self._api(subject, {}, f"count queue {queue}")
        return int(info["num_pending"]), int(info["num_ack_pending"]), delayed

    async def queue_oldest(self, queue: str) -> float | None:
        """The sent time of the queue's first message, a delayed one included (two
        direct reads: the first on its subject and the first scheduled), None if empty."""
        names = self._queue(queue)
        found: list[float] = []
        for subject in (names.subject, names.delayed):
            reply = await self._api(
                f"STREAM.MSG.GET.{self._stream}",
                {"next_by_subj": subject, "seq": 0},
                f"read queue {queue}",
                allow=(_NO_MESSAGE,),
            )
            if reply.get("error") is None:
                data = base64.b64decode(reply["message"].get("data", ""))
                found.append(decode_message(data)[2])
        return min(found, default=None)

    async def queue_next_visible(self, queue: str, now: float) -> float | None:
        """When to look again for a hidden or delayed message, or None if none is.

        The server does not say when a pending message is due again, so this is the
        earliest deadline this process set (by receive, change of visibility or a
        delayed send) after ``now``, and never later than ``now +`` :data:`RECHECK`
        while the queue has hidden messages. ``now`` itself when the hidden messages
        the previous call saw are visible now: the server made them so (a delay or a
        timeout ended) after the caller's receive found none, and nobody says so.
        """
        visible, in_flight, delayed = await self.queue_counts(queue, now)
        deadlines = self._deadlines.get(queue, [])
        while deadlines and deadlines[0] <= now:
            heapq.heappop(deadlines)
        was_hidden = self._hidden.pop(queue, False)
        if not in_flight and not delayed:
            self._deadlines.pop(queue, None)
            # hidden ones became visible since the caller's receive (a delay or a timeout
            # ended on the server): look again at once
            return now if was_hidden and visible else None
        if len(self._hidden) > 10_000:
            self._hidden.clear()
        self._hidden[queue] = True
        soonest = now + RECHECK
        return min(deadlines[0], soonest) if deadlines else soonest

    def _remember(self, queue: str, deadline: float) -> None:
        deadlines = self._deadlines.setdefault(queue, [])
        if len(deadlines) < _DEADLINES_PER_QUEUE:
            heapq.heappush(deadlines, deadline)
