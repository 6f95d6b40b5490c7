"""Contract: the catalog (documents, revisions, prefix listing, optimistic concurrency)."""

from __future__ import annotations

import asyncio

import pytest

from eventyard.errors import ConcurrentModification
from eventyard.server.store import CatalogEntry, Store


async def test_get_of_a_missing_document_returns_none(store: Store) -> None:
    assert await store.catalog_get("rule", "default/nope") is None


async def test_put_then_get_returns_the_document_and_its_revision(store: Store) -> None:
    doc = {"Name": "r1", "State": "ENABLED", "Targets": [{"Id": "t", "n": 1.5}], "ü": "✓"}
    revision = await store.catalog_put("rule", "default/r1", doc)
    assert revision >= 1
    assert await store.catalog_get("rule", "default/r1") == CatalogEntry(
        "rule", "default/r1", doc, revision
    )


async def test_every_put_raises_the_revision(store: Store) -> None:
    revisions = [await store.catalog_put("bus", "b", {"n": n}) for n in range(5)]
    assert revisions == sorted(set(revisions))
    entry = await store.catalog_get("bus", "b")
    assert entry is not None
    assert (entry.doc, entry.revision) == ({"n": 4}, revisions[-1])


async def test_kinds_are_separate_namespaces(store: Store) -> None:
    await store.catalog_put("bus", "same", {"kind": "bus"})
    await store.catalog_put("rule", "same", {"kind": "rule"})
    bus = await store.catalog_get("bus", "same")
    rule = await store.catalog_get("rule", "same")
    assert bus is not None and rule is not None
    assert (bus.doc, rule.doc) == ({"kind": "bus"}, {"kind": "rule"})


async def test_expect_zero_creates_only_a_missing_document(store: Store) -> None:
    revision = await store.catalog_put("bus", "b", {"v": 1}, expect_revision=0)
    with pytest.raises(ConcurrentModification) as caught:
        await store.catalog_put("bus", "b", {"v": 2}, expect_revision=0)
    assert caught.value.message == (
        f"Resource was modified concurrently; expected revision 0, found {revision}."
    )
    entry = await store.catalog_get("bus", "b")
    assert entry is not None and entry.doc == {"v": 1}


async def test_expect_the_current_revision_replaces_the_document(store: Store) -> None:
    first = await store.catalog_put("bus", "b", {"v": 1})
    second = await store.catalog_put("bus", "b", {"v": 2}, expect_revision=first)
    assert second > first
    entry = await store.catalog_get("bus", "b")
    assert entry == CatalogEntry("bus", "b", {"v": 2}, second)


async def test_expect_a_stale_revision_raises_and_changes_nothing(store: Store) -> None:
    first = await store.catalog_put("bus", "b", {"v": 1})
    second = await store.catalog_put("bus", "b", {"v": 2})
    with pytest.raises(ConcurrentModification) as caught:
        await store.catalog_put("bus", "b", {"v": 3}, expect_revision=first)
    assert caught.value.code == "ConcurrentModificationException"
    assert caught.value.message == (
        f"Resource was modified concurrently; expected revision {first}, found {second}."
    )
    assert await store.catalog_get("bus", "b") == CatalogEntry("bus", "b", {"v": 2}, second)


async def test_expect_a_revision_of_a_missing_document_raises(store: Store) -> None:
    with pytest.raises(ConcurrentModification):
        await store.catalog_put("bus", "b", {"v": 1}, expect_revision=1)
    assert await store.catalog_get("bus", "b") is None


async def test_list_returns_one_kind_by_key_prefix_sorted_by_key(store: Store) -> None:
    for key in ["b/r2", "a/r1", "b/r1", "b", "b/r10", "ba/r1", "c/r1"]:
        await store.catalog_put("rule", key, {"key": key})
    await store.catalog_put("bus", "b/r3", {"key": "not a rule"})

    listed = await store.catalog_list("rule", "b/")
    assert [e.key for e in listed] == ["b/r1", "b/r10", "b/r2"]
    assert all(e.kind == "rule" and e.doc == {"key": e.key} for e in listed)
    assert [e.key for e in await store.catalog_list("rule")] == sorted(
        ["b/r2", "a/r1", "b/r1", "b", "b/r10", "ba/r1", "c/r1"]
    )
    assert [e.key for e in await store.catalog_list("rule", "b")] == [
        "b",
        "b/r1",
        "b/r10",
        "b/r2",
        "ba/r1",
    ]
    assert await store.catalog_list("rule", "zzz") == []
    assert await store.catalog_list("target") == []


async def test_list_handles_prefixes_ending_in_high_code_points(store: Store) -> None:
    keys = ["a\U0010ffff", "a\U0010ffffb", "a\uffff", "a\uffffx", "b"]
    for key in keys:
        await store.catalog_put("k", key, {})
    assert [e.key for e in await store.catalog_list("k", "a\U0010ffff")] == keys[:2]
    assert [e.key for e in await store.catalog_list("k", "a\uffff")] == keys[2:4]


async def test_listed_entries_carry_their_revisions(store: Store) -> None:
    one = await store.catalog_put("bus", "one", {})
    two = await store.catalog_put("bus", "two", {})
    two = await store.catalog_put("bus", "two", {"again": True})
    assert await store.catalog_list("bus") == [
        CatalogEntry("bus", "one", {}, one),
        CatalogEntry("bus", "two", {"again": True}, two),
    ]


async def test_delete_returns_whether_the_document_existed(store: Store) -> None:
    await store.catalog_put("bus", "b", {})
    assert await store.catalog_delete("bus", "b") is True
    assert await store.catalog_get("bus", "b") is None
    assert await store.catalog_list("bus") == []
    assert await store.catalog_delete("bus", "b") is False
    assert await store.catalog_delete("bus", "never") is False


async def test_delete_with_the_current_revision_deletes(store: Store) -> None:
    revision = await store.catalog_put("bus", "b", {})
    assert await store.catalog_delete("bus", "b", expect_revision=revision) is True
    assert await store.catalog_get("bus", "b") is None


async def test_delete_with_a_stale_revision_raises_and_keeps_the_document(store: Store) -> None:
    first = await store.catalog_put("bus", "b", {"v": 1})
    await store.catalog_put("bus", "b", {"v": 2})
    with pytest.raises(ConcurrentModification):
        await store.catalog_delete("bus", "b", expect_revision=first)
    entry = await store.catalog_get("bus", "b")
    assert entry is not None and entry.doc == {"v": 2}


async def test_delete_expecting_a_revision_of_a_missing_document_raises(store: Store) -> None:
    with pytest.raises(ConcurrentModification):
        await store.catalog_delete("bus", "never", expect_revision=3)


async def test_a_recreated_document_never_matches_a_revision_from_before_the_delete(
    store: Store,
) -> None:
    old = await store.catalog_put("bus", "b", {"v": 1})
    await store.catalog_delete("bus", "b")
    new = await store.catalog_put("bus", "b", {"v": 2}, expect_revision=0)
    assert new != old
    # A writer that read the document before the delete must not overwrite the new one.
    with pytest.raises(ConcurrentModification):
        await store.catalog_put("bus", "b", {"v": "stale"}, expect_revision=old)
    entry = await store.catalog_get("bus", "b")
    assert entry == CatalogEntry("bus", "b", {"v": 2}, new)


async def test_concurrent_puts_expecting_the_same_revision_let_exactly_one_win(
    store: Store,
) -> None:
    base = await store.catalog_put("rule", "r", {"writer": None})
    results = await asyncio.gather(
        *(store.catalog_put("rule", "r", {"writer": n}, expect_revision=base) for n in range(20)),
        return_exceptions=True,
    )
    winners = [n for n, r in enumerate(results) if isinstance(r, int)]
    assert len(winners) == 1
    assert all(isinstance(r, ConcurrentModification) for r in results if not isinstance(r, int))
    entry = await store.catalog_get("rule", "r")
    assert entry is not None
    assert (entry.doc, entry.revision) == ({"writer": winners[0]}, results[winners[0]])


async def test_concurrent_creates_of_one_key_let_exactly_one_win(store: Store) -> None:
    results = await asyncio.gather(
        *(store.catalog_put("bus", "b", {"n": n}, expect_revision=0) for n in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 1


async def test_concurrent_unconditional_puts_all_land_with_distinct_revisions(
    store: Store,
) -> None:
    results = await asyncio.gather(*(store.catalog_put("bus", "b", {"n": n}) for n in range(30)))
    assert len(set(results)) == 30
    entry = await store.catalog_get("bus", "b")
    assert entry is not None
    # The newest revision holds the document of the put that returned it.
    assert entry.revision == max(results)
    assert entry.doc == {"n": results.index(max(results))}


async def test_concurrent_read_modify_write_loops_lose_no_update(store: Store) -> None:
    await store.catalog_put("counter", "c", {"value": 0})

    async def increment() -> None:
        while True:
            entry = await store.catalog_get("counter", "c")
            assert entry is not None
            try:
                await store.catalog_put(
                    "counter",
                    "c",
                    {"value": entry.doc["value"] + 1},
                    expect_revision=entry.revision,
                )
                return
            except ConcurrentModification:
                continue

    await asyncio.gather(*(increment() for _ in range(25)))
    entry = await store.catalog_get("counter", "c")
    assert entry is not None and entry.doc == {"value": 25}
