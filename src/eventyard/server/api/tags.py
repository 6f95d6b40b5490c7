"""Tags of event buses and rules: the EventBridge operations, with AWS's shapes.

:class:`TagsApi` serves TagResource, UntagResource and ListTagsForResource for
:class:`~eventyard.server.api.aws.EventsApi`, in the caller's account: a resource is
named by its ARN, and a bus or rule of another account answers as if it did not exist.
Tags are catalog documents: kind ``tags``, key = resource ARN: ``{Tags: [{Key,
Value}]}``; CreateEventBus and PutRule write a new resource's first tags
(:meth:`~eventyard.server.api.events_catalog.EventsCatalog.replace_tags`), and deleting
the resource deletes them.
"""

from __future__ import annotations

import contextlib
import copy
import re
from typing import Any

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import ConcurrentModification, ValidationError
from eventyard.server.accounts import AccountScope, parse_bus_arn, parse_rule_arn
from eventyard.server.api.events_catalog import RETRIES, BusRef, EventsCatalog, Handler
from eventyard.server.api.validation import Violations, check_tags

__all__ = ["TagsApi"]

_RESOURCE_ARN_RE = re.compile(r"arn:aws[\w-]*:events:[a-z0-9-]+:([0-9]{12}):([a-z-]+)/(.+)")


class TagsApi:
    """The tag operations, on the caller's event buses and rules.

    Args:
        catalog: the catalog access the EventBridge operations share.
    """

    def __init__(self, catalog: EventsCatalog) -> None:
        self.catalog = catalog
        self.store = catalog.store

    @property
    def operations(self) -> dict[str, Handler]:
        """The operations served, by name."""
        return {
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }

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
            await self.catalog.bus(BusRef(scope.key(parsed.name) if own else None, parsed.name))
            return scope.bus_arn(parsed.name)
        bus, _, rule = parsed.name.rpartition("/")
        bus = bus or DEFAULT_BUS
        await self.catalog.rule(BusRef(scope.key(bus) if own else None, bus), rule)
        return scope.rule_arn(bus, rule)

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

        for _ in range(RETRIES):
            entry = await self.store.catalog_get("tags", arn)
            doc = change(copy.deepcopy(entry.doc) if entry else {})
            self.catalog.check_tag_count(len(doc["Tags"]))
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
            await self.catalog.update("tags", arn, change, _NoTags)
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
