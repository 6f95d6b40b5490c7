"""The router follows the catalog's change feed: changes any process writes to the store
apply here, at once when the store tells of them, within the resync interval when it
does not; applying is idempotent and ordered per key.

"Another process" is a change written straight to the store, never through the router
or the API; a lost notification is a store wrapper whose ``listen`` registers nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from eventyard.server.auth import CatalogKeyStore, Keyring, MasterKey
from eventyard.server.catalog import BUS, QUEUE, RULE
from eventyard.server.config import Settings
from eventyard.server.router import Router
from eventyard.server.store import CatalogChange, CatalogEntry, Store, StoreListener
from eventyard.server.store.sqlite import SQLiteStore

ACCOUNT = "111111111111"
# generous: a resync every 20 ms lands well within it even on a loaded machine
_WITHIN = 10.0
# a resync interval that no test outlives: only notifications and explicit syncs apply
_NEVER = 3600.0


class Deaf:
    """The store, but its listeners are never told: every notification is lost."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def listen(self, listener: StoreListener) -> None:
        pass


def _rule(name: str, *, schedule: str | None = None, state: str = "ENABLED") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "Name": name,
        "Arn": f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{name}",
        "EventBusName": "default",
        "State": state,
        "Targets": [{"Id": "t", "Arn": "https://example.com/hook"}],
    }
    if schedule is None:
        doc["EventPattern"] = '{"source": ["shop"]}'
    else:
        doc["ScheduleExpression"] = schedule
    return doc


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(account_id=ACCOUNT, data_dir=str(tmp_path), catalog_resync_interval=_NEVER)


async def _running(store: Store, settings: Settings) -> Router:
    router = Router(settings, store)
    await router.start()
    return router


@pytest.fixture
async def router(store: SQLiteStore, settings: Settings) -> AsyncIterator[Router]:
    running = await _running(store, settings)
    yield running
    await running.stop()


def _applied(router: Router, condition: Callable[[], bool]) -> asyncio.Event:
    """An event set once ``condition`` holds after a change the router applied."""
    event = asyncio.Event()

    def check(_: CatalogChange) -> None:
        if condition():
            event.set()

    router.feed.subscribe(check)
    return event


# -- notifications and the resync ---------------------------------------------------------


async def test_a_notified_change_applies_before_the_write_returns(
    store: SQLiteStore, router: Router
) -> None:
    assert router.routing.resolve("default/r/t") is None
    await store.catalog_put(RULE, "default/r", _rule("r"))
    assert router.routing.resolve("default/r/t") is not None
    await store.catalog_delete(RULE, "default/r")
    assert router.routing.resolve("default/r/t") is None


async def test_a_change_whose_notification_is_lost_applies_at_the_next_resync(
    store: SQLiteStore, tmp_path: Path
) -> None:
    settings = Settings(account_id=ACCOUNT, data_dir=str(tmp_path), catalog_resync_interval=0.02)
    router = await _running(Deaf(store), settings)  # type: ignore[arg-type]
    try:
        created = _applied(router, lambda: router.routing.resolve("default/r/t") is not None)
        await store.catalog_put(RULE, "default/r", _rule("r"))
        assert router.routing.resolve("default/r/t") is None  # nobody told it
        await asyncio.wait_for(created.wait(), _WITHIN)
        gone = _applied(router, lambda: not router.routing.has_bus("orders"))
        await store.catalog_put(BUS, "orders", {"Name": "orders", "Arn": "a"})
        await store.catalog_delete(BUS, "orders")
        await asyncio.wait_for(gone.wait(), _WITHIN)
    finally:
        await router.stop()


async def test_sync_catalog_applies_what_was_committed_before_it(
    store: SQLiteStore, settings: Settings
) -> None:
    router = await _running(Deaf(store), settings)  # type: ignore[arg-type]
    try:
        await store.catalog_put(QUEUE, "q", {"Name": "q"})
        await store.catalog_put(RULE, "default/r", _rule("r"))
        await router.sync_catalog()
        assert router.routing.resolve("default/r/t") is not None
        assert router.routing.queue_name_for_arn(f"arn:aws:sqs:us-east-1:{ACCOUNT}:q") == "q"
    finally:
        await router.stop()


async def test_start_loads_the_catalog_then_follows_the_feed(
    store: SQLiteStore, settings: Settings
) -> None:
    await store.catalog_put(RULE, "default/before", _rule("before"))
    await store.catalog_put(RULE, "default/gone", _rule("gone"))
    await store.catalog_delete(RULE, "default/gone")
    router = await _running(store, settings)
    try:
        assert router.routing.resolve("default/before/t") is not None
        assert router.routing.resolve("default/gone/t") is None
        assert router.feed.cursor == await store.catalog_revision()
        await store.catalog_put(RULE, "default/after", _rule("after"))
        assert router.routing.resolve("default/after/t") is not None
    finally:
        await router.stop()


# -- idempotent, ordered per key --------------------------------------------------------------


def _change(revision: int, key: str, doc: dict[str, Any] | None) -> CatalogChange:
    entry = None if doc is None else CatalogEntry(RULE, key, doc, revision)
    return CatalogChange(revision, RULE, key, entry)


async def test_a_change_older_than_the_applied_one_is_ignored(
    store: SQLiteStore, router: Router
) -> None:
    top = await store.catalog_revision()
    router.catalog_changed(_change(top + 5, "default/r", _rule("r", state="DISABLED")))
    router.catalog_changed(_change(top + 3, "default/r", _rule("r")))  # late, older
    assert router.routing.resolve("default/r/t") is None  # still the disabled rule
    router.catalog_changed(_change(top + 7, "default/r", _rule("r")))
    assert router.routing.resolve("default/r/t") is not None


async def test_a_delete_is_not_undone_by_an_older_put(store: SQLiteStore, router: Router) -> None:
    top = await store.catalog_revision()
    router.catalog_changed(_change(top + 2, "default/r", _rule("r")))
    router.catalog_changed(_change(top + 4, "default/r", None))
    router.catalog_changed(_change(top + 3, "default/r", _rule("r")))
    assert router.routing.resolve("default/r/t") is None


async def test_a_change_notified_then_read_applies_once(store: SQLiteStore, router: Router) -> None:
    before = router.feed.applied
    await store.catalog_put(RULE, "default/r", _rule("r"))
    assert router.feed.applied == before + 1
    await router.sync_catalog()  # reads the same change back
    assert router.feed.applied == before + 1
    assert router.feed.cursor == await store.catalog_revision()


async def test_a_notification_of_a_change_already_read_is_ignored(
    store: SQLiteStore, settings: Settings
) -> None:
    router = await _running(Deaf(store), settings)  # type: ignore[arg-type]
    try:
        await store.catalog_put(RULE, "default/r", _rule("r"))
        put = _change(await store.catalog_revision(), "default/r", _rule("r"))
        await store.catalog_delete(RULE, "default/r")
        await router.sync_catalog()
        router.catalog_changed(put)  # a late notification of the put
        assert router.routing.resolve("default/r/t") is None
    finally:
        await router.stop()


# -- what else follows the feed -----------------------------------------------------------


async def test_scheduled_rules_changed_elsewhere_reach_the_schedule_listeners(
    store: SQLiteStore, settings: Settings
) -> None:
    router = await _running(Deaf(store), settings)  # type: ignore[arg-type]
    heard: list[str] = []
    router.routing.on_schedule_change(heard.append)
    try:
        await store.catalog_put(RULE, "default/tick", _rule("tick", schedule="rate(1 minute)"))
        await router.sync_catalog()
        assert heard == ["default/tick"]
        rule = router.routing.scheduled_rule("default/tick")
        assert rule is not None and rule.expression == "rate(1 minute)"
        await store.catalog_delete(RULE, "default/tick")
        await router.sync_catalog()
        assert heard == ["default/tick", "default/tick"]
        assert router.routing.scheduled_rule("default/tick") is None
    finally:
        await router.stop()


async def test_keys_created_and_deleted_elsewhere_reach_the_keyring(
    store: SQLiteStore, router: Router
) -> None:
    master = MasterKey.generate()
    here = Keyring(CatalogKeyStore(store), master)
    elsewhere = Keyring(CatalogKeyStore(store), master)  # another process's
    router.feed.subscribe(here.catalog_changed)
    assert await here.key_count() == 0
    await elsewhere.create_account(ACCOUNT)
    made = await elsewhere.create_key(ACCOUNT)
    key_id = made.key.access_key_id
    assert here.has_keys() and await here.key_count() == 1
    assert await here.signing_key(key_id) is not None  # now cached here
    await elsewhere.delete_key(key_id)
    assert not here.has_keys()
    assert await here.signing_key(key_id) is None  # not served from the cache
