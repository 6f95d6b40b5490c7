"""Running the server: binding the socket, serving the app with uvicorn, shutting down.

``eventyard serve`` calls :func:`serve`. The socket is bound before uvicorn starts so
that ``--port 0`` can report the port it got (tests and scripts read the first line on
stdout: ``eventyard listening on http://HOST:PORT``). SIGTERM and SIGINT make uvicorn
stop accepting, finish in-flight requests, then run the app's shutdown, which lets the
delivery engine finish in-flight attempts before the store closes.
"""

from __future__ import annotations

import signal
import socket

import uvicorn

from eventyard.logs import configure_logging
from eventyard.server.api.app import create_app
from eventyard.server.config import Settings
from eventyard.server.runtime import Runtime

__all__ = ["bind", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; returns after a clean shutdown."""
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    settings = settings.__class__(**{**_asdict(settings), "port": port})
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )
    server = _Server(config, app.state.runtime)
    configure_logging(settings.log_level)
    print(f"eventyard listening on http://{host}:{port}", flush=True)
    # uvicorn handles SIGTERM/SIGINT during serve() and re-raises the signal afterwards
    # with the handlers found at start; no-op handlers turn a clean shutdown into exit 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    server.run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app as soon as shutdown begins.

    uvicorn waits for open connections before it runs the app's shutdown; marking the
    runtime not ready first makes ``/readyz`` answer 503 at once and ends long-lived
    streams (``eventyard tail``), which would otherwise hold the shutdown for its
    whole grace period; long polls are told to answer now (``Runtime.on_shutdown``).
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.runtime.ready = False
        for close in self.runtime.on_shutdown:
            close()
        await super().shutdown(sockets)


def _asdict(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
