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
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
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

CONSUMER_IDLE = 3600.0
"""Seconds without a claim after which the server removes a target's consumer (a target
deleted long ago keeps no consumer; its remaining records wait in the stream, and the
next claim makes the consumer again)."""

RELEASES_KEPT = 1000
"""Release times remembered per target (see :meth:`Deliveries._release`)."""

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
    timer: asyncio.TimerHandle | None = None


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
        self._busy = 0
        self._refresher: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    # -- pending count -----------------------------------------------------------------
    async def start(self) -> None:
        self._pending = await self._stream_count()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def stop(self) -> None:
        for seq in list(self._held):
            self._drop(seq)
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
        skipped = 0
        while True:
            await asyncio.sleep(1.0)
            before = self._writes
            try:
                count = await self._stream_count()
            except StoreError:
                continue
            if (self._writes == before and not self._busy) or skipped >= 5:
                self._pending, skipped = count, 0
            else:
                skipped += 1  # own writes raced it; under constant load take it anyway

    def pending_count(self) -> int:
        return self._pending

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Mark a write of records in flight: a refresh meanwhile would count it twice."""
        self._busy += 1
        self._writes += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._writes += 1

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
        states = await self._states([r.id for r in records])
        return [_with_state(r, states.get(r.id)) for r in records]

    async def _states(self, seqs: Sequence[int]) -> dict[int, dict[str, float]]:
        """The state (due, attempts) of each record of ``seqs`` that was retried."""
        if not seqs:
            return {}
        msgs = await self._link.last_of(
            self._names.state_stream,
            [self._names.state_subject(seq) for seq in seqs],
            "delivery states",
        )
        states: dict[int, dict[str, float]] = {}
        for msg in msgs:
            subject = (msg.headers or {}).get("Nats-Subject", "")
            states[int(subject.rsplit(".", 1)[-1])] = json.loads(msg.data)
        return states

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
        """The name of ``target``'s consumer, made (or its ack wait raised) for ``lease``.

        The ack wait is the longest lease asked for: the server gives a record back when
        it ends (its owner is presumed dead), while a live owner's shorter lease ends
        by this store's own ``-NAK`` (:meth:`_lease_ended`).
        """
        name = consumer_name("dlv", target)
        known = self._ack_wait.get(target)
        if known is not None and known >= lease:
            return name
        if known is None:
            with nats_errors(f"consumer of {target}", self._link):
                try:
                    info = await self._link.js.consumer_info(self._stream, name)
                    known = float(info.config.ack_wait or 0)
                except nats.js.errors.NotFoundError:
                    known = 0.0
            if known >= lease:
                self._ack_wait[target] = known
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
            inactive_threshold=CONSUMER_IDLE,
        )
        with nats_errors(f"consumer for {target}", self._link):
            await self._link.js.add_consumer(self._stream, config)
        self._ack_wait[target] = lease
        return name

    # -- leases held -------------------------------------------------------------------
    def _hold(self, seq: int, held: _Held) -> None:
        """Keep ``held`` as leased, and end its lease on time (:meth:`_lease_ended`)."""
        if held.timer is not None:
            held.timer.cancel()
        delay = max(0.0, held.lease_end - self._clock())
        held.timer = asyncio.get_running_loop().call_later(delay, self._lease_ended, seq, held)
        self._held[seq] = held

    def _drop(self, seq: int) -> _Held | None:
        held = self._held.pop(seq, None)
        if held is not None and held.timer is not None:
            held.timer.cancel()
            held.timer = None
        return held

    def _lease_ended(self, seq: int, held: _Held) -> None:
        """The lease ran out unsettled: give the record back now (``-NAK``).

        The consumer's ack wait may be longer than this lease, and the record must be
        claimable by others from the lease's end.
        """
        if self._held.get(seq) is not held:
            return
        left = held.lease_end - self._clock()
        if left > 0:  # the clock disagrees with the loop's timer: wait the rest
            held.timer = asyncio.get_running_loop().call_later(left, self._lease_ended, seq, held)
            return
        self._drop(seq)
        self._send_later(held.reply, b"-NAK")

    def _send_later(self, subject: str, payload: bytes) -> None:
        async def send() -> None:
            try:
                await self._link.nc.publish(subject, payload)
            except Exception as exc:  # the ack wait gives it back anyway
                log.debug("give-back not sent: %s", exc)

        task = asyncio.get_running_loop().create_task(send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def give_back(self) -> None:
        """Give every record still leased back (at close): others claim them at once."""
        for seq in list(self._held):
            held = self._drop(seq)
            if held is not None:
                with contextlib.suppress(Exception):
                    await self._link.nc.publish(held.reply, b"-NAK")

    async def claim(self, owner: str, target: str, limit: int, lease: float) -> Claim:
        if limit <= 0 or lease <= 0:
            raise StoreError("claim_deliveries needs a positive limit and lease")
        for again in (False, True):
            name = await self._consumer(target, lease)
            now = self._clock()
            msgs, end = await self._link.collect(
                f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{name}",
                json.dumps({"batch": limit, "no_wait": True}).encode(),
                expect=limit,
                what=f"claim of {target}",
            )
            status = None if end is None else (end.headers or {}).get("Status")
            if status not in ("503", "409"):
                break
            # The consumer is gone (idle past its inactive threshold, or deleted by an
            # operator): make it again; its records wait in the stream meanwhile.
            self._ack_wait.pop(target, None)
            if again and status == "503":
                raise StoreError(f"claim of {target}: no JetStream server answers")
        by_seq = await self._states(
            [m.metadata.sequence.stream for m in msgs if m.metadata.num_delivered > 1]
        )
        states = [by_seq.get(m.metadata.sequence.stream) for m in msgs]
        claimed: list[Delivery] = []
        naks: list[tuple[str, bytes, dict[str, str] | None]] = []
        for msg, state in zip(msgs, states, strict=True):
            seq = msg.metadata.sequence.stream
            d = record_of(self._names, seq, msg.subject, msg.data, msg.headers or {})
            d = _with_state(d, state)
            self._released.get(target, {}).pop(seq, None)
            if d.due > now:
                naks.append((msg.reply, _nak(d.due - now), None))
                self._release(target, seq, d.due)
                continue
            self._hold(seq, _Held(msg.reply, owner, now + lease, lease, target, state is not None))
            claimed.append(d)
        if naks:
            await self._link.request_many(naks, f"release of not-yet-due {target}")
        claimed.sort(key=lambda d: (d.due, d.id))
        next_due = await self._next_due(name, target, now, {d.id for d in claimed})
        return Claim(claimed, next_due)

    def _release(self, target: str, seq: int, due: float) -> None:
        """Remember that record ``seq`` of ``target`` is due again at ``due``.

        At most :data:`RELEASES_KEPT` per target (the earliest): memory stays bounded
        behind a dead target with a million records in backoff; the ones forgotten only
        make :meth:`_next_due` fall back to a re-check.
        """
        released = self._released.setdefault(target, {})
        released[seq] = due
        if len(released) > 2 * RELEASES_KEPT:
            kept = sorted(released.items(), key=lambda item: item[1])[:RELEASES_KEPT]
            self._released[target] = dict(kept)

    async def _next_due(
        self, name: str, target: str, now: float, claimed: set[int]
    ) -> float | None:
        """When to claim ``target`` again: its other records' earliest due or lease end.

        The server tells how many records the consumer has not handed out yet
        (``num_pending``: the first of them is read for its due time) and how many are
        out (``num_ack_pending``: leased, or released with a delay); this process knows
        the lease ends and release times of its own. Those of other processes are not
        known: then :data:`RECHECK` from now.
        """
        with nats_errors(f"consumer info of {target}", self._link):
            info = await self._link.js.consumer_info(self._stream, name)
        waiting = int(info.num_pending or 0)
        after = int(info.delivered.stream_seq or 0) if info.delivered else 0
        if waiting == 0 and await self._stored_after(target, after):
            waiting = 1  # the server's count lags behind a record it has just stored
        others = waiting + int(info.num_ack_pending or 0) - len(claimed)
        if others <= 0:
            return None
        known = [
            h.lease_end
            for seq, h in self._held.items()
            if h.target == target and seq not in claimed
        ]
        released = self._released.get(target, {})
        for seq in [s for s, due in released.items() if due <= now]:
            del released[seq]
        known += released.values()
        if waiting > 0:
            due = await self._peek(target, after + 1)
            if due is not None:
                known.append(due)
        if others > len(known):
            known.append(now + RECHECK)
        return min(known)

    async def _stored_after(self, target: str, seq: int) -> bool:
        """Whether ``target``'s newest record lies beyond ``seq`` (its consumer's last
        delivered sequence): then one waits that the consumer has not counted yet.

        The server acknowledges a publish before it updates its consumers' counts of
        waiting records, so a claim right after an ingest can find nothing and read
        ``num_pending`` 0; the stream itself is read synchronously.
        """
        with nats_errors(f"peek at {target}", self._link):
            try:
                raw = await self._link.js.get_msg(
                    self._stream, subject=self._names.delivery_subject(target), direct=True
                )
            except nats.js.errors.NotFoundError:
                return False
        return int(raw.seq or 0) > seq

    async def _peek(self, target: str, seq: int) -> float | None:
        """The due time of ``target``'s first record from ``seq`` on, if any."""
        with nats_errors(f"peek at {target}", self._link):
            try:
                raw = await self._link.js.get_msg(
                    self._stream,
                    seq=seq,
                    subject=self._names.delivery_subject(target),
                    next=True,
                    direct=True,
                )
            except nats.js.errors.NotFoundError:
                return None
        try:
            return float((raw.headers or {})[_DUE])
        except (KeyError, ValueError):
            return None

    # -- renew and settle ---------------------------------------------------------------
    def _holds(self, owner: str, seq: int, now: float) -> _Held | None:
        held = self._held.get(seq)
        if held is None or held.owner != owner:
            return None
        if now >= held.lease_end - _margin(held.lease):
            return None  # ending: the timer gives it back (or already has)
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
        for seq, held in renewing:
            held.lease_end = now + lease
            held.lease = lease
            if self._held.get(seq) is held:
                self._hold(seq, held)
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
                self._drop(seq)
        sent: set[int] = set()
        try:
            await self._apply(taken, retry=retry, dead=dead, messages=messages, now=now, sent=sent)
        except BaseException:
            # What was not settled stays leased to the owner (its lease is still
            # running), so the owner may settle it again; outcomes the server got twice
            # (an ack, a nak of an acked record) change nothing.
            for seq, held in taken.items():
                if seq not in sent and seq not in self._held:
                    self._hold(seq, held)
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
            # A message id given by the caller is its own de-duplication id, so a put of
            # an id already in use fails (the queues check it); the others (no id, or
            # one derived from the record: NewMessage.derived) are de-duplicated by ids
            # derived from their record, so a settle retried after a failure, or by
            # the record's next owner, never puts a message twice.
            given = [m for m in puts if m.message_id and not m.derived]
            derived = [
                (m, d) for m, d in zip(puts, dedup, strict=True) if m.derived or not m.message_id
            ]
            await asyncio.gather(
                *([self._put_messages(given, None)] if given else []),
                *(
                    [self._put_messages([m for m, _ in derived], [d for _, d in derived])]
                    if derived
                    else []
                ),
            )
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
                self._release(taken[seq].target, seq, due)
        finished = [seq for seq in taken if seq not in {r[0] for r in retried}]
        if finished:
            sent.update(finished)
            with self.writing():
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
