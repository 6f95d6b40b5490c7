"""The router: ingest → append → match → enqueue. The heart of eventyard, kept small.

``put_events`` validates a PutEvents request, builds each entry's envelope, matches it
against its bus's compiled rules, renders each matching target's input, and writes the
events, their delivery records and nothing else in ONE store transaction. Only then is
the producer answered, and only then are the records handed to the delivery engine, so
an acknowledged event always has every match on disk.

Matching reads the in-memory view of the catalog (one
:class:`~eventyard.patterns.Matcher` per bus, each target's compiled input and delivery
settings), the router's :class:`~eventyard.server.routing.RoutingTable`. The router keeps
it current through the catalog's change feed (:class:`~eventyard.server.feed.CatalogFollower`),
so changes made by any process sharing the store apply here: at once when the store
tells of them (the router is a :class:`~eventyard.server.store.StoreListener`), within
``catalog_resync_interval`` seconds when a notification is lost. The control plane calls
:meth:`Router.sync_catalog` after each committed change, so the change takes effect for
the next event before the call that made it returns.

The store's notifications also wake long polls: ``queues_ready`` notifies
:attr:`Router.signals` for every write that put messages on a queue. Each event the
router commits is offered to the live taps of its bus (:mod:`eventyard.server.taps`).

A rule with a ``ScheduleExpression`` also fires on its own: the scheduler
(:mod:`eventyard.server.schedules.ticker`) asks :meth:`Router.fire_scheduled` for each
tick, which writes AWS's ``Scheduled Event`` for that rule's targets only (it is matched
against no rule) together with the scheduler's claim on the tick, in one transaction.

Buses, rules, targets and queues are known here by their internal names, which carry
their account (:mod:`eventyard.server.accounts`). An event put on a bus of another
account (PutEvents naming its ARN, or a rule's bus target) gets there only when that
bus's resource policy allows the sender's account (:mod:`eventyard.server.auth.policy`);
the routing table keeps each bus's policy, parsed, for that.

**Archives** are matched like rules (:mod:`eventyard.server.archiving`): each event's
archives go to the store with the event, in the same transaction
(:attr:`~eventyard.server.store.NewEvent.archives`), keyed by the event's own ``time``.
:meth:`Router.replay` puts archived events back on their bus for a replay
(:mod:`eventyard.server.replay`): with ``replay-name`` in the envelope, to every rule of
the bus or only to chosen ones, and never into an archive again.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
from prometheus_client import Counter

from eventyard.envelope import (
    EntryError,
    Envelope,
    bus_name_from,
    check_request,
    format_time,
    make_envelope,
    new_event_id,
)
from eventyard.errors import ConcurrentModification, DeliveryError
from eventyard.server.accounts import (
    Accounts,
    AccountScope,
    Organizations,
    OrgLookup,
    internal_name,
    parse_bus_arn,
)
from eventyard.server.archiving import event_time, is_archive_match, with_replay_name
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.auth.policy import PolicyRequest, refusal
from eventyard.server.backpressure import Backpressure
from eventyard.server.catalog import ARCHIVE, BUS, QUEUE, RULE, BusDoc
from eventyard.server.config import Settings
from eventyard.server.delivery.destinations import ApiDestinations
from eventyard.server.delivery.engine import DeliveryEngine
from eventyard.server.feed import CatalogFollower
from eventyard.server.journal import TraceJournal
from eventyard.server.routing import CompiledRule, RoutingTable, ScheduledRule
from eventyard.server.signals import QueueSignals
from eventyard.server.store import (
    CatalogChange,
    CatalogClaim,
    CatalogEntry,
    NewDelivery,
    NewEvent,
    NewMessage,
    Store,
)
from eventyard.server.system_events import SOURCE as SYSTEM_SOURCE
from eventyard.server.system_events import SYSTEM_BUS, SystemEvents
from eventyard.server.taps import Taps

__all__ = [
    "MATCHED_RULES",
    "SCHEDULED_DETAIL_TYPE",
    "SCHEDULED_SOURCE",
    "Router",
]

EVENTS = Counter("eventyard_events_total", "PutEvents entries by outcome", ["outcome"])
MATCHES = Counter("eventyard_matches_total", "(event, target) matches enqueued")
UNMATCHED = Counter(
    "eventyard_events_unmatched_total", "accepted events that matched no rule, by bus", ["bus"]
)
SCHEDULED = Counter("eventyard_scheduled_events_total", "scheduled events fired by scheduled rules")
RENDER_FAILURES = Counter(
    "eventyard_input_failures_total",
    "matches whose target input could not be rendered (dead-lettered, or dropped without a DLQ)",
)

# The key of put_events' result that holds how many rules each entry matched (None for
# a rejected entry, and for one put on another account's bus, whose rules are not the
# caller's to count); the HTTP layer moves it to a response header, off the AWS body.
MATCHED_RULES = "eventyard:MatchedRules"
#: the ``source`` and ``detail-type`` of the events of scheduled rules, as AWS's
SCHEDULED_SOURCE = "aws.events"
SCHEDULED_DETAIL_TYPE = "Scheduled Event"
# the label of events put to a bus that does not exist (bus names cannot contain spaces),
# so that made-up bus names do not grow the metric's label set
_NO_SUCH_BUS = "(no such bus)"
_ACCOUNT_ID = re.compile(r"[0-9]{12}")


class Router:
    """Routes events from producers to the delivery engine.

    Args:
        settings: the server settings (account, region, limits, retry timing).
        store: the durable store; the router owns its lifecycle only through ``start``.
        org_of: the organization of an account, for ``aws:PrincipalOrgID`` conditions
            (default: :class:`~eventyard.server.accounts.Organizations` without account
            records: only the home account's ``settings.org_id``).
        master: the master key that seals webhook signing secrets and the connections'
            secrets of API destinations (the keyring's); by default a new random one,
            which only this process knows (tests).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        org_of: OrgLookup | None = None,
        master: MasterKey | None = None,
    ) -> None:
        self.settings = settings
        self.master = master or MasterKey.generate()
        self.accounts = Accounts(settings)
        self.org_of = org_of or Organizations(settings).org_of
        self.signals = QueueSignals()
        self.store = store
        #: follows the catalog's change feed; other components may subscribe to it
        self.feed = CatalogFollower(store, settings.catalog_resync_interval)
        #: the in-memory view of the catalog that matching and delivery read
        self.routing = RoutingTable(settings, self.accounts, self.master)
        self.feed.subscribe(self.routing.apply)
        #: the live taps of ``eventyard tail``, by bus
        self.taps = Taps(store)
        self.backpressure = Backpressure(self.store, settings)
        #: what happens to events after ingest (attempts, dead letters, queue receives)
        self.journal = TraceJournal(self.store, enabled=settings.trace)
        self.system_events = SystemEvents(
            self, self.store, settings, exists=lambda key: self.routing.resolve(key) is not None
        )
        self.engine = DeliveryEngine(
            self.store,
            self.routing.resolve,
            forward_to_bus=self.forward_to_bus,
            queue_name_for_arn=self.routing.queue_name_for_arn,
            settings=settings,
            observer=self.system_events,
            api_destinations=ApiDestinations(self.store, self.accounts, self.master),
            journal=self.journal,
        )

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen to the store, load the catalog into memory and follow its feed, then
        start delivering pending records."""
        self.store.listen(self)
        await self.feed.start(self._load_catalog)
        await self._ensure_system_bus(self.settings.account_id)
        self.journal.start()
        await self.engine.start()
        self.system_events.start()

    async def stop(self) -> None:
        """Stop delivering; unfinished deliveries stay pending in the store."""
        await self.system_events.stop()
        await self.feed.stop()
        await self.engine.stop(self.settings.shutdown_timeout)
        await self.journal.stop()

    async def _load_catalog(self) -> list[CatalogEntry]:
        """What the router holds of the catalog: buses, queues and rules."""
        return [
            *await self.store.catalog_list(BUS),
            *await self.store.catalog_list(QUEUE),
            *await self.store.catalog_list(RULE),
            *await self.store.catalog_list(ARCHIVE),
        ]

    # -- eventyard's own events ----------------------------------------------------------
    def resource_changed(
        self, account: str, resource_type: str, name: str, arn: str, change: str, **more: Any
    ) -> None:
        """Tell a resource's change on the account's system bus (never raises)."""
        self.system_events.resource_changed(account, resource_type, name, arn, change, **more)

    async def _ensure_system_bus(self, account: str) -> str:
        """The internal name of ``account``'s system bus, created if missing."""
        key = internal_name(account, SYSTEM_BUS, self.settings.account_id)
        if self.routing.knows_bus(key):
            return key
        now = time.time()
        arn = f"arn:aws:events:{self.settings.region}:{account}:event-bus/{SYSTEM_BUS}"
        doc: BusDoc = {
            "Name": SYSTEM_BUS,
            "Arn": arn,
            "Description": "eventyard's own events about this account's resources.",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        with contextlib.suppress(ConcurrentModification):
            await self.store.catalog_put(BUS, key, dict(doc), expect_revision=0)
        await self.sync_catalog()
        return key

    async def emit_system(
        self,
        account: str,
        detail_type: str,
        resources: list[str],
        detail: dict[str, Any],
        claim: CatalogClaim | None = None,
    ) -> None:
        """Put one of eventyard's own events on ``account``'s system bus, matched against
        its rules like any event (``claim``, if any, in the same transaction). An
        account other than the home account has a system bus only once it creates one:
        until then its events are not kept (nothing could match them).

        Raises:
            ConcurrentModification: the claim's expectation failed; nothing was written.
            StoreError: the store failed; nothing was written.
        """
        bus = internal_name(account, SYSTEM_BUS, self.settings.account_id)
        if not self.routing.knows_bus(bus):
            if account != self.settings.account_id:
                return  # no system bus in that account: no rule could receive the event
            bus = await self._ensure_system_bus(account)
        now = time.time()
        event: dict[str, Any] = {
            "version": "0",
            "id": new_event_id(now),
            "detail-type": detail_type,
            "source": SYSTEM_SOURCE,
            "account": account,
            "time": format_time(now),
            "region": self.settings.region,
            "resources": resources,
            "detail": detail,
        }
        env = Envelope(event["id"], bus, now, event, orjson.dumps(event))
        await self._ingest([env], forwarded=False, claim=claim)

    # -- what the store tells (any process's changes) ---------------------------------
    def catalog_changed(self, change: CatalogChange) -> None:
        """A catalog change was committed: apply it, unless a newer one was."""
        self.feed.offer(change)

    def deliveries_ready(self, targets: Collection[str]) -> None:
        """Delivery records of ``targets`` were created or became due (by any process):
        the engine claims what it has room for."""
        self.engine.deliveries_ready(targets)

    def queues_ready(self, queues: Collection[str]) -> None:
        """Messages were put on ``queues``: wake their long polls."""
        self.signals.notify(queues)

    # -- catalog changes ---------------------------------------------------------------
    async def sync_catalog(self) -> None:
        """Apply every catalog change committed before this call (read-your-writes for
        the control plane, whichever store holds the catalog).

        Raises:
            StoreError: the feed could not be read.
        """
        await self.feed.sync()

    # -- scheduled rules and Scheduler schedules ---------------------------------------
    async def fire_scheduled(
        self, rule: ScheduledRule, tick: float, claim: CatalogClaim
    ) -> Envelope:
        """Deliver rule ``rule``'s scheduled event of ``tick`` to its targets, and only
        to them, with ``claim`` written in the same transaction.

        The event is AWS's: ``source`` ``aws.events``, ``detail-type`` ``Scheduled
        Event``, the rule's ARN as its only resource, ``{}`` as detail, its ``time`` the
        tick's and its ``account`` the rule's. It is matched against no other rule.

        Raises:
            ConcurrentModification: the claim's expectation failed (another process
                fired the tick, or the state changed); nothing was written.
            StoreError: the store failed; nothing was written.
        """
        compiled = self.routing.rule(rule.key)
        now = time.time()
        event: dict[str, Any] = {
            "version": "0",
            "id": new_event_id(now),
            "detail-type": SCHEDULED_DETAIL_TYPE,
            "source": SCHEDULED_SOURCE,
            "account": rule.account,
            "time": format_time(tick),
            "region": self.settings.region,
            "resources": [rule.arn],
            "detail": {},
        }
        bus = compiled.bus if compiled is not None else rule.key.rpartition("/")[0]
        env = Envelope(event["id"], bus, now, event, orjson.dumps(event))
        deliveries, dead_letters = self._render(
            env, [compiled] if compiled is not None else [], forwarded=False
        )
        stored = await self.store.ingest(
            [NewEvent(env.event_id, env.bus, env.ingested, env.body)],
            deliveries,
            dead_letters,
            claim=claim,
        )
        SCHEDULED.inc()
        if stored:
            MATCHES.inc(len(stored))
        return env

    async def ingest_claimed(
        self,
        events: list[NewEvent],
        deliveries: list[NewDelivery],
        claim: CatalogClaim,
        dead_letters: list[NewMessage] | None = None,
    ) -> None:
        """Store events and their deliveries with ``claim`` in one transaction, then
        deliver: what the Scheduler invoker fires each tick with. The events are matched
        against no rule.

        Raises:
            ConcurrentModification: the claim's expectation failed; nothing was written.
            StoreError: the store failed; nothing was written.
        """
        stored = await self.store.ingest(events, deliveries, dead_letters or [], claim=claim)
        if stored:
            MATCHES.inc(len(stored))

    # -- ingest --------------------------------------------------------------------------
    async def put_events(
        self, params: Mapping[str, Any], account: str | None = None
    ) -> dict[str, Any]:
        """The PutEvents operation: per-entry results, index-aligned with the request.

        Args:
            params: the request.
            account: the caller's account (None: the home account): the events'
                ``account``, and the owner of the buses named by name.
        """
        entries = check_request(params, self.settings.max_entries_size)
        # the whole request or nothing: a throttled request acknowledges no entry
        self.backpressure.check()
        now = time.time()
        now_text = format_time(now)
        scope = self.accounts.scope(account)
        account, region = scope.account, self.settings.region
        results: list[dict[str, str]] = []
        accepted: list[Envelope] = []
        positions: list[int] = []
        org: list[str | None] = []  # the caller's organization, looked up once if needed
        for entry in entries:
            bus, foreign = _entry_bus(scope, entry)
            built = make_envelope(
                entry, account=account, region=region, now=now, now_text=now_text, bus=bus
            )
            if not isinstance(built, EntryError) and built.event.get("source") == SYSTEM_SOURCE:
                # only eventyard tells its own events: a forged one would fire alert rules
                built = EntryError(
                    "NotAuthorizedForSourceException",
                    f"Not authorized for the source {SYSTEM_SOURCE}: eventyard puts the "
                    "events of that source itself.",
                )
            if foreign is not None and not isinstance(built, EntryError):
                if not org:
                    org.append(await self.org_of(account))
                built = self._admit(built, foreign, account, org[0]) or built
            if isinstance(built, EntryError):
                results.append({"ErrorCode": built.code, "ErrorMessage": built.message})
            else:
                # another account's rules are its own business: their count is not told
                positions.append(len(results) if foreign is None else -1)
                results.append({"EventId": built.event_id})
                accepted.append(built)
        counts = await self._ingest(accepted, forwarded=False) if accepted else []
        matched: list[int | None] = [None] * len(entries)
        for position, count in zip(positions, counts, strict=True):
            if position >= 0:
                matched[position] = count
        failed = len(entries) - len(accepted)
        EVENTS.labels("accepted").inc(len(accepted))
        if failed:
            EVENTS.labels("rejected").inc(failed)
        return {"FailedEntryCount": failed, "Entries": results, MATCHED_RULES: matched}

    async def _ingest(
        self, envelopes: list[Envelope], *, forwarded: bool, claim: CatalogClaim | None = None
    ) -> list[int]:
        """Store the events and their deliveries; returns how many rules each matched."""
        deliveries: list[NewDelivery] = []
        dead_letters: list[NewMessage] = []
        counts: list[int] = []
        events: list[NewEvent] = []
        routing = self.routing
        archives = routing.archives
        for env in envelopes:
            matcher = routing.matcher(env.bus)
            rule_keys = matcher.match(env.event) if matcher is not None else []
            held = archives.of(env.bus) if archives else None
            if held is None:
                events.append(NewEvent(env.event_id, env.bus, env.ingested, env.body))
            else:
                rule_keys, archived = held.split(rule_keys)
                events.append(
                    NewEvent(
                        env.event_id,
                        env.bus,
                        env.ingested,
                        env.body,
                        archived,
                        event_time(env.event, env.ingested) if archived else 0.0,
                    )
                )
            counts.append(len(rule_keys))
            if not rule_keys:
                # eventyard's own events mostly match nothing, and that is no mistake
                if not env.bus.endswith(SYSTEM_BUS) or env.event.get("source") != SYSTEM_SOURCE:
                    UNMATCHED.labels(env.bus if routing.knows_bus(env.bus) else _NO_SUCH_BUS).inc()
                continue
            more, dead = self._render(env, routing.rules(rule_keys), forwarded)
            deliveries.extend(more)
            dead_letters.extend(dead)
        stored = await self.store.ingest(events, deliveries, dead_letters, claim=claim)
        if stored:
            MATCHES.inc(len(stored))
        self.taps.offer(envelopes)
        return counts

    async def replay(
        self,
        bus: str,
        bodies: Sequence[bytes],
        replay_name: str,
        rules: Collection[str] | None,
        claim: CatalogClaim,
    ) -> int:
        """Put archived events back on ``bus`` for replay ``replay_name``, with ``claim``
        (the replay's progress) in the same transaction; returns the deliveries made.

        Each event keeps its id and its fields, and gains ``replay-name`` right after
        ``region`` (AWS's place). It is matched against the bus's rules like any event
        (a rule that wants no replays says ``{"replay-name": [{"exists": false}]}``),
        but delivered only to ``rules`` (rule keys) when given, and kept by no archive.

        Raises:
            ConcurrentModification: the claim's expectation failed (the replay was
                cancelled or taken over); nothing was written.
            StoreError: the store failed; nothing was written.
        """
        now = time.time()
        matcher = self.routing.matcher(bus)
        deliveries: list[NewDelivery] = []
        dead_letters: list[NewMessage] = []
        envelopes: list[Envelope] = []
        for body in bodies:
            event = with_replay_name(orjson.loads(body), replay_name)
            env = Envelope(str(event.get("id")), bus, now, event, orjson.dumps(event))
            envelopes.append(env)
            if matcher is None:
                continue
            keys = [
                k
                for k in matcher.match(event)
                if not is_archive_match(k) and (rules is None or k in rules)
            ]
            if keys:
                more, dead = self._render(env, self.routing.rules(keys), False)
                deliveries.extend(more)
                dead_letters.extend(dead)
        stored = await self.store.ingest(
            [NewEvent(e.event_id, e.bus, e.ingested, e.body) for e in envelopes],
            deliveries,
            dead_letters,
            claim=claim,
        )
        if stored:
            MATCHES.inc(len(stored))
        self.taps.offer(envelopes)
        return len(stored)

    def _render(
        self, env: Envelope, rules: list[CompiledRule], forwarded: bool
    ) -> tuple[list[NewDelivery], list[NewMessage]]:
        """The delivery records of ``env`` for the targets of ``rules``, and the dead
        letters of the matches whose input cannot be rendered."""
        deliveries: list[NewDelivery] = []
        dead_letters: list[NewMessage] = []
        ingestion_time = ""
        for rule in rules:
            for target in rule.targets:
                if forwarded and target.is_bus:
                    continue  # events that came from another bus make one hop only
                if not ingestion_time:
                    ingestion_time = _iso_millis(env.ingested)
                try:
                    payload = target.renderer.render(
                        env.event,
                        env.body,
                        rule_arn=rule.arn,
                        rule_name=rule.name,
                        ingestion_time=ingestion_time,
                        limit=target.max_input,
                    )
                except DeliveryError as exc:
                    # It can never succeed: no delivery record, no retry; its dead
                    # letter is stored with the event, in the same transaction.
                    RENDER_FAILURES.inc()
                    dead = self.engine.dead_letter_unrenderable(
                        target.spec, env.event_id, env.body, exc, env.ingested
                    )
                    if dead is not None:
                        dead_letters.append(dead)
                    continue
                # due at ingestion: engines claim each target's backlog in due order,
                # so new records queue behind retries that fell due earlier
                deliveries.append(
                    NewDelivery(
                        target.spec.key, env.event_id, payload, env.body, env.ingested, env.ingested
                    )
                )
        return deliveries, dead_letters

    def _admit(
        self, env: Envelope, bus_account: str, caller: str, org_id: str | None
    ) -> EntryError | None:
        """Whether the policy of another account's bus lets the caller put ``env`` on it.

        Returns None when it does, else the entry's error, with AWS's code.
        """
        bus_arn = self.accounts.bus_arn(env.bus)
        request = PolicyRequest(
            caller_account=caller,
            bus_arn=bus_arn,
            bus_account=bus_account,
            org_id=org_id,
            source=env.event["source"],
            detail_type=env.event["detail-type"],
        )
        refused = refusal(self.routing.policy(env.bus), request)
        return None if refused is None else EntryError(refused.code, refused.message)

    async def forward_to_bus(self, arn: str, payload: bytes, rule_arn: str, sender: str) -> None:
        """Put an event delivered to an event-bus target on that bus (one hop only).

        The event keeps its id, account, region, time, resources and detail, as AWS keeps
        them when forwarding to another account's bus. A bus of another account than
        the rule's takes the event only when its resource policy allows the rule's
        account (with ``aws:SourceArn`` the rule, ``events:source`` and
        ``events:detail-type`` the event's).

        ``sender`` is the rule's account, read from the rule's internal key (never from
        its ARN, whose parsing could fail and must not default to anyone); when it is
        not an account id, nothing is delivered (``NO_PERMISSIONS``).

        Raises:
            DeliveryError: the payload is not an event (``INVALID_INPUT``), the bus does
                not exist (``NO_RESOURCE``), or its policy refuses (``NO_PERMISSIONS``);
                none is retryable.
        """
        why = self.backpressure.reason()
        if why is not None:
            # retried later like a throttled target: the engine must not grow the backlog
            raise DeliveryError(
                f"Event bus {arn} is throttled: {why}.",
                retryable=True,
                error_code="THROTTLING",
            )
        parsed = parse_bus_arn(arn)
        name = self.accounts.bus_for_arn(arn) if parsed is not None else None
        if parsed is None or name is None or bus_name_from(parsed.name) is None:
            raise DeliveryError(
                f"Event bus {arn} does not exist.", retryable=False, error_code="NO_RESOURCE"
            )
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not all(
            isinstance(event.get(k), str) for k in ("id", "source", "detail-type")
        ):
            raise DeliveryError(
                "An event-bus target needs a whole event as its input.",
                retryable=False,
                error_code="INVALID_INPUT",
            )
        if not _ACCOUNT_ID.fullmatch(sender):
            raise DeliveryError(
                f"The account of rule {rule_arn} is not known: it may not put events on {arn}.",
                retryable=False,
                error_code="NO_PERMISSIONS",
            )
        if sender != parsed.account:
            request = PolicyRequest(
                caller_account=sender,
                bus_arn=self.accounts.bus_arn(name),
                bus_account=parsed.account,
                org_id=await self.org_of(sender),
                source=event["source"],
                detail_type=event["detail-type"],
                source_arn=rule_arn,
            )
            refused = refusal(self.routing.policy(name), request)
            if refused is not None:
                raise DeliveryError(
                    f"{refused.code}: {refused.message}",
                    retryable=False,
                    error_code="NO_PERMISSIONS",
                )
        if not self.routing.knows_bus(name):
            raise DeliveryError(
                f"Event bus {arn} does not exist.", retryable=False, error_code="NO_RESOURCE"
            )
        ingested = time.time()
        event.setdefault("time", format_time(ingested))
        env = Envelope(str(event["id"]), name, ingested, event, payload)
        await self._ingest([env], forwarded=True)


def _entry_bus(scope: AccountScope, entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The internal name of an entry's bus and, when another account owns it, that account.

    ``(None, None)`` when ``EventBusName`` is malformed: :func:`make_envelope` says so,
    in its turn among the entry's checks.
    """
    value = entry.get("EventBusName")
    if value is None:
        return scope.default_bus, None
    if not isinstance(value, str):
        return None, None
    name = bus_name_from(value)
    if name is None:
        return None, None
    arn = parse_bus_arn(value) if value.startswith("arn:") else None
    if arn is None or arn.account == scope.account:
        return scope.key(name), None
    return internal_name(arn.account, name, scope.home), arn.account


def _iso_millis(epoch: float) -> str:
    seconds = format_time(epoch)[:-1]
    return f"{seconds}.{int(epoch * 1000) % 1000:03d}Z"
