"""Accounts on one server: who owns a resource, what it is called inside, and its ARNs.

One eventyard serves many accounts (the caller's access key chooses one, see
``docs/security.md``); each sees only its own buses, rules, queues and ARNs. They share
one store, so each resource has an **internal name**, unique across accounts, under
which the catalog, the queues and the delivery records keep it:

* the **home account** (``settings.account_id``: dev mode, internal calls, every
  request before accounts existed) keeps the plain name, ``orders``: data directories
  written before accounts existed keep working without a migration;
* **any other account** gets its 12-digit id and ``:`` in front, ``111122223333:orders``.
  Bus, rule and queue names cannot contain ``:``, so the two forms never collide and
  the owner of an internal name is read back from the name alone.

A rule's catalog key and its targets' delivery keys are built on the internal bus name
(``111122223333:orders/r1``, ``111122223333:orders/r1/t1``), so they are scoped too.
Tags are keyed by ARN, which names the account already.

This module is the only place that builds or takes apart internal names and the ARNs
and queue URLs an account sees. :class:`AccountScope` is one account's view (what the
control plane works in); :class:`Accounts` hands out scopes and resolves the ARNs a
rule's targets name, whatever account they are in (what the router needs).
:class:`Organizations` answers ``aws:PrincipalOrgID``: the organization of an account.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from eventyard.envelope import BUS_ARN_RE, DEFAULT_BUS
from eventyard.server.auth.keys import Principal
from eventyard.server.config import Settings

__all__ = [
    "SEPARATOR",
    "AccountLookup",
    "AccountScope",
    "Accounts",
    "OrgLookup",
    "Organizations",
    "ResourceArn",
    "internal_name",
    "owner_of",
    "parse_api_destination_arn",
    "parse_bus_arn",
    "parse_connection_arn",
    "parse_queue_arn",
    "parse_rule_arn",
]

#: What separates the account from the name in an internal name.
SEPARATOR = ":"

_QUEUE_ARN_RE = re.compile(
    r"arn:aws[\w-]*:sqs:([a-z0-9-]*):([0-9]{12}):([A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)"
)
_RULE_ARN_RE = re.compile(r"arn:aws[\w-]*:events:([a-z0-9-]+):([0-9]{12}):rule/(.+)")
# The name part of an ARN must be a name the API accepts: above all, no ":", which would
# make "…:000000000000:event-bus/222222222222:payroll" the internal name of another
# account's bus. Bus names are EventBridge's (``/`` for partner buses), rule names too.
_BUS_NAME = r"[/\.\-_A-Za-z0-9]{1,256}"
_RULE_NAME = r"[\.\-_A-Za-z0-9]{1,64}"
_BUS_NAME_RE = re.compile(_BUS_NAME)
_RULE_PATH_RE = re.compile(rf"(?:{_BUS_NAME}/)?{_RULE_NAME}")
_ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")
# connection/<name>/<id> and api-destination/<name>/<id>: names never hold ":" nor "/"
_CONNECTION_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:events:([a-z0-9-]*):([0-9]{12}):connection/([\.\-_A-Za-z0-9]{1,64})"
    r"/([\-A-Za-z0-9]+)"
)
_API_DESTINATION_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:events:([a-z0-9-]*):([0-9]{12}):api-destination/"
    r"([\.\-_A-Za-z0-9]{1,64})/([\-A-Za-z0-9]+)"
)


def internal_name(account: str, name: str, home: str) -> str:
    """The internal name of ``account``'s bus or queue ``name`` (``home``: the home account)."""
    return name if account == home else f"{account}{SEPARATOR}{name}"


def owner_of(internal: str, home: str) -> tuple[str, str]:
    """``(account, name)`` of an internal bus or queue name; plain names are the home's."""
    account, separator, name = internal.partition(SEPARATOR)
    if not separator:
        return home, internal
    return account, name


@dataclass(frozen=True, slots=True)
class ResourceArn:
    """The parts of an ARN that say whose resource it is.

    Attributes:
        region: the ARN's region (not checked: one eventyard serves one region).
        account: the owning account.
        name: the resource's name in that account (a bus, queue, or ``bus/rule`` path).
    """

    region: str
    account: str
    name: str


def parse_bus_arn(value: str) -> ResourceArn | None:
    """The parts of an event-bus ARN, None when ``value`` is not one.

    The whole value must match, and the name must be a valid bus name (never ``:``).
    """
    match = BUS_ARN_RE.fullmatch(value)
    if match is None or not _BUS_NAME_RE.fullmatch(match.group(3)):
        return None
    return ResourceArn(*match.groups())


def parse_queue_arn(value: str) -> ResourceArn | None:
    """The parts of an SQS queue ARN, None when ``value`` is not one."""
    match = _QUEUE_ARN_RE.fullmatch(value)
    return ResourceArn(*match.groups()) if match else None


def parse_rule_arn(value: str) -> ResourceArn | None:
    """The parts of a rule ARN (``name`` is ``rule`` or ``bus/rule``), None otherwise.

    The bus and rule names must be valid names (never ``:``).
    """
    match = _RULE_ARN_RE.fullmatch(value)
    if match is None or not _RULE_PATH_RE.fullmatch(match.group(3)):
        return None
    return ResourceArn(*match.groups())


def parse_connection_arn(value: str) -> tuple[ResourceArn, str] | None:
    """The parts of a connection ARN and its generated id, None when it is not one."""
    match = _CONNECTION_ARN_RE.fullmatch(value)
    return (ResourceArn(*match.groups()[:3]), match.group(4)) if match else None


def parse_api_destination_arn(value: str) -> tuple[ResourceArn, str] | None:
    """The parts of an API destination ARN and its generated id, None when it is not one."""
    match = _API_DESTINATION_ARN_RE.fullmatch(value)
    return (ResourceArn(*match.groups()[:3]), match.group(4)) if match else None


class AccountScope:
    """One account's view of the server: its internal names, ARNs and queue URLs.

    Args:
        account: the account's 12-digit id.
        settings: the server's settings (home account, region, host and port).
    """

    __slots__ = ("_prefix", "account", "home", "region", "settings")

    def __init__(self, account: str, settings: Settings) -> None:
        self.account = account
        self.settings = settings
        self.home = settings.account_id
        self.region = settings.region
        self._prefix = "" if account == self.home else f"{account}{SEPARATOR}"

    def __repr__(self) -> str:
        return f"AccountScope({self.account!r})"

    @property
    def is_home(self) -> bool:
        """Whether this is the server's home account (plain internal names)."""
        return not self._prefix

    # -- internal names --------------------------------------------------------------
    def key(self, name: str) -> str:
        """The internal name of this account's bus or queue ``name``."""
        return self._prefix + name

    def prefix(self, name_prefix: str = "") -> str:
        """The catalog prefix of this account's names starting with ``name_prefix``.

        The home account's prefix also finds other accounts' internal names; filter
        the results with :meth:`owns`.
        """
        return self._prefix + name_prefix

    def owns(self, internal: str) -> bool:
        """Whether the internal name (or rule key ``<bus>/<rule>``) is this account's."""
        if self._prefix:
            return internal.startswith(self._prefix)
        bus = internal.partition("/")[0]
        return SEPARATOR not in bus

    def name(self, internal: str) -> str:
        """This account's name of one of its internal names (the prefix removed)."""
        return internal[len(self._prefix) :]

    @property
    def default_bus(self) -> str:
        """The internal name of this account's ``default`` bus."""
        return self._prefix + DEFAULT_BUS

    # -- ARNs and URLs ---------------------------------------------------------------
    def bus_arn(self, name: str) -> str:
        """The ARN of this account's event bus ``name``."""
        return f"arn:aws:events:{self.region}:{self.account}:event-bus/{name}"

    def rule_arn(self, bus: str, rule: str) -> str:
        """The ARN of rule ``rule`` on this account's bus ``bus`` (no bus on ``default``)."""
        path = rule if bus == DEFAULT_BUS else f"{bus}/{rule}"
        return f"arn:aws:events:{self.region}:{self.account}:rule/{path}"

    def queue_arn(self, name: str) -> str:
        """The ARN of this account's queue ``name``."""
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def connection_arn(self, name: str, resource_id: str) -> str:
        """The ARN of this account's connection ``name`` with its generated id."""
        return f"arn:aws:events:{self.region}:{self.account}:connection/{name}/{resource_id}"

    def connection_secret_arn(self, name: str, resource_id: str) -> str:
        """The ``SecretArn`` AWS shows for connection ``name`` (where AWS keeps its
        secret; eventyard keeps it sealed in its own catalog)."""
        return (
            f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:"
            f"events!connection/{name}/{resource_id}"
        )

    def api_destination_arn(self, name: str, resource_id: str) -> str:
        """The ARN of this account's API destination ``name`` with its generated id."""
        return f"arn:aws:events:{self.region}:{self.account}:api-destination/{name}/{resource_id}"

    def queue_url(self, name: str) -> str:
        """The URL eventyard hands out for this account's queue ``name``."""
        host = self.settings.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.settings.port}/{self.account}/{name}"

    # -- what callers name -------------------------------------------------------------
    def bus_key(self, name_or_arn: str | None) -> str | None:
        """The internal name of the bus an ``EventBusName`` value names.

        None when the value is the ARN of another account's bus: no bus of this
        account has that name.
        """
        if name_or_arn is None:
            return self.default_bus
        arn = parse_bus_arn(name_or_arn) if name_or_arn.startswith("arn:") else None
        if arn is None:
            # a name never holds ":"; this is a malformed ARN, which names no bus
            return None if SEPARATOR in name_or_arn else self._prefix + name_or_arn
        if arn.account != self.account:
            return None
        return self._prefix + arn.name

    def queue_key(self, arn: str) -> str | None:
        """The internal name of this account's queue ``arn``; None for another account's."""
        parsed = parse_queue_arn(arn)
        if parsed is None or parsed.account != self.account:
            return None
        return self._prefix + parsed.name

    def names_another_account(self, arn: str) -> str | None:
        """The account an SQS, event-bus, connection or API destination ARN names, when
        it is not this one; else None."""
        parsed = parse_queue_arn(arn) or parse_bus_arn(arn)
        if parsed is None:
            found = parse_api_destination_arn(arn) or parse_connection_arn(arn)
            parsed = found[0] if found else None
        if parsed is None or parsed.account == self.account:
            return None
        return parsed.account


class Accounts:
    """The scopes of every account, and ARN resolution across accounts.

    Args:
        settings: the server's settings; ``account_id`` is the home account.
    """

    _CACHE = 4096

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = AccountScope(settings.account_id, settings)
        self._scopes: dict[str, AccountScope] = {self.home.account: self.home}

    def scope(self, caller: Principal | str | None) -> AccountScope:
        """The scope of the caller's account (None: the home account).

        Raises:
            ValueError: ``caller`` names an account id that is not 12 digits.
        """
        if caller is None:
            return self.home
        account = caller if isinstance(caller, str) else caller.account_id
        scope = self._scopes.get(account)
        if scope is None:
            if not _ACCOUNT_ID_RE.match(account):
                raise ValueError(f"an account id is 12 digits, not {account!r}")
            if len(self._scopes) >= self._CACHE:
                self._scopes = {self.home.account: self.home}
            scope = self._scopes[account] = AccountScope(account, self.settings)
        return scope

    def owner(self, internal: str) -> AccountScope:
        """The scope of the account that owns an internal bus or queue name."""
        return self.scope(owner_of(internal, self.home.account)[0])

    def bus_for_arn(self, arn: str) -> str | None:
        """The internal name of the bus an event-bus ARN names, in whatever account."""
        parsed = parse_bus_arn(arn)
        if parsed is None:
            return None
        return internal_name(parsed.account, parsed.name, self.home.account)

    def queue_for_arn(self, arn: str) -> str | None:
        """The internal name of the queue an SQS ARN names, in whatever account."""
        parsed = parse_queue_arn(arn)
        if parsed is None:
            return None
        return internal_name(parsed.account, parsed.name, self.home.account)

    def bus_arn(self, internal: str) -> str:
        """The ARN of a bus given its internal name."""
        account, name = owner_of(internal, self.home.account)
        return self.scope(account).bus_arn(name)


class _AccountRecord(Protocol):
    @property
    def org_id(self) -> str | None: ...


#: Looks an account up (``Keyring.get_account``): its record, None when unknown.
AccountLookup = Callable[[str], Awaitable[_AccountRecord | None]]
#: An account's organization id, None when it has none.
OrgLookup = Callable[[str], Awaitable[str | None]]


class Organizations:
    """The organization an account belongs to, for ``aws:PrincipalOrgID`` conditions.

    An account created with an organization (``Keyring.create_account(org_id=…)``) is
    in that one; the home account is in ``settings.org_id`` when it has no record of
    its own. Everyone else is in none.

    Args:
        settings: the server's settings (``account_id``, ``org_id``).
        accounts: how to look an account up, e.g. ``Keyring.get_account``; None when the
            server keeps no accounts.
    """

    def __init__(self, settings: Settings, accounts: AccountLookup | None = None) -> None:
        self.home = settings.account_id
        self.home_org = settings.org_id or None
        self.accounts = accounts

    async def org_of(self, account_id: str) -> str | None:
        """The organization id of ``account_id``, None when it is in none."""
        if self.accounts is not None:
            record = await self.accounts(account_id)
            if record is not None and record.org_id:
                return record.org_id
        return self.home_org if account_id == self.home else None
