"""The stores the contract suite runs against: a name and a factory for each.

A factory takes a directory that belongs to one test and returns an *unopened* store
whose data lives there (or is named after it): called again with the same directory,
it must return a store over the same data, which is how the durability tests reopen.
Add a store here and every contract test runs against it. The kill -9 test's child
process (``store_crash_writer.py``) imports this module too.

The JetStream store needs a NATS server: the fixture ``store_factory`` (conftest.py)
starts the session's server and puts its URL in ``EVENTYARD_TEST_NATS`` (which the
crash writer inherits). Each directory maps to its own prefix, so every test has its
own streams on the shared server and a reopen of the same directory finds its data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from eventyard.server.store import Store
from eventyard.server.store.sqlite import SQLiteStore

__all__ = ["FACTORIES", "NATS_ENV", "StoreFactory", "jetstream_prefix"]

NATS_ENV = "EVENTYARD_TEST_NATS"

StoreFactory = Callable[[Path], Store]


def _sqlite(directory: Path) -> Store:
    return SQLiteStore(str(directory / "eventyard.db"))


def jetstream_prefix(directory: Path) -> str:
    """The stream prefix of the JetStream store for ``directory``."""
    digest = hashlib.blake2b(str(directory.resolve()).encode(), digest_size=10).hexdigest()
    return f"t{digest}"


def _jetstream(directory: Path) -> Store:
    from eventyard.server.store.jetstream import JetStreamStore

    url = os.environ.get(NATS_ENV)
    if not url:
        raise RuntimeError(f"{NATS_ENV} is not set: use the store_factory fixture")
    return JetStreamStore(url.split(","), prefix=jetstream_prefix(directory))


FACTORIES: dict[str, StoreFactory] = {"sqlite": _sqlite, "jetstream": _jetstream}
