"""Where accounts and access keys are kept: a small document store protocol.

:class:`~eventyard.server.auth.keys.Keyring` keeps its records (kinds ``account`` and
``access-key``) through :class:`KeyStore`, which asks only for get / create / put / list /
delete of JSON documents. :class:`CatalogKeyStore` keeps them in the catalog of any
eventyard :class:`~eventyard.server.store.Store`, so they live (and are backed up) with
the rest of the state on every store backend; :class:`MemoryKeyStore` keeps them in a
dict, for tests and throw-away servers.

Documents are stored as given. Secrets arrive here already sealed by the master key and
bearer tokens already hashed: a KeyStore never sees a plaintext credential.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from eventyard.errors import ConcurrentModification
from eventyard.server.store import Store

__all__ = ["CatalogKeyStore", "KeyStore", "MemoryKeyStore"]


class KeyStore(Protocol):
    """JSON documents keyed by ``(kind, key)``."""

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """One document, or None."""
        ...

    async def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        """Store a new document; False (and nothing written) when the key exists."""
        ...

    async def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        """Create or replace a document."""
        ...

    async def list(self, kind: str) -> list[dict[str, Any]]:
        """Every document of ``kind``, sorted by key."""
        ...

    async def delete(self, kind: str, key: str) -> bool:
        """Delete a document; returns whether it existed."""
        ...


class MemoryKeyStore:
    """A :class:`KeyStore` in a dict (documents are copied in and out)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        doc = self.docs.get((kind, key))
        return copy.deepcopy(doc) if doc is not None else None

    async def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        if (kind, key) in self.docs:
            return False
        self.docs[kind, key] = copy.deepcopy(doc)
        return True

    async def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        self.docs[kind, key] = copy.deepcopy(doc)

    async def list(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(doc) for (k, _), doc in sorted(self.docs.items()) if k == kind]

    async def delete(self, kind: str, key: str) -> bool:
        return self.docs.pop((kind, key), None) is not None


class CatalogKeyStore:
    """A :class:`KeyStore` over the catalog of an open eventyard store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        entry = await self.store.catalog_get(kind, key)
        return entry.doc if entry is not None else None

    async def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        try:
            await self.store.catalog_put(kind, key, doc, expect_revision=0)
        except ConcurrentModification:
            return False
        return True

    async def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        await self.store.catalog_put(kind, key, doc)

    async def list(self, kind: str) -> list[dict[str, Any]]:
        return [entry.doc for entry in await self.store.catalog_list(kind)]

    async def delete(self, kind: str, key: str) -> bool:
        return await self.store.catalog_delete(kind, key)
