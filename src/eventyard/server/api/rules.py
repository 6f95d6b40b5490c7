"""Rules and event patterns: the EventBridge operations, with AWS's shapes.

:class:`RulesApi` serves PutRule, DescribeRule, ListRules, EnableRule, DisableRule,
DeleteRule, ListRuleNamesByTarget and TestEventPattern for
:class:`~eventyard.server.api.aws.EventsApi`, in the caller's account (another
account's rule answers as if it did not exist, even when named by its ARN). A rule is a
catalog document (typed in :mod:`eventyard.server.catalog`): kind ``rule``, key =
``<internal bus>/<rule>``: ``{Name, Arn, EventBusName, EventPattern? (the text as
sent), State, Description?, RoleArn?, CreatedBy, Targets}``; ``Targets`` holds the AWS
Target structures exactly as PutTargets received them, in insertion order (their
operations are :mod:`eventyard.server.api.targets`). PutRule replaces a rule keeping
its targets and tags.

Event patterns are checked as AWS checks them, with the location AWS's parser
(Jackson) adds to a syntax error; archives check theirs with the same
:meth:`RulesApi.check_pattern`.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import (
    ConcurrentModification,
    InvalidEventPattern,
    InvalidScheduleExpression,
    ValidationError,
)
from eventyard.patterns import CompiledPattern, compile_pattern, matches
from eventyard.patterns.tokens import first_token_location, json_syntax_error
from eventyard.server.accounts import AccountScope
from eventyard.server.api.events_catalog import (
    RETRIES,
    EventsCatalog,
    Handler,
    bus_missing,
    one_page,
    over_quota,
    pick,
    rule_missing,
)
from eventyard.server.api.validation import NAME_PATTERN, Violations, check_tags
from eventyard.server.catalog import RULE, RuleDoc, rule_doc
from eventyard.server.quotas import kept_within
from eventyard.server.schedules.expression import parse as parse_schedule

__all__ = ["RulesApi"]

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


class RulesApi:
    """The rule operations and TestEventPattern, in the caller's account.

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
            "TestEventPattern": self.test_event_pattern,
            "PutRule": self.put_rule,
            "DescribeRule": self.describe_rule,
            "ListRules": self.list_rules,
            "EnableRule": self.enable_rule,
            "DisableRule": self.disable_rule,
            "DeleteRule": self.delete_rule,
            "ListRuleNamesByTarget": self.list_rule_names_by_target,
        }

    # -- event patterns ----------------------------------------------------------------------
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
        compiled = self.check_pattern(pattern)
        try:
            event = orjson.loads(event_text)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or any(key not in event for key in _EVENT_KEYS):
            raise ValidationError("Parameter Event is not valid.")
        return {"Result": matches(compiled, event)}

    def check_pattern(self, pattern: str) -> CompiledPattern:
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
        bus = self.catalog.bus_param(v, scope)
        v.check()
        assert name is not None
        if pattern is None and schedule is None:
            raise ValidationError(
                "Parameter(s) EventPattern or ScheduleExpression must be specified."
            )
        await self.catalog.bus(bus)
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
            self.check_pattern(pattern)
        key = self.catalog.rule_key(bus, name)
        assert bus.key is not None  # _bus found it
        arn = scope.rule_arn(bus.name, name)
        self.catalog.check_tag_count(len(tags))
        quota = self.settings.max_rules_per_bus
        prefix = f"{bus.key}/"

        async def count() -> int:
            return len(await self.store.catalog_list(RULE, prefix))

        async with self.catalog.quota_locks(f"rule:{bus.key}"):  # see eventyard.server.quotas
            if await self.store.catalog_get(RULE, key) is None and await count() >= quota:
                raise over_quota(f"{quota} rules on bus {bus.name}")
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
            for _ in range(RETRIES):
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
                    raise over_quota(f"{quota} rules on bus {bus.name}")
                if bus.name != DEFAULT_BUS and await self.store.catalog_get("bus", bus.key) is None:
                    # DeleteEventBus ran meanwhile and may have missed this rule.
                    await self.store.catalog_delete("rule", key)
                    raise bus_missing(bus.name)
                if entry is None:
                    await self.catalog.replace_tags(arn, tags)
                await self.catalog.applied()
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
        bus, rule = self.catalog.rule_params(Violations(params), scope)
        entry = await self.catalog.rule(bus, rule)
        return pick(entry.doc, (*_RULE_FIELDS, "CreatedBy"))

    async def list_rules(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListRules: the rules of a bus by name, optionally by prefix, paginated."""
        v = Violations(params)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=64, pattern=NAME_PATTERN)
        bus = self.catalog.bus_param(v, scope)
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        await self.catalog.bus(bus)
        entries = await self.store.catalog_list("rule", f"{bus.key}/{prefix or ''}")
        page, more = one_page(
            entries, lambda e: e.doc["Name"], f"ListRules:{bus.name}", token, limit
        )
        return {"Rules": [pick(e.doc, _RULE_FIELDS) for e in page], **more}

    async def _set_state(
        self, params: dict[str, Any], scope: AccountScope, state: str
    ) -> dict[str, Any]:
        bus, rule = self.catalog.rule_params(Violations(params), scope)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            doc["State"] = state
            return doc

        key = self.catalog.rule_key(bus, rule)
        doc = await self.catalog.update("rule", key, change, lambda: rule_missing(rule, bus.name))
        await self.catalog.applied()
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
        bus, rule = self.catalog.rule_params(v, scope)
        await self.catalog.bus(bus)
        key = self.catalog.rule_key(bus, rule)
        for _ in range(RETRIES):
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
            await self.catalog.applied()
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
        bus = self.catalog.bus_param(v, scope)
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        await self.catalog.bus(bus)
        names = [
            str(entry.doc["Name"])
            for entry in await self.store.catalog_list("rule", f"{bus.key}/")
            if any(t.get("Arn") == arn for t in entry.doc.get("Targets", ()))
        ]
        page, more = one_page(names, lambda n: n, f"ListRuleNamesByTarget:{bus.name}", token, limit)
        return {"RuleNames": page, **more}
