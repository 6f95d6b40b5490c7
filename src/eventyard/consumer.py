"""Consumers: event handlers as decorated functions, and the worker that runs them.

A :class:`Consumer` holds the handlers one service has for one bus::

    consumer = Consumer(bus="orders", name="warehouse")

    @consumer.on({"detail-type": ["OrderPlaced"]})
    async def reserve_stock(event: Event) -> None: ...

Each handler gets a queue of its own (``<consumer>-<handler>``), a rule on the bus with
the handler's pattern whose target is that queue, and a dead-letter queue
(``<queue>-dlq``). :meth:`Consumer.setup` creates them idempotently, :meth:`Consumer.run`
long-polls the queues and calls the handlers, and ``eventyard worker module:consumer``
(:func:`run_worker`) does both until SIGTERM.

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
import dataclasses
import hashlib
import importlib
import inspect
import math
import os
import random
import re
import signal
import sys
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio.to_thread
import orjson
import structlog

from eventyard.errors import EventyardError, ResourceAlreadyExists, ServiceError
from eventyard.event import DEFAULT_BUS, Event
from eventyard.patterns import compile_pattern

if TYPE_CHECKING:
    from eventyard.client import AsyncClient, Message

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
_MAX_VISIBILITY = 43200
_MAX_BATCH = 10
_MAX_POLL_WAIT = 20
_DLQ_RETENTION = "1209600"  # 14 days, the most SQS allows
_MAX_REASON = 4096
#: Seconds an acknowledgement waits for others of its queue to share a DeleteMessageBatch.
_ACK_LINGER = 0.01
#: DeleteMessageBatch requests in flight per queue.
_ACK_REQUESTS = 2

_log = structlog.get_logger("eventyard.consumer")

F = TypeVar("F", bound=Callable[..., Any])


class Retry(Exception):
    """Raised by a handler to retry its event later. Control flow, not an error.

    The attempt counts towards ``max_attempts``: when the last attempt raises ``Retry``,
    the event goes to the dead-letter queue.

    Args:
        delay: seconds until the next attempt. The worker times delays shorter than
            the consumer's ``poll_wait`` itself (fractions count); longer ones become
            the message's visibility timeout, rounded up to whole seconds.
        reason: why, for logs and the dead-letter attributes.
    """

    def __init__(self, delay: float = 0.0, reason: str | None = None) -> None:
        if delay < 0 or math.isnan(delay):
            raise ValueError(f"Retry delay must be a number of seconds >= 0, not {delay!r}")
        super().__init__(reason or f"retry requested in {delay:g} s")
        self.delay = delay
        self.reason = reason


class Drop(Exception):
    """Raised by a handler to acknowledge its event without processing it.

    Control flow, not an error: the message is deleted and the worker logs the reason.

    Args:
        reason: why the event is dropped, for the log.
    """

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "dropped by the handler")
        self.reason = reason


@dataclass(slots=True, frozen=True)
class Outcome:
    """How one attempt of a handler ended.

    Attributes:
        kind: ``ack`` (returned), ``drop`` (raised :class:`Drop`), ``retry`` (raised
            :class:`Retry`), ``fail`` (raised another exception) or ``invalid`` (the
            event is not a valid event, or its detail does not fit the handler's model).
        reason: what happened, for logs and dead-letter attributes ("" for ``ack``).
        delay: the delay a ``retry`` asked for.
        error: the exception a ``fail`` raised.
    """

    kind: Literal["ack", "drop", "retry", "fail", "invalid"]
    reason: str = ""
    delay: float | None = None
    error: BaseException | None = None


class _Unresolved:
    """The handler's annotation names something not defined yet (resolved on first use)."""


_UNRESOLVED = _Unresolved()


@dataclass(slots=True, eq=False)
class Handler:
    """A registered handler and the resources that feed it.

    Attributes:
        name: the handler's name (unique within its consumer).
        func: the decorated function, unchanged.
        pattern: the event pattern as JSON text.
        queue: the queue the handler's rule delivers to.
        dead_letter_queue: where events go after ``max_attempts``.
        rule: the rule's name on the consumer's bus.
        max_attempts: attempts before dead-lettering.
    """

    name: str
    func: Callable[[Any], Any]
    pattern: str
    queue: str
    dead_letter_queue: str
    rule: str
    max_attempts: int
    _parameter: str
    _model: type[Any] | _Unresolved | None = field(default=None, repr=False)

    @property
    def is_async(self) -> bool:
        """Whether the handler is a coroutine function (else it runs in a thread)."""
        return inspect.iscoroutinefunction(self.func)

    @property
    def model(self) -> type[Any] | None:
        """The pydantic model ``detail`` is validated into, or None for plain events.

        Raises:
            TypeError: the annotation cannot be resolved or is neither ``Event`` nor a
                pydantic model.
        """
        model = self._model
        if isinstance(model, _Unresolved):
            model = _model_of(self.func, self._parameter, self.name, final=True)
            assert not isinstance(model, _Unresolved)
            self._model = model
        return model

    def argument(self, event: Event) -> Any:
        """What the handler is called with for ``event``: the event or its validated model.

        Raises:
            ValueError: ``detail`` does not validate into the model (the message says why).
        """
        model = self.model
        if model is None:
            return event
        from pydantic import ValidationError as PydanticError

        try:
            return model.model_validate(event.detail)
        except PydanticError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(detail)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ValueError(f"detail is not a valid {model.__name__}: {problems}") from None

    async def attempt(self, event: Event) -> Outcome:
        """Run the handler once on ``event`` and say how it ended (never raises ``Exception``).

        Sync handlers run in a worker thread (anyio's pool) so that they cannot block
        the event loop.
        """
        try:
            argument = self.argument(event)
        except ValueError as exc:
            return Outcome("invalid", str(exc))
        try:
            if self.is_async:
                await self.func(argument)
            else:
                await anyio.to_thread.run_sync(self.func, argument)
        except Retry as retry:
            return Outcome("retry", str(retry), delay=retry.delay)
        except Drop as drop:
            return Outcome("drop", str(drop))
        except Exception as exc:
            return Outcome("fail", _describe(exc), error=exc)
        return Outcome("ack")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_model(annotation: Any) -> bool:
    if not isinstance(annotation, type):
        return False
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - only without the pydantic extra
        return False
    return issubclass(annotation, BaseModel)


def _model_of(
    func: Callable[..., Any], parameter: str, name: str, *, final: bool
) -> type[Any] | _Unresolved | None:
    """The pydantic model the handler's event parameter is annotated with, if any."""
    try:
        hints = typing.get_type_hints(func)
    except NameError as exc:
        if not final:
            return _UNRESOLVED  # a name defined later in the module; try again at setup
        raise TypeError(f"handler {name!r}: cannot resolve its annotations: {exc}") from None
    annotation = hints.get(parameter, Any)
    if annotation is Event or annotation is Any or annotation is object:
        return None
    if _is_model(annotation):
        return typing.cast(type[Any], annotation)
    raise TypeError(
        f"handler {name!r}: annotate its parameter {parameter!r} with eventyard.Event or a "
        f"pydantic model, not {annotation!r}"
    )


def _event_parameter(func: Callable[..., Any], name: str) -> str:
    """The parameter that receives the event: the only one without a default."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        raise TypeError(f"handler {name!r} has no inspectable signature") from None
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required = [
        p
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if not positional or len(required) > 1 or (required and required[0] is not positional[0]):
        raise TypeError(f"handler {name!r} must take exactly one argument: the event")
    return positional[0].name


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
        if not 1 <= visibility_timeout <= _MAX_VISIBILITY:
            raise ValueError(f"visibility_timeout must be 1 to {_MAX_VISIBILITY} seconds")
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
            parameter = _event_parameter(func, handler_name)
            resource = resource_name(self.name, handler_name)
            for other in self._handlers.values():
                if other.name == handler_name or other.queue == resource:
                    raise ValueError(
                        f"{self!r} already has a handler named {handler_name!r} "
                        f"(queue {resource!r}); give this one another name"
                    )
            self._handlers[handler_name] = Handler(
                name=handler_name,
                func=func,
                pattern=text,
                queue=resource,
                dead_letter_queue=resource + DEAD_LETTER_SUFFIX,
                rule=resource,
                max_attempts=attempts,
                _parameter=parameter,
                _model=_model_of(func, parameter, handler_name, final=False),
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
        rule's queue target.

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
            await client.put_rule(
                handler.rule,
                handler.pattern,
                bus=self.bus,
                description=f"eventyard consumer {self.name}: handler {handler.name}",
            )
            target = {"Id": "queue", "Arn": await client.queue_arn(handler.queue)}
            await client.put_targets(handler.rule, [target], bus=self.bus)
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

        Raises:
            EventyardError: set-up failed.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if not self._handlers:
            raise EventyardError(f"{self!r} has no handlers: decorate functions with .on()")
        if client is None:
            from eventyard.client import AsyncClient

            async with AsyncClient(self.url) as own:
                await self.run(concurrency=concurrency, stop=stop, client=own, setup=setup)
            return
        if setup:
            await self.setup(client)
        worker = _Worker(self, client, concurrency)
        await worker.run(stop or asyncio.Event())


async def _ensure_queue(client: AsyncClient, name: str, attributes: dict[str, str]) -> None:
    """Create the queue, or bring an existing one's attributes to ``attributes``."""
    try:
        await client.create_queue(name, attributes=attributes)
    except ServiceError:
        # exists with other attributes (e.g. a changed max_attempts): converge; if the
        # failure was anything else, setting the attributes raises its own error
        await client.set_queue_attributes(name, attributes)


@dataclass(slots=True, eq=False)
class _Lease:
    """A received message the worker holds: its visibility is extended until settled."""

    handler: Handler
    message: Message
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    settled: bool = False


@dataclass(slots=True, eq=False)
class _Backlog:
    """Whether a queue's last receive came back full: more receives may then run at once."""

    full: bool = False


class _Acks:
    """Acknowledgements on their way out, deleted up to 10 per DeleteMessageBatch request.

    An acknowledged lease waits at most ``linger`` seconds for others of its queue to
    share its request; ten waiting go at once. At most ``_ACK_REQUESTS`` requests per
    queue are in flight (a few connections serve a busy worker); what waits meanwhile
    goes when one returns. Until its request is sent a lease is still held, so the
    lease keeper goes on extending it. A delete that fails is logged and the message
    comes back after its visibility timeout: delivered at least once, never lost.
    """

    def __init__(self, client: AsyncClient, leases: set[_Lease], linger: float) -> None:
        self.client = client
        self.leases = leases
        self.linger = linger
        self.waiting: dict[str, list[_Lease]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.due: set[str] = set()  # queues whose waiting acks have lingered enough
        self.requests: dict[str, int] = {}  # requests in flight per queue
        self.sending: set[asyncio.Task[None]] = set()
        self.draining = False

    def add(self, lease: _Lease) -> None:
        """Delete the lease's message with the next batch of its queue."""
        queue = lease.handler.queue
        batch = self.waiting.setdefault(queue, [])
        batch.append(lease)
        if len(batch) >= _MAX_BATCH:
            self._send(queue)
        elif queue not in self.timers and queue not in self.due:
            loop = asyncio.get_running_loop()
            self.timers[queue] = loop.call_later(self.linger, self._lingered, queue)

    def _lingered(self, queue: str) -> None:
        self.timers.pop(queue, None)
        self.due.add(queue)
        self._send(queue)

    def _send(self, queue: str) -> None:
        """Start requests for the queue's waiting acks, as far as the cap allows."""
        while self.requests.get(queue, 0) < _ACK_REQUESTS:
            batch = self.waiting.get(queue)
            if not batch or not (len(batch) >= _MAX_BATCH or queue in self.due or self.draining):
                return
            taken = batch[:_MAX_BATCH]
            del batch[:_MAX_BATCH]
            if not batch:
                del self.waiting[queue]
                self.due.discard(queue)
                timer = self.timers.pop(queue, None)
                if timer is not None:
                    timer.cancel()
            for lease in taken:
                # No lease lock: an extension racing the delete does no harm, whichever
                # reaches the server first.
                lease.settled = True
                self.leases.discard(lease)
            self.requests[queue] = self.requests.get(queue, 0) + 1
            task = asyncio.create_task(self._delete(queue, taken), name=f"ack {queue}")
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    async def _delete(self, queue: str, batch: list[_Lease]) -> None:
        receipts = [lease.message.receipt for lease in batch]
        try:
            failed = set(await self.client.delete_messages(queue, receipts))
            error = "the server refused the receipt"
        except EventyardError as exc:
            failed, error = set(receipts), str(exc)
        finally:
            self.requests[queue] -= 1
        if failed:
            _log.error(
                "acknowledging failed: the messages come back after their visibility timeout",
                queue=queue,
                message_ids=[
                    lease.message.id for lease in batch if lease.message.receipt in failed
                ],
                error=error,
            )
        self._send(queue)  # what waited for this request

    async def drain(self) -> None:
        """Send every waiting acknowledgement now; return when all requests are done."""
        self.draining = True
        for queue in list(self.waiting):
            self._send(queue)
        while self.sending:
            await asyncio.gather(*self.sending, return_exceptions=True)

    async def abort(self) -> None:
        """Send nothing more, and cancel the requests in flight."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.waiting.clear()
        sending = list(self.sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)


class _Worker:
    """One run of a consumer: pollers, handler tasks, batched acks, lease keeping, stop.

    ``concurrency`` slots bound the handler calls; a handler's slot is free again once
    its outcome is known (an acknowledgement then waits in :class:`_Acks` without
    holding a slot). Each queue has lanes of receives. Lane 0 always polls: it asks for
    as many messages as slots are free but reserves none, since its long poll on an
    idle queue must not keep slots from the other handlers' queues; what it brings
    beyond the free slots waits in the worker for one (held and extended meanwhile).
    The other lanes run only while the queue's receives come back full (a backlog,
    so their receives return at once) and reserve a slot for each message they ask
    for, so that they never bring more than there are slots.
    """

    def __init__(self, consumer: Consumer, client: AsyncClient, concurrency: int) -> None:
        self.consumer = consumer
        self.client = client
        self.concurrency = concurrency
        self.free = concurrency  # slots neither running a handler nor reserved by a receive
        self.slots = asyncio.Condition()
        self.batch = min(_MAX_BATCH, concurrency)  # what a poller's extra lanes wait for
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.leases: set[_Lease] = set()
        self.acks = _Acks(client, self.leases, _ACK_LINGER)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        # Lane 0 of a queue always polls; the others join while its receives come back
        # full, so a backlog is fetched by several receives at once and an idle queue
        # costs one long poll at a time.
        lanes = max(1, math.ceil(self.concurrency / _MAX_BATCH))
        pollers = []
        for handler in self.consumer.handlers:
            backlog = _Backlog()
            pollers += [
                asyncio.create_task(
                    self._poll(handler, backlog, lane), name=f"poll {handler.queue}"
                )
                for lane in range(lanes)
            ]
        keeper = asyncio.create_task(self._keep_leases(), name="keep leases")
        stopped = asyncio.create_task(stop.wait())
        _log.info(
            "worker started",
            consumer=self.consumer.name,
            queues=[h.queue for h in self.consumer.handlers],
        )
        try:
            await asyncio.wait([stopped, *pollers], return_when=asyncio.FIRST_COMPLETED)
            async with self.slots:
                self.stopping.set()
                self.slots.notify_all()
            _log.info(
                "worker stopping",
                running=len(self.tasks),
                poll_wait=self.consumer.poll_wait,
                hint="stop again to quit at once",
            )
            # Receives in flight are not cut short: a cancelled long poll would go on
            # in the server and hide what it takes until the visibility timeout ends.
            await asyncio.gather(*pollers, return_exceptions=True)
            while self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.acks.drain()  # the lease keeper still runs: waiting acks stay held
        except asyncio.CancelledError:
            # cancelled: quit at once; unsettled events reappear after their visibility
            pending = [*pollers, *self.tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.acks.abort()
            raise
        finally:
            stopped.cancel()
            keeper.cancel()
            await asyncio.gather(stopped, keeper, return_exceptions=True)
        _log.info("worker stopped", consumer=self.consumer.name)
        for poller in pollers:
            if not poller.cancelled() and poller.exception() is not None:
                raise typing.cast(BaseException, poller.exception())

    async def _poll(self, handler: Handler, backlog: _Backlog, lane: int) -> None:
        """Receive from the handler's queue as slots allow, until the worker stops."""
        failures = 0

        def may_receive() -> bool:
            if lane == 0:
                return self.free > 0
            return backlog.full and self.free >= self.batch

        while True:
            async with self.slots:
                await self.slots.wait_for(lambda: self.stopping.is_set() or may_receive())
                if self.stopping.is_set():
                    return
                wanted = min(_MAX_BATCH, self.free)
                reserved = wanted if lane else 0
                self.free -= reserved
            try:
                messages = await self.client.receive_messages(
                    handler.queue,
                    max_messages=wanted,
                    wait=self.consumer.poll_wait,
                    visibility_timeout=self.consumer.visibility_timeout,
                )
            except EventyardError as exc:
                async with self.slots:
                    backlog.full = False
                    self._free(reserved)
                failures += 1
                pause = min(2.0**failures, 30.0)
                _log.warning("receive failed", queue=handler.queue, error=str(exc), retry_in=pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), pause)
                continue
            failures = 0
            async with self.slots:
                full = len(messages) == wanted
                if full and not backlog.full:
                    self.slots.notify_all()  # the other lanes may join
                backlog.full = full
                self._free(max(reserved - len(messages), 0))
            # Every received message gets its attempt, even after a stop began: a
            # receive counts towards max_attempts, so giving it back unhandled would
            # spend an attempt for nothing.
            for n, message in enumerate(messages):
                lease = _Lease(handler, message)
                self.leases.add(lease)
                started = n < reserved or self.free > 0
                if n >= reserved and started:
                    self.free -= 1  # taken now, so the next receive asks for no more than is left
                self._spawn(self._process(lease, started))

    async def _process(self, lease: _Lease, started: bool) -> None:
        """Handle a message in its slot (waiting for one unless ``started``), then free it."""
        if not started:
            async with self.slots:
                await self.slots.wait_for(lambda: self.free > 0)
                self.free -= 1
        try:
            await self._handle(lease)
        finally:
            async with self.slots:
                self._free(1)

    def _free(self, count: int) -> None:
        """Give back ``count`` slots (``slots`` held), waking the pollers only if that
        lets one receive: waking every lane for each finished handler costs more CPU
        than the handler."""
        before = self.free
        self.free += count
        if before < 1 <= self.free or before < self.batch <= self.free:
            self.slots.notify_all()

    async def _handle(self, lease: _Lease) -> None:
        handler, message = lease.handler, lease.message
        attempt = message.receive_count
        event_id: str | None = None
        try:
            event = dataclasses.replace(message.event(), bus=self.consumer.bus)
        except EventyardError as exc:
            outcome = Outcome("invalid", f"not an event: {exc}")
        else:
            event_id = event.id
            outcome = await handler.attempt(event)
        context = {
            "handler": handler.name,
            "event_id": event_id,
            "message_id": message.id,
            "attempt": attempt,
        }
        if outcome.kind == "ack":
            self.acks.add(lease)
            _log.debug("acknowledged", **context)
        elif outcome.kind == "drop":
            self.acks.add(lease)
            _log.info("dropped", reason=outcome.reason, **context)
        elif outcome.kind == "invalid" or attempt >= handler.max_attempts:
            if outcome.kind != "invalid":
                code = "HANDLER_FAILED"
            else:  # the body is no event at all, or its detail does not fit the model
                code = "INVALID_EVENT" if event_id is None else "INVALID_DETAIL"
            await self._settle_lease(lease, lambda: self._dead_letter(lease, code, outcome.reason))
            _log.warning(
                "dead-lettered",
                reason=outcome.reason,
                dlq=handler.dead_letter_queue,
                exc_info=outcome.error,
                **context,
            )
        else:
            delay = self.consumer.backoff(attempt) if outcome.delay is None else outcome.delay
            if outcome.kind == "retry":
                _log.info("retry requested", delay=delay, reason=outcome.reason, **context)
            else:
                _log.warning(
                    "handler failed",
                    retry_in=delay,
                    error=outcome.reason,
                    exc_info=outcome.error,
                    **context,
                )
            if delay < self.consumer.poll_wait:
                # Timed here, not by the queue: a long poll already waiting would not
                # see the earlier visibility until it ends, and this way fractions of a
                # second count. The lease is kept (and extended) until then.
                self._spawn(self._retry_later(lease, delay))
            else:
                await self._settle_lease(lease, lambda: self._release(lease, delay))

    async def _settle_lease(self, lease: _Lease, settle: Callable[[], Awaitable[None]]) -> None:
        """Run ``settle`` for a held message; it is no longer kept alive afterwards."""
        async with lease.lock:
            lease.settled = True
            self.leases.discard(lease)
            try:
                await settle()
            except EventyardError as exc:
                # the message reappears when its visibility ends: retried, never lost
                _log.error("settling failed", message_id=lease.message.id, error=str(exc))

    async def _release(self, lease: _Lease, delay: float) -> None:
        """Make the message visible again after ``delay`` seconds (whole seconds)."""
        timeout = min(math.ceil(delay), _MAX_VISIBILITY)
        await self.client.change_visibility(lease.handler.queue, lease.message.receipt, timeout)

    async def _dead_letter(self, lease: _Lease, code: str, reason: str) -> None:
        handler, message = lease.handler, lease.message
        attributes = {
            "ERROR_CODE": code,
            "ERROR_MESSAGE": reason[:_MAX_REASON] or code,
            "HANDLER": handler.name,
            "ATTEMPTS": str(message.receive_count),
        }
        await self.client.send_message(
            handler.dead_letter_queue, message.body, attributes=attributes
        )
        await self.client.delete_message(handler.queue, message.receipt)

    async def _retry_later(self, lease: _Lease, delay: float) -> None:
        """Release the message when its retry is due, or at once on stop (keeping the rest
        of its delay as its visibility, so the next worker honours it)."""
        due = time.monotonic() + delay
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)
        await self._settle_lease(
            lease, lambda: self._release(lease, max(due - time.monotonic(), 0))
        )

    async def _keep_leases(self) -> None:
        """Extend held messages' visibility so that slow handlers keep their events."""
        timeout = self.consumer.visibility_timeout
        period = max(timeout / 3, 1.0)
        while True:
            await asyncio.sleep(period)
            by_queue: dict[str, list[_Lease]] = {}
            for lease in self.leases:
                by_queue.setdefault(lease.handler.queue, []).append(lease)
            await asyncio.gather(
                *(self._extend(queue, leases, timeout) for queue, leases in by_queue.items())
            )

    async def _extend(self, queue: str, leases: list[_Lease], timeout: int) -> None:
        """Extend the leases of one queue, 10 per ChangeMessageVisibilityBatch request.

        The leases' locks are held meanwhile, so no lease is released while its
        extension is in flight (a late extension would undo the release's visibility);
        a lease whose lock is taken is being settled and is skipped.
        """
        async with contextlib.AsyncExitStack() as stack:
            held: list[_Lease] = []
            for lease in leases:
                if lease.settled or lease.lock.locked():
                    continue
                await stack.enter_async_context(lease.lock)
                if not lease.settled:
                    held.append(lease)
            if not held:
                return
            receipts = [lease.message.receipt for lease in held]
            try:
                failed = set(await self.client.change_visibility_batch(queue, receipts, timeout))
            except EventyardError as exc:
                _log.debug("lease extension failed", queue=queue, error=str(exc))
                return
            if failed:
                _log.debug(
                    "lease extension failed",
                    queue=queue,
                    message_ids=[
                        lease.message.id for lease in held if lease.message.receipt in failed
                    ],
                )


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
    from eventyard.server import configure_logging

    configure_logging(os.environ.get("EVENTYARD_LOG_LEVEL", "info"))
    consumer = load_consumer(spec)
    asyncio.run(_work(consumer, concurrency, url or consumer.url))


async def _work(consumer: Consumer, concurrency: int, url: str | None) -> None:
    from eventyard.client import AsyncClient

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
