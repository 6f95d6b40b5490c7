"""Event buses and their resource policies: the EventBridge operations, with AWS's shapes.

:class:`BusesApi` serves CreateEventBus, DescribeEventBus, ListEventBuses,
UpdateEventBus, DeleteEventBus, PutPermission and RemovePermission for
:class:`~eventyard.server.api.aws.EventsApi`, in the caller's account. A bus is a
catalog document (typed in :mod:`eventyard.server.catalog`): kind ``bus``, key =
internal bus name: ``{Name, Arn, Description?, CreationTime, LastModifiedTime,
DeadLetterConfig?, LogConfig?, Policy?}`` (times are epoch seconds; ``Policy`` is the
resource policy as JSON text, absent when the bus has none). Deleting a bus deletes its
rules, their targets and tags.

Bus resource policies (PutPermission / RemovePermission) are stored and returned by
DescribeEventBus and ListEventBuses as AWS returns them; the router enforces them when
another account puts events on the bus (PutEvents with the bus's ARN, or a rule's bus
target). PutPermission and RemovePermission change the policy by read-modify-write, so
concurrent calls never lose each other's statements.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import (
    ConcurrentModification,
    PolicyLengthExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    ValidationError,
)
from eventyard.server.accounts import AccountScope
from eventyard.server.api.events_catalog import (
    EventsCatalog,
    Handler,
    bus_missing,
    check_own_dlq,
    one_page,
    over_quota,
    pick,
)
from eventyard.server.api.validation import (
    ACTION_PATTERN,
    BUS_NAME_PATTERN,
    NAME_PATTERN,
    PRINCIPAL_PATTERN,
    STATEMENT_ID_PATTERN,
    Violations,
    bus_settings,
    check_condition,
    check_tags,
    parse_policy,
)
from eventyard.server.quotas import kept_within
from eventyard.server.system_events import SYSTEM_BUS

__all__ = ["MAX_POLICY_LENGTH", "BusesApi"]

MAX_POLICY_LENGTH = 10240
_POLICY_VERSION = "2012-10-17"
# The only action, condition type and condition key PutPermission's parameters accept.
_PERMISSION_ACTION = "events:PutEvents"
_CONDITION_TYPE = "StringEquals"
_CONDITION_KEY = "aws:PrincipalOrgID"
_BUS_FIELDS = ("Name", "Arn", "Description", "KmsKeyIdentifier", "DeadLetterConfig", "Policy")
_BUS_TAIL = ("LogConfig", "CreationTime", "LastModifiedTime")


def _policy_text(policy: Mapping[str, Any], bus: str) -> str:
    """``policy`` as the compact JSON text stored and returned, within the length limit.

    Raises:
        PolicyLengthExceeded: the text would be longer than the limit.
    """
    return _checked_policy_length(orjson.dumps(policy).decode(), bus)


def _checked_policy_length(text: str, bus: str) -> str:
    if len(text) > MAX_POLICY_LENGTH:
        raise PolicyLengthExceeded(
            f"The policy of event bus {bus} would be {len(text)} characters long; "
            f"the limit is {MAX_POLICY_LENGTH}."
        )
    return text


def _refuse_kms(params: Mapping[str, Any]) -> None:
    if params.get("KmsKeyIdentifier"):
        raise ValidationError(
            "KmsKeyIdentifier is not supported by eventyard: events are stored unencrypted."
        )


class BusesApi:
    """The event bus and bus permission operations, in the caller's account.

    Args:
        catalog: the catalog access the EventBridge operations share.
    """

    def __init__(self, catalog: EventsCatalog) -> None:
        self.catalog = catalog
        self.store = catalog.store
        self.settings = catalog.settings
        self.router = catalog.router

    @property
    def operations(self) -> dict[str, Handler]:
        """The operations served, by name."""
        return {
            "CreateEventBus": self.create_event_bus,
            "DescribeEventBus": self.describe_event_bus,
            "ListEventBuses": self.list_event_buses,
            "UpdateEventBus": self.update_event_bus,
            "DeleteEventBus": self.delete_event_bus,
            "PutPermission": self.put_permission,
            "RemovePermission": self.remove_permission,
        }

    # -- buses -------------------------------------------------------------------------------
    async def create_event_bus(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """CreateEventBus: a custom bus (partner buses are not served yet).

        Raises:
            ResourceAlreadyExists: a bus of that name exists (``default`` always does).
        """
        v = Violations(params)
        name = v.string(
            "Name", "name", required=True, min_len=1, max_len=256, pattern=BUS_NAME_PATTERN
        )
        v.string(
            "EventSourceName",
            "eventSourceName",
            min_len=1,
            max_len=256,
            pattern=r"aws\.partner(/[\.\-_A-Za-z0-9]+){2,}",
        )
        found = bus_settings(v)
        tags = check_tags(v)
        v.check()
        assert name is not None
        if params.get("EventSourceName") is not None:
            raise ValidationError(
                "Partner event buses (EventSourceName) are not supported by eventyard yet."
            )
        if "/" in name:
            raise ValidationError(
                f"Event bus name {name} is not valid: only partner event bus names contain '/'."
            )
        _refuse_kms(params)
        if name == DEFAULT_BUS:
            raise ResourceAlreadyExists(f"Event bus {name} already exists.")
        check_own_dlq(scope, found.get("DeadLetterConfig"), "DeadLetterConfig.Arn")
        self.catalog.check_tag_count(len(tags))
        key = scope.key(name)

        async def custom() -> set[str]:
            listed = await self.store.catalog_list("bus", scope.prefix())
            # the default and system buses are eventyard's, not counted in the quota
            return {e.key for e in listed if scope.owns(e.key)} - {
                scope.default_bus,
                scope.key(SYSTEM_BUS),
            }

        async def count() -> int:
            return len(await custom())

        quota = self.settings.max_buses
        arn = scope.bus_arn(name)
        async with self.catalog.quota_locks(f"bus:{scope.account}"):  # see eventyard.server.quotas
            existing = await custom()
            if len(existing) >= quota and key not in existing:
                raise over_quota(f"{quota} event buses")
            now = time.time()
            doc: dict[str, Any] = {"Name": name, "Arn": arn, **found}
            if not doc.get("DeadLetterConfig"):
                doc.pop("DeadLetterConfig", None)
            doc.update(CreationTime=now, LastModifiedTime=now)
            try:
                await self.store.catalog_put("bus", key, doc, expect_revision=0)
            except ConcurrentModification:
                raise ResourceAlreadyExists(f"Event bus {name} already exists.") from None
            if not await kept_within(self.store, "bus", key, count, quota):
                raise over_quota(f"{quota} event buses")
        await self.catalog.replace_tags(arn, tags)
        await self.catalog.applied()
        self.router.resource_changed(scope.account, "event-bus", name, arn, "CREATED")
        return {"EventBusArn": arn, **pick(doc, ("Description", "DeadLetterConfig", "LogConfig"))}

    async def describe_event_bus(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DescribeEventBus: a bus by name or ARN (``default`` when no name is given)."""
        v = Violations(params)
        bus = self.catalog.bus_param(v, scope, "Name", "name")
        v.check()
        entry = await self.catalog.bus(bus)
        return pick(entry.doc, _BUS_FIELDS + _BUS_TAIL)

    async def list_event_buses(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListEventBuses: buses by name, optionally by prefix, paginated."""
        v = Violations(params)
        prefix = v.string(
            "NamePrefix", "namePrefix", min_len=1, max_len=256, pattern=BUS_NAME_PATTERN
        )
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        entries = [
            entry
            for entry in await self.store.catalog_list("bus", scope.prefix(prefix or ""))
            if scope.owns(entry.key)
        ]
        page, more = one_page(entries, lambda e: scope.name(e.key), "ListEventBuses", token, limit)
        fields = ("Name", "Arn", "Description", "Policy", "CreationTime", "LastModifiedTime")
        return {"EventBuses": [pick(e.doc, fields) for e in page], **more}

    async def update_event_bus(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """UpdateEventBus: change the members given; the others keep their values.

        An empty ``Description`` or a ``DeadLetterConfig`` without ``Arn`` removes it.
        """
        v = Violations(params)
        name = v.string("Name", "name", min_len=1, max_len=256, pattern=BUS_NAME_PATTERN)
        found = bus_settings(v)
        v.check()
        _refuse_kms(params)
        check_own_dlq(scope, found.get("DeadLetterConfig"), "DeadLetterConfig.Arn")
        bus = name or DEFAULT_BUS
        key = scope.key(bus)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            for key, value in found.items():
                if value:
                    doc[key] = value
                else:
                    doc.pop(key, None)
            doc["LastModifiedTime"] = time.time()
            return doc

        doc = await self.catalog.update("bus", key, change, lambda: bus_missing(bus))
        await self.catalog.applied()
        self.router.resource_changed(scope.account, "event-bus", bus, str(doc["Arn"]), "UPDATED")
        fields = ("Arn", "Name", "Description", "DeadLetterConfig", "LogConfig")
        return pick(doc, fields)

    async def delete_event_bus(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DeleteEventBus: delete a custom bus with its rules, their targets and tags.

        Deleting a bus that does not exist succeeds, as on AWS.

        Raises:
            ValidationError: the bus is ``default``.
        """
        v = Violations(params)
        name = v.string(
            "Name", "name", required=True, min_len=1, max_len=256, pattern=BUS_NAME_PATTERN
        )
        v.check()
        assert name is not None
        if name == DEFAULT_BUS:
            raise ValidationError("Cannot delete event bus default.")
        key = scope.key(name)
        if not await self.store.catalog_delete("bus", key):
            return {}
        # Rules cannot outlive their bus: nothing could list, run or delete them any more,
        # and a bus created again under the same name must start empty.
        for entry in await self.store.catalog_list("rule", f"{key}/"):
            await self.store.catalog_delete("rule", entry.key)
            await self.store.catalog_delete("tags", str(entry.doc.get("Arn")))
            self.router.resource_changed(
                scope.account,
                "rule",
                str(entry.doc.get("Name")),
                str(entry.doc.get("Arn")),
                "DELETED",
                **{"event-bus-name": name},
            )
        await self.store.catalog_delete("tags", scope.bus_arn(name))
        await self.catalog.applied()
        self.router.resource_changed(
            scope.account, "event-bus", name, scope.bus_arn(name), "DELETED"
        )
        return {}

    # -- permissions (bus resource policies) -------------------------------------------------
    def _permission_bus(self, v: Violations) -> str:
        """The bus of a permission operation: a name (no ARN), ``default`` when omitted."""
        name = v.string(
            "EventBusName", "eventBusName", min_len=1, max_len=256, pattern=NAME_PATTERN
        )
        return name or DEFAULT_BUS

    async def _change_policy(
        self,
        scope: AccountScope,
        bus: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> None:
        """Read-modify-write the policy of ``bus`` (None: no policy), telling the router."""

        def change_doc(doc: dict[str, Any]) -> dict[str, Any]:
            text = doc.get("Policy")
            policy = change(orjson.loads(text) if text is not None else None)
            if policy is None:
                doc.pop("Policy", None)
            else:
                doc["Policy"] = _policy_text(policy, bus)
            doc["LastModifiedTime"] = time.time()
            return doc

        key = scope.key(bus)
        doc = await self.catalog.update("bus", key, change_doc, lambda: bus_missing(bus))
        await self.catalog.applied()
        self.router.resource_changed(
            scope.account, "event-bus", bus, str(doc["Arn"]), "UPDATED", **{"policy-changed": True}
        )

    @staticmethod
    def _statement(
        scope: AccountScope,
        bus: str,
        sid: str,
        principal: str,
        condition: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        """The policy statement PutPermission's parameters stand for, shaped as AWS's."""
        who: str | dict[str, str] = "*"
        if principal != "*":
            who = {"AWS": f"arn:aws:iam::{principal}:root"}
        statement: dict[str, Any] = {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": who,
            "Action": _PERMISSION_ACTION,
            "Resource": scope.bus_arn(bus),
        }
        if condition is not None:
            statement["Condition"] = {condition["Type"]: {condition["Key"]: condition["Value"]}}
        return statement

    async def put_permission(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """PutPermission: add or replace one statement of a bus policy, or replace the policy.

        With ``Action``, ``Principal``, ``StatementId`` (and optionally ``Condition``) the
        statement with that Sid is replaced in place, or appended. With ``Policy`` the
        whole policy is replaced by that text, stored as given.

        Raises:
            ResourceNotFound: the bus does not exist.
            PolicyLengthExceeded: the policy would be longer than 10,240 characters.
            ValidationError: constraint errors (AWS's texts), a Policy that is not a JSON
                object with a ``Statement`` list, or statement parameters that are missing,
                unsupported or mixed with ``Policy``.
        """
        v = Violations(params)
        bus = self._permission_bus(v)
        action = v.string("Action", "action", min_len=1, max_len=64, pattern=ACTION_PATTERN)
        principal = v.string(
            "Principal", "principal", min_len=1, max_len=12, pattern=PRINCIPAL_PATTERN
        )
        sid = v.string(
            "StatementId", "statementId", min_len=1, max_len=64, pattern=STATEMENT_ID_PATTERN
        )
        condition = check_condition(v)
        text = v.string("Policy", "policy")
        v.check()

        if text is not None:
            keys = ("Action", "Principal", "StatementId", "Condition")
            given = [key for key in keys if params.get(key) is not None]
            if given:
                raise ValidationError(
                    f"Policy cannot be combined with {', '.join(given)}: "
                    "give either a whole Policy or the parameters of one statement."
                )
            parse_policy(text)
            stored = _checked_policy_length(text, bus)

            def replace(doc: dict[str, Any]) -> dict[str, Any]:
                doc["Policy"] = stored
                doc["LastModifiedTime"] = time.time()
                return doc

            key = scope.key(bus)
            doc = await self.catalog.update("bus", key, replace, lambda: bus_missing(bus))
            await self.catalog.applied()
            self.router.resource_changed(
                scope.account,
                "event-bus",
                bus,
                str(doc["Arn"]),
                "UPDATED",
                **{"policy-changed": True},
            )
            return {}

        missing = [
            key
            for key, value in (("Action", action), ("Principal", principal), ("StatementId", sid))
            if value is None
        ]
        if missing:
            raise ValidationError(
                f"Parameter(s) {', '.join(missing)} must be specified when Policy is not given."
            )
        assert action is not None and principal is not None and sid is not None
        if action != _PERMISSION_ACTION:
            raise ValidationError("Provided value in parameter 'action' is not supported.")
        if condition is not None:
            if condition["Type"] != _CONDITION_TYPE:
                raise ValidationError(
                    f"Condition.Type {condition['Type']} is not supported: "
                    f"only {_CONDITION_TYPE} is."
                )
            if condition["Key"] != _CONDITION_KEY:
                raise ValidationError(
                    f"Condition.Key {condition['Key']} is not supported: only {_CONDITION_KEY} is."
                )
            if principal != "*":
                raise ValidationError(
                    "Value of the parameter 'principal' must be '*' when the parameter "
                    "'condition' is set."
                )
        statement = self._statement(scope, bus, sid, principal, condition)

        def add(policy: dict[str, Any] | None) -> dict[str, Any]:
            if policy is None:
                return {"Version": _POLICY_VERSION, "Statement": [statement]}
            statements: list[dict[str, Any]] = []
            placed = False
            for existing in policy["Statement"]:
                if existing.get("Sid") != sid:
                    statements.append(existing)
                elif not placed:
                    statements.append(statement)
                    placed = True
            if not placed:
                statements.append(statement)
            policy["Statement"] = statements
            return policy

        await self._change_policy(scope, bus, add)
        return {}

    async def remove_permission(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """RemovePermission: remove one statement by Sid, or the whole policy.

        When the last statement goes, the policy goes with it (DescribeEventBus then shows
        no ``Policy``, as after ``RemoveAllPermissions``).

        Raises:
            ResourceNotFound: the bus does not exist; no statement has that Sid (also when
                the bus has no policy); ``RemoveAllPermissions`` on a bus without policy.
            ValidationError: constraint errors, or neither StatementId nor
                ``RemoveAllPermissions=true``.
        """
        v = Violations(params)
        sid = v.string(
            "StatementId", "statementId", min_len=1, max_len=64, pattern=STATEMENT_ID_PATTERN
        )
        remove_all = v.boolean("RemoveAllPermissions")
        bus = self._permission_bus(v)
        v.check()
        if not remove_all and sid is None:
            raise ValidationError(
                "Parameter StatementId must be specified unless RemoveAllPermissions is true."
            )

        def remove(policy: dict[str, Any] | None) -> dict[str, Any] | None:
            if remove_all:
                if policy is None:
                    raise ResourceNotFound("EventBus does not have a policy.")
                return None
            statements = policy["Statement"] if policy is not None else []
            kept = [s for s in statements if s.get("Sid") != sid]
            if policy is None or len(kept) == len(statements):
                raise ResourceNotFound("Statement with the provided id does not exist.")
            if not kept:
                return None
            policy["Statement"] = kept
            return policy

        await self._change_policy(scope, bus, remove)
        return {}
