"""Stores: the protocol every backend implements, and ``open_store(url)`` to pick one.

- :mod:`~eventyard.server.store.protocol`: the protocol (catalog, log, deliveries,
  queues) and its records.
- :mod:`~eventyard.server.store.sqlite`: the embedded SQLite store, the default.

May import: :mod:`eventyard.errors`. Nothing else of the server: every other component
depends on the store, never the reverse.
"""

from __future__ import annotations

from eventyard.errors import StoreError
from eventyard.server.store.protocol import (
    CatalogEntry,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
    QueueMessage,
    Store,
)
from eventyard.server.store.sqlite import SQLiteStore

__all__ = [
    "CatalogEntry",
    "Delivery",
    "LogRecord",
    "NewDelivery",
    "NewEvent",
    "NewMessage",
    "QueueMessage",
    "Store",
    "open_store",
    "sqlite_path",
]


def open_store(url: str) -> Store:
    """Create (not yet open) the store named by ``url``.

    ``sqlite:///path/to/file.db`` or a plain directory path (the file ``eventyard.db``
    inside it) selects the embedded SQLite store.
    """
    return SQLiteStore(sqlite_path(url))


def sqlite_path(url: str) -> str:
    """The SQLite database file that ``url`` names (see :func:`open_store`).

    Raises:
        StoreError: ``url`` names no SQLite store.
    """
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite://")
    if "://" in url:
        raise StoreError(f"unknown store URL scheme in {url!r}; use sqlite:///path")
    return url.rstrip("/") + "/eventyard.db"
