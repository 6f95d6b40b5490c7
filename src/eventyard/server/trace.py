"""The delivery trace: what happened to one event, and why a rule did or did not fire.

:func:`trace_event` answers ``GET /v1/events/{id}/trace`` (and ``eventyard trace``):

1. **The log records.** Event ids are time-ordered (UUIDv7,
   :func:`eventyard.envelope.new_event_id`): the id tells when the event was ingested,
   so the record is found by reading the log around that time
   (:meth:`Store.read_log_window`), with no index on ids. An id that is not a UUIDv7
   (an event accepted before eventyard made them, or an id a producer forwarded) is
   found only with a time window the caller gives (``since``/``until``, optionally
   ``bus``). An event forwarded by a bus target keeps its id on the other bus: its
   record there is found around the time of the delivered attempt.
2. **The rules**, evaluated *as they are now* (the catalog may have changed since the
   event came; the answer says so): for each rule of each bus the event is on, whether
   it matches, and for one that does not, the pattern engine's explanation
   (:func:`eventyard.patterns.explain`); disabled rules and rules without a pattern
   are named as such. When no enabled rule of its bus matches (or the bus does not
   exist), the rules of the caller's other buses that would match are listed: the
   wrong-bus case.
3. **The deliveries**, from the trace journal (:mod:`eventyard.server.journal`): each
   target's attempts (time, attempt number, HTTP status or error, outcome), its dead
   letter (queue, message id, reason), and the receives and deletes of the messages a
   queue target or a dead-letter queue got.

Only the caller's account's buses are looked at: another account's events do not
exist for it. The answer is a JSON object, documented in ``docs/trace.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from eventyard.envelope import event_id_time
from eventyard.errors import InvalidEventPattern, ValidationError
from eventyard.patterns import MAX_LENGTH, compile_pattern, explain
from eventyard.server.accounts import AccountScope
from eventyard.server.catalog import RULE, Rule, rule_doc
from eventyard.server.journal import ATTEMPT, DEAD_LETTER
from eventyard.server.router import Router
from eventyard.server.search import MAX_TIME
from eventyard.server.store import LogRecord, TraceEntry

__all__ = ["MAX_WINDOW", "RULES_NOTE", "iso", "trace_event"]

RULES_NOTE = (
    "Rules are evaluated as they are now, not as they were when the event came: a rule "
    "created, changed or deleted since then shows its current state."
)
# the log is read around the id's time: first closely, then wider (a clock step, an
# id made a moment before its record's time)
_NEAR = 0.05
_WIDE = 2.0
_PAGE = 1000
#: the widest window a caller may give a trace (the log of every bus in it is read)
MAX_WINDOW = 86_400.0


def iso(epoch: float) -> str:
    """``epoch`` as RFC 3339 UTC with milliseconds (clamped to 1970..9999)."""
    epoch = min(max(epoch, 0.0), MAX_TIME) if not math.isnan(epoch) else 0.0
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


async def trace_event(
    router: Router,
    scope: AccountScope,
    event_id: str,
    *,
    bus: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    """The trace of ``event_id`` as the trace API answers it.

    Args:
        router: the running router (its store, catalog view and settings).
        scope: the caller's account.
        event_id: the event's id.
        bus: with ``since``/``until``, the internal name of the bus to look on.
        since: the start of the window to look in (epoch seconds); needed for an id
            that is not a UUIDv7.
        until: the end of that window (default: ``since`` + 1 hour, or now).

    Raises:
        ValidationError: the id is not a UUIDv7 and no window was given, or the
            window is empty.
    """
    store = router.store
    when = event_id_time(event_id)
    if when is not None and when > MAX_TIME:
        raise ValidationError(
            f"Event id {event_id} carries a time after 9999-12-31T23:59:59Z: no event has it."
        )
    if since is not None:
        until = until if until is not None else since + 3600.0
        if not since < until:
            raise ValidationError("since must be before until.")
        if until - since > MAX_WINDOW:
            raise ValidationError(
                "A trace window is at most one day (until - since <= 86400 seconds): the "
                "log of every bus in it is read. Narrow since/until."
            )
        records = await _find(router, scope, event_id, (bus, since, until))
    elif when is None:
        raise ValidationError(
            f"Event id {event_id} is not a time-ordered id (UUID version 7), so its time "
            "is unknown: events accepted before eventyard made such ids (or ids given by "
            "a producer) are found only in a time window. Give since (and until, bus), "
            "e.g. eventyard trace ID --bus B --since 2h."
        )
    else:
        records = await _find(router, scope, event_id, (None, when - _NEAR, when + _NEAR))
        if not records:
            records = await _find(router, scope, event_id, (None, when - _WIDE, when + _WIDE))
    start = min([r.time for r in records] or [when if when is not None else since or 0.0])
    entries = await store.trace_read([event_id], since=start - _WIDE) if records else []
    # events forwarded by bus targets: the same id on another bus
    for entry in entries:
        detail = _detail(entry)
        target_bus = detail.get("bus")
        if entry.kind != ATTEMPT or detail.get("outcome") != "delivered" or not target_bus:
            continue
        internal = router.accounts.bus_for_arn(str(target_bus))
        if internal is None or any(r.bus == internal for r in records):
            continue
        window = (internal, entry.time - _WIDE, entry.time + _WIDE)
        records += await _find(router, scope, event_id, window)
    message_ids = sorted(
        {
            str(mid)
            for e in entries
            if (mid := _detail(e).get("message_id")) and e.kind in (ATTEMPT, DEAD_LETTER)
        }
    )
    messages = await store.trace_read(message_ids, since=start - _WIDE) if message_ids else []
    result: dict[str, Any] = {
        "event_id": event_id,
        "time": None if when is None else iso(when),
        "found": bool(records),
        "tracing": router.journal.enabled,
        "rules_note": RULES_NOTE,
        "records": [_record(scope, r) for r in records],
        "buses": [],
        "targets": _targets(scope, entries, messages),
    }
    if not records:
        result["message"] = (
            f"No event {event_id} in the log"
            + (f" around {iso(when)}" if when is not None and since is None else "")
            + ": it was never accepted, it is another account's, or the log no longer "
            "keeps it (log retention)."
        )
        return result
    rules = [r for r in await _rules(router) if scope.owns(r.key)]
    seen: set[str] = set()
    for record in records:
        if record.bus in seen:
            continue
        seen.add(record.bus)
        result["buses"].append(_evaluate(router, scope, record, rules))
    return result


async def _find(
    router: Router,
    scope: AccountScope,
    event_id: str,
    window: tuple[str | None, float, float],
) -> list[LogRecord]:
    """The records of ``event_id`` in the window (of the caller's buses only)."""
    bus, since, until = window
    found: list[LogRecord] = []
    after = 0
    while True:
        page = await router.store.read_log_window(bus, since, until, after, _PAGE)
        found += [r for r in page if r.event_id == event_id and scope.owns(r.bus)]
        if len(page) < _PAGE:
            return found
        after = page[-1].seq


async def _rules(router: Router) -> list[Rule]:
    """Every rule of the catalog, now."""
    default = router.settings.account_id
    return [
        Rule.from_doc(e.key, rule_doc(e), default_bus=default)
        for e in await router.store.catalog_list(RULE)
    ]


def _record(scope: AccountScope, record: LogRecord) -> dict[str, Any]:
    try:
        event: Any = orjson.loads(record.body)
    except orjson.JSONDecodeError:
        event = record.body.decode("utf-8", "replace")
    return {
        "bus": scope.name(record.bus),
        "seq": record.seq,
        "time": iso(record.time),
        "event": event,
    }


def _verdict(rule: Rule, event: Any) -> dict[str, Any]:
    """One rule's answer for the event: matched or not, and why not."""
    answer: dict[str, Any] = {
        "name": rule.name,
        "arn": rule.arn,
        "state": "ENABLED" if rule.enabled else "DISABLED",
        "pattern": rule.pattern,
        "matched": False,
        "explanation": None,
    }
    if not rule.pattern:
        answer["reason"] = "the rule has no event pattern (it runs on a schedule only)"
        return answer
    try:
        # stored patterns passed the length check of their day: do not judge them again
        why = explain(compile_pattern(rule.pattern, max_length=MAX_LENGTH), event)
    except InvalidEventPattern as exc:
        answer["reason"] = f"its pattern is not valid now: {exc.message}"
        return answer
    if why is not None:
        answer["explanation"] = why.to_json()
        answer["reason"] = str(why)
        if not rule.enabled:
            answer["reason"] = f"the rule is disabled (and its pattern does not match: {why})"
        return answer
    if not rule.enabled:
        answer["reason"] = "the rule is disabled (its pattern matches the event)"
        return answer
    answer["matched"] = True
    answer["targets"] = [
        {"id": t.id, "arn": t.arn, "key": f"{rule.key}/{t.id}"} for t in rule.targets
    ]
    return answer


def _evaluate(
    router: Router, scope: AccountScope, record: LogRecord, rules: list[Rule]
) -> dict[str, Any]:
    """The rules of the record's bus, evaluated now; the wrong-bus hint when none fires."""
    try:
        event: Any = orjson.loads(record.body)
    except orjson.JSONDecodeError:
        event = None
    name = scope.name(record.bus)
    answer: dict[str, Any] = {
        "bus": name,
        "exists": router.routing.has_bus(record.bus),
        "rules": [],
        "other_buses": [],
    }
    if not isinstance(event, dict):
        answer["message"] = "The log record is not a JSON event: no rule can match it."
        return answer
    own = sorted((r for r in rules if r.bus == record.bus), key=lambda r: r.name)
    answer["rules"] = [_verdict(r, event) for r in own]
    if not answer["exists"]:
        answer["message"] = f"No such bus: {name} does not exist, so no rule saw the event."
    elif not own:
        answer["message"] = f"Bus {name} has no rules: nothing could match the event."
    if any(v["matched"] for v in answer["rules"]):
        return answer
    answer["other_buses"] = [
        {"bus": scope.name(r.bus), "rule": r.name}
        for r in rules
        if r.bus != record.bus and r.matches_events and _matches(r, event)
    ]
    if answer["other_buses"] and "message" not in answer:
        answer["message"] = f"No enabled rule of bus {name} matches the event."
    if answer["other_buses"]:
        places = ", ".join(f"{o['rule']} on {o['bus']}" for o in answer["other_buses"])
        answer["message"] += f" Rules of other buses would match it: {places}."
    return answer


def _matches(rule: Rule, event: dict[str, Any]) -> bool:
    try:
        return explain(compile_pattern(rule.pattern, max_length=MAX_LENGTH), event) is None
    except InvalidEventPattern:
        return False


def _detail(entry: TraceEntry) -> dict[str, Any]:
    try:
        detail = orjson.loads(entry.detail)
    except orjson.JSONDecodeError:
        return {}
    return detail if isinstance(detail, dict) else {}


def _targets(
    scope: AccountScope, entries: Iterable[TraceEntry], messages: Iterable[TraceEntry]
) -> list[dict[str, Any]]:
    """Each target's attempts, dead letter and messages, in the order first seen."""
    history: dict[str, list[dict[str, Any]]] = {}
    for entry in messages:
        item = {"time": iso(entry.time), "kind": entry.kind, "queue": scope.name(entry.target)}
        item.update(_detail(entry))
        history.setdefault(entry.key, []).append(item)
    targets: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not scope.owns(entry.target):
            continue
        bus, _, rest = entry.target.partition("/")
        rule, _, target_id = rest.rpartition("/")
        target = targets.setdefault(
            entry.target,
            {
                "bus": scope.name(bus),
                "rule": rule,
                "id": target_id,
                "attempts": [],
                "dead_letter": None,
                "messages": [],
            },
        )
        detail = _detail(entry)
        message_id = detail.get("message_id")
        if entry.kind == ATTEMPT:
            attempt = {"time": iso(entry.time), **detail}
            if "retry_at" in attempt:
                attempt["retry_at"] = iso(float(attempt["retry_at"]))
            if "queue" in attempt:
                attempt["queue"] = scope.name(str(attempt["queue"]))
            target["attempts"].append(attempt)
        elif entry.kind == DEAD_LETTER:
            queue = detail.get("queue")
            target["dead_letter"] = {
                "time": iso(entry.time),
                **detail,
                "queue": None if queue is None else scope.name(str(queue)),
            }
        else:
            continue
        if message_id:
            queue = detail.get("queue")
            target["messages"].append(
                {
                    "message_id": message_id,
                    "queue": None if queue is None else scope.name(str(queue)),
                    "via": "dead-letter" if entry.kind == DEAD_LETTER else "delivery",
                    "history": history.get(str(message_id), []),
                }
            )
    return list(targets.values())
