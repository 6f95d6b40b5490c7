"""One process per store file: an exclusive lock that names its holder.

Two servers on one SQLite file would each believe they own the delivery records and
the queues, deliver everything twice and diverge. :class:`StoreLock` takes an exclusive
``flock`` on ``<database>.lock`` beside the file and writes who holds it (process id,
host, start time); a second process is refused with that text. The kernel drops the lock
when its holder exits, even by ``kill -9``, so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time

from eventyard.errors import StoreError

__all__ = ["StoreLock"]


class StoreLock:
    """The exclusive lock of one store file.

    Args:
        path: the lock file (created ``0600`` if missing).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or say who holds it.

        Raises:
            StoreError: another process holds the lock, or the file cannot be opened.
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd) or "another process"
            os.close(fd)
            raise StoreError(
                f"the store {self.path.removesuffix('.lock')} is in use by {holder}; "
                "one eventyard process per data directory"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from exc
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        holder = f"process {os.getpid()} on {socket.gethostname()} since {started}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays; only the lock matters."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        return ""
