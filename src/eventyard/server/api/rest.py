"""The REST-JSON endpoint of the EventBridge Scheduler API (boto3's ``scheduler`` client).

Unlike EventBridge and SQS (one ``POST /`` naming the operation in ``X-Amz-Target``),
Scheduler's protocol is REST-JSON: the operation is the method and path, some members
travel in the path and the query string, and errors are the status code with the code
in the ``x-amzn-ErrorType`` header and ``{"Message": ...}`` as the body. The routes, from
botocore's model (``scheduler`` 2021-06-30)::

    POST|GET|PUT|DELETE /schedules/{Name}       Create/Get/Update/DeleteSchedule
    GET                 /schedules              ListSchedules
    POST|GET|DELETE     /schedule-groups/{Name} Create/Get/DeleteScheduleGroup
    GET                 /schedule-groups        ListScheduleGroups
    POST|GET|DELETE     /tags/{ResourceArn}     Tag/ListTagsFor/UntagResource

Every request passes the same gate as the AWS endpoint (:mod:`eventyard.server.api.authn`):
the ``Host`` check, the body limit and the in-flight body budget before the body is
read, then the credentials, with SigV4 scoped to the service ``scheduler``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, unquote

import orjson
import structlog
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from eventyard.errors import (
    InternalError,
    SerializationError,
    ServiceError,
    StoreError,
    UnknownOperation,
)
from eventyard.server.api.protocol import decode_params
from eventyard.server.runtime import Runtime

__all__ = ["SCHEDULER_ROUTES", "Budget", "SchedulerEndpoint", "scheduler_routes"]

log = structlog.get_logger("eventyard.server.api")

#: the largest Scheduler request body (an Input is at most 256 KiB)
MAX_BODY: Final = 1024 * 1024
#: Starlette path templates this endpoint serves
SCHEDULER_ROUTES: Final = (
    "/schedules",
    "/schedules/{name}",
    "/schedule-groups",
    "/schedule-groups/{name}",
    "/tags/{arn:path}",
)
# (method, collection) -> (operation, the member the path's last segment is)
_OPERATIONS: Final = {
    ("POST", "schedules"): ("CreateSchedule", "Name"),
    ("GET", "schedules"): ("GetSchedule", "Name"),
    ("PUT", "schedules"): ("UpdateSchedule", "Name"),
    ("DELETE", "schedules"): ("DeleteSchedule", "Name"),
    ("POST", "schedule-groups"): ("CreateScheduleGroup", "Name"),
    ("GET", "schedule-groups"): ("GetScheduleGroup", "Name"),
    ("DELETE", "schedule-groups"): ("DeleteScheduleGroup", "Name"),
    ("POST", "tags"): ("TagResource", "ResourceArn"),
    ("GET", "tags"): ("ListTagsForResource", "ResourceArn"),
    ("DELETE", "tags"): ("UntagResource", "ResourceArn"),
}
_LISTS: Final = {"schedules": "ListSchedules", "schedule-groups": "ListScheduleGroups"}
# query-string names -> model member names
_QUERY: Final = {
    "groupName": "GroupName",
    "ScheduleGroup": "GroupName",
    "clientToken": "ClientToken",
    "NamePrefix": "NamePrefix",
    "State": "State",
    "NextToken": "NextToken",
    "MaxResults": "MaxResults",
    "TagKeys": "TagKeys",
}


class Budget(Protocol):
    """The in-flight body budget shared with the AWS endpoint (``api.app.BodyBudget``)."""

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False when over the limit."""
        ...

    def give(self, size: int) -> None:
        """Give back bytes taken."""
        ...


class SchedulerEndpoint:
    """The Scheduler routes, as one bare ASGI app (see the module docstring)."""

    def __init__(self, runtime: Runtime, budget: Budget) -> None:
        self.runtime = runtime
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = 0
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        authenticator = self.runtime.authenticator
        if not authenticator.host_allowed(scope):
            await _answer(send, *_error(authenticator.host_refusal(scope, "scheduler")), close=True)
            return
        if declared > MAX_BODY:
            await _answer(send, *_error(_too_large()), close=True)
            return
        try:
            screened = await authenticator.screen(scope, "scheduler")
        except ServiceError as exc:
            await _answer(send, *_error(exc), close=True)
            return
        if not self.budget.take(declared):
            throttled = ServiceError(
                "Too many request bytes are in flight on this server; retry shortly.",
                code="ThrottlingException",
                status=429,
            )
            await _answer(send, *_error(throttled), close=True)
            return
        held = declared
        try:
            chunks: list[bytes] = []
            received = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > MAX_BODY:
                    await _answer(send, *_error(_too_large()), close=True)
                    return
                if received > held:
                    if not self.budget.take(received - held):
                        await _answer(send, *_error(_too_large()), close=True)
                        return
                    held = received
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            status, payload = await self._handle(scope, body, screened)
            await _answer(send, status, payload)
        finally:
            self.budget.give(held)

    async def _handle(self, scope: Scope, body: bytes, screened: Any) -> tuple[int, bytes]:
        """Authenticate, route and run one request; never raises."""
        try:
            caller = screened.principal
            if not screened.final:
                caller = await self.runtime.authenticator.authenticate(scope, body, "scheduler")
            op, params = _request(scope, body)
            scheduler = self.runtime.scheduler
            if scheduler is None:
                raise InternalError("The server is not ready.", status=503)
            result = await scheduler.call(op, params, caller)
        except ServiceError as exc:
            return _error(exc)
        except StoreError as exc:
            log.error("scheduler request not stored", error=str(exc))
            refused = ServiceError(
                "The request was not stored: the server's disk refuses writes; retry later.",
                code="InternalServerException",
                status=500,
            )
            return _error(refused)
        except Exception:
            log.exception("scheduler request failed", path=scope.get("path"))
            return _error(
                ServiceError("Internal error.", code="InternalServerException", status=500)
            )
        return 200, orjson.dumps(result)


def _request(scope: Scope, body: bytes) -> tuple[str, dict[str, Any]]:
    """The operation and its parameters (body, path and query members merged).

    Raises:
        UnknownOperation: no operation has this method and path.
        SerializationError: the body is not a JSON object.
    """
    method = scope["method"]
    raw = scope.get("raw_path") or scope["path"].encode()
    segments = raw.decode("latin-1").strip("/").split("/", 1)
    collection = segments[0]
    params: dict[str, Any] = decode_params(body) if body.strip() else {}
    if len(segments) == 1:
        op = _LISTS.get(collection) if method == "GET" else None
        member = None
    else:
        op, member = _OPERATIONS.get((method, collection), (None, None))
    if op is None:
        raise UnknownOperation(f"No operation at {method} {scope['path']}.", status=404)
    if member is not None:
        params[member] = unquote(segments[1])
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        member_name = _QUERY.get(name)
        if member_name is None:
            continue
        if member_name == "TagKeys":
            params.setdefault("TagKeys", []).append(value)
        elif member_name == "MaxResults":
            if not value.isdigit():
                raise SerializationError(f"MaxResults must be an integer, not {value!r}.")
            params[member_name] = int(value)
        else:
            params[member_name] = value
    return op, params


def _too_large() -> ServiceError:
    return SerializationError(f"Request body is larger than {MAX_BODY} bytes.", status=413)


def _error(error: ServiceError) -> tuple[int, bytes]:
    return error.status, orjson.dumps({"Message": error.message, "__type": error.code})


async def _answer(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status >= 300:
        code = orjson.loads(body).get("__type", "")
        headers.append((b"x-amzn-errortype", str(code).encode("latin-1")))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def scheduler_routes(runtime: Runtime, budget: Budget) -> list[Route]:
    """The Starlette routes of the Scheduler API."""
    endpoint = SchedulerEndpoint(runtime, budget)
    methods = ["GET", "POST", "PUT", "DELETE"]
    return [Route(path, endpoint, methods=methods) for path in SCHEDULER_ROUTES]
