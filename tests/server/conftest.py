"""Fixtures shared by the server's tests: a SQLite store in the test's directory.

Directories that need another store (the contract suite over every backend, a counting
wrapper, a key store) define their own ``store`` fixture, which takes precedence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventyard.server.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open SQLite store in ``tmp_path``, closed after the test."""
    db = SQLiteStore(str(tmp_path / "eventyard.db"))
    await db.open()
    try:
        yield db
    finally:
        await db.close()
