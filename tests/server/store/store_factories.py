"""The stores the contract suite runs against: a name and a factory for each.

A factory takes a directory that belongs to one test and returns an *unopened* store
whose data lives there (or is named after it): called again with the same directory,
it must return a store over the same data, which is how the durability tests reopen.
Add a store here (the JetStream one, later) and every contract test runs against it.
The kill -9 test's child process (``store_crash_writer.py``) imports this module too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from eventyard.server.store import Store
from eventyard.server.store.sqlite import SQLiteStore

__all__ = ["FACTORIES", "StoreFactory"]

StoreFactory = Callable[[Path], Store]


def _sqlite(directory: Path) -> Store:
    return SQLiteStore(str(directory / "eventyard.db"))


FACTORIES: dict[str, StoreFactory] = {"sqlite": _sqlite}
