"""Fixtures of the store contract suite: every test runs once per store in FACTORIES.

Contract tests use only the :class:`eventyard.server.store.Store` protocol, so a second store
runs them unchanged; what is particular to one store lives in its own test module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The factories module is shared with the kill -9 test's child process, which runs it
# as a plain script neighbour; make it importable the same way here.
sys.path.insert(0, str(Path(__file__).parent))

from store_factories import FACTORIES, NATS_ENV, StoreFactory
from tests.natsserver import NatsCluster

from eventyard.server.store import Store


@pytest.fixture(params=sorted(FACTORIES))
def store_name(request: pytest.FixtureRequest) -> str:
    """The name of the store under test (a key of FACTORIES)."""
    name: str = request.param
    return name


@pytest.fixture
def store_factory(store_name: str, request: pytest.FixtureRequest) -> StoreFactory:
    if store_name == "jetstream":
        cluster: NatsCluster = request.getfixturevalue("nats_cluster")
        os.environ[NATS_ENV] = cluster.url
    return FACTORIES[store_name]


@pytest.fixture
def location(tmp_path: Path) -> Path:
    """Where the store under test keeps its data; reopening uses the same location."""
    return tmp_path / "store"


@pytest.fixture
async def store(store_factory: StoreFactory, location: Path) -> AsyncIterator[Store]:
    """An open store, closed after the test."""
    opened = store_factory(location)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
