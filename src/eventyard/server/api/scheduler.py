"""The EventBridge Scheduler operations (service ``scheduler``), in the caller's account.

Schedules and schedule groups are catalog documents
(:mod:`eventyard.server.schedules.definitions`); after each committed change the
invoker (:mod:`eventyard.server.schedules.invoker`) is told, and fires the schedule from
then on. The HTTP side (REST-JSON paths, query strings, error headers) is
:mod:`eventyard.server.api.rest`; this module takes the parameters as one dict, members
named as in the service model (``Name``, ``GroupName``, ``TagKeys``…).

Errors are Scheduler's: ``ValidationException`` (400), ``ResourceNotFoundException``
(404), ``ConflictException`` (409). A schedule's target is what eventyard delivers to:
one of the account's queues (``arn:aws:sqs:…``), an event bus (with
``EventBridgeParameters``; another account's bus decides by its resource policy), or
an ``http(s)://`` URL the outbound policy allows. ``RoleArn`` is required, as on AWS,
and stored but not assumed. Tags exist on schedule groups only, as on AWS.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from eventyard.errors import (
    ConcurrentModification,
    Conflict,
    InvalidScheduleExpression,
    ResourceNotFound,
    UnknownOperation,
    ValidationError,
)
from eventyard.server.accounts import Accounts, AccountScope
from eventyard.server.api.validation import Violations, check_tags, decode_token, encode_token
from eventyard.server.auth.keys import Principal
from eventyard.server.catalog import TAGS
from eventyard.server.config import Settings
from eventyard.server.delivery.outbound import OutboundPolicy, outbound_allow
from eventyard.server.delivery.targets import target_kind
from eventyard.server.schedules.definitions import (
    DEFAULT_GROUP,
    GROUP,
    SCHEDULE,
    schedule_key,
)
from eventyard.server.schedules.timing import Timing
from eventyard.server.store import Store
from eventyard.server.transform import MAX_QUEUE_INPUT_BYTES

__all__ = ["SchedulerApi"]

_NAME: Final = r"[0-9a-zA-Z-_.]+"
_ROLE: Final = r"arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]+"
_DLQ: Final = r"arn:aws[a-z-]*:sqs:[a-z0-9\-]+:\d{12}:[a-zA-Z0-9\-_]+"
_KMS: Final = r"arn:aws[a-z-]*:kms:[a-z0-9\-]+:\d{12}:(key|alias)\/[0-9a-zA-Z-_]*"
_GROUP_ARN: Final = r"arn:aws[a-z-]*:scheduler:[a-z0-9\-]+:\d{12}:schedule-group\/[0-9a-zA-Z-_.]+"
_TOKEN: Final = r"[a-zA-Z0-9-_]+"
_STATES: Final = ("ENABLED", "DISABLED")
_DEFAULT_PAGE: Final = 100
# the dates a schedule may name: the years a cron expression may name
_FIRST_DATE: Final = 0.0
_LAST_DATE: Final = datetime(2200, 1, 1, tzinfo=UTC).timestamp()

_Handler = Callable[[dict[str, Any], AccountScope], Awaitable[dict[str, Any]]]
#: called with a schedule's catalog key after each committed change of it
ScheduleListener = Callable[[str], None]


class SchedulerApi:
    """The Scheduler operations, by name (``CreateSchedule``…).

    Args:
        store: the durable store; only its catalog is used here.
        settings: home account id and region.
        changed: told the key of every schedule created, updated or deleted.
    """

    def __init__(self, store: Store, settings: Settings, changed: ScheduleListener) -> None:
        self.store = store
        self.settings = settings
        self.changed = changed
        self.accounts = Accounts(settings)
        self._outbound = OutboundPolicy.parse(outbound_allow(settings))
        self._ops: dict[str, _Handler] = {
            "CreateSchedule": self.create_schedule,
            "GetSchedule": self.get_schedule,
            "UpdateSchedule": self.update_schedule,
            "DeleteSchedule": self.delete_schedule,
            "ListSchedules": self.list_schedules,
            "CreateScheduleGroup": self.create_group,
            "GetScheduleGroup": self.get_group,
            "DeleteScheduleGroup": self.delete_group,
            "ListScheduleGroups": self.list_groups,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags,
        }

    async def call(
        self, op: str, params: dict[str, Any], caller: Principal | None = None
    ) -> dict[str, Any]:
        """Run operation ``op`` for ``caller`` (None: the home account).

        Raises:
            ServiceError: the operation's AWS-shaped error.
        """
        handler = self._ops.get(op)
        if handler is None:
            raise UnknownOperation(f"Unknown operation {op}.", status=404)
        return await handler(params, self.accounts.scope(caller))

    # -- names and ARNs ----------------------------------------------------------------
    def _group_arn(self, scope: AccountScope, group: str) -> str:
        return f"arn:aws:scheduler:{self.settings.region}:{scope.account}:schedule-group/{group}"

    def _schedule_arn(self, scope: AccountScope, group: str, name: str) -> str:
        region = self.settings.region
        return f"arn:aws:scheduler:{region}:{scope.account}:schedule/{group}/{name}"

    async def _group(self, scope: AccountScope, group: str) -> dict[str, Any]:
        """The group document; the ``default`` group is created on first use.

        Raises:
            ResourceNotFound: no such group.
        """
        entry = await self.store.catalog_get(GROUP, scope.key(group))
        if entry is not None:
            return entry.doc
        if group != DEFAULT_GROUP:
            raise ResourceNotFound(f"Schedule group {group} does not exist.", status=404)
        doc = self._group_doc(scope, group)
        with contextlib.suppress(ConcurrentModification):  # made meanwhile
            await self.store.catalog_put(GROUP, scope.key(group), doc, expect_revision=0)
        return doc

    def _group_doc(self, scope: AccountScope, group: str) -> dict[str, Any]:
        now = time.time()
        return {
            "Name": group,
            "Arn": self._group_arn(scope, group),
            "State": "ACTIVE",
            "CreationDate": now,
            "LastModificationDate": now,
        }

    # -- schedules ---------------------------------------------------------------------
    async def create_schedule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """CreateSchedule: a new schedule in its group (``default`` when not named).

        Raises:
            ValidationError: a parameter is not valid.
            ResourceNotFound: the group does not exist.
            Conflict: the group has a schedule of that name already.
        """
        name, group, doc = self._schedule_params(params, scope)
        await self._check_target(doc["Target"], scope)
        await self._group(scope, group)
        now = time.time()
        doc.update(CreationDate=now, LastModificationDate=now)
        key = schedule_key(scope.key(group), name)
        try:
            await self.store.catalog_put(SCHEDULE, key, doc, expect_revision=0)
        except ConcurrentModification:
            raise Conflict(f"Schedule {name} already exists.") from None
        self.changed(key)
        return {"ScheduleArn": doc["Arn"]}

    async def update_schedule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """UpdateSchedule: replace a schedule whole (what is not sent takes its default).

        Raises:
            ValidationError: a parameter is not valid.
            ResourceNotFound: no such schedule.
        """
        name, group, doc = self._schedule_params(params, scope)
        await self._check_target(doc["Target"], scope)
        key = schedule_key(scope.key(group), name)
        entry = await self.store.catalog_get(SCHEDULE, key)
        if entry is None:
            raise ResourceNotFound(f"Schedule {name} does not exist.", status=404)
        doc.update(CreationDate=entry.doc.get("CreationDate"), LastModificationDate=time.time())
        try:
            await self.store.catalog_put(SCHEDULE, key, doc, expect_revision=entry.revision)
        except ConcurrentModification:
            raise Conflict(f"Schedule {name} was changed meanwhile; retry.") from None
        self.changed(key)
        return {"ScheduleArn": doc["Arn"]}

    async def get_schedule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """GetSchedule: the schedule as it was created or last updated.

        Raises:
            ResourceNotFound: no such schedule (or group).
        """
        name, group = self._name_and_group(params)
        entry = await self.store.catalog_get(SCHEDULE, schedule_key(scope.key(group), name))
        if entry is None:
            raise ResourceNotFound(f"Schedule {name} does not exist.", status=404)
        return dict(entry.doc)

    async def delete_schedule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DeleteSchedule: the schedule stops; its deliveries not yet made are dropped.

        Raises:
            ResourceNotFound: no such schedule.
        """
        name, group = self._name_and_group(params)
        key = schedule_key(scope.key(group), name)
        if not await self.store.catalog_delete(SCHEDULE, key):
            raise ResourceNotFound(f"Schedule {name} does not exist.", status=404)
        self.changed(key)
        return {}

    async def list_schedules(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListSchedules: summaries, by group then name, filtered by group, name prefix
        and state; ``MaxResults`` (1-100) a page."""
        v = Violations(params)
        group = v.string("GroupName", "groupName", min_len=1, max_len=64, pattern=_NAME)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=64, pattern=_NAME)
        state = v.enum("State", "state", _STATES)
        limit = v.integer("MaxResults", "maxResults", low=1, high=100) or _DEFAULT_PAGE
        v.check()
        after = decode_token(params.get("NextToken"), "ListSchedules")
        if group is not None:
            await self._group(scope, group)
        entries = await self.store.catalog_list(
            SCHEDULE, scope.prefix(f"{group}/" if group is not None else "")
        )
        summaries = []
        for entry in entries:
            doc = entry.doc
            if not scope.owns(entry.key) or (after is not None and entry.key <= after):
                continue
            if prefix is not None and not str(doc.get("Name", "")).startswith(prefix):
                continue
            if state is not None and doc.get("State") != state:
                continue
            summaries.append((entry.key, _summary(doc)))
        page = summaries[:limit]
        answer: dict[str, Any] = {"Schedules": [summary for _, summary in page]}
        if len(summaries) > limit:
            answer["NextToken"] = encode_token("ListSchedules", page[-1][0])
        return answer

    def _name_and_group(self, params: dict[str, Any]) -> tuple[str, str]:
        v = Violations(params)
        name = v.string("Name", "name", required=True, min_len=1, max_len=64, pattern=_NAME)
        group = v.string("GroupName", "groupName", min_len=1, max_len=64, pattern=_NAME)
        v.check()
        assert name is not None
        return name, group or DEFAULT_GROUP

    def _schedule_params(
        self, params: dict[str, Any], scope: AccountScope
    ) -> tuple[str, str, dict[str, Any]]:
        """The validated name, group and document of CreateSchedule / UpdateSchedule."""
        v = Violations(params)
        name = v.string("Name", "name", required=True, min_len=1, max_len=64, pattern=_NAME)
        group = v.string("GroupName", "groupName", min_len=1, max_len=64, pattern=_NAME)
        expression = v.string(
            "ScheduleExpression", "scheduleExpression", required=True, min_len=1, max_len=256
        )
        zone = v.string(
            "ScheduleExpressionTimezone", "scheduleExpressionTimezone", min_len=1, max_len=50
        )
        description = v.string("Description", "description", max_len=512)
        state = v.enum("State", "state", _STATES) or "ENABLED"
        after = v.enum("ActionAfterCompletion", "actionAfterCompletion", ("NONE", "DELETE"))
        kms = v.string("KmsKeyArn", "kmsKeyArn", min_len=1, max_len=2048, pattern=_KMS)
        v.string("ClientToken", "clientToken", min_len=1, max_len=64, pattern=_TOKEN)
        window = _flexible_window(v)
        target = _target(v)
        v.check()
        assert name is not None and expression is not None and target is not None
        start, end = _date(params, "StartDate"), _date(params, "EndDate")
        if start is not None and end is not None and end <= start:
            raise ValidationError("The EndDate must be after the StartDate.")
        try:
            Timing.of(expression)
        except InvalidScheduleExpression:
            raise ValidationError(f"Invalid Schedule Expression {expression}.") from None
        try:
            Timing.of("rate(1 minute)", zone)
        except InvalidScheduleExpression:
            raise ValidationError(f"Invalid Schedule Expression Timezone {zone}.") from None
        group = group or DEFAULT_GROUP
        doc: dict[str, Any] = {
            "Arn": self._schedule_arn(scope, group, name),
            "Name": name,
            "GroupName": group,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": zone or "UTC",
            "State": state,
            "FlexibleTimeWindow": window,
            "Target": target,
            "ActionAfterCompletion": after or "NONE",
        }
        optional = {
            "Description": description,
            "KmsKeyArn": kms,
            "StartDate": start,
            "EndDate": end,
        }
        doc.update({k: value for k, value in optional.items() if value is not None})
        return name, group, doc

    async def _check_target(self, target: dict[str, Any], scope: AccountScope) -> None:
        """Refuse a target eventyard cannot deliver to, or may not for this account."""
        arn = str(target["Arn"])
        kind = target_kind(arn)
        if kind is None:
            raise ValidationError(
                f"Invalid target Arn {arn}: eventyard delivers a schedule to an SQS queue ARN, "
                "an event bus ARN or an http(s):// URL."
            )
        other = scope.names_another_account(arn)
        if kind == "queue" and other is not None:
            raise ValidationError(
                f"Invalid target Arn {arn}: a queue of account {other}. A schedule's queue "
                "must belong to its account."
            )
        if kind == "http":
            refused = self._outbound.check_url(arn)
            if refused is not None:
                raise ValidationError(f"Invalid target Arn {arn}: {refused}.")
        if kind == "bus":
            if "EventBridgeParameters" not in target:
                raise ValidationError(
                    "EventBridgeParameters (DetailType and Source) are required for an event "
                    "bus target."
                )
            detail = target.get("Input", "{}")
            try:
                parsed = orjson.loads(detail)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                raise ValidationError(
                    "The Input of an event bus target must be a JSON object: it is the "
                    "event's detail."
                )
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        if dlq is not None and scope.names_another_account(str(dlq)) is not None:
            raise ValidationError(
                f"Invalid DeadLetterConfig Arn {dlq}: a queue of another account. A "
                "dead-letter queue must belong to the schedule's account."
            )

    # -- groups ----------------------------------------------------------------------------
    async def create_group(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """CreateScheduleGroup, with its tags.

        Raises:
            Conflict: a group of that name exists (``default`` always does).
        """
        v = Violations(params)
        name = v.string("Name", "name", required=True, min_len=1, max_len=64, pattern=_NAME)
        v.string("ClientToken", "clientToken", min_len=1, max_len=64, pattern=_TOKEN)
        v.sequence("Tags", "tags", max_items=200)
        tags = check_tags(v)
        v.check()
        assert name is not None
        if name == DEFAULT_GROUP:
            raise Conflict(f"Schedule group {name} already exists.")
        doc = self._group_doc(scope, name)
        try:
            await self.store.catalog_put(GROUP, scope.key(name), doc, expect_revision=0)
        except ConcurrentModification:
            raise Conflict(f"Schedule group {name} already exists.") from None
        if tags:
            await self.store.catalog_put(TAGS, doc["Arn"], {"Tags": tags})
        return {"ScheduleGroupArn": doc["Arn"]}

    async def get_group(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """GetScheduleGroup.

        Raises:
            ResourceNotFound: no such group.
        """
        name = self._group_name(params)
        return dict(await self._group(scope, name))

    async def delete_group(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DeleteScheduleGroup: the group, its schedules and its tags.

        Raises:
            ValidationError: the ``default`` group cannot be deleted.
            ResourceNotFound: no such group.
        """
        name = self._group_name(params)
        if name == DEFAULT_GROUP:
            raise ValidationError("The default schedule group cannot be deleted.")
        doc = await self._group(scope, name)
        for entry in await self.store.catalog_list(SCHEDULE, scope.key(f"{name}/")):
            if await self.store.catalog_delete(SCHEDULE, entry.key):
                self.changed(entry.key)
        await self.store.catalog_delete(TAGS, doc["Arn"])
        await self.store.catalog_delete(GROUP, scope.key(name))
        return {}

    async def list_groups(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListScheduleGroups: by name, ``default`` included."""
        v = Violations(params)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=64, pattern=_NAME)
        limit = v.integer("MaxResults", "maxResults", low=1, high=100) or _DEFAULT_PAGE
        v.check()
        after = decode_token(params.get("NextToken"), "ListScheduleGroups")
        await self._group(scope, DEFAULT_GROUP)
        groups = [
            (entry.key, entry.doc)
            for entry in await self.store.catalog_list(GROUP, scope.prefix(prefix or ""))
            if scope.owns(entry.key) and (after is None or entry.key > after)
        ]
        page = groups[:limit]
        answer: dict[str, Any] = {"ScheduleGroups": [dict(doc) for _, doc in page]}
        if len(groups) > limit:
            answer["NextToken"] = encode_token("ListScheduleGroups", page[-1][0])
        return answer

    def _group_name(self, params: dict[str, Any]) -> str:
        v = Violations(params)
        name = v.string("Name", "name", required=True, min_len=1, max_len=64, pattern=_NAME)
        v.string("ClientToken", "clientToken", min_len=1, max_len=64, pattern=_TOKEN)
        v.check()
        assert name is not None
        return name

    # -- tags ------------------------------------------------------------------------------
    async def _tagged_group(self, params: dict[str, Any], scope: AccountScope) -> str:
        """The ARN of the caller's group that ``ResourceArn`` names.

        Raises:
            ValidationError: not a schedule group ARN.
            ResourceNotFound: no such group in the caller's account.
        """
        v = Violations(params)
        arn = v.string(
            "ResourceArn", "resourceArn", required=True, min_len=1, max_len=1011, pattern=_GROUP_ARN
        )
        v.check()
        assert arn is not None
        account, name = arn.split(":")[4], arn.rpartition("/")[2]
        if account != scope.account:
            raise ResourceNotFound(f"Schedule group {name} does not exist.", status=404)
        await self._group(scope, name)
        return self._group_arn(scope, name)

    async def tag_resource(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """TagResource: add or replace tags of a schedule group."""
        arn = await self._tagged_group(params, scope)
        v = Violations(params)
        v.sequence("Tags", "tags", required=True, max_items=200)
        tags = check_tags(v)
        v.check()
        entry = await self.store.catalog_get(TAGS, arn)
        merged = {t["Key"]: t["Value"] for t in (entry.doc.get("Tags", []) if entry else [])}
        merged.update({t["Key"]: t["Value"] for t in tags})
        if len(merged) > 200:
            raise ValidationError("A resource can have at most 200 tags.")
        doc = {"Tags": [{"Key": k, "Value": value} for k, value in merged.items()]}
        await self.store.catalog_put(TAGS, arn, doc)
        return {}

    async def untag_resource(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """UntagResource: remove tags of a schedule group by key."""
        arn = await self._tagged_group(params, scope)
        v = Violations(params)
        keys = set(v.strings("TagKeys", "tagKeys", required=True, max_items=200) or ())
        v.check()
        entry = await self.store.catalog_get(TAGS, arn)
        if entry is not None:
            kept = [t for t in entry.doc.get("Tags", []) if t["Key"] not in keys]
            await self.store.catalog_put(TAGS, arn, {"Tags": kept})
        return {}

    async def list_tags(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListTagsForResource: a schedule group's tags."""
        arn = await self._tagged_group(params, scope)
        entry = await self.store.catalog_get(TAGS, arn)
        return {"Tags": list(entry.doc.get("Tags", [])) if entry else []}


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {k: doc[k] for k in ("Arn", "Name", "GroupName", "State") if k in doc}
    summary.update(
        CreationDate=doc.get("CreationDate"),
        LastModificationDate=doc.get("LastModificationDate"),
        Target={"Arn": doc.get("Target", {}).get("Arn")},
    )
    return summary


def _date(params: dict[str, Any], key: str) -> float | None:
    """A timestamp member: epoch seconds (botocore's REST-JSON form) or ISO 8601 text.

    Raises:
        ValidationError: neither.
    """
    value = params.get(key)
    if value is None:
        return None
    when: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        when = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if when is None:
        raise ValidationError(f"Invalid type for parameter {key}: expected a timestamp.")
    if not _FIRST_DATE <= when < _LAST_DATE:
        raise ValidationError(f"The {key} must be between 1970 and 2199.")
    return when


def _flexible_window(v: Violations) -> dict[str, Any]:
    window = v.structure("FlexibleTimeWindow")
    if window is None:
        v.add(None, "flexibleTimeWindow", "must not be null")
        return {}
    sub = Violations(window)
    mode = sub.enum("Mode", "flexibleTimeWindow.mode", ("OFF", "FLEXIBLE"))
    if mode is None:
        sub.add(None, "flexibleTimeWindow.mode", "must not be null")
    minutes = sub.integer(
        "MaximumWindowInMinutes", "flexibleTimeWindow.maximumWindowInMinutes", low=1, high=1440
    )
    v.items.extend(sub.items)
    if sub.items:
        return {}
    if mode == "FLEXIBLE" and minutes is None:
        raise ValidationError("MaximumWindowInMinutes is required when Mode is FLEXIBLE.")
    if mode == "OFF" and minutes is not None:
        raise ValidationError("MaximumWindowInMinutes is only allowed when Mode is FLEXIBLE.")
    return {"Mode": mode} if minutes is None else {"Mode": mode, "MaximumWindowInMinutes": minutes}


def _target(v: Violations) -> dict[str, Any] | None:
    target = v.structure("Target")
    if target is None:
        v.add(None, "target", "must not be null")
        return None
    sub = Violations(target)
    sub.string("Arn", "target.arn", required=True, min_len=1, max_len=1600)
    sub.string("RoleArn", "target.roleArn", required=True, min_len=1, max_len=1600, pattern=_ROLE)
    text = sub.string("Input", "target.input", min_len=1)
    if text is not None and len(text.encode()) > MAX_QUEUE_INPUT_BYTES:
        sub.add(text[:64], "target.input", f"must be at most {MAX_QUEUE_INPUT_BYTES} bytes")
    retry = sub.structure("RetryPolicy", label="Target.RetryPolicy")
    if retry is not None:
        sub.integer(
            "MaximumEventAgeInSeconds",
            "target.retryPolicy.maximumEventAgeInSeconds",
            source=retry,
            low=60,
            high=86400,
        )
        sub.integer(
            "MaximumRetryAttempts",
            "target.retryPolicy.maximumRetryAttempts",
            source=retry,
            low=0,
            high=185,
        )
    dlq = sub.structure("DeadLetterConfig", label="Target.DeadLetterConfig")
    if dlq is not None:
        sub.string("Arn", "target.deadLetterConfig.arn", source=dlq, min_len=1, pattern=_DLQ)
    bus = sub.structure("EventBridgeParameters", label="Target.EventBridgeParameters")
    if bus is not None:
        sub.string(
            "DetailType",
            "target.eventBridgeParameters.detailType",
            source=bus,
            required=True,
            min_len=1,
            max_len=128,
        )
        source = sub.string(
            "Source",
            "target.eventBridgeParameters.source",
            source=bus,
            required=True,
            min_len=1,
            max_len=256,
        )
        if source is not None and source.startswith("aws."):
            sub.add(source, "target.eventBridgeParameters.source", "must not start with aws.")
    v.items.extend(sub.items)
    return dict(target)
