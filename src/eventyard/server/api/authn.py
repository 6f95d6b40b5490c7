"""Who is calling, and may they reach this server by this name: every request, one place.

:class:`Authenticator` is used by the AWS endpoint (``POST /``) and by the native
endpoints (``/metrics``, ``/v1/...``). It answers two questions:

* **Is the ``Host`` allowed?** (:class:`HostPolicy`) A page in a browser can make a name
  it controls resolve to ``127.0.0.1`` (DNS rebinding) and then drive a loopback server
  as if it were its own origin; the browser still sends the attacker's name in ``Host``.
  Allowed are: IP address literals (a page cannot serve itself from the server's own
  address, so a literal never comes from a rebinding page), ``localhost`` and its
  subdomains (resolved to loopback by the browser itself), this machine's host name,
  the bound address, and the names of the ``allowed_hosts`` setting (``*`` allows any).
  ``/livez`` and ``/readyz`` are not checked: they tell nothing and health checkers
  name the server in many ways.
* **Who signed the request?** With an access key, a request carries a SigV4 signature
  (header or presigned query, :mod:`eventyard.server.auth.sigv4`) or ``Authorization:
  Bearer <token>``; the key's account is the :class:`~eventyard.server.auth.Principal`
  the operation acts for.

**Dev mode.** While no access key exists and the server listens on a loopback address
(or was started with ``insecure_no_auth``), any credentials are accepted and requests
act in the home account (``settings.account_id``), as the README's ``any``/``any``
snippets need. The switch is live: the moment a key is created (through the admin
channel of the running server), signatures are required; when the last key is deleted,
a loopback server is open again. The answer costs no I/O: the keyring keeps the count.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from eventyard.errors import (
    AuthenticationError,
    QueryAuthenticationError,
    ServiceError,
    ServiceUnavailable,
    StoreError,
)
from eventyard.server.auth.keys import Keyring, Principal
from eventyard.server.auth.sigv4 import (
    Service,
    SignedRequestParts,
    incomplete,
    screen,
    unrecognized,
    verify,
)
from eventyard.server.config import Settings

__all__ = ["Authenticator", "HostPolicy", "Screened", "is_loopback", "service_of"]

_T = TypeVar("_T")

log = structlog.get_logger("eventyard.server.auth")

_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_BEARER = "bearer "
_HOST_CACHE = 1024  # distinct Host values remembered (clients send the same few)
_SHOWN_HOST = 100  # characters of a refused Host repeated in the answer


def is_loopback(host: str) -> bool:
    """Whether the bind address ``host`` is reachable only from this machine."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def service_of(target: str) -> Service:
    """The API an ``X-Amz-Target`` names, which chooses the shape of its errors."""
    return "sqs" if target.startswith("AmazonSQS.") else "events"


def _hostname(value: str) -> str | None:
    """The host of a ``Host`` header value (port, brackets and final dot removed)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        rest = value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return value[1:end]
    name, colon, port = value.rpartition(":")
    if not colon:
        name = port
    elif not port.isdigit():
        return None
    return name.removesuffix(".") or None


class HostPolicy:
    """Which ``Host`` values a request may carry (the module docstring says why).

    Args:
        bind: the address the server listens on.
        allowed: the ``allowed_hosts`` setting: comma-separated names, ``*.example.com``
            for subdomains, ``*`` for any.
    """

    def __init__(self, bind: str, allowed: str) -> None:
        patterns = [item.strip().lower().removesuffix(".") for item in allowed.split(",")]
        patterns = [item for item in patterns if item]
        self.any = "*" in patterns
        self.names = set(_LOOPBACK_NAMES)
        self.suffixes = [".localhost"]
        own = socket.gethostname().lower()
        if own:
            self.names.add(own)
        if bind.strip("[]").lower() not in _WILDCARD_BINDS:
            self.names.add(bind.strip("[]").lower())
        for item in patterns:
            if item.startswith("*."):
                self.suffixes.append(item[1:])
            elif item != "*":
                self.names.add(item)
        self._seen: dict[str, bool] = {}

    def allows(self, value: str | None) -> bool:
        """Whether a request with this ``Host`` header value (None: absent) is allowed."""
        if value is None:
            return self.any
        known = self._seen.get(value)
        if known is not None:
            return known
        verdict = self._decide(value)
        if len(self._seen) >= _HOST_CACHE:
            self._seen.clear()
        self._seen[value] = verdict
        return verdict

    def _decide(self, value: str) -> bool:
        if self.any:
            return True
        name = _hostname(value)
        if name is None:
            return False
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            return True
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)


@dataclass(frozen=True, slots=True)
class Screened:
    """What :meth:`Authenticator.screen` found before the body was read.

    Attributes:
        final: the answer is complete (a bearer token, or dev mode); else the SigV4
            signature is still to be verified with the body.
        principal: the caller when ``final`` (None: the home account, dev mode).
    """

    final: bool
    principal: Principal | None


def _header(scope: Mapping[str, Any], wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class Authenticator:
    """The Host check and the authentication of every request.

    Args:
        settings: the server's settings (bind address, ``allowed_hosts``,
            ``insecure_no_auth``, region, clock skew).
        clock: the time source signatures are checked against (epoch seconds).

    Attributes:
        keyring: the accounts and keys, set once the store is open (None before).
        hosts: the Host policy.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.keyring: Keyring | None = None
        self.hosts = HostPolicy(settings.host, settings.allowed_hosts)
        # without keys, anyone may call: only where nobody else can reach the server,
        # or where the operator said so
        self.open_without_keys = is_loopback(settings.host) or settings.insecure_no_auth
        self._regions = frozenset({settings.region})

    @property
    def dev_mode(self) -> bool:
        """Whether any credentials are accepted right now (no key exists, and may not)."""
        keyring = self.keyring
        return self.open_without_keys and (keyring is None or not keyring.has_keys())

    def host_allowed(self, scope: Mapping[str, Any]) -> bool:
        """Whether the request's ``Host`` is one this server answers to."""
        return self.hosts.allows(_header(scope, b"host"))

    def host_refusal(self, scope: Mapping[str, Any], service: Service) -> ServiceError:
        """The AWS-shaped answer to a request whose ``Host`` is not allowed (HTTP 403)."""
        host = _header(scope, b"host")
        shown = "(none)" if host is None else repr(host[:_SHOWN_HOST])
        message = (
            f"Host {shown} is not a name this server answers to. If a proxy or a DNS name "
            "serves it, add the name to allowed_hosts (EVENTYARD_ALLOWED_HOSTS)."
        )
        if service == "sqs":
            return QueryAuthenticationError("AccessDenied", message, status=403)
        return ServiceError(message, code="AccessDeniedException", status=403)

    async def screen(self, scope: Mapping[str, Any], service: Service) -> Screened:
        """Check, before the body is read, everything that does not need it.

        A bearer token and dev mode are decided in full (``final``); for SigV4 the form
        of the credentials, their scope, the clock and that the access key exists are
        checked, and the signature is left to :meth:`authenticate` once the body is in.
        A request refused here is refused without its body ever being buffered.

        Raises:
            AuthenticationError: as :meth:`authenticate`.
            ServiceUnavailable: as :meth:`authenticate`.
        """
        keyring = self._keyring()
        if keyring is None:
            return Screened(final=True, principal=None)
        return await self._guarded(self._screen(keyring, scope, service), service)

    async def authenticate(
        self, scope: Mapping[str, Any], body: bytes, service: Service
    ) -> Principal | None:
        """The principal of a request; None in dev mode (the home account).

        Args:
            scope: the ASGI scope of the request.
            body: its body (SigV4 signs its hash).
            service: the API whose error codes answer a refusal.

        Raises:
            AuthenticationError: the credentials are missing, unknown or do not verify;
                an unexpected exception while reading them is logged and answered as
                ``IncompleteSignature``.
            ServiceUnavailable: the keyring is not loaded yet (the server is starting),
                or the store failed while looking the key up.
        """
        keyring = self._keyring()
        if keyring is None:
            return None
        return await self._guarded(self._verify(keyring, scope, body, service), service)

    def _keyring(self) -> Keyring | None:
        """The keyring when credentials must be checked; None in dev mode."""
        keyring = self.keyring
        if keyring is None:
            if self.open_without_keys:
                return None
            raise ServiceUnavailable("The server is not ready.")
        if self.open_without_keys and not keyring.has_keys():
            return None
        return keyring

    async def _guarded(self, check: Awaitable[_T], service: Service) -> _T:
        """``check``'s result; an unforeseen failure is a refusal, never a 5xx."""
        try:
            return await check
        except ServiceError:
            raise
        except StoreError as exc:
            log.error("credentials not checked: the store failed", error=str(exc))
            raise ServiceUnavailable("The credentials could not be checked; retry.") from None
        except Exception:
            # A request no check foresaw must still be refused as a client's mistake,
            # never answered with a 5xx: the input is at fault until shown otherwise.
            log.exception("credentials could not be read", service=service)
            raise incomplete(service, "The request's credentials could not be read.") from None

    async def _screen(
        self, keyring: Keyring, scope: Mapping[str, Any], service: Service
    ) -> Screened:
        authorization = _header(scope, b"authorization")
        if authorization is not None and authorization[:7].lower() == _BEARER:
            return Screened(True, await self._bearer(keyring, authorization, service))
        await screen(
            SignedRequestParts.from_asgi(scope, b""),
            keyring,
            service=service,
            now=self.clock(),
            regions=self._regions,
            max_skew=self.settings.auth_max_skew,
        )
        return Screened(final=False, principal=None)

    @staticmethod
    async def _bearer(keyring: Keyring, authorization: str, service: Service) -> Principal:
        principal = await keyring.authenticate_bearer(authorization[7:].strip())
        if principal is None:
            raise unrecognized(service)
        return principal

    async def _verify(
        self, keyring: Keyring, scope: Mapping[str, Any], body: bytes, service: Service
    ) -> Principal:
        authorization = _header(scope, b"authorization")
        if authorization is not None and authorization[:7].lower() == _BEARER:
            return await self._bearer(keyring, authorization, service)
        return await verify(
            SignedRequestParts.from_asgi(scope, body),
            keyring,
            service=service,
            now=self.clock(),
            regions=self._regions,
            max_skew=self.settings.auth_max_skew,
        )

    async def authenticate_native(self, scope: Mapping[str, Any]) -> Principal | None:
        """The principal of a request to a native endpoint (a GET, no body).

        Bearer tokens and SigV4 are both accepted; a refusal is HTTP 401 with the
        EventBridge error code (the native endpoints answer JSON errors of that shape).

        Raises:
            AuthenticationError: the request is not authenticated (``status`` 401).
            ServiceUnavailable: the server is starting.
        """
        try:
            return await self.authenticate(scope, b"", "events")
        except AuthenticationError as exc:
            exc.status = 401
            raise
