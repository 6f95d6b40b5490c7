"""Typed answers of the audit endpoints: an event's trace and the events a search finds.

:meth:`Client.trace` returns a :class:`Trace` (``GET /v1/events/{id}/trace``), read
from the server's JSON by :meth:`Trace.from_json`; :meth:`Client.search_events` returns
:class:`StoredEvent` records (``GET /v1/buses/{bus}/events``). ``docs/trace.md``
describes both. A rule's non-match is explained by the pattern engine's own
:class:`~eventyard.patterns.Explanation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventyard.patterns import Explanation

__all__ = [
    "Attempt",
    "BusTrace",
    "DeadLetter",
    "MessageTrace",
    "OtherRule",
    "QueueStep",
    "RuleVerdict",
    "StoredEvent",
    "TargetTrace",
    "Trace",
    "TraceRecord",
]


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(slots=True, frozen=True)
class StoredEvent:
    """An event as the log keeps it: its id, bus, ingestion time, log sequence and
    envelope (``event``)."""

    id: str
    bus: str
    time: datetime
    seq: int
    event: dict[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredEvent:
        """The record of the search answer's form."""
        return cls(
            str(data["id"]), str(data["bus"]), _time(data["time"]), int(data["seq"]), data["event"]
        )


@dataclass(slots=True, frozen=True)
class TraceRecord:
    """A log record of the traced event (one per bus it was on)."""

    bus: str
    seq: int
    time: datetime
    event: dict[str, Any]


@dataclass(slots=True, frozen=True)
class RuleVerdict:
    """One rule of the event's bus, evaluated now.

    Attributes:
        matched: the rule is enabled and its pattern matches the event.
        reason: why it did not fire (None when it matched).
        explanation: the pattern engine's account of the non-match, None when the
            pattern matches (or the rule has none).
        targets: the rule's target ids and ARNs, when it matched.
    """

    name: str
    arn: str
    state: str
    pattern: str | None
    matched: bool
    reason: str | None
    explanation: Explanation | None
    targets: tuple[tuple[str, str], ...]

    @property
    def enabled(self) -> bool:
        """Whether the rule is enabled now."""
        return self.state == "ENABLED"


@dataclass(slots=True, frozen=True)
class OtherRule:
    """A rule of another bus whose pattern matches the event (the wrong-bus case)."""

    bus: str
    rule: str


@dataclass(slots=True, frozen=True)
class BusTrace:
    """The rules of one bus the event was on, and what to make of them.

    Attributes:
        exists: whether the bus exists (an event put on a missing bus is kept, unseen).
        message: a sentence on the bus as a whole (no such bus, no rules, wrong bus).
        other_buses: rules of other buses that would match, when none of this one does.
    """

    bus: str
    exists: bool
    rules: tuple[RuleVerdict, ...]
    other_buses: tuple[OtherRule, ...]
    message: str | None


@dataclass(slots=True, frozen=True)
class Attempt:
    """One delivery attempt: ``outcome`` is ``delivered``, ``retry``, ``dead`` or
    ``deferred``; ``status`` the HTTP status when the target answered."""

    time: datetime
    attempt: int
    outcome: str
    status: int | None
    error_code: str | None
    error: str | None
    retry_at: datetime | None
    message_id: str | None
    queue: str | None


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """The delivery was given up: put on dead-letter queue ``queue`` as
    ``message_id``, or dropped (``queue`` None) for ``reason``."""

    time: datetime
    queue: str | None
    message_id: str | None
    reason: str
    error: str | None
    exhausted: str | None


@dataclass(slots=True, frozen=True)
class QueueStep:
    """A receive (``queue-receive``) or delete (``queue-delete``) of a message."""

    time: datetime
    kind: str
    queue: str
    receive_count: int | None


@dataclass(slots=True, frozen=True)
class MessageTrace:
    """A queue message the delivery made (``via`` ``delivery``) or its dead letter
    (``via`` ``dead-letter``), with its receives and deletes."""

    message_id: str
    queue: str | None
    via: str
    history: tuple[QueueStep, ...]


@dataclass(slots=True, frozen=True)
class TargetTrace:
    """What happened at one target of a rule."""

    bus: str
    rule: str
    id: str
    attempts: tuple[Attempt, ...]
    dead_letter: DeadLetter | None
    messages: tuple[MessageTrace, ...]


@dataclass(slots=True, frozen=True)
class Trace:
    """What happened to one event.

    Attributes:
        event_id: the event's id.
        time: when it was ingested, read from its (time-ordered) id; None for an id
            that is not one.
        found: whether the log holds it (else ``message`` says why not).
        tracing: whether the server keeps the trace journal (``trace`` setting).
        rules_note: rules are evaluated as they are now, not as they were.
        records: its log records (one per bus it was on).
        buses: the rules of each of those buses, evaluated now.
        targets: each target's attempts, dead letter and queue messages.
    """

    event_id: str
    time: datetime | None
    found: bool
    tracing: bool
    rules_note: str
    records: tuple[TraceRecord, ...]
    buses: tuple[BusTrace, ...]
    targets: tuple[TargetTrace, ...]
    message: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trace:
        """The trace of the trace API's JSON answer."""
        return cls(
            event_id=str(data["event_id"]),
            time=_opt_time(data.get("time")),
            found=bool(data["found"]),
            tracing=bool(data.get("tracing", True)),
            rules_note=str(data.get("rules_note", "")),
            records=tuple(
                TraceRecord(str(r["bus"]), int(r["seq"]), _time(r["time"]), r["event"])
                for r in data.get("records", ())
            ),
            buses=tuple(_bus(b) for b in data.get("buses", ())),
            targets=tuple(_target(t) for t in data.get("targets", ())),
            message=_opt_str(data.get("message")),
        )

    def rule(self, name: str) -> RuleVerdict | None:
        """The verdict of the rule ``name`` (on the first bus that has one)."""
        for bus in self.buses:
            for rule in bus.rules:
                if rule.name == name:
                    return rule
        return None

    def target(self, rule: str, target_id: str) -> TargetTrace | None:
        """The deliveries of target ``target_id`` of rule ``rule``, if it had any."""
        for target in self.targets:
            if target.rule == rule and target.id == target_id:
                return target
        return None


def _bus(data: Mapping[str, Any]) -> BusTrace:
    return BusTrace(
        bus=str(data["bus"]),
        exists=bool(data["exists"]),
        rules=tuple(_rule(r) for r in data.get("rules", ())),
        other_buses=tuple(OtherRule(str(o["bus"]), str(o["rule"])) for o in data["other_buses"]),
        message=_opt_str(data.get("message")),
    )


def _rule(data: Mapping[str, Any]) -> RuleVerdict:
    explanation = data.get("explanation")
    return RuleVerdict(
        name=str(data["name"]),
        arn=str(data["arn"]),
        state=str(data["state"]),
        pattern=_opt_str(data.get("pattern")),
        matched=bool(data["matched"]),
        reason=_opt_str(data.get("reason")),
        explanation=None if explanation is None else Explanation.from_json(explanation),
        targets=tuple((str(t["id"]), str(t["arn"])) for t in data.get("targets", ())),
    )


def _target(data: Mapping[str, Any]) -> TargetTrace:
    dead = data.get("dead_letter")
    return TargetTrace(
        bus=str(data["bus"]),
        rule=str(data["rule"]),
        id=str(data["id"]),
        attempts=tuple(
            Attempt(
                time=_time(a["time"]),
                attempt=int(a["attempt"]),
                outcome=str(a["outcome"]),
                status=_opt_int(a.get("status")),
                error_code=_opt_str(a.get("error_code")),
                error=_opt_str(a.get("error")),
                retry_at=_opt_time(a.get("retry_at")),
                message_id=_opt_str(a.get("message_id")),
                queue=_opt_str(a.get("queue")),
            )
            for a in data.get("attempts", ())
        ),
        dead_letter=None
        if dead is None
        else DeadLetter(
            time=_time(dead["time"]),
            queue=_opt_str(dead.get("queue")),
            message_id=_opt_str(dead.get("message_id")),
            reason=str(dead.get("reason", "")),
            error=_opt_str(dead.get("error")),
            exhausted=_opt_str(dead.get("exhausted")),
        ),
        messages=tuple(
            MessageTrace(
                message_id=str(m["message_id"]),
                queue=_opt_str(m.get("queue")),
                via=str(m["via"]),
                history=tuple(
                    QueueStep(
                        _time(h["time"]),
                        str(h["kind"]),
                        str(h["queue"]),
                        _opt_int(h.get("receive_count")),
                    )
                    for h in m.get("history", ())
                ),
            )
            for m in data.get("messages", ())
        ),
    )
