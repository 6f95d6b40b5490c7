"""The EventBridge control plane: buses, rules, targets and tags behind ``AWSEvents.*``.

:class:`EventsApi` answers the EventBridge operations of the AWS JSON 1.1 protocol with
AWS's shapes, ARNs and error texts, so boto3 and the AWS CLI work unmodified. It keeps
its state in the store's catalog, where the router reads it back at start-up (the
documents are typed in :mod:`eventyard.server.catalog`):

* kind ``bus``, key = internal bus name: ``{Name, Arn, Description?, CreationTime, LastModifiedTime,
  DeadLetterConfig?, LogConfig?, Policy?}`` (times are epoch seconds; ``Policy`` is the
  resource policy as JSON text, absent when the bus has none). Every account has its
  ``default`` bus; it is created at the account's first call with a creation time
  that is then kept.
* kind ``rule``, key = ``<internal bus>/<rule>``: ``{Name, Arn, EventBusName, EventPattern? (the
  text as sent), State, Description?, RoleArn?, CreatedBy, Targets}``; ``Targets`` holds
  the AWS Target structures exactly as PutTargets received them, in insertion order.
* kind ``tags``, key = resource ARN: ``{Tags: [{Key, Value}]}``.

Every operation acts in the caller's account (:class:`~eventyard.server.accounts.AccountScope`):
internal names carry the account, and a bus, rule or tag of another account answers as
if it did not exist, even when named by its ARN. Documents hold what the account sees
(``Name``, ``EventBusName``, ARNs with its id).

Read-modify-write goes through catalog revisions, retried on a conflict, so concurrent
PutTargets (or PutPermission) calls never lose each other's targets (or statements).
The router follows the catalog's change feed (:mod:`eventyard.server.feed`), which
carries every process's changes; after each committed change an operation waits until
the router has applied it (:meth:`RouterHooks.sync_catalog`), so a change takes effect
for the next event, and the call that made it returns only then.
PutEvents itself belongs to the router and is passed straight through.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import orjson

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import (
    ConcurrentModification,
    InvalidEventPattern,
    InvalidScheduleExpression,
    LimitExceeded,
    PolicyLengthExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    UnknownOperation,
    ValidationError,
)
from eventyard.patterns import CompiledPattern, compile_pattern, matches
from eventyard.patterns.tokens import first_token_location, json_syntax_error
from eventyard.server.accounts import (
    Accounts,
    AccountScope,
    parse_api_destination_arn,
    parse_bus_arn,
    parse_queue_arn,
    parse_rule_arn,
)
from eventyard.server.api.archives import ArchivesApi
from eventyard.server.api.connections import ConnectionsApi
from eventyard.server.api.target_signing import (
    carry_signing,
    delete_secrets,
    describe_signing,
    hide_signing,
    put_secret,
    refuse_signing_member,
)
from eventyard.server.api.validation import (
    ACTION_PATTERN,
    BUS_NAME_OR_ARN_PATTERN,
    BUS_NAME_PATTERN,
    NAME_PATTERN,
    PRINCIPAL_PATTERN,
    STATEMENT_ID_PATTERN,
    Violations,
    bus_settings,
    check_condition,
    check_tags,
    check_target,
    decode_token,
    encode_token,
    parse_policy,
)
from eventyard.server.auth.keys import Principal
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import RULE, BusDoc, RuleDoc, read_modify_write, rule_doc, rule_key
from eventyard.server.config import Settings
from eventyard.server.delivery.http_parameters import check_http_parameters
from eventyard.server.delivery.outbound import OutboundPolicy, outbound_allow
from eventyard.server.delivery.signing import generate_secret, parse_secret, seal_secret
from eventyard.server.delivery.targets import target_kind
from eventyard.server.quotas import KeyedLocks, kept_within
from eventyard.server.schedules.expression import parse as parse_schedule
from eventyard.server.store import CatalogEntry, Store
from eventyard.server.system_events import SYSTEM_BUS
from eventyard.server.transform import validate_target_input

__all__ = [
    "MAX_POLICY_LENGTH",
    "MAX_TARGETS_PER_RULE",
    "EventsApi",
    "PolicyLengthExceeded",
    "RouterHooks",
]

MAX_TARGETS_PER_RULE = 5
MAX_POLICY_LENGTH = 10240
# orjson, which writes the catalog, serialises at most 254 levels; a target sits at one.
MAX_TARGET_DEPTH = 253
_POLICY_VERSION = "2012-10-17"
# The only action, condition type and condition key PutPermission's parameters accept.
_PERMISSION_ACTION = "events:PutEvents"
_CONDITION_TYPE = "StringEquals"
_CONDITION_KEY = "aws:PrincipalOrgID"
_RETRIES = 8
# seconds PutTargets waits for a webhook host's addresses
_RESOLVE_TIMEOUT = 2.0
_PAGE = 100
_RULE_STATES = ("ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
_REASON = "Event pattern is not valid. Reason: "
# How Jackson's syntax errors begin; the pattern engine reports them in its own words.
_JSON_ERRORS = (
    "Unexpected character",
    "Unrecognized token",
    "Unexpected end-of-input",
    "Unexpected close marker",
    "Unrecognized character escape",
    "Invalid numeric value",
    "Illegal ",
)
_EVENT_KEYS = ("id", "account", "source", "time", "region", "detail-type")
_RESOURCE_ARN_RE = re.compile(r"arn:aws[\w-]*:events:[a-z0-9-]+:([0-9]{12}):([a-z-]+)/(.+)")

# Operations of the EventBridge API that later work will bring; until then they answer
# with a clear error rather than a fake success.
# fmt: off
_LATER = frozenset({
    "CreateEndpoint", "DescribeEndpoint", "ListEndpoints", "UpdateEndpoint", "DeleteEndpoint",
    "ActivateEventSource", "DeactivateEventSource", "DescribeEventSource", "ListEventSources",
    "CreatePartnerEventSource", "DeletePartnerEventSource", "DescribePartnerEventSource",
    "ListPartnerEventSources", "ListPartnerEventSourceAccounts", "PutPartnerEvents",
})
# fmt: on

_T = TypeVar("_T")


class RouterHooks(Protocol):
    """What the control plane needs from the router (names are internal names).

    Attributes:
        master: the master key that seals the signing secrets of webhook targets (the
            router unseals them with it).
    """

    master: MasterKey

    async def put_events(
        self, params: dict[str, Any], account: str | None = None
    ) -> dict[str, Any]:
        """Run PutEvents for ``account`` (validation, envelopes, matching, durable enqueue)."""
        ...

    async def sync_catalog(self) -> None:
        """Apply every catalog change committed so far (buses, rules and their targets);
        returns once they apply, so the next event sees them."""
        ...

    def resource_changed(
        self, account: str, resource_type: str, name: str, arn: str, change: str, **more: Any
    ) -> None:
        """Tell a resource's change on the account's system bus (never raises)."""
        ...


@dataclass(frozen=True, slots=True)
class _BusRef:
    """A bus as a request names it: its internal name (None when the request named
    another account's bus by ARN: for this caller it does not exist) and its name."""

    key: str | None
    name: str


def _rule_missing(rule: str, bus: str) -> ResourceNotFound:
    return ResourceNotFound(f"Rule {rule} does not exist on EventBus {bus}.")


def _bus_missing(bus: str) -> ResourceNotFound:
    return ResourceNotFound(f"Event bus {bus} does not exist.")


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


def _located(error: InvalidEventPattern, pattern: str) -> InvalidEventPattern:
    """``error`` with the Jackson location AWS appends to parse-time pattern errors.

    The pattern engine gives AWS's first line; for JSON syntax errors and ``Filter is not
    an object`` AWS adds where its parser stood, which only this layer computes.
    """
    reason = error.message.removeprefix(_REASON)
    if "\n" in reason:
        return error
    if reason == "Filter is not an object":
        where = first_token_location(pattern)
    else:
        syntax = json_syntax_error(pattern) if reason.startswith(_JSON_ERRORS) else None
        if syntax is None:
            return error
        where = syntax[1]
    return InvalidEventPattern(f"{error.message}\n at {where}")


def _check_storable(target: Mapping[str, Any], index: int) -> None:
    """Refuse a target the catalog cannot store: nested past orjson's 254 levels.

    Targets are stored as sent, unknown members included, so a deeply nested one would
    otherwise fail at the store with a 500 (found by the fuzz suite).
    """
    try:
        orjson.dumps(target)
    except orjson.JSONEncodeError:
        raise ValidationError(
            f"Parameter Targets[{index - 1}] is not valid. Reason: it is nested deeper than "
            f"{MAX_TARGET_DEPTH} levels."
        ) from None


def _refuse_kms(params: Mapping[str, Any]) -> None:
    if params.get("KmsKeyIdentifier"):
        raise ValidationError(
            "KmsKeyIdentifier is not supported by eventyard: events are stored unencrypted."
        )


def _pick(doc: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: doc[k] for k in keys if doc.get(k) is not None}


def _page(
    items: list[_T], position: Callable[[_T], str], scope: str, token: str | None, limit: int | None
) -> tuple[list[_T], dict[str, str]]:
    """One page of ``items`` (ordered by ``position``) and the NextToken member, if any."""
    after = decode_token(token, scope)
    if after is not None:
        items = [item for item in items if position(item) > after]
    size = limit or _PAGE
    page = items[:size]
    if len(items) > size:
        return page, {"NextToken": encode_token(scope, position(page[-1]))}
    return page, {}


_BUS_FIELDS = ("Name", "Arn", "Description", "KmsKeyIdentifier", "DeadLetterConfig", "Policy")
_BUS_TAIL = ("LogConfig", "CreationTime", "LastModifiedTime")
_RULE_FIELDS = (
    "Name",
    "Arn",
    "EventPattern",
    "ScheduleExpression",
    "State",
    "Description",
    "RoleArn",
    "ManagedBy",
    "EventBusName",
)


_Handler = Callable[[dict[str, Any], AccountScope], Awaitable[dict[str, Any]]]


class EventsApi:
    """The EventBridge operations (``X-Amz-Target: AWSEvents.<Op>``), in the caller's account.

    Bus resource policies (PutPermission / RemovePermission) are stored and returned by
    DescribeEventBus and ListEventBuses as AWS returns them; the router enforces them
    when another account puts events on the bus (PutEvents with the bus's ARN, or a
    rule's bus target).

    Args:
        store: the durable store; only its catalog is used here.
        settings: home account id, region, quotas and the pattern length limit.
        router: told about every committed change; runs PutEvents.
        master: the master key that seals connection secrets, the one the delivery
            engine opens them with (default: a new random key, for tests).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        router: RouterHooks,
        *,
        master: MasterKey | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.router = router
        self.accounts = Accounts(settings)
        self._outbound = OutboundPolicy.parse(outbound_allow(settings))
        self._default_ready: set[str] = set()
        self._quota_locks = KeyedLocks()
        self._ops: dict[str, _Handler] = {
            "PutEvents": self.put_events,
            "TestEventPattern": self.test_event_pattern,
            "CreateEventBus": self.create_event_bus,
            "DescribeEventBus": self.describe_event_bus,
            "ListEventBuses": self.list_event_buses,
            "UpdateEventBus": self.update_event_bus,
            "DeleteEventBus": self.delete_event_bus,
            "PutPermission": self.put_permission,
            "RemovePermission": self.remove_permission,
            "PutRule": self.put_rule,
            "DescribeRule": self.describe_rule,
            "ListRules": self.list_rules,
            "EnableRule": self.enable_rule,
            "DisableRule": self.disable_rule,
            "DeleteRule": self.delete_rule,
            "ListRuleNamesByTarget": self.list_rule_names_by_target,
            "PutTargets": self.put_targets,
            "RemoveTargets": self.remove_targets,
            "ListTargetsByRule": self.list_targets_by_rule,
            "PutTargetSigningSecret": self.put_target_signing_secret,
            "DeleteTargetSigningSecret": self.delete_target_signing_secret,
            "DescribeTargetSigning": self.describe_target_signing,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }
        self.connections = ConnectionsApi(store, settings, master or MasterKey.generate())
        self._ops.update(self.connections.operations)
        self.archives = ArchivesApi(store, router, self._check_pattern)
        self._ops.update(self.archives.operations)

    async def call(
        self, op: str, params: dict[str, Any], caller: Principal | None = None
    ) -> dict[str, Any]:
        """Run EventBridge operation ``op`` with its request parameters.

        Args:
            op: the operation name, e.g. ``PutRule``.
            params: the decoded JSON request body.
            caller: the verified principal, whose account the operation acts in; None
                for the home account.

        Returns:
            The response body.

        Raises:
            ServiceError: the AWS-shaped error to answer with (``UnknownOperation`` for
                an operation eventyard does not know or does not serve yet).
        """
        handler = self._ops.get(op)
        if handler is None:
            if op in _LATER:
                raise UnknownOperation(f"Operation {op} is not supported by eventyard yet.")
            raise UnknownOperation(f"Unknown operation AWSEvents.{op}.")
        scope = self.accounts.scope(caller)
        if scope.account not in self._default_ready:
            await self._ensure_default_bus(scope)
        return await handler(params, scope)

    # -- names, ARNs and look-ups ------------------------------------------------------------
    async def _ensure_default_bus(self, scope: AccountScope) -> None:
        key = scope.default_bus
        if await self.store.catalog_get("bus", key) is None:
            now = time.time()
            doc: BusDoc = {
                "Name": DEFAULT_BUS,
                "Arn": scope.bus_arn(DEFAULT_BUS),
                "CreationTime": now,
                "LastModifiedTime": now,
            }
            try:
                await self.store.catalog_put("bus", key, dict(doc), expect_revision=0)
            except ConcurrentModification:
                pass  # another request created it first
            else:
                await self._applied()
        self._default_ready.add(scope.account)

    async def _applied(self) -> None:
        """Wait until the router applies the catalog changes committed so far (this
        call's included): the router follows the catalog's change feed, which is also
        how changes made by other processes reach it."""
        await self.router.sync_catalog()

    @staticmethod
    def _bus_ref(scope: AccountScope, value: str | None) -> _BusRef:
        """The bus an ``EventBusName`` value (a name or an ARN) names, in ``scope``."""
        if value is None:
            return _BusRef(scope.default_bus, DEFAULT_BUS)
        arn = parse_bus_arn(value)
        return _BusRef(scope.bus_key(value), arn.name if arn is not None else value)

    async def _bus(self, bus: _BusRef) -> CatalogEntry:
        entry = await self.store.catalog_get("bus", bus.key) if bus.key is not None else None
        if entry is None:
            raise _bus_missing(bus.name)
        return entry

    @staticmethod
    def _rule_key(bus: _BusRef, rule: str) -> str:
        """The catalog key of ``rule`` on ``bus``.

        Raises:
            ResourceNotFound: the bus is another account's.
        """
        if bus.key is None:
            raise _rule_missing(rule, bus.name)
        return rule_key(bus.key, rule)

    async def _rule(self, bus: _BusRef, rule: str) -> CatalogEntry:
        entry = await self.store.catalog_get("rule", self._rule_key(bus, rule))
        if entry is None:
            raise _rule_missing(rule, bus.name)
        return entry

    async def _update(
        self,
        kind: str,
        key: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        missing: Callable[[], Exception],
    ) -> dict[str, Any]:
        """Read-modify-write one document, retrying when another writer got there first."""
        return await read_modify_write(self.store, kind, key, change, missing, retries=_RETRIES)

    def _rule_params(
        self, v: Violations, scope: AccountScope, name_key: str = "Name"
    ) -> tuple[_BusRef, str]:
        """Validate and read the rule name and bus of a rule operation (``v`` is checked)."""
        path = "name" if name_key == "Name" else "rule"
        rule = v.string(name_key, path, required=True, min_len=1, max_len=64, pattern=NAME_PATTERN)
        bus = self._bus_param(v, scope)
        v.check()
        assert rule is not None
        return bus, rule

    def _bus_param(
        self,
        v: Violations,
        scope: AccountScope,
        key: str = "EventBusName",
        path: str = "eventBusName",
    ) -> _BusRef:
        value = v.string(key, path, min_len=1, max_len=1600, pattern=BUS_NAME_OR_ARN_PATTERN)
        return self._bus_ref(scope, value)

    # -- events ------------------------------------------------------------------------------
    async def put_events(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """PutEvents: handed to the router, which validates, stores and matches the entries."""
        return await self.router.put_events(params, scope.account)

    async def test_event_pattern(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """TestEventPattern: whether ``EventPattern`` matches ``Event``.

        Raises:
            InvalidEventPattern: the pattern is not valid (AWS's message and location).
            ValidationError: ``Event`` is not a JSON object with the envelope's fields.
        """
        v = Violations(params)
        pattern = v.string("EventPattern", "eventPattern", required=True, max_len=4096)
        event_text = v.string("Event", "event", required=True)
        v.check()
        assert pattern is not None and event_text is not None
        compiled = self._check_pattern(pattern)
        try:
            event = orjson.loads(event_text)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or any(key not in event for key in _EVENT_KEYS):
            raise ValidationError("Parameter Event is not valid.")
        return {"Result": matches(compiled, event)}

    def _check_pattern(self, pattern: str) -> CompiledPattern:
        """Validate an event pattern as AWS does, with the parser location AWS adds.

        Returns:
            The compiled pattern.

        Raises:
            InvalidEventPattern: the pattern is not valid.
        """
        try:
            return compile_pattern(pattern, max_length=self.settings.max_pattern_length)
        except InvalidEventPattern as exc:
            raise _located(exc, pattern) from None

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
        _check_own_dlq(scope, found.get("DeadLetterConfig"), "DeadLetterConfig.Arn")
        self._check_tag_count(len(tags))
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
        async with self._quota_locks(f"bus:{scope.account}"):  # see eventyard.server.quotas
            existing = await custom()
            if len(existing) >= quota and key not in existing:
                raise _over_quota(f"{quota} event buses")
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
                raise _over_quota(f"{quota} event buses")
        await self._replace_tags(arn, tags)
        await self._applied()
        self.router.resource_changed(scope.account, "event-bus", name, arn, "CREATED")
        return {"EventBusArn": arn, **_pick(doc, ("Description", "DeadLetterConfig", "LogConfig"))}

    async def describe_event_bus(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DescribeEventBus: a bus by name or ARN (``default`` when no name is given)."""
        v = Violations(params)
        bus = self._bus_param(v, scope, "Name", "name")
        v.check()
        entry = await self._bus(bus)
        return _pick(entry.doc, _BUS_FIELDS + _BUS_TAIL)

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
        page, more = _page(entries, lambda e: scope.name(e.key), "ListEventBuses", token, limit)
        fields = ("Name", "Arn", "Description", "Policy", "CreationTime", "LastModifiedTime")
        return {"EventBuses": [_pick(e.doc, fields) for e in page], **more}

    async def update_event_bus(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """UpdateEventBus: change the members given; the others keep their values.

        An empty ``Description`` or a ``DeadLetterConfig`` without ``Arn`` removes it.
        """
        v = Violations(params)
        name = v.string("Name", "name", min_len=1, max_len=256, pattern=BUS_NAME_PATTERN)
        found = bus_settings(v)
        v.check()
        _refuse_kms(params)
        _check_own_dlq(scope, found.get("DeadLetterConfig"), "DeadLetterConfig.Arn")
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

        doc = await self._update("bus", key, change, lambda: _bus_missing(bus))
        await self._applied()
        self.router.resource_changed(scope.account, "event-bus", bus, str(doc["Arn"]), "UPDATED")
        fields = ("Arn", "Name", "Description", "DeadLetterConfig", "LogConfig")
        return _pick(doc, fields)

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
        await self._applied()
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
        doc = await self._update("bus", key, change_doc, lambda: _bus_missing(bus))
        await self._applied()
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
            doc = await self._update("bus", key, replace, lambda: _bus_missing(bus))
            await self._applied()
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

    # -- rules -------------------------------------------------------------------------------
    async def put_rule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """PutRule: create a rule, or replace one keeping its targets and tags.

        Members left out of a replacing call are reset, as on AWS. A rule has an event
        pattern, a ``ScheduleExpression`` (only on the default bus) or both; the scheduler
        (:mod:`eventyard.server.schedules.ticker`) fires the scheduled ones.

        Raises:
            InvalidEventPattern: the pattern is not valid.
            ResourceNotFound: the bus does not exist.
            ValidationError: constraint or schedule errors, with AWS's texts.
        """
        v = Violations(params)
        name = v.string("Name", "name", required=True, min_len=1, max_len=64, pattern=NAME_PATTERN)
        schedule = v.string("ScheduleExpression", "scheduleExpression", max_len=256)
        pattern = v.string("EventPattern", "eventPattern", max_len=4096)
        state = v.enum("State", "state", _RULE_STATES) or "ENABLED"
        description = v.string("Description", "description", max_len=512)
        role = v.string("RoleArn", "roleArn", min_len=1, max_len=1600)
        tags = check_tags(v)
        bus = self._bus_param(v, scope)
        v.check()
        assert name is not None
        if pattern is None and schedule is None:
            raise ValidationError(
                "Parameter(s) EventPattern or ScheduleExpression must be specified."
            )
        await self._bus(bus)
        if schedule is not None:
            if bus.name != DEFAULT_BUS:
                raise ValidationError(
                    "ScheduleExpression is supported only on the default event bus."
                )
            try:
                parse_schedule(schedule)
            except InvalidScheduleExpression:
                raise ValidationError("Parameter ScheduleExpression is not valid.") from None
        if pattern is not None:
            self._check_pattern(pattern)
        key = self._rule_key(bus, name)
        assert bus.key is not None  # _bus found it
        arn = scope.rule_arn(bus.name, name)
        self._check_tag_count(len(tags))
        quota = self.settings.max_rules_per_bus
        prefix = f"{bus.key}/"

        async def count() -> int:
            return len(await self.store.catalog_list(RULE, prefix))

        async with self._quota_locks(f"rule:{bus.key}"):  # see eventyard.server.quotas
            if await self.store.catalog_get(RULE, key) is None and await count() >= quota:
                raise _over_quota(f"{quota} rules on bus {bus.name}")
            fresh: RuleDoc = {
                "Name": name,
                "Arn": arn,
                "EventBusName": bus.name,
                "State": state,
                "Targets": [],
            }
            if pattern is not None:
                fresh["EventPattern"] = pattern
            if schedule is not None:
                fresh["ScheduleExpression"] = schedule
            if description is not None:
                fresh["Description"] = description
            if role is not None:
                fresh["RoleArn"] = role
            for _ in range(_RETRIES):
                entry = await self.store.catalog_get("rule", key)
                doc = fresh.copy()
                old = rule_doc(entry) if entry else None
                doc["CreatedBy"] = old.get("CreatedBy", "") if old else scope.account
                doc["Targets"] = copy.deepcopy(old.get("Targets", [])) if old else []
                try:
                    await self.store.catalog_put(
                        RULE, key, dict(doc), expect_revision=entry.revision if entry else 0
                    )
                except ConcurrentModification:
                    continue
                if entry is None and not await kept_within(self.store, RULE, key, count, quota):
                    raise _over_quota(f"{quota} rules on bus {bus.name}")
                if bus.name != DEFAULT_BUS and await self.store.catalog_get("bus", bus.key) is None:
                    # DeleteEventBus ran meanwhile and may have missed this rule.
                    await self.store.catalog_delete("rule", key)
                    raise _bus_missing(bus.name)
                if entry is None:
                    await self._replace_tags(arn, tags)
                await self._applied()
                self.router.resource_changed(
                    scope.account,
                    "rule",
                    name,
                    arn,
                    "UPDATED" if entry else "CREATED",
                    **{"event-bus-name": bus.name, "state": state},
                )
                return {"RuleArn": arn}
            raise ConcurrentModification(f"Too many concurrent changes to rule {name}; try again.")

    async def describe_rule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DescribeRule: one rule, without its targets."""
        bus, rule = self._rule_params(Violations(params), scope)
        entry = await self._rule(bus, rule)
        return _pick(entry.doc, (*_RULE_FIELDS, "CreatedBy"))

    async def list_rules(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListRules: the rules of a bus by name, optionally by prefix, paginated."""
        v = Violations(params)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=64, pattern=NAME_PATTERN)
        bus = self._bus_param(v, scope)
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        await self._bus(bus)
        entries = await self.store.catalog_list("rule", f"{bus.key}/{prefix or ''}")
        page, more = _page(entries, lambda e: e.doc["Name"], f"ListRules:{bus.name}", token, limit)
        return {"Rules": [_pick(e.doc, _RULE_FIELDS) for e in page], **more}

    async def _set_state(
        self, params: dict[str, Any], scope: AccountScope, state: str
    ) -> dict[str, Any]:
        bus, rule = self._rule_params(Violations(params), scope)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            doc["State"] = state
            return doc

        key = self._rule_key(bus, rule)
        doc = await self._update("rule", key, change, lambda: _rule_missing(rule, bus.name))
        await self._applied()
        self.router.resource_changed(
            scope.account,
            "rule",
            rule,
            str(doc["Arn"]),
            "UPDATED",
            **{"event-bus-name": bus.name, "state": state},
        )
        return {}

    async def enable_rule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """EnableRule: the rule matches events again."""
        return await self._set_state(params, scope, "ENABLED")

    async def disable_rule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DisableRule: the rule stops matching events; its targets are kept."""
        return await self._set_state(params, scope, "DISABLED")

    async def delete_rule(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DeleteRule: delete a rule that has no targets (a missing rule is no error).

        Raises:
            ResourceNotFound: the bus does not exist.
            ValidationError: the rule still has targets.
        """
        v = Violations(params)
        v.boolean("Force")
        bus, rule = self._rule_params(v, scope)
        await self._bus(bus)
        key = self._rule_key(bus, rule)
        for _ in range(_RETRIES):
            entry = await self.store.catalog_get("rule", key)
            if entry is None:
                return {}
            if entry.doc.get("Targets"):
                raise ValidationError("Rule can't be deleted since it has targets.")
            try:
                await self.store.catalog_delete("rule", key, expect_revision=entry.revision)
            except ConcurrentModification:
                continue
            await self.store.catalog_delete("tags", scope.rule_arn(bus.name, rule))
            await self._applied()
            self.router.resource_changed(
                scope.account,
                "rule",
                rule,
                scope.rule_arn(bus.name, rule),
                "DELETED",
                **{"event-bus-name": bus.name},
            )
            return {}
        raise ConcurrentModification(f"Too many concurrent changes to rule {rule}; try again.")

    async def list_rule_names_by_target(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """ListRuleNamesByTarget: the rules of a bus with a target of that ARN."""
        v = Violations(params)
        arn = v.string("TargetArn", "targetArn", required=True, min_len=1, max_len=1600)
        bus = self._bus_param(v, scope)
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        await self._bus(bus)
        names = [
            str(entry.doc["Name"])
            for entry in await self.store.catalog_list("rule", f"{bus.key}/")
            if any(t.get("Arn") == arn for t in entry.doc.get("Targets", ()))
        ]
        page, more = _page(names, lambda n: n, f"ListRuleNamesByTarget:{bus.name}", token, limit)
        return {"RuleNames": page, **more}

    # -- targets -----------------------------------------------------------------------------
    async def put_targets(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """PutTargets: add targets to a rule, replacing those with the same ``Id``.

        A target may be an event bus of another account (its resource policy decides at
        delivery), without an input setting; a queue, as a target or a dead-letter queue,
        must be the caller's own.

        Raises:
            ResourceNotFound: the rule does not exist.
            ValidationError: a target is not valid (constraints, input settings, another
                account's queue, input on another account's bus).
            LimitExceeded: the rule would have more than five targets.
        """
        v = Violations(params)
        targets = v.objects("Targets", "targets", required=True, min_items=1, max_items=100)
        for index, target in enumerate(targets or (), start=1):
            check_target(v, target, index)
        bus, rule = self._rule_params(v, scope, "Rule")
        assert targets is not None
        for index, target in enumerate(targets, start=1):
            validate_target_input(target, index=index)
            _check_storable(target, index)
            _check_accounts(scope, target)
            refuse_signing_member(target, index)
            if target.get("HttpParameters"):
                check_http_parameters(
                    target["HttpParameters"],
                    target_id=str(target.get("Id")),
                    arn=str(target.get("Arn", "")),
                )
        for target in targets:
            arn = str(target.get("Arn", ""))
            if target_kind(arn) == "http" or "://" in arn:  # file://, gopher://: refused
                await self._check_outbound(str(target.get("Id")), arn)

        existed: set[str] = set()

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            merged: dict[str, Any] = {t["Id"]: t for t in doc.get("Targets", ())}
            existed.clear()
            existed.update(merged)
            for target in targets:
                # a replaced webhook keeps its signing secrets
                merged[target["Id"]] = carry_signing(
                    merged.get(target["Id"]), copy.deepcopy(target)
                )
            if len(merged) > MAX_TARGETS_PER_RULE:
                raise LimitExceeded("The requested resource exceeds the maximum number allowed.")
            doc["Targets"] = list(merged.values())
            return doc

        key = self._rule_key(bus, rule)
        doc = await self._update("rule", key, change, lambda: _rule_missing(rule, bus.name))
        await self._applied()
        for target in targets:
            self._target_changed(
                scope, doc, target, "UPDATED" if target["Id"] in existed else "CREATED"
            )
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def _target_changed(
        self, scope: AccountScope, rule: Mapping[str, Any], target: Mapping[str, Any], change: str
    ) -> None:
        self.router.resource_changed(
            scope.account,
            "target",
            str(target.get("Id")),
            str(rule.get("Arn")),
            change,
            **{"rule-name": rule.get("Name"), "target-arn": target.get("Arn")},
        )

    async def _check_outbound(self, target_id: str, url: str) -> None:
        """Refuse a webhook the outbound policy would never let a delivery reach.

        A literal address is judged at once; a host name by the addresses it resolves to
        now (within a short wait). A name that does not resolve yet is accepted: every
        connection is checked again when deliveries run.
        """
        refused = self._outbound.check_url(url)
        host = urlsplit(url).hostname if refused is None else None
        if host is not None and not self._outbound.allows_host(host):
            try:
                found = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM),
                    timeout=_RESOLVE_TIMEOUT,
                )
            except (OSError, TimeoutError):
                found = []
            addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found}
            if addresses and not any(self._outbound.allows_address(a) for a in addresses):
                refused = "its address is not public and not in the outbound allow-list"
        if refused is not None:
            raise ValidationError(
                f"Target {target_id}: the URL {url} is not allowed: {refused}. Webhooks may "
                "reach public addresses; the outbound_allow setting opens others."
            )

    async def remove_targets(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """RemoveTargets: remove targets by ``Id`` (unknown ids are ignored)."""
        v = Violations(params)
        ids = v.strings("Ids", "ids", required=True, min_items=1, max_items=100)
        for index, target_id in enumerate(ids or (), start=1):
            v.text(target_id, f"ids.{index}.member", min_len=1, max_len=64, pattern=NAME_PATTERN)
        v.boolean("Force")
        bus, rule = self._rule_params(v, scope, "Rule")
        assert ids is not None
        gone = set(ids)

        removed: list[dict[str, Any]] = []

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            removed[:] = [t for t in doc.get("Targets", ()) if t.get("Id") in gone]
            doc["Targets"] = [t for t in doc.get("Targets", ()) if t.get("Id") not in gone]
            return doc

        key = self._rule_key(bus, rule)
        doc = await self._update("rule", key, change, lambda: _rule_missing(rule, bus.name))
        await self._applied()
        for target in removed:
            self._target_changed(scope, doc, target, "DELETED")
        return {"FailedEntryCount": 0, "FailedEntries": []}

    async def list_targets_by_rule(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """ListTargetsByRule: a rule's targets as PutTargets stored them, paginated."""
        v = Violations(params)
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        bus, rule = self._rule_params(v, scope, "Rule")
        entry = await self._rule(bus, rule)
        numbered = list(enumerate(entry.doc.get("Targets", [])))
        page, more = _page(
            numbered,
            lambda item: f"{item[0]:04d}",
            f"ListTargetsByRule:{bus.name}/{rule}",
            token,
            limit,
        )
        return {"Targets": hide_signing(target for _, target in page), **more}

    # -- signing secrets of webhook targets (eventyard operations) ---------------------------
    def _signing_params(self, v: Violations, scope: AccountScope) -> tuple[_BusRef, str, str]:
        target_id = v.string(
            "TargetId", "targetId", required=True, min_len=1, max_len=64, pattern=NAME_PATTERN
        )
        bus, rule = self._rule_params(v, scope, "Rule")
        assert target_id is not None
        return bus, rule, target_id

    async def put_target_signing_secret(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """PutTargetSigningSecret (eventyard): set a webhook target's current signing secret.

        See :mod:`eventyard.server.api.target_signing`. The answer is the only one that
        ever holds the secret.

        Raises:
            ResourceNotFound: no such rule or target.
            ValidationError: the secret is not ``whsec_`` + base64 of 24 to 64 bytes, or
                the target is not a webhook.
        """
        v = Violations(params)
        text = v.string("Secret", "secret", min_len=1, max_len=256)
        keep = params.get("KeepPrevious", True)
        if not isinstance(keep, bool):
            raise Violations.wrong_type("KeepPrevious", keep, "a boolean")
        bus, rule, target_id = self._signing_params(v, scope)
        secret = generate_secret() if text is None else text
        parse_secret(secret)
        key = self._rule_key(bus, rule)
        created = time.time()
        record = seal_secret(self.router.master, f"{key}/{target_id}", secret, created)
        count = 0

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            nonlocal count
            doc, count = put_secret(doc, target_id, record, keep_previous=keep)
            return doc

        await self._update("rule", key, change, lambda: _rule_missing(rule, bus.name))
        await self._applied()
        return {"Secret": secret, "CreationTime": created, "SecretCount": count}

    async def delete_target_signing_secret(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DeleteTargetSigningSecret (eventyard): end a rotation (``Previous``) or stop
        signing a webhook target's deliveries.

        Raises:
            ResourceNotFound: no such rule or target.
        """
        v = Violations(params)
        previous = v.boolean("Previous")
        bus, rule, target_id = self._signing_params(v, scope)
        key = self._rule_key(bus, rule)
        count = 0

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            nonlocal count
            doc, count = delete_secrets(doc, target_id, previous_only=previous)
            return doc

        await self._update("rule", key, change, lambda: _rule_missing(rule, bus.name))
        await self._applied()
        return {"SecretCount": count}

    async def describe_target_signing(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DescribeTargetSigning (eventyard): whether a target signs, and its secrets'
        creation times (never a secret).

        Raises:
            ResourceNotFound: no such rule or target.
        """
        v = Violations(params)
        bus, rule, target_id = self._signing_params(v, scope)
        entry = await self._rule(bus, rule)
        return describe_signing(entry.doc, target_id)

    # -- tags --------------------------------------------------------------------------------
    async def _replace_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        if tags:
            await self.store.catalog_put("tags", arn, {"Tags": tags})
        else:
            await self.store.catalog_delete("tags", arn)

    async def _resource(self, v: Violations, scope: AccountScope) -> str:
        """The canonical ARN of an existing bus or rule of the caller named by ``ResourceARN``."""
        arn = v.string("ResourceARN", "resourceARN", required=True, min_len=1, max_len=1600)
        v.check()
        assert arn is not None
        match = _RESOURCE_ARN_RE.fullmatch(arn)
        if match is None:
            raise ValidationError(
                f"Parameter ResourceARN is not valid: {arn} is not an EventBridge ARN."
            )
        kind = match.group(2)
        if kind not in ("event-bus", "rule"):
            raise ValidationError(
                f"Tagging {kind} resources is not supported by eventyard yet; "
                "event buses and rules can be tagged."
            )
        # the name part goes through the one parser of each kind, which refuses what is
        # not a name (a ":" would reach into another account's internal names)
        parsed = parse_bus_arn(arn) if kind == "event-bus" else parse_rule_arn(arn)
        if parsed is None:
            raise ValidationError(
                f"Parameter ResourceARN is not valid: {arn} does not name an event bus or a rule."
            )
        own = parsed.account == scope.account
        if kind == "event-bus":
            await self._bus(_BusRef(scope.key(parsed.name) if own else None, parsed.name))
            return scope.bus_arn(parsed.name)
        bus, _, rule = parsed.name.rpartition("/")
        bus = bus or DEFAULT_BUS
        await self._rule(_BusRef(scope.key(bus) if own else None, bus), rule)
        return scope.rule_arn(bus, rule)

    def _check_tag_count(self, count: int) -> None:
        if count > self.settings.max_tags:
            raise _over_quota(f"{self.settings.max_tags} tags on one resource")

    async def tag_resource(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """TagResource: add or overwrite tags of a bus or rule."""
        v = Violations(params)
        if params.get("Tags") is None:
            v.add(None, "tags", "must not be null")
        tags = check_tags(v)
        arn = await self._resource(v, scope)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            merged = {t["Key"]: t["Value"] for t in doc.get("Tags", ())}
            merged.update((t["Key"], t["Value"]) for t in tags)
            return {"Tags": [{"Key": k, "Value": val} for k, val in merged.items()]}

        for _ in range(_RETRIES):
            entry = await self.store.catalog_get("tags", arn)
            doc = change(copy.deepcopy(entry.doc) if entry else {})
            self._check_tag_count(len(doc["Tags"]))
            try:
                await self.store.catalog_put(
                    "tags", arn, doc, expect_revision=entry.revision if entry else 0
                )
            except ConcurrentModification:
                continue
            return {}
        raise ConcurrentModification(
            f"Too many concurrent changes to the tags of {arn}; try again."
        )

    async def untag_resource(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """UntagResource: remove tags by key (keys that are not set are ignored)."""
        v = Violations(params)
        keys = set(v.strings("TagKeys", "tagKeys", required=True) or ())
        arn = await self._resource(v, scope)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            return {"Tags": [t for t in doc.get("Tags", ()) if t["Key"] not in keys]}

        with contextlib.suppress(_NoTags):
            await self._update("tags", arn, change, _NoTags)
        return {}

    async def list_tags_for_resource(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """ListTagsForResource: the tags of a bus or rule."""
        arn = await self._resource(Violations(params), scope)
        entry = await self.store.catalog_get("tags", arn)
        return {"Tags": list(entry.doc.get("Tags", ())) if entry else []}


class _NoTags(Exception):
    """The resource has no tags document (nothing to remove)."""


def _check_own_dlq(scope: AccountScope, dlq: Mapping[str, Any] | None, label: str) -> None:
    """Refuse a dead-letter queue of another account (eventyard has no queue policies)."""
    arn = (dlq or {}).get("Arn")
    if isinstance(arn, str) and scope.names_another_account(arn) is not None:
        raise ValidationError(
            f"Parameter {label} is not valid: {arn} is a queue of another account. A "
            "dead-letter queue must belong to the rule's account: eventyard has no queue "
            "policies that could let another account's rules write to a queue."
        )
    if isinstance(arn, str) and arn.endswith(".fifo"):
        raise ValidationError(
            f"Parameter {label} is not valid: {arn} is a FIFO queue; a dead-letter queue "
            "must be a standard queue."
        )


def _check_fifo(target: Mapping[str, Any]) -> None:
    """A FIFO queue target needs ``SqsParameters.MessageGroupId``, as EventBridge says."""
    arn = str(target.get("Arn", ""))
    group = (target.get("SqsParameters") or {}).get("MessageGroupId")
    if arn.endswith(".fifo") and parse_queue_arn(arn) is not None and not group:
        raise ValidationError(
            f"Parameter(s) SqsParameters must be specified for target: {target.get('Id')}."
        )


def _check_accounts(scope: AccountScope, target: Mapping[str, Any]) -> None:
    """Refuse what a target may not do across accounts (see :meth:`EventsApi.put_targets`)."""
    target_id = target.get("Id")
    arn = str(target.get("Arn", ""))
    other = scope.names_another_account(arn)
    if other is not None and parse_api_destination_arn(arn) is not None:
        raise ValidationError(
            f"Target {target_id}: {arn} is an API destination of account {other}. An API "
            "destination target must belong to the rule's account."
        )
    if other is not None and parse_queue_arn(arn) is not None:
        raise ValidationError(
            f"Target {target_id}: {arn} is a queue of account {other}. A queue target must "
            "belong to the rule's account: eventyard has no queue policies that could let "
            "another account's rules write to a queue. Target an event bus of that account "
            "instead; its resource policy decides."
        )
    if other is not None and any(k in target for k in ("Input", "InputPath", "InputTransformer")):
        raise ValidationError(
            f"Target {target_id}: an event bus of another account receives the whole event; "
            "Input, InputPath and InputTransformer are not allowed on such a target."
        )
    _check_own_dlq(
        scope, target.get("DeadLetterConfig"), f"DeadLetterConfig.Arn of target {target_id}"
    )
    _check_fifo(target)


def _over_quota(what: str) -> LimitExceeded:
    """AWS's quota error, naming the quota (settable, see docs/configuration.md)."""
    return LimitExceeded(
        f"The requested resource exceeds the maximum number allowed ({what}; "
        "eventyard's quota, settable)."
    )
