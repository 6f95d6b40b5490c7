"""Contract: FIFO queues (names ending in ``.fifo``): group order and de-duplication.

A FIFO queue returns each message group's messages in sending order and none of a
group while an earlier message of it is in flight; a de-duplication key seen within
:data:`DEDUP_INTERVAL` is accepted without enqueueing the message again. Receive takes
``now`` explicitly; de-duplication runs on the store's own clock, so its expiry is left
to the API tests.
"""

from __future__ import annotations

import time

from eventyard.server.store import NewMessage, Store

Q = "orders.fifo"


def fifo(body: str, group: str, dedup: str | None = None) -> NewMessage:
    return NewMessage(Q, body, group_id=group, dedup_id=dedup or body)


async def test_groups_come_in_order_and_wait_for_their_message_in_flight(store: Store) -> None:
    await store.queue_send([fifo("a1", "a"), fifo("b1", "b"), fifo("a2", "a"), fifo("b2", "b")])
    now = time.time()
    first = await store.queue_receive(Q, 1, 30, now)
    assert [m.body for m in first] == ["a1"]
    # a1 is in flight: group a waits, group b goes on in its order
    group_b = await store.queue_receive(Q, 10, 30, now)
    assert [m.body for m in group_b] == ["b1", "b2"]
    assert await store.queue_receive(Q, 10, 30, now) == []
    for message in group_b:
        assert await store.queue_delete(Q, message.receipt)
    assert await store.queue_delete(Q, first[0].receipt)
    (a2,) = await store.queue_receive(Q, 10, 30, now)
    assert a2.body == "a2"
    # a2's visibility ends without a delete: it comes back before anything later of a
    await store.queue_send([fifo("a3", "a")])
    assert [m.body for m in await store.queue_receive(Q, 10, 30, now + 31)] == ["a2", "a3"]


async def test_one_receive_may_take_several_of_a_group_in_order(store: Store) -> None:
    await store.queue_send([fifo(f"m{i}", "g") for i in range(5)])
    got = await store.queue_receive(Q, 3, 30, time.time())
    assert [m.body for m in got] == ["m0", "m1", "m2"]
    assert [m.group_id for m in got] == ["g"] * 3


async def test_a_seen_dedup_id_is_accepted_once_and_answers_the_first_id(store: Store) -> None:
    [first] = await store.queue_send([fifo("x", "g", dedup="same")])
    again = await store.queue_send([fifo("y", "g", dedup="same"), fifo("z", "g", dedup="other")])
    assert again[0] == first and again[1] != first
    got = await store.queue_receive(Q, 10, 30, time.time())
    assert [(m.body, m.dedup_id) for m in got] == [("x", "same"), ("z", "other")]
    # de-duplication is per queue
    [elsewhere] = await store.queue_send([NewMessage("b.fifo", "x", group_id="g", dedup_id="same")])
    assert elsewhere != first


async def test_dedup_holds_for_ingested_and_settled_messages_too(store: Store) -> None:
    await store.ingest([], [], [fifo("from-a-rule", "g", dedup="k")])
    await store.ingest([], [], [fifo("from-a-rule", "g", dedup="k")])
    got = await store.queue_receive(Q, 10, 30, time.time())
    assert [m.body for m in got] == ["from-a-rule"]


async def test_redrive_moves_a_fifo_message_and_frees_its_group(store: Store) -> None:
    await store.queue_send([fifo("poison", "g"), fifo("next", "g")])
    now = time.time()
    (poison,) = await store.queue_receive(Q, 1, 10, now, redrive=("dlq.fifo", 1))
    assert poison.body == "poison"
    # its visibility ends: the second receive moves it, and its group goes on
    got = await store.queue_receive(Q, 10, 10, now + 11, redrive=("dlq.fifo", 1))
    assert [m.body for m in got] == ["next"]
    (moved,) = await store.queue_receive("dlq.fifo", 10, 10, now + 11)
    assert (moved.body, moved.group_id) == ("poison", "g")


async def test_standard_queue_messages_have_no_fifo_fields(store: Store) -> None:
    await store.queue_send([NewMessage("plain", "x")])
    (got,) = await store.queue_receive("plain", 1, 30, time.time())
    assert (got.group_id, got.dedup_id) == (None, None)
