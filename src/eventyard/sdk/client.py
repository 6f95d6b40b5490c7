"""Talk to an eventyard server from Python: :class:`Client` and its twin :class:`AsyncClient`.

The two have the same methods with the same names and arguments, as HTTPX's ``Client``
and ``AsyncClient`` do; the async twin's methods are coroutines. They publish events
(``put_events`` takes one event or many, batches them and retries what can be retried),
manage buses, rules, targets and queues, and send, receive and settle queue messages::

    with Client() as client:            # EVENTYARD_URL, else http://127.0.0.1:4010
        client.create_queue("orders")
        client.put_rule("to-orders", {"source": ["shop"]})
        client.put_targets("to-orders", [{"Id": "q", "Arn": client.queue_arn("orders")}])
        client.put_events(Event(source="shop", detail_type="OrderPlaced", detail={"id": 1}))
        for message in client.receive_messages("orders", wait=5):
            print(message.event().detail)
            client.delete_message("orders", message.receipt)

Every failure is an :mod:`eventyard.errors` exception: errors the server reports are
:class:`~eventyard.errors.ServiceError` subclasses mapped from their AWS code, and a
server that cannot be reached or answers nonsense is a
:class:`~eventyard.errors.TransportError`. No httpx or JSON exception reaches the caller.
Both twins drive the same flows from :mod:`eventyard.sdk._core`, which builds every request
and parses every answer; the twins only do the I/O.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx
import orjson

from eventyard._version import __version__
from eventyard.errors import ExchangeFailed, TransportError, ValidationError
from eventyard.sdk._core import (
    DEFAULT_URL,
    BusMatches,
    Call,
    Core,
    Flow,
    PutEventsResult,
    Reply,
    Sleep,
)
from eventyard.sdk.archives import Archive, ArchivesMixin, AsyncArchivesMixin, Replay
from eventyard.sdk.event import Event
from eventyard.sdk.trace import StoredEvent, Trace

__all__ = [
    "DEFAULT_URL",
    "Archive",
    "AsyncClient",
    "BusMatches",
    "Client",
    "Message",
    "PutEventsResult",
    "Replay",
]

_T = TypeVar("_T")
_USER_AGENT = f"eventyard-python/{__version__}"


@dataclass(slots=True, frozen=True)
class Message:
    """A message received from a queue.

    Attributes:
        id: the message id.
        body: the message body (for rule targets: the event envelope as JSON).
        receipt: the receipt handle that deletes the message or changes its visibility.
        attributes: the message attributes, flattened to their string values (binary
            values as base64 text).
        receive_count: how many times the message has been received, this time included.
        sent: when the message was sent (epoch seconds).
        first_receive: when the message was first received (epoch seconds), if known.
    """

    id: str
    body: str
    receipt: str
    attributes: dict[str, str]
    receive_count: int
    sent: float
    first_receive: float | None

    def event(self) -> Event:
        """The event this message carries (a rule's queue target sends the envelope).

        Returns:
            The event parsed from the JSON envelope in :attr:`body`.

        Raises:
            ValidationError: the body is not an EventBridge event envelope.
        """
        try:
            envelope = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise ValidationError("not an event envelope: the message body is not JSON") from None
        if not isinstance(envelope, dict):
            raise ValidationError("not an event envelope: the message body is not a JSON object")
        try:
            return Event.from_envelope(envelope)
        except (TypeError, ValueError) as exc:  # e.g. "resources" is not a list
            raise ValidationError(f"not an event envelope: {exc}") from exc


def _message(raw: Mapping[str, Any]) -> Message:
    """A :class:`Message` from an SQS ``ReceiveMessage`` message object."""
    try:
        system = raw.get("Attributes") or {}
        attributes = {
            str(name): str(value.get("StringValue", value.get("BinaryValue", "")))
            for name, value in (raw.get("MessageAttributes") or {}).items()
        }
        first = system.get("ApproximateFirstReceiveTimestamp")
        return Message(
            id=str(raw["MessageId"]),
            body=str(raw["Body"]),
            receipt=str(raw["ReceiptHandle"]),
            attributes=attributes,
            receive_count=int(system.get("ApproximateReceiveCount", 1)),
            sent=int(system.get("SentTimestamp", 0)) / 1000,
            first_receive=int(first) / 1000 if first else None,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise TransportError(f"unexpected ReceiveMessage answer: {exc!r}") from exc


class _Base:
    """What the twins share: configuration and the translation of httpx failures."""

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 30.0,
        region: str = "us-east-1",
        retries: int = 3,
        token: str | None = None,
    ) -> None:
        self.url = (url or os.environ.get("EVENTYARD_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.region = region
        self.retries = retries
        # kept private: a repr or a log line must never show it
        self._token = token if token is not None else os.environ.get("EVENTYARD_TOKEN") or None
        self._core = Core(self.url, timeout=timeout, retries=retries)
        # absolute, parsed once: a relative "/" is parsed and merged on every request
        self._endpoint = httpx.URL(self.url + "/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _http_options(self) -> dict[str, Any]:
        headers = {"User-Agent": _USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return {
            "base_url": self.url,
            "timeout": self.timeout,
            "headers": headers,
            "limits": httpx.Limits(max_connections=100, max_keepalive_connections=20),
        }

    def _failure(self, call: Call, exc: Exception, closed: bool) -> TransportError:
        core = self._core
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return core.transport_failure(call, exc, connect=True, timed_out=True)
        if isinstance(exc, httpx.TimeoutException):
            return core.transport_failure(call, exc, connect=False, timed_out=True)
        if isinstance(exc, httpx.ConnectError):
            return core.transport_failure(call, exc, connect=True, timed_out=False)
        if closed:
            return TransportError(f"{type(self).__name__} for {self.url} is closed")
        return core.transport_failure(call, exc, connect=False, timed_out=False)

    @staticmethod
    def _reply(response: httpx.Response) -> Reply:
        return Reply(response.status_code, response.headers, response.content)


class Client(ArchivesMixin, _Base):
    """A blocking client of an eventyard server; :class:`AsyncClient` is its async twin.

    Connections are kept alive between calls; close the client (or use it as a context
    manager) when done. A client may be shared between threads.

    Args:
        url: the server's base URL; default ``EVENTYARD_URL``, else
            ``http://127.0.0.1:4010``.
        timeout: seconds each HTTP exchange may take (a long poll gets its wait on top).
        region: the AWS region the server is taken to serve (kept as ``region``).
        retries: how often a failed request, or a PutEvents entry rejected with a
            retryable code, is tried again (with a short, doubling backoff).
        token: the bearer token of an access key (``eventyard keys create``), sent as
            ``Authorization: Bearer`` on every request; default ``EVENTYARD_TOKEN``. A
            server with no access key (dev mode) needs none.

    Raises:
        TransportError: ``url`` is not an http(s) URL.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 30.0,
        region: str = "us-east-1",
        retries: int = 3,
        token: str | None = None,
    ) -> None:
        super().__init__(url, timeout=timeout, region=region, retries=retries, token=token)
        self._http = httpx.Client(**self._http_options())

    def close(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call) -> Reply:
        core = self._core
        content, headers = core.body(call), core.headers(call)
        try:
            if call.path is not None:
                response = self._http.get(
                    call.path, params=call.params, headers=headers, timeout=core.timeout_of(call)
                )
            else:
                response = self._http.post(
                    self._endpoint,
                    content=content,
                    headers=headers,
                    timeout=core.timeout_of(call),
                )
        except Exception as exc:  # every httpx failure becomes ours
            raise self._failure(call, exc, self._http.is_closed) from exc
        return self._reply(response)

    def _run(self, flow: Flow[_T]) -> _T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    reply = self._send(step)
                except ExchangeFailed as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(reply)
        except StopIteration as stop:
            return cast(_T, stop.value)
        finally:
            flow.close()

    # -- events ----------------------------------------------------------------------
    def put_events(
        self,
        events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
        *,
        bus: str | None = None,
    ) -> list[str]:
        """Publish one event or many.

        The events go in requests of at most 10 entries and 1 MiB. Entries the server
        rejects with a retryable code (``InternalFailure``, ``ThrottlingException``) are
        sent again with backoff, up to ``retries`` times.

        Args:
            events: an :class:`~eventyard.Event` or a PutEvents entry mapping
                (``Source``, ``DetailType``, ``Detail``… ; ``Detail`` may be a mapping),
                or an iterable of them.
            bus: the bus name or ARN for every event (default: each event's own bus,
                else ``default``).

        Returns:
            The event ids, in the order of ``events``.

        Raises:
            PutEventsFailed: some entries were rejected for good; raised after every
                other entry was sent, and its ``failures`` name them by index.
            ValidationError: an event cannot be encoded as JSON.
            TransportError: the server could not be reached.
        """
        return self._run(self._core.put_events(events, bus))

    def put_events_with_matches(
        self,
        events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
        *,
        bus: str | None = None,
    ) -> PutEventsResult:
        """Publish one event or many, and learn how many rules each matched.

        The same as :meth:`put_events` (batches, retries, failures), returning more than
        the ids: the bus of each event and how many of its rules the event matched when
        it was put (``x-eventyard-matched-rules``; None where the server did not say,
        e.g. AWS). An event that matched no rule is stored but delivered nowhere
        (with :class:`AsyncClient`, await the call)::

            result = client.put_events_with_matches(Event("shop", "OrderPlaced"))
            for bus in result.by_bus():
                if bus.unmatched:
                    print(f"{bus.unmatched} event(s) matched no rule on bus {bus.bus}")

        Args:
            events: an :class:`~eventyard.Event` or a PutEvents entry mapping, or an
                iterable of them.
            bus: the bus name or ARN for every event (default: each event's own bus,
                else ``default``).

        Returns:
            The ids, buses and match counts, in the order of ``events``.

        Raises:
            PutEventsFailed: some entries were rejected for good; raised after every
                other entry was sent, and its ``failures`` name them by index.
            ValidationError: an event cannot be encoded as JSON.
            TransportError: the server could not be reached.
        """
        return self._run(self._core.put_events_with_matches(events, bus))

    def test_pattern(
        self, pattern: Mapping[str, Any] | str, event: Mapping[str, Any] | str
    ) -> bool:
        """Whether an event pattern matches an event (``TestEventPattern``).

        Args:
            pattern: the event pattern, as a mapping or JSON text.
            event: the full event envelope (``id``, ``source``, ``detail-type``,
                ``account``, ``time``, ``region``…), as a mapping or JSON text.

        Returns:
            True if the pattern matches.

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message).
            ValidationError: the event is not a valid envelope.
        """
        return self._run(self._core.test_pattern(pattern, event))

    # -- search and trace --------------------------------------------------------------
    def trace(
        self,
        event_id: str,
        *,
        bus: str | None = None,
        since: str | float | datetime | None = None,
        until: str | float | datetime | None = None,
    ) -> Trace:
        """What happened to one event: its log records, the rules of its bus evaluated
        now (why each did or did not match), each target's attempts, its dead letter
        and the receives and deletes of its queue messages.

        Args:
            event_id: the event's id (as PutEvents returned it).
            bus: with ``since``, the bus to look on.
            since: a window start (ISO 8601, epoch seconds, a ``datetime`` or a duration
                before now such as ``"2h"``): needed only for an id that is not
                time-ordered (events from before eventyard made UUIDv7 ids).
            until: the window's end (default now).

        Returns:
            The trace; ``found`` is False when the log does not hold the event.

        Raises:
            ValidationError: the id is not time-ordered and no ``since`` was given.
            ResourceNotFound: ``bus`` does not exist.
        """
        return self._run(self._core.trace(event_id, bus, since, until))

    def search_events(
        self,
        bus: str = "default",
        *,
        pattern: Mapping[str, Any] | str | None = None,
        since: str | float | datetime = "1h",
        until: str | float | datetime | None = None,
        limit: int | None = 100,
    ) -> list[StoredEvent]:
        """The stored events of ``bus`` ingested between ``since`` and ``until`` that
        match ``pattern`` (any EventBridge pattern; None: every event), oldest first.

        Args:
            bus: the bus name or ARN.
            pattern: the event pattern (a mapping or JSON text).
            since: the window's start: ISO 8601, epoch seconds, a ``datetime`` or a
                duration before now (``"15m"``, ``"1h"``, ``"2d"``).
            until: the window's end (default now).
            limit: the most events returned (None: all, page by page).

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message).
            ResourceNotFound: the bus does not exist.
            ValidationError: a time or the limit is not valid.
        """
        return self._run(self._core.search_events(bus, pattern, since, until, limit))

    # -- buses -----------------------------------------------------------------------
    def create_bus(self, name: str, *, description: str | None = None) -> str:
        """Create a custom event bus.

        Args:
            name: the bus name.
            description: an optional description.

        Returns:
            The bus ARN.

        Raises:
            ResourceAlreadyExists: a bus of that name exists.
        """
        return self._run(self._core.create_bus(name, description))

    def describe_bus(self, name: str = "default") -> dict[str, Any]:
        """Describe an event bus.

        Args:
            name: the bus name or ARN.

        Returns:
            The ``DescribeEventBus`` answer (``Name``, ``Arn``, ``Description``…).

        Raises:
            ResourceNotFound: no such bus.
        """
        return self._run(self._core.describe_bus(name))

    def list_buses(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """List event buses, following every page.

        Args:
            prefix: only buses whose name starts with it.

        Returns:
            The buses (``Name``, ``Arn``…), by name.
        """
        return self._run(self._core.list_buses(prefix))

    def delete_bus(self, name: str) -> None:
        """Delete a custom event bus and its rules; a missing bus is no error.

        Args:
            name: the bus name.

        Raises:
            ValidationError: ``name`` is ``default``.
        """
        return self._run(self._core.delete_bus(name))

    # -- rules -----------------------------------------------------------------------
    def put_rule(
        self,
        name: str,
        pattern: Mapping[str, Any] | str,
        *,
        bus: str = "default",
        description: str | None = None,
        enabled: bool = True,
    ) -> str:
        """Create a rule or replace it (its targets are kept).

        Args:
            name: the rule name.
            pattern: the event pattern, as a mapping or JSON text.
            bus: the bus name or ARN.
            description: an optional description.
            enabled: whether the rule matches events.

        Returns:
            The rule ARN.

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message).
            ResourceNotFound: no such bus.
        """
        return self._run(self._core.put_rule(name, pattern, bus, description, enabled))

    def describe_rule(self, name: str, *, bus: str = "default") -> dict[str, Any]:
        """Describe a rule.

        Args:
            name: the rule name.
            bus: the bus name or ARN.

        Returns:
            The ``DescribeRule`` answer (``Name``, ``Arn``, ``EventPattern``, ``State``…).

        Raises:
            ResourceNotFound: no such rule or bus.
        """
        return self._run(self._core.describe_rule(name, bus))

    def list_rules(
        self, *, bus: str = "default", prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """List the rules of a bus, following every page.

        Args:
            bus: the bus name or ARN.
            prefix: only rules whose name starts with it.

        Returns:
            The rules, by name.

        Raises:
            ResourceNotFound: no such bus.
        """
        return self._run(self._core.list_rules(bus, prefix))

    def enable_rule(self, name: str, *, bus: str = "default") -> None:
        """Let a rule match events again.

        Args:
            name: the rule name.
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
        """
        return self._run(self._core.set_rule_state(name, bus, True))

    def disable_rule(self, name: str, *, bus: str = "default") -> None:
        """Stop a rule from matching events; its targets are kept.

        Args:
            name: the rule name.
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
        """
        return self._run(self._core.set_rule_state(name, bus, False))

    def delete_rule(self, name: str, *, bus: str = "default", force: bool = False) -> None:
        """Delete a rule; a missing rule is no error.

        Args:
            name: the rule name.
            bus: the bus name or ARN.
            force: remove the rule's targets first (else a rule with targets stays).

        Raises:
            ValidationError: the rule has targets and ``force`` is false.
            ResourceNotFound: no such bus.
        """
        return self._run(self._core.delete_rule(name, bus, force))

    # -- targets ---------------------------------------------------------------------
    def put_targets(
        self, rule: str, targets: Sequence[Mapping[str, Any]], *, bus: str = "default"
    ) -> None:
        """Add targets to a rule, replacing those with the same ``Id``.

        Args:
            rule: the rule name.
            targets: AWS Target structures (``Id``, ``Arn``, and optionally ``Input``,
                ``InputPath``, ``InputTransformer``, ``RetryPolicy``,
                ``DeadLetterConfig``).
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
            LimitExceeded: the rule would have more than five targets.
            ServiceError: a target was refused (its code maps to the error class).
        """
        return self._run(self._core.put_targets(rule, targets, bus))

    def remove_targets(self, rule: str, ids: Sequence[str], *, bus: str = "default") -> None:
        """Remove targets from a rule by ``Id``; unknown ids are ignored.

        Args:
            rule: the rule name.
            ids: the target ids.
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
        """
        return self._run(self._core.remove_targets(rule, ids, bus))

    def list_targets(self, rule: str, *, bus: str = "default") -> list[dict[str, Any]]:
        """List a rule's targets, following every page.

        Args:
            rule: the rule name.
            bus: the bus name or ARN.

        Returns:
            The Target structures as they were put.

        Raises:
            ResourceNotFound: no such rule.
        """
        return self._run(self._core.list_targets(rule, bus))

    # -- signing secrets of webhook targets ------------------------------------------
    def put_signing_secret(
        self,
        rule: str,
        target_id: str,
        *,
        bus: str = "default",
        secret: str | None = None,
        keep_previous: bool = True,
    ) -> dict[str, Any]:
        """Make ``secret`` (generated when None) a webhook target's current signing secret.

        With ``keep_previous`` (the default) the secret it replaces still signs, so
        receivers can move to the new one without missing a delivery; end the rotation
        with :meth:`delete_signing_secret` ``(previous=True)``.

        Args:
            rule: the rule name.
            target_id: the target's ``Id``; it must be a webhook (an HTTP URL).
            bus: the bus name or ARN.
            secret: ``whsec_`` + base64 of 24 to 64 bytes; None: a new random one.
            keep_previous: keep the current secret valid beside the new one.

        Returns:
            ``{"Secret": "whsec_...", "CreationTime": t, "SecretCount": n}``: the only
            answer that holds the secret; keep it for the receiver.

        Raises:
            ResourceNotFound: no such rule or target.
            ValidationError: the secret is malformed or the target is not a webhook.
        """
        return self._run(self._core.put_signing_secret(rule, target_id, bus, secret, keep_previous))

    def delete_signing_secret(
        self, rule: str, target_id: str, *, bus: str = "default", previous: bool = False
    ) -> int:
        """Stop signing a webhook target's deliveries, or only retire its previous secret.

        Args:
            rule: the rule name.
            target_id: the target's ``Id``.
            bus: the bus name or ARN.
            previous: drop only the previous secret (the end of a rotation).

        Returns:
            How many secrets still sign the deliveries.

        Raises:
            ResourceNotFound: no such rule or target.
        """
        return self._run(self._core.delete_signing_secret(rule, target_id, bus, previous))

    def describe_signing(
        self, rule: str, target_id: str, *, bus: str = "default"
    ) -> dict[str, Any]:
        """Whether a target signs its deliveries, and when its secrets were made.

        Args:
            rule: the rule name.
            target_id: the target's ``Id``.
            bus: the bus name or ARN.

        Returns:
            ``{"Signed": bool, "Secrets": [{"CreationTime": t}, ...]}``, newest first;
            never a secret.

        Raises:
            ResourceNotFound: no such rule or target.
        """
        return self._run(self._core.describe_signing(rule, target_id, bus))

    # -- queues ----------------------------------------------------------------------
    def create_queue(self, name: str, *, attributes: Mapping[str, str] | None = None) -> str:
        """Create a queue; creating it again with the same attributes is no error.

        Args:
            name: the queue name.
            attributes: SQS queue attributes (``VisibilityTimeout``, ``RedrivePolicy``…).

        Returns:
            The queue URL.

        Raises:
            QueueError: a queue of that name has other attributes (``QueueAlreadyExists``)
                or an attribute is not valid.
        """
        return self._run(self._core.create_queue(name, attributes))

    def get_queue_url(self, name: str) -> str:
        """The URL of a queue.

        Args:
            name: the queue name.

        Returns:
            The queue URL.

        Raises:
            QueueError: no such queue (``AWS.SimpleQueueService.NonExistentQueue``).
        """
        return self._run(self._core.get_queue_url(name))

    def queue_arn(self, name: str) -> str:
        """The ARN of a queue, for a rule target's ``Arn``.

        Args:
            name: the queue name or URL.

        Returns:
            The queue ARN.

        Raises:
            QueueError: no such queue.
        """
        return self._run(self._core.queue_arn(name))

    def list_queues(self, prefix: str | None = None) -> list[str]:
        """List queues, following every page.

        Args:
            prefix: only queues whose name starts with it.

        Returns:
            The queue names.
        """
        return self._run(self._core.list_queues(prefix))

    def dead_letter_sources(self, name: str) -> list[str]:
        """The queues whose ``RedrivePolicy`` sends their dead letters to this queue.

        Args:
            name: the dead-letter queue's name or URL.

        Returns:
            The source queues' names (ListDeadLetterSourceQueues, every page).

        Raises:
            QueueError: no such queue.
        """
        return self._run(self._core.dead_letter_sources(name))

    def get_queue_attributes(self, name: str) -> dict[str, str]:
        """All attributes of a queue, message counts included.

        Args:
            name: the queue name or URL.

        Returns:
            The attributes (``QueueArn``, ``ApproximateNumberOfMessages``…) as strings.

        Raises:
            QueueError: no such queue.
        """
        return self._run(self._core.get_queue_attributes(name))

    def set_queue_attributes(self, name: str, attributes: Mapping[str, str]) -> None:
        """Change queue attributes (``RedrivePolicy`` ``""`` removes the policy).

        Args:
            name: the queue name or URL.
            attributes: the attributes to set.

        Raises:
            QueueError: no such queue, or an attribute is not valid.
        """
        return self._run(self._core.set_queue_attributes(name, attributes))

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages.

        Args:
            name: the queue name or URL.

        Raises:
            QueueError: no such queue.
        """
        return self._run(self._core.delete_queue(name))

    def purge_queue(self, name: str) -> None:
        """Delete every message of a queue.

        Args:
            name: the queue name or URL.

        Raises:
            QueueError: no such queue.
        """
        return self._run(self._core.purge_queue(name))

    def send_message(
        self,
        queue: str,
        body: str,
        *,
        attributes: Mapping[str, str] | None = None,
        delay: int = 0,
    ) -> str:
        """Send a message to a queue.

        Args:
            queue: the queue name or URL.
            body: the message body.
            attributes: String message attributes.
            delay: seconds before the message can be received (0: the queue's
                ``DelaySeconds``).

        Returns:
            The message id.

        Raises:
            QueueError: no such queue, or the message is not valid.
        """
        return self._run(self._core.send_message(queue, body, attributes, delay))

    def receive_messages(
        self,
        queue: str,
        *,
        max_messages: int = 10,
        wait: float = 20,
        visibility_timeout: int | None = None,
    ) -> list[Message]:
        """Receive messages, waiting for them (long poll).

        Args:
            queue: the queue name or URL.
            max_messages: at most this many messages (1 to 10).
            wait: seconds to wait for a message (0 to 20; rounded up to whole seconds).
            visibility_timeout: seconds the messages stay hidden (default: the queue's).

        Returns:
            The messages; empty when none came within ``wait``.

        Raises:
            QueueError: no such queue, or an argument is out of range.
        """
        raw = self._run(self._core.receive_messages(queue, max_messages, wait, visibility_timeout))
        return [_message(message) for message in raw]

    def delete_message(self, queue: str, receipt: str) -> None:
        """Delete (acknowledge) a received message.

        Args:
            queue: the queue name or URL.
            receipt: the message's receipt handle.

        Raises:
            QueueError: no such queue, or the receipt is not one of this queue's.
        """
        return self._run(self._core.delete_message(queue, receipt))

    def change_visibility(self, queue: str, receipt: str, timeout: int) -> None:
        """Hide a received message for ``timeout`` more seconds (0: visible now).

        Args:
            queue: the queue name or URL.
            receipt: the message's receipt handle.
            timeout: seconds from now (0 to 43200).

        Raises:
            QueueError: no such queue, the receipt is not valid, or the message is not
                in flight.
        """
        return self._run(self._core.change_visibility(queue, receipt, timeout))

    def delete_messages(self, queue: str, receipts: Sequence[str]) -> list[str]:
        """Delete (acknowledge) many received messages, 10 per request (DeleteMessageBatch).

        A receipt the server refuses does not stop the others. Receipts refused through
        the server's own fault are sent again with backoff, up to ``retries`` times.

        Args:
            queue: the queue name or URL.
            receipts: the messages' receipt handles; none sends no request.

        Returns:
            The receipts the server refused (not valid, e.g. another queue's), in the
            order given; empty when every receipt was accepted. As in SQS, a receipt
            whose message is already deleted is accepted.

        Raises:
            QueueError: no such queue.
            TransportError: the server could not be reached; requests sent before the
                failure may have deleted their messages.
        """
        return self._run(self._core.delete_messages(queue, receipts))

    def change_visibility_batch(
        self, queue: str, receipts: Sequence[str], timeout: int
    ) -> list[str]:
        """Hide many received messages for ``timeout`` more seconds, 10 per request.

        The batch form of :meth:`change_visibility` (ChangeMessageVisibilityBatch): a
        receipt the server refuses does not stop the others. Receipts refused through
        the server's own fault are sent again with backoff, up to ``retries`` times.

        Args:
            queue: the queue name or URL.
            receipts: the messages' receipt handles; none sends no request.
            timeout: seconds from now (0 to 43200), the same for every message.

        Returns:
            The receipts whose visibility did not change (not valid, the message is not
            in flight, or ``timeout`` is out of range), in the order given; empty when
            every change was made.

        Raises:
            QueueError: no such queue.
            TransportError: the server could not be reached; requests sent before the
                failure may have changed their messages.
        """
        return self._run(self._core.change_visibility_batch(queue, receipts, timeout))


class AsyncClient(AsyncArchivesMixin, _Base):
    """An asyncio client of an eventyard server; the twin of :class:`Client`.

    Same methods, names and arguments as :class:`Client`, as coroutines. Connections are
    kept alive between calls; close the client (``await client.aclose()``, or use it as
    an async context manager) when done.

    Args:
        url: the server's base URL; default ``EVENTYARD_URL``, else
            ``http://127.0.0.1:4010``.
        timeout: seconds each HTTP exchange may take (a long poll gets its wait on top).
        region: the AWS region the server is taken to serve (kept as ``region``).
        retries: how often a failed request, or a PutEvents entry rejected with a
            retryable code, is tried again (with a short, doubling backoff).
        token: the bearer token of an access key (``eventyard keys create``), sent as
            ``Authorization: Bearer`` on every request; default ``EVENTYARD_TOKEN``. A
            server with no access key (dev mode) needs none.

    Raises:
        TransportError: ``url`` is not an http(s) URL.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 30.0,
        region: str = "us-east-1",
        retries: int = 3,
        token: str | None = None,
    ) -> None:
        super().__init__(url, timeout=timeout, region=region, retries=retries, token=token)
        self._http = httpx.AsyncClient(**self._http_options())

    async def aclose(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> Reply:
        core = self._core
        content, headers = core.body(call), core.headers(call)
        try:
            if call.path is not None:
                response = await self._http.get(
                    call.path, params=call.params, headers=headers, timeout=core.timeout_of(call)
                )
            else:
                response = await self._http.post(
                    self._endpoint,
                    content=content,
                    headers=headers,
                    timeout=core.timeout_of(call),
                )
        except Exception as exc:  # every httpx failure becomes ours
            raise self._failure(call, exc, self._http.is_closed) from exc
        return self._reply(response)

    async def _run(self, flow: Flow[_T]) -> _T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    reply = await self._send(step)
                except ExchangeFailed as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(reply)
        except StopIteration as stop:
            return cast(_T, stop.value)
        finally:
            flow.close()

    # -- events ----------------------------------------------------------------------
    async def put_events(
        self,
        events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
        *,
        bus: str | None = None,
    ) -> list[str]:
        """Publish one event or many.

        The events go in requests of at most 10 entries and 1 MiB. Entries the server
        rejects with a retryable code (``InternalFailure``, ``ThrottlingException``) are
        sent again with backoff, up to ``retries`` times.

        Args:
            events: an :class:`~eventyard.Event` or a PutEvents entry mapping
                (``Source``, ``DetailType``, ``Detail``… ; ``Detail`` may be a mapping),
                or an iterable of them.
            bus: the bus name or ARN for every event (default: each event's own bus,
                else ``default``).

        Returns:
            The event ids, in the order of ``events``.

        Raises:
            PutEventsFailed: some entries were rejected for good; raised after every
                other entry was sent, and its ``failures`` name them by index.
            ValidationError: an event cannot be encoded as JSON.
            TransportError: the server could not be reached.
        """
        return await self._run(self._core.put_events(events, bus))

    async def put_events_with_matches(
        self,
        events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
        *,
        bus: str | None = None,
    ) -> PutEventsResult:
        """Publish one event or many, and learn how many rules each matched.

        The same as :meth:`put_events` (batches, retries, failures), returning more than
        the ids: the bus of each event and how many of its rules the event matched when
        it was put (``x-eventyard-matched-rules``; None where the server did not say,
        e.g. AWS). An event that matched no rule is stored but delivered nowhere
        (with :class:`AsyncClient`, await the call)::

            result = client.put_events_with_matches(Event("shop", "OrderPlaced"))
            for bus in result.by_bus():
                if bus.unmatched:
                    print(f"{bus.unmatched} event(s) matched no rule on bus {bus.bus}")

        Args:
            events: an :class:`~eventyard.Event` or a PutEvents entry mapping, or an
                iterable of them.
            bus: the bus name or ARN for every event (default: each event's own bus,
                else ``default``).

        Returns:
            The ids, buses and match counts, in the order of ``events``.

        Raises:
            PutEventsFailed: some entries were rejected for good; raised after every
                other entry was sent, and its ``failures`` name them by index.
            ValidationError: an event cannot be encoded as JSON.
            TransportError: the server could not be reached.
        """
        return await self._run(self._core.put_events_with_matches(events, bus))

    async def test_pattern(
        self, pattern: Mapping[str, Any] | str, event: Mapping[str, Any] | str
    ) -> bool:
        """Whether an event pattern matches an event (``TestEventPattern``).

        Args:
            pattern: the event pattern, as a mapping or JSON text.
            event: the full event envelope (``id``, ``source``, ``detail-type``,
                ``account``, ``time``, ``region``…), as a mapping or JSON text.

        Returns:
            True if the pattern matches.

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message).
            ValidationError: the event is not a valid envelope.
        """
        return await self._run(self._core.test_pattern(pattern, event))

    # -- search and trace --------------------------------------------------------------
    async def trace(
        self,
        event_id: str,
        *,
        bus: str | None = None,
        since: str | float | datetime | None = None,
        until: str | float | datetime | None = None,
    ) -> Trace:
        """What happened to one event: its log records, the rules of its bus evaluated
        now (why each did or did not match), each target's attempts, its dead letter
        and the receives and deletes of its queue messages.

        Args:
            event_id: the event's id (as PutEvents returned it).
            bus: with ``since``, the bus to look on.
            since: a window start (ISO 8601, epoch seconds, a ``datetime`` or a duration
                before now such as ``"2h"``): needed only for an id that is not
                time-ordered (events from before eventyard made UUIDv7 ids).
            until: the window's end (default now).

        Returns:
            The trace; ``found`` is False when the log does not hold the event.

        Raises:
            ValidationError: the id is not time-ordered and no ``since`` was given.
            ResourceNotFound: ``bus`` does not exist.
        """
        return await self._run(self._core.trace(event_id, bus, since, until))

    async def search_events(
        self,
        bus: str = "default",
        *,
        pattern: Mapping[str, Any] | str | None = None,
        since: str | float | datetime = "1h",
        until: str | float | datetime | None = None,
        limit: int | None = 100,
    ) -> list[StoredEvent]:
        """The stored events of ``bus`` ingested between ``since`` and ``until`` that
        match ``pattern`` (any EventBridge pattern; None: every event), oldest first.

        Args:
            bus: the bus name or ARN.
            pattern: the event pattern (a mapping or JSON text).
            since: the window's start: ISO 8601, epoch seconds, a ``datetime`` or a
                duration before now (``"15m"``, ``"1h"``, ``"2d"``).
            until: the window's end (default now).
            limit: the most events returned (None: all, page by page).

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message).
            ResourceNotFound: the bus does not exist.
            ValidationError: a time or the limit is not valid.
        """
        return await self._run(self._core.search_events(bus, pattern, since, until, limit))

    # -- buses -----------------------------------------------------------------------
    async def create_bus(self, name: str, *, description: str | None = None) -> str:
        """Create a custom event bus.

        Args:
            name: the bus name.
            description: an optional description.

        Returns:
            The bus ARN.

        Raises:
            ResourceAlreadyExists: a bus of that name exists.
        """
        return await self._run(self._core.create_bus(name, description))

    async def describe_bus(self, name: str = "default") -> dict[str, Any]:
        """Describe an event bus.

        Args:
            name: the bus name or ARN.

        Returns:
            The ``DescribeEventBus`` answer (``Name``, ``Arn``, ``Description``…).

        Raises:
            ResourceNotFound: no such bus.
        """
        return await self._run(self._core.describe_bus(name))

    async def list_buses(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """List event buses, following every page.

        Args:
            prefix: only buses whose name starts with it.

        Returns:
            The buses (``Name``, ``Arn``…), by name.
        """
        return await self._run(self._core.list_buses(prefix))

    async def delete_bus(self, name: str) -> None:
        """Delete a custom event bus and its rules; a missing bus is no error.

        Args:
            name: the bus name.

        Raises:
            ValidationError: ``name`` is ``default``.
        """
        return await self._run(self._core.delete_bus(name))

    # -- rules -----------------------------------------------------------------------
    async def put_rule(
        self,
        name: str,
        pattern: Mapping[str, Any] | str,
        *,
        bus: str = "default",
        description: str | None = None,
        enabled: bool = True,
    ) -> str:
        """Create a rule or replace it (its targets are kept).

        Args:
            name: the rule name.
            pattern: the event pattern, as a mapping or JSON text.
            bus: the bus name or ARN.
            description: an optional description.
            enabled: whether the rule matches events.

        Returns:
            The rule ARN.

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message).
            ResourceNotFound: no such bus.
        """
        return await self._run(self._core.put_rule(name, pattern, bus, description, enabled))

    async def describe_rule(self, name: str, *, bus: str = "default") -> dict[str, Any]:
        """Describe a rule.

        Args:
            name: the rule name.
            bus: the bus name or ARN.

        Returns:
            The ``DescribeRule`` answer (``Name``, ``Arn``, ``EventPattern``, ``State``…).

        Raises:
            ResourceNotFound: no such rule or bus.
        """
        return await self._run(self._core.describe_rule(name, bus))

    async def list_rules(
        self, *, bus: str = "default", prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """List the rules of a bus, following every page.

        Args:
            bus: the bus name or ARN.
            prefix: only rules whose name starts with it.

        Returns:
            The rules, by name.

        Raises:
            ResourceNotFound: no such bus.
        """
        return await self._run(self._core.list_rules(bus, prefix))

    async def enable_rule(self, name: str, *, bus: str = "default") -> None:
        """Let a rule match events again.

        Args:
            name: the rule name.
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
        """
        return await self._run(self._core.set_rule_state(name, bus, True))

    async def disable_rule(self, name: str, *, bus: str = "default") -> None:
        """Stop a rule from matching events; its targets are kept.

        Args:
            name: the rule name.
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
        """
        return await self._run(self._core.set_rule_state(name, bus, False))

    async def delete_rule(self, name: str, *, bus: str = "default", force: bool = False) -> None:
        """Delete a rule; a missing rule is no error.

        Args:
            name: the rule name.
            bus: the bus name or ARN.
            force: remove the rule's targets first (else a rule with targets stays).

        Raises:
            ValidationError: the rule has targets and ``force`` is false.
            ResourceNotFound: no such bus.
        """
        return await self._run(self._core.delete_rule(name, bus, force))

    # -- targets ---------------------------------------------------------------------
    async def put_targets(
        self, rule: str, targets: Sequence[Mapping[str, Any]], *, bus: str = "default"
    ) -> None:
        """Add targets to a rule, replacing those with the same ``Id``.

        Args:
            rule: the rule name.
            targets: AWS Target structures (``Id``, ``Arn``, and optionally ``Input``,
                ``InputPath``, ``InputTransformer``, ``RetryPolicy``,
                ``DeadLetterConfig``).
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
            LimitExceeded: the rule would have more than five targets.
            ServiceError: a target was refused (its code maps to the error class).
        """
        return await self._run(self._core.put_targets(rule, targets, bus))

    async def remove_targets(self, rule: str, ids: Sequence[str], *, bus: str = "default") -> None:
        """Remove targets from a rule by ``Id``; unknown ids are ignored.

        Args:
            rule: the rule name.
            ids: the target ids.
            bus: the bus name or ARN.

        Raises:
            ResourceNotFound: no such rule.
        """
        return await self._run(self._core.remove_targets(rule, ids, bus))

    async def list_targets(self, rule: str, *, bus: str = "default") -> list[dict[str, Any]]:
        """List a rule's targets, following every page.

        Args:
            rule: the rule name.
            bus: the bus name or ARN.

        Returns:
            The Target structures as they were put.

        Raises:
            ResourceNotFound: no such rule.
        """
        return await self._run(self._core.list_targets(rule, bus))

    # -- signing secrets of webhook targets ------------------------------------------
    async def put_signing_secret(
        self,
        rule: str,
        target_id: str,
        *,
        bus: str = "default",
        secret: str | None = None,
        keep_previous: bool = True,
    ) -> dict[str, Any]:
        """Make ``secret`` (generated when None) a webhook target's current signing secret.

        With ``keep_previous`` (the default) the secret it replaces still signs, so
        receivers can move to the new one without missing a delivery; end the rotation
        with :meth:`delete_signing_secret` ``(previous=True)``.

        Args:
            rule: the rule name.
            target_id: the target's ``Id``; it must be a webhook (an HTTP URL).
            bus: the bus name or ARN.
            secret: ``whsec_`` + base64 of 24 to 64 bytes; None: a new random one.
            keep_previous: keep the current secret valid beside the new one.

        Returns:
            ``{"Secret": "whsec_...", "CreationTime": t, "SecretCount": n}``: the only
            answer that holds the secret; keep it for the receiver.

        Raises:
            ResourceNotFound: no such rule or target.
            ValidationError: the secret is malformed or the target is not a webhook.
        """
        return await self._run(
            self._core.put_signing_secret(rule, target_id, bus, secret, keep_previous)
        )

    async def delete_signing_secret(
        self, rule: str, target_id: str, *, bus: str = "default", previous: bool = False
    ) -> int:
        """Stop signing a webhook target's deliveries, or only retire its previous secret.

        Args:
            rule: the rule name.
            target_id: the target's ``Id``.
            bus: the bus name or ARN.
            previous: drop only the previous secret (the end of a rotation).

        Returns:
            How many secrets still sign the deliveries.

        Raises:
            ResourceNotFound: no such rule or target.
        """
        return await self._run(self._core.delete_signing_secret(rule, target_id, bus, previous))

    async def describe_signing(
        self, rule: str, target_id: str, *, bus: str = "default"
    ) -> dict[str, Any]:
        """Whether a target signs its deliveries, and when its secrets were made.

        Args:
            rule: the rule name.
            target_id: the target's ``Id``.
            bus: the bus name or ARN.

        Returns:
            ``{"Signed": bool, "Secrets": [{"CreationTime": t}, ...]}``, newest first;
            never a secret.

        Raises:
            ResourceNotFound: no such rule or target.
        """
        return await self._run(self._core.describe_signing(rule, target_id, bus))

    # -- queues ----------------------------------------------------------------------
    async def create_queue(self, name: str, *, attributes: Mapping[str, str] | None = None) -> str:
        """Create a queue; creating it again with the same attributes is no error.

        Args:
            name: the queue name.
            attributes: SQS queue attributes (``VisibilityTimeout``, ``RedrivePolicy``…).

        Returns:
            The queue URL.

        Raises:
            QueueError: a queue of that name has other attributes (``QueueAlreadyExists``)
                or an attribute is not valid.
        """
        return await self._run(self._core.create_queue(name, attributes))

    async def get_queue_url(self, name: str) -> str:
        """The URL of a queue.

        Args:
            name: the queue name.

        Returns:
            The queue URL.

        Raises:
            QueueError: no such queue (``AWS.SimpleQueueService.NonExistentQueue``).
        """
        return await self._run(self._core.get_queue_url(name))

    async def queue_arn(self, name: str) -> str:
        """The ARN of a queue, for a rule target's ``Arn``.

        Args:
            name: the queue name or URL.

        Returns:
            The queue ARN.

        Raises:
            QueueError: no such queue.
        """
        return await self._run(self._core.queue_arn(name))

    async def list_queues(self, prefix: str | None = None) -> list[str]:
        """List queues, following every page.

        Args:
            prefix: only queues whose name starts with it.

        Returns:
            The queue names.
        """
        return await self._run(self._core.list_queues(prefix))

    async def dead_letter_sources(self, name: str) -> list[str]:
        """The queues whose ``RedrivePolicy`` sends their dead letters to this queue.

        Args:
            name: the dead-letter queue's name or URL.

        Returns:
            The source queues' names (ListDeadLetterSourceQueues, every page).

        Raises:
            QueueError: no such queue.
        """
        return await self._run(self._core.dead_letter_sources(name))

    async def get_queue_attributes(self, name: str) -> dict[str, str]:
        """All attributes of a queue, message counts included.

        Args:
            name: the queue name or URL.

        Returns:
            The attributes (``QueueArn``, ``ApproximateNumberOfMessages``…) as strings.

        Raises:
            QueueError: no such queue.
        """
        return await self._run(self._core.get_queue_attributes(name))

    async def set_queue_attributes(self, name: str, attributes: Mapping[str, str]) -> None:
        """Change queue attributes (``RedrivePolicy`` ``""`` removes the policy).

        Args:
            name: the queue name or URL.
            attributes: the attributes to set.

        Raises:
            QueueError: no such queue, or an attribute is not valid.
        """
        return await self._run(self._core.set_queue_attributes(name, attributes))

    async def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages.

        Args:
            name: the queue name or URL.

        Raises:
            QueueError: no such queue.
        """
        return await self._run(self._core.delete_queue(name))

    async def purge_queue(self, name: str) -> None:
        """Delete every message of a queue.

        Args:
            name: the queue name or URL.

        Raises:
            QueueError: no such queue.
        """
        return await self._run(self._core.purge_queue(name))

    async def send_message(
        self,
        queue: str,
        body: str,
        *,
        attributes: Mapping[str, str] | None = None,
        delay: int = 0,
    ) -> str:
        """Send a message to a queue.

        Args:
            queue: the queue name or URL.
            body: the message body.
            attributes: String message attributes.
            delay: seconds before the message can be received (0: the queue's
                ``DelaySeconds``).

        Returns:
            The message id.

        Raises:
            QueueError: no such queue, or the message is not valid.
        """
        return await self._run(self._core.send_message(queue, body, attributes, delay))

    async def receive_messages(
        self,
        queue: str,
        *,
        max_messages: int = 10,
        wait: float = 20,
        visibility_timeout: int | None = None,
    ) -> list[Message]:
        """Receive messages, waiting for them (long poll).

        Args:
            queue: the queue name or URL.
            max_messages: at most this many messages (1 to 10).
            wait: seconds to wait for a message (0 to 20; rounded up to whole seconds).
            visibility_timeout: seconds the messages stay hidden (default: the queue's).

        Returns:
            The messages; empty when none came within ``wait``.

        Raises:
            QueueError: no such queue, or an argument is out of range.
        """
        raw = await self._run(
            self._core.receive_messages(queue, max_messages, wait, visibility_timeout)
        )
        return [_message(message) for message in raw]

    async def delete_message(self, queue: str, receipt: str) -> None:
        """Delete (acknowledge) a received message.

        Args:
            queue: the queue name or URL.
            receipt: the message's receipt handle.

        Raises:
            QueueError: no such queue, or the receipt is not one of this queue's.
        """
        return await self._run(self._core.delete_message(queue, receipt))

    async def change_visibility(self, queue: str, receipt: str, timeout: int) -> None:
        """Hide a received message for ``timeout`` more seconds (0: visible now).

        Args:
            queue: the queue name or URL.
            receipt: the message's receipt handle.
            timeout: seconds from now (0 to 43200).

        Raises:
            QueueError: no such queue, the receipt is not valid, or the message is not
                in flight.
        """
        return await self._run(self._core.change_visibility(queue, receipt, timeout))

    async def delete_messages(self, queue: str, receipts: Sequence[str]) -> list[str]:
        """Delete (acknowledge) many received messages, 10 per request (DeleteMessageBatch).

        A receipt the server refuses does not stop the others. Receipts refused through
        the server's own fault are sent again with backoff, up to ``retries`` times.

        Args:
            queue: the queue name or URL.
            receipts: the messages' receipt handles; none sends no request.

        Returns:
            The receipts the server refused (not valid, e.g. another queue's), in the
            order given; empty when every receipt was accepted. As in SQS, a receipt
            whose message is already deleted is accepted.

        Raises:
            QueueError: no such queue.
            TransportError: the server could not be reached; requests sent before the
                failure may have deleted their messages.
        """
        return await self._run(self._core.delete_messages(queue, receipts))

    async def change_visibility_batch(
        self, queue: str, receipts: Sequence[str], timeout: int
    ) -> list[str]:
        """Hide many received messages for ``timeout`` more seconds, 10 per request.

        The batch form of :meth:`change_visibility` (ChangeMessageVisibilityBatch): a
        receipt the server refuses does not stop the others. Receipts refused through
        the server's own fault are sent again with backoff, up to ``retries`` times.

        Args:
            queue: the queue name or URL.
            receipts: the messages' receipt handles; none sends no request.
            timeout: seconds from now (0 to 43200), the same for every message.

        Returns:
            The receipts whose visibility did not change (not valid, the message is not
            in flight, or ``timeout`` is out of range), in the order given; empty when
            every change was made.

        Raises:
            QueueError: no such queue.
            TransportError: the server could not be reached; requests sent before the
                failure may have changed their messages.
        """
        return await self._run(self._core.change_visibility_batch(queue, receipts, timeout))
