"""The ASGI application: the AWS endpoint on ``POST /``, health and metrics.

:func:`create_app` wires the components together (store, router, delivery engine and
the two AWS-protocol services) and runs them for the lifetime of the server. ``POST /``
dispatches on ``X-Amz-Target``: ``AWSEvents.*`` to EventBridge, ``AmazonSQS.*`` to the
queues. Every answer is AWS-shaped JSON; an unexpected exception is logged and answered
with ``InternalException``, never with a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventyard.api.protocol import (
    JSON_CONTENT_TYPES,
    Operations,
    decode_params,
    encode_error,
    encode_result,
)
from eventyard.config import Settings
from eventyard.errors import (
    InternalError,
    ResourceAlreadyExists,
    SerializationError,
    ServiceError,
    UnknownOperation,
)
from eventyard.store import Store, open_store

__all__ = ["Runtime", "create_app"]

log = structlog.get_logger("eventyard.api")

_AMZ_JSON = "application/x-amz-json-1.1"


@dataclass
class Runtime:
    """The running components; ``ready`` is true once the store is open and deliveries run."""

    settings: Settings
    store: Store
    services: dict[str, Operations] = field(default_factory=dict)
    ready: bool = False
    closers: list[Any] = field(default_factory=list)


async def _start(runtime: Runtime) -> None:
    from eventyard.api.aws import EventsApi
    from eventyard.api.sqs import QueuesApi
    from eventyard.router import Router

    await runtime.store.open()
    router = Router(runtime.settings, runtime.store)
    await router.start()
    runtime.closers.append(router.stop)
    runtime.services["AWSEvents"] = EventsApi(runtime.store, runtime.settings, router)
    runtime.services["AmazonSQS"] = QueuesApi(runtime.store, runtime.settings, router)
    if runtime.settings.demo:
        await _create_demo(runtime)
    runtime.ready = True


async def _create_demo(runtime: Runtime) -> None:
    """A bus ``demo`` whose rule ``demo-all`` copies every event to queue ``demo-queue``."""
    events, queues = runtime.services["AWSEvents"], runtime.services["AmazonSQS"]
    settings = runtime.settings
    queue_arn = f"arn:aws:sqs:{settings.region}:{settings.account_id}:demo-queue"
    await queues.call("CreateQueue", {"QueueName": "demo-queue"})
    with contextlib.suppress(ResourceAlreadyExists):
        await events.call("CreateEventBus", {"Name": "demo"})
    await events.call(
        "PutRule",
        {
            "Name": "demo-all",
            "EventBusName": "demo",
            "EventPattern": '{"source": [{"prefix": ""}]}',
            "Description": "Every event on the demo bus goes to demo-queue.",
        },
    )
    await events.call(
        "PutTargets",
        {
            "Rule": "demo-all",
            "EventBusName": "demo",
            "Targets": [{"Id": "demo-queue", "Arn": queue_arn}],
        },
    )


async def _stop(runtime: Runtime) -> None:
    runtime.ready = False
    for close in reversed(runtime.closers):
        try:
            await close()
        except Exception:
            log.exception("shutdown step failed")
    await runtime.store.close()


def _error(error: ServiceError, content_type: str = _AMZ_JSON) -> Response:
    headers = {}
    if getattr(error, "query_error", None):
        headers["x-amzn-query-error"] = str(error.query_error)  # type: ignore[attr-defined]
    return Response(encode_error(error), error.status, headers, content_type)


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """Build the ASGI app; components start in its lifespan."""
    runtime = Runtime(settings, store or open_store(settings.data_dir))

    async def aws(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        service, _, op = target.partition(".")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        answer_type = content_type if content_type in JSON_CONTENT_TYPES else _AMZ_JSON
        try:
            if content_type not in JSON_CONTENT_TYPES:
                raise SerializationError(
                    f"Unsupported Content-Type {content_type or '(none)'!r}: "
                    "use application/x-amz-json-1.1 (EventBridge) or 1.0 (SQS)."
                )
            operations = runtime.services.get(service)
            if operations is None or not op:
                raise UnknownOperation(f"Unknown operation {target or '(no X-Amz-Target)'}.")
            params = decode_params(await request.body())
            result = await operations.call(op, params)
        except ServiceError as exc:
            return _error(exc, answer_type)
        except Exception:
            log.exception("request failed", target=target)
            return _error(InternalError("Internal error."), answer_type)
        return Response(encode_result(result), 200, media_type=answer_type)

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if runtime.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await _start(runtime)
        try:
            yield
        finally:
            await _stop(runtime)

    app = Starlette(
        routes=[
            Route("/", aws, methods=["POST"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
