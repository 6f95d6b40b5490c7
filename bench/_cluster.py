"""Stores and process groups for the benches: SQLite, or JetStream on NATS servers this
bench starts (the pinned nats-server of ``tests/natsserver.py``), and N ``eventyard
serve`` processes sharing one store.

Not a bench itself (``make bench`` runs ``bench/[!_]*.py``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from eventyard.testing import ServerProcess

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.natsserver import NatsCluster, nats_server_available  # noqa: E402

__all__ = ["NatsCluster", "ProcessGroup", "nats_server_available", "rss_mib", "store_env"]

#: one master key for every process of a bench run (a shared store needs the same key)
MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


def store_env(url: str | None, replicas: int = 1) -> dict[str, str]:
    """The environment that puts a server on ``url`` (None: SQLite in its data dir)."""
    if url is None:
        return {}
    return {
        "EVENTYARD_STORE": url,
        "EVENTYARD_STORE_REPLICAS": str(replicas),
        "EVENTYARD_STORE_PREFIX": f"b{uuid.uuid4().hex[:10]}",
        "EVENTYARD_MASTER_KEY": MASTER_KEY,
    }


def rss_mib(pid: int) -> float:
    """The resident memory of a process, MiB (from /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match[1]) / 1024


class ProcessGroup:
    """``count`` eventyard processes on one store, each with its own data directory."""

    def __init__(self, directory: Path, count: int, env: dict[str, str]) -> None:
        self.servers = [
            ServerProcess(directory / f"eventyard{i}", env=env, startup_timeout=120)
            for i in range(count)
        ]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.servers if s.process is not None]

    def start(self) -> ProcessGroup:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[ProcessGroup]:
        try:
            yield self.start()
        finally:
            self.stop()
