"""HTTP connections with deadlines: slow clients cannot hold the server.

uvicorn times out idle keep-alive connections but not a request in progress: a client
that sends its headers one byte a minute (slowloris), or a body that never ends, keeps
its connection, its socket and its parser forever, and a thousand such clients exhaust
the process's file descriptors, after which even ``/livez`` cannot be reached.
:func:`guarded_protocol` makes uvicorn's httptools protocol enforce three limits:

- the request line and headers must arrive within ``header_timeout`` seconds of the
  connection (or of the previous response, on a keep-alive connection);
- the body must arrive within ``body_timeout`` seconds of the headers;
- at most ``max_connections`` connections are open at once; one past it is closed at
  once, before it costs a parser.

A connection that misses a deadline is closed; an ASGI app reading its body sees
``http.disconnect``. :func:`raise_open_file_limit` lifts the soft limit on open files to
the hard one, so the connection cap, not the default of 1,024 files, is what binds.
"""

from __future__ import annotations

import asyncio
import resource

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["guarded_protocol", "raise_open_file_limit"]


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted`` (never above the hard limit).

    Returns the soft limit in force afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        return ceiling
    return soft


def guarded_protocol(
    *, header_timeout: float, body_timeout: float, max_connections: int
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class with the deadlines and cap of the module docstring."""

    class GuardedProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()
                return
            self._arm(header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._arm(body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            # the app's own time is not limited here: the request has fully arrived
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            # the next request's headers are due within header_timeout of this answer
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm(header_timeout)

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedProtocol
