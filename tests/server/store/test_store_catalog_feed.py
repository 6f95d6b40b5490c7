"""Contract: the catalog's change feed and the store's listeners (wake-ups).

Only the protocol: a store may compact the feed to the latest change of each key and may
tell its listeners late (another process wrote, a watch delivered), so the listener
tests wait for what they expect instead of assuming it came before the write returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

import pytest

from eventyard.errors import ConcurrentModification
from eventyard.server.store import (
    CatalogChange,
    CatalogClaim,
    CatalogEntry,
    NewDelivery,
    NewEvent,
    NewMessage,
    Store,
)

# how long a listener may take to hear of a committed write before the test fails
_HEARD_WITHIN = 10.0


class Recorder:
    """A store listener that records what it is told and lets a test wait for it."""

    def __init__(self) -> None:
        self.changes: list[CatalogChange] = []
        self.targets: list[frozenset[str]] = []
        self.queues: list[frozenset[str]] = []
        self._news = asyncio.Event()

    def catalog_changed(self, change: CatalogChange) -> None:
        self.changes.append(change)
        self._news.set()

    def deliveries_ready(self, targets: Collection[str]) -> None:
        self.targets.append(frozenset(targets))
        self._news.set()

    def queues_ready(self, queues: Collection[str]) -> None:
        self.queues.append(frozenset(queues))
        self._news.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(_HEARD_WITHIN):
            while not condition():
                self._news.clear()
                await self._news.wait()

    def heard_queue(self, queue: str) -> bool:
        return any(queue in q for q in self.queues)

    def heard_target(self, target: str) -> bool:
        return any(target in t for t in self.targets)


class Raises(Recorder):
    """A listener whose every call fails after recording it."""

    def catalog_changed(self, change: CatalogChange) -> None:
        super().catalog_changed(change)
        raise RuntimeError("listener bug")

    def queues_ready(self, queues: Collection[str]) -> None:
        super().queues_ready(queues)
        raise RuntimeError("listener bug")


def _event(n: int) -> NewEvent:
    return NewEvent(f"e{n}", "default", 1.0, b'{"id": "e%d"}' % n)


def _delivery(n: int, target: str) -> NewDelivery:
    body = b'{"id": "e%d"}' % n
    return NewDelivery(target, f"e{n}", body, body, 1.0, 1.0)


# -- the feed ------------------------------------------------------------------------------


async def test_an_empty_catalog_has_revision_zero_and_no_changes(store: Store) -> None:
    assert await store.catalog_revision() == 0
    assert await store.catalog_changes() == []


async def test_the_feed_lists_changes_in_growing_revision_order(store: Store) -> None:
    before = await store.catalog_revision()
    bus = await store.catalog_put("bus", "b1", {"n": 1})
    rule = await store.catalog_put("rule", "b1/r", {"n": 2})
    queue = await store.catalog_put("queue", "q", {"n": 3})
    changes = await store.catalog_changes(after=before)
    assert [(c.kind, c.key) for c in changes] == [("bus", "b1"), ("rule", "b1/r"), ("queue", "q")]
    revisions = [c.revision for c in changes]
    assert revisions == sorted(set(revisions)) and revisions[0] > before
    assert await store.catalog_revision() == revisions[-1]
    assert [c.entry for c in changes] == [
        CatalogEntry("bus", "b1", {"n": 1}, bus),
        CatalogEntry("rule", "b1/r", {"n": 2}, rule),
        CatalogEntry("queue", "q", {"n": 3}, queue),
    ]


async def test_reading_after_a_revision_returns_only_later_changes(store: Store) -> None:
    await store.catalog_put("bus", "a", {})
    middle = await store.catalog_revision()
    await store.catalog_put("bus", "b", {})
    await store.catalog_put("bus", "c", {})
    assert [c.key for c in await store.catalog_changes(after=middle)] == ["b", "c"]
    assert await store.catalog_changes(after=await store.catalog_revision()) == []


async def test_the_feed_pages_with_limit(store: Store) -> None:
    for n in range(7):
        await store.catalog_put("bus", f"b{n}", {"n": n})
    seen: list[str] = []
    after = 0
    while page := await store.catalog_changes(after=after, limit=3):
        assert len(page) <= 3
        seen += [c.key for c in page]
        after = page[-1].revision
    assert seen == [f"b{n}" for n in range(7)]


async def test_a_delete_shows_in_the_feed_without_an_entry(store: Store) -> None:
    await store.catalog_put("rule", "b/r", {"v": 1})
    before = await store.catalog_revision()
    assert await store.catalog_delete("rule", "b/r")
    [change] = await store.catalog_changes(after=before)
    assert (change.kind, change.key, change.entry) == ("rule", "b/r", None)
    assert change.revision > before
    assert await store.catalog_revision() == change.revision


async def test_a_delete_of_a_missing_document_changes_nothing(store: Store) -> None:
    before = await store.catalog_revision()
    assert not await store.catalog_delete("rule", "b/never")
    assert await store.catalog_changes(after=before) == []
    assert await store.catalog_revision() == before


async def test_a_reader_from_zero_ends_on_the_current_state_of_every_key(store: Store) -> None:
    """Compaction may drop older changes, but the last change of each key is kept and
    comes after every older change of it, deletes included."""
    await store.catalog_put("bus", "kept", {"v": 1})
    await store.catalog_put("bus", "gone", {"v": 1})
    await store.catalog_put("bus", "kept", {"v": 2})
    await store.catalog_delete("bus", "gone")
    await store.catalog_put("bus", "back", {"v": 1})
    await store.catalog_delete("bus", "back")
    await store.catalog_put("bus", "back", {"v": 3})
    state: dict[str, dict[str, object] | None] = {}
    last: dict[str, int] = {}
    for change in await store.catalog_changes(after=0):
        assert change.revision > last.get(change.key, 0)
        last[change.key] = change.revision
        state[change.key] = None if change.entry is None else change.entry.doc
    assert state == {"kept": {"v": 2}, "gone": None, "back": {"v": 3}}


async def test_compaction_keeps_the_latest_change_of_a_key(store: Store) -> None:
    for n in range(5):
        await store.catalog_put("queue", "q", {"n": n})
    changes = [c for c in await store.catalog_changes() if c.key == "q"]
    assert changes, "the key's latest change must stay in the feed"
    latest = changes[-1]
    assert latest.entry is not None and latest.entry.doc == {"n": 4}
    assert latest.revision == await store.catalog_revision()
    entry = await store.catalog_get("queue", "q")
    assert entry == latest.entry


async def test_revisions_of_a_key_are_not_reused_after_a_delete(store: Store) -> None:
    first = await store.catalog_put("bus", "b", {"v": 1})
    await store.catalog_delete("bus", "b")
    again = await store.catalog_put("bus", "b", {"v": 2})
    assert again > first
    [change] = [c for c in await store.catalog_changes() if c.key == "b"][-1:]
    assert change.entry == CatalogEntry("bus", "b", {"v": 2}, again)


async def test_a_failed_expectation_adds_nothing_to_the_feed(store: Store) -> None:
    await store.catalog_put("bus", "b", {"v": 1})
    before = await store.catalog_revision()
    with pytest.raises(ConcurrentModification):
        await store.catalog_put("bus", "b", {"v": 2}, expect_revision=0)
    with pytest.raises(ConcurrentModification):
        await store.catalog_delete("bus", "b", expect_revision=99)
    assert await store.catalog_changes(after=before) == []


async def test_a_claim_made_by_ingest_is_in_the_feed(store: Store) -> None:
    before = await store.catalog_revision()
    claim = CatalogClaim("schedule", "default/tick", {"Next": 60.0}, expect_revision=0)
    await store.ingest([_event(1)], claim=claim)
    [change] = await store.catalog_changes(after=before)
    assert (change.kind, change.key) == ("schedule", "default/tick")
    assert change.entry is not None and change.entry.doc == {"Next": 60.0}
    assert change.entry == await store.catalog_get("schedule", "default/tick")


async def test_a_refused_claim_adds_nothing_to_the_feed(store: Store) -> None:
    await store.catalog_put("schedule", "default/tick", {"Next": 1.0})
    before = await store.catalog_revision()
    claim = CatalogClaim("schedule", "default/tick", {"Next": 2.0}, expect_revision=0)
    with pytest.raises(ConcurrentModification):
        await store.ingest([_event(1)], claim=claim)
    assert await store.catalog_changes(after=before) == []


# -- listeners -----------------------------------------------------------------------------


async def test_a_listener_hears_catalog_changes_in_order(store: Store) -> None:
    heard = Recorder()
    store.listen(heard)
    put = await store.catalog_put("bus", "b", {"v": 1})
    await store.catalog_delete("bus", "b")
    await heard.until(lambda: len(heard.changes) >= 2)
    first, second = heard.changes[:2]
    assert first.entry == CatalogEntry("bus", "b", {"v": 1}, put)
    assert (second.key, second.entry) == ("b", None)
    assert second.revision > first.revision
    assert [c.revision for c in await store.catalog_changes()] == [second.revision]


async def test_a_listener_hears_claims_deliveries_and_queue_messages_of_an_ingest(
    store: Store,
) -> None:
    heard = Recorder()
    store.listen(heard)
    claim = CatalogClaim("schedule", "default/r", {"Next": 5.0}, expect_revision=0)
    await store.ingest(
        [_event(1)],
        [_delivery(1, "default/r/t1")],
        [NewMessage("dlq", "dead letter")],
        claim=claim,
    )
    await heard.until(
        lambda: (
            bool(heard.changes) and heard.heard_target("default/r/t1") and heard.heard_queue("dlq")
        )
    )
    assert heard.changes[0].key == "default/r"


async def test_a_listener_hears_queue_sends(store: Store) -> None:
    heard = Recorder()
    store.listen(heard)
    await store.queue_send([NewMessage("q1", "a"), NewMessage("q2", "b")])
    await heard.until(lambda: heard.heard_queue("q1") and heard.heard_queue("q2"))


async def test_a_listener_hears_redrive_moves_to_the_dead_letter_queue(store: Store) -> None:
    await store.queue_send([NewMessage("src", "poison")])
    [first] = await store.queue_receive("src", 1, 0.0, 1e12)
    assert first.receive_count == 1
    heard = Recorder()
    store.listen(heard)
    assert await store.queue_receive("src", 1, 30.0, 1e12, redrive=("dlq", 1)) == []
    await heard.until(lambda: heard.heard_queue("dlq"))


async def test_a_listener_hears_a_message_made_visible_at_once(store: Store) -> None:
    await store.queue_send([NewMessage("q", "m")])
    [got] = await store.queue_receive("q", 1, 30.0, 1e12)
    heard = Recorder()
    store.listen(heard)
    assert await store.queue_change_visibility("q", got.receipt, 0, 1e12)
    await heard.until(lambda: heard.heard_queue("q"))


async def test_a_failing_listener_neither_fails_the_write_nor_silences_others(
    store: Store,
) -> None:
    failing, heard = Raises(), Recorder()
    store.listen(failing)
    store.listen(heard)
    revision = await store.catalog_put("bus", "b", {"v": 1})
    await store.queue_send([NewMessage("q", "m")])
    await heard.until(lambda: bool(heard.changes) and heard.heard_queue("q"))
    await failing.until(lambda: bool(failing.changes) and failing.heard_queue("q"))
    assert await store.catalog_get("bus", "b") == CatalogEntry("bus", "b", {"v": 1}, revision)
    assert len(await store.queue_receive("q", 10, 30.0, 1e12)) == 1
