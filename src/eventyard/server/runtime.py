"""The running server's components and their lifecycle.

:class:`Runtime` holds what one server process runs: its settings, its store, the
keyring and the authenticator, the router (with the delivery engine inside it), the
scheduler that fires scheduled rules (:mod:`eventyard.server.schedules.ticker`), the
AWS-protocol services that the HTTP layer dispatches to and the admin socket.
:meth:`Runtime.start` opens and wires them in order and creates the demo resources when
asked; :meth:`Runtime.stop` closes them in the reverse order.

Start-up refuses a server that anyone on a network could use without credentials: a
non-loopback address with no access key needs ``insecure_no_auth``, and then a loud
warning is logged. A master key that does not open the stored secrets fails start-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from eventyard.errors import ConfigurationError, ResourceAlreadyExists
from eventyard.server.accounts import AccountLookup, Organizations
from eventyard.server.admin import AdminServer, admin_socket_path, open_keyring
from eventyard.server.api.authn import Authenticator, is_loopback
from eventyard.server.api.aws import EventsApi
from eventyard.server.api.protocol import Operations
from eventyard.server.api.scheduler import SchedulerApi
from eventyard.server.api.sqs import QueuesApi
from eventyard.server.auth.keys import Keyring
from eventyard.server.config import Settings
from eventyard.server.delivery.clock import SYSTEM_CLOCK, Clock, ScaledClock
from eventyard.server.replay import Replayer
from eventyard.server.retention import Retention
from eventyard.server.router import Router
from eventyard.server.schedules.invoker import Invoker
from eventyard.server.schedules.ticker import Ticker
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
        authenticator: the Host check and authentication of every request.
        keyring: the accounts and access keys, once the store is open.
        schedule_clock: the scheduler's clock (None: the wall clock, or a
            :class:`~eventyard.server.delivery.clock.ScaledClock` when
            ``schedule_time_scale`` is not 1); tests pass a manual one.
        ticker: the scheduler that fires scheduled rules, once started.
        invoker: the invoker that fires EventBridge Scheduler schedules, once started.
        scheduler: the EventBridge Scheduler API (REST-JSON, :mod:`.api.rest`).
        replayer: runs the replays this process claims, once started.
        retention: expires the log, archives and trace journal, once started.
        account_lookup: how to look an account's record up, for the organization
            ``aws:PrincipalOrgID`` conditions compare; None: the keyring's
            ``get_account`` (the home account's organization is ``settings.org_id``).
    """

    settings: Settings
    store: Store
    services: dict[str, Operations] = field(default_factory=dict)
    ready: bool = False
    router: Router | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    authenticator: Authenticator = field(init=False)
    keyring: Keyring | None = None
    account_lookup: AccountLookup | None = None
    schedule_clock: Clock | None = None
    ticker: Ticker | None = None
    invoker: Invoker | None = None
    scheduler: SchedulerApi | None = None
    replayer: Replayer | None = None
    retention: Retention | None = None

    def __post_init__(self) -> None:
        self.authenticator = Authenticator(self.settings)

    async def start(self) -> None:
        """Open the store and the keyring, start the router, the services and the admin
        socket, then report ready.

        Raises:
            ConfigurationError: the master key does not open the stored secrets, or the
                server would listen on a network with no access key and without
                ``insecure_no_auth``.
        """
        await self.store.open()
        keyring = await self._open_keyring()
        lookup = self.account_lookup or keyring.get_account
        organizations = Organizations(self.settings, lookup)
        router = Router(
            self.settings, self.store, org_of=organizations.org_of, master=keyring.master
        )
        # keys created or deleted by another process reach the keyring's cache and count
        router.feed.subscribe(keyring.catalog_changed)
        clock = self.schedule_clock or _schedule_clock(self.settings)
        invoker = Invoker(router, self.settings, clock=clock)
        await invoker.load()  # the schedules' targets, before deliveries start
        router.feed.subscribe(invoker.catalog_changed)  # other processes' schedule changes
        await router.start()
        self.router = router
        self.closers.append(router.stop)
        ticker = Ticker(router, clock=clock)
        await ticker.start()
        self.ticker = ticker
        self.closers.append(ticker.stop)
        await invoker.start()
        self.invoker = invoker
        self.closers.append(invoker.stop)
        replayer = Replayer(router, self.settings)
        await replayer.start()
        self.replayer = replayer
        self.closers.append(replayer.stop)
        retention = Retention(self.store, self.settings)
        await retention.start()
        self.retention = retention
        self.closers.append(retention.stop)
        self.scheduler = SchedulerApi(self.store, self.settings, invoker.schedule_changed)
        self.on_shutdown.append(router.signals.close)
        self.services["AWSEvents"] = EventsApi(
            self.store, self.settings, router, master=keyring.master
        )
        self.services["AmazonSQS"] = QueuesApi(
            self.store, self.settings, router, journal=router.journal
        )
        if self.settings.demo:
            await self._create_demo()
        assert self.keyring is not None
        admin = AdminServer(admin_socket_path(self.settings), self.keyring)
        await admin.start()
        self.closers.append(admin.stop)
        self.ready = True

    async def _open_keyring(self) -> Keyring:
        settings = self.settings
        keyring = await open_keyring(self.store, settings)
        keys = await keyring.key_count()
        if keys == 0 and not is_loopback(settings.host):
            if not settings.insecure_no_auth:
                raise ConfigurationError(
                    f"refusing to listen on {settings.host} with no access key: anyone who "
                    "reaches it could use it. Create a key first (eventyard accounts create, "
                    "then eventyard keys create --account ID, with the same --data-dir), or "
                    "pass --insecure-no-auth (EVENTYARD_INSECURE_NO_AUTH=1) to run without "
                    "authentication"
                )
            log.warning(
                "AUTHENTICATION IS OFF: listening on a network address with no access key "
                "and --insecure-no-auth; anyone who reaches this server can read, change and "
                "delete everything in it, as the home account",
                host=settings.host,
                account_id=settings.account_id,
            )
        self.keyring = keyring
        self.authenticator.keyring = keyring
        return keyring

    async def stop(self) -> None:
        """Stop every component in the reverse order of start, then close the store."""
        self.ready = False
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                log.exception("shutdown step failed")
        if self.router is not None:
            # the trace entries recorded after the router stopped (the last API requests)
            try:
                await self.router.journal.stop()
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


def _schedule_clock(settings: Settings) -> Clock:
    """The scheduler's clock: the wall clock, or a faster one for tests."""
    scale, origin = settings.schedule_time_scale, settings.schedule_time_origin
    if scale == 1:
        return SYSTEM_CLOCK
    return ScaledClock(scale, origin or None)
