"""Per-account quotas that concurrent creates cannot exceed.

A quota (``max_buses``, ``max_rules_per_bus``, ``max_queues``) is a count of catalog
documents, and a create used to count and then insert: sixteen concurrent creates against
a quota of 2 all counted 0 or 1 and all inserted. Two guards close that window:

* **In the process**, creates of one kind in one account (one bus, for rules) take one
  :class:`KeyedLocks` lock around count-and-insert, so they run one after the other and
  each sees the others' documents: the right answer, with no spurious refusal.
* **In the store**, which several processes may share (issue 9), every create counts
  again *after* its insert (:func:`kept_within`) and deletes its own document when the
  count is over the quota, refusing with ``LimitExceeded``. With a store that serializes
  writes (SQLite does), no set of documents over the quota survives: of any such set,
  the member inserted last counted all the others and removed itself. Under contention
  across processes this may refuse one create too many (both over-quota creates back out);
  it never admits one too many, and a retry succeeds.

The in-process lock makes the store check cheap in the common case: one extra list of
the account's documents of that kind per create, which creates already pay once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable

from eventyard.server.store import Store

__all__ = ["KeyedLocks", "kept_within"]


class KeyedLocks:
    """One :class:`asyncio.Lock` per key, forgotten once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: str) -> asyncio.Lock:
        """The lock of ``key`` (``async with locks(key): ...``)."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


async def kept_within(
    store: Store, kind: str, key: str, count: Callable[[], Awaitable[int]], limit: int
) -> bool:
    """After inserting document ``key``: whether it stays within the quota.

    ``count`` counts the documents the quota covers, the new one included. When there
    are more than ``limit``, the new document is deleted and False is returned: the
    caller refuses the create (and has told nobody about the document yet).
    """
    if await count() <= limit:
        return True
    await store.catalog_delete(kind, key)
    return False
