"""The ASGI application: the AWS endpoint on ``POST /``, health and metrics.

:func:`create_app` wires the components together (store, router, delivery engine and
the two AWS-protocol services) and runs them for the lifetime of the server. ``POST /``
dispatches on ``X-Amz-Target``: ``AWSEvents.*`` to EventBridge, ``AmazonSQS.*`` to the
queues. EventBridge Scheduler's REST-JSON paths (``/schedules``, ``/schedule-groups``,
``/tags``) go to :mod:`eventyard.server.api.rest`. Every answer is AWS-shaped JSON; an
unexpected exception is logged and answered with ``InternalException``, never with a
traceback.

A PutEvents answer carries one header that AWS does not send (boto3 ignores it):
``x-eventyard-matched-rules``, how many rules each entry matched, index-aligned with
the entries, ``-`` for a rejected entry and for an entry put on another account's bus
(whose rules are not the caller's to count) (e.g. ``2,0,-,1``). With ``log_level`` debug,
every request is logged once it is answered (:class:`AccessLog`); otherwise the access
log is not in the request path at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventyard.envelope import MATCHED_RULES_HEADER
from eventyard.errors import (
    InternalError,
    SerializationError,
    ServiceError,
    SqsError,
    StoreError,
    UnknownOperation,
)
from eventyard.server.api.authn import Screened, service_of
from eventyard.server.api.native import (
    SEARCH_PATH,
    TAIL_PATH,
    TRACE_PATH,
    NativeGuard,
    metrics,
    search,
    tail_events,
    trace,
)
from eventyard.server.api.protocol import (
    JSON_CONTENT_TYPES,
    decode_params,
    encode_error,
    encode_result,
)
from eventyard.server.api.rest import scheduler_routes
from eventyard.server.auth.keys import Principal
from eventyard.server.auth.sigv4 import Service
from eventyard.server.config import Settings
from eventyard.server.router import MATCHED_RULES
from eventyard.server.runtime import Runtime
from eventyard.server.storage import open_settings_store
from eventyard.server.store import Store

__all__ = ["MATCHED_RULES_HEADER", "AccessLog", "AwsEndpoint", "BodyBudget", "create_app"]

log = structlog.get_logger("eventyard.server.api")
access_log = structlog.get_logger("eventyard.server.access")

_AMZ_JSON = "application/x-amz-json-1.1"


class AwsEndpoint:
    """``POST /``: the AWS JSON endpoint, as a bare ASGI app.

    It is the hot path (every PutEvents goes through it), so it reads the body and writes
    the answer with plain ASGI messages instead of Starlette's request and response
    objects, which cost more than the routing itself.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # room for the largest PutEvents request (entries plus JSON escaping) and more
        self.max_body = max(4 * 1024 * 1024, 4 * runtime.settings.max_entries_size)
        self.budget = BodyBudget(runtime.settings.max_body_bytes_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = content_type = b""
        declared = 0
        for name, value in scope["headers"]:
            if name == b"x-amz-target":
                target = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
        operation = target.decode("latin-1")
        service = service_of(operation)
        authenticator = self.runtime.authenticator
        # Everything that does not need the body is refused before a byte of it is read:
        # the Host (a rebinding page gets nothing done), the size it announces, then the
        # credentials (who is not allowed in buffers nothing).
        if not authenticator.host_allowed(scope):
            await self._refuse(send, authenticator.host_refusal(scope, service), content_type)
            return
        if declared > self.max_body:
            await self._refuse(send, self._too_large(), _AMZ_JSON.encode())
            return
        try:
            screened = await authenticator.screen(scope, service)
        except ServiceError as exc:
            await self._refuse(send, exc, content_type)
            return
        if not self.budget.take(declared):
            await self._refuse(send, _throttled(service), content_type)
            return
        held = declared
        try:
            chunks = []
            received = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_body:
                    # refused before it is buffered: a huge body must not exhaust memory
                    await self._refuse(send, self._too_large(), _AMZ_JSON.encode())
                    return
                if received > held:  # more than announced (or no Content-Length)
                    if not self.budget.take(received - held):
                        await self._refuse(send, _throttled(service), content_type)
                        return
                    held = received
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            payload = b"".join(chunks)
            try:
                caller = await self._caller(scope, screened, payload, service)
            except ServiceError as exc:
                status, headers, body = self._error(exc, _answer_type(content_type))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            handling = self.handle(operation, content_type.decode("latin-1"), payload, caller)
            if operation in _ABANDONABLE:
                answer = await _unless_disconnected(handling, receive)
                if answer is None:
                    return  # the client left: nobody would read what a long poll takes
            else:
                answer = await handling
            status, headers, body = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.budget.give(held)

    async def _caller(
        self, scope: Scope, screened: Screened, payload: bytes, service: Service
    ) -> Principal | None:
        """Who calls: the screened answer, or the SigV4 signature verified over the body."""
        if screened.final:
            return screened.principal
        return await self.runtime.authenticator.authenticate(scope, payload, service)

    def _too_large(self) -> ServiceError:
        return SerializationError(f"Request body is larger than {self.max_body} bytes.", status=413)

    async def _refuse(self, send: Send, error: ServiceError, content_type: bytes) -> None:
        """Answer ``error`` without reading the body, and close the connection (the
        unread body would otherwise have to be read past)."""
        status, headers, body = self._error(error, _answer_type(content_type))
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def handle(
        self, target: str, content_type: str, body: bytes, caller: Principal | None = None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Dispatch one request for ``caller`` (None: the home account); returns status,
        headers and body. Never raises."""
        service, _, op = target.partition(".")
        media = content_type.split(";", maxsplit=1)[0].strip()
        answer_type = media if media in JSON_CONTENT_TYPES else _AMZ_JSON
        try:
            if media not in JSON_CONTENT_TYPES:
                raise SerializationError(
                    f"Unsupported Content-Type {media or '(none)'!r}: "
                    "use application/x-amz-json-1.1 (EventBridge) or 1.0 (SQS)."
                )
            operations = self.runtime.services.get(service)
            if operations is None or not op:
                raise UnknownOperation(f"Unknown operation {target or '(no X-Amz-Target)'}.")
            result = await operations.call(op, decode_params(body), caller)
        except ServiceError as exc:
            return self._error(exc, answer_type)
        except StoreError as exc:
            # the store refused the write (disk full, I/O error): nothing was acknowledged
            log.error("request not stored", target=target, error=str(exc))
            refused = InternalError(
                "The request was not stored: the server's disk refuses writes. Nothing in "
                "it was acknowledged; retry later."
            )
            return self._error(refused, answer_type)
        except Exception:
            log.exception("request failed", target=target)
            return self._error(InternalError("Internal error."), answer_type)
        matched = result.pop(MATCHED_RULES, None) if op == "PutEvents" else None
        payload = encode_result(result)
        headers = _headers(answer_type, len(payload))
        if matched is not None:
            headers.append((_MATCHED_RULES_HEADER, _counts(matched)))
        return 200, headers, payload

    @staticmethod
    def _error(
        error: ServiceError, content_type: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        payload = encode_error(error)
        headers = _headers(content_type, len(payload))
        query_error = getattr(error, "query_error", None)
        if query_error:
            headers.append((b"x-amzn-query-error", str(query_error).encode("latin-1")))
        return error.status, headers, payload


# Operations a client that hung up can abandon: a long poll would otherwise take (and
# hide) messages nobody reads. Writes are never abandoned: once started they finish.
_ABANDONABLE = frozenset({"AmazonSQS.ReceiveMessage"})

_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class BodyBudget:
    """The request body bytes all connections may hold at once (``max_body_bytes_in_flight``).

    A request takes its announced ``Content-Length`` before its body is read (and more
    as it sends more than it announced), and gives it back once answered. One event
    loop serves every connection, so no lock is needed.

    Args:
        limit: the bytes in flight at most; a request alone in flight is admitted
            whatever its size, so that a limit below the body limit cannot refuse all.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (and nothing reserved) when over the limit."""
        if self.used and self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        """Give back bytes taken."""
        self.used -= size


def _throttled(service: Service) -> ServiceError:
    """The retryable answer to a request over the in-flight body budget (HTTP 503)."""
    message = (
        "Too many request bytes are in flight on this server; retry shortly "
        "(max_body_bytes_in_flight)."
    )
    if service == "sqs":
        return SqsError("RequestThrottled", "RequestThrottled", message, status=503)
    return ServiceError(message, code="ThrottlingException", status=503)


async def _unless_disconnected(handling: Awaitable[_Answer], receive: Receive) -> _Answer | None:
    """Run ``handling`` unless the client disconnects first (then cancel it, return None)."""
    task = asyncio.ensure_future(handling)
    disconnect = asyncio.ensure_future(receive())
    try:
        await asyncio.wait({task, disconnect}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        disconnect.cancel()
        await asyncio.wait({task, disconnect})
    if task.cancelled():
        return None
    return task.result()


_MATCHED_RULES_HEADER = MATCHED_RULES_HEADER.encode("latin-1")


def _counts(matched: Sequence[int | None]) -> bytes:
    """The header value of per-entry match counts: ``2,0,-`` (``-``: rejected entry, or
    one put on another account's bus)."""
    return ",".join("-" if count is None else str(count) for count in matched).encode()


class AccessLog:
    """One debug line per answered request: method, path, operation, status, duration.

    Only installed when the log level is debug (:func:`create_app`), so it costs nothing
    otherwise. Only the request line and ``X-Amz-Target`` are logged, never a body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            operation = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-amz-target"), None
            )
            client = scope.get("client")
            access_log.debug(
                "request",
                method=scope["method"],
                path=scope["path"],
                operation=operation,
                status=status or None,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                client=f"{client[0]}:{client[1]}" if client else None,
            )


def _answer_type(content_type: bytes) -> str:
    """The content type of an answer: the request's JSON flavour, else AWS JSON 1.1."""
    media = content_type.decode("latin-1").split(";", maxsplit=1)[0].strip()
    return media if media in JSON_CONTENT_TYPES else _AMZ_JSON


def _headers(content_type: str, length: int) -> list[tuple[bytes, bytes]]:
    # every answer of the AWS endpoint carries a request id, as AWS's do (SDKs log it
    # and put it in their exceptions' ResponseMetadata)
    return [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(length).encode()),
        (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
    ]


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """Build the ASGI app; components start in its lifespan."""
    runtime = Runtime(settings, store or open_settings_store(settings))

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if not runtime.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        failure = runtime.store.write_failure()
        if failure is None and runtime.router is not None:
            failure = runtime.router.backpressure.reason()
        if failure is not None:
            return JSONResponse({"status": "unavailable", "reason": failure}, status_code=503)
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    debug = settings.log_level.lower() == "debug"
    aws = AwsEndpoint(runtime)
    app = Starlette(
        middleware=[Middleware(AccessLog)] if debug else [],
        routes=[
            Route("/", aws, methods=["POST"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route(
                "/metrics",
                NativeGuard(metrics, runtime.authenticator, operator=True),
                methods=["GET"],
            ),
            Route(TAIL_PATH, NativeGuard(tail_events, runtime.authenticator), methods=["GET"]),
            Route(SEARCH_PATH, NativeGuard(search, runtime.authenticator), methods=["GET"]),
            Route(TRACE_PATH, NativeGuard(trace, runtime.authenticator), methods=["GET"]),
            *scheduler_routes(runtime, aws.budget),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
