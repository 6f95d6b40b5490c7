"""Connections and API destinations through EventsApi, over the real SQLite store.

What the AWS recordings (``api.jsonl``) do not cover: accounts kept apart, pagination
and filters, deauthorizing and authorizing again, updates, quotas and the errors of
requests eventyard refuses.
"""

from __future__ import annotations

from typing import Any

import pytest

from eventyard.errors import (
    LimitExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    ServiceError,
    ValidationError,
)
from eventyard.server.api import connections
from eventyard.server.api.aws import EventsApi
from eventyard.server.auth.keys import Principal
from eventyard.server.config import Settings
from eventyard.server.store.sqlite import SQLiteStore
from tests.server.api.test_aws_unit import FakeRouter

HOME = "111111111111"
OTHER = "222222222222"
BASIC = {"BasicAuthParameters": {"Username": "u", "Password": "p"}}


@pytest.fixture
def api(store: SQLiteStore) -> EventsApi:
    return EventsApi(store, Settings(account_id=HOME), FakeRouter())


def caller(account: str) -> Principal:
    return Principal(account_id=account, access_key_id="AKIDTEST")


async def call(api: EventsApi, op: str, account: str = HOME, **params: Any) -> dict[str, Any]:
    return await api.call(op, params, caller(account) if account != HOME else None)


async def fails(api: EventsApi, op: str, account: str = HOME, **params: Any) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await call(api, op, account, **params)
    return info.value


async def basic(api: EventsApi, name: str, account: str = HOME) -> str:
    made = await call(
        api, "CreateConnection", account, Name=name, AuthorizationType="BASIC", AuthParameters=BASIC
    )
    return str(made["ConnectionArn"])


async def destination(api: EventsApi, name: str, connection: str, account: str = HOME) -> str:
    made = await call(
        api,
        "CreateApiDestination",
        account,
        Name=name,
        ConnectionArn=connection,
        InvocationEndpoint="https://api.example.com/v1/*",
        HttpMethod="POST",
    )
    return str(made["ApiDestinationArn"])


async def test_accounts_see_only_their_own_connections_and_destinations(api: EventsApi) -> None:
    mine = await basic(api, "shared-name")
    theirs = await basic(api, "shared-name", OTHER)
    assert mine != theirs and f":{OTHER}:connection/shared-name/" in theirs
    assert (await call(api, "DescribeConnection", OTHER, Name="shared-name"))[
        "ConnectionArn"
    ] == theirs
    only = await basic(api, "only-home")
    error = await fails(api, "DescribeConnection", OTHER, Name="only-home")
    assert isinstance(error, ResourceNotFound)
    # another account's connection cannot back a destination, even named by its ARN
    error = await fails(
        api,
        "CreateApiDestination",
        OTHER,
        Name="d",
        ConnectionArn=only,
        InvocationEndpoint="https://example.com",
        HttpMethod="GET",
    )
    assert isinstance(error, ResourceNotFound)
    assert error.message == "Connection 'only-home' does not exist."
    await destination(api, "d", mine)
    listed = await call(api, "ListApiDestinations", OTHER)
    assert listed["ApiDestinations"] == []
    names = [c["Name"] for c in (await call(api, "ListConnections", OTHER))["Connections"]]
    assert names == ["shared-name"]


async def test_a_rule_cannot_target_another_account_s_api_destination(api: EventsApi) -> None:
    arn = await destination(api, "d", await basic(api, "c"))
    await call(api, "PutRule", OTHER, Name="r", EventPattern='{"source": ["x"]}')
    error = await fails(api, "PutTargets", OTHER, Rule="r", Targets=[{"Id": "t", "Arn": arn}])
    assert isinstance(error, ValidationError)
    assert "API destination of account" in error.message
    await call(api, "PutRule", Name="r", EventPattern='{"source": ["x"]}')
    await call(api, "PutTargets", Rule="r", Targets=[{"Id": "t", "Arn": arn, "RoleArn": "a"}])


async def test_list_connections_pages_and_filters_by_state(api: EventsApi) -> None:
    for index in range(5):
        await basic(api, f"c{index}")
    await call(api, "DeauthorizeConnection", Name="c3")
    first = await call(api, "ListConnections", NamePrefix="c", Limit=2)
    assert [c["Name"] for c in first["Connections"]] == ["c0", "c1"]
    second = await call(api, "ListConnections", NamePrefix="c", NextToken=first["NextToken"])
    assert [c["Name"] for c in second["Connections"]] == ["c2", "c3", "c4"]
    assert "NextToken" not in second
    gone = await call(api, "ListConnections", ConnectionState="DEAUTHORIZED")
    assert [c["Name"] for c in gone["Connections"]] == ["c3"]
    error = await fails(api, "ListConnections", NextToken="bogus")
    assert error.message == "The NextToken value is not valid."


async def test_deauthorize_drops_the_secret_and_update_authorizes_again(api: EventsApi) -> None:
    arn = await basic(api, "c")
    await destination(api, "d", arn)
    answer = await call(api, "DeauthorizeConnection", Name="c")
    assert answer["ConnectionState"] == "DEAUTHORIZING"
    described = await call(api, "DescribeConnection", Name="c")
    assert described["ConnectionState"] == "DEAUTHORIZED"
    assert described["StateReason"] == "Deauthorized by DeauthorizeConnection."
    assert (await call(api, "DescribeApiDestination", Name="d"))["ApiDestinationState"] == (
        "INACTIVE"
    )
    # the secret is gone: updating only the user name is not enough
    error = await fails(
        api, "UpdateConnection", Name="c", AuthParameters={"BasicAuthParameters": {"Username": "v"}}
    )
    assert error.message == "AuthParameters.BasicAuthParameters.Password is required."
    updated = await call(
        api,
        "UpdateConnection",
        Name="c",
        AuthParameters={"BasicAuthParameters": {"Username": "v", "Password": "q"}},
    )
    assert updated["ConnectionState"] == "AUTHORIZED"
    described = await call(api, "DescribeConnection", Name="c")
    assert described["AuthParameters"] == {"BasicAuthParameters": {"Username": "v"}}
    assert "StateReason" not in described
    assert (await call(api, "DescribeApiDestination", Name="d"))["ApiDestinationState"] == "ACTIVE"


async def test_update_connection_changes_the_authorization_type(api: EventsApi) -> None:
    await basic(api, "c")
    error = await fails(api, "UpdateConnection", Name="c", AuthorizationType="API_KEY")
    assert error.message == (
        "AuthParameters.ApiKeyAuthParameters is required for AuthorizationType API_KEY."
    )
    await call(
        api,
        "UpdateConnection",
        Name="c",
        AuthorizationType="API_KEY",
        Description="now a key",
        AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "X-Key", "ApiKeyValue": "k"}},
    )
    described = await call(api, "DescribeConnection", Name="c")
    assert described["AuthorizationType"] == "API_KEY"
    assert described["Description"] == "now a key"
    assert described["AuthParameters"] == {"ApiKeyAuthParameters": {"ApiKeyName": "X-Key"}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"AuthorizationType": "BASIC", "AuthParameters": {}},
            "AuthParameters.BasicAuthParameters is required for AuthorizationType BASIC.",
        ),
        (
            {
                "AuthorizationType": "BASIC",
                "AuthParameters": {
                    **BASIC,
                    "ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"},
                },
            },
            "AuthParameters.ApiKeyAuthParameters is not allowed with AuthorizationType BASIC: "
            "give AuthParameters.BasicAuthParameters.",
        ),
        (
            {
                "AuthorizationType": "BASIC",
                "AuthParameters": {"BasicAuthParameters": {"Username": "u"}},
            },
            "1 validation error detected: Value null at "
            "'authParameters.basicAuthParameters.password' failed to satisfy constraint: "
            "Member must not be null",
        ),
        (
            {"AuthorizationType": "BASIC", "AuthParameters": BASIC, "KmsKeyIdentifier": "k"},
            "KmsKeyIdentifier is not supported by eventyard: connection secrets are sealed with "
            "the server's master key.",
        ),
    ],
)
async def test_create_connection_refuses_what_cannot_work(
    api: EventsApi, params: dict[str, Any], message: str
) -> None:
    error = await fails(api, "CreateConnection", Name="c", **params)
    assert isinstance(error, ValidationError)
    assert error.message == message


async def test_names_are_unique_and_missing_resources_are_reported(api: EventsApi) -> None:
    arn = await basic(api, "c")
    error = await fails(
        api, "CreateConnection", Name="c", AuthorizationType="BASIC", AuthParameters=BASIC
    )
    assert isinstance(error, ResourceAlreadyExists)
    await destination(api, "d", arn)
    error = await fails(
        api,
        "CreateApiDestination",
        Name="d",
        ConnectionArn=arn,
        InvocationEndpoint="https://example.com",
        HttpMethod="GET",
    )
    assert error.message == "An api-destination 'd' already exists."
    error = await fails(api, "UpdateApiDestination", Name="nope", HttpMethod="GET")
    assert error.message == (
        "Failed to update the api-destination(s). An api-destination 'nope' does not exist."
    )
    error = await fails(api, "DeleteConnection", Name="nope")
    assert error.message == "Failed to delete the connection(s). Connection 'nope' does not exist."
    updated = await call(
        api, "UpdateApiDestination", Name="d", HttpMethod="PUT", InvocationRateLimitPerSecond=7
    )
    assert updated["ApiDestinationState"] == "ACTIVE"
    described = await call(api, "DescribeApiDestination", Name="d")
    assert (described["HttpMethod"], described["InvocationRateLimitPerSecond"]) == ("PUT", 7)


async def test_a_literal_private_endpoint_is_refused_by_the_outbound_policy(api: EventsApi) -> None:
    error = await fails(
        api,
        "CreateApiDestination",
        Name="d",
        ConnectionArn=await basic(api, "c"),
        InvocationEndpoint="http://169.254.169.254/latest",
        HttpMethod="GET",
    )
    assert isinstance(error, ValidationError)
    assert "not public" in error.message


async def test_the_connection_quota_holds(api: EventsApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "MAX_CONNECTIONS", 2)
    await basic(api, "a")
    await basic(api, "b")
    error = await fails(
        api, "CreateConnection", Name="c", AuthorizationType="BASIC", AuthParameters=BASIC
    )
    assert isinstance(error, LimitExceeded)
    await basic(api, "c", OTHER)  # another account has its own quota
