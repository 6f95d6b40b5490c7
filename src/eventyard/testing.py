"""Helpers for tests: run a real ``eventyard serve`` process on a free port.

:class:`ServerProcess` starts the server as a subprocess on 127.0.0.1 with port 0,
reads the URL it prints, and waits until ``/readyz`` answers 200. It is what eventyard's
own end-to-end tests and benchmarks use, and users can use it in theirs::

    with ServerProcess(data_dir=tmp_path) as server:
        events = boto3.client("events", endpoint_url=server.url, ...)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from eventyard.errors import EventyardError

__all__ = ["ServerProcess"]


class ServerProcess:
    """A real eventyard server in a subprocess.

    Args:
        data_dir: the store directory (kept between restarts of the same object).
        env: extra ``EVENTYARD_*`` variables, e.g. ``{"EVENTYARD_RETRY_BASE_DELAY": "0.05"}``.
        args: extra ``eventyard serve`` arguments.
        startup_timeout: seconds to wait for ``/readyz``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.env = dict(env or {})
        self.args = list(args or [])
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> ServerProcess:
        """Start the server and wait until it is ready."""
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "eventyard", "serve", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--data-dir", str(self.data_dir), *self.args]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # stderr goes to a file: an unread pipe would block a chatty server
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("eventyard listening on "):
            self.process.wait(timeout=10)
            raise EventyardError(f"server did not start: {line!r} {self.stderr()[-2000:]}")
        self.url = line.removeprefix("eventyard listening on ")
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EventyardError(f"server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise EventyardError(f"server at {self.url} not ready after {self.startup_timeout} s")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._close_pipes()
        return code

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_pipes()

    @property
    def log_path(self) -> Path:
        """The file that collects the server's stderr."""
        return self.data_dir / "server.log"

    def stderr(self) -> str:
        """What the server has written to stderr so far."""
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def _close_pipes(self) -> None:
        if self.process is None:
            return
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
