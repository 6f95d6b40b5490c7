"""The EventBridge control plane: the ``AWSEvents.*`` operations, dispatched by name.

:class:`EventsApi` answers the EventBridge operations of the AWS JSON 1.1 protocol with
AWS's shapes, ARNs and error texts, so boto3 and the AWS CLI work unmodified. It hands
each operation to the group that serves it: buses and their resource policies
(:mod:`eventyard.server.api.buses`), rules and TestEventPattern
(:mod:`eventyard.server.api.rules`), targets and their signing secrets
(:mod:`eventyard.server.api.targets`), tags (:mod:`eventyard.server.api.tags`),
connections and API destinations (:mod:`eventyard.server.api.connections`), archives
and replays (:mod:`eventyard.server.api.archives`). They keep their state in the
store's catalog, where the router reads it back at start-up (the documents are typed in
:mod:`eventyard.server.catalog`). Every account has its ``default`` bus; it is created
at the account's first call with a creation time that is then kept.

Every operation acts in the caller's account (:class:`~eventyard.server.accounts.AccountScope`):
internal names carry the account, and a bus, rule or tag of another account answers as
if it did not exist, even when named by its ARN. Documents hold what the account sees
(``Name``, ``EventBusName``, ARNs with its id).

Read-modify-write goes through catalog revisions, retried on a conflict, so concurrent
PutTargets (or PutPermission) calls never lose each other's targets (or statements).
The router follows the catalog's change feed (:mod:`eventyard.server.feed`), which
carries every process's changes; after each committed change an operation waits until
the router has applied it (:meth:`~eventyard.server.api.events_catalog.RouterHooks.sync_catalog`),
so a change takes effect for the next event, and the call that made it returns only then.
PutEvents itself belongs to the router and is passed straight through.
"""

from __future__ import annotations

import time
from typing import Any

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import ConcurrentModification, UnknownOperation
from eventyard.server.accounts import Accounts, AccountScope
from eventyard.server.api.archives import ArchivesApi
from eventyard.server.api.buses import BusesApi
from eventyard.server.api.connections import ConnectionsApi
from eventyard.server.api.events_catalog import EventsCatalog, Handler, RouterHooks
from eventyard.server.api.rules import RulesApi
from eventyard.server.api.tags import TagsApi
from eventyard.server.api.targets import TargetsApi
from eventyard.server.auth.keys import Principal
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import BusDoc
from eventyard.server.config import Settings
from eventyard.server.store import Store

__all__ = ["EventsApi"]


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


class EventsApi:
    """The EventBridge operations (``X-Amz-Target: AWSEvents.<Op>``), in the caller's account.

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
        self._default_ready: set[str] = set()
        self.catalog = EventsCatalog(store, settings, router)
        self.buses = BusesApi(self.catalog)
        self.rules = RulesApi(self.catalog)
        self.targets = TargetsApi(self.catalog)
        self.tags = TagsApi(self.catalog)
        self._ops: dict[str, Handler] = {"PutEvents": self.put_events}
        self._ops.update(self.rules.operations)
        self._ops.update(self.buses.operations)
        self._ops.update(self.targets.operations)
        self._ops.update(self.tags.operations)
        self.connections = ConnectionsApi(store, settings, master or MasterKey.generate())
        self._ops.update(self.connections.operations)
        self.archives = ArchivesApi(store, router, self.rules.check_pattern)
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
                await self.catalog.applied()
        self._default_ready.add(scope.account)

    async def put_events(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """PutEvents: handed to the router, which validates, stores and matches the entries."""
        return await self.router.put_events(params, scope.account)
