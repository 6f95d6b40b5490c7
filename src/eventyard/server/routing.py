"""The routing table: the in-memory view of the catalog that matching and delivery need.

:class:`RoutingTable` holds one :class:`~eventyard.patterns.Matcher` per bus (its enabled
rules with a pattern, and its archives: :class:`~eventyard.server.archiving.ArchiveIndex`),
each rule's targets with their compiled input and delivery settings
(:class:`~eventyard.server.delivery.spec.TargetSpec`), the buses and each one's resource
policy, parsed (the router checks an event put on another account's bus against it,
:mod:`eventyard.server.auth.policy`), the queues, and the enabled rules with a schedule
(:class:`ScheduledRule`, for the scheduler). Buses, rules, targets and queues are known
here by their internal names, which carry their account (:mod:`eventyard.server.accounts`).

The router keeps it current: it follows the catalog's change feed
(:class:`~eventyard.server.feed.CatalogFollower`) and hands each change to
:meth:`RoutingTable.apply`. The targets no rule owns (an EventBridge Scheduler
schedule's) are set and removed by :meth:`RoutingTable.external_target_changed`. The
delivery engine reads a target's current settings with :meth:`RoutingTable.resolve` and
a queue target's queue with :meth:`RoutingTable.queue_name_for_arn`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from eventyard.envelope import BUS_ARN_RE, DEFAULT_BUS, bus_name_from
from eventyard.patterns import Matcher
from eventyard.server.accounts import Accounts, owner_of
from eventyard.server.archiving import ArchiveIndex
from eventyard.server.auth.keys import Principal
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import (
    ARCHIVE,
    BUS,
    QUEUE,
    RULE,
    BusDoc,
    QueueDoc,
    Rule,
    archive_doc,
    bus_doc,
    queue_doc,
    rule_doc,
)
from eventyard.server.config import Settings
from eventyard.server.delivery.signing import unseal_secrets
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import target_kind
from eventyard.server.store import CatalogChange
from eventyard.server.transform import (
    MAX_INPUT_BYTES,
    MAX_QUEUE_INPUT_BYTES,
    InputRenderer,
    compile_input,
)

__all__ = [
    "CompiledRule",
    "CompiledTarget",
    "RoutingTable",
    "ScheduleListener",
    "ScheduledRule",
]

# the router's logger, as before the view had its own module: log queries keep working
log = structlog.get_logger("eventyard.server.router")

_ACCOUNT_ID = re.compile(r"[0-9]{12}")


@dataclass(slots=True, frozen=True)
class CompiledTarget:
    """A rule's target as ingest renders it: its delivery settings, its compiled input,
    whether it is an event bus (one hop only) and the largest input it takes."""

    spec: TargetSpec
    renderer: InputRenderer
    is_bus: bool
    max_input: int


@dataclass(slots=True, frozen=True)
class CompiledRule:
    """A rule as ingest matches it: its key, bus, name, ARN and compiled targets."""

    key: str
    bus: str
    name: str
    arn: str
    targets: tuple[CompiledTarget, ...]
    matched: bool  # in its bus's matcher (enabled, with a pattern)


@dataclass(slots=True, frozen=True)
class ScheduledRule:
    """An enabled rule with a schedule, as the scheduler sees it.

    Attributes:
        key: its catalog key ``<bus>/<rule>``.
        arn: its ARN (the scheduled event's ``resources``).
        account: the account that owns it (the scheduled event's ``account``).
        expression: its ``ScheduleExpression``.
    """

    key: str
    arn: str
    account: str
    expression: str


#: called with the key of a rule whose schedule may have changed (or gone)
ScheduleListener = Callable[[str], None]


class RoutingTable:
    """The router's in-memory view of buses, rules, targets, queues and archives.

    Args:
        settings: the server settings (home account, region, retry timing of targets).
        accounts: the accounts' names and ARNs.
        master: the master key that opens the targets' sealed signing secrets.
    """

    def __init__(self, settings: Settings, accounts: Accounts, master: MasterKey) -> None:
        self.settings = settings
        self.accounts = accounts
        self.master = master
        self._buses: set[str] = {DEFAULT_BUS}
        # each bus's resource policy, parsed (None: no policy)
        self._policies: dict[str, Any] = {}
        self._matchers: dict[str, Matcher] = {}
        self._rules: dict[str, CompiledRule] = {}
        self._scheduled: dict[str, ScheduledRule] = {}
        self._schedule_listeners: list[ScheduleListener] = []
        self._targets: dict[str, TargetSpec] = {}
        self._queues: set[str] = set()
        #: the archives of each bus, matched with its rules
        self.archives = ArchiveIndex(self._bus_matcher)

    # -- what ingest reads ---------------------------------------------------------------
    def knows_bus(self, name: str) -> bool:
        """Whether a bus of that internal name is in the view: the home account's
        ``default``, and every bus the catalog holds."""
        return name in self._buses

    def matcher(self, bus: str) -> Matcher | None:
        """The matcher of bus ``bus``, None if the bus is not known or matches nothing."""
        return self._matchers.get(bus) if bus in self._buses else None

    def rule(self, key: str) -> CompiledRule | None:
        """The rule of that key, if it is enabled with a pattern or a schedule."""
        return self._rules.get(key)

    def rules(self, keys: Iterable[str]) -> list[CompiledRule]:
        """The rules of ``keys``, as a matcher of :meth:`matcher` returned them."""
        return [self._rules[k] for k in keys]

    def policy(self, bus: str) -> Any:
        """Bus ``bus``'s resource policy, parsed (None: no policy)."""
        return self._policies.get(bus)

    # -- catalog changes ---------------------------------------------------------------
    def apply(self, change: CatalogChange) -> None:
        """Apply one change of the feed to the view."""
        entry = change.entry
        if change.kind == BUS:
            self.bus_changed(change.key, None if entry is None else bus_doc(entry))
        elif change.kind == RULE:
            rule = None if entry is None else Rule.from_doc(change.key, rule_doc(entry))
            self.rule_changed(change.key, rule)
        elif change.kind == QUEUE:
            self.queue_changed(change.key, None if entry is None else queue_doc(entry))
        elif change.kind == ARCHIVE:
            archive = None if entry is None else archive_doc(entry)
            self.archives.changed(change.key, archive, self._matchers)

    def _bus_matcher(self, bus: str) -> Matcher:
        matcher = self._matchers.get(bus)
        if matcher is None:
            matcher = self._matchers[bus] = Matcher()
        return matcher

    def rule_changed(self, key: str, rule: Rule | None) -> None:
        """Apply a committed rule change (``rule`` None: the rule was deleted)."""
        old = self._rules.pop(key, None)
        if old is not None:
            if old.matched:
                self._matchers[old.bus].remove(key)
            for compiled in old.targets:
                self._targets.pop(compiled.spec.key, None)
        had_schedule = self._scheduled.pop(key, None) is not None
        if rule is not None and (rule.matches_events or rule.fires_on_schedule):
            self._add_rule(key, rule)
        if had_schedule or key in self._scheduled:
            for listener in self._schedule_listeners:
                listener(key)

    def _add_rule(self, key: str, rule: Rule) -> None:
        targets = []
        for target in rule.targets:
            target_key = f"{key}/{target.id}"
            # a secret that does not open fails here, so at start-up (the same check as
            # the keyring's): a wrong master key is named at once, not at each delivery
            keys = unseal_secrets(self.master, target_key, target.signing)
            try:
                spec = TargetSpec.from_target(
                    target_key,
                    target,
                    rule.arn,
                    self.settings,
                    account=self._owner(rule.bus),
                    signing_keys=keys,
                )
                renderer = compile_input(target.input or {})
            except Exception:
                log.exception(
                    "target input or HttpParameters do not compile; target skipped",
                    target=target_key,
                )
                continue
            is_queue = target_kind(spec.arn) == "queue"
            limit = MAX_QUEUE_INPUT_BYTES if is_queue else MAX_INPUT_BYTES
            targets.append(
                CompiledTarget(spec, renderer, BUS_ARN_RE.match(spec.arn) is not None, limit)
            )
            self._targets[target_key] = spec
        if rule.matches_events:
            assert rule.pattern is not None
            self._bus_matcher(rule.bus).add(key, rule.pattern)
        self._rules[key] = CompiledRule(
            key, rule.bus, rule.name, rule.arn, tuple(targets), rule.matches_events
        )
        if rule.fires_on_schedule:
            assert rule.schedule is not None
            account = owner_of(rule.bus, self.settings.account_id)[0]
            self._scheduled[key] = ScheduledRule(key, rule.arn, account, rule.schedule)

    def _owner(self, bus: str) -> str:
        """The account that owns the internal bus name ``bus`` ("" if it names none)."""
        account = owner_of(bus, self.settings.account_id)[0]
        return account if _ACCOUNT_ID.fullmatch(account) else ""

    def bus_changed(self, name: str, bus: BusDoc | None) -> None:
        """Apply a committed bus change (``bus`` None: the bus was deleted)."""
        if bus is not None:
            self._buses.add(name)
            self._policies[name] = _parsed_policy(bus.get("Policy"))
            return
        self._policies.pop(name, None)
        if owner_of(name, self.settings.account_id)[1] == DEFAULT_BUS:
            return
        self._buses.discard(name)
        for key in [k for k, rule in self._rules.items() if rule.bus == name]:
            self.rule_changed(key, None)
        self._matchers.pop(name, None)
        self.archives.matcher_dropped(name)

    def queue_changed(self, name: str, queue: QueueDoc | None) -> None:
        """Apply a committed queue creation (``queue``) or deletion (None)."""
        if queue is None:
            self._queues.discard(name)
        else:
            self._queues.add(name)

    def external_target_changed(self, key: str, spec: TargetSpec | None) -> None:
        """Set (``spec``) or remove (None) the delivery settings of a target that no rule
        owns: an EventBridge Scheduler schedule's (:mod:`eventyard.server.schedules`).

        ``key`` must be a key no rule target can have (Scheduler's start with
        ``@scheduler/``); the engine resolves it like any other, so a removed target's
        pending deliveries are dropped, as a removed rule target's are.
        """
        if spec is None:
            self._targets.pop(key, None)
        else:
            self._targets[key] = spec

    # -- scheduled rules ---------------------------------------------------------------
    def scheduled_rules(self) -> list[ScheduledRule]:
        """The enabled rules with a schedule, now."""
        return list(self._scheduled.values())

    def scheduled_rule(self, key: str) -> ScheduledRule | None:
        """The enabled rule with a schedule of that key, if there is one now."""
        return self._scheduled.get(key)

    def on_schedule_change(self, listener: ScheduleListener) -> None:
        """Call ``listener(key)`` after each change that may concern a scheduled rule:
        one created, changed, disabled or deleted (and its targets)."""
        self._schedule_listeners.append(listener)

    # -- lookups -------------------------------------------------------------------------
    def bus_key(self, caller: Principal | None, name_or_arn: str | None) -> str | None:
        """The internal name of a bus of the caller's account (None: the home account),
        named by name or ARN, if it exists; None for a bus of another account, a
        malformed name, or a bus that does not exist (what the native tail asks)."""
        if name_or_arn is not None and bus_name_from(name_or_arn) is None:
            return None
        key = self.accounts.scope(caller).bus_key(name_or_arn)
        return key if key is not None and self.has_bus(key) else None

    def has_bus(self, name: str) -> bool:
        """Whether a bus of that internal name exists (every account has ``default``)."""
        return name in self._buses or owner_of(name, self.settings.account_id)[1] == DEFAULT_BUS

    def resolve(self, target_key: str) -> TargetSpec | None:
        """The current delivery settings of a target, None if it no longer exists."""
        return self._targets.get(target_key)

    def queue_name_for_arn(self, arn: str) -> str | None:
        """The internal name of the queue an SQS ARN names (in the ARN's account), None
        if there is no such queue."""
        name = self.accounts.queue_for_arn(arn)
        return name if name is not None and name in self._queues else None


def _parsed_policy(text: str | None) -> Any:
    """A bus's policy text, parsed once; the text itself when it is not JSON (it then
    grants nothing, as :func:`~eventyard.server.auth.policy.evaluate` reads it)."""
    if text is None:
        return None
    try:
        policy = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return policy if isinstance(policy, dict) else text
