"""FIFO queues on JetStream (:mod:`eventyard.server.store.jetstream.fifo`), real server.

The contract (test_store_fifo.py) runs on this store too; here is what is particular
to JetStream: several store instances (the processes of one eventyard) receiving from
one FIFO queue at once, a send retried after its first sender died between its
de-duplication key and its message, the key's expiry (the server's TTL), and
``queue_oldest`` read from the first message of a queue's subject.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from tests.natsserver import NatsCluster

from eventyard.server.store import NewMessage
from eventyard.server.store.jetstream import JetStreamStore
from eventyard.server.store.jetstream.fifo import FifoQueues

Q = "orders.fifo"
Open = Callable[[], Awaitable[JetStreamStore]]


@pytest.fixture
async def open_store(nats_cluster: NatsCluster) -> AsyncIterator[Open]:
    """Opens instances of one store (one prefix), as the processes of one eventyard."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    opened: list[JetStreamStore] = []

    async def open_one() -> JetStreamStore:
        store = JetStreamStore(nats_cluster.urls, prefix=prefix, name=f"p{len(opened)}")
        opened.append(store)
        await store.open()
        return store

    yield open_one
    await asyncio.gather(*(s.close() for s in opened))


def fifo(body: str, group: str, dedup: str | None = None, queue: str = Q) -> NewMessage:
    return NewMessage(queue, body, group_id=group, dedup_id=dedup or body)


async def test_group_order_and_exclusivity_hold_across_store_instances(open_store: Open) -> None:
    """Four instances receive from one queue at once; no group is ever held by two of
    them, and each group's messages are seen in sending order, each exactly once."""
    stores = [await open_store() for _ in range(4)]
    groups, per_group = 5, 20
    for i in range(per_group):
        await stores[i % 4].queue_send([fifo(f"g{g}:{i}", f"g{g}") for g in range(groups)])
    seen: dict[str, list[int]] = defaultdict(list)
    held: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    overlaps: list[str] = []

    async def consume(me: int, store: JetStreamStore) -> None:
        idle = 0
        while sum(len(v) for v in seen.values()) < groups * per_group and idle < 200:
            got = await store.queue_receive(Q, 3, 30, time.time())
            idle = 0 if got else idle + 1
            for message in got:
                group, index = message.body.split(":")
                if any(n for who, n in held[group].items() if who != me):
                    overlaps.append(group)  # another instance holds this group too
                held[group][me] += 1
                seen[group].append(int(index))
            await asyncio.sleep(0)  # let the others run between receive and delete
            for message in got:
                assert await store.queue_delete(Q, message.receipt)
                held[message.body.split(":")[0]][me] -= 1

    await asyncio.gather(*(consume(n, s) for n, s in enumerate(stores)))
    assert not overlaps
    assert dict(seen) == {f"g{g}": list(range(per_group)) for g in range(groups)}
    assert await stores[0].queue_counts(Q, time.time()) == (0, 0, 0)


async def test_concurrent_duplicate_sends_from_two_instances_enqueue_once(
    open_store: Open,
) -> None:
    a, b = await open_store(), await open_store()
    sends = [s.queue_send([fifo(f"body-{n}", "g", dedup="same")]) for n, s in enumerate((a, b))]
    ids = await asyncio.gather(*sends)
    assert ids[0] == ids[1]
    got = await a.queue_receive(Q, 10, 30, time.time())
    assert [m.message_id for m in got] == ids[0]


async def test_a_retry_after_the_first_sender_died_before_its_message_is_stored(
    open_store: Open,
) -> None:
    """The first sender created the key and died before publishing: the retry, which
    finds the key, stores the message under the key's (first) id."""
    store = await open_store()
    first_id = str(uuid.uuid4())
    await store.fifo._claim(fifo("lost", "g", dedup="k"), first_id, time.time())
    assert await store.queue_receive(Q, 10, 30, time.time()) == []
    assert await store.queue_send([fifo("retried", "g", dedup="k")]) == [first_id]
    (got,) = await store.queue_receive(Q, 10, 30, time.time())
    assert (got.message_id, got.body) == (first_id, "retried")
    # and once it landed, a further duplicate is dropped again
    assert await store.queue_send([fifo("again", "g", dedup="k")]) == [first_id]
    assert await store.queue_delete(Q, got.receipt)
    assert await store.queue_receive(Q, 10, 30, time.time()) == []


async def test_a_dedup_key_expires_with_its_ttl(nats_cluster: NatsCluster) -> None:
    """With a one-second interval the server removes the key; a send with it then
    enqueues a new message (polled with a deadline: the server's timer is the signal)."""
    nc = await nats.connect(nats_cluster.urls)
    prefix = f"t{uuid.uuid4().hex[:12]}"
    fifo_queues = FifoQueues(
        nc,
        nc.jetstream(),
        prefix=prefix,
        replicas=1,
        clock=time.time,
        notify=lambda _: None,
        dedup_interval=1,
    )
    try:
        await fifo_queues.setup()
        [first] = await fifo_queues.put([fifo("x", "g", dedup="k")])
        assert await fifo_queues.put([fifo("y", "g", dedup="k")]) == [first]
        key = fifo_queues._key_subject(Q, "k")
        deadline = time.monotonic() + 30
        while await fifo_queues._last(key) is not None:
            assert time.monotonic() < deadline, "the key outlived its TTL"
            await asyncio.sleep(0.1)
        [later] = await fifo_queues.put([fifo("z", "g", dedup="k")])
        assert later != first
        got = await fifo_queues.receive(Q, 10, 30, time.time())
        assert [m.body for m in got] == ["x", "z"]
    finally:
        await fifo_queues.close()
        await nc.close()


async def test_receipts_settle_only_the_latest_receive_on_their_queue(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    await a.queue_send([fifo("m", "g")])
    now = time.time()
    (first,) = await a.queue_receive(Q, 1, 5, now)
    assert await b.queue_delete("other.fifo", first.receipt) is False
    assert await b.queue_delete(Q, "bm90IGEgcmVjZWlwdA==") is False
    (second,) = await b.queue_receive(Q, 1, 5, now + 6)
    assert (second.receive_count, second.first_receive) == (2, now)
    assert await a.queue_delete(Q, first.receipt) is False
    assert await a.queue_change_visibility(Q, first.receipt, 0, now) is False
    assert await a.queue_delete(Q, second.receipt) is True
    assert await a.queue_delete(Q, second.receipt) is False


async def test_change_visibility_to_zero_frees_the_group_in_order(open_store: Open) -> None:
    store = await open_store()
    await store.queue_send([fifo("a1", "a"), fifo("a2", "a")])
    now = time.time()
    (a1,) = await store.queue_receive(Q, 1, 30, now)
    assert await store.queue_receive(Q, 10, 30, now) == []
    assert await store.queue_next_visible(Q, now) == pytest.approx(now + 30)
    assert await store.queue_counts(Q, now) == (1, 1, 0)
    assert await store.queue_change_visibility(Q, a1.receipt, 0, now)
    assert [m.body for m in await store.queue_receive(Q, 10, 30, now)] == ["a1", "a2"]


async def test_a_delayed_message_holds_its_group_and_counts_as_delayed(open_store: Open) -> None:
    store = await open_store()
    await store.queue_send([NewMessage(Q, "later", group_id="g", dedup_id="d1", delay=60)])
    await store.queue_send([fifo("after", "g"), fifo("other", "h")])
    now = time.time()
    assert await store.queue_counts(Q, now) == (2, 0, 1)
    assert [m.body for m in await store.queue_receive(Q, 10, 90, now)] == ["other"]
    assert await store.queue_next_visible(Q, now) == pytest.approx(now + 60, abs=1)
    got = await store.queue_receive(Q, 10, 30, now + 61)
    assert [m.body for m in got] == ["later", "after"]


async def test_queue_oldest_is_the_first_message_sent_time(open_store: Open) -> None:
    store = await open_store()
    assert await store.queue_oldest(Q) is None
    assert await store.queue_oldest("plain") is None
    before = time.time()
    await store.queue_send([fifo("a", "g"), NewMessage("plain", "p", delay=60)])
    await store.queue_send([fifo("b", "g"), NewMessage("plain", "q")])
    oldest_fifo, oldest_plain = await store.queue_oldest(Q), await store.queue_oldest("plain")
    assert oldest_fifo is not None and before <= oldest_fifo <= time.time()
    assert oldest_plain is not None and before <= oldest_plain <= oldest_fifo + 1
    (a,) = await store.queue_receive(Q, 1, 30, time.time())
    assert await store.queue_delete(Q, a.receipt)
    newer = await store.queue_oldest(Q)
    assert newer is not None and newer >= oldest_fifo


async def test_purge_forgets_messages_receipts_and_dedup_keys(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    [first] = await a.queue_send([fifo("x", "g", dedup="k")])
    (got,) = await a.queue_receive(Q, 1, 30, time.time())
    await b.queue_purge(Q)
    assert await a.queue_counts(Q, time.time()) == (0, 0, 0)
    assert await a.queue_delete(Q, got.receipt) is False
    [again] = await b.queue_send([fifo("x", "g", dedup="k")])
    assert again != first
    assert [m.body for m in await a.queue_receive(Q, 10, 30, time.time())] == ["x"]


async def test_redrive_to_a_fifo_dead_letter_queue_keeps_group_and_dedup_id(
    open_store: Open,
) -> None:
    a, b = await open_store(), await open_store()
    await a.queue_send([fifo("poison", "g", dedup="p1"), fifo("fine", "g")])
    now = time.time()
    await a.queue_receive(Q, 1, 5, now, ("dlq.fifo", 1))
    # both instances redrive the same message at once: it moves once
    moved = await asyncio.gather(
        a.queue_receive(Q, 10, 5, now + 6, ("dlq.fifo", 1)),
        b.queue_receive(Q, 10, 5, now + 6, ("dlq.fifo", 1)),
    )
    assert sorted(m.body for got in moved for m in got) == ["fine"]
    (dead,) = await b.queue_receive("dlq.fifo", 10, 5, now + 6)
    assert (dead.body, dead.group_id, dead.dedup_id, dead.receive_count) == ("poison", "g", "p1", 1)
