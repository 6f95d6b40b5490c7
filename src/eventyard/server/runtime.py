"""The running server's components and their lifecycle.

:class:`Runtime` holds what one server process runs: its settings, its store, the router
(with the delivery engine inside it) and the AWS-protocol services that the HTTP layer
dispatches to. :meth:`Runtime.start` opens and wires them in order and creates the demo
resources when asked; :meth:`Runtime.stop` closes them in the reverse order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from eventyard.errors import ResourceAlreadyExists
from eventyard.server.accounts import AccountLookup, Organizations
from eventyard.server.api.aws import EventsApi
from eventyard.server.api.protocol import Operations
from eventyard.server.api.sqs import QueuesApi
from eventyard.server.config import Settings
from eventyard.server.router import Router
from eventyard.server.store import Store

__all__ = ["DEMO_BUS", "DEMO_QUEUE", "DEMO_RULE", "Runtime"]

DEMO_BUS = "demo"
DEMO_RULE = "demo-all"
DEMO_QUEUE = "demo-queue"

log = structlog.get_logger("eventyard.server")


@dataclass
class Runtime:
    """The running components; ``ready`` is true once the store is open and deliveries run.

    Attributes:
        settings: the server's settings.
        store: the store every component shares.
        services: the AWS-protocol services by ``X-Amz-Target`` prefix.
        ready: what ``/readyz`` reports.
        router: the router, once started.
        closers: what :meth:`stop` awaits, in reverse order.
        on_shutdown: called as soon as shutdown begins (ends tails and long polls).
        account_lookup: how to look an account's record up (``Keyring.get_account``),
            for the organization ``aws:PrincipalOrgID`` conditions compare; None: only
            the home account has one, ``settings.org_id``.
    """

    settings: Settings
    store: Store
    services: dict[str, Operations] = field(default_factory=dict)
    ready: bool = False
    router: Router | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    account_lookup: AccountLookup | None = None

    async def start(self) -> None:
        """Open the store, start the router and the services, then report ready."""
        await self.store.open()
        organizations = Organizations(self.settings, self.account_lookup)
        router = Router(self.settings, self.store, org_of=organizations.org_of)
        await router.start()
        self.router = router
        self.closers.append(router.stop)
        self.on_shutdown.append(router.signals.close)
        self.services["AWSEvents"] = EventsApi(self.store, self.settings, router)
        self.services["AmazonSQS"] = QueuesApi(self.store, self.settings, router)
        if self.settings.demo:
            await self._create_demo()
        self.ready = True

    async def stop(self) -> None:
        """Stop every component in the reverse order of start, then close the store."""
        self.ready = False
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                log.exception("shutdown step failed")
        await self.store.close()

    async def _create_demo(self) -> None:
        """A bus ``demo`` whose rule ``demo-all`` copies every event to queue ``demo-queue``."""
        events, queues = self.services["AWSEvents"], self.services["AmazonSQS"]
        region, account = self.settings.region, self.settings.account_id
        queue_arn = f"arn:aws:sqs:{region}:{account}:{DEMO_QUEUE}"
        await queues.call("CreateQueue", {"QueueName": DEMO_QUEUE})
        with contextlib.suppress(ResourceAlreadyExists):
            await events.call("CreateEventBus", {"Name": DEMO_BUS})
        await events.call(
            "PutRule",
            {
                "Name": DEMO_RULE,
                "EventBusName": DEMO_BUS,
                "EventPattern": '{"source": [{"prefix": ""}]}',
                "Description": f"Every event on the {DEMO_BUS} bus goes to {DEMO_QUEUE}.",
            },
        )
        await events.call(
            "PutTargets",
            {
                "Rule": DEMO_RULE,
                "EventBusName": DEMO_BUS,
                "Targets": [{"Id": DEMO_QUEUE, "Arn": queue_arn}],
            },
        )
