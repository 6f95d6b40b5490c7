"""The SQLite store's catalog: documents, per-key revisions and the change feed.

The catalog is one table (``migrations/0001`` and ``0003``): ``(kind, key)`` → ``doc``
(JSON text, NULL once deleted), ``revision`` (per key) and ``changed`` (global).

**Per-key revisions** count from 1 for each key and grow on every put. A delete leaves
a *tombstone* (``doc`` NULL) that keeps the revision, so a re-created document goes on
counting and an ``expect_revision`` read before the delete can never match it.

**The change feed.** Every put and delete stamps the row with the next *global*
revision, ``changed``: the highest in the table plus one (an index lookup; one writer, so
no two changes get the same one). :meth:`SQLiteStore.catalog_changes` reads the table
in ``changed`` order, so the feed holds exactly the latest change of each key: a key
changed many times shows once, at its last change (the compaction the protocol allows),
and a delete is its tombstone. **Tombstones are kept forever** (they hold the key's
revision), so a reader however far behind still sees every delete it missed; a
tombstone costs a key and two integers. Catalog writes made by
:meth:`SQLiteStore.ingest` (a :class:`~eventyard.server.store.CatalogClaim`) go through
the same :func:`put`, so they are in the feed too.

The functions run on the store's connections: the writes inside a batch's transaction
(see :mod:`.sqlite`), the reads on the reader connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import orjson

from eventyard.errors import ConcurrentModification
from eventyard.server.store.listeners import Notes
from eventyard.server.store.protocol import CatalogChange, CatalogEntry

__all__ = [
    "CHANGES_SQL",
    "REVISION_SQL",
    "change_of",
    "delete",
    "encode_doc",
    "list_sql",
    "put",
]

#: the feed after a global revision: (changed, kind, key, doc, revision) rows
CHANGES_SQL: Final = (
    "SELECT changed, kind, key, doc, revision FROM catalog WHERE changed>? ORDER BY changed LIMIT ?"
)
#: the global revision of the newest change (0 before any)
REVISION_SQL: Final = "SELECT coalesce(max(changed), 0) FROM catalog"
_CURRENT: Final = "SELECT doc IS NOT NULL, revision FROM catalog WHERE kind=? AND key=?"


def encode_doc(doc: dict[str, Any]) -> str:
    """A document as stored: compact JSON text.

    Raises:
        TypeError: the document is not JSON-serialisable.
    """
    try:
        return orjson.dumps(doc).decode()
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"catalog document is not JSON-serialisable: {exc}") from None


def change_of(row: Sequence[Any]) -> CatalogChange:
    """A feed row (:data:`CHANGES_SQL`) as a :class:`CatalogChange`."""
    changed, kind, key, doc, revision = row
    entry = None if doc is None else CatalogEntry(kind, key, orjson.loads(doc), revision)
    return CatalogChange(changed, kind, key, entry)


def list_sql(prefix: str) -> tuple[str, list[Any]]:
    """The query listing one kind's live documents whose key starts with ``prefix``,
    sorted by key, and its arguments after the kind."""
    sql = "SELECT key, doc, revision FROM catalog WHERE kind=? AND doc IS NOT NULL AND key>=?"
    args: list[Any] = [prefix]
    end = _prefix_end(prefix)
    if end is not None:
        sql += " AND key<?"
        args.append(end)
    return sql + " ORDER BY key", args


def put(
    conn: sqlite3.Connection,
    kind: str,
    key: str,
    text: str,
    expect: int | None,
    *,
    notes: Notes | None = None,
) -> int:
    """Write document ``text`` (JSON) to ``(kind, key)``; returns its new revision.

    Raises:
        ConcurrentModification: ``expect`` is not None and not the current revision (0
            for a missing or deleted document).
    """
    current, last = _current(conn, kind, key)
    if expect is not None and expect != current:
        raise _conflict(expect, current)
    revision = last + 1
    changed = _next_change(conn)
    conn.execute(
        "INSERT INTO catalog (kind, key, doc, revision, changed) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (kind, key) DO UPDATE"
        " SET doc=excluded.doc, revision=excluded.revision, changed=excluded.changed",
        (kind, key, text, revision, changed),
    )
    if notes is not None:
        entry = CatalogEntry(kind, key, orjson.loads(text), revision)
        notes.changes.append(CatalogChange(changed, kind, key, entry))
    return revision


def delete(
    conn: sqlite3.Connection,
    kind: str,
    key: str,
    expect: int | None,
    *,
    notes: Notes | None = None,
) -> bool:
    """Delete ``(kind, key)``, leaving its tombstone; returns whether it existed.

    Raises:
        ConcurrentModification: as :func:`put`.
    """
    current, _ = _current(conn, kind, key)
    if expect is not None and expect != current:
        raise _conflict(expect, current)
    if not current:
        return False
    changed = _next_change(conn)
    conn.execute(
        "UPDATE catalog SET doc=NULL, changed=? WHERE kind=? AND key=?", (changed, kind, key)
    )
    if notes is not None:
        notes.changes.append(CatalogChange(changed, kind, key, None))
    return True


def _current(conn: sqlite3.Connection, kind: str, key: str) -> tuple[int, int]:
    """``(revision of the live document or 0, last revision the key had or 0)``."""
    rows = conn.execute(_CURRENT, (kind, key)).fetchall()
    if not rows:
        return 0, 0
    live, revision = rows[0]
    return (revision if live else 0), revision


def _next_change(conn: sqlite3.Connection) -> int:
    return int(conn.execute(REVISION_SQL).fetchall()[0][0]) + 1


def _conflict(expected: int, found: int) -> ConcurrentModification:
    return ConcurrentModification(
        f"Resource was modified concurrently; expected revision {expected}, found {found}."
    )


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``, if any."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    code = ord(stripped[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000  # surrogates cannot be stored; the next storable code point
    return stripped[:-1] + chr(code)
