"""Connections and API destinations: the EventBridge operations, with AWS's shapes.

:class:`ConnectionsApi` serves CreateConnection, DescribeConnection, UpdateConnection,
DeleteConnection, DeauthorizeConnection, ListConnections and the five API destination
operations for :class:`~eventyard.server.api.aws.EventsApi`, in the caller's account
(internal names carry the account, as buses do; another account's connection or
destination answers as if it did not exist). Documents are typed in
:mod:`eventyard.server.catalog` (kinds ``connection`` and ``api-destination``).

Secrets never leave the server: the ``AuthParameters`` a request sends are stored whole
only sealed by the master key, and DescribeConnection shows them without ``Password``,
``ApiKeyValue``, ``ClientSecret`` and the values of parameters marked ``IsValueSecret``
(:mod:`eventyard.server.delivery.destinations`).

States, as AWS reports them: ``BASIC`` and ``API_KEY`` connections are ``AUTHORIZED``
from the start; an OAuth connection is ``AUTHORIZING`` until the first delivery that
needs its token obtains one (``AUTHORIZED``) or is refused (``DEAUTHORIZED``).
UpdateConnection authorizes again; DeauthorizeConnection drops the secrets (answering
``DEAUTHORIZING``, then ``DEAUTHORIZED``); DeleteConnection answers ``DELETING`` and the
connection is gone at once. An API destination is ``ACTIVE`` while its connection is
``AUTHORIZED``, else ``INACTIVE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast
from urllib.parse import urlsplit

from eventyard.errors import (
    ConcurrentModification,
    ConfigurationError,
    LimitExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    ValidationError,
)
from eventyard.server.accounts import AccountScope, parse_connection_arn
from eventyard.server.api.connection_auth import (
    AUTH_TYPES,
    BLOCKS,
    HTTPS_ENDPOINT,
    camel,
    check_auth,
    check_blocks,
    merge_auth,
    refuse_unsupported,
    without_nulls,
)
from eventyard.server.api.validation import (
    NAME_PATTERN,
    Violations,
    decode_token,
    encode_token,
)
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import (
    API_DESTINATION,
    CONNECTION,
    ApiDestinationDoc,
    ConnectionDoc,
    read_modify_write,
)
from eventyard.server.config import Settings
from eventyard.server.delivery.destinations import (
    AUTHORIZED,
    AUTHORIZING,
    DEAUTHORIZED,
    destination_state,
    redact,
    seal_auth,
    unseal_auth,
)
from eventyard.server.delivery.outbound import OutboundPolicy, outbound_allow
from eventyard.server.quotas import KeyedLocks, kept_within
from eventyard.server.store import CatalogEntry, Store

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "MAX_API_DESTINATIONS",
    "MAX_CONNECTIONS",
    "ConnectionsApi",
]

#: AWS's default quotas: connections and API destinations per account and region
MAX_CONNECTIONS: Final = 3000
MAX_API_DESTINATIONS: Final = 3000
#: ``InvocationRateLimitPerSecond`` when none is given (AWS's default)
DEFAULT_RATE_LIMIT: Final = 300

_STATES: Final = (
    "CREATING",
    "UPDATING",
    "DELETING",
    "AUTHORIZED",
    "DEAUTHORIZED",
    "AUTHORIZING",
    "DEAUTHORIZING",
    "ACTIVE",
    "FAILED_CONNECTIVITY",
)
_METHODS: Final = ("HEAD", "POST", "PATCH", "DELETE", "PUT", "GET", "OPTIONS")
CONNECTION_ARN_PATTERN: Final = (
    r"^arn:aws([a-z]|\-)*:events:([a-z]|\d|\-)*:([0-9]{12})?:connection\/"
    r"[\.\-_A-Za-z0-9]+\/[\-A-Za-z0-9]+$"
)
_PAGE: Final = 100
# the model's integers are Java ints: AWS cannot take a larger one either
_INT_MAX: Final = 2**31 - 1
_RETRIES: Final = 8


def _name(v: Violations, key: str = "Name") -> str | None:
    """A connection or destination name: AWS reports its pattern before its length."""
    value = v.string(key, camel(key), required=True)
    if value is not None:
        v.text(value, camel(key), pattern=NAME_PATTERN)
        v.text(value, camel(key), min_len=1, max_len=64)
    return value


def _connection_missing(verb: str, name: str) -> ResourceNotFound:
    return ResourceNotFound(
        f"Failed to {verb} the connection(s). Connection '{name}' does not exist."
    )


def _destination_missing(verb: str, name: str) -> ResourceNotFound:
    return ResourceNotFound(
        f"Failed to {verb} the api-destination(s). An api-destination '{name}' does not exist."
    )


def _over_quota(what: str) -> LimitExceeded:
    return LimitExceeded(
        f"The requested resource exceeds the maximum number allowed ({what} per account)."
    )


def _times(doc: Mapping[str, Any], *, authorized: bool = True) -> dict[str, Any]:
    keys = ["CreationTime", "LastModifiedTime"]
    if authorized:
        keys.append("LastAuthorizedTime")
    return {k: doc[k] for k in keys if doc.get(k) is not None}


def _page(
    items: list[dict[str, Any]], scope: str, token: str | None, limit: int | None
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    after = decode_token(token, scope)
    if after is not None:
        items = [item for item in items if item["Name"] > after]
    size = limit or _PAGE
    page = items[:size]
    if len(items) > size:
        return page, {"NextToken": encode_token(scope, page[-1]["Name"])}
    return page, {}


_Handler = Callable[[dict[str, Any], AccountScope], Awaitable[dict[str, Any]]]


class ConnectionsApi:
    """The connection and API destination operations, in the caller's account.

    Args:
        store: the store whose catalog keeps connections and destinations.
        settings: the outbound allow-list.
        master: the master key that seals connection secrets (the one deliveries use).
    """

    def __init__(self, store: Store, settings: Settings, master: MasterKey) -> None:
        self.store = store
        self.master = master
        self._outbound = OutboundPolicy.parse(outbound_allow(settings))
        self._quota_locks = KeyedLocks()

    @property
    def operations(self) -> dict[str, _Handler]:
        """The operations served, by name."""
        return {
            "CreateConnection": self.create_connection,
            "DescribeConnection": self.describe_connection,
            "UpdateConnection": self.update_connection,
            "DeleteConnection": self.delete_connection,
            "DeauthorizeConnection": self.deauthorize_connection,
            "ListConnections": self.list_connections,
            "CreateApiDestination": self.create_api_destination,
            "DescribeApiDestination": self.describe_api_destination,
            "UpdateApiDestination": self.update_api_destination,
            "DeleteApiDestination": self.delete_api_destination,
            "ListApiDestinations": self.list_api_destinations,
        }

    # -- shared --------------------------------------------------------------------------
    async def _owned(self, kind: str, scope: AccountScope) -> list[CatalogEntry]:
        listed = await self.store.catalog_list(kind, scope.prefix())
        return sorted(
            (e for e in listed if scope.owns(e.key)), key=lambda e: str(e.doc.get("Name"))
        )

    async def _create(
        self, kind: str, key: str, doc: Mapping[str, Any], scope: AccountScope, quota: int
    ) -> bool:
        """Insert a new document within the account's quota; False if the name is taken."""

        async def count() -> int:
            return len(await self._owned(kind, scope))

        async with self._quota_locks(f"{kind}:{scope.account}"):
            if await count() >= quota:
                raise _over_quota(f"{quota} {kind}s")
            try:
                await self.store.catalog_put(kind, key, dict(doc), expect_revision=0)
            except ConcurrentModification:
                return False
            if not await kept_within(self.store, kind, key, count, quota):
                raise _over_quota(f"{quota} {kind}s")
        return True

    async def _change(
        self,
        kind: str,
        key: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        missing: Callable[[], Exception],
    ) -> dict[str, Any]:
        return await read_modify_write(self.store, kind, key, change, missing, retries=_RETRIES)

    def _check_endpoint(self, url: str, label: str) -> None:
        """Refuse an http(s) URL whose literal address the outbound policy never allows
        (a host name is judged at each call, as for webhooks)."""
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:
            return
        if scheme not in ("http", "https"):
            return
        refused = self._outbound.check_url(url)
        if refused is not None:
            raise ValidationError(
                f"Parameter {label} is not valid: {url} is not allowed: {refused}. The "
                "outbound_allow setting opens addresses that are not public."
            )

    # -- connections ---------------------------------------------------------------------
    async def create_connection(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """CreateConnection: a connection, ``AUTHORIZED`` (``AUTHORIZING`` for OAuth).

        Raises:
            ResourceAlreadyExists: a connection of that name exists.
            LimitExceeded: the account has :data:`MAX_CONNECTIONS` connections.
        """
        v = Violations(params)
        name = _name(v)
        description = v.string("Description", "description", max_len=512)
        auth_type = v.string("AuthorizationType", "authorizationType", required=True)
        if auth_type is not None and auth_type not in AUTH_TYPES:
            v.add(
                auth_type,
                "authorizationType",
                f"must satisfy enum value set: [{', '.join(AUTH_TYPES)}]",
            )
        auth = v.structure("AuthParameters")
        if auth is None:
            v.add(None, "authParameters", "must not be null")
        check_auth(v, auth, complete=True)
        v.check()
        assert name is not None and auth_type is not None and auth is not None
        refuse_unsupported(params, auth)
        auth = without_nulls(auth)
        check_blocks(auth_type, auth)
        now = time.time()
        resource_id = str(uuid.uuid4())
        arn = scope.connection_arn(name, resource_id)
        state = AUTHORIZING if auth_type == "OAUTH_CLIENT_CREDENTIALS" else AUTHORIZED
        doc: ConnectionDoc = {
            "Name": name,
            "ConnectionArn": arn,
            "SecretArn": scope.connection_secret_arn(
                name, f"{uuid.uuid4()}-{secrets.token_hex(3)}"
            ),
            "AuthorizationType": auth_type,
            "AuthParameters": redact(auth),
            "Secret": seal_auth(self.master, arn, auth),
            "ConnectionState": state,
            "CreationTime": now,
            "LastModifiedTime": now,
            "LastAuthorizedTime": now,
        }
        if description is not None:
            doc["Description"] = description
        created = await self._create(CONNECTION, scope.key(name), doc, scope, MAX_CONNECTIONS)
        if not created:
            raise ResourceAlreadyExists(f"Connection '{name}' already exists.")
        return {"ConnectionArn": arn, "ConnectionState": state, **_times(doc, authorized=False)}

    async def _connection(self, name: str, scope: AccountScope, verb: str) -> ConnectionDoc:
        entry = await self.store.catalog_get(CONNECTION, scope.key(name))
        if entry is None:
            raise _connection_missing(verb, name)
        return cast(ConnectionDoc, entry.doc)

    def _name_only(self, params: Mapping[str, Any]) -> str:
        v = Violations(params)
        name = _name(v)
        v.check()
        assert name is not None
        return name

    async def describe_connection(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DescribeConnection: the connection, its secrets left out."""
        name = self._name_only(params)
        doc = await self._connection(name, scope, "describe")
        keys = (
            "ConnectionArn",
            "Name",
            "Description",
            "ConnectionState",
            "StateReason",
            "AuthorizationType",
            "SecretArn",
            "AuthParameters",
        )
        shown = {k: doc[k] for k in keys if doc.get(k) is not None}  # type: ignore[literal-required]
        return {**shown, **_times(doc)}

    async def update_connection(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """UpdateConnection: change the description or authorization (given members
        replace the stored ones); the connection is authorized again."""
        v = Violations(params)
        name = _name(v)
        description = v.string("Description", "description", max_len=512)
        auth_type = v.enum("AuthorizationType", "authorizationType", AUTH_TYPES)
        auth = v.structure("AuthParameters")
        check_auth(v, auth, complete=False)
        v.check()
        assert name is not None
        refuse_unsupported(params, auth)
        key = scope.key(name)

        def change(raw: dict[str, Any]) -> dict[str, Any]:
            doc = cast(ConnectionDoc, raw)
            arn = doc["ConnectionArn"]
            old_type = doc["AuthorizationType"]
            new_type = auth_type or old_type
            sealed = doc.get("Secret")
            stored = dict(doc["AuthParameters"])
            if sealed is not None:
                # a secret sealed by another master key is lost: the request must give
                # the secrets again (the completeness check below says which)
                with contextlib.suppress(ConfigurationError):
                    stored = unseal_auth(self.master, arn, sealed)
            if new_type != old_type:
                stored = {k: v for k, v in stored.items() if k not in BLOCKS.values()}
            merged = merge_auth(stored, without_nulls(auth or {}))
            check_blocks(new_type, merged)
            now = time.time()
            state = AUTHORIZING if new_type == "OAUTH_CLIENT_CREDENTIALS" else AUTHORIZED
            doc["AuthorizationType"] = new_type
            doc["AuthParameters"] = redact(merged)
            doc["Secret"] = seal_auth(self.master, arn, merged)
            doc["ConnectionState"] = state
            doc.pop("StateReason", None)
            doc["LastModifiedTime"] = now
            if state == AUTHORIZED:
                doc["LastAuthorizedTime"] = now
            if description is not None:
                doc["Description"] = description
            return dict(doc)

        doc = cast(
            ConnectionDoc,
            await self._change(
                CONNECTION, key, change, lambda: _connection_missing("update", name)
            ),
        )
        return {
            "ConnectionArn": doc["ConnectionArn"],
            "ConnectionState": doc["ConnectionState"],
            **_times(doc),
        }

    async def delete_connection(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DeleteConnection: answered ``DELETING``; the connection is gone at once."""
        name = self._name_only(params)
        key = scope.key(name)
        for _ in range(_RETRIES):
            entry = await self.store.catalog_get(CONNECTION, key)
            if entry is None:
                raise _connection_missing("delete", name)
            try:
                await self.store.catalog_delete(CONNECTION, key, expect_revision=entry.revision)
            except ConcurrentModification:
                continue
            doc = cast(ConnectionDoc, entry.doc)
            return {
                "ConnectionArn": doc["ConnectionArn"],
                "ConnectionState": "DELETING",
                **_times(doc),
            }
        raise ConcurrentModification(f"Too many concurrent changes to {key}; try again.")

    async def deauthorize_connection(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DeauthorizeConnection: the secrets are dropped (answered ``DEAUTHORIZING``,
        then ``DEAUTHORIZED``); deliveries through it fail until UpdateConnection."""
        name = self._name_only(params)

        def change(raw: dict[str, Any]) -> dict[str, Any]:
            raw.pop("Secret", None)
            raw["ConnectionState"] = DEAUTHORIZED
            raw["StateReason"] = "Deauthorized by DeauthorizeConnection."
            raw["LastModifiedTime"] = time.time()
            return raw

        doc = await self._change(
            CONNECTION, scope.key(name), change, lambda: _connection_missing("deauthorize", name)
        )
        return {
            "ConnectionArn": doc["ConnectionArn"],
            "ConnectionState": "DEAUTHORIZING",
            **_times(doc),
        }

    async def list_connections(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListConnections: by name, filtered by name prefix and state, paginated."""
        v = Violations(params)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=64, pattern=NAME_PATTERN)
        state = v.enum("ConnectionState", "connectionState", _STATES)
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        keys = (
            "ConnectionArn",
            "Name",
            "ConnectionState",
            "StateReason",
            "AuthorizationType",
            "CreationTime",
            "LastModifiedTime",
            "LastAuthorizedTime",
        )
        found = [
            {k: e.doc[k] for k in keys if e.doc.get(k) is not None}
            for e in await self._owned(CONNECTION, scope)
            if str(e.doc["Name"]).startswith(prefix or "")
            and (state is None or e.doc["ConnectionState"] == state)
        ]
        page, more = _page(found, f"ListConnections:{prefix or ''}:{state or ''}", token, limit)
        return {"Connections": page, **more}

    # -- API destinations ----------------------------------------------------------------
    async def _connection_state(self, arn: str, scope: AccountScope) -> str | None:
        """The state of the caller's connection ``arn``, None when it has none such."""
        parsed = parse_connection_arn(arn)
        if parsed is None or parsed[0].account != scope.account:
            return None
        entry = await self.store.catalog_get(CONNECTION, scope.key(parsed[0].name))
        if entry is None or entry.doc.get("ConnectionArn") != arn:
            return None
        return str(entry.doc["ConnectionState"])

    async def _require_connection(self, arn: str, scope: AccountScope) -> str:
        state = await self._connection_state(arn, scope)
        if state is None:
            parsed = parse_connection_arn(arn)
            shown = parsed[0].name if parsed is not None else arn
            raise ResourceNotFound(f"Connection '{shown}' does not exist.")
        return state

    def _destination_params(self, v: Violations, *, create: bool) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, path, kwargs in (
            ("Description", "description", {"max_len": 512}),
            (
                "ConnectionArn",
                "connectionArn",
                {"min_len": 1, "max_len": 1600, "pattern": CONNECTION_ARN_PATTERN},
            ),
            (
                "InvocationEndpoint",
                "invocationEndpoint",
                {"min_len": 1, "max_len": 2048, "pattern": HTTPS_ENDPOINT},
            ),
        ):
            required = create and key != "Description"
            value = v.string(key, path, required=required, **kwargs)
            if value is not None:
                found[key] = value
        method = v.string("HttpMethod", "httpMethod", required=create)
        if method is not None:
            if method not in _METHODS:
                v.add(method, "httpMethod", f"must satisfy enum value set: [{', '.join(_METHODS)}]")
            found["HttpMethod"] = method
        rate = v.integer(
            "InvocationRateLimitPerSecond", "invocationRateLimitPerSecond", low=1, high=_INT_MAX
        )
        if rate is not None:
            found["InvocationRateLimitPerSecond"] = rate
        return found

    async def create_api_destination(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """CreateApiDestination: a destination bound to one of the caller's connections.

        Raises:
            ResourceNotFound: the connection does not exist.
            ResourceAlreadyExists: a destination of that name exists.
            LimitExceeded: the account has :data:`MAX_API_DESTINATIONS` destinations.
        """
        v = Violations(params)
        name = _name(v)
        found = self._destination_params(v, create=True)
        v.check()
        assert name is not None
        self._check_endpoint(found["InvocationEndpoint"], "InvocationEndpoint")
        state = await self._require_connection(found["ConnectionArn"], scope)
        now = time.time()
        arn = scope.api_destination_arn(name, str(uuid.uuid4()))
        doc: ApiDestinationDoc = {
            "Name": name,
            "ApiDestinationArn": arn,
            "ConnectionArn": found["ConnectionArn"],
            "InvocationEndpoint": found["InvocationEndpoint"],
            "HttpMethod": found["HttpMethod"],
            "InvocationRateLimitPerSecond": found.get(
                "InvocationRateLimitPerSecond", DEFAULT_RATE_LIMIT
            ),
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        if "Description" in found:
            doc["Description"] = found["Description"]
        key = scope.key(name)
        if not await self._create(API_DESTINATION, key, doc, scope, MAX_API_DESTINATIONS):
            raise ResourceAlreadyExists(f"An api-destination '{name}' already exists.")
        return {
            "ApiDestinationArn": arn,
            "ApiDestinationState": destination_state(state),
            **_times(doc, authorized=False),
        }

    async def describe_api_destination(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DescribeApiDestination: the destination, its state its connection's."""
        name = self._name_only(params)
        entry = await self.store.catalog_get(API_DESTINATION, scope.key(name))
        if entry is None:
            raise _destination_missing("describe", name)
        state = await self._connection_state(str(entry.doc["ConnectionArn"]), scope)
        return {**entry.doc, "ApiDestinationState": destination_state(state)}

    async def update_api_destination(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """UpdateApiDestination: the members given replace those stored."""
        v = Violations(params)
        name = _name(v)
        found = self._destination_params(v, create=False)
        v.check()
        assert name is not None
        if "InvocationEndpoint" in found:
            self._check_endpoint(found["InvocationEndpoint"], "InvocationEndpoint")
        if "ConnectionArn" in found:
            await self._require_connection(found["ConnectionArn"], scope)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            doc.update(found)
            doc["LastModifiedTime"] = time.time()
            return doc

        doc = await self._change(
            API_DESTINATION,
            scope.key(name),
            change,
            lambda: _destination_missing("update", name),
        )
        state = await self._connection_state(str(doc["ConnectionArn"]), scope)
        return {
            "ApiDestinationArn": doc["ApiDestinationArn"],
            "ApiDestinationState": destination_state(state),
            **_times(doc, authorized=False),
        }

    async def delete_api_destination(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DeleteApiDestination: deliveries to it then fail (not retried)."""
        name = self._name_only(params)
        key = scope.key(name)
        if await self.store.catalog_get(API_DESTINATION, key) is None:
            raise _destination_missing("delete", name)
        await self.store.catalog_delete(API_DESTINATION, key)
        return {}

    async def list_api_destinations(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """ListApiDestinations: by name, filtered by name prefix and connection."""
        v = Violations(params)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=64, pattern=NAME_PATTERN)
        connection = v.string(
            "ConnectionArn",
            "connectionArn",
            min_len=1,
            max_len=1600,
            pattern=CONNECTION_ARN_PATTERN,
        )
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        docs = [
            {k: val for k, val in e.doc.items() if k != "Description"}
            for e in await self._owned(API_DESTINATION, scope)
            if str(e.doc["Name"]).startswith(prefix or "")
            and (connection is None or e.doc["ConnectionArn"] == connection)
        ]
        page, more = _page(
            docs, f"ListApiDestinations:{prefix or ''}:{connection or ''}", token, limit
        )
        arns = sorted({str(d["ConnectionArn"]) for d in page})
        states = dict(
            zip(
                arns,
                await asyncio.gather(*(self._connection_state(a, scope) for a in arns)),
                strict=True,
            )
        )
        for doc in page:
            doc["ApiDestinationState"] = destination_state(states[str(doc["ConnectionArn"])])
        return {"ApiDestinations": page, **more}
