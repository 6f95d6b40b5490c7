"""API destination targets against a real local HTTP API and a real store.

A small aiohttp server on a free port plays both parts: an OAuth authorization
endpoint that issues numbered tokens (and counts the requests for them) and the API the
destination calls (which records each call with its time and can revoke tokens). The
connections and destinations are created through the real operations
(:class:`ConnectionsApi`), so the target reads what the API wrote: sealed secrets,
states. Token expiry runs on a hand-moved clock; the rate limit is measured from the
API's own timestamps (an upper bound on the rate, never a timed assertion on speed).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from eventyard.errors import DeliveryDeferred, DeliveryError
from eventyard.server.accounts import Accounts
from eventyard.server.api.connections import ConnectionsApi
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import CONNECTION
from eventyard.server.config import Settings
from eventyard.server.delivery.destinations import ApiDestinations
from eventyard.server.delivery.http_parameters import HttpParameters
from eventyard.server.delivery.oauth import TokenCache
from eventyard.server.delivery.outbound import OutboundPolicy
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets.api_destination import ApiDestinationTarget, RateLimiter
from eventyard.server.store import Delivery
from eventyard.server.store.sqlite import SQLiteStore

SETTINGS = Settings(account_id="111111111111", outbound_allow="127.0.0.1")
EXPIRES_IN = 100


@dataclass
class Api:
    """What the local API saw and how it answers."""

    url: str = ""
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    token_status: int = 200
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    def tokens_used(self) -> list[str]:
        return [c["authorization"] for c in self.calls]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    state = Api()

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        state.token_requests.append(
            {
                "authorization": request.headers.get("Authorization", ""),
                "tenant": request.headers.get("X-Tenant"),
                "form": form,
                "query": dict(request.query),
            }
        )
        if state.token_status != 200:
            return web.Response(status=state.token_status, text="token service down")
        issued = f"tok-{len(state.token_requests)}"
        return web.json_response(
            {"access_token": issued, "expires_in": EXPIRES_IN, "token_type": "Bearer"}
        )

    async def hook(request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        state.calls.append(
            {
                "at": time.monotonic(),
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "authorization": authorization,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        if authorization.removeprefix("Bearer ") in state.revoked:
            return web.Response(status=401)
        return web.Response(status=state.status, headers=state.headers)

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_route("*", "/hook/{tail:.*}", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("")).rstrip("/")
    try:
        yield state
    finally:
        await server.close()


class Clock:
    """A clock moved by hand (the token cache's sense of time)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    store: SQLiteStore
    api: Api
    control: ConnectionsApi
    target: ApiDestinationTarget
    clock: Clock
    scope: Any

    async def call(self, op: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.control.operations[op](params, self.scope)
        return result

    async def oauth_connection(self, name: str = "oauth") -> str:
        made = await self.call(
            "CreateConnection",
            Name=name,
            AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
            AuthParameters={
                "OAuthParameters": {
                    "AuthorizationEndpoint": f"{self.api.url}/token",
                    "HttpMethod": "POST",
                    "ClientParameters": {"ClientID": "app-1", "ClientSecret": "s3cret-client"},
                    "OAuthHttpParameters": {
                        "BodyParameters": [{"Key": "scope", "Value": "events"}],
                        "HeaderParameters": [{"Key": "X-Tenant", "Value": "acme"}],
                    },
                },
                "InvocationHttpParameters": {
                    "HeaderParameters": [
                        {"Key": "X-Signature", "Value": "hidden", "IsValueSecret": True}
                    ],
                    "QueryStringParameters": [{"Key": "source", "Value": "eventyard"}],
                },
            },
        )
        return str(made["ConnectionArn"])

    async def destination(
        self, connection_arn: str, name: str = "dest", rate: int = 300, path: str = "/hook/*"
    ) -> str:
        made = await self.call(
            "CreateApiDestination",
            Name=name,
            ConnectionArn=connection_arn,
            InvocationEndpoint=f"{self.api.url}{path}",
            HttpMethod="POST",
            InvocationRateLimitPerSecond=rate,
        )
        return str(made["ApiDestinationArn"])


@pytest.fixture
async def world(store: SQLiteStore, api: Api) -> AsyncIterator[World]:
    master = MasterKey.generate()
    clock = Clock()
    accounts = Accounts(SETTINGS)
    target = ApiDestinationTarget(
        ApiDestinations(store, accounts, master),
        policy=OutboundPolicy.parse(["127.0.0.1"]),
        tokens=TokenCache(clock=clock),
    )
    try:
        yield World(
            store, api, ConnectionsApi(store, SETTINGS, master), target, clock, accounts.home
        )
    finally:
        await target.close()


_ids = iter(range(1, 1_000_000))


def spec(arn: str, key: str = "default/r/t", **parameters: Any) -> TargetSpec:
    return TargetSpec(
        key=key,
        arn=arn,
        rule_arn="arn:aws:events:us-east-1:111111111111:rule/r",
        http_parameters=HttpParameters.from_doc(parameters or {"PathParameterValues": ["orders"]}),
    )


def delivery(payload: dict[str, Any] | None = None) -> Delivery:
    number = next(_ids)
    body = orjson.dumps(payload if payload is not None else {"n": number})
    return Delivery(number, "default/r/t", f"event-{number}", body, body, 0.0, 0.0, 0)


async def test_oauth_token_is_fetched_once_cached_refreshed_before_expiry_and_after_a_401(
    world: World,
) -> None:
    connection = await world.oauth_connection()
    arn = await world.destination(connection)
    described = await world.call("DescribeConnection", Name="oauth")
    assert described["ConnectionState"] == "AUTHORIZING"
    assert (await world.call("DescribeApiDestination", Name="dest"))[
        "ApiDestinationState"
    ] == "INACTIVE"

    for _ in range(3):
        await world.target.send(spec(arn), delivery())
    assert len(world.api.token_requests) == 1
    assert world.api.tokens_used() == ["Bearer tok-1"] * 3
    asked = world.api.token_requests[0]
    assert asked["authorization"] == "Basic " + base64.b64encode(b"app-1:s3cret-client").decode()
    assert asked["form"] == {"grant_type": "client_credentials", "scope": "events"}
    assert asked["tenant"] == "acme"
    assert (await world.call("DescribeConnection", Name="oauth"))["ConnectionState"] == "AUTHORIZED"
    assert (await world.call("DescribeApiDestination", Name="dest"))[
        "ApiDestinationState"
    ] == "ACTIVE"

    # still good 85 s on (refresh margin: a tenth of the 100 s lifetime)
    world.clock.now += 85
    await world.target.send(spec(arn), delivery())
    assert len(world.api.token_requests) == 1
    # within the margin of its expiry: replaced before it is used
    world.clock.now += 6
    await world.target.send(spec(arn), delivery())
    assert len(world.api.token_requests) == 2
    assert world.api.tokens_used()[-1] == "Bearer tok-2"

    # revoked early: the 401 brings one new token and one more call, which succeeds
    world.api.revoked.add("tok-2")
    await world.target.send(spec(arn), delivery())
    assert len(world.api.token_requests) == 3
    assert world.api.tokens_used()[-2:] == ["Bearer tok-2", "Bearer tok-3"]


async def test_the_request_has_the_destination_s_method_path_parameters_and_connection_parameters(
    world: World,
) -> None:
    connection = await world.oauth_connection()
    arn = await world.destination(connection)
    target = spec(
        arn,
        PathParameterValues=["orders"],
        HeaderParameters={"X-Team": "payments", "X-Signature": "overridden"},
        QueryStringParameters={"region": "eu"},
    )
    await world.target.send(target, delivery({"id": 7}))
    (call,) = world.api.calls
    assert call["method"] == "POST"
    assert call["path"] == "/hook/orders"
    assert call["query"] == {"region": "eu", "source": "eventyard"}
    assert call["headers"]["X-Team"] == "payments"
    assert call["headers"]["X-Signature"] == "hidden"  # the connection's value wins
    assert orjson.loads(call["body"]) == {"id": 7}
    assert call["headers"]["X-Eventyard-Attempt"] == "1"

    with pytest.raises(DeliveryError) as caught:
        await world.target.send(spec(arn, PathParameterValues=[]), delivery())
    assert not caught.value.retryable
    assert caught.value.error_code == "INVALID_PARAMETER"


async def test_secrets_are_sealed_in_the_catalog_and_never_described(world: World) -> None:
    await world.oauth_connection()
    entry = await world.store.catalog_get(CONNECTION, "oauth")
    assert entry is not None
    stored = orjson.dumps(entry.doc)
    assert b"s3cret-client" not in stored and b"hidden" not in stored
    described = await world.call("DescribeConnection", Name="oauth")
    shown = orjson.dumps(described, default=str)
    assert b"s3cret-client" not in shown and b"hidden" not in shown and b'"Secret"' not in shown
    assert described["AuthParameters"]["OAuthParameters"]["ClientParameters"] == {
        "ClientID": "app-1"
    }
    assert described["AuthParameters"]["InvocationHttpParameters"]["HeaderParameters"] == [
        {"Key": "X-Signature", "IsValueSecret": True}
    ]


async def test_a_failing_authorization_endpoint_deauthorizes_until_the_connection_is_updated(
    world: World,
) -> None:
    connection = await world.oauth_connection()
    arn = await world.destination(connection)
    world.api.token_status = 500
    with pytest.raises(DeliveryError) as caught:
        await world.target.send(spec(arn), delivery())
    assert caught.value.retryable and caught.value.error_code == "AUTHORIZATION_FAILED"
    assert "HTTP 500" in caught.value.message
    described = await world.call("DescribeConnection", Name="oauth")
    assert described["ConnectionState"] == "DEAUTHORIZED"
    assert "HTTP 500" in described["StateReason"]

    # deauthorized: deliveries fail (retryably, with the reason) without asking again
    with pytest.raises(DeliveryError) as again:
        await world.target.send(spec(arn), delivery())
    assert again.value.retryable and again.value.error_code == "CONNECTION_DEAUTHORIZED"
    assert "HTTP 500" in again.value.message
    assert len(world.api.token_requests) == 1
    assert world.api.calls == []

    world.api.token_status = 200
    updated = await world.call(
        "UpdateConnection",
        Name="oauth",
        AuthParameters={"OAuthParameters": {"ClientParameters": {"ClientSecret": "rotated"}}},
    )
    assert updated["ConnectionState"] == "AUTHORIZING"
    await world.target.send(spec(arn), delivery())
    assert world.api.token_requests[-1]["authorization"] == (
        "Basic " + base64.b64encode(b"app-1:rotated").decode()
    )
    assert (await world.call("DescribeConnection", Name="oauth"))["ConnectionState"] == "AUTHORIZED"


async def test_concurrent_deliveries_share_one_token_request(world: World) -> None:
    arn = await world.destination(await world.oauth_connection())
    await asyncio.gather(*(world.target.send(spec(arn), delivery()) for _ in range(10)))
    assert len(world.api.token_requests) == 1
    assert len(world.api.calls) == 10


async def test_basic_and_api_key_headers_and_a_401_deauthorizes_them(world: World) -> None:
    basic = await world.call(
        "CreateConnection",
        Name="basic",
        AuthorizationType="BASIC",
        AuthParameters={"BasicAuthParameters": {"Username": "u", "Password": "p"}},
    )
    key = await world.call(
        "CreateConnection",
        Name="key",
        AuthorizationType="API_KEY",
        AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key", "ApiKeyValue": "k1"}},
    )
    basic_arn = await world.destination(basic["ConnectionArn"], name="basic-dest")
    key_arn = await world.destination(key["ConnectionArn"], name="key-dest")
    await world.target.send(spec(basic_arn), delivery())
    await world.target.send(spec(key_arn), delivery())
    assert world.api.calls[0]["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert world.api.calls[1]["headers"]["X-Api-Key"] == "k1"

    world.api.status = 401
    with pytest.raises(DeliveryError) as caught:
        await world.target.send(spec(basic_arn), delivery())
    assert caught.value.retryable
    assert (await world.call("DescribeConnection", Name="basic"))["ConnectionState"] == (
        "DEAUTHORIZED"
    )
    assert (await world.call("DescribeConnection", Name="key"))["ConnectionState"] == "AUTHORIZED"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(409, True), (429, True), (500, True), (503, True), (400, False), (404, False)],
)
async def test_status_codes_are_retried_as_eventbridge_retries_api_destinations(
    world: World, status: int, retryable: bool
) -> None:
    basic = await world.call(
        "CreateConnection",
        Name="basic",
        AuthorizationType="BASIC",
        AuthParameters={"BasicAuthParameters": {"Username": "u", "Password": "p"}},
    )
    arn = await world.destination(basic["ConnectionArn"])
    world.api.status = status
    with pytest.raises(DeliveryError) as caught:
        await world.target.send(spec(arn), delivery())
    assert caught.value.retryable is retryable
    assert str(status) in caught.value.message


async def test_retry_after_defers_the_retry(world: World) -> None:
    basic = await world.call(
        "CreateConnection",
        Name="basic",
        AuthorizationType="BASIC",
        AuthParameters={"BasicAuthParameters": {"Username": "u", "Password": "p"}},
    )
    arn = await world.destination(basic["ConnectionArn"])
    world.api.status = 429
    world.api.headers = {"Retry-After": "30"}
    with pytest.raises(DeliveryDeferred) as caught:
        await world.target.send(spec(arn), delivery())
    assert caught.value.retry_after == 30


async def test_a_deleted_destination_fails_for_good(world: World) -> None:
    arn = await world.destination(await world.oauth_connection())
    await world.call("DeleteApiDestination", Name="dest")
    with pytest.raises(DeliveryError) as caught:
        await world.target.send(spec(arn), delivery())
    assert not caught.value.retryable
    assert caught.value.error_code == "API_DESTINATION_NOT_FOUND"


async def test_the_rate_limit_holds_across_all_targets_of_a_destination(world: World) -> None:
    rate = 10
    connection = await world.oauth_connection()
    limited = await world.destination(connection, name="limited", rate=rate)
    other = await world.destination(connection, name="other", rate=1000, path="/hook/other/*")
    sends = [
        world.target.send(spec(limited, key=f"default/r/t{i % 2}"), delivery()) for i in range(24)
    ]
    waiting = asyncio.gather(*sends)
    # a call to another destination is not held behind the limited one's queue
    await world.target.send(spec(other), delivery())
    await waiting
    limited_calls = [c for c in world.api.calls if not c["path"].startswith("/hook/other/")]
    assert len(limited_calls) == 24
    other_at = next(c["at"] for c in world.api.calls if c["path"].startswith("/hook/other/"))
    assert other_at < limited_calls[-1]["at"]
    times = sorted(c["at"] for c in limited_calls)
    measured = (len(times) - 1) / (times[-1] - times[0])
    assert measured <= rate * 1.15, f"{measured:.1f} calls/s through a limit of {rate}/s"
    for first, last in zip(times, times[rate:], strict=False):
        assert last - first >= 0.8, "more calls than the limit within one second"


def test_a_rate_limit_slot_too_far_away_is_not_taken() -> None:
    now = [0.0]
    limiter = RateLimiter(lambda: now[0])
    assert limiter.reserve("d", 1, 5) == (0.0, True)
    assert limiter.reserve("d", 1, 5) == (1.0, True)
    for _ in range(4):
        limiter.reserve("d", 1, 5)
    assert limiter.reserve("d", 1, 5) == (6.0, False)
    now[0] = 2.0
    assert limiter.reserve("d", 1, 5) == (4.0, True)
