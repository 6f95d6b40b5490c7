"""The outbound policy: which addresses push targets may reach.

A router that POSTs wherever a rule says is a server-side request forgery tool: a
target pointed at ``169.254.169.254`` reads cloud credentials, one pointed at a
loopback admin port drives it, and the connection errors alone map a private network.
By default webhooks may use only ``http``/``https`` and only public unicast addresses.
An allow-list (CIDR blocks and host names) opens more, for local development and tests.

The address is checked twice: when the target is created (a literal address, or a
name that is not allow-listed and resolves only to refused addresses, fails
``PutTargets`` with a clear message), and again at every connection, by the resolver
the HTTP client connects through (:class:`PolicyResolver`), so a name that is
re-pointed after the check (DNS rebinding) still cannot reach a refused address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from eventyard.errors import ConfigurationError, OutboundRefused
from eventyard.server.config import Settings

__all__ = [
    "LOOPBACK",
    "OutboundPolicy",
    "OutboundRefused",
    "PolicyResolver",
    "is_public",
    "outbound_allow",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
#: what ``--demo`` adds to the allow-list: webhooks on this machine
LOOPBACK: Final = ("127.0.0.0/8", "::1", "localhost")
_SCHEMES: Final = frozenset({"http", "https"})


def is_public(address: Address) -> bool:
    """Whether ``address`` is a public unicast address, looking inside IPv6 wrappings.

    IPv4-mapped (``::ffff:a.b.c.d``), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``)
    addresses are judged by the IPv4 address they carry; Teredo is refused outright.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return is_public(address.sixtofour)
        if address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast


@dataclass(slots=True, frozen=True)
class OutboundPolicy:
    """The addresses push targets may reach beyond public ones.

    Attributes:
        networks: allow-listed CIDR blocks (a single address is a /32 or /128).
        hosts: allow-listed host names, lower case; ``*.example.com`` allows subdomains.
    """

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> OutboundPolicy:
        """A policy from allow-list entries: CIDR blocks, addresses or host names.

        Raises:
            ConfigurationError: an entry is none of these.
        """
        networks: list[Network] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            labels = name.removeprefix("*.").split(".")
            if not all(label and _host_label(label) for label in labels):
                raise ConfigurationError(
                    f"outbound allow-list entry {raw!r} is neither a CIDR block, an "
                    "address nor a host name"
                )
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        """Whether the host name itself is allow-listed (then any address it has is)."""
        name = host.lower().rstrip(".")
        if name in self.hosts:
            return True
        return any(
            allowed.startswith("*.") and name.endswith(allowed[1:]) for allowed in self.hosts
        )

    def allows_address(self, address: Address) -> bool:
        """Whether connecting to ``address`` is allowed."""
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        candidates = (address,) if mapped is None else (address, mapped)
        return is_public(address) or any(a in n for a in candidates for n in self.networks)

    def check_url(self, url: str) -> str | None:
        """Why a webhook URL is refused before any lookup, or None when it may be tried.

        Checks the scheme, the presence of a host, and a literal address. A host name
        is judged at connection time (its addresses can change).
        """
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            return "it is not a valid URL"
        if parts.scheme.lower() not in _SCHEMES:
            return "only http and https URLs are allowed"
        if not host:
            return "the URL has no host"
        address = _literal(host)
        if address is not None:
            if not self.allows_address(address):
                return "its address is not public and not in the outbound allow-list"
            return None
        if host.lower().rstrip(".") == "localhost" and not self.allows_host(host):
            return "its address is not public and not in the outbound allow-list"
        return None


def outbound_allow(settings: Settings) -> list[str]:
    """The allow-list entries of ``settings`` (``--demo`` adds :data:`LOOPBACK`)."""
    entries = [e.strip() for e in settings.outbound_allow.split(",") if e.strip()]
    return [*entries, *LOOPBACK] if settings.demo else entries


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that returns only the addresses the policy allows.

    Every connection the HTTP client opens goes through it, so a check passed earlier
    does not let a re-pointed name through. When no address is left,
    :class:`OutboundRefused` is raised.
    """

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._policy.allows_host(host):
            return results
        allowed = [r for r in results if self._policy.allows_address(_address(r["host"]))]
        if not allowed:
            raise OutboundRefused("the target's address is not allowed by the outbound policy")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])


def _host_label(label: str) -> bool:
    return len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) and label.isascii()
