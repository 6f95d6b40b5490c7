"""Stores: the protocol every backend implements, and ``open_store(url)`` to pick one.

- :mod:`~eventyard.server.store.protocol`: the protocol (catalog, log, deliveries,
  queues) and its records.
- :mod:`~eventyard.server.store.sqlite`: the embedded SQLite store, the default.
- :mod:`~eventyard.server.store.jetstream`: the NATS JetStream store, for many processes
  (imported only when a ``nats://`` URL asks for it: it needs ``nats-py``).

May import: :mod:`eventyard.errors`. Nothing else of the server: every other component
depends on the store, never the reverse.
"""

from __future__ import annotations

from eventyard.errors import StoreError
from eventyard.server.store.protocol import (
    DEDUP_INTERVAL,
    ArchiveRecord,
    CatalogChange,
    CatalogClaim,
    CatalogEntry,
    Claim,
    Delivery,
    LogRecord,
    NewDelivery,
    NewEvent,
    NewMessage,
    QueueMessage,
    Store,
    StoreListener,
    TraceEntry,
)
from eventyard.server.store.sqlite import SQLiteStore

__all__ = [
    "DEDUP_INTERVAL",
    "ArchiveRecord",
    "CatalogChange",
    "CatalogClaim",
    "CatalogEntry",
    "Claim",
    "Delivery",
    "LogRecord",
    "NewDelivery",
    "NewEvent",
    "NewMessage",
    "QueueMessage",
    "Store",
    "StoreListener",
    "TraceEntry",
    "database_path",
    "open_store",
]


def database_path(url: str) -> str:
    """The SQLite file a data directory or ``sqlite:///`` URL names.

    Raises:
        StoreError: the URL names a scheme no store implements.
    """
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite://")
    if "://" in url:
        raise StoreError(
            f"unknown store URL scheme in {url!r}; use sqlite:///path or nats://host:4222"
        )
    return url.rstrip("/") + "/eventyard.db"


def open_store(url: str) -> Store:
    """Create (not yet open) the store named by ``url``.

    ``sqlite:///path/to/file.db`` or a plain directory path (the file ``eventyard.db``
    inside it) selects the embedded SQLite store. ``nats://h1:4222[,h2:4222…]`` (or
    ``nats://h1:4222,nats://h2:4222``) selects the JetStream store on those servers.

    Raises:
        StoreError: an unknown scheme, or a ``nats://`` URL without nats-py installed.
    """
    if url.startswith(("nats://", "tls://")):
        return _jetstream(url)
    return SQLiteStore(database_path(url))


def _jetstream(url: str) -> Store:
    scheme = url.split("://", 1)[0]
    servers = []
    for part in url.split(","):
        server = part.strip()
        if server:
            servers.append(server if "://" in server else f"{scheme}://{server}")
    try:
        from eventyard.server.store.jetstream import JetStreamStore
    except ImportError as exc:
        raise StoreError(
            f"the JetStream store needs nats-py ({exc}): pip install 'eventyard[jetstream]'"
        ) from exc
    return JetStreamStore(servers)
