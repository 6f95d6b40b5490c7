"""The JetStream queues (:class:`JetStreamQueues`) against a real nats-server.

The contract's queue semantics through this class alone, and what is particular to
JetStream: visibility runs on the server's clock (a test that needs a timeout to pass
uses a short real one and polls for the message with a deadline: the server's timer
is the only signal there is), delays are scheduled messages, receipts are ack subjects
that another instance (another process) can use, and two instances share one queue.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from typing import TypeVar

import nats
import pytest
from nats.aio.client import Client
from tests.natsserver import NatsCluster

from eventyard.errors import StoreError
from eventyard.server.store import NewMessage, QueueMessage
from eventyard.server.store.jetstream import JetStreamStore
from eventyard.server.store.jetstream.queues import ACK_WAIT, RECHECK, JetStreamQueues

STRING = {"DataType": "String", "StringValue": "v"}

Make = Callable[[], Awaitable[JetStreamQueues]]
T = TypeVar("T")


class Notified:
    """What an instance's ``notify`` was called with."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []

    def __call__(self, queues: Collection[str]) -> None:
        self.calls.append(set(queues))

    @property
    def queues(self) -> set[str]:
        return set().union(*self.calls)


@pytest.fixture
async def make(nats_cluster: NatsCluster) -> AsyncIterator[Make]:
    """Opens instances of one store (one prefix), each on its own connection, as the
    processes of one eventyard would; all closed after the test."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    opened: list[tuple[Client, JetStreamQueues]] = []

    async def open_one() -> JetStreamQueues:
        nc = await nats.connect(nats_cluster.urls)
        queues = JetStreamQueues(
            nc, nc.jetstream(), prefix=prefix, replicas=1, clock=time.time, notify=Notified()
        )
        opened.append((nc, queues))
        await queues.setup()
        return queues

    yield open_one
    for nc, queues in opened:
        await queues.close()
        await nc.close()


@pytest.fixture
async def q(make: Make) -> JetStreamQueues:
    return await make()


def notified(queues: JetStreamQueues) -> Notified:
    notify = queues._notify
    assert isinstance(notify, Notified)
    return notify


async def send(queues: JetStreamQueues, queue: str, *bodies: str) -> list[str]:
    return await queues.queue_send([NewMessage(queue, body) for body in bodies])


async def receive_when_visible(
    queues: JetStreamQueues, queue: str, visibility: float = 30, limit: float = 10
) -> list[QueueMessage]:
    """Receive until something comes (the server's timer made it visible), or fail."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = await queues.queue_receive(queue, 10, visibility, time.time())
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing became visible on {queue} in {limit} s")


async def until_answered(call: Callable[[], Awaitable[T]], limit: float = 20) -> T:
    """The first answer of ``call`` while the client reconnects to a restarted server."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return await call()
        except StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_send_then_receive_returns_the_message(q: JetStreamQueues) -> None:
    attributes = {"kind": STRING, "blob": {"DataType": "Binary", "BinaryValue": "AAE="}}
    before = time.time()
    (message_id,) = await q.queue_send([NewMessage("q", "héllo ✓\nline 2", attributes)])
    now = time.time()
    (got,) = await q.queue_receive("q", 10, 30, now)
    assert (got.message_id, got.body, got.attributes) == (message_id, "héllo ✓\nline 2", attributes)
    assert before <= got.sent <= now
    assert (got.receive_count, got.first_receive) == (1, now)
    assert isinstance(got.receipt, str) and got.receipt


async def test_message_ids_are_distinct_uuids_unless_given(q: JetStreamQueues) -> None:
    ids = await q.queue_send(
        [NewMessage("q", "a"), NewMessage("q", "b"), NewMessage("q", "c", message_id="mine")]
    )
    assert len(set(ids)) == 3 and ids[2] == "mine"
    assert all(len(i) == 36 and i.count("-") == 4 for i in ids[:2])
    with pytest.raises(StoreError, match="already in use"):
        await q.queue_send([NewMessage("q", "again", message_id="mine")])
    assert [m.body for m in await q.queue_receive("q", 10, 30, time.time())] == ["a", "b", "c"]


async def test_a_retried_put_with_the_same_dedup_ids_never_duplicates(q: JetStreamQueues) -> None:
    messages = [NewMessage("q", "one"), NewMessage("q", "later", delay=1)]
    first = await q.put(messages, ["event-1/t", "event-2/t"])
    await q.put(messages, ["event-1/t", "event-2/t"])
    assert await q.queue_counts("q", time.time()) == (1, 0, 1)
    (got,) = await q.queue_receive("q", 10, 30, time.time())
    assert got.message_id == first[0]
    with pytest.raises(ValueError, match="one id per message"):
        await q.put(messages, ["only one"])


async def test_receive_returns_messages_in_send_order_up_to_the_maximum(
    q: JetStreamQueues,
) -> None:
    await send(q, "q", *[f"m{n}" for n in range(5)])
    await send(q, "q", "m5")
    now = time.time()
    assert [m.body for m in await q.queue_receive("q", 4, 30, now)] == ["m0", "m1", "m2", "m3"]
    assert [m.body for m in await q.queue_receive("q", 4, 30, now)] == ["m4", "m5"]
    assert await q.queue_receive("q", 4, 30, now) == []


async def test_queues_are_separate_whatever_their_names(q: JetStreamQueues) -> None:
    names = ["a", "b", "a.b", "a.*", "a.>", "acct:1/q", "é", ""]
    for name in names:
        await send(q, name, f"for {name}")
    for name in reversed(names):
        got = await q.queue_receive(name, 10, 30, time.time())
        assert [m.body for m in got] == [f"for {name}"]
    assert await q.queue_receive("c", 10, 30, time.time()) == []


async def test_a_received_message_is_hidden_until_its_visibility_timeout(
    q: JetStreamQueues,
) -> None:
    await send(q, "q", "m")
    now = time.time()
    start = time.monotonic()
    (first,) = await q.queue_receive("q", 10, 1.0, now)
    assert await q.queue_receive("q", 10, 30, time.time()) == []
    assert await q.queue_counts("q", time.time()) == (0, 1, 0)
    (again,) = await receive_when_visible(q, "q")
    assert time.monotonic() - start >= 1.0
    assert again.message_id == first.message_id
    assert (again.receive_count, again.first_receive) == (2, now)
    assert again.receipt != first.receipt


async def test_the_default_visibility_is_the_consumers_ack_wait(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    (got,) = await q.queue_receive("q", 10, ACK_WAIT, time.time())
    assert await q.queue_receive("q", 10, ACK_WAIT, time.time()) == []
    assert await q.queue_delete("q", got.receipt) is True


async def test_a_zero_visibility_timeout_leaves_the_message_visible(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    now = time.time()
    (first,) = await q.queue_receive("q", 10, 0, now)
    (second,) = await q.queue_receive("q", 10, 0, now + 1)
    assert second.message_id == first.message_id and second.receive_count == 2
    assert second.first_receive == now


async def test_delete_with_the_latest_receipt_removes_the_message(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    now = time.time()
    (got,) = await q.queue_receive("q", 10, 0.2, now)
    assert await q.queue_delete("q", got.receipt) is True
    assert await q.queue_delete("q", got.receipt) is False
    assert await q.queue_counts("q", now) == (0, 0, 0)
    assert await q.queue_next_visible("q", now) is None


async def test_a_receipt_is_stale_once_the_message_is_received_again(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    now = time.time()
    (old,) = await q.queue_receive("q", 10, 0, now)
    (new,) = await q.queue_receive("q", 10, 30, now)
    assert await q.queue_delete("q", old.receipt) is False
    assert await q.queue_change_visibility("q", old.receipt, 0, now) is False
    assert await q.queue_receive("q", 10, 30, now) == []  # the stale nak did nothing
    assert await q.queue_delete("q", new.receipt) is True


async def test_a_receipt_stays_valid_after_its_timeout_until_the_next_receive(
    q: JetStreamQueues,
) -> None:
    await send(q, "q", "m")
    (got,) = await q.queue_receive("q", 10, 0.2, time.time())
    # The timeout has ended (the server's timer: nothing to wait on but time itself).
    await asyncio.sleep(0.5)
    assert await q.queue_delete("q", got.receipt) is True
    assert await q.queue_receive("q", 10, 30, time.time()) == []


@pytest.mark.parametrize(
    "receipt",
    [
        "",
        "garbage",
        "!!!not base64!!!",
        "AAAA",
        "a" * 500,
        # well-formed ack subjects that name another stream, another consumer, or a
        # delivery that never happened
        "JEpTLkFDSy5vdGhlci5jb25zdW1lci4xLjEuMS4xLjA=",
    ],
)
async def test_an_unknown_receipt_deletes_nothing(q: JetStreamQueues, receipt: str) -> None:
    await send(q, "q", "m")
    (got,) = await q.queue_receive("q", 10, 30, time.time())
    assert await q.queue_delete("q", receipt) is False
    assert await q.queue_change_visibility("q", receipt, 0, time.time()) is False
    assert await q.queue_delete("q", got.receipt) is True


async def test_a_forged_receipt_of_an_undelivered_message_deletes_nothing(
    q: JetStreamQueues,
) -> None:
    await send(q, "q", "first", "second")
    (got,) = await q.queue_receive("q", 1, 30, time.time())
    parsed = q._parse(q._queue("q"), got.receipt)
    assert parsed is not None
    forged = parsed.subject.split(".")
    forged[5] = str(parsed.seq + 1)  # the second message, never delivered
    receipt = base64.urlsafe_b64encode(".".join(forged).encode()).decode()
    assert await q.queue_delete("q", receipt) is False
    assert [m.body for m in await q.queue_receive("q", 10, 30, time.time())] == ["second"]


async def test_a_receipt_only_works_on_its_own_queue(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    await send(q, "other", "o")
    (got,) = await q.queue_receive("q", 10, 30, time.time())
    assert await q.queue_delete("other", got.receipt) is False
    assert await q.queue_change_visibility("other", got.receipt, 0, time.time()) is False
    assert await q.queue_delete("q", got.receipt) is True
    assert [m.body for m in await q.queue_receive("other", 10, 30, time.time())] == ["o"]


async def test_change_visibility_to_zero_makes_the_message_visible_now(
    q: JetStreamQueues,
) -> None:
    await send(q, "q", "m")
    now = time.time()
    (got,) = await q.queue_receive("q", 10, 300, now)
    notified(q).calls.clear()
    assert await q.queue_change_visibility("q", got.receipt, 0, now + 1) is True
    assert notified(q).queues == {"q"}
    (again,) = await q.queue_receive("q", 10, 300, now + 1)
    assert again.message_id == got.message_id and again.receive_count == 2


async def test_change_visibility_sets_the_timeout_from_now(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    start = time.monotonic()
    (got,) = await q.queue_receive("q", 10, 0.3, time.time())
    now = time.time()
    assert await q.queue_change_visibility("q", got.receipt, 1.5, now) is True
    due = await q.queue_next_visible("q", now)  # early is fine: a long poll looks again
    assert due is not None and now < due <= now + RECHECK
    (again,) = await receive_when_visible(q, "q")
    assert time.monotonic() - start >= 1.5
    assert again.receive_count == 2


async def test_change_visibility_keeps_the_receipt_valid(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    now = time.time()
    (got,) = await q.queue_receive("q", 10, 30, now)
    assert await q.queue_change_visibility("q", got.receipt, 60, now) is True
    assert await q.queue_delete("q", got.receipt) is True


async def test_a_delayed_message_becomes_visible_after_its_delay_as_a_first_receive(
    q: JetStreamQueues,
) -> None:
    start = time.monotonic()
    await q.queue_send([NewMessage("q", "later", {"a": STRING}, delay=1), NewMessage("q", "now")])
    after = time.time()
    assert notified(q).queues == {"q"}
    assert [m.body for m in await q.queue_receive("q", 10, 300, after)] == ["now"]
    assert await q.queue_counts("q", after) == (0, 1, 1)
    due = await q.queue_next_visible("q", after)
    assert due is not None and after < due <= after + 1
    (later,) = await receive_when_visible(q, "q")
    assert time.monotonic() - start >= 1.0
    assert (later.body, later.attributes, later.receive_count) == ("later", {"a": STRING}, 1)
    assert await q.queue_counts("q", time.time()) == (0, 2, 0)


async def test_counts_split_visible_in_flight_and_delayed(q: JetStreamQueues) -> None:
    await send(q, "q", "a", "b", "c", "d")
    await q.queue_send([NewMessage("q", "delayed", delay=600)])
    await send(q, "other", "x")
    now = time.time()
    assert await q.queue_counts("q", now) == (4, 0, 1)
    await q.queue_receive("q", 3, 30, now)
    assert await q.queue_counts("q", now) == (1, 3, 1)
    assert await q.queue_counts("empty", now) == (0, 0, 0)


async def test_next_visible_is_none_without_hidden_messages(q: JetStreamQueues) -> None:
    now = time.time()
    assert await q.queue_next_visible("q", now) is None
    await send(q, "q", "a", "b")
    assert await q.queue_next_visible("q", now) is None  # all visible already
    first, _ = await q.queue_receive("q", 2, 50, now)
    assert await q.queue_change_visibility("q", first.receipt, 0.5, now)
    assert await q.queue_next_visible("q", now) == now + 0.5
    # later deadlines than RECHECK (or set by another process) are looked at again then
    assert await q.queue_next_visible("q", now + 0.5) == now + 0.5 + RECHECK


async def test_purge_deletes_every_message_of_the_queue_only(q: JetStreamQueues) -> None:
    await send(q, "q", "a", "b")
    await q.queue_send([NewMessage("q", "delayed", delay=60)])
    await send(q, "keep", "k")
    (received,) = await q.queue_receive("q", 1, 30, time.time())
    await q.queue_purge("q")
    now = time.time()
    assert await q.queue_counts("q", now) == (0, 0, 0)
    assert await q.queue_delete("q", received.receipt) is False
    assert await q.queue_receive("q", 10, 30, now) == []
    assert [m.body for m in await q.queue_receive("keep", 10, 30, now)] == ["k"]
    await send(q, "q", "after")
    assert [m.body for m in await q.queue_receive("q", 10, 30, now)] == ["after"]


async def test_redrive_moves_a_message_received_max_times_to_the_dead_letter_queue(
    q: JetStreamQueues,
) -> None:
    attributes = {"a": STRING}
    (original_id,) = await q.queue_send([NewMessage("q", "poison", attributes)])
    sent = time.time()
    redrive = ("q-dlq", 2)
    for attempt in (1, 2):
        (got,) = await q.queue_receive("q", 10, 0, time.time(), redrive)
        assert got.receive_count == attempt
    notified(q).calls.clear()
    assert await q.queue_receive("q", 10, 0, time.time(), redrive) == []
    assert notified(q).queues == {"q-dlq"}
    assert await q.queue_counts("q", time.time()) == (0, 0, 0)
    (dead,) = await q.queue_receive("q-dlq", 10, 10, time.time())
    assert (dead.body, dead.attributes, dead.receive_count) == ("poison", attributes, 1)
    assert dead.message_id != original_id and dead.sent <= sent
    assert await q.queue_delete("q", got.receipt) is False


async def test_redrive_still_fills_the_receive_with_healthy_messages(q: JetStreamQueues) -> None:
    await send(q, "q", "poison")
    (poison,) = await q.queue_receive("q", 10, 0, time.time())
    await send(q, "q", "ok1", "ok2")
    got = await q.queue_receive("q", 2, 10, time.time(), ("dlq", 1))
    assert [m.body for m in got] == ["ok1", "ok2"]
    assert [m.body for m in await q.queue_receive("dlq", 10, 10, time.time())] == ["poison"]
    assert poison.receive_count == 1
    with pytest.raises(ValueError, match="at least 1"):
        await q.queue_receive("q", 1, 10, time.time(), ("dlq", 0))


async def test_receive_without_redrive_never_moves_messages(q: JetStreamQueues) -> None:
    await send(q, "q", "m")
    for n in range(1, 6):
        (got,) = await q.queue_receive("q", 1, 0, time.time())
        assert got.receive_count == n
    assert await q.queue_counts("dlq", time.time()) == (0, 0, 0)


async def test_receiving_nothing_from_an_empty_queue(q: JetStreamQueues) -> None:
    assert await q.queue_receive("none", 10, 30, time.time()) == []
    assert await q.queue_receive("none", 10, 30, time.time(), ("dlq", 3)) == []
    assert await q.queue_receive("none", 0, 30, time.time()) == []


async def test_puts_notify_the_queues_of_visible_messages(q: JetStreamQueues) -> None:
    await q.put([NewMessage("a", "x"), NewMessage("b", "y"), NewMessage("c", "z", delay=5)])
    assert notified(q).calls == [{"a", "b"}]


async def test_two_instances_share_a_queue(make: Make) -> None:
    one, two = await make(), await make()
    await send(one, "q", *[f"m{n}" for n in range(20)])
    got_one, got_two = await asyncio.gather(
        one.queue_receive("q", 10, 30, time.time()), two.queue_receive("q", 10, 30, time.time())
    )
    bodies = [m.body for m in got_one] + [m.body for m in got_two]
    assert sorted(bodies) == sorted(f"m{n}" for n in range(20))  # each one once
    # a receipt from one instance works in the other, and its latest-receipt check too
    for message in got_one:
        assert await two.queue_delete("q", message.receipt) is True
    assert await one.queue_delete("q", got_two[0].receipt) is True
    assert await two.queue_change_visibility("q", got_two[1].receipt, 0, time.time()) is True
    (again,) = await one.queue_receive("q", 1, 30, time.time())
    assert again.message_id == got_two[1].message_id and again.receive_count == 2
    assert await two.queue_delete("q", got_two[1].receipt) is False  # stale in the other
    assert await one.queue_counts("q", time.time()) == (0, 9, 0)
    assert await two.queue_counts("q", time.time()) == (0, 9, 0)


async def test_a_purge_in_one_instance_leaves_the_queue_usable_in_the_other(make: Make) -> None:
    one, two = await make(), await make()
    await send(one, "q", "old")
    assert await two.queue_counts("q", time.time()) == (1, 0, 0)  # two knows the consumer
    await one.queue_purge("q")  # and deletes it
    await send(one, "q", "new")
    assert [m.body for m in await two.queue_receive("q", 10, 30, time.time())] == ["new"]
    await one.queue_purge("q")
    await send(two, "q", "newer")
    assert await two.queue_counts("q", time.time()) == (1, 0, 0)


async def test_setup_is_idempotent_and_concurrent(make: Make) -> None:
    instances = await asyncio.gather(*(make() for _ in range(3)))
    await asyncio.gather(*(i.setup() for i in instances))
    await send(instances[0], "q", "m")
    assert [m.body for m in await instances[2].queue_receive("q", 1, 30, time.time())] == ["m"]


async def test_an_existing_stream_that_does_not_fit_is_refused(
    nats_cluster: NatsCluster,
) -> None:
    nc = await nats.connect(nats_cluster.urls)
    try:
        prefix = f"t{uuid.uuid4().hex[:12]}"
        await nc.jetstream().add_stream(name=f"{prefix}_queues", subjects=[f"{prefix}.q.>"])
        other = JetStreamQueues(
            nc, nc.jetstream(), prefix=prefix, replicas=1, clock=time.time, notify=Notified()
        )
        with pytest.raises(StoreError, match="exists with retention 'limits'"):
            await other.setup()
        more = JetStreamQueues(
            nc, nc.jetstream(), prefix=prefix + "x", replicas=3, clock=time.time, notify=Notified()
        )
        with pytest.raises(StoreError, match="replicas"):
            await more.setup()  # a single server has no replicas to give
    finally:
        await nc.close()


def test_an_invalid_prefix_is_refused() -> None:
    with pytest.raises(StoreError, match="prefix"):
        JetStreamQueues(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            prefix="a.b",
            replicas=1,
            clock=time.time,
            notify=Notified(),
        )


async def test_a_closed_instance_refuses_every_call(q: JetStreamQueues) -> None:
    await q.close()
    calls: list[Awaitable[object]] = [
        q.queue_send([NewMessage("q", "m")]),
        q.queue_receive("q", 1, 30, time.time()),
        q.queue_delete("q", "r"),
        q.queue_change_visibility("q", "r", 0, time.time()),
        q.queue_purge("q"),
        q.queue_counts("q", time.time()),
        q.queue_next_visible("q", time.time()),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="closed"):
            await call


async def test_after_a_server_kill_no_message_is_lost_and_no_deleted_one_returns(
    tmp_path: Path,
) -> None:
    """kill -9 of a single server: the messages (fsynced) survive, a deleted one stays
    deleted; a receive's hidden state may be lost (R1 consumer state is written behind;
    R3 replicates it), so an in-flight message may come back early, never get lost."""
    with NatsCluster(tmp_path / "nats") as cluster:
        nc = await nats.connect(cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        try:
            q = JetStreamQueues(
                nc, nc.jetstream(), prefix="k", replicas=1, clock=time.time, notify=Notified()
            )
            await q.setup()
            await send(q, "q", "deleted", "in flight", "visible")
            await q.queue_send([NewMessage("q", "delayed", delay=1)])
            (deleted,) = await q.queue_receive("q", 1, 300, time.time())
            assert await q.queue_delete("q", deleted.receipt) is True
            (in_flight,) = await q.queue_receive("q", 1, 2, time.time())
            cluster.nodes[0].kill()
            cluster.nodes[0].start()
            cluster.nodes[0].wait_healthy()
            await until_answered(lambda: q.queue_counts("q", time.time()))
            bodies: set[str] = set()
            while bodies != {"in flight", "visible", "delayed"}:
                got = await until_answered(lambda: receive_when_visible(q, "q", 300, 40))
                bodies |= {m.body for m in got}
                assert "deleted" not in bodies
                for message in got:
                    assert await q.queue_delete("q", message.receipt) is True
            assert in_flight.body == "in flight"
            assert await q.queue_counts("q", time.time()) == (0, 0, 0)
        finally:
            await nc.close()


class QueueListener:
    """A StoreListener that records the queues it hears of and lets a test wait."""

    def __init__(self) -> None:
        self.queues: set[str] = set()
        self._event = asyncio.Event()

    def catalog_changed(self, change: object) -> None:
        pass

    def deliveries_ready(self, targets: Collection[str]) -> None:
        pass

    def queues_ready(self, queues: Collection[str]) -> None:
        self.queues |= set(queues)
        self._event.set()

    async def until_heard(self, queue: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while queue not in self.queues:
                self._event.clear()
                await self._event.wait()
        self.queues.discard(queue)


async def test_queue_wake_ups_and_receipts_cross_store_processes(nats_cluster: NatsCluster) -> None:
    """Through two JetStreamStore instances (two processes of one store): every write
    that makes a message visible wakes the other's listener; receipts work across."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    a = JetStreamStore(nats_cluster.urls, prefix=prefix, name="a")
    b = JetStreamStore(nats_cluster.urls, prefix=prefix, name="b")
    await asyncio.gather(a.open(), b.open())
    try:
        heard = QueueListener()
        b.listen(heard)
        await a.queue_send([NewMessage("q", "m")])
        await heard.until_heard("q")  # a send
        (got,) = await b.queue_receive("q", 1, 300, time.time())
        assert await a.queue_change_visibility("q", got.receipt, 0, time.time()) is True
        await heard.until_heard("q")  # a visibility change to 0
        (again,) = await a.queue_receive("q", 1, 0, time.time(), ("dlq", 5))
        await heard.until_heard("q")  # a receive with a zero timeout
        assert await a.queue_receive("q", 1, 0, time.time(), ("dlq", 2)) == []
        await heard.until_heard("dlq")  # a redrive
        (dead,) = await b.queue_receive("dlq", 1, 30, time.time())
        assert (dead.body, again.receive_count) == ("m", 2)
        assert await a.queue_delete("dlq", dead.receipt) is True
        assert await b.queue_counts("dlq", time.time()) == (0, 0, 0)
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_r3_queues_keep_messages_and_receive_state_when_a_node_is_killed(
    tmp_path: Path,
) -> None:
    """Three nodes, R3: kill -9 the queue stream's leader; nothing is lost, the hidden
    messages stay hidden (the consumer state is replicated) and their receipts work."""
    with NatsCluster(tmp_path / "nats", size=3) as cluster:
        nc = await nats.connect(cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        try:
            q = JetStreamQueues(
                nc, nc.jetstream(), prefix="r3", replicas=3, clock=time.time, notify=Notified()
            )
            await q.setup()
            await send(q, "q", *[f"m{n}" for n in range(20)])
            hidden = await q.queue_receive("q", 5, 300, time.time())
            for message in hidden[:2]:
                assert await q.queue_delete("q", message.receipt) is True
            info = await nc.jetstream().stream_info("r3_queues")
            assert info.cluster is not None
            leader = next(n for n in cluster.nodes if n.name == info.cluster.leader)
            leader.kill()
            counts = await until_answered(lambda: q.queue_counts("q", time.time()))
            assert counts == (15, 3, 0)
            bodies: list[str] = []
            while len(bodies) < 15:
                got = await until_answered(lambda: q.queue_receive("q", 10, 300, time.time()))
                assert got, "a visible message went missing"
                bodies += [m.body for m in got]
            assert sorted(bodies) == sorted(f"m{n}" for n in range(5, 20))
            for message in hidden[2:]:
                delete = functools.partial(q.queue_delete, "q", message.receipt)
                assert await until_answered(delete) is True
            assert await until_answered(lambda: q.queue_counts("q", time.time())) == (0, 15, 0)
        finally:
            await nc.close()


async def test_a_message_of_one_mebibyte_fits_and_a_bigger_one_is_a_clear_error(
    q: JetStreamQueues,
) -> None:
    body = "x" * 1024 * 1024
    await q.queue_send([NewMessage("q", body, {"a": STRING})])
    (got,) = await q.queue_receive("q", 1, 30, time.time())
    assert got.body == body
    with pytest.raises(StoreError, match="max_payload"):
        await q.queue_send([NewMessage("q", "ok"), NewMessage("q", "y" * 3 * 1024 * 1024)])
    assert await q.queue_counts("q", time.time()) == (0, 1, 0)  # nothing of that call


async def test_next_visible_is_now_when_a_message_became_visible_meanwhile(
    q: JetStreamQueues,
) -> None:
    await q.queue_send([NewMessage("q", "later", delay=0.5)])
    due = await q.queue_next_visible("q", time.time())
    assert due is not None and await q.queue_receive("q", 1, 30, time.time()) == []
    await asyncio.sleep(max(0.0, due - time.time()))  # the server's schedule: only time
    deadline = time.monotonic() + 10
    while (await q.queue_counts("q", time.time()))[0] == 0:  # fired, not yet received
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    now = time.time()
    assert await q.queue_next_visible("q", now) == now
