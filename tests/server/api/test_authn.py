"""The request authenticator: the Host policy, dev mode and how a request is verified.

In-process, against a real keyring over an in-memory key store; the end-to-end tests
(``tests/e2e/test_auth.py``) check the same behaviour through a real server and boto3.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from eventyard.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    QueryAuthenticationError,
    ServiceUnavailable,
    UnrecognizedClient,
)
from eventyard.server.api.authn import (
    Authenticator,
    HostPolicy,
    Screened,
    is_loopback,
    service_of,
)
from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore, NewKey
from eventyard.server.config import Settings

ACCOUNT = "111122223333"
URL = "http://127.0.0.1:4010/"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("eventyard.example.com", False),
    ],
)
def test_loopback_bind_addresses_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_target_prefix_chooses_the_error_flavour() -> None:
    assert service_of("AmazonSQS.SendMessage") == "sqs"
    assert service_of("AWSEvents.PutEvents") == "events"
    assert service_of("") == "events"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:4010",
        "127.0.0.1",
        "[::1]:4010",
        "localhost:4010",
        "LOCALHOST",
        "localhost.:4010",
        "app.localhost:4010",
        "192.168.1.20:4010",  # an address literal cannot come from a rebinding page
        "[2001:db8::1]:80",
    ],
)
def test_addresses_and_loopback_names_are_allowed(host: str) -> None:
    assert HostPolicy("127.0.0.1", "").allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:4010",  # a rebinding page names its own domain
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "x",
        "",
        "[::1",  # malformed
        "[::1]junk",
        "127.0.0.1:port",
        None,  # no Host at all
    ],
)
def test_other_names_are_refused(host: str | None) -> None:
    assert not HostPolicy("127.0.0.1", "").allows(host)


def test_this_machine_s_name_and_the_bound_name_are_allowed() -> None:
    policy = HostPolicy("eventyard.internal", "")
    assert policy.allows(f"{socket.gethostname()}:4010")
    assert policy.allows("eventyard.internal:4010")
    assert not policy.allows("other.internal:4010")


def test_allowed_hosts_adds_names_and_subdomains() -> None:
    policy = HostPolicy("0.0.0.0", "events.example.com, *.corp.example")
    assert policy.allows("events.example.com")
    assert policy.allows("EVENTS.EXAMPLE.COM:443")
    assert policy.allows("a.b.corp.example")
    assert not policy.allows("corp.example.evil")
    assert not policy.allows("example.com")


def test_a_star_allows_any_host() -> None:
    policy = HostPolicy("0.0.0.0", "*")
    assert policy.allows("anything.example")
    assert policy.allows(None)


def test_a_verdict_is_remembered_and_the_memory_is_bounded() -> None:
    policy = HostPolicy("127.0.0.1", "")
    for number in range(3000):
        policy.allows(f"h{number}.example")
    assert len(policy._seen) <= 1024
    assert not policy.allows("h2999.example")


# -- authentication --------------------------------------------------------------------


def _scope(headers: dict[str, str], query: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def _signed(
    key_id: str, secret: str, body: bytes = b"{}", service: str = "events"
) -> dict[str, Any]:
    request = AWSRequest(
        method="POST",
        url=URL,
        data=body,
        headers={"Host": "127.0.0.1:4010", "X-Amz-Target": "AWSEvents.ListEventBuses"},
    )
    SigV4Auth(Credentials(key_id, secret), service, "us-east-1").add_auth(request)
    return _scope(dict(request.headers.items()))


async def _keyring_with_key() -> tuple[Keyring, NewKey]:
    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.create_account(ACCOUNT)
    await keyring.key_count()
    return keyring, await keyring.create_key(ACCOUNT)


async def test_without_keys_a_loopback_server_accepts_anything_as_the_home_account() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await authenticator.keyring.key_count()
    assert authenticator.dev_mode
    assert await authenticator.authenticate(_signed("any", "any"), b"{}", "events") is None
    assert await authenticator.authenticate(_scope({}), b"", "sqs") is None


async def test_the_first_key_ends_dev_mode_at_once_and_the_last_one_restores_it() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.key_count()
    authenticator.keyring = keyring
    await keyring.create_account(ACCOUNT)
    new = await keyring.create_key(ACCOUNT)
    assert not authenticator.dev_mode
    with pytest.raises(UnrecognizedClient):
        await authenticator.authenticate(_signed("any", "any"), b"{}", "events")
    await keyring.delete_key(new.key.access_key_id)
    assert authenticator.dev_mode
    assert await authenticator.authenticate(_signed("any", "any"), b"{}", "events") is None


async def test_a_right_signature_gives_the_key_s_account() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, new = await _keyring_with_key()
    scope = _signed(new.key.access_key_id, new.secret_access_key)
    principal = await authenticator.authenticate(scope, b"{}", "events")
    assert principal is not None
    assert principal.account_id == ACCOUNT
    assert principal.access_key_id == new.key.access_key_id


async def test_a_wrong_secret_is_refused_in_each_api_s_words() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, new = await _keyring_with_key()
    scope = _signed(new.key.access_key_id, "wrong-secret")
    with pytest.raises(InvalidSignature):
        await authenticator.authenticate(scope, b"{}", "events")
    with pytest.raises(QueryAuthenticationError) as refused:
        await authenticator.authenticate(scope, b"{}", "sqs")
    assert refused.value.query_code == "SignatureDoesNotMatch"
    assert refused.value.status == 403


async def test_a_body_other_than_the_signed_one_is_refused() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, new = await _keyring_with_key()
    scope = _signed(new.key.access_key_id, new.secret_access_key, body=b'{"Limit": 1}')
    with pytest.raises(InvalidSignature):
        await authenticator.authenticate(scope, b'{"Limit": 2}', "events")


async def test_the_clock_skew_window_is_the_setting() -> None:
    now = time.time()
    authenticator = Authenticator(
        Settings(host="127.0.0.1", auth_max_skew=60.0), clock=lambda: now + 120
    )
    authenticator.keyring, new = await _keyring_with_key()
    scope = _signed(new.key.access_key_id, new.secret_access_key)
    with pytest.raises(InvalidSignature, match="Signature expired"):
        await authenticator.authenticate(scope, b"{}", "events")


async def test_a_presigned_query_is_verified() -> None:
    # botocore's query signer moves a body into the query: a presigned call has none
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, new = await _keyring_with_key()
    request = AWSRequest(method="POST", url=URL, headers={"Host": "127.0.0.1:4010"})
    credentials = Credentials(new.key.access_key_id, new.secret_access_key)
    SigV4QueryAuth(credentials, "events", "us-east-1", expires=60).add_auth(request)
    query = request.url.partition("?")[2]
    scope = _scope({"Host": "127.0.0.1:4010"}, query)
    principal = await authenticator.authenticate(scope, b"", "events")
    assert principal is not None and principal.account_id == ACCOUNT
    tampered = query.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    with pytest.raises(InvalidSignature):
        await authenticator.authenticate(
            _scope({"Host": "127.0.0.1:4010"}, tampered), b"", "events"
        )


async def test_a_bearer_token_is_accepted_on_the_aws_endpoint_and_natively() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, new = await _keyring_with_key()
    scope = _scope({"Authorization": f"Bearer {new.bearer_token}"})
    principal = await authenticator.authenticate(scope, b"{}", "events")
    assert principal is not None and principal.account_id == ACCOUNT
    native = await authenticator.authenticate_native(scope)
    assert native == principal


async def test_a_wrong_bearer_token_is_an_unrecognized_client() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, new = await _keyring_with_key()
    forged = new.bearer_token[:-4] + "AAAA"
    with pytest.raises(UnrecognizedClient):
        await authenticator.authenticate(
            _scope({"Authorization": f"Bearer {forged}"}), b"", "events"
        )
    with pytest.raises(QueryAuthenticationError) as refused:
        await authenticator.authenticate(_scope({"Authorization": "bearer nonsense"}), b"", "sqs")
    assert refused.value.query_code == "InvalidClientTokenId"
    with pytest.raises(UnrecognizedClient) as native:
        await authenticator.authenticate_native(_scope({"Authorization": "Bearer nonsense"}))
    assert native.value.status == 401


async def test_no_credentials_with_keys_is_a_missing_token() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, _ = await _keyring_with_key()
    with pytest.raises(MissingAuthenticationToken):
        await authenticator.authenticate(_scope({}), b"", "events")


async def test_an_unforeseen_failure_while_verifying_is_an_incomplete_signature(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_clock() -> float:
        raise OverflowError("a failure no check foresaw")

    authenticator = Authenticator(Settings(host="127.0.0.1"), clock=broken_clock)
    authenticator.keyring, new = await _keyring_with_key()
    scope = _signed(new.key.access_key_id, new.secret_access_key)
    with pytest.raises(IncompleteSignature) as refused:
        await authenticator.authenticate(scope, b"{}", "events")
    assert refused.value.status == 400
    assert refused.value.message == "The request's credentials could not be read."
    with pytest.raises(QueryAuthenticationError) as sqs:
        await authenticator.authenticate(scope, b"{}", "sqs")
    assert (sqs.value.query_code, sqs.value.status) == ("IncompleteSignature", 400)
    with pytest.raises(IncompleteSignature) as native:
        await authenticator.authenticate_native(scope)
    assert native.value.status == 401


async def test_screening_decides_what_needs_no_body_and_leaves_the_signature() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    authenticator.keyring, new = await _keyring_with_key()
    bearer = await authenticator.screen(
        _scope({"Authorization": f"Bearer {new.bearer_token}"}), "events"
    )
    assert bearer.final and bearer.principal is not None
    assert bearer.principal.account_id == ACCOUNT
    # a right key and scope pass; the signature (over the body) is still to be verified
    signed = _signed(new.key.access_key_id, "not-the-secret")
    pending = await authenticator.screen(signed, "events")
    assert not pending.final and pending.principal is None
    with pytest.raises(InvalidSignature):
        await authenticator.authenticate(signed, b"{}", "events")
    for scope, refusal in (
        (_scope({}), MissingAuthenticationToken),
        (_signed("AKIAUNKNOWNUNKNOWN00", "x"), UnrecognizedClient),
        (_scope({"Authorization": "Bearer nope"}), UnrecognizedClient),
        (_signed(new.key.access_key_id, new.secret_access_key, service="sqs"), InvalidSignature),
    ):
        with pytest.raises(refusal):
            await authenticator.screen(scope, "events")
    dev = Authenticator(Settings(host="127.0.0.1"))
    assert await dev.screen(_scope({}), "events") == Screened(final=True, principal=None)


async def test_a_network_server_without_keys_is_open_only_when_insecure() -> None:
    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.key_count()
    closed = Authenticator(Settings(host="0.0.0.0"))
    closed.keyring = keyring
    assert not closed.dev_mode
    with pytest.raises(MissingAuthenticationToken):
        await closed.authenticate(_scope({}), b"", "events")
    insecure = Authenticator(Settings(host="0.0.0.0", insecure_no_auth=True))
    insecure.keyring = keyring
    assert insecure.dev_mode
    assert await insecure.authenticate(_scope({}), b"", "events") is None


async def test_before_the_keyring_is_loaded_a_network_server_is_unavailable() -> None:
    authenticator = Authenticator(Settings(host="0.0.0.0"))
    with pytest.raises(ServiceUnavailable):
        await authenticator.authenticate(_scope({}), b"", "events")


def test_a_host_refusal_is_aws_shaped_for_each_api() -> None:
    authenticator = Authenticator(Settings(host="127.0.0.1"))
    scope = _scope({"Host": "evil.example"})
    assert not authenticator.host_allowed(scope)
    events = authenticator.host_refusal(scope, "events")
    assert (events.code, events.status) == ("AccessDeniedException", 403)
    assert "evil.example" in events.message and "allowed_hosts" in events.message
    sqs = authenticator.host_refusal(scope, "sqs")
    assert isinstance(sqs, QueryAuthenticationError)
    assert (sqs.query_code, sqs.status) == ("AccessDenied", 403)
