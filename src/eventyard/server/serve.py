"""Running the server: binding the socket, starting the runtime, serving, shutting down.

``eventyard serve`` calls :func:`serve`. The socket is bound before uvicorn starts so
that ``--port 0`` can report the port it got. The runtime (store, router, services) is
started inside uvicorn's start-up, before it accepts requests, and only once both are up
does the first line on stdout say so: ``eventyard listening on http://HOST:PORT`` (tests
and scripts read it), followed on stderr by a start-up banner (URL, data directory,
demo resources, commands to try) or, when logs are JSON, one ``eventyard ready`` line.
A start-up that fails raises :class:`~eventyard.errors.StartupError` with one sentence,
and nothing is printed on stdout.

SIGTERM and SIGINT make uvicorn stop accepting, finish in-flight requests, then stop the
runtime, which lets the delivery engine finish in-flight attempts before the store
closes.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

import structlog
import uvicorn

from eventyard._version import __version__
from eventyard.errors import EventyardError, StartupError, StoreError
from eventyard.logs import configure_logging
from eventyard.server.api.app import create_app
from eventyard.server.api.authn import is_loopback
from eventyard.server.config import DEFAULT_PORT, Settings
from eventyard.server.connections import guarded_protocol, raise_open_file_limit
from eventyard.server.runtime import DEMO_BUS, DEMO_QUEUE, DEMO_RULE, Runtime
from eventyard.server.storage import is_shared_store, open_settings_store, store_description
from eventyard.server.store.filelock import StoreLock

__all__ = ["banner", "bind", "serve"]

log = structlog.get_logger("eventyard.server")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; returns after a clean shutdown.

    Raises:
        StartupError: the address cannot be bound, or the store or the router cannot
            start; nothing was printed on stdout.
    """
    log_format = configure_logging(settings.log_level, settings.log_format)
    # room for the connection cap plus the store's, the webhooks' and the loop's files
    files = raise_open_file_limit(settings.max_connections + 1024)
    if files < settings.max_connections + 64:
        log.warning(
            "open-file limit below the connection cap",
            open_files=files,
            max_connections=settings.max_connections,
        )
    try:
        store = open_settings_store(settings)
    except StoreError as exc:
        where = store_description(settings)
        raise StartupError(f"cannot open the store ({where}): {exc}") from None
    data_dir_lock = _lock_data_dir(settings)
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {reason}") from None
    with sock:
        settings = replace(settings, port=sock.getsockname()[1])
        app = create_app(settings, store)
        config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # uvicorn's records go through our handler (eventyard.logs)
            access_log=False,  # our own access log, at debug (api/app.py)
            loop="uvloop",
            http=guarded_protocol(
                header_timeout=settings.header_timeout,
                body_timeout=settings.body_timeout,
                max_connections=settings.max_connections,
            ),
            # the runtime is started and stopped by _Server, where a failure can be
            # reported in one line instead of uvicorn's traceback
            lifespan="off",
            timeout_graceful_shutdown=int(settings.shutdown_timeout),
        )

        def announce() -> None:
            print(f"eventyard listening on {_url(settings)}", flush=True)
            if log_format == "console":
                color = _stream_is_terminal(sys.stderr) and not os.environ.get("NO_COLOR")
                lines = banner(settings, color=color, auth=_auth_mode(app.state.runtime))
                sys.stderr.write("".join(f"{line}\n" for line in lines))
                sys.stderr.flush()
            else:
                log.info(
                    "eventyard ready",
                    url=_url(settings),
                    data_dir=os.path.abspath(settings.data_dir),
                    store=store_description(settings),
                    config_file=settings.config_file,
                    demo=settings.demo,
                    auth=_auth_mode(app.state.runtime),
                    version=__version__,
                )

        server = _Server(config, app.state.runtime, announce)
        # uvicorn handles SIGTERM/SIGINT during serve() and re-raises the signal afterwards
        # with the handlers found at start; no-op handlers turn a clean shutdown into exit 0
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: None)
        try:
            server.run(sockets=[sock])
        finally:
            if data_dir_lock is not None:
                data_dir_lock.release()


def _lock_data_dir(settings: Settings) -> StoreLock | None:
    """On a shared store, this process's claim on its data directory (else None).

    The SQLite store locks its own file. On a shared store nothing in the data
    directory is shared between processes, but its admin socket and master key file
    are this process's: two processes on one data directory would take each other's
    socket, so the second is refused. Processes with their own directories share the
    store freely.

    Raises:
        StartupError: another process uses the data directory.
    """
    if not is_shared_store(settings):
        return None
    os.makedirs(settings.data_dir, exist_ok=True)
    lock = StoreLock(os.path.join(settings.data_dir, "eventyard.process.lock"))
    try:
        lock.acquire()
    except StoreError as exc:
        holder = re.search(r"in use by (.*?);", str(exc))
        by = f" by {holder[1]}" if holder else f" ({exc})"
        raise StartupError(
            f"the data directory {os.path.abspath(settings.data_dir)} is in use{by}: "
            "each eventyard process on a shared store needs its own --data-dir"
        ) from None
    return lock


def _auth_mode(runtime: Runtime) -> str:
    """How requests are authenticated right now, in a few words for the banner."""
    if not runtime.authenticator.dev_mode:
        return "access keys required (SigV4 or bearer token)"
    if runtime.settings.insecure_no_auth and not is_loopback(runtime.settings.host):
        return "OFF (--insecure-no-auth): anyone who reaches this server can use it"
    return "dev mode: any credentials, until the first access key is created"


def banner(settings: Settings, *, color: bool = False, auth: str | None = None) -> list[str]:
    """The start-up banner's lines: where the server is, what it has, what to try.

    Args:
        settings: the running server's settings (with the port it got).
        color: whether to emphasise the headings with ANSI bold.
        auth: how requests are authenticated (a line of its own when given).
    """
    bold, plain = ("\x1b[1m", "\x1b[0m") if color else ("", "")
    url = _url(settings)
    debug = settings.log_level.lower() == "debug"
    lines = [
        f"{bold}eventyard {__version__} is ready{plain}",
        f"  url       {url}",
        f"  data dir  {os.path.abspath(settings.data_dir)}",
        f"  store     {store_description(settings)}",
        f"  config    {settings.config_file or 'no file (flags, EVENTYARD_* variables, defaults)'}",
        f"  logs      {settings.log_level}"
        + (" (one line per request)" if debug else " (--log-level debug logs every request)"),
    ]
    if auth is not None:
        lines.append(f"  auth      {auth}")
    if settings.demo:
        lines.append(
            f"  demo      bus {DEMO_BUS}: rule {DEMO_RULE} copies every event to queue {DEMO_QUEUE}"
        )
    lines += ["", f"{bold}Try, in another terminal:{plain}"]
    local = _local_url(settings)
    if local != f"http://127.0.0.1:{DEFAULT_PORT}":
        lines.append(f"  export EVENTYARD_URL={local}")
    if settings.demo:
        lines += [
            f"  eventyard put --bus {DEMO_BUS} --source shop --detail-type OrderPlaced"
            " --detail '{\"id\": 1}'",
            f"  eventyard queues receive {DEMO_QUEUE}",
            f"  eventyard tail --bus {DEMO_BUS}",
        ]
    else:
        lines += [
            "  eventyard put --source shop --detail-type OrderPlaced --detail '{\"id\": 1}'",
            "  eventyard tail --bus default",
            "  (no rule exists yet: `eventyard serve --demo` adds a bus, a rule and a queue)",
        ]
    lines += ["", "Stop with Ctrl-C."]
    return lines


class _Server(uvicorn.Server):
    """uvicorn's server, starting and stopping the runtime around serving.

    The runtime starts before uvicorn accepts requests, so the first request finds the
    store open and the router running; ``on_ready`` runs once both are up. uvicorn waits
    for open connections before it shuts down; marking the runtime not ready first makes
    ``/readyz`` answer 503 at once and ends long-lived streams (``eventyard tail``),
    which would otherwise hold the shutdown for its whole grace period; long polls are
    told to answer now (``Runtime.on_shutdown``).
    """

    def __init__(
        self, config: uvicorn.Config, runtime: Runtime, on_ready: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await self.runtime.start()
        except Exception as exc:
            log.debug("start-up failed", exc_info=True)
            with contextlib.suppress(Exception):
                await self.runtime.stop()
            raise StartupError(_reason(exc, self.runtime.settings)) from None
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.runtime.ready = False
        for close in self.runtime.on_shutdown:
            close()
        try:
            await super().shutdown(sockets)
        finally:
            await self.runtime.stop()


def _reason(exc: Exception, settings: Settings) -> str:
    """One sentence for a start-up failure (the traceback is logged at debug)."""
    if isinstance(exc, StoreError):
        if is_shared_store(settings):
            return f"cannot open the store ({store_description(settings)}): {exc}"
        return f"cannot open the store in {os.path.abspath(settings.data_dir)}: {exc}"
    if isinstance(exc, EventyardError):
        return f"cannot start: {exc}"
    if isinstance(exc, OSError):
        return f"cannot start: {exc.strerror or exc}"
    return f"cannot start: {type(exc).__name__}: {exc}"


def _url(settings: Settings) -> str:
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    return f"http://{host}:{settings.port}"


def _local_url(settings: Settings) -> str:
    """The URL a command on this machine uses (a wildcard address is not one to call)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    host = host if ":" not in host else f"[{host}]"
    return f"http://{host}:{settings.port}"


def _stream_is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
