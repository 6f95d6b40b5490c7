"""OAuth client credentials for API destinations: tokens fetched, cached and refreshed.

A connection of type ``OAUTH_CLIENT_CREDENTIALS`` exchanges its client id and secret
for an access token at its ``AuthorizationEndpoint`` (RFC 6749 §4.4): one request with
the connection's ``HttpMethod``, the client authenticated with HTTP Basic
(``ClientID:ClientSecret``), ``grant_type=client_credentials`` and the
``OAuthHttpParameters`` (headers, query string parameters, and body parameters as form
fields; with ``GET`` they go in the query string). The answer is the JSON of RFC 6749
§5.1: ``access_token``, ``expires_in`` (seconds), ``token_type``.

:class:`TokenCache` keeps one token per connection until shortly before it expires (60
s before, as EventBridge refreshes; a tenth of its lifetime for tokens shorter than ten
minutes) and fetches the next one when a delivery needs it: as on AWS, refreshing is
not a background task. Concurrent deliveries of one connection share one fetch. A token
the destination refused (401 or 407) is dropped with :meth:`TokenCache.invalidate`, so
the next call fetches a new one. A token belongs to the generation of the connection's
secrets it was obtained with: after UpdateConnection it is not used again.

May import: the store protocol and the shared modules (nothing of the engine).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import orjson

from eventyard.errors import DeliveryError, OutboundRefused

__all__ = ["DEFAULT_EXPIRES_IN", "REFRESH_MARGIN", "TokenCache", "TokenRequest"]

#: seconds before expiry that a token is replaced, at most (EventBridge: 60)
REFRESH_MARGIN: Final = 60.0
#: the lifetime assumed when the endpoint gives no ``expires_in``
DEFAULT_EXPIRES_IN: Final = 3600.0
_MAX_TOKEN_RESPONSE: Final = 64 * 1024
_SNIPPET: Final = 200


@dataclass(slots=True, frozen=True)
class TokenRequest:
    """What one token request of a connection needs.

    Attributes:
        key: the connection's catalog key (one cached token per key).
        generation: the generation of the connection's secrets.
        oauth: the connection's ``OAuthParameters``, ``ClientSecret`` included.
    """

    key: str
    generation: str
    oauth: Mapping[str, Any] = field(repr=False)  # the client secret: never in a log line


@dataclass(slots=True)
class _Token:
    generation: str
    value: str
    refresh_at: float


def _pairs(parameters: Mapping[str, Any] | None, name: str) -> list[tuple[str, str]]:
    items = (parameters or {}).get(name) or []
    return [
        (str(item["Key"]), str(item.get("Value", "")))
        for item in items
        if isinstance(item, dict) and "Key" in item
    ]


class TokenCache:
    """Access tokens of OAuth connections, fetched on demand and cached.

    Args:
        clock: the time used for expiry (``time.time`` by default; tests pass their own).
        timeout: seconds a token request may take.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, timeout: float = 5.0) -> None:
        self._clock = clock
        self._timeout = timeout
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failures: dict[str, tuple[str, DeliveryError]] = {}
        #: token requests made so far (for metrics and tests)
        self.fetches = 0

    def cached(self, request: TokenRequest) -> str | None:
        """The cached token of the connection if it is still good, else None."""
        token = self._tokens.get(request.key)
        if token is None or token.generation != request.generation:
            return None
        if self._clock() >= token.refresh_at:
            return None
        return token.value

    def invalidate(self, key: str, value: str) -> None:
        """Forget the token ``value`` of connection ``key`` (the destination refused it)."""
        token = self._tokens.get(key)
        if token is not None and token.value == value:
            del self._tokens[key]

    async def token(self, request: TokenRequest, session: aiohttp.ClientSession) -> str:
        """A good access token for the connection: the cached one, or a new one.

        Raises:
            DeliveryError: the authorization endpoint could not be reached, refused the
                client, or did not answer with a token (``error_code``
                ``AUTHORIZATION_FAILED``; the message says why, never with a secret).
        """
        found = self.cached(request)
        if found is not None:
            return found
        lock = self._locks.get(request.key)
        if lock is None:
            lock = self._locks[request.key] = asyncio.Lock()
        failed_before = self._failures.get(request.key)
        async with lock:
            found = self.cached(request)  # another delivery fetched it meanwhile
            if found is not None:
                return found
            failure = self._failures.get(request.key)
            if failure is not None and failure is not failed_before:
                # the fetch this delivery waited for failed: its answer is this one's too
                generation, error = failure
                if generation == request.generation:
                    raise DeliveryError(
                        error.message, retryable=error.retryable, error_code=error.error_code
                    )
            try:
                value, expires_in = await self._fetch(request.oauth, session)
            except DeliveryError as exc:
                self._failures[request.key] = (request.generation, exc)
                raise
            self._failures.pop(request.key, None)
            margin = min(REFRESH_MARGIN, expires_in / 10)
            self._tokens[request.key] = _Token(
                request.generation, value, self._clock() + expires_in - margin
            )
            return value

    async def _fetch(
        self, oauth: Mapping[str, Any], session: aiohttp.ClientSession
    ) -> tuple[str, float]:
        self.fetches += 1
        endpoint = str(oauth.get("AuthorizationEndpoint", ""))
        method = str(oauth.get("HttpMethod", "POST")).upper()
        client = oauth.get("ClientParameters") or {}
        http = oauth.get("OAuthHttpParameters") or {}
        credentials = f"{client.get('ClientID', '')}:{client.get('ClientSecret', '')}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
            "Accept": "application/json",
        }
        headers.update(_pairs(http, "HeaderParameters"))
        query = _pairs(http, "QueryStringParameters")
        form = _pairs(http, "BodyParameters")
        if not any(key == "grant_type" for key, _ in form):
            form.insert(0, ("grant_type", "client_credentials"))
        data: bytes | None = None
        if method == "GET":
            query += form
        else:
            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if query:
            endpoint += ("&" if "?" in endpoint else "?") + urlencode(query)
        try:
            async with session.request(
                method,
                endpoint,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as response:
                body = await response.content.read(_MAX_TOKEN_RESPONSE)
                status = response.status
        except TimeoutError:
            raise _failed(f"no answer within {self._timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutboundRefused):
                raise _failed(str(exc.os_error)) from None
            raise _failed(f"connection failed ({type(exc).__name__})") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _failed(f"the request failed ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            snippet = " ".join(body[:_SNIPPET].decode("utf-8", "replace").split())
            raise _failed(f"HTTP {status}" + (f": {snippet}" if snippet else ""))
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise _failed("the answer holds no access_token")
        expires_in = answer.get("expires_in") if isinstance(answer, dict) else None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            expires_in = DEFAULT_EXPIRES_IN
        return token, max(0.0, float(expires_in))


def _failed(why: str) -> DeliveryError:
    return DeliveryError(
        f"the OAuth authorization endpoint did not issue a token: {why}",
        retryable=True,
        error_code="AUTHORIZATION_FAILED",
    )
