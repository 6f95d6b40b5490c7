"""API destinations and their connections as deliveries need them, secrets unsealed.

A connection's secrets (``Password``, ``ApiKeyValue``, ``ClientSecret`` and the values
of parameters marked ``IsValueSecret``) are kept in its catalog document only sealed by
the master key (:class:`~eventyard.server.auth.masterkey.MasterKey`, AES-256-GCM, bound
to the connection's ARN so a sealed blob copied into another connection does not
open): :func:`seal_auth` seals the whole ``AuthParameters`` as sent, :func:`redact`
gives the copy DescribeConnection may show, and :func:`unseal_auth` opens the blob for
a delivery. A copy of the database alone reveals no secret.

:class:`ApiDestinations` resolves the ARN of a rule's API destination target to a
:class:`Destination` (endpoint, method, rate limit and its :class:`Connection`) by
reading the catalog on every attempt (two small reads: a change made by any process,
or by the API a moment ago, is seen at once), and writes the connection state the
deliveries discover (an OAuth token obtained: ``AUTHORIZED``; refused: ``DEAUTHORIZED``).
Unsealed secrets are cached by the sealed blob's nonce, so an attempt does not decrypt.

May import: the store, the accounts, the auth master key and the shared modules.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import orjson
import structlog

from eventyard.errors import ConcurrentModification, ConfigurationError, DeliveryError
from eventyard.server.accounts import (
    Accounts,
    internal_name,
    parse_api_destination_arn,
    parse_connection_arn,
)
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import API_DESTINATION, CONNECTION, ApiDestinationDoc, ConnectionDoc
from eventyard.server.store import Store

__all__ = [
    "AUTHORIZED",
    "AUTHORIZING",
    "DEAUTHORIZED",
    "ApiDestinations",
    "Connection",
    "Destination",
    "destination_state",
    "redact",
    "seal_auth",
    "unseal_auth",
]

_log = structlog.get_logger("eventyard.server.delivery")

AUTHORIZED: Final = "AUTHORIZED"
AUTHORIZING: Final = "AUTHORIZING"
DEAUTHORIZED: Final = "DEAUTHORIZED"
#: the members of an auth block that are secrets, never shown
_SECRET_MEMBERS: Final = frozenset({"Password", "ApiKeyValue", "ClientSecret"})
_PARAMETER_LISTS: Final = ("HeaderParameters", "QueryStringParameters", "BodyParameters")
_CACHED_SECRETS: Final = 1024
_RETRIES: Final = 8


def seal_auth(master: MasterKey, connection_arn: str, auth: Mapping[str, Any]) -> dict[str, Any]:
    """The whole ``AuthParameters`` sealed for the connection ``connection_arn``."""
    return master.seal(orjson.dumps(auth).decode(), context=connection_arn)


def unseal_auth(
    master: MasterKey, connection_arn: str, sealed: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``AuthParameters`` :func:`seal_auth` sealed for ``connection_arn``.

    Raises:
        ConfigurationError: the blob was sealed by another master key, or altered.
    """
    auth = orjson.loads(master.unseal(sealed, context=connection_arn))
    if not isinstance(auth, dict):
        raise ConfigurationError(f"The secret of {connection_arn} is not an object.")
    return auth


def _redact_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for name, value in parameters.items():
        if name in _PARAMETER_LISTS and isinstance(value, list):
            shown[name] = [
                {k: v for k, v in item.items() if not (k == "Value" and item.get("IsValueSecret"))}
                if isinstance(item, dict)
                else item
                for item in value
            ]
        else:
            shown[name] = copy.deepcopy(value)
    return shown


def redact(auth: Mapping[str, Any]) -> dict[str, Any]:
    """``AuthParameters`` without their secrets: what DescribeConnection shows."""
    shown: dict[str, Any] = {}
    for block, value in auth.items():
        if not isinstance(value, dict):
            shown[block] = copy.deepcopy(value)
            continue
        inner: dict[str, Any] = {}
        for key, member in value.items():
            if key in _SECRET_MEMBERS:
                continue
            if key == "ClientParameters" and isinstance(member, dict):
                inner[key] = {k: v for k, v in member.items() if k not in _SECRET_MEMBERS}
            elif key == "OAuthHttpParameters" and isinstance(member, dict):
                inner[key] = _redact_parameters(member)
            else:
                inner[key] = copy.deepcopy(member)
        shown[block] = _redact_parameters(inner) if block == "InvocationHttpParameters" else inner
    return shown


def destination_state(connection_state: str | None) -> str:
    """``ApiDestinationState``: ``ACTIVE`` while its connection is authorized."""
    return "ACTIVE" if connection_state == AUTHORIZED else "INACTIVE"


@dataclass(slots=True, frozen=True)
class Connection:
    """A connection as one delivery attempt sees it.

    Attributes:
        arn: its ARN.
        key: its catalog key (internal name).
        name: its name.
        auth_type: ``BASIC``, ``API_KEY`` or ``OAUTH_CLIENT_CREDENTIALS``.
        state: its ``ConnectionState``.
        reason: its ``StateReason`` ("" when none).
        auth: the whole ``AuthParameters``, secrets included; None once deauthorized.
        generation: changes whenever the secrets do (an OAuth token obtained with an
            older generation is not used again).
    """

    arn: str
    key: str
    name: str
    auth_type: str
    state: str
    reason: str
    auth: Mapping[str, Any] | None = field(repr=False)  # secrets: never in a log line
    generation: str


@dataclass(slots=True, frozen=True)
class Destination:
    """An API destination and its connection, as one delivery attempt sees them.

    Attributes:
        arn: its ARN (the target's ``Arn``).
        name: its name.
        endpoint: ``InvocationEndpoint``, ``*`` wildcards not yet filled.
        method: ``HttpMethod``.
        rate: ``InvocationRateLimitPerSecond``.
        connection: its connection.
    """

    arn: str
    name: str
    endpoint: str
    method: str
    rate: int
    connection: Connection


class ApiDestinations:
    """Resolves API destination ARNs through the catalog and keeps connection states.

    Args:
        store: the store whose catalog holds connections and API destinations.
        accounts: resolves the account in an ARN to internal names.
        master: the master key that sealed the connections' secrets.
        clock: the time written as ``LastAuthorizedTime`` / ``LastModifiedTime``.
    """

    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        master: MasterKey,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._master = master
        self._clock = clock
        self._secrets: dict[str, dict[str, Any]] = {}

    async def resolve(self, arn: str) -> Destination:
        """The API destination ``arn`` names, with its connection.

        Raises:
            DeliveryError: not retryable: the destination or its connection does not
                exist (deleted, or recreated under another id), or the connection's
                secret does not open with this master key.
        """
        parsed = parse_api_destination_arn(arn)
        if parsed is None:
            raise DeliveryError(
                f"{arn} is not an API destination ARN", retryable=False, error_code="NOT_FOUND"
            )
        where, _ = parsed
        home = self._accounts.home.account
        entry = await self._store.catalog_get(
            API_DESTINATION, internal_name(where.account, where.name, home)
        )
        doc = cast(ApiDestinationDoc, entry.doc) if entry is not None else None
        if doc is None or doc.get("ApiDestinationArn") != arn:
            raise DeliveryError(
                f"the API destination {where.name} does not exist (deleted, or recreated with "
                "another ARN)",
                retryable=False,
                error_code="API_DESTINATION_NOT_FOUND",
            )
        connection = await self.connection(doc["ConnectionArn"])
        return Destination(
            arn=arn,
            name=doc["Name"],
            endpoint=doc["InvocationEndpoint"],
            method=doc["HttpMethod"].upper(),
            rate=int(doc["InvocationRateLimitPerSecond"]),
            connection=connection,
        )

    async def connection(self, arn: str) -> Connection:
        """The connection ``arn`` names, its secrets unsealed.

        Raises:
            DeliveryError: not retryable: it does not exist, or its secret does not open.
        """
        parsed = parse_connection_arn(arn)
        key = (
            internal_name(parsed[0].account, parsed[0].name, self._accounts.home.account)
            if parsed is not None
            else ""
        )
        entry = await self._store.catalog_get(CONNECTION, key) if key else None
        doc = cast(ConnectionDoc, entry.doc) if entry is not None else None
        if doc is None or doc.get("ConnectionArn") != arn:
            raise DeliveryError(
                f"the connection {arn} does not exist (deleted, or recreated with another ARN)",
                retryable=False,
                error_code="CONNECTION_NOT_FOUND",
            )
        sealed = doc.get("Secret")
        auth: dict[str, Any] | None = None
        generation = ""
        if sealed is not None:
            generation = str(sealed.get("Nonce", ""))
            auth = self._secrets.get(generation)
            if auth is None:
                try:
                    auth = unseal_auth(self._master, arn, sealed)
                except ConfigurationError as exc:
                    raise DeliveryError(
                        str(exc), retryable=False, error_code="CONNECTION_SECRET"
                    ) from None
                if len(self._secrets) >= _CACHED_SECRETS:
                    self._secrets.clear()
                self._secrets[generation] = auth
        return Connection(
            arn=arn,
            key=key,
            name=doc["Name"],
            auth_type=doc["AuthorizationType"],
            state=doc["ConnectionState"],
            reason=doc.get("StateReason", ""),
            auth=auth,
            generation=generation,
        )

    async def set_state(self, connection: Connection, state: str, reason: str = "") -> None:
        """Record what a delivery learned: the connection is now ``state`` (``AUTHORIZED``
        once a token was obtained, ``DEAUTHORIZED`` with ``reason`` when authorization
        failed). Nothing is written when the connection changed since ``connection``
        was read (its secrets were updated: the news is about the old ones)."""
        for _ in range(_RETRIES):
            entry = await self._store.catalog_get(CONNECTION, connection.key)
            if entry is None:
                return
            doc = cast(ConnectionDoc, copy.deepcopy(entry.doc))
            sealed = doc.get("Secret")
            if sealed is None or str(sealed.get("Nonce", "")) != connection.generation:
                return
            if doc["ConnectionState"] == state and doc.get("StateReason", "") == reason:
                return
            now = self._clock()
            doc["ConnectionState"] = state
            doc["LastModifiedTime"] = now
            if state == AUTHORIZED:
                doc["LastAuthorizedTime"] = now
            if reason:
                doc["StateReason"] = reason[:512]
            else:
                doc.pop("StateReason", None)
            try:
                await self._store.catalog_put(
                    CONNECTION, connection.key, dict(doc), expect_revision=entry.revision
                )
            except ConcurrentModification:
                continue
            _log.info(
                "connection state changed", connection=connection.arn, state=state, reason=reason
            )
            return
