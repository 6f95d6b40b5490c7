"""Consumers: event handlers as decorated functions; :mod:`eventyard.sdk.worker` runs them.

A :class:`Consumer` holds the handlers one service has for one bus::

    consumer = Consumer(bus="orders", name="warehouse")

    @consumer.on({"detail-type": ["OrderPlaced"]})
    async def reserve_stock(event: Event) -> None: ...

Each handler gets a queue of its own (``<consumer>-<handler>``), a rule on the bus with
the handler's pattern whose target is that queue, and a dead-letter queue
(``<queue>-dlq``). :meth:`Consumer.setup` creates them idempotently, :meth:`Consumer.run`
long-polls the queues and calls the handlers (in :mod:`eventyard.sdk.worker`), and
``eventyard worker module:consumer`` (:func:`run_worker`, which finds the consumer with
:func:`load_consumer`) does both until SIGTERM.

A handler settles its event by how it ends:

- returning acknowledges it: the message is deleted (acknowledgements go ten per
  DeleteMessageBatch request, each waiting at most 10 ms for others of its queue);
- raising an exception retries it after a backoff of ``retry_delay * 2**(attempt - 1)``
  seconds (times a random 0.5 to 1, at most ``max_retry_delay``);
- ``raise Retry(delay=s)`` retries it after ``s`` seconds;
- ``raise Drop()`` acknowledges it without processing (the worker logs it);
- when attempt ``max_attempts`` fails (by an exception or ``Retry``), the worker moves
  the message to the handler's DLQ with the reason in its attributes (``ERROR_CODE``,
  ``ERROR_MESSAGE``, ``HANDLER``, ``ATTEMPTS``). The queue's ``RedrivePolicy``
  (``maxReceiveCount = max_attempts``) does the same on the server for a message that
  no worker ever settled (a worker killed mid-handler);
- an event whose ``detail`` does not validate into the handler's pydantic model goes to
  the DLQ at once (``ERROR_CODE=INVALID_DETAIL``): no retry can make it valid.

:class:`Retry` and :class:`Drop` are control flow, like FastStream's ``NackMessage``, not
errors. Delivery is at least once: a worker that dies between a handler's return and
the delete, or whose delete fails, sees the event again, so handlers that must not
repeat work de-duplicate on ``event.id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import os
import random
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import structlog

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import (
    EventyardError,
    ResourceAlreadyExists,
    ResourceNotFound,
    ServiceError,
)
from eventyard.patterns import compile_pattern
from eventyard.sdk.handler import MAX_VISIBILITY, Drop, Handler, Outcome, Retry
from eventyard.sdk.worker import Clock, Worker

if TYPE_CHECKING:
    from eventyard.sdk.client import AsyncClient

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "Consumer",
    "Drop",
    "Handler",
    "Outcome",
    "Retry",
    "load_consumer",
    "resource_name",
    "run_worker",
]

DEAD_LETTER_SUFFIX = "-dlq"
"""Appended to a handler's queue name to name its dead-letter queue."""

#: Rule names may be 64 characters long; queue names 80 (so ``-dlq`` always fits).
_NAME_LIMIT = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_POLL_WAIT = 20
_DLQ_RETENTION = "1209600"  # 14 days, the most SQS allows

_log = structlog.get_logger("eventyard.sdk.consumer")

F = TypeVar("F", bound=Callable[..., Any])


def resource_name(consumer: str, handler: str) -> str:
    """The stable queue and rule name of a handler: ``<consumer>-<handler>``.

    Characters SQS does not allow become ``-``; names longer than 64 characters are cut
    and end with a hash of the full name, so they stay unique and stable.
    """
    raw = f"{consumer}-{handler}"
    name = _UNSAFE.sub("-", raw).strip("-") or "handler"
    if len(name) > _NAME_LIMIT:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
        name = f"{name[: _NAME_LIMIT - 11]}-{digest}"
    return name


class Consumer:
    """The handlers a service has for the events of one bus.

    Args:
        bus: the event bus the handlers' rules are put on.
        name: names the handlers' queues and rules (``<name>-<handler>``); defaults to
            the bus name. Give consumers that share a bus different names.
        max_attempts: attempts before an event goes to the dead-letter queue (a handler
            can override it).
        visibility_timeout: seconds a received event stays hidden from other workers;
            a running handler's lease is extended, so this only bounds how long a dead
            worker's events wait before another worker sees them.
        url: the eventyard server (default: ``EVENTYARD_URL``, then the client's default).
        retry_delay: the backoff after the first failed attempt, in seconds; it doubles
            with each attempt.
        max_retry_delay: the most the backoff grows to.
        poll_wait: seconds one receive (long poll) waits for events, 1 to 20. A graceful
            stop lets the receive in flight finish, so it can take this long; idle, a
            worker makes one request per handler per ``poll_wait``.
    """

    def __init__(
        self,
        bus: str = DEFAULT_BUS,
        *,
        name: str | None = None,
        max_attempts: int = 5,
        visibility_timeout: int = 30,
        url: str | None = None,
        retry_delay: float = 1.0,
        max_retry_delay: float = 300.0,
        poll_wait: int = 10,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        if not 1 <= visibility_timeout <= MAX_VISIBILITY:
            raise ValueError(f"visibility_timeout must be 1 to {MAX_VISIBILITY} seconds")
        if retry_delay < 0 or max_retry_delay < retry_delay:
            raise ValueError("need 0 <= retry_delay <= max_retry_delay")
        if not 1 <= poll_wait <= _MAX_POLL_WAIT:
            raise ValueError(f"poll_wait must be 1 to {_MAX_POLL_WAIT} seconds")
        self.bus = bus
        self.name = name or bus
        self.max_attempts = max_attempts
        self.visibility_timeout = visibility_timeout
        self.url = url
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.poll_wait = poll_wait
        self._handlers: dict[str, Handler] = {}

    def __repr__(self) -> str:
        return f"Consumer(bus={self.bus!r}, name={self.name!r}, handlers={list(self._handlers)})"

    @property
    def handlers(self) -> tuple[Handler, ...]:
        """The registered handlers, in registration order."""
        return tuple(self._handlers.values())

    def handler(self, which: str | Callable[..., Any]) -> Handler:
        """The handler registered under a name or for a function.

        Raises:
            KeyError: no such handler.
        """
        for handler in self._handlers.values():
            if handler.name == which or handler.func is which:
                return handler
        raise KeyError(f"no handler {which!r} in {self!r}")

    def on(
        self,
        pattern: Mapping[str, Any] | str,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of events matching ``pattern``.

        The function (sync or async) takes one argument: an :class:`~eventyard.Event`,
        or, if its parameter is annotated with a pydantic model, the event's ``detail``
        validated into that model. The decorator returns the function unchanged, so it
        stays a plain callable in unit tests.

        Args:
            pattern: an EventBridge event pattern (a mapping or JSON text).
            name: the handler's name; defaults to the function's ``__name__``.
            max_attempts: overrides the consumer's ``max_attempts`` for this handler.

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message).
            TypeError: the function does not take exactly one argument, or it is
                annotated with something other than ``Event`` or a pydantic model.
            ValueError: the name is taken in this consumer, or ``max_attempts`` < 1.
        """
        text = pattern if isinstance(pattern, str) else orjson.dumps(dict(pattern)).decode()
        compile_pattern(text)
        attempts = self.max_attempts if max_attempts is None else max_attempts
        if attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {attempts}")

        def register(func: F) -> F:
            handler_name = name or getattr(func, "__name__", None) or type(func).__name__
            resource = resource_name(self.name, handler_name)
            for other in self._handlers.values():
                if other.name == handler_name or other.queue == resource:
                    raise ValueError(
                        f"{self!r} already has a handler named {handler_name!r} "
                        f"(queue {resource!r}); give this one another name"
                    )
            self._handlers[handler_name] = Handler.of(
                func,
                name=handler_name,
                pattern=text,
                queue=resource,
                dead_letter_queue=resource + DEAD_LETTER_SUFFIX,
                max_attempts=attempts,
            )
            return func

        return register

    def backoff(self, attempt: int) -> float:
        """Seconds before retrying after failed attempt ``attempt`` (1-based), jittered.

        The delay is ``retry_delay * 2**(attempt - 1)`` capped at ``max_retry_delay``, then
        scaled by a random factor in [0.5, 1] so that failing events spread out.
        """
        base = min(self.retry_delay * 2.0 ** max(attempt - 1, 0), self.max_retry_delay)
        return base * random.uniform(0.5, 1.0)

    async def setup(self, client: AsyncClient) -> None:
        """Create what the handlers need; safe to repeat, and it converges on changes.

        Creates the bus (unless it is ``default`` or exists), then for each handler its
        dead-letter queue, its queue (with the ``RedrivePolicy``), its rule and the
        rule's queue target. Creating a handler's rule logs a warning, once per new rule:
        events put on the bus before it existed matched nothing and never reach it.

        Raises:
            TypeError: a handler's annotation cannot be resolved.
            EventyardError: the server refused or could not be reached.
        """
        for handler in self._handlers.values():
            _ = handler.model  # unresolvable annotations fail here, before any traffic
        if self.bus != DEFAULT_BUS:
            with contextlib.suppress(ResourceAlreadyExists):
                await client.create_bus(self.bus)
        for handler in self._handlers.values():
            await _ensure_queue(
                client, handler.dead_letter_queue, {"MessageRetentionPeriod": _DLQ_RETENTION}
            )
            redrive = {
                "deadLetterTargetArn": await client.queue_arn(handler.dead_letter_queue),
                "maxReceiveCount": handler.max_attempts,
            }
            await _ensure_queue(
                client,
                handler.queue,
                {
                    "VisibilityTimeout": str(self.visibility_timeout),
                    "RedrivePolicy": orjson.dumps(redrive).decode(),
                },
            )
            try:
                await client.describe_rule(handler.rule, bus=self.bus)
                new_rule = False
            except ResourceNotFound:
                new_rule = True
            await client.put_rule(
                handler.rule,
                handler.pattern,
                bus=self.bus,
                description=f"eventyard consumer {self.name}: handler {handler.name}",
            )
            target = {"Id": "queue", "Arn": await client.queue_arn(handler.queue)}
            await client.put_targets(handler.rule, [target], bus=self.bus)
            if new_rule:
                # The trap of a first run: nothing kept the events published before now.
                _log.warning(
                    "rule created: events put on the bus before this first start matched "
                    "no rule of this handler and will never reach it; from now on they do",
                    consumer=self.name,
                    handler=handler.name,
                    rule=handler.rule,
                    bus=self.bus,
                )
        _log.info(
            "consumer set up",
            consumer=self.name,
            bus=self.bus,
            handlers=[h.name for h in self._handlers.values()],
        )

    async def run(
        self,
        *,
        concurrency: int = 8,
        stop: asyncio.Event | None = None,
        client: AsyncClient | None = None,
        setup: bool = True,
        clock: Clock | None = None,
    ) -> None:
        """Set up, then long-poll the handlers' queues and settle events until ``stop``.

        At most ``concurrency`` handlers run at once (sync ones in threads). A queue
        is long-polled by one receive of up to 10 messages at a time; while receives
        come back full, more run at once as free slots allow (never asking for more
        messages than there are free slots). When ``stop`` is set, no new receive
        starts; those in flight finish (within ``poll_wait``) and their events are
        handled too, running handlers finish and settle, retries the worker was timing
        go back to the queue with the rest of their delay, acknowledgements waiting for
        their batch are sent, and ``run`` returns. Cancelling ``run`` instead quits at
        once: unsettled events, and acknowledged ones not yet deleted, reappear after
        their visibility timeout.

        Args:
            concurrency: the most handler calls in flight.
            stop: set it to stop gracefully; without it ``run`` runs until cancelled.
            client: the client to use; by default one for ``url`` is opened and closed.
            setup: call :meth:`setup` first.
            clock: where the worker reads time and waits (retry timers, lease
                extension); the real clock by default. Tests pass one they advance.

        Raises:
            EventyardError: set-up failed.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if not self._handlers:
            raise EventyardError(f"{self!r} has no handlers: decorate functions with .on()")
        if client is None:
            from eventyard.sdk.client import AsyncClient

            async with AsyncClient(self.url) as own:
                await self.run(
                    concurrency=concurrency, stop=stop, client=own, setup=setup, clock=clock
                )
            return
        if setup:
            await self.setup(client)
        worker = Worker(self, client, concurrency, clock)
        await worker.run(stop or asyncio.Event())


async def _ensure_queue(client: AsyncClient, name: str, attributes: dict[str, str]) -> None:
    """Create the queue, or bring an existing one's attributes to ``attributes``."""
    try:
        await client.create_queue(name, attributes=attributes)
    except ServiceError:
        # exists with other attributes (e.g. a changed max_attempts): converge; if the
        # failure was anything else, setting the attributes raises its own error
        await client.set_queue_attributes(name, attributes)


def load_consumer(spec: str) -> Consumer:
    """The :class:`Consumer` that ``"module:attribute"`` names (the current directory is
    importable, as for ``uvicorn``).

    Raises:
        EventyardError: the spec is malformed, the module cannot be imported, or the
            attribute is missing or not a Consumer.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise EventyardError(f"expected module:attribute (e.g. shop.worker:consumer), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EventyardError(f"cannot import {module_name!r}: {exc}") from exc
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise EventyardError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(value, Consumer):
        raise EventyardError(f"{spec} is a {type(value).__name__}, not an eventyard Consumer")
    return value


def run_worker(spec: str, *, concurrency: int = 8, url: str | None = None) -> None:
    """Run the consumer ``spec`` names until SIGTERM or SIGINT (``eventyard worker``).

    Sets up the consumer's bus, queues and rules, then polls and settles events. The
    first SIGTERM/SIGINT stops polling and lets running handlers finish; a second one
    cancels them (their events are redelivered after the visibility timeout). Logs are
    JSON lines on stderr at ``EVENTYARD_LOG_LEVEL`` (default ``info``).

    Args:
        spec: ``"module:attribute"`` naming a :class:`Consumer`.
        concurrency: the most handler calls in flight.
        url: the server; defaults to the consumer's ``url``, then ``EVENTYARD_URL``.

    Raises:
        EventyardError: the consumer cannot be loaded or set up.
    """
    from eventyard.logs import configure_logging

    configure_logging(os.environ.get("EVENTYARD_LOG_LEVEL", "info"))
    consumer = load_consumer(spec)
    asyncio.run(_work(consumer, concurrency, url or consumer.url))


async def _work(consumer: Consumer, concurrency: int, url: str | None) -> None:
    from eventyard.sdk.client import AsyncClient

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        _log.info("signal", signal=signal.Signals(signum).name, graceful=signals_seen == 1)
        if signals_seen == 1:
            stop.set()
        elif main is not None:
            main.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    started = time.monotonic()
    try:
        async with AsyncClient(url) as client:
            await consumer.run(concurrency=concurrency, stop=stop, client=client)
    except asyncio.CancelledError:
        if signals_seen < 2:
            raise
        _log.warning("quit at once: unsettled events reappear after their visibility timeout")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        _log.info("worker exited", seconds=round(time.monotonic() - started, 3))
