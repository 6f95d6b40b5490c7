"""Contract: SQS-style queues (visibility, receipts, redrive, delay, counts, purge).

Times: a message sent now is visible at once (or after its delay). Visibility runs on
the store's real clock (a JetStream server times it itself), so a test that needs a
timeout to end uses a short one and receives until the message comes back
(:func:`receive_when_visible`): no clock can be moved for every store. ``now`` is the
time of the call. What the SQLite store gives beyond this (moving ``now`` forward,
exact counts and next-visible times) is in ``test_store_sqlite.py``.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from eventyard.server.store import NewMessage, QueueMessage, Store

STRING = {"DataType": "String", "StringValue": "v"}


async def send(store: Store, queue: str, *bodies: str) -> list[str]:
    return await store.queue_send([NewMessage(queue, body) for body in bodies])


async def receive_when_visible(
    store: Store, queue: str, not_before: float, redrive: tuple[str, int] | None = None
) -> list[QueueMessage]:
    """Receive until something comes back (its timeout or delay ended), within 10 s;
    it must not come before ``not_before``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = time.time()
        got = await store.queue_receive(queue, 10, 30, now, redrive)
        if got:
            # The message may have become visible during the call, after ``now``:
            # only the call's return is sure to come after that moment.
            returned = time.time()
            assert returned >= not_before, f"visible {not_before - returned:.3f} s early"
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing became visible on {queue} within 10 s")


async def test_send_then_receive_returns_the_message(store: Store) -> None:
    attributes = {"kind": STRING, "blob": {"DataType": "Binary", "BinaryValue": "AAE="}}
    before = time.time()
    (message_id,) = await store.queue_send([NewMessage("q", "héllo ✓", attributes)])
    now = time.time()
    (got,) = await store.queue_receive("q", 10, 30, now)
    assert (got.message_id, got.body, got.attributes) == (message_id, "héllo ✓", attributes)
    assert before <= got.sent <= now
    assert (got.receive_count, got.first_receive) == (1, now)
    assert isinstance(got.receipt, str) and got.receipt


async def test_message_ids_are_distinct_uuids_unless_given(store: Store) -> None:
    ids = await store.queue_send(
        [NewMessage("q", "a"), NewMessage("q", "b"), NewMessage("q", "c", message_id="mine")]
    )
    assert len(set(ids)) == 3 and ids[2] == "mine"
    assert all(len(i) == 36 and i.count("-") == 4 for i in ids[:2])


async def test_receive_returns_messages_in_send_order_up_to_the_maximum(store: Store) -> None:
    await send(store, "q", *[f"m{n}" for n in range(5)])
    await send(store, "q", "m5")
    now = time.time()
    assert [m.body for m in await store.queue_receive("q", 4, 30, now)] == ["m0", "m1", "m2", "m3"]
    assert [m.body for m in await store.queue_receive("q", 4, 30, now)] == ["m4", "m5"]
    assert await store.queue_receive("q", 4, 30, now) == []


async def test_queues_are_separate(store: Store) -> None:
    await send(store, "a", "for a")
    await send(store, "b", "for b")
    now = time.time()
    assert [m.body for m in await store.queue_receive("b", 10, 30, now)] == ["for b"]
    assert [m.body for m in await store.queue_receive("a", 10, 30, now)] == ["for a"]
    assert await store.queue_receive("c", 10, 30, now) == []


async def test_a_received_message_is_hidden_until_its_visibility_timeout(store: Store) -> None:
    await send(store, "q", "m")
    now = time.time()
    (first,) = await store.queue_receive("q", 10, 1, now)
    assert await store.queue_receive("q", 10, 30, time.time()) == []
    (again,) = await receive_when_visible(store, "q", now + 1)
    assert again.message_id == first.message_id
    assert (again.receive_count, again.first_receive) == (2, now)
    assert again.receipt != first.receipt


async def test_a_zero_visibility_timeout_leaves_the_message_visible(store: Store) -> None:
    await send(store, "q", "m")
    now = time.time()
    (first,) = await store.queue_receive("q", 10, 0, now)
    (second,) = await store.queue_receive("q", 10, 0, now)
    assert second.message_id == first.message_id and second.receive_count == 2


async def test_delete_with_the_latest_receipt_removes_the_message(store: Store) -> None:
    await send(store, "q", "m")
    now = time.time()
    (got,) = await store.queue_receive("q", 10, 30, now)
    assert await store.queue_delete("q", got.receipt) is True
    assert await store.queue_delete("q", got.receipt) is False
    assert await store.queue_receive("q", 10, 30, now + 60) == []
    assert await store.queue_counts("q", now + 60) == (0, 0, 0)


async def test_a_receipt_is_stale_once_the_message_is_received_again(store: Store) -> None:
    await send(store, "q", "m")
    now = time.time()
    (old,) = await store.queue_receive("q", 10, 0, now)
    (new,) = await store.queue_receive("q", 10, 30, now)
    assert await store.queue_delete("q", old.receipt) is False
    assert await store.queue_change_visibility("q", old.receipt, 0, now) is False
    assert await store.queue_delete("q", new.receipt) is True


async def test_a_receipt_stays_valid_after_its_timeout_until_the_next_receive(
    store: Store,
) -> None:
    await send(store, "q", "m")
    (got,) = await store.queue_receive("q", 10, 0.2, time.time())
    await asyncio.sleep(0.3)  # the timeout ends; nobody receives it
    assert sum(await store.queue_counts("q", time.time())) == 1
    assert await store.queue_delete("q", got.receipt) is True


@pytest.mark.parametrize("receipt", ["", "garbage", "!!!not base64!!!", "AAAA", "a" * 500])
async def test_an_unknown_receipt_deletes_nothing(store: Store, receipt: str) -> None:
    await send(store, "q", "m")
    (got,) = await store.queue_receive("q", 10, 30, time.time())
    assert await store.queue_delete("q", receipt) is False
    assert await store.queue_change_visibility("q", receipt, 0, time.time()) is False
    assert await store.queue_delete("q", got.receipt) is True


async def test_a_receipt_only_works_on_its_own_queue(store: Store) -> None:
    await send(store, "q", "m")
    (got,) = await store.queue_receive("q", 10, 30, time.time())
    assert await store.queue_delete("other", got.receipt) is False
    assert await store.queue_change_visibility("other", got.receipt, 0, time.time()) is False
    assert await store.queue_delete("q", got.receipt) is True


async def test_change_visibility_to_zero_makes_the_message_visible_now(store: Store) -> None:
    await send(store, "q", "m")
    now = time.time()
    (got,) = await store.queue_receive("q", 10, 300, now)
    assert await store.queue_change_visibility("q", got.receipt, 0, now + 1) is True
    (again,) = await store.queue_receive("q", 10, 300, now + 1)
    assert again.message_id == got.message_id and again.receive_count == 2


async def test_change_visibility_extends_the_timeout_from_now(store: Store) -> None:
    await send(store, "q", "m")
    (got,) = await store.queue_receive("q", 10, 0.2, time.time())
    now = time.time()
    assert await store.queue_change_visibility("q", got.receipt, 1, now) is True
    due = await store.queue_next_visible("q", now)
    assert due is not None and now < due <= now + 1  # a store may say to look earlier
    assert len(await receive_when_visible(store, "q", now + 1)) == 1


async def test_change_visibility_keeps_the_receipt_valid(store: Store) -> None:
    await send(store, "q", "m")
    now = time.time()
    (got,) = await store.queue_receive("q", 10, 30, now)
    await store.queue_change_visibility("q", got.receipt, 60, now)
    assert await store.queue_delete("q", got.receipt) is True


async def test_a_delayed_message_becomes_visible_after_its_delay(store: Store) -> None:
    before = time.time()
    await store.queue_send([NewMessage("q", "later", delay=1), NewMessage("q", "now")])
    after = time.time()
    assert [m.body for m in await store.queue_receive("q", 10, 300, after)] == ["now"]
    assert await store.queue_counts("q", after) == (0, 1, 1)
    due = await store.queue_next_visible("q", after)
    assert due is not None and after < due <= after + 1
    (later,) = await receive_when_visible(store, "q", before + 1)
    assert (later.body, later.receive_count) == ("later", 1)


async def test_counts_split_visible_in_flight_and_delayed(store: Store) -> None:
    await send(store, "q", "a", "b", "c", "d")
    await store.queue_send([NewMessage("q", "delayed", delay=600)])
    await send(store, "other", "x")
    now = time.time()
    assert await store.queue_counts("q", now) == (4, 0, 1)
    await store.queue_receive("q", 3, 30, now)
    assert await store.queue_counts("q", now) == (1, 3, 1)
    assert await store.queue_counts("empty", now) == (0, 0, 0)


async def test_next_visible_is_never_after_the_earliest_hidden_message(store: Store) -> None:
    now = time.time()
    assert await store.queue_next_visible("q", now) is None
    await send(store, "q", "a", "b")
    now = time.time()
    assert await store.queue_next_visible("q", now) is None  # all visible already
    first, _ = await store.queue_receive("q", 2, 50, now)
    assert await store.queue_change_visibility("q", first.receipt, 20, now)
    due = await store.queue_next_visible("q", now)
    assert due is not None and now < due <= now + 20


async def test_purge_deletes_every_message_of_the_queue_only(store: Store) -> None:
    await send(store, "q", "a", "b")
    await store.queue_send([NewMessage("q", "delayed", delay=60)])
    await send(store, "keep", "k")
    (received,) = await store.queue_receive("q", 1, 30, time.time())
    await store.queue_purge("q")
    now = time.time()
    assert await store.queue_counts("q", now + 100) == (0, 0, 0)
    assert await store.queue_delete("q", received.receipt) is False
    assert [m.body for m in await store.queue_receive("keep", 10, 30, now)] == ["k"]


async def test_redrive_moves_a_message_received_max_times_to_the_dead_letter_queue(
    store: Store,
) -> None:
    attributes = {"a": STRING}
    (original_id,) = await store.queue_send([NewMessage("q", "poison", attributes)])
    now = time.time()
    redrive = ("q-dlq", 2)
    for attempt in (1, 2):
        (got,) = await store.queue_receive("q", 10, 0, now, redrive)
        assert got.receive_count == attempt
    assert await store.queue_receive("q", 10, 0, now, redrive) == []
    assert await store.queue_counts("q", now) == (0, 0, 0)
    (dead,) = await store.queue_receive("q-dlq", 10, 10, now)
    assert (dead.body, dead.attributes, dead.receive_count) == ("poison", attributes, 1)
    assert dead.message_id != original_id
    assert await store.queue_delete("q", got.receipt) is False


async def test_redrive_still_fills_the_receive_with_healthy_messages(store: Store) -> None:
    await send(store, "q", "poison")
    now = time.time()
    # A zero timeout leaves it first in line, ahead of the two sent after it.
    (poison,) = await store.queue_receive("q", 10, 0, now)
    await send(store, "q", "ok1", "ok2")
    got = await store.queue_receive("q", 2, 10, now + 10, ("dlq", 1))
    assert [m.body for m in got] == ["ok1", "ok2"]
    assert [m.body for m in await store.queue_receive("dlq", 10, 10, now + 10)] == ["poison"]
    assert poison.receive_count == 1


async def test_receive_without_redrive_never_moves_messages(store: Store) -> None:
    await send(store, "q", "m")
    now = time.time()
    for n in range(1, 6):
        (got,) = await store.queue_receive("q", 1, 0, now + n)
        assert got.receive_count == n
    assert await store.queue_counts("dlq", now) == (0, 0, 0)


async def test_receiving_nothing_from_an_empty_queue(store: Store) -> None:
    assert await store.queue_receive("none", 10, 30, time.time()) == []
    assert await store.queue_receive("none", 10, 30, time.time(), ("dlq", 3)) == []
