"""EventBridge Scheduler's stored schedules, and what one invocation delivers.

The ``scheduler`` API (:mod:`eventyard.server.api.scheduler`) keeps three catalog kinds:

* ``scheduler-group``, key = the group's internal name (:mod:`eventyard.server.accounts`:
  the account in front for every account but the home one): a schedule group, as
  GetScheduleGroup returns it. The ``default`` group of every account is implicit;
* ``scheduler-schedule``, key = ``<internal group>/<name>`` (:func:`schedule_key`): a
  schedule, stored as GetSchedule returns it (dates in epoch seconds);
* ``scheduler-state``, same key: where the schedule's ticks stand, written only by the
  invoker (:mod:`eventyard.server.schedules.invoker`).

:class:`Definition` is a stored schedule as the invoker needs it: its :class:`Timing`,
the :class:`~eventyard.server.delivery.spec.TargetSpec` the delivery engine retries and
dead-letters it with (target key ``@scheduler/<schedule key>``, which no rule target can
have), and :meth:`Definition.invocation`, the payload one tick delivers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from eventyard.envelope import format_time, new_event_id
from eventyard.server.accounts import owner_of
from eventyard.server.config import Settings
from eventyard.server.delivery.spec import DEFAULT_MAX_AGE, DEFAULT_MAX_ATTEMPTS, TargetSpec
from eventyard.server.delivery.targets import target_kind
from eventyard.server.schedules.timing import Timing

__all__ = [
    "DEFAULT_GROUP",
    "GROUP",
    "SCHEDULE",
    "STATE",
    "TARGET_PREFIX",
    "Definition",
    "Invocation",
    "schedule_key",
    "substitute",
    "target_key",
]

#: the catalog kinds
GROUP: Final = "scheduler-group"
SCHEDULE: Final = "scheduler-schedule"
STATE: Final = "scheduler-state"
#: every account's implicit group
DEFAULT_GROUP: Final = "default"
#: what starts the delivery target key of every schedule
TARGET_PREFIX: Final = "@scheduler/"
# the "bus" of the log records of invocations: no bus can have this name, so no rule
# ever sees them
_LOG_BUS: Final = "@scheduler"
_CONTEXT: Final = (
    "<aws.scheduler.schedule-arn>",
    "<aws.scheduler.scheduled-time>",
    "<aws.scheduler.execution-id>",
    "<aws.scheduler.attempt-number>",
)


def schedule_key(group_key: str, name: str) -> str:
    """The catalog key of schedule ``name`` in the group of internal name ``group_key``."""
    return f"{group_key}/{name}"


def target_key(key: str) -> str:
    """The delivery target key of the schedule of catalog key ``key``."""
    return TARGET_PREFIX + key


def substitute(text: str, *, arn: str, tick: float, execution: str) -> str:
    """``Input`` with Scheduler's context attributes replaced.

    ``<aws.scheduler.attempt-number>`` is always ``1``: eventyard renders the payload once,
    when the tick fires, and retries send the same bytes.
    """
    if "<aws.scheduler." not in text:
        return text
    values = (arn, format_time(tick), execution, "1")
    for name, value in zip(_CONTEXT, values, strict=True):
        text = text.replace(name, value)
    return text


@dataclass(slots=True, frozen=True)
class Invocation:
    """What one tick writes: its log record's bus and body, and the delivery payload."""

    execution: str
    bus: str
    payload: bytes


@dataclass(slots=True, frozen=True)
class Definition:
    """A stored schedule as the invoker needs it.

    Attributes:
        key: its catalog key ``<internal group>/<name>``.
        arn: its ARN.
        account: the account that owns it.
        enabled: whether its ``State`` is ``ENABLED``.
        timing: when it ticks.
        fingerprint: what its ticks depend on (expression, zone, dates, window, and its
            creation); its state starts afresh when this changes.
        delete_after: ``ActionAfterCompletion`` is ``DELETE``.
        target: the target as stored.
        spec: how the delivery engine delivers to it.
    """

    key: str
    arn: str
    account: str
    enabled: bool
    timing: Timing
    fingerprint: str
    delete_after: bool
    target: dict[str, Any]
    spec: TargetSpec

    @classmethod
    def from_doc(cls, key: str, doc: dict[str, Any], settings: Settings) -> Definition:
        """The definition of a stored schedule document (validated when it was written).

        Raises:
            InvalidScheduleExpression: the stored expression or zone no longer parses
                (a hand-edited store).
        """
        window = doc.get("FlexibleTimeWindow") or {}
        minutes = int(window.get("MaximumWindowInMinutes") or 0)
        if window.get("Mode") != "FLEXIBLE":
            minutes = 0
        timing = Timing.of(
            str(doc["ScheduleExpression"]),
            doc.get("ScheduleExpressionTimezone"),
            start=doc.get("StartDate"),
            end=doc.get("EndDate"),
            window_minutes=minutes,
        )
        # CreationDate: a schedule deleted and made again starts afresh, even when the
        # two changes reach the invoker together
        parts = [
            doc.get("CreationDate"),
            doc["ScheduleExpression"],
            doc.get("ScheduleExpressionTimezone"),
            doc.get("StartDate"),
            doc.get("EndDate"),
            minutes,
        ]
        fingerprint = hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]
        target: dict[str, Any] = dict(doc.get("Target") or {})
        retry = target.get("RetryPolicy") or {}
        attempts = retry.get("MaximumRetryAttempts")
        age = retry.get("MaximumEventAgeInSeconds")
        account = owner_of(key.partition("/")[0], settings.account_id)[0]
        spec = TargetSpec(
            key=target_key(key),
            arn=str(target.get("Arn", "")),
            rule_arn=str(doc["Arn"]),
            max_attempts=DEFAULT_MAX_ATTEMPTS if attempts is None else int(attempts),
            max_age=DEFAULT_MAX_AGE if age is None else float(age),
            dlq_arn=(target.get("DeadLetterConfig") or {}).get("Arn") or None,
            timeout=settings.http_timeout,
            concurrency=settings.target_concurrency,
            account=account,
        )
        return cls(
            key=key,
            arn=str(doc["Arn"]),
            account=account,
            enabled=doc.get("State", "ENABLED") == "ENABLED",
            timing=timing,
            fingerprint=fingerprint,
            delete_after=doc.get("ActionAfterCompletion") == "DELETE",
            target=target,
            spec=spec,
        )

    def invocation(self, tick: float, fired: float, region: str) -> Invocation:
        """The payload of tick ``tick``, fired at ``fired`` (epoch seconds).

        A queue or HTTP target receives the target's ``Input`` (``{}`` without one); an
        event-bus target receives an event whose ``detail-type`` and ``source`` are
        ``EventBridgeParameters``', whose ``detail`` is the ``Input`` and whose only
        resource is the schedule's ARN. Context attributes are substituted in ``Input``.
        """
        execution = new_event_id()
        text = substitute(
            str(self.target.get("Input") or "{}"), arn=self.arn, tick=tick, execution=execution
        )
        bus = self.key.partition("/")[0].rpartition(":")[0]
        log_bus = f"{bus}:{_LOG_BUS}" if bus else _LOG_BUS
        if target_kind(self.spec.arn) != "bus":
            return Invocation(execution, log_bus, text.encode())
        parameters = self.target.get("EventBridgeParameters") or {}
        try:
            detail = orjson.loads(text)
        except orjson.JSONDecodeError:
            detail = {}
        event = {
            "version": "0",
            "id": execution,
            "detail-type": str(parameters.get("DetailType", "Scheduled Event")),
            "source": str(parameters.get("Source", "aws.scheduler")),
            "account": self.account,
            "time": format_time(fired),
            "region": region,
            "resources": [self.arn],
            "detail": detail if isinstance(detail, dict) else {},
        }
        return Invocation(execution, log_bus, orjson.dumps(event))
