"""eventyard's own HTTP endpoints, beside the AWS protocol: metrics, the live tail of a
bus, event search and the delivery trace.

Both sit behind :class:`NativeGuard`: the request's ``Host`` must be allowed (else 421)
and, unless the server is in dev mode, the request carries ``Authorization: Bearer
<token>`` or a SigV4 signature of an access key (else 401 with ``WWW-Authenticate:
Bearer``); see :mod:`eventyard.server.api.authn`. ``GET /metrics`` is Prometheus'
text format, and the operator's: its labels name every account's buses, so only a key
of the home account reads it (dev mode: anyone), another account gets 403
``AccessDeniedException``.

``GET /v1/buses/{bus}/tail`` streams the events a bus accepts from the moment of the
request, as Server-Sent Events (``text/event-stream``); ``eventyard tail`` reads it.
``{bus}`` is a bus name or ARN (URL-encoded). The contract:

- query ``pattern`` (optional): an EventBridge event pattern (JSON, URL-encoded); only
  matching events are sent. ``keepalive`` (optional, seconds, 1 to 300, default 15): how
  often an idle stream sends a comment so proxies and clients know it is alive.
- ``404 {"__type": "ResourceNotFoundException", "message": "Event bus X does not exist."}``
  for a bus that does not exist; ``400 {"__type": "InvalidEventPatternException", ...}``
  for an invalid pattern (``ValidationException`` for a bad ``keepalive``); 503 while the
  server starts.
- The stream opens with the comment ``: tailing bus X``; from then on every accepted event
  of the bus is sent. Each event is ``event: event`` with ``data:`` its envelope as one
  line of compact JSON; an idle stream sends ``: keepalive``; when the server had to drop
  events because the client read too slowly it sends ``event: dropped`` with
  ``data: {"count": n}`` (n dropped since the last such message).
- The stream ends when the client disconnects or the server stops being ready (shutdown).

The events come from a router's :class:`~eventyard.server.taps.Tap`, taken before the
response starts and always given back, whatever ends the stream.

``GET /v1/buses/{bus}/events`` searches the bus's stored events
(:mod:`eventyard.server.search`): query ``pattern`` (optional, any event pattern),
``since`` (default ``1h``) and ``until`` (default now), ISO 8601 times, epoch seconds or
durations before now (``15m``, ``2d``), ``limit`` (1 to 1000, default 100) and ``next``
(the previous page's token). It answers ``{"events": [{"id", "bus", "time", "seq",
"event"}], "next": token-or-null, "since", "until"}``; an invalid pattern is a 400
``InvalidEventPatternException`` with AWS's message, other bad parameters a 400
``ValidationException``, an unknown bus 404 ``ResourceNotFoundException``.

``GET /v1/events/{id}/trace`` answers the trace of one event
(:mod:`eventyard.server.trace`; ``docs/trace.md`` shows the object); query ``bus``,
``since`` and ``until`` give the window to look in for an id that is not time-ordered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from eventyard.errors import (
    AuthenticationError,
    ResourceNotFound,
    ServiceError,
    ServiceUnavailable,
    ValidationError,
)
from eventyard.patterns import Matcher, compile_pattern
from eventyard.server.api.authn import Authenticator
from eventyard.server.auth.keys import Principal
from eventyard.server.router import Router
from eventyard.server.runtime import Runtime
from eventyard.server.search import parse_limit, parse_time, search_events
from eventyard.server.taps import Tap, Taps
from eventyard.server.trace import iso, trace_event

__all__ = [
    "CALLER",
    "DEFAULT_KEEPALIVE",
    "SEARCH_PATH",
    "TAIL_PATH",
    "TRACE_PATH",
    "NativeGuard",
    "metrics",
    "search",
    "tail_events",
    "trace",
]

TAIL_PATH = "/v1/buses/{bus:path}/tail"  # path: a bus ARN has a slash
SEARCH_PATH = "/v1/buses/{bus:path}/events"
TRACE_PATH = "/v1/events/{event_id}/trace"
_DEFAULT_SINCE = "1h"
DEFAULT_KEEPALIVE = 15.0
_MIN_KEEPALIVE, _MAX_KEEPALIVE = 1.0, 300.0
# how often an idle stream looks at the server's state (shutdown ends it within this)
_POLL = 0.5
_EVENT_STREAM = "text/event-stream"
CALLER = "eventyard.caller"  # the ASGI scope key of the verified principal (None: home)


def _error(error: ServiceError) -> Response:
    return Response(orjson.dumps(error.to_dict()), error.status, media_type="application/json")


class NativeGuard:
    """The Host check and authentication in front of a native endpoint (an ASGI app).

    The verified principal is left in the scope under :data:`CALLER` for the endpoint.

    Args:
        endpoint: the Starlette request handler.
        authenticator: the server's authenticator.
        operator: the endpoint is the operator's: only a key of the home account
            (``settings.account_id``), or dev mode, may read it; another account's key
            is refused with 403 ``AccessDeniedException``.
    """

    def __init__(
        self, endpoint: Any, authenticator: Authenticator, *, operator: bool = False
    ) -> None:
        self.app = request_response(endpoint)
        self.authenticator = authenticator
        self.operator = operator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.authenticator.host_allowed(scope):
            response = Response(
                orjson.dumps(
                    {
                        "__type": "MisdirectedRequest",
                        "message": "This server does not answer to that Host name; add it "
                        "to allowed_hosts (EVENTYARD_ALLOWED_HOSTS) if a proxy or DNS name "
                        "serves it.",
                    }
                ),
                421,
                media_type="application/json",
            )
            await response(scope, receive, send)
            return
        try:
            caller = scope[CALLER] = await self.authenticator.authenticate_native(scope)
        except AuthenticationError as exc:
            response = _error(exc)
            response.headers["WWW-Authenticate"] = 'Bearer realm="eventyard"'
            await response(scope, receive, send)
            return
        except ServiceError as exc:
            await _error(exc)(scope, receive, send)
            return
        home = self.authenticator.settings.account_id
        if self.operator and caller is not None and caller.account_id != home:
            denied = ServiceError(
                f"Account {caller.account_id} may not read this endpoint: it shows the "
                f"whole server, and only the operator's account ({home}) may.",
                code="AccessDeniedException",
                status=403,
            )
            await _error(denied)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the process's Prometheus metrics (an operator endpoint).

    Their labels name every account's buses by internal name (``222233334444:orders``),
    so only the home account reads them (:class:`NativeGuard` ``operator``).
    """
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _router_of(runtime: Runtime) -> Router:
    """The running router.

    Raises:
        ServiceUnavailable: the server is not (or no longer) ready.
    """
    router = runtime.router
    if not runtime.ready or router is None:
        raise ServiceUnavailable("The server is not ready.")
    return router


def _keepalive(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_KEEPALIVE
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not _MIN_KEEPALIVE <= value <= _MAX_KEEPALIVE:
        raise ValidationError(
            f"keepalive must be a number of seconds from {_MIN_KEEPALIVE:g} to {_MAX_KEEPALIVE:g}."
        )
    return value


def _matcher(pattern: str | None, max_length: int) -> Matcher | None:
    """One-rule matcher for the ``pattern`` query parameter (None: every event).

    Raises:
        InvalidEventPattern: the pattern is not valid.
    """
    if pattern is None:
        return None
    matcher = Matcher()
    matcher.add("tail", compile_pattern(pattern, max_length=max_length))
    return matcher


async def tail_events(request: Request) -> Response:
    """``GET /v1/buses/{bus}/tail``: the bus's events as Server-Sent Events."""
    runtime: Runtime = request.app.state.runtime
    name = request.path_params["bus"]
    try:
        router = _router_of(runtime)
        # a bus of the caller's account only: another account's bus does not exist for it
        caller: Principal | None = request.scope.get(CALLER)
        bus = router.routing.bus_key(caller, name)
        if bus is None:
            raise ResourceNotFound(f"Event bus {name} does not exist.", status=404)
        keepalive = _keepalive(request.query_params.get("keepalive"))
        matcher = _matcher(request.query_params.get("pattern"), runtime.settings.max_pattern_length)
    except ServiceError as exc:
        return _error(exc)
    # subscribed before the response starts: a client that has the headers sees every
    # event accepted after that
    tap = router.taps.subscribe(bus)
    return _TailResponse(router.taps, tap, _stream(runtime, tap, matcher, keepalive))


class _TailResponse(StreamingResponse):
    """A streaming response that gives its tap back however the stream ends."""

    def __init__(self, taps: Taps, tap: Tap, content: AsyncIterator[bytes]) -> None:
        super().__init__(
            content,
            media_type=_EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._taps = taps
        self._tap = tap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._taps.unsubscribe(self._tap)


async def _stream(
    runtime: Runtime, tap: Tap, matcher: Matcher | None, keepalive: float
) -> AsyncIterator[bytes]:
    """The SSE frames of a tail until the server stops being ready.

    A client disconnect cancels the response that iterates this (Starlette listens for
    ``http.disconnect`` beside the stream).
    """
    yield f": tailing bus {tap.bus}\n\n".encode()
    reported = 0
    last_sent = time.monotonic()
    while runtime.ready:
        try:
            body = await asyncio.wait_for(tap.queue.get(), _POLL)
        except TimeoutError:
            if tap.dropped > reported:
                yield _dropped(tap.dropped - reported)
                reported = tap.dropped
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= keepalive:
                yield b": keepalive\n\n"
                last_sent = time.monotonic()
            continue
        frames: list[bytes] = []
        if tap.dropped > reported:
            frames.append(_dropped(tap.dropped - reported))
            reported = tap.dropped
        # drain what is already queued into one write: a busy bus costs one send per batch
        for item in _take_ready(tap, body):
            frame = _event_frame(item, matcher)
            if frame is not None:
                frames.append(frame)
        if frames:
            yield b"".join(frames)
            last_sent = time.monotonic()


def _take_ready(tap: Tap, first: bytes, limit: int = 256) -> list[bytes]:
    items = [first]
    while len(items) < limit:
        try:
            items.append(tap.queue.get_nowait())
        except asyncio.QueueEmpty:
            break
    return items


def _event_frame(body: bytes, matcher: Matcher | None) -> bytes | None:
    """``event: event`` with the envelope as one data line; None if the pattern refuses it."""
    event: Any = None
    if matcher is not None or b"\n" in body:
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if matcher is not None and not (isinstance(event, dict) and matcher.match(event)):
            return None
        if b"\n" in body:
            body = orjson.dumps(event)
    return b"event: event\ndata: " + body + b"\n\n"


def _dropped(count: int) -> bytes:
    return b"event: dropped\ndata: " + orjson.dumps({"count": count}) + b"\n\n"


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def search(request: Request) -> Response:
    """``GET /v1/buses/{bus}/events``: stored events of a bus that match a pattern."""
    runtime: Runtime = request.app.state.runtime
    name = request.path_params["bus"]
    query = request.query_params
    try:
        router = _router_of(runtime)
        caller: Principal | None = request.scope.get(CALLER)
        bus = router.routing.bus_key(caller, name)
        if bus is None:
            raise ResourceNotFound(f"Event bus {name} does not exist.", status=404)
        text = query.get("pattern")
        pattern = None
        if text is not None:
            pattern = (text, compile_pattern(text, max_length=runtime.settings.max_pattern_length))
        now = time.time()
        since = parse_time(query.get("since", _DEFAULT_SINCE), now, "since")
        until = parse_time(query["until"], now, "until") if "until" in query else now
        page = await search_events(
            router.store,
            bus,
            pattern=pattern,
            window=(since, until),
            limit=parse_limit(query.get("limit")),
            next_token=query.get("next"),
        )
    except ServiceError as exc:
        return _error(exc)
    scope = router.accounts.scope(caller)
    events = []
    for record in page.records:
        try:
            event: Any = orjson.loads(record.body)
        except orjson.JSONDecodeError:
            continue
        events.append(
            {
                "id": record.event_id,
                "bus": scope.name(record.bus),
                "time": iso(record.time),
                "seq": record.seq,
                "event": event,
            }
        )
    return _json(
        {"events": events, "next": page.next, "since": iso(page.since), "until": iso(page.until)}
    )


async def trace(request: Request) -> Response:
    """``GET /v1/events/{id}/trace``: what happened to one event."""
    runtime: Runtime = request.app.state.runtime
    event_id = request.path_params["event_id"]
    query = request.query_params
    try:
        router = _router_of(runtime)
        caller: Principal | None = request.scope.get(CALLER)
        scope = router.accounts.scope(caller)
        now = time.time()
        bus = None
        if "bus" in query:
            bus = router.routing.bus_key(caller, query["bus"])
            if bus is None:
                raise ResourceNotFound(f"Event bus {query['bus']} does not exist.", status=404)
        since = parse_time(query["since"], now, "since") if "since" in query else None
        until = parse_time(query["until"], now, "until") if "until" in query else None
        if since is None and (bus is not None or until is not None):
            raise ValidationError("bus and until need since: the window to look in.")
        if since is not None and until is None:
            until = now
        result = await trace_event(router, scope, event_id, bus=bus, since=since, until=until)
    except ServiceError as exc:
        return _error(exc)
    return _json(result)
