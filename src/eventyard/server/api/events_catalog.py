"""What the EventBridge operation groups share: the router, bus and rule look-ups, writes.

:class:`EventsCatalog` gives the operations of :mod:`eventyard.server.api.buses`,
:mod:`eventyard.server.api.rules`, :mod:`eventyard.server.api.targets` and
:mod:`eventyard.server.api.tags` their one way to the store's catalog, in the caller's
account (:class:`~eventyard.server.accounts.AccountScope`): how a request names a bus
(:class:`BusRef`, by name or ARN) or a rule, the look-ups that answer AWS's
``ResourceNotFound`` texts (another account's bus or rule answers as if it did not
exist), read-modify-write retried on a conflict, the tags every resource may carry and
the wait until the router has applied a change (:meth:`EventsCatalog.applied`).
Around it: the router's side (:class:`RouterHooks`), the paging of the List operations
and the quota error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import LimitExceeded, ResourceNotFound, ValidationError
from eventyard.server.accounts import AccountScope, parse_bus_arn
from eventyard.server.api.validation import (
    BUS_NAME_OR_ARN_PATTERN,
    NAME_PATTERN,
    Violations,
    decode_token,
    encode_token,
)
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import read_modify_write, rule_key
from eventyard.server.config import Settings
from eventyard.server.quotas import KeyedLocks
from eventyard.server.store import CatalogEntry, Store

__all__ = [
    "RETRIES",
    "BusRef",
    "EventsCatalog",
    "Handler",
    "RouterHooks",
    "bus_missing",
    "check_own_dlq",
    "one_page",
    "over_quota",
    "pick",
    "rule_missing",
]

RETRIES = 8
_PAGE = 100

_T = TypeVar("_T")

#: an operation: its request parameters and the caller's account, to the response body
Handler = Callable[[dict[str, Any], AccountScope], Awaitable[dict[str, Any]]]


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
class BusRef:
    """A bus as a request names it: its internal name (None when the request named
    another account's bus by ARN: for this caller it does not exist) and its name."""

    key: str | None
    name: str


def rule_missing(rule: str, bus: str) -> ResourceNotFound:
    return ResourceNotFound(f"Rule {rule} does not exist on EventBus {bus}.")


def bus_missing(bus: str) -> ResourceNotFound:
    return ResourceNotFound(f"Event bus {bus} does not exist.")


def pick(doc: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: doc[k] for k in keys if doc.get(k) is not None}


def one_page(
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


def over_quota(what: str) -> LimitExceeded:
    """AWS's quota error, naming the quota (settable, see docs/configuration.md)."""
    return LimitExceeded(
        f"The requested resource exceeds the maximum number allowed ({what}; "
        "eventyard's quota, settable)."
    )


def check_own_dlq(scope: AccountScope, dlq: Mapping[str, Any] | None, label: str) -> None:
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


class EventsCatalog:
    """The catalog as the EventBridge operations read and change it, in one account.

    Args:
        store: the durable store; only its catalog is used here.
        settings: home account id, region, quotas and the pattern length limit.
        router: told about every committed change; runs PutEvents.
    """

    def __init__(self, store: Store, settings: Settings, router: RouterHooks) -> None:
        self.store = store
        self.settings = settings
        self.router = router
        self.quota_locks = KeyedLocks()

    async def applied(self) -> None:
        """Wait until the router applies the catalog changes committed so far (this
        call's included): the router follows the catalog's change feed, which is also
        how changes made by other processes reach it."""
        await self.router.sync_catalog()

    @staticmethod
    def bus_ref(scope: AccountScope, value: str | None) -> BusRef:
        """The bus an ``EventBusName`` value (a name or an ARN) names, in ``scope``."""
        if value is None:
            return BusRef(scope.default_bus, DEFAULT_BUS)
        arn = parse_bus_arn(value)
        return BusRef(scope.bus_key(value), arn.name if arn is not None else value)

    async def bus(self, bus: BusRef) -> CatalogEntry:
        entry = await self.store.catalog_get("bus", bus.key) if bus.key is not None else None
        if entry is None:
            raise bus_missing(bus.name)
        return entry

    @staticmethod
    def rule_key(bus: BusRef, rule: str) -> str:
        """The catalog key of ``rule`` on ``bus``.

        Raises:
            ResourceNotFound: the bus is another account's.
        """
        if bus.key is None:
            raise rule_missing(rule, bus.name)
        return rule_key(bus.key, rule)

    async def rule(self, bus: BusRef, rule: str) -> CatalogEntry:
        entry = await self.store.catalog_get("rule", self.rule_key(bus, rule))
        if entry is None:
            raise rule_missing(rule, bus.name)
        return entry

    async def update(
        self,
        kind: str,
        key: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        missing: Callable[[], Exception],
    ) -> dict[str, Any]:
        """Read-modify-write one document, retrying when another writer got there first."""
        return await read_modify_write(self.store, kind, key, change, missing, retries=RETRIES)

    def rule_params(
        self, v: Violations, scope: AccountScope, name_key: str = "Name"
    ) -> tuple[BusRef, str]:
        """Validate and read the rule name and bus of a rule operation (``v`` is checked)."""
        path = "name" if name_key == "Name" else "rule"
        rule = v.string(name_key, path, required=True, min_len=1, max_len=64, pattern=NAME_PATTERN)
        bus = self.bus_param(v, scope)
        v.check()
        assert rule is not None
        return bus, rule

    def bus_param(
        self,
        v: Violations,
        scope: AccountScope,
        key: str = "EventBusName",
        path: str = "eventBusName",
    ) -> BusRef:
        value = v.string(key, path, min_len=1, max_len=1600, pattern=BUS_NAME_OR_ARN_PATTERN)
        return self.bus_ref(scope, value)

    async def replace_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        if tags:
            await self.store.catalog_put("tags", arn, {"Tags": tags})
        else:
            await self.store.catalog_delete("tags", arn)

    def check_tag_count(self, count: int) -> None:
        if count > self.settings.max_tags:
            raise over_quota(f"{self.settings.max_tags} tags on one resource")
