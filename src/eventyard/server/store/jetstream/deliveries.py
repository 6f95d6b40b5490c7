"""Delivery records on JetStream: a work-queue stream and a pull consumer per target.

A record is one message on ``<prefix>.dlv.<target>`` of the deliveries stream; its stream
sequence is :attr:`Delivery.id`. Every process pulls a target's records through one
durable consumer of that target, shared by all processes, so the server hands each
record to one process at a time:

* claim = a no-wait pull of up to ``limit`` records; ``AckWait`` is the lease, so a
  record whose owner died is handed out again when the lease ends;
* renew = ``+WPI`` (in progress: the ack wait starts again);
* retry = ``-NAK`` with a delay (due again at ``due``), after writing the new due time
  and attempts to the record's state (``<prefix>.dstate.<seq>``: the server's own
  delivery count also counts lease ends, so it is not the attempt count);
* done = ``+ACK`` (the work queue deletes the record); dead = the DLQ message is put
  (with a de-duplication id derived from the record), then ``+ACK``.

Acks are confirmed by the server (double ack), so a settle is durable when it returns.
The store remembers what it claimed (message, owner, lease end) and settles or renews a
record only while its lease has at least a safety margin left; the server would accept
an ack of a record that was handed to another process meanwhile, so this local check is
what keeps a late owner from settling someone else's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.codec import Names, consumer_name, fmt_float
from eventyard.server.store.jetstream.connection import Link, nats_errors, status_of
from eventyard.server.store.protocol import Claim, Delivery, NewDelivery, NewMessage

__all__ = ["Deliveries", "delivery_message", "record_of"]

log = logging.getLogger("eventyard.store.jetstream")

RECHECK = 1.0
"""Seconds after which a claimer asks again when records it cannot see may become due."""

_EVENT = "Ey-Event-Id"
_FIRST = "Ey-First-Seen"
_DUE = "Ey-Due"
_SPLIT = "Ey-Payload-Bytes"

PutMessages = Callable[[Sequence[NewMessage], Sequence[str] | None], Awaitable[list[str]]]


def delivery_message(
    names: Names, d: NewDelivery, msg_id: str
) -> tuple[str, bytes, dict[str, str]]:
    """The publish of a new delivery record (subject, body, headers)."""
    headers = {
        "Nats-Msg-Id": msg_id,
        _EVENT: d.event_id,
        _FIRST: fmt_float(d.first_seen),
        _DUE: fmt_float(d.due),
        _SPLIT: str(len(d.payload)),
    }
    return names.delivery_subject(d.target), d.payload + d.event, headers


def record_of(
    names: Names, seq: int, subject: str, data: bytes, headers: dict[str, str]
) -> Delivery:
    """The delivery record a message of the deliveries stream holds (attempts 0)."""
    try:
        split = int(headers[_SPLIT])
        return Delivery(
            id=seq,
            target=names.target_of(subject),
            event_id=headers[_EVENT],
            payload=data[:split],
            event=data[split:],
            first_seen=float(headers[_FIRST]),
            due=float(headers[_DUE]),
            attempts=0,
        )
    except (KeyError, ValueError) as exc:
        raise StoreError(f"delivery record {seq} on {subject} is malformed: {exc}") from exc


@dataclass(slots=True)
class _Held:
    reply: str
    owner: str
    lease_end: float
    lease: float
    target: str
    has_state: bool


def _margin(lease: float) -> float:
    """How long before its lease ends a record is no longer settled (ack in flight)."""
    return min(1.0, lease / 10)


class Deliveries:
    """Claims, renewals and settles of one store; the pending count."""

    def __init__(
        self,
        link: Link,
        names: Names,
        clock: Callable[[], float],
        put_messages: PutMessages,
        ready: Callable[[Collection[str]], None],
    ) -> None:
        self._link = link
        self._names = names
        self._clock = clock
        self._put_messages = put_messages
        self._ready = ready
        self._stream = names.deliveries_stream
        self._held: dict[int, _Held] = {}
        self._ack_wait: dict[str, float] = {}
        self._released: dict[str, dict[int, float]] = {}
        self._pending = 0
        self._writes = 0
        self._refresher: asyncio.Task[None] | None = None

    # -- pending count -----------------------------------------------------------------
    async def start(self) -> None:
        self._pending = await self._stream_count()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def _stream_count(self) -> int:
        with nats_errors("deliveries count", self._link):
            info = await self._link.js.stream_info(self._stream)
        return int(info.state.messages)

    async def _refresh(self) -> None:
        """Every second, take the stream's count (other processes' writes) unless own
        writes ran meanwhile (then the local count, adjusted by them, is newer)."""
        while True:
            await asyncio.sleep(1.0)
            before = self._writes
            try:
                count = await self._stream_count()
            except StoreError:
                continue
            if self._writes == before:
                self._pending = count

    def pending_count(self) -> int:
        return self._pending

    def added(self, n: int) -> None:
        """``n`` new records were written by this process."""
        self._writes += 1
        self._pending += n

    # -- reads -------------------------------------------------------------------------
    async def pending(self, after_id: int, limit: int) -> list[Delivery]:
        msgs = await self._link.direct_batch(
            self._stream, after_id + 1, self._names.deliveries_all, limit, "pending deliveries"
        )
        records = [self._record_of_direct(m) for m in msgs]
        if not records:
            return []
        states = await self._link.direct_batch(
            self._names.state_stream,
            1,
            f"{self._names.prefix}.dstate.>",
            10_000_000,
            "delivery states",
        )
        by_seq = {}
        for msg in states:
            subject = (msg.headers or {}).get("Nats-Subject", "")
            by_seq[int(subject.rsplit(".", 1)[-1])] = json.loads(msg.data)
        return [_with_state(r, by_seq.get(r.id)) for r in records]

    def _record_of_direct(self, msg: Msg) -> Delivery:
        headers = msg.headers or {}
        return record_of(
            self._names,
            int(headers["Nats-Sequence"]),
            headers["Nats-Subject"],
            msg.data,
            headers,
        )

    async def targets(self) -> list[str]:
        with nats_errors("pending targets", self._link):
            info = await self._link.js.stream_info(
                self._stream, subjects_filter=self._names.deliveries_all
            )
        subjects = info.state.subjects or {}
        return sorted(self._names.target_of(s) for s, n in subjects.items() if n > 0)

    # -- claims ------------------------------------------------------------------------
    async def _consumer(self, target: str, lease: float) -> str:
        name = consumer_name("dlv", target)
        if self._ack_wait.get(target) == lease:
            return name
        config = api.ConsumerConfig(
            durable_name=name,
            description=f"eventyard deliveries of {target}"[:1000],
            filter_subject=self._names.delivery_subject(target),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=lease,
            deliver_policy=api.DeliverPolicy.ALL,
            max_deliver=-1,
            max_ack_pending=-1,
            max_waiting=512,
        )
        with nats_errors(f"consumer for {target}", self._link):
            await self._link.js.add_consumer(self._stream, config)
        self._ack_wait[target] = lease
        return name

    async def _state(self, seq: int) -> dict[str, float] | None:
        with nats_errors("delivery state", self._link):
            try:
                raw = await self._link.js.get_msg(
                    self._names.state_stream, subject=self._names.state_subject(seq)
                )
            except nats.js.errors.NotFoundError:
                return None
        state: dict[str, float] = json.loads(raw.data or b"{}")
        return state

    async def claim(self, owner: str, target: str, limit: int, lease: float) -> Claim:
        if limit <= 0 or lease <= 0:
            raise StoreError("claim_deliveries needs a positive limit and lease")
        name = await self._consumer(target, lease)
        now = self._clock()
        msgs, end = await self._link.collect(
            f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{name}",
            json.dumps({"batch": limit, "no_wait": True}).encode(),
            expect=limit,
            what=f"claim of {target}",
        )
        if end is not None and (end.headers or {}).get("Status") == "409":
            # The consumer went away (deleted by an operator): make it again next time.
            self._ack_wait.pop(target, None)
        states = await asyncio.gather(
            *(
                self._state(m.metadata.sequence.stream) if m.metadata.num_delivered > 1 else _none()
                for m in msgs
            )
        )
        claimed: list[Delivery] = []
        naks: list[tuple[str, bytes, dict[str, str] | None]] = []
        released = self._released.setdefault(target, {})
        for msg, state in zip(msgs, states, strict=True):
            seq = msg.metadata.sequence.stream
            d = record_of(self._names, seq, msg.subject, msg.data, msg.headers or {})
            d = _with_state(d, state)
            released.pop(seq, None)
            if d.due > now:
                naks.append((msg.reply, _nak(d.due - now), None))
                released[seq] = d.due
                continue
            self._held[seq] = _Held(msg.reply, owner, now + lease, lease, target, state is not None)
            claimed.append(d)
        if naks:
            await self._link.request_many(naks, f"release of not-yet-due {target}")
        claimed.sort(key=lambda d: (d.due, d.id))
        ids = {d.id for d in claimed}
        next_due = await self._next_due(name, target, len(msgs) >= limit, now, ids)
        return Claim(claimed, next_due)

    async def _next_due(
        self, name: str, target: str, full: bool, now: float, claimed: set[int]
    ) -> float | None:
        """When to claim ``target`` again: its other records' earliest due or lease end.

        The server tells how many records the consumer has not handed out
        (``num_pending``) and how many are out (``num_ack_pending``: leased, or released
        with a delay); this process knows the lease ends and release times of its own
        ones. Those of other processes are unknown: then :data:`RECHECK` from now.
        """
        if full:
            return now
        with nats_errors(f"consumer info of {target}", self._link):
            info = await self._link.js.consumer_info(self._stream, name)
        held = [
            h.lease_end
            for seq, h in self._held.items()
            if h.target == target and seq not in claimed
        ]
        others = int(info.num_pending or 0) + int(info.num_ack_pending or 0) - len(claimed)
        if others <= 0:
            return None
        released = self._released.get(target, {})
        for seq in [s for s, due in released.items() if due <= now]:
            del released[seq]
        known = held + list(released.values())
        if int(info.num_pending or 0) > 0:
            return now
        if others > len(known):
            known.append(now + RECHECK)
        return min(known)

    # -- renew and settle ---------------------------------------------------------------
    def _holds(self, owner: str, seq: int, now: float) -> _Held | None:
        held = self._held.get(seq)
        if held is None or held.owner != owner:
            return None
        if now >= held.lease_end - _margin(held.lease):
            del self._held[seq]  # ended: the server hands it to someone else
            return None
        return held

    async def renew(self, owner: str, ids: Sequence[int], lease: float) -> list[int]:
        now = self._clock()
        lost: list[int] = []
        renewing: list[tuple[int, _Held]] = []
        for seq in ids:
            held = self._holds(owner, seq, now)
            if held is None:
                lost.append(seq)
            else:
                renewing.append((seq, held))
        for target in {h.target for _, h in renewing}:
            await self._consumer(target, lease)
        await self._link.request_many(
            [(h.reply, b"+WPI", None) for _, h in renewing], "lease renewal"
        )
        for _, held in renewing:
            held.lease_end = now + lease
            held.lease = lease
        return lost

    async def settle(
        self,
        owner: str,
        done: Sequence[int],
        retry: Sequence[tuple[int, float, int]],
        dead: Sequence[tuple[int, NewMessage | None]],
        messages: Sequence[tuple[int, NewMessage]],
    ) -> list[int]:
        now = self._clock()
        lost: list[int] = []
        taken: dict[int, _Held] = {}
        for seq in [*done, *(r[0] for r in retry), *(d[0] for d in dead)]:
            held = self._holds(owner, seq, now) if seq not in taken else None
            if held is None:
                lost.append(seq)
            else:
                taken[seq] = held
                del self._held[seq]
        sent: set[int] = set()
        try:
            await self._apply(taken, retry=retry, dead=dead, messages=messages, now=now, sent=sent)
        except BaseException:
            # What was not settled stays leased to the owner (its lease is still
            # running), so the owner may settle it again; outcomes the server got twice
            # (an ack, a nak of an acked record) change nothing.
            for seq, held in taken.items():
                if seq not in sent:
                    self._held.setdefault(seq, held)
            raise
        return lost

    async def _apply(
        self,
        taken: dict[int, _Held],
        *,
        retry: Sequence[tuple[int, float, int]],
        dead: Sequence[tuple[int, NewMessage | None]],
        messages: Sequence[tuple[int, NewMessage]],
        now: float,
        sent: set[int],
    ) -> None:
        """Send the outcomes of the records ``taken`` (held by the settling owner).

        Adds to ``sent`` the records whose outcome may have reached the server (a
        request sent, answered or not): those are no longer the owner's.
        """
        prefix = self._names.prefix
        puts: list[NewMessage] = []
        dedup: list[str] = []
        per_record: dict[int, int] = {}
        for seq, message in messages:
            if seq in taken:
                index = per_record[seq] = per_record.get(seq, -1) + 1
                puts.append(message)
                dedup.append(f"{prefix}:dlv:{seq}:m{index}")
        for seq, dlq in dead:
            if seq in taken and dlq is not None:
                puts.append(dlq)
                dedup.append(f"{prefix}:dlv:{seq}:dead")
        if puts:
            await self._put_messages(puts, dedup)
        retried = [(seq, due, attempts) for seq, due, attempts in retry if seq in taken]
        if retried:
            states: list[tuple[str, bytes, dict[str, str]]] = [
                (
                    self._names.state_subject(seq),
                    json.dumps({"due": due, "attempts": attempts}).encode(),
                    {},
                )
                for seq, due, attempts in retried
            ]
            await self._link.publish_many(states, "delivery retry")
            sent.update(seq for seq, _, _ in retried)
            await self._link.request_many(
                [(taken[seq].reply, _nak(due - now), None) for seq, due, _ in retried],
                "delivery retry",
            )
            for seq, due, _ in retried:
                self._released.setdefault(taken[seq].target, {})[seq] = due
        finished = [seq for seq in taken if seq not in {r[0] for r in retried}]
        if finished:
            self._writes += 1
            sent.update(finished)
            replies = await self._link.request_many(
                [(taken[seq].reply, b"+ACK", None) for seq in finished], "delivery settle"
            )
            for reply in replies:
                if status_of(reply) is not None:
                    raise StoreError(f"delivery settle failed: status {status_of(reply)}")
            self._pending = max(0, self._pending - len(finished))
            await asyncio.gather(
                *(
                    self._link.api(
                        f"$JS.API.STREAM.PURGE.{self._names.state_stream}",
                        {"filter": self._names.state_subject(seq)},
                        "delivery state cleanup",
                    )
                    for seq in finished
                    if taken[seq].has_state
                )
            )
        for seq, _, _ in retried:
            taken[seq].has_state = True
        if retried:
            self._ready({taken[seq].target for seq, _, _ in retried})


def _with_state(record: Delivery, state: dict[str, float] | None) -> Delivery:
    """``record`` with the due time and attempts its state holds (after a retry)."""
    if state is None:
        return record
    return replace(record, due=float(state["due"]), attempts=int(state["attempts"]))


def _nak(delay: float) -> bytes:
    nanos = max(0, int(delay * 1_000_000_000))
    return b"-NAK" if nanos == 0 else f'-NAK {{"delay": {nanos}}}'.encode()


async def _none() -> None:
    return None
