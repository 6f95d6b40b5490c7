"""The real ASGI app in this process, called without sockets, and what each answer must be.

:class:`InProcessServer` builds :func:`eventyard.server.api.app.create_app` over a real
SQLite store, runs its lifespan (router, delivery engine) on an event loop in a
background thread, and sends each :class:`~tests.fuzz.requests.FuzzRequest` through
Starlette's routing to the real ``AwsEndpoint`` as plain ASGI messages. A call that does
not answer within its timeout is a hang, even if the loop itself is stuck (the caller's
thread waits on a future, not on the loop). The client stays connected until it has its
answer, or until ``patience`` seconds have passed: then it hangs up, which ends a long
poll without an answer, as a real client's disconnect does.

:func:`problems` states the invariants of one answer; :class:`Tally` counts a run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from eventyard.server.api.app import create_app
from eventyard.server.config import Settings
from tests.fuzz.requests import ACCOUNT, REGION, FuzzRequest

__all__ = ["Answer", "InProcessServer", "Tally", "problems", "rss_bytes"]


@dataclass
class Answer:
    """What the app did with one request.

    Attributes:
        status: the HTTP status, or None when no answer started.
        headers: the response headers.
        body: the response body.
        crash: the exception that escaped the app (``repr``), if any.
        hang: the call did not finish within its timeout.
        abandoned: the client hung up first (a long poll), so no answer is expected.
        seconds: how long the call took.
    """

    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    crash: str | None = None
    hang: bool = False
    abandoned: bool = False
    seconds: float = 0.0

    def header(self, name: bytes) -> bytes | None:
        """The value of response header ``name`` (lower case), if present."""
        return next((v for k, v in self.headers if k == name), None)


def rss_bytes() -> int:
    """This process's resident set size, from ``/proc/self/status``."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _ErrorLog:
    """A structlog processor that keeps error-level events and drops every event.

    ``exceptions`` are the events logged with a traceback: an exception that something
    caught as unexpected (a request answered 500, a delivery loop step failing), i.e. a
    crash. ``errors`` are the other error-level events, which report conditions of the
    data, e.g. a dead-letter queue that does not exist.
    """

    def __init__(self) -> None:
        self.exceptions: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> Any:
        if method in ("error", "exception", "critical"):
            kept = {k: str(v)[:300] for k, v in event.items()}
            crashed = method == "exception" or event.get("exc_info")
            (self.exceptions if crashed else self.errors).append(kept)
        raise structlog.DropEvent


class InProcessServer:
    """The app over a real store in ``data_dir``, served on a background event loop.

    Use it as a context manager; :meth:`call` sends one request.

    Args:
        data_dir: the store's directory.
        timeout: seconds a call may take before it counts as a hang.
        patience: seconds the client waits before hanging up on a long poll.
        settings: further :class:`Settings` fields.
    """

    def __init__(
        self, data_dir: Path, *, timeout: float = 10.0, patience: float = 0.2, **settings: Any
    ) -> None:
        self.settings = Settings(
            data_dir=str(data_dir),
            account_id=ACCOUNT,
            region=REGION,
            retry_base_delay=0.05,
            retry_max_delay=0.5,
            http_timeout=0.5,
            shutdown_timeout=1.0,
            **settings,
        )
        self.timeout = timeout
        self.patience = patience
        self.app = create_app(self.settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.error_log = _ErrorLog()
        self._old_logging: dict[str, Any] | None = None
        self.shutdown_seconds = 0.0
        self.rss_at_start = 0

    def __enter__(self) -> InProcessServer:
        self._old_logging = structlog.get_config()
        structlog.configure(processors=[self.error_log], cache_logger_on_first_use=False)
        self.rss_at_start = rss_bytes()
        self._thread.start()
        self._run(self._stack.enter_async_context(self.app.router.lifespan_context(self.app)))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            started = time.perf_counter()
            self._run(self._stack.aclose(), timeout=60)
            self.shutdown_seconds = time.perf_counter() - started
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
            if self._old_logging is not None:
                structlog.configure(**self._old_logging)

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, request: FuzzRequest) -> Answer:
        """Send ``request`` to ``POST /``; never raises."""
        started = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(self._asgi("POST", "/", request), self.loop)
        try:
            answer = future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            answer = Answer(hang=True)
        except Exception as exc:
            answer = Answer(crash=repr(exc)[:500])
        answer.seconds = time.perf_counter() - started
        return answer

    def create_key(self, account: str) -> str:
        """Create ``account`` and an access key of it in the running server; its key id.

        From then on the server verifies every request (dev mode ends).
        """
        keyring = self.app.state.runtime.keyring
        assert keyring is not None

        async def create() -> str:
            if await keyring.get_account(account) is None:
                await keyring.create_account(account)
            new = await keyring.create_key(account)
            return str(new.key.access_key_id)

        return str(self._run(create()))

    def get(self, path: str) -> Answer:
        """``GET path`` (``/readyz``, ``/livez``)."""
        request = FuzzRequest("get", (), b"")
        return self._run(self._asgi("GET", path, request), self.timeout)  # type: ignore[no-any-return]

    async def _asgi(self, method: str, path: str, request: FuzzRequest) -> Answer:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": request.query,
            "headers": [(b"host", b"127.0.0.1:4010"), *request.headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 4010),
            "state": {},
        }
        body = request.body
        step = max(1, -(-len(body) // request.chunks))
        pieces = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
        messages = [
            {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
            for i, piece in enumerate(pieces)
        ]
        answer = Answer()
        finished = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            # a connected client: nothing more to say until it gives up waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self.patience)
            if answer.status is None:
                answer.abandoned = True
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")
                if not message.get("more_body", False):
                    finished.set()

        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            answer.crash = repr(exc)[:500]
        return answer


# Errors the dispatcher answers before a service sees the request.
_ENVELOPE_ERRORS = ("SerializationException", "UnknownOperationException")
# SQS's modeled errors, and the unmodeled ones of AWS's front end (authentication)
_SQS_SHAPES = ("com.amazonaws.sqs#", "com.amazon.coral.service#")


def problems(request: FuzzRequest, answer: Answer) -> list[str]:
    """What is wrong with ``answer`` to ``request`` (empty when it keeps every promise).

    The promises: an answer within the timeout, no exception out of the app, a status
    below 500, a JSON object body, and errors shaped as AWS's (``__type`` and
    ``message``; for a request the SQS service handled, its query-compatible
    ``com.amazonaws.sqs#<Shape>``, or ``com.amazon.coral.service#<Code>`` for an
    authentication refusal, and the ``x-amzn-query-error`` header).
    """
    if answer.hang:
        return ["hang: no answer within the timeout"]
    if answer.crash is not None:
        return [f"crash: {answer.crash}"]
    if answer.status is None:
        return [] if answer.abandoned else ["no answer started"]
    found: list[str] = []
    if answer.status >= 500:
        found.append(f"status {answer.status}: {answer.body[:300]!r}")
    try:
        body = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return [*found, f"body is not JSON: {answer.body[:200]!r}"]
    if not isinstance(body, dict):
        return [*found, f"body is not a JSON object: {answer.body[:200]!r}"]
    if answer.status >= 400:
        kind, message = body.get("__type"), body.get("message")
        if not isinstance(kind, str) or not kind or not isinstance(message, str):
            found.append(f"error is not AWS-shaped: {answer.body[:200]!r}")
        elif (
            request.target.startswith("AmazonSQS.")
            and kind not in _ENVELOPE_ERRORS
            and not (kind.startswith(_SQS_SHAPES) and answer.header(b"x-amzn-query-error"))
        ):
            found.append(f"SQS error without the SQS shape: {answer.body[:200]!r}")
    return found


@dataclass
class Tally:
    """Counts of a fuzz run: requests by operation, statuses, and every problem."""

    operations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[FuzzRequest, list[str]]] = field(default_factory=list)
    slowest: float = 0.0

    @property
    def requests(self) -> int:
        """How many requests were sent."""
        return sum(self.operations.values())

    def add(self, request: FuzzRequest, answer: Answer) -> list[str]:
        """Count one exchange; returns its problems."""
        self.operations[request.operation] += 1
        if answer.hang:
            self.statuses["hang"] += 1
        elif answer.crash is not None:
            self.statuses["crash"] += 1
        elif answer.status is None:
            self.statuses["abandoned" if answer.abandoned else "none"] += 1
        else:
            self.statuses[str(answer.status)] += 1
            if answer.status >= 400:
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                    self.errors[str(orjson.loads(answer.body).get("__type"))] += 1
        self.slowest = max(self.slowest, answer.seconds)
        found = problems(request, answer)
        if found and len(self.failures) < 50:
            self.failures.append((request, found))
        return found
