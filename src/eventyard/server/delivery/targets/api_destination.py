"""API destination targets: a third-party HTTP API called with auth and a rate limit.

One attempt resolves the target's API destination and its connection
(:class:`~eventyard.server.delivery.destinations.ApiDestinations`, read from the catalog
every time), then sends the rendered payload with the destination's ``HttpMethod`` to
its ``InvocationEndpoint``, each ``*`` of which is replaced in order by the target's
``HttpParameters.PathParameterValues``. The request carries the target's header and
query string parameters, then the connection's ``InvocationHttpParameters`` (which win
on a conflict; its body parameters are added to a JSON object payload), then the
connection's authorization: ``Authorization: Basic`` (``BASIC``), the API key header
(``API_KEY``) or ``Authorization: Bearer <token>`` (``OAUTH_CLIENT_CREDENTIALS``, the
token from :class:`~eventyard.server.delivery.oauth.TokenCache`).

**Rate limit.** ``InvocationRateLimitPerSecond`` is honoured per destination by one
:class:`RateLimiter` shared by every target of that destination: calls are spaced at
least ``1/rate`` seconds apart, so no second holds more than ``rate`` of them. A call
waits for its slot in its own attempt (holding one of its lane's workers, never another
target's); when the slot is more than :data:`MAX_RATE_WAIT` seconds away the attempt is
deferred instead (``DeliveryDeferred``, ``RATE_LIMITED``) and the record waits in the
store until then.

**Status codes**, as EventBridge treats API destinations: 2xx is delivered; 401, 407,
409, 429 and 5xx, timeouts and connection failures are retried (``Retry-After`` on 429
and 503 is honoured, a negative one stops the retries); other codes fail for good. A
401 or 407 makes an OAuth connection fetch a new token and call again once; for
``BASIC`` and ``API_KEY`` it deauthorizes the connection, as on AWS.

**Connection states.** An OAuth connection is ``AUTHORIZING`` until a delivery first
needs its token: a token obtained makes it ``AUTHORIZED``, a failed token request
``DEAUTHORIZED`` with the reason in ``StateReason``. Deliveries through a
``DEAUTHORIZED`` connection fail with a retryable ``CONNECTION_DEAUTHORIZED`` (the DLQ
message says why) until UpdateConnection authorizes it again.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import orjson

from eventyard._version import __version__
from eventyard.errors import DeliveryDeferred, DeliveryError
from eventyard.server.delivery.destinations import (
    AUTHORIZED,
    DEAUTHORIZED,
    ApiDestinations,
    Connection,
    Destination,
)
from eventyard.server.delivery.oauth import TokenCache, TokenRequest
from eventyard.server.delivery.outbound import OutboundPolicy, PolicyResolver
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import TargetKind
from eventyard.server.delivery.targets.http import retry_after_of, sending, status_error
from eventyard.server.store import Delivery

__all__ = ["MAX_RATE_WAIT", "RATE_LIMITED", "ApiDestinationTarget", "RateLimiter"]

#: seconds an attempt may wait for its rate-limit slot before it is deferred instead
MAX_RATE_WAIT: Final = 10.0
#: the error code of a call deferred by the rate limit (eventyard held it back: not a
#: failure of the destination, so it does not make the target FAILING)
RATE_LIMITED: Final = "RATE_LIMITED"
_RETRYABLE: Final = frozenset({401, 407, 409, 429})
_REFUSED_CREDENTIALS: Final = frozenset({401, 407})
_NO_BODY: Final = frozenset({"GET", "HEAD"})
_MAX_RESPONSE: Final = 64 * 1024
# destinations whose next slot the rate limiter keeps before it drops past ones
_KEPT_SLOTS: Final = 1024
_SNIPPET: Final = 256


class RateLimiter:
    """Evenly spaced call slots per key: one every ``1/rate`` seconds.

    Args:
        clock: a monotonic time source (seconds).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}

    def reserve(self, key: str, rate: float, max_wait: float) -> tuple[float, bool]:
        """Take the next slot of ``key`` if it comes within ``max_wait`` seconds.

        Returns:
            ``(wait, taken)``: the seconds until the slot, and whether it was taken
            (when it is further than ``max_wait``, it is not, and nothing changes).
        """
        now = self._clock()
        slot = max(now, self._next.get(key, now))
        wait = slot - now
        if wait > max_wait:
            return wait, False
        if len(self._next) >= _KEPT_SLOTS and key not in self._next:
            # a slot in the past holds nothing: forget those destinations
            self._next = {k: t for k, t in self._next.items() if t > now}
        self._next[key] = slot + 1.0 / rate
        return wait, True


def _connection_pairs(parameters: Mapping[str, Any] | None, name: str) -> list[tuple[str, str]]:
    items = (parameters or {}).get(name) or []
    return [
        (str(item["Key"]), str(item.get("Value", "")))
        for item in items
        if isinstance(item, dict) and "Key" in item
    ]


def _with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return url
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(pairs)
    return urlunsplit(parts._replace(query=query))


def _merge_body(payload: bytes, pairs: list[tuple[str, str]]) -> bytes:
    """The payload with the connection's body parameters added, when it is an object."""
    if not pairs:
        return payload
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    if not isinstance(body, dict):
        return payload
    body.update(pairs)
    return orjson.dumps(body)


class ApiDestinationTarget:
    """Calls API destinations with their connection's authorization and rate limit.

    Args:
        destinations: resolves destination ARNs and keeps connection states.
        policy: the outbound policy (None: unrestricted, for unit tests).
        tokens: the OAuth token cache (a new one by default).
        limiter: the per-destination rate limiter (a new one by default).
        user_agent: the ``User-Agent`` header.
    """

    kind: TargetKind = "api-destination"
    settles = False

    def __init__(
        self,
        destinations: ApiDestinations,
        *,
        policy: OutboundPolicy | None = None,
        tokens: TokenCache | None = None,
        limiter: RateLimiter | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.destinations = destinations
        self.tokens = tokens or TokenCache()
        self.limiter = limiter or RateLimiter()
        self._policy = policy
        self._user_agent = user_agent or f"eventyard/{__version__} (api-destination)"
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                ttl_dns_cache=60,
                resolver=None if self._policy is None else PolicyResolver(self._policy),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool. Idempotent; a later send opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _check_url(self, url: str, what: str) -> None:
        refused = self._policy.check_url(url) if self._policy is not None else None
        if refused is None and urlsplit(url).scheme.lower() not in ("http", "https"):
            refused = "only http and https URLs are allowed"
        if refused is not None:
            raise DeliveryError(
                f"the {what} {url} is refused: {refused}",
                retryable=False,
                error_code="OUTBOUND_POLICY",
            )

    async def send(self, spec: TargetSpec, delivery: Delivery) -> dict[str, Any]:
        """Call the API destination ``spec.arn`` with ``delivery.payload``.

        Raises:
            DeliveryError: the call failed (see the module docstring for which failures
                are retried); :class:`DeliveryDeferred` for a ``Retry-After`` or a rate
                limit slot too far away.
        """
        destination = await self.destinations.resolve(spec.arn)
        connection = destination.connection
        if connection.auth is None or connection.state == DEAUTHORIZED:
            reason = f": {connection.reason}" if connection.reason else ""
            raise DeliveryError(
                f"the connection {connection.name} is DEAUTHORIZED{reason}; UpdateConnection "
                "authorizes it again",
                retryable=True,
                error_code="CONNECTION_DEAUTHORIZED",
            )
        # the target's HttpParameters (static values or JSON paths into the event), then
        # the connection's invocation parameters, which win, as AWS documents
        url = destination.endpoint
        target_headers: dict[str, str] = {}
        if spec.http_parameters is not None:
            url, target_headers = spec.http_parameters.apply(url, delivery.event)
        if "*" in urlsplit(url).path:
            raise DeliveryError(
                f"the endpoint {destination.endpoint} has path wildcards (*) that the "
                "target's HttpParameters.PathParameterValues does not fill",
                retryable=False,
                error_code="INVALID_PARAMETER",
            )
        self._check_url(url, "endpoint")
        invocation = connection.auth.get("InvocationHttpParameters") or {}
        url = _with_query(url, _connection_pairs(invocation, "QueryStringParameters"))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Eventyard-Event-Id": delivery.event_id,
            "X-Eventyard-Attempt": str(delivery.attempts + 1),
        }
        headers.update(target_headers)
        headers.update(_connection_pairs(invocation, "HeaderParameters"))
        body: bytes | None = None
        if destination.method not in _NO_BODY:
            body = _merge_body(delivery.payload, _connection_pairs(invocation, "BodyParameters"))
        # the slot is taken last, right before the call: a token request in between would
        # bunch the calls up at the destination
        token = await self._authorize(connection, headers)
        await self._wait_for_slot(destination)
        status, reason, snippet, retry_after = await self._call(
            destination.method, url, headers, body, spec.timeout
        )
        if status in _REFUSED_CREDENTIALS:
            if token is not None:
                # the token may have been revoked early: one new token, one more call
                self.tokens.invalidate(connection.key, token)
                await self._authorize(connection, headers)
                await self._wait_for_slot(destination)
                status, reason, snippet, retry_after = await self._call(
                    destination.method, url, headers, body, spec.timeout
                )
            else:
                await self.destinations.set_state(
                    connection,
                    DEAUTHORIZED,
                    f"the API destination {destination.name} answered HTTP {status}",
                )
        if 200 <= status < 300:
            return {"status": status}
        raise status_error(status, reason, snippet, retry_after, _RETRYABLE)

    async def _wait_for_slot(self, destination: Destination) -> None:
        wait, taken = self.limiter.reserve(destination.arn, destination.rate, MAX_RATE_WAIT)
        if not taken:
            raise DeliveryDeferred(
                f"rate limit of {destination.rate}/s of API destination {destination.name}: "
                f"the next call slot is {wait:.1f} s away",
                retry_after=wait,
                error_code=RATE_LIMITED,
            )
        if wait > 0:
            await asyncio.sleep(wait)

    async def _authorize(self, connection: Connection, headers: dict[str, str]) -> str | None:
        """Add the connection's authorization to ``headers``; the OAuth token used, if any."""
        auth = connection.auth or {}
        if connection.auth_type == "BASIC":
            basic = auth.get("BasicAuthParameters") or {}
            pair = f"{basic.get('Username', '')}:{basic.get('Password', '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            return None
        if connection.auth_type == "API_KEY":
            key = auth.get("ApiKeyAuthParameters") or {}
            headers[str(key.get("ApiKeyName", ""))] = str(key.get("ApiKeyValue", ""))
            return None
        oauth = auth.get("OAuthParameters") or {}
        request = TokenRequest(connection.key, connection.generation, oauth)
        try:
            self._check_url(str(oauth.get("AuthorizationEndpoint", "")), "authorization endpoint")
            token = await self.tokens.token(request, self._get_session())
        except DeliveryError as exc:
            await self.destinations.set_state(connection, DEAUTHORIZED, exc.message)
            raise
        if connection.state != AUTHORIZED:
            await self.destinations.set_state(connection, AUTHORIZED)
        headers["Authorization"] = f"Bearer {token}"
        return token

    async def _call(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> tuple[int, str, str, float | None]:
        """One HTTP call: ``(status, reason, body snippet, Retry-After seconds)``."""
        with sending(timeout, url_kind="endpoint", peer="the API destination"):
            async with self._get_session().request(
                method,
                url,
                data=body,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                text = await _read(response)
                snippet = "" if 200 <= status < 300 else _snippet(text)
                return status, response.reason or "", snippet, retry_after_of(response)


async def _read(response: aiohttp.ClientResponse) -> bytes:
    try:
        data = await response.content.read(_MAX_RESPONSE)
    except (aiohttp.ClientError, OSError, TimeoutError):
        response.close()
        return b""
    if not response.content.at_eof():
        response.close()
    return data


def _snippet(body: bytes) -> str:
    return " ".join(body[:_SNIPPET].decode("utf-8", "replace").split())
