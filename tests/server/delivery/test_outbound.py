"""The outbound policy: public addresses only, unless allow-listed, checked at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from eventyard.errors import ConfigurationError, DeliveryError
from eventyard.server.delivery.outbound import (
    OutboundPolicy,
    OutboundRefused,
    PolicyResolver,
    is_public,
)
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets.http import HttpTarget
from eventyard.server.store import Delivery
from tests.server.delivery.conftest import Webhook, refused_url

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "::1",
    "fd00::1",
    "fe80::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize("text", REFUSED)
def test_non_public_addresses_are_refused_including_ipv6_wrappings(text: str) -> None:
    assert not is_public(ipaddress.ip_address(text))
    assert not OutboundPolicy().allows_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(text: str) -> None:
    assert is_public(ipaddress.ip_address(text))


def test_allow_list_opens_cidr_blocks_addresses_and_host_names() -> None:
    policy = OutboundPolicy.parse(["127.0.0.0/8", "10.0.0.5", "hooks.internal", "*.corp.example"])
    assert policy.allows_address(ipaddress.ip_address("127.0.0.1"))
    assert policy.allows_address(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert policy.allows_address(ipaddress.ip_address("10.0.0.5"))
    assert not policy.allows_address(ipaddress.ip_address("10.0.0.6"))
    assert policy.allows_host("HOOKS.internal.")
    assert policy.allows_host("a.corp.example")
    assert not policy.allows_host("corp.example.evil")


@pytest.mark.parametrize("entry", ["not a host", "10.0.0.0/33", "exa mple.com", "*"])
def test_a_malformed_allow_list_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="outbound allow-list entry"):
        OutboundPolicy.parse([entry])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https URLs are allowed"),
        ("gopher://127.0.0.1:6379/", "only http and https URLs are allowed"),
        ("http://169.254.169.254/latest/meta-data/", "not public"),
        ("http://[::ffff:127.0.0.1]:8080/", "not public"),
        ("http://localhost:4010/", "not public"),
        ("http:///nohost", "the URL has no host"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_urls_are_refused_before_any_lookup_with_a_reason(url: str, reason: str) -> None:
    refused = OutboundPolicy().check_url(url)
    assert refused is not None
    assert reason in refused


def test_public_and_allow_listed_urls_pass_the_static_check() -> None:
    assert OutboundPolicy().check_url("https://example.com/hook") is None
    assert OutboundPolicy.parse(["127.0.0.1"]).check_url("http://127.0.0.1:8080/") is None
    assert OutboundPolicy.parse(["localhost"]).check_url("http://localhost:8080/") is None


class _FixedResolver(AbstractResolver):
    """Answers every name with the given addresses (a name re-pointed by its owner)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_a_name_resolving_to_a_refused_address_is_refused_at_connect_time() -> None:
    resolver = PolicyResolver(OutboundPolicy(), _FixedResolver("127.0.0.1", "10.0.0.1"))
    with pytest.raises(OutboundRefused, match="not allowed by the outbound policy"):
        await resolver.resolve("rebound.example", 80)


async def test_refused_addresses_are_dropped_and_public_ones_kept() -> None:
    resolver = PolicyResolver(OutboundPolicy(), _FixedResolver("10.0.0.1", "93.184.215.14"))
    results = await resolver.resolve("mixed.example", 443)
    assert [r["host"] for r in results] == ["93.184.215.14"]


async def test_an_allow_listed_name_keeps_every_address() -> None:
    policy = OutboundPolicy.parse(["hooks.internal"])
    resolver = PolicyResolver(policy, _FixedResolver("10.0.0.1"))
    assert [r["host"] for r in await resolver.resolve("hooks.internal", 80)] == ["10.0.0.1"]


def _delivery() -> Delivery:
    return Delivery(
        id=1, target="b/r/t", event_id="e", payload=b"{}", event=b"{}", first_seen=0.0, due=0.0,
        attempts=0,
    )  # fmt: skip


def _spec(url: str) -> TargetSpec:
    return TargetSpec(key="b/r/t", arn=url, rule_arn="arn:rule", timeout=5.0)


async def test_a_literal_private_address_is_refused_before_connecting(webhook: Webhook) -> None:
    target = HttpTarget(policy=OutboundPolicy())
    try:
        with pytest.raises(DeliveryError) as refused:
            await target.send(_spec(webhook.url("/hook")), _delivery())
    finally:
        await target.close()
    assert refused.value.error_code == "OUTBOUND_POLICY"
    assert refused.value.retryable is False
    assert webhook.hits == []


async def test_a_name_resolving_to_a_private_address_is_refused_at_connect_time(
    webhook: Webhook,
) -> None:
    name = socket.gethostname()
    found = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    if any(is_public(ipaddress.ip_address(a)) for a in found):
        pytest.skip(f"this machine's name {name} resolves to a public address")
    port = webhook.url("/hook").split(":")[2].split("/")[0]
    target = HttpTarget(policy=OutboundPolicy())
    try:
        with pytest.raises(DeliveryError) as refused:
            await target.send(_spec(f"http://{name}:{port}/hook"), _delivery())
    finally:
        await target.close()
    assert refused.value.error_code == "OUTBOUND_POLICY"
    assert "not allowed by the outbound policy" in refused.value.message
    assert webhook.hits == []


async def test_an_allow_listed_address_is_delivered(webhook: Webhook) -> None:
    target = HttpTarget(policy=OutboundPolicy.parse(["127.0.0.0/8"]))
    try:
        await target.send(_spec(webhook.url("/hook")), _delivery())
    finally:
        await target.close()
    assert len(webhook.hits) == 1


async def test_a_failed_connection_names_no_address_or_port() -> None:
    url = refused_url()
    target = HttpTarget()
    try:
        with pytest.raises(DeliveryError) as failed:
            await target.send(_spec(url), _delivery())
    finally:
        await target.close()
    assert failed.value.error_code == "CONNECTION_ERROR"
    assert failed.value.message == "connection to the target failed (ClientConnectorError)"
