"""The SDK's sans-I/O core: every request built, every answer parsed, in one place.

:class:`Client` and :class:`AsyncClient` (``eventyard.sdk.client``) are twins that only do
I/O. Each of their methods runs a *flow* from :class:`Core`: a generator that yields
the steps of an operation — a :class:`Call` (one HTTP request to send) or a
:class:`Sleep` (a backoff pause) — receives each call's :class:`Reply` and returns the
method's result. Batching, paging, retries and error mapping live here once; a twin
drives a flow with blocking or awaited I/O and throws a :class:`ExchangeFailed` into
it when the HTTP exchange itself fails.

Retries: a request that never reached the server (connection refused, connect
timeout) and a throttled request are retried for every operation; a request that may
have been processed (read timeout, broken connection, 5xx) only for idempotent
operations, so a retry never duplicates an event or a message.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, TypeVar
from urllib.parse import quote, urlsplit

import orjson

from eventyard.envelope import DEFAULT_BUS, MATCHED_RULES_HEADER, bus_name_from, entry_size
from eventyard.errors import (
    ConcurrentModification,
    EventyardError,
    ExchangeFailed,
    IllegalStatus,
    InternalError,
    InvalidEventPattern,
    LimitExceeded,
    PutEventsFailed,
    QueueError,
    ResourceAlreadyExists,
    ResourceNotFound,
    SerializationError,
    ServiceError,
    TransportError,
    UnknownOperation,
    ValidationError,
)
from eventyard.sdk.event import Event
from eventyard.sdk.trace import StoredEvent, Trace

__all__ = [
    "DEFAULT_URL",
    "EVENTS",
    "MATCHED_RULES_HEADER",
    "NATIVE",
    "QUEUES",
    "BusMatches",
    "Call",
    "Core",
    "Flow",
    "PutEventsResult",
    "Reply",
    "Sleep",
    "service_error",
]

DEFAULT_URL = "http://127.0.0.1:4010"
EVENTS = "AWSEvents"
QUEUES = "AmazonSQS"
#: the service of calls to eventyard's own endpoints (``GET /v1/...``)
NATIVE = "eventyard"
MAX_BATCH = 10
MAX_BATCH_SIZE = 1024 * 1024
MAX_WAIT = 20
# eventyard's PutEvents answer says how many rules each entry matched (AWS does not)
RETRYABLE_ENTRY_CODES = frozenset({"InternalFailure", "ThrottlingException"})
_THROTTLING = frozenset(
    {"ThrottlingException", "Throttling", "RequestThrottled", "TooManyRequestsException"}
)
_CONTENT_TYPES = {EVENTS: "application/x-amz-json-1.1", QUEUES: "application/x-amz-json-1.0"}
# A lost answer to these must not be retried: a second try could duplicate an event or
# a message, or report an error for a change the first try made.
# PutTargetSigningSecret: sent twice, a rotation that keeps the previous secret would
# push the receiver's current one out (the first answer's secret becoming "previous")
_NOT_IDEMPOTENT = frozenset(
    {
        "PutEvents",
        "SendMessage",
        "SendMessageBatch",
        "CreateEventBus",
        "DeleteQueue",
        "PutTargetSigningSecret",
    }
)
_SYSTEM_ATTRIBUTES = [
    "ApproximateReceiveCount",
    "SentTimestamp",
    "ApproximateFirstReceiveTimestamp",
]
_ERRORS: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        InvalidEventPattern,
        ValidationError,
        ResourceNotFound,
        ResourceAlreadyExists,
        LimitExceeded,
        ConcurrentModification,
        IllegalStatus,
        UnknownOperation,
        SerializationError,
        InternalError,
    )
}

_T = TypeVar("_T")


@dataclass(slots=True, frozen=True)
class Call:
    """One request: ``X-Amz-Target: <service>.<op>`` with ``params`` as the JSON body.

    ``timeout`` overrides the client's timeout (long polls need more than their wait).
    A call with a ``path`` is a ``GET`` of that native endpoint with ``params`` as its
    query (``service`` :data:`NATIVE`, ``op`` a name for messages).
    """

    service: str
    op: str
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    path: str | None = None

    @property
    def idempotent(self) -> bool:
        """Whether sending the request twice has the effect of sending it once."""
        return self.op not in _NOT_IDEMPOTENT


@dataclass(slots=True, frozen=True)
class Sleep:
    """A pause of ``seconds`` before the flow goes on (backoff between retries)."""

    seconds: float


@dataclass(slots=True, frozen=True)
class Reply:
    """The HTTP answer to a :class:`Call`."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(slots=True, frozen=True)
class BusMatches:
    """How the events put on one bus fared against its rules.

    Attributes:
        bus: the bus name.
        events: the events put on the bus whose match count the server reported.
        unmatched: how many of them matched no rule (nothing will be delivered).
        rule_matches: the rules matched, summed over the events.
    """

    bus: str
    events: int
    unmatched: int
    rule_matches: int


@dataclass(slots=True, frozen=True)
class PutEventsResult:
    """What PutEvents did with each event, index-aligned with the events given.

    Attributes:
        event_ids: the id of each event.
        buses: the bus name each event was put on (``default`` when it named none).
        matched_rules: how many rules each event matched on its bus when it was put;
            None where the server did not say (a server that is not eventyard).
    """

    event_ids: list[str]
    buses: list[str]
    matched_rules: list[int | None]

    def unmatched(self) -> list[int]:
        """The indexes of the events that matched no rule (so went nowhere)."""
        return [i for i, count in enumerate(self.matched_rules) if count == 0]

    def by_bus(self) -> list[BusMatches]:
        """One summary per bus, in the order the buses first appear; buses whose every
        count is unknown are left out."""
        tally: dict[str, list[int]] = {}
        for bus, count in zip(self.buses, self.matched_rules, strict=True):
            if count is not None:
                events, unmatched, matches = tally.setdefault(bus, [0, 0, 0])
                tally[bus] = [events + 1, unmatched + (count == 0), matches + count]
        return [BusMatches(bus, *numbers) for bus, numbers in tally.items()]


Step: TypeAlias = Call | Sleep
Flow: TypeAlias = Generator[Step, Any, _T]


def service_error(service: str, reply: Reply) -> EventyardError:
    """The error an error answer stands for.

    EventBridge codes map to their :mod:`eventyard.errors` class; SQS errors become a
    :class:`QueueError` whose code is the legacy code of ``x-amzn-query-error`` (what
    boto3 users compare against), else the modeled shape. An answer that is not an
    AWS-shaped error becomes a :class:`ExchangeFailed` (not eventyard speaking).
    """
    try:
        body = orjson.loads(reply.content)
    except orjson.JSONDecodeError:
        body = None
    code = body.get("__type") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code:
        shown = reply.content[:200].decode(errors="replace").strip()
        return ExchangeFailed(
            f"unexpected HTTP {reply.status} answer (not an eventyard error): {shown!r}",
            sent=True,
            status=reply.status,
        )
    assert isinstance(body, dict)
    message = body.get("message", body.get("Message", ""))
    message = message if isinstance(message, str) else str(message)
    code = code.rsplit("#", 1)[-1].split(":", 1)[0]
    query_error = reply.headers.get("x-amzn-query-error")
    if query_error:
        return QueueError(message, code=query_error.split(";", 1)[0], status=reply.status)
    if code in _THROTTLING:
        return ServiceError(message, code=code, status=reply.status)
    if service == QUEUES:
        return QueueError(message, code=code, status=reply.status)
    cls = _ERRORS.get(code)
    if cls is not None:
        return cls(message, status=reply.status)
    return ServiceError(message, code=code, status=reply.status)


def _when(value: str | float | datetime | None) -> str | None:
    """A time for a query: ISO 8601, epoch seconds, or a duration before now (``1h``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _query(**params: str | None) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _dumps(value: Any, what: str) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise ValidationError(f"{what} cannot be encoded as JSON: {exc}") from exc


def _json_text(value: Mapping[str, Any] | str, what: str) -> str:
    return value if isinstance(value, str) else _dumps(dict(value), what).decode()


def _entry(item: Event | Mapping[str, Any], bus: str | None) -> dict[str, Any]:
    if isinstance(item, Event):
        try:
            return item.to_entry(bus)
        except TypeError as exc:
            raise ValidationError(f"event detail cannot be encoded as JSON: {exc}") from exc
    if not isinstance(item, Mapping):
        raise TypeError(f"expected an Event or a PutEvents entry mapping, got {type(item)!r}")
    entry = dict(item)
    if isinstance(entry.get("Detail"), Mapping):
        entry["Detail"] = _json_text(entry["Detail"], "Detail")
    if bus is not None:
        entry["EventBusName"] = bus
    return entry


def _match_counts(header: str | None, size: int) -> list[int | None]:
    """The per-entry counts of ``x-eventyard-matched-rules`` (all None if absent or odd)."""
    if header is None:
        return [None] * size
    parts = header.split(",")
    if len(parts) != size:
        return [None] * size
    return [int(part) if part.strip().isdigit() else None for part in parts]


def _bus_of(entry: Mapping[str, Any]) -> str:
    value = entry.get("EventBusName")
    if not isinstance(value, str) or not value:
        return DEFAULT_BUS
    return bus_name_from(value) or value


def _batches(entries: Sequence[Mapping[str, Any]], pending: list[int]) -> list[list[int]]:
    """Indexes of ``pending`` entries grouped in order: ≤ 10 entries and ≤ 1 MiB each."""
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index in pending:
        entry_bytes = entry_size(entries[index])
        if current and (len(current) == MAX_BATCH or size + entry_bytes > MAX_BATCH_SIZE):
            batches.append(current)
            current, size = [], 0
        current.append(index)
        size += entry_bytes
    if current:
        batches.append(current)
    return batches


class Core:
    """Request building, answer parsing and the operations' flows, shared by both twins.

    Args:
        url: the server's base URL.
        timeout: seconds an HTTP exchange may take.
        retries: retries after the first attempt, for requests and PutEvents entries.
    """

    def __init__(self, url: str, *, timeout: float, retries: int) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TransportError(f"invalid eventyard URL {url!r}: use http://host:port")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._queue_urls: dict[str, str] = {}

    # -- requests and answers ------------------------------------------------------------
    def headers(self, call: Call) -> dict[str, str]:
        """The HTTP headers of ``call``."""
        if call.path is not None:
            return {"Accept": "application/json"}
        return {
            "X-Amz-Target": f"{call.service}.{call.op}",
            "Content-Type": _CONTENT_TYPES[call.service],
        }

    def body(self, call: Call) -> bytes:
        """The JSON body of ``call`` (none for a ``GET``)."""
        if call.path is not None:
            return b""
        return _dumps(call.params, f"the {call.op} request")

    def timeout_of(self, call: Call) -> float:
        """Seconds the exchange of ``call`` may take."""
        return self.timeout if call.timeout is None else call.timeout

    def transport_failure(
        self, call: Call, exc: Exception, *, connect: bool, timed_out: bool
    ) -> ExchangeFailed:
        """The :class:`ExchangeFailed` for an HTTP-library exception.

        Args:
            call: the request that failed.
            exc: the foreign exception.
            connect: the connection was never established (the request was not sent).
            timed_out: the failure was a timeout.
        """
        if connect and not timed_out:
            return ExchangeFailed(f"cannot reach eventyard at {self.url}: {exc}", sent=False)
        if timed_out:
            phase = "connect to" if connect else "answer"
            return ExchangeFailed(
                f"eventyard at {self.url} did not {phase} {call.op} within "
                f"{self.timeout_of(call):g} s",
                sent=not connect,
            )
        return ExchangeFailed(
            f"{call.op} request to eventyard at {self.url} failed: {type(exc).__name__}: {exc}",
            sent=True,
        )

    def parse(self, call: Call, reply: Reply) -> dict[str, Any]:
        """The result of a successful answer; raises the error an error answer stands for."""
        if reply.status >= 300:
            raise service_error(call.service, reply)
        if not reply.content.strip():
            return {}
        try:
            result = orjson.loads(reply.content)
        except orjson.JSONDecodeError as exc:
            raise TransportError(
                f"unexpected answer from eventyard at {self.url} to {call.op}: not JSON ({exc})"
            ) from exc
        if not isinstance(result, dict):
            raise TransportError(
                f"unexpected answer from eventyard at {self.url} to {call.op}: not a JSON object"
            )
        return result

    def retryable(self, call: Call, error: EventyardError) -> bool:
        """Whether ``call`` may be sent again after failing with ``error``."""
        if isinstance(error, ExchangeFailed):
            if not error.sent:
                return True
            return call.idempotent and (error.status is None or error.status >= 500)
        if isinstance(error, ServiceError):
            if error.code in _THROTTLING or error.status == 429:
                return True
            return call.idempotent and error.status >= 500
        return False

    def backoff(self, attempt: int) -> float:
        """The pause before retry number ``attempt`` (1-based): short, doubling, jittered."""
        return min(0.05 * 2.0 ** (attempt - 1), 2.0) * random.uniform(0.5, 1.0)

    def exchange(self, call: Call) -> Flow[dict[str, Any]]:
        """Send ``call`` (retrying as :meth:`retryable` allows); returns its parsed result."""
        result, _ = yield from self.exchange_reply(call)
        return result

    def exchange_reply(self, call: Call) -> Flow[tuple[dict[str, Any], Reply]]:
        """:meth:`exchange`, also returning the successful :class:`Reply` (its headers)."""
        attempt = 0
        while True:
            try:
                reply = yield call
                return self.parse(call, reply), reply
            except (ServiceError, TransportError) as exc:
                if attempt >= self.retries or not self.retryable(call, exc):
                    raise
            attempt += 1
            yield Sleep(self.backoff(attempt))

    def _events(self, op: str, **params: Any) -> Flow[dict[str, Any]]:
        return self.exchange(Call(EVENTS, op, {k: v for k, v in params.items() if v is not None}))

    def _queues(self, op: str, timeout: float | None = None, **params: Any) -> Flow[dict[str, Any]]:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.exchange(Call(QUEUES, op, clean, timeout))

    def _pages(self, op: str, key: str, **params: Any) -> Flow[list[dict[str, Any]]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            result = yield from self._events(op, NextToken=token, **params)
            items.extend(result.get(key) or ())
            token = result.get("NextToken")
            if not token:
                return items

    # -- events ------------------------------------------------------------------------
    def put_events(
        self,
        events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
        bus: str | None,
    ) -> Flow[list[str]]:
        """PutEvents in batches; per-entry retries; :class:`PutEventsFailed` at the end."""
        result = yield from self.put_events_with_matches(events, bus)
        return result.event_ids

    def put_events_with_matches(
        self,
        events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
        bus: str | None,
    ) -> Flow[PutEventsResult]:
        """:meth:`put_events`, returning the ids with each event's bus and match count."""
        items = [events] if isinstance(events, Event | Mapping) else list(events)
        entries = [_entry(item, bus) for item in items]
        ids: list[str | None] = [None] * len(entries)
        matched: list[int | None] = [None] * len(entries)
        failures: dict[int, tuple[str, str]] = {}
        pending = list(range(len(entries)))
        attempt = 0
        while pending:
            again: list[int] = []
            for batch in _batches(entries, pending):
                params = {"Entries": [entries[i] for i in batch]}
                try:
                    result, reply = yield from self.exchange_reply(
                        Call(EVENTS, "PutEvents", params)
                    )
                except ServiceError as exc:
                    # the whole request was refused (e.g. too large): its entries failed
                    for index in batch:
                        failures[index] = (exc.code, exc.message)
                    continue
                answers = result.get("Entries")
                if not isinstance(answers, list) or len(answers) != len(batch):
                    raise TransportError(
                        f"unexpected PutEvents answer from eventyard at {self.url}: "
                        f"{len(batch)} entries sent, Entries is {answers!r:.200}"
                    )
                counts = _match_counts(reply.headers.get(MATCHED_RULES_HEADER), len(batch))
                for index, answer, count in zip(batch, answers, counts, strict=True):
                    event_id = answer.get("EventId") if isinstance(answer, dict) else None
                    code = answer.get("ErrorCode") if isinstance(answer, dict) else None
                    if event_id and not code:
                        ids[index] = str(event_id)
                        matched[index] = count
                    elif code in RETRYABLE_ENTRY_CODES and attempt < self.retries:
                        again.append(index)
                    else:
                        message = answer.get("ErrorMessage") if isinstance(answer, dict) else None
                        failures[index] = (str(code or "InternalFailure"), str(message or ""))
            pending = again
            if pending:
                attempt += 1
                yield Sleep(self.backoff(attempt))
        if failures:
            raise PutEventsFailed([(i, *failures[i]) for i in sorted(failures)])
        return PutEventsResult(
            event_ids=[event_id or "" for event_id in ids],
            buses=[_bus_of(entry) for entry in entries],
            matched_rules=matched,
        )

    def test_pattern(
        self, pattern: Mapping[str, Any] | str, event: Mapping[str, Any] | str
    ) -> Flow[bool]:
        """TestEventPattern."""
        result = yield from self._events(
            "TestEventPattern",
            EventPattern=_json_text(pattern, "the pattern"),
            Event=_json_text(event, "the event"),
        )
        return bool(result.get("Result"))

    # -- search and trace (native endpoints) ---------------------------------------------
    def trace(
        self,
        event_id: str,
        bus: str | None,
        since: str | float | datetime | None,
        until: str | float | datetime | None,
    ) -> Flow[Trace]:
        """``GET /v1/events/{id}/trace``."""
        query = _query(bus=bus, since=_when(since), until=_when(until))
        path = f"/v1/events/{quote(event_id, safe='')}/trace"
        result = yield from self.exchange(Call(NATIVE, "Trace", query, path=path))
        return Trace.from_json(result)

    def search_events(
        self,
        bus: str,
        pattern: Mapping[str, Any] | str | None,
        since: str | float | datetime,
        until: str | float | datetime | None,
        limit: int | None,
    ) -> Flow[list[StoredEvent]]:
        """``GET /v1/buses/{bus}/events``, following ``next`` until ``limit`` events
        (every page when None)."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        path = f"/v1/buses/{quote(bus, safe='')}/events"
        text = None if pattern is None else _json_text(pattern, "the pattern")
        found: list[StoredEvent] = []
        token: str | None = None
        while True:
            page = 1000 if limit is None else min(1000, limit - len(found))
            query = _query(
                pattern=text, since=_when(since), until=_when(until), limit=str(page), next=token
            )
            result = yield from self.exchange(Call(NATIVE, "SearchEvents", query, path=path))
            found.extend(StoredEvent.from_json(e) for e in result.get("events") or ())
            token = result.get("next")
            if not token or (limit is not None and len(found) >= limit):
                return found if limit is None else found[:limit]

    # -- buses -------------------------------------------------------------------------
    def create_bus(self, name: str, description: str | None) -> Flow[str]:
        """CreateEventBus; returns the ARN."""
        result = yield from self._events("CreateEventBus", Name=name, Description=description)
        return str(result["EventBusArn"])

    def describe_bus(self, name: str) -> Flow[dict[str, Any]]:
        """DescribeEventBus."""
        return (yield from self._events("DescribeEventBus", Name=name))

    def list_buses(self, prefix: str | None) -> Flow[list[dict[str, Any]]]:
        """ListEventBuses, every page."""
        return (yield from self._pages("ListEventBuses", "EventBuses", NamePrefix=prefix))

    def delete_bus(self, name: str) -> Flow[None]:
        """DeleteEventBus."""
        yield from self._events("DeleteEventBus", Name=name)

    # -- rules -------------------------------------------------------------------------
    def put_rule(
        self,
        name: str,
        pattern: Mapping[str, Any] | str,
        bus: str,
        description: str | None,
        enabled: bool,
    ) -> Flow[str]:
        """PutRule; returns the ARN."""
        result = yield from self._events(
            "PutRule",
            Name=name,
            EventBusName=bus,
            EventPattern=_json_text(pattern, "the pattern"),
            State="ENABLED" if enabled else "DISABLED",
            Description=description,
        )
        return str(result["RuleArn"])

    def describe_rule(self, name: str, bus: str) -> Flow[dict[str, Any]]:
        """DescribeRule."""
        return (yield from self._events("DescribeRule", Name=name, EventBusName=bus))

    def list_rules(self, bus: str, prefix: str | None) -> Flow[list[dict[str, Any]]]:
        """ListRules, every page."""
        return (yield from self._pages("ListRules", "Rules", EventBusName=bus, NamePrefix=prefix))

    def set_rule_state(self, name: str, bus: str, enabled: bool) -> Flow[None]:
        """EnableRule or DisableRule."""
        op = "EnableRule" if enabled else "DisableRule"
        yield from self._events(op, Name=name, EventBusName=bus)

    def delete_rule(self, name: str, bus: str, force: bool) -> Flow[None]:
        """DeleteRule; with ``force`` its targets are removed first."""
        for _ in range(3 if force else 1):
            if force:
                try:
                    targets = yield from self.list_targets(name, bus)
                except ResourceNotFound:
                    targets = []  # DeleteRule says whether that is an error
                if targets:
                    yield from self.remove_targets(name, [str(t["Id"]) for t in targets], bus)
            try:
                yield from self._events("DeleteRule", Name=name, EventBusName=bus)
            except ValidationError:
                if not force:
                    raise
                continue  # a target was added meanwhile: remove it too
            return
        yield from self._events("DeleteRule", Name=name, EventBusName=bus)

    # -- targets -----------------------------------------------------------------------
    def _check_entries(self, op: str, result: Mapping[str, Any]) -> None:
        failed = result.get("FailedEntries") or []
        if not failed:
            return
        first = failed[0]
        code = str(first.get("ErrorCode") or "InternalFailure")
        shown = "; ".join(
            f"target {f.get('TargetId')}: {f.get('ErrorCode')}: {f.get('ErrorMessage')}"
            for f in failed
        )
        cls = _ERRORS.get(code)
        message = f"{op} failed for {len(failed)} target(s): {shown}"
        raise cls(message) if cls else ServiceError(message, code=code)

    def put_targets(self, rule: str, targets: Sequence[Mapping[str, Any]], bus: str) -> Flow[None]:
        """PutTargets; a ServiceError if any entry failed."""
        result = yield from self._events(
            "PutTargets", Rule=rule, EventBusName=bus, Targets=[dict(t) for t in targets]
        )
        self._check_entries("PutTargets", result)

    def remove_targets(self, rule: str, ids: Sequence[str], bus: str) -> Flow[None]:
        """RemoveTargets; a ServiceError if any entry failed."""
        result = yield from self._events(
            "RemoveTargets", Rule=rule, EventBusName=bus, Ids=list(ids)
        )
        self._check_entries("RemoveTargets", result)

    def list_targets(self, rule: str, bus: str) -> Flow[list[dict[str, Any]]]:
        """ListTargetsByRule, every page."""
        return (yield from self._pages("ListTargetsByRule", "Targets", Rule=rule, EventBusName=bus))

    def put_signing_secret(
        self, rule: str, target_id: str, bus: str, secret: str | None, keep_previous: bool
    ) -> Flow[dict[str, Any]]:
        """PutTargetSigningSecret (eventyard): ``{Secret, CreationTime, SecretCount}``."""
        return (
            yield from self._events(
                "PutTargetSigningSecret",
                Rule=rule,
                EventBusName=bus,
                TargetId=target_id,
                Secret=secret,
                KeepPrevious=keep_previous,
            )
        )

    def delete_signing_secret(
        self, rule: str, target_id: str, bus: str, previous: bool
    ) -> Flow[int]:
        """DeleteTargetSigningSecret (eventyard): how many secrets remain."""
        result = yield from self._events(
            "DeleteTargetSigningSecret",
            Rule=rule,
            EventBusName=bus,
            TargetId=target_id,
            Previous=previous,
        )
        return int(result.get("SecretCount", 0))

    def describe_signing(self, rule: str, target_id: str, bus: str) -> Flow[dict[str, Any]]:
        """DescribeTargetSigning (eventyard): ``{Signed, Secrets: [{CreationTime}]}``."""
        return (
            yield from self._events(
                "DescribeTargetSigning", Rule=rule, EventBusName=bus, TargetId=target_id
            )
        )

    # -- queues ------------------------------------------------------------------------
    def queue_url(self, queue: str) -> Flow[str]:
        """The URL of a queue given by name (looked up once, then cached) or by URL."""
        if "://" in queue:
            return queue
        url = self._queue_urls.get(queue)
        if url is None:
            result = yield from self._queues("GetQueueUrl", QueueName=queue)
            url = self._queue_urls[queue] = str(result["QueueUrl"])
        return url

    def create_queue(self, name: str, attributes: Mapping[str, str] | None) -> Flow[str]:
        """CreateQueue; returns (and caches) the URL."""
        result = yield from self._queues(
            "CreateQueue", QueueName=name, Attributes=dict(attributes) if attributes else None
        )
        url = self._queue_urls[name] = str(result["QueueUrl"])
        return url

    def get_queue_url(self, name: str) -> Flow[str]:
        """GetQueueUrl (always asks the server); caches the URL."""
        self._queue_urls.pop(name, None)
        return (yield from self.queue_url(name))

    def queue_arn(self, name: str) -> Flow[str]:
        """The queue's ``QueueArn`` attribute."""
        url = yield from self.queue_url(name)
        result = yield from self._queues(
            "GetQueueAttributes", QueueUrl=url, AttributeNames=["QueueArn"]
        )
        return str(result["Attributes"]["QueueArn"])

    def list_queues(self, prefix: str | None) -> Flow[list[str]]:
        """ListQueues, every page; the names."""
        names: list[str] = []
        token: str | None = None
        while True:
            result = yield from self._queues(
                "ListQueues", QueueNamePrefix=prefix, MaxResults=1000, NextToken=token
            )
            names.extend(
                str(url).rstrip("/").rsplit("/", 1)[-1] for url in result.get("QueueUrls") or ()
            )
            token = result.get("NextToken")
            if not token:
                return names

    def dead_letter_sources(self, name: str) -> Flow[list[str]]:
        """ListDeadLetterSourceQueues, every page; the names."""
        url = yield from self.queue_url(name)
        names: list[str] = []
        token: str | None = None
        while True:
            result = yield from self._queues(
                "ListDeadLetterSourceQueues", QueueUrl=url, MaxResults=1000, NextToken=token
            )
            # SQS spells this key in camel case, unlike ListQueues' QueueUrls
            names.extend(
                str(url).rstrip("/").rsplit("/", 1)[-1] for url in result.get("queueUrls") or ()
            )
            token = result.get("NextToken")
            if not token:
                return names

    def get_queue_attributes(self, name: str) -> Flow[dict[str, str]]:
        """GetQueueAttributes ``All``."""
        url = yield from self.queue_url(name)
        result = yield from self._queues("GetQueueAttributes", QueueUrl=url, AttributeNames=["All"])
        return {str(k): str(v) for k, v in (result.get("Attributes") or {}).items()}

    def set_queue_attributes(self, name: str, attributes: Mapping[str, str]) -> Flow[None]:
        """SetQueueAttributes."""
        url = yield from self.queue_url(name)
        yield from self._queues("SetQueueAttributes", QueueUrl=url, Attributes=dict(attributes))

    def delete_queue(self, name: str) -> Flow[None]:
        """DeleteQueue; forgets the cached URL."""
        url = yield from self.queue_url(name)
        self._queue_urls.pop(name, None)
        yield from self._queues("DeleteQueue", QueueUrl=url)

    def purge_queue(self, name: str) -> Flow[None]:
        """PurgeQueue."""
        url = yield from self.queue_url(name)
        yield from self._queues("PurgeQueue", QueueUrl=url)

    def send_message(
        self, queue: str, body: str, attributes: Mapping[str, str] | None, delay: int
    ) -> Flow[str]:
        """SendMessage with String message attributes; returns the message id."""
        url = yield from self.queue_url(queue)
        result = yield from self._queues(
            "SendMessage",
            QueueUrl=url,
            MessageBody=body,
            DelaySeconds=delay or None,
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
            if attributes
            else None,
        )
        return str(result["MessageId"])

    def receive_messages(
        self, queue: str, max_messages: int, wait: float, visibility_timeout: int | None
    ) -> Flow[list[dict[str, Any]]]:
        """ReceiveMessage (long poll); the raw SQS message objects."""
        url = yield from self.queue_url(queue)
        wait_seconds = max(0, math.ceil(wait))
        result = yield from self._queues(
            "ReceiveMessage",
            timeout=wait_seconds + self.timeout,
            QueueUrl=url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
            MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        return list(result.get("Messages") or ())

    def delete_message(self, queue: str, receipt: str) -> Flow[None]:
        """DeleteMessage."""
        url = yield from self.queue_url(queue)
        yield from self._queues("DeleteMessage", QueueUrl=url, ReceiptHandle=receipt)

    def change_visibility(self, queue: str, receipt: str, timeout: int) -> Flow[None]:
        """ChangeMessageVisibility."""
        url = yield from self.queue_url(queue)
        yield from self._queues(
            "ChangeMessageVisibility",
            QueueUrl=url,
            ReceiptHandle=receipt,
            VisibilityTimeout=timeout,
        )

    def delete_messages(self, queue: str, receipts: Sequence[str]) -> Flow[list[str]]:
        """DeleteMessageBatch in chunks of 10; returns the receipts that failed."""
        return (yield from self._receipt_batches("DeleteMessageBatch", queue, receipts, {}))

    def change_visibility_batch(
        self, queue: str, receipts: Sequence[str], timeout: int
    ) -> Flow[list[str]]:
        """ChangeMessageVisibilityBatch in chunks of 10; returns the receipts that failed."""
        extra = {"VisibilityTimeout": timeout}
        return (
            yield from self._receipt_batches("ChangeMessageVisibilityBatch", queue, receipts, extra)
        )

    def _receipt_batches(
        self, op: str, queue: str, receipts: Sequence[str], extra: Mapping[str, Any]
    ) -> Flow[list[str]]:
        """Send the batch request ``op`` for ``receipts``, 10 entries per request.

        An entry the server refused through its own fault (``SenderFault`` false) is sent
        again with backoff, up to ``retries`` times; every other refusal is final. Returns
        the receipts that failed, in input order.
        """
        if not receipts:
            return []
        url = yield from self.queue_url(queue)
        failed: set[int] = set()
        pending = list(range(len(receipts)))
        attempt = 0
        while pending:
            again: list[int] = []
            for start in range(0, len(pending), MAX_BATCH):
                chunk = pending[start : start + MAX_BATCH]
                # the entry Id is the receipt's index: unique even for repeated receipts
                entries = [{"Id": str(i), "ReceiptHandle": receipts[i], **extra} for i in chunk]
                result = yield from self._queues(op, QueueUrl=url, Entries=entries)
                for index, server_fault in self._refused(op, chunk, result):
                    if server_fault and attempt < self.retries:
                        again.append(index)
                    else:
                        failed.add(index)
            pending = again
            if pending:
                attempt += 1
                yield Sleep(self.backoff(attempt))
        return [receipts[i] for i in sorted(failed)]

    def _refused(
        self, op: str, chunk: Sequence[int], result: Mapping[str, Any]
    ) -> list[tuple[int, bool]]:
        """The entries of a batch answer that failed, as (index, server's fault)."""
        successful = result.get("Successful") or []
        failures = result.get("Failed") or []
        if not isinstance(successful, list) or not isinstance(failures, list):
            raise TransportError(
                f"unexpected {op} answer from eventyard at {self.url}: {result!r:.200}"
            )
        done = {str(e.get("Id")) for e in successful if isinstance(e, dict)}
        refused = {str(e.get("Id")): e for e in failures if isinstance(e, dict)}
        answer: list[tuple[int, bool]] = []
        for index in chunk:
            key = str(index)
            if key in refused:
                answer.append((index, refused[key].get("SenderFault") is False))
            elif key not in done:
                raise TransportError(
                    f"unexpected {op} answer from eventyard at {self.url}: entry {key} is "
                    "neither Successful nor Failed"
                )
        return answer
