"""Rule targets and their signing secrets: the EventBridge operations, with AWS's shapes.

:class:`TargetsApi` serves PutTargets, RemoveTargets and ListTargetsByRule, and the
eventyard operations PutTargetSigningSecret, DeleteTargetSigningSecret and
DescribeTargetSigning (:mod:`eventyard.server.api.target_signing`), for
:class:`~eventyard.server.api.aws.EventsApi`, in the caller's account. Targets live in
their rule's catalog document (:mod:`eventyard.server.api.rules`), as the AWS Target
structures exactly as PutTargets received them, in insertion order; PutTargets and
RemoveTargets change it by read-modify-write, so concurrent calls never lose each
other's targets.

A target may be an event bus of another account (its resource policy decides at
delivery), without an input setting; a queue, as a target or a dead-letter queue, and
an API destination must be the caller's own. A webhook must be one the outbound policy
lets deliveries reach.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import socket
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from eventyard.errors import LimitExceeded, ValidationError
from eventyard.server.accounts import AccountScope, parse_api_destination_arn, parse_queue_arn
from eventyard.server.api.events_catalog import (
    BusRef,
    EventsCatalog,
    Handler,
    check_own_dlq,
    one_page,
    rule_missing,
)
from eventyard.server.api.target_signing import (
    carry_signing,
    delete_secrets,
    describe_signing,
    hide_signing,
    put_secret,
    refuse_signing_member,
)
from eventyard.server.api.validation import NAME_PATTERN, Violations, check_target
from eventyard.server.delivery.http_parameters import check_http_parameters
from eventyard.server.delivery.outbound import OutboundPolicy, outbound_allow
from eventyard.server.delivery.signing import generate_secret, parse_secret, seal_secret
from eventyard.server.delivery.targets import target_kind
from eventyard.server.transform import validate_target_input

__all__ = ["MAX_TARGETS_PER_RULE", "TargetsApi"]

MAX_TARGETS_PER_RULE = 5
# orjson, which writes the catalog, serialises at most 254 levels; a target sits at one.
MAX_TARGET_DEPTH = 253
# seconds PutTargets waits for a webhook host's addresses
_RESOLVE_TIMEOUT = 2.0


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


class TargetsApi:
    """The target operations and the signing secrets of webhook targets, in the caller's
    account.

    Args:
        catalog: the catalog access the EventBridge operations share.
    """

    def __init__(self, catalog: EventsCatalog) -> None:
        self.catalog = catalog
        self.router = catalog.router
        self._outbound = OutboundPolicy.parse(outbound_allow(catalog.settings))

    @property
    def operations(self) -> dict[str, Handler]:
        """The operations served, by name."""
        return {
            "PutTargets": self.put_targets,
            "RemoveTargets": self.remove_targets,
            "ListTargetsByRule": self.list_targets_by_rule,
            "PutTargetSigningSecret": self.put_target_signing_secret,
            "DeleteTargetSigningSecret": self.delete_target_signing_secret,
            "DescribeTargetSigning": self.describe_target_signing,
        }

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
        bus, rule = self.catalog.rule_params(v, scope, "Rule")
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

        key = self.catalog.rule_key(bus, rule)
        doc = await self.catalog.update("rule", key, change, lambda: rule_missing(rule, bus.name))
        await self.catalog.applied()
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
        bus, rule = self.catalog.rule_params(v, scope, "Rule")
        assert ids is not None
        gone = set(ids)

        removed: list[dict[str, Any]] = []

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            removed[:] = [t for t in doc.get("Targets", ()) if t.get("Id") in gone]
            doc["Targets"] = [t for t in doc.get("Targets", ()) if t.get("Id") not in gone]
            return doc

        key = self.catalog.rule_key(bus, rule)
        doc = await self.catalog.update("rule", key, change, lambda: rule_missing(rule, bus.name))
        await self.catalog.applied()
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
        bus, rule = self.catalog.rule_params(v, scope, "Rule")
        entry = await self.catalog.rule(bus, rule)
        numbered = list(enumerate(entry.doc.get("Targets", [])))
        page, more = one_page(
            numbered,
            lambda item: f"{item[0]:04d}",
            f"ListTargetsByRule:{bus.name}/{rule}",
            token,
            limit,
        )
        return {"Targets": hide_signing(target for _, target in page), **more}

    # -- signing secrets of webhook targets (eventyard operations) ---------------------------
    def _signing_params(self, v: Violations, scope: AccountScope) -> tuple[BusRef, str, str]:
        target_id = v.string(
            "TargetId", "targetId", required=True, min_len=1, max_len=64, pattern=NAME_PATTERN
        )
        bus, rule = self.catalog.rule_params(v, scope, "Rule")
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
        key = self.catalog.rule_key(bus, rule)
        created = time.time()
        record = seal_secret(self.router.master, f"{key}/{target_id}", secret, created)
        count = 0

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            nonlocal count
            doc, count = put_secret(doc, target_id, record, keep_previous=keep)
            return doc

        await self.catalog.update("rule", key, change, lambda: rule_missing(rule, bus.name))
        await self.catalog.applied()
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
        key = self.catalog.rule_key(bus, rule)
        count = 0

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            nonlocal count
            doc, count = delete_secrets(doc, target_id, previous_only=previous)
            return doc

        await self.catalog.update("rule", key, change, lambda: rule_missing(rule, bus.name))
        await self.catalog.applied()
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
        entry = await self.catalog.rule(bus, rule)
        return describe_signing(entry.doc, target_id)


def _check_fifo(target: Mapping[str, Any]) -> None:
    """A FIFO queue target needs ``SqsParameters.MessageGroupId``, as EventBridge says."""
    arn = str(target.get("Arn", ""))
    group = (target.get("SqsParameters") or {}).get("MessageGroupId")
    if arn.endswith(".fifo") and parse_queue_arn(arn) is not None and not group:
        raise ValidationError(
            f"Parameter(s) SqsParameters must be specified for target: {target.get('Id')}."
        )


def _check_accounts(scope: AccountScope, target: Mapping[str, Any]) -> None:
    """Refuse what a target may not do across accounts (see :meth:`TargetsApi.put_targets`)."""
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
    check_own_dlq(
        scope, target.get("DeadLetterConfig"), f"DeadLetterConfig.Arn of target {target_id}"
    )
    _check_fifo(target)
