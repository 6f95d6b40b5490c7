"""Webhook targets: POST the rendered payload to an ``http://`` or ``https://`` URL.

All webhooks share one :class:`aiohttp.ClientSession` with a keep-alive connection pool:
measured on the development machine aiohttp costs ~0.11 ms of CPU per POST against ~1 ms
for httpx, and delivery is the expensive half of eventyard. The pool has no global or
per-host connection limit by default, because such a limit would let a hanging
webhook hold connections other targets need; the engine's per-target concurrency is
what bounds the number of connections.

Status handling follows EventBridge API destinations: 2xx is delivered; 429, 5xx,
connection errors and timeouts are retried; any other status is a permanent failure.
``Retry-After`` on 429 and 503 is honoured (a negative value stops the retries). Every
request carries ``X-Eventyard-Event-Id`` and ``X-Eventyard-Attempt`` so that consumers
can de-duplicate.

A target's ``HttpParameters`` fill the URL's ``*`` wildcards and add headers and query
parameters (:mod:`eventyard.server.delivery.http_parameters`); a target with signing
secrets signs each attempt the Standard Webhooks way, at the attempt's time
(:mod:`eventyard.server.delivery.signing`).
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import aiohttp

from eventyard._version import __version__
from eventyard.errors import DeliveryError
from eventyard.server.delivery.outbound import OutboundPolicy, OutboundRefused, PolicyResolver
from eventyard.server.delivery.signing import signature_headers
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import DeliveryDeferred, TargetKind
from eventyard.server.store import Delivery

__all__ = ["HttpTarget", "parse_retry_after", "retry_after_of", "sending", "status_error"]

#: At most this much of a response body is read (the rest closes the connection).
MAX_RESPONSE_BYTES: Final = 64 * 1024
#: At most this much of an error response's body goes into the error message.
MAX_ERROR_SNIPPET: Final = 256
_JSON_TYPE: Final = {"Content-Type": "application/json; charset=utf-8"}


class HttpTarget:
    """POSTs payloads to webhooks over one shared connection pool.

    Args:
        user_agent: the ``User-Agent`` header; ``eventyard/<version>`` by default.
        limit_per_host: connections per host; 0 (the default) means no limit.
        clock: the time of an attempt, for ``webhook-timestamp`` (epoch seconds).
    """

    kind: TargetKind = "http"
    settles = False

    def __init__(
        self,
        *,
        user_agent: str | None = None,
        limit_per_host: int = 0,
        policy: OutboundPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._user_agent = user_agent or f"eventyard/{__version__}"
        self._clock = clock
        self._limit_per_host = limit_per_host
        self._policy = policy
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=self._limit_per_host,
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

    async def send(self, spec: TargetSpec, delivery: Delivery) -> dict[str, Any]:
        """POST ``delivery.payload`` to ``spec.arn`` (with its ``HttpParameters``),
        signed when the target has signing secrets.

        Raises:
            DeliveryError: the webhook did not answer 2xx; :class:`DeliveryDeferred`
                when it asked for a minimum wait with ``Retry-After``; not retryable
                when the ``HttpParameters`` cannot be applied to the event.
        """
        url, extra = spec.arn, dict[str, str]()
        if spec.http_parameters is not None:
            url, extra = spec.http_parameters.apply(url, delivery.event)
        if self._policy is not None:
            # a literal address never reaches the resolver: check it here
            refused = self._policy.check_url(url)
            if refused is not None:
                raise DeliveryError(
                    f"the target URL is refused: {refused}",
                    retryable=False,
                    error_code="OUTBOUND_POLICY",
                )
        headers = {
            # a Content-Type among the HttpParameters replaces ours (whatever its case)
            **({} if any(k.lower() == "content-type" for k in extra) else _JSON_TYPE),
            **extra,
            "X-Eventyard-Event-Id": delivery.event_id,
            "X-Eventyard-Attempt": str(delivery.attempts + 1),
        }
        if spec.signing_keys:
            headers.update(
                signature_headers(
                    spec.signing_keys, delivery.event_id, int(self._clock()), delivery.payload
                )
            )
        session = self._get_session()
        with sending(spec.timeout, url_kind="webhook", peer="the target"):
            async with session.post(
                url,
                data=delivery.payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=spec.timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    await _drain(response)
                    return {"status": status}
                snippet = await _snippet(response)
                raise status_error(status, response.reason, snippet, retry_after_of(response))


@contextlib.contextmanager
def sending(timeout: float, *, url_kind: str, peer: str) -> Iterator[None]:
    """Translate what an aiohttp request (and its answer) raises into DeliveryErrors.

    ``url_kind`` names the URL in an invalid-URL error ("webhook", "endpoint"), ``peer``
    the other end in a connection error ("the target", "the API destination").
    """
    try:
        yield
    except TimeoutError:
        raise DeliveryError(
            f"no answer within {timeout:g} s", retryable=True, error_code="TIMEOUT"
        ) from None
    except aiohttp.InvalidURL as exc:
        raise DeliveryError(
            f"invalid {url_kind} URL: {exc}", retryable=False, error_code="INVALID_URL"
        ) from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, OutboundRefused):
            raise DeliveryError(
                str(exc.os_error), retryable=False, error_code="OUTBOUND_POLICY"
            ) from None
        raise _connection_failed(exc, peer) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise _connection_failed(exc, peer) from None
    except ValueError as exc:
        # aiohttp refuses what it cannot put on the wire (a header value with a line
        # break, say): no later attempt will do better.
        raise DeliveryError(
            f"cannot send the request: {exc}", retryable=False, error_code="INVALID_PARAMETER"
        ) from None


def retry_after_of(response: aiohttp.ClientResponse) -> float | None:
    """The ``Retry-After`` of a 429 or 503 answer (None for other statuses)."""
    if response.status not in (429, 503):
        return None
    return parse_retry_after(response.headers.get("Retry-After"))


def _connection_failed(exc: BaseException, peer: str) -> DeliveryError:
    # Only the kind of failure: the address, port and the OS's words ("Connect call
    # failed", "refused" vs "timed out") would map the network behind the target for
    # whoever reads the dead-letter queue.
    return DeliveryError(
        f"connection to {peer} failed ({type(exc).__name__})",
        retryable=True,
        error_code="CONNECTION_ERROR",
    )


def status_error(
    status: int,
    reason: str | None,
    snippet: str,
    retry_after: float | None,
    retryable: frozenset[int] = frozenset({429}),
) -> DeliveryError:
    """The error of a non-2xx answer: retryable for ``retryable`` statuses and 5xx
    (deferred by a ``Retry-After``), for good otherwise."""
    message = f"HTTP {status} {reason or ''}".rstrip()
    if snippet:
        message = f"{message}: {snippet}"
    if status in retryable or status >= 500:
        code = "THROTTLING" if status == 429 else f"HTTP_{status // 100}XX"
        if retry_after is None:
            return DeliveryError(message, retryable=True, error_code=code, status=status)
        if retry_after < 0:
            # API destinations' rule: a negative Retry-After means "do not retry".
            return DeliveryError(
                f"{message} (negative Retry-After)",
                retryable=False,
                error_code=code,
                status=status,
            )
        return DeliveryDeferred(message, retry_after=retry_after, error_code=code, status=status)
    return DeliveryError(
        message, retryable=False, error_code=f"HTTP_{status // 100}XX", status=status
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns None when the header is absent or unreadable. A negative number is returned
    as it is (the caller treats it as "do not retry"); a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return float(int(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def _drain(response: aiohttp.ClientResponse) -> None:
    # Reading the body lets the connection go back to the pool. The webhook has already
    # accepted the event, so a failure here must not turn into a retry.
    try:
        await _read(response, MAX_RESPONSE_BYTES)
    except (aiohttp.ClientError, OSError, TimeoutError):
        response.close()


async def _snippet(response: aiohttp.ClientResponse) -> str:
    try:
        body = await _read(response, MAX_RESPONSE_BYTES)
    except (aiohttp.ClientError, OSError, TimeoutError):
        response.close()
        return ""
    text = body[:MAX_ERROR_SNIPPET].decode("utf-8", "replace")
    return " ".join(text.split())


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = await response.content.read(limit - total)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    if not response.content.at_eof():
        response.close()
    return b"".join(chunks)
