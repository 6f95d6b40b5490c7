"""SigV4 verification against requests signed by botocore itself, then tampered with."""

from __future__ import annotations

import calendar
import contextlib
import datetime
import hashlib
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from eventyard.errors import (
    AuthenticationError,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    QueryAuthenticationError,
    UnrecognizedClient,
)
from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore, SignedRequestParts, verify
from eventyard.server.auth.keys import NewKey, SigningKey

REGION = "us-east-1"
SIGNED_AT = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
NOW = SIGNED_AT.timestamp()
BODY = b'{"Entries":[{"Source":"shop","DetailType":"order","Detail":"{}"}]}'
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)


@pytest.fixture(autouse=True)
def frozen_signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore signs at SIGNED_AT (it reads the time through this function)."""
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: SIGNED_AT)


@pytest.fixture
async def keyring() -> Keyring:
    return Keyring(MemoryKeyStore(), MasterKey.generate())


@pytest.fixture
async def key(keyring: Keyring) -> NewKey:
    account = await keyring.create_account("111122223333")
    return await keyring.create_key(account.account_id)


def _parts(request: AWSRequest) -> SignedRequestParts:
    url = urlsplit(request.url)
    body = request.body or b""
    return SignedRequestParts(
        method=request.method,
        path=url.path or "/",
        query=url.query,
        headers=tuple((name, value) for name, value in request.headers.items()),
        body=body if isinstance(body, bytes) else body.encode(),
    )


def sign_header(
    key: NewKey,
    *,
    service: str = "events",
    region: str = REGION,
    body: bytes = BODY,
    url: str = "http://localhost:4010/",
    secret: str | None = None,
    key_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> SignedRequestParts:
    """A request signed by botocore's SigV4Auth, as boto3 sends it."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSEvents.PutEvents",
            "Host": urlsplit(url).netloc,
            **(headers or {}),
        },
    )
    credentials = Credentials(key_id or key.key.access_key_id, secret or key.secret_access_key)
    SigV4Auth(credentials, service, region).add_auth(request)
    return _parts(request)


def sign_query(
    key: NewKey,
    *,
    expires: int = 300,
    service: str = "events",
    url: str = "http://localhost:4010/v1/tail?bus=default&from=a%20b",
) -> SignedRequestParts:
    """A presigned GET URL made by botocore's SigV4QueryAuth."""
    request = AWSRequest(method="GET", url=url, headers={"Host": urlsplit(url).netloc})
    credentials = Credentials(key.key.access_key_id, key.secret_access_key)
    SigV4QueryAuth(credentials, service, REGION, expires=expires).add_auth(request)
    return _parts(request)


def with_header(parts: SignedRequestParts, name: str, value: str) -> SignedRequestParts:
    kept = tuple((n, v) for n, v in parts.headers if n.lower() != name.lower())
    return replace(parts, headers=(*kept, (name, value)))


async def check(
    parts: SignedRequestParts,
    keyring: Keyring,
    *,
    service: str = "events",
    now: float = NOW,
    max_skew: float = 300.0,
) -> object:
    return await verify(
        parts, keyring, service=service, now=now, regions={REGION}, max_skew=max_skew
    )  # type: ignore[arg-type]


async def refusal(
    parts: SignedRequestParts, keyring: Keyring, **kwargs: object
) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        await check(parts, keyring, **kwargs)  # type: ignore[arg-type]
    return caught.value


# -- accepted --------------------------------------------------------------------------


async def test_a_request_signed_by_botocore_verifies_to_its_account(keyring, key) -> None:
    principal = await check(sign_header(key), keyring)
    assert principal.account_id == "111122223333"
    assert principal.access_key_id == key.key.access_key_id


async def test_an_sqs_request_signed_for_sqs_verifies(keyring, key) -> None:
    principal = await check(sign_header(key, service="sqs"), keyring, service="sqs")
    assert principal.account_id == "111122223333"


async def test_a_presigned_url_verifies(keyring, key) -> None:
    principal = await check(sign_query(key), keyring)
    assert principal.access_key_id == key.key.access_key_id


async def test_a_request_with_a_signed_content_sha256_verifies(keyring, key) -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    parts = sign_header(key, headers={"X-Amz-Content-SHA256": digest})
    assert (await check(parts, keyring)).account_id == "111122223333"


async def test_a_path_with_escapes_and_a_query_verify(keyring, key) -> None:
    parts = sign_header(key, url="http://localhost:4010/v1/queues/my%20queue?b=2&a=1&c=x%2Fy")
    assert (await check(parts, keyring)).account_id == "111122223333"


async def test_a_request_inside_the_skew_window_verifies(keyring, key) -> None:
    parts = sign_header(key)
    assert await check(parts, keyring, now=NOW + 299)
    assert await check(parts, keyring, now=NOW - 299)


async def test_a_request_dated_by_a_date_header_verifies(keyring, key) -> None:
    parts = sign_header(key, headers={"Date": "placeholder"})  # botocore rewrites it
    assert parts.header("x-amz-date") is None
    assert (await check(parts, keyring)).account_id == "111122223333"
    assert (await refusal(parts, keyring, now=NOW + 301)).message.startswith("Signature expired")


async def test_an_unsigned_header_may_change_without_breaking_the_signature(keyring, key) -> None:
    parts = with_header(sign_header(key), "User-Agent", "something-else")
    assert await check(parts, keyring)


# -- refused: EventBridge codes ----------------------------------------------------------


async def test_no_credentials_is_missing_authentication_token(keyring, key) -> None:
    parts = sign_header(key)
    bare = replace(parts, headers=tuple(h for h in parts.headers if h[0] != "Authorization"))
    error = await refusal(bare, keyring)
    assert isinstance(error, MissingAuthenticationToken)
    assert (error.code, error.status) == ("MissingAuthenticationTokenException", 400)
    assert error.message == "Request is missing Authentication Token"


async def test_a_tampered_body_is_an_invalid_signature(keyring, key) -> None:
    parts = replace(sign_header(key), body=BODY.replace(b"order", b"refund"))
    error = await refusal(parts, keyring)
    assert isinstance(error, InvalidSignature)
    assert (error.code, error.status, error.message) == ("InvalidSignatureException", 400, MISMATCH)


async def test_a_tampered_signed_header_is_an_invalid_signature(keyring, key) -> None:
    parts = with_header(sign_header(key), "X-Amz-Target", "AWSEvents.DeleteEventBus")
    error = await refusal(parts, keyring)
    assert (error.code, error.message) == ("InvalidSignatureException", MISMATCH)


async def test_a_signed_header_removed_is_an_invalid_signature(keyring, key) -> None:
    parts = sign_header(key)
    parts = replace(parts, headers=tuple(h for h in parts.headers if h[0] != "X-Amz-Target"))
    assert (await refusal(parts, keyring)).message == MISMATCH


async def test_a_tampered_signature_is_an_invalid_signature(keyring, key) -> None:
    parts = sign_header(key)
    auth = parts.header("authorization")
    assert auth is not None
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    error = await refusal(with_header(parts, "Authorization", flipped), keyring)
    assert (error.code, error.message) == ("InvalidSignatureException", MISMATCH)


async def test_a_wrong_secret_is_an_invalid_signature(keyring, key) -> None:
    error = await refusal(sign_header(key, secret="x" * 40), keyring)
    assert (error.code, error.message) == ("InvalidSignatureException", MISMATCH)


async def test_an_unknown_access_key_is_an_unrecognized_client(keyring, key) -> None:
    error = await refusal(sign_header(key, key_id="AKIAAAAAAAAAAAAAAAAA"), keyring)
    assert isinstance(error, UnrecognizedClient)
    assert (error.code, error.status) == ("UnrecognizedClientException", 400)
    assert error.message == "The security token included in the request is invalid."


async def test_a_deleted_key_is_an_unrecognized_client(keyring, key) -> None:
    parts = sign_header(key)
    assert await check(parts, keyring)
    await keyring.delete_key(key.key.access_key_id)
    assert (await refusal(parts, keyring)).code == "UnrecognizedClientException"


async def test_a_tampered_date_is_an_invalid_signature(keyring, key) -> None:
    parts = with_header(sign_header(key), "X-Amz-Date", "20260301T120100Z")
    assert (await refusal(parts, keyring)).message == MISMATCH


async def test_a_date_outside_the_scope_day_names_both_dates(keyring, key) -> None:
    parts = with_header(sign_header(key), "X-Amz-Date", "20260302T000000Z")
    error = await refusal(
        parts, keyring, now=datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC).timestamp()
    )
    assert error.code == "InvalidSignatureException"
    assert error.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '20260301' != '20260302', from '20260302T000000Z'."
    )


async def test_a_scope_in_another_region_is_refused(keyring, key) -> None:
    error = await refusal(sign_header(key, region="eu-west-1"), keyring)
    assert error.code == "InvalidSignatureException"
    assert error.message == "Credential should be scoped to a valid region, not 'eu-west-1'."


async def test_a_scope_for_another_service_is_refused(keyring, key) -> None:
    error = await refusal(sign_header(key, service="s3"), keyring)
    assert error.code == "InvalidSignatureException"
    assert error.message == "Credential should be scoped to correct service: 'events'."


@pytest.mark.parametrize(("signed_for", "api"), [("sqs", "events"), ("events", "sqs")])
async def test_a_scope_for_the_other_api_of_the_endpoint_is_refused(
    keyring: Keyring, key: NewKey, signed_for: str, api: str
) -> None:
    error = await refusal(sign_header(key, service=signed_for), keyring, service=api)
    assert error.message == f"Credential should be scoped to correct service: '{api}'."
    assert error.status == 400 if api == "events" else 403


async def test_an_old_request_is_a_signature_expired(keyring, key) -> None:
    error = await refusal(sign_header(key), keyring, now=NOW + 301)
    assert error.code == "InvalidSignatureException"
    assert error.message == (
        "Signature expired: 20260301T120000Z is now earlier than 20260301T120001Z "
        "(20260301T120501Z - 5 min.)"
    )


async def test_a_request_from_the_future_is_not_yet_current(keyring, key) -> None:
    error = await refusal(sign_header(key), keyring, now=NOW - 301)
    assert error.code == "InvalidSignatureException"
    assert error.message == (
        "Signature not yet current: 20260301T120000Z is still later than 20260301T115959Z "
        "(20260301T115459Z + 5 min.)"
    )


async def test_the_skew_window_is_a_setting(keyring, key) -> None:
    parts = sign_header(key)
    assert await check(parts, keyring, now=NOW + 800, max_skew=900)
    error = await refusal(parts, keyring, now=NOW + 901, max_skew=900)
    assert error.message.endswith("- 15 min.)")


async def test_a_content_sha256_that_is_not_the_body_hash_is_refused(keyring, key) -> None:
    parts = sign_header(key, headers={"X-Amz-Content-SHA256": "0" * 64})
    error = await refusal(parts, keyring)
    assert error.code == "InvalidSignatureException"
    assert "x-amz-content-sha256" in error.message


async def test_an_unsigned_payload_is_refused(keyring, key) -> None:
    parts = sign_header(key, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    error = await refusal(parts, keyring)
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith("UNSIGNED-PAYLOAD is not accepted")


async def test_an_authorization_without_its_parts_is_an_incomplete_signature(keyring, key) -> None:
    parts = with_header(sign_header(key), "Authorization", "AWS4-HMAC-SHA256 Foo=bar")
    error = await refusal(parts, keyring)
    assert isinstance(error, IncompleteSignature)
    assert (error.code, error.status) == ("IncompleteSignatureException", 400)
    assert error.message == (
        "Authorization header requires 'Credential' parameter. Authorization header requires "
        "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."
    )


async def test_another_scheme_is_an_unsupported_algorithm(keyring, key) -> None:
    parts = with_header(sign_header(key), "Authorization", "Bearer abc")
    error = await refusal(parts, keyring)
    assert (error.code, error.message) == (
        "IncompleteSignatureException",
        "Unsupported AWS 'algorithm': 'Bearer'",
    )


async def test_a_malformed_credential_is_an_incomplete_signature(keyring, key) -> None:
    parts = sign_header(key)
    auth = parts.header("authorization")
    assert auth is not None
    broken = auth.replace("/aws4_request", "")
    error = await refusal(with_header(parts, "Authorization", broken), keyring)
    assert error.code == "IncompleteSignatureException"
    assert error.message.startswith("Credential must have exactly 5 slash-delimited elements")


async def test_a_malformed_date_is_an_incomplete_signature(keyring, key) -> None:
    parts = with_header(sign_header(key), "X-Amz-Date", "2026-03-01T12:00:00Z")
    error = await refusal(parts, keyring)
    assert error.code == "IncompleteSignatureException"
    assert error.message.startswith("Date must be in ISO-8601 'basic format'.")


async def test_a_missing_date_is_an_incomplete_signature(keyring, key) -> None:
    parts = sign_header(key)
    parts = replace(parts, headers=tuple(h for h in parts.headers if h[0] != "X-Amz-Date"))
    error = await refusal(parts, keyring)
    assert error.message == (
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


@pytest.mark.parametrize(
    ("name", "value", "stamp"),
    [
        ("Date", "Fri, 31 Dec 0999 23:59:59 GMT", "09991231T235959Z"),
        ("X-Amz-Date", "00010101T000000Z", "00010101T000000Z"),
    ],
)
async def test_a_date_before_year_1000_is_refused_with_its_four_digit_stamp(
    keyring: Keyring, key: NewKey, name: str, value: str, stamp: str
) -> None:
    scope_date = stamp[:8]
    # strftime("%Y") once wrote "999", a stamp that could not be read back: a 500
    parts = with_header(sign_header(key), name, value)
    if name == "Date":
        parts = replace(parts, headers=tuple(h for h in parts.headers if h[0] != "X-Amz-Date"))
    authorization = dict(parts.headers)["Authorization"].replace("/20260301/", f"/{scope_date}/")
    error = await refusal(with_header(parts, "Authorization", authorization), keyring)
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(f"Signature expired: {stamp} is now earlier than ")


async def test_a_date_whose_zone_leaves_the_calendar_is_an_incomplete_signature(
    keyring: Keyring, key: NewKey
) -> None:
    date = "Fri, 31 Dec 9999 23:59:59 -2359"  # astimezone() raised OverflowError: a 500
    parts = sign_header(key)
    parts = replace(parts, headers=tuple(h for h in parts.headers if h[0] != "X-Amz-Date"))
    error = await refusal(with_header(parts, "Date", date), keyring)
    assert (error.code, error.message) == (
        "IncompleteSignatureException",
        f"Date must be in RFC 1123 format or X-Amz-Date given. Got '{date}'.",
    )


# -- presigned URLs ----------------------------------------------------------------------


async def test_an_expired_presigned_url_is_refused(keyring, key) -> None:
    parts = sign_query(key, expires=60)
    assert await check(parts, keyring, now=NOW + 60)
    error = await refusal(parts, keyring, now=NOW + 61)
    assert (error.code, error.message) == ("InvalidSignatureException", "Request has expired.")


async def test_a_presigned_url_with_a_tampered_parameter_is_refused(keyring, key) -> None:
    parts = sign_query(key)
    parts = replace(parts, query=parts.query.replace("bus=default", "bus=other"))
    assert (await refusal(parts, keyring)).message == MISMATCH


async def test_a_presigned_url_with_a_longer_expiry_is_refused(keyring, key) -> None:
    parts = sign_query(key, expires=60)
    parts = replace(parts, query=parts.query.replace("X-Amz-Expires=60", "X-Amz-Expires=600"))
    assert (await refusal(parts, keyring)).message == MISMATCH


@pytest.mark.parametrize("expires", ["%C2%B2", "%D9%A3", "-1", "1e3", "%EF%BC%91"])
async def test_a_presigned_expiry_that_is_not_ascii_digits_is_incomplete(
    keyring: Keyring, key: NewKey, expires: str
) -> None:
    # '²'.isdigit() is true, and int('²') raised: a 500
    parts = sign_query(key, expires=60)
    parts = replace(
        parts, query=parts.query.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
    )
    error = await refusal(parts, keyring)
    assert (error.code, error.message) == (
        "IncompleteSignatureException",
        "X-Amz-Expires must be non-negative",
    )


async def test_a_presigned_expiry_of_thousands_of_digits_is_over_the_week(keyring, key) -> None:
    for expires in ("9" * 5000, "0" * 5000 + "60" + "0" * 10):
        parts = sign_query(key, expires=60)
        parts = replace(
            parts, query=parts.query.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
        )
        error = await refusal(parts, keyring)
        assert error.message == "X-Amz-Expires must be less than a week (in seconds) that is 604800"
    parts = sign_query(key, expires=60)
    padded = replace(parts, query=parts.query.replace("X-Amz-Expires=60", "X-Amz-Expires=0060"))
    assert (await refusal(padded, keyring)).message == MISMATCH  # read as 60, but not as signed


async def test_a_presigned_url_without_its_signature_is_incomplete(keyring, key) -> None:
    parts = sign_query(key)
    query = "&".join(p for p in parts.query.split("&") if not p.startswith("X-Amz-Signature="))
    error = await refusal(replace(parts, query=query), keyring)
    assert error.code == "IncompleteSignatureException"
    assert error.message == (
        "AWS query-string parameters must include 'X-Amz-Signature'. "
        "Re-examine the query-string parameters."
    )


async def test_both_a_header_and_a_presigned_query_is_incomplete(keyring, key) -> None:
    presigned = sign_query(key)
    header = sign_header(key)
    both = replace(header, query=presigned.query)
    assert (await refusal(both, keyring)).code == "IncompleteSignatureException"


# -- refused: SQS codes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "query_code", "status"),
    [
        ("nothing-signed", "MissingAuthenticationToken", 403),
        ("unknown-key", "InvalidClientTokenId", 403),
        ("wrong-secret", "SignatureDoesNotMatch", 403),
        ("malformed", "IncompleteSignature", 400),
        ("expired", "SignatureDoesNotMatch", 403),
    ],
)
async def test_sqs_refusals_carry_the_query_error_codes(
    keyring: Keyring, key: NewKey, tamper: str, query_code: str, status: int
) -> None:
    parts = sign_header(key, service="sqs")
    now = NOW
    if tamper == "nothing-signed":
        parts = replace(parts, headers=tuple(h for h in parts.headers if h[0] != "Authorization"))
    elif tamper == "unknown-key":
        parts = sign_header(key, service="sqs", key_id="AKIAAAAAAAAAAAAAAAAA")
    elif tamper == "wrong-secret":
        parts = sign_header(key, service="sqs", secret="y" * 40)
    elif tamper == "malformed":
        parts = with_header(parts, "Authorization", "AWS4-HMAC-SHA256 Credential=x")
    else:
        now = NOW + 3600
    error = await refusal(parts, keyring, service="sqs", now=now)
    assert isinstance(error, QueryAuthenticationError)
    assert error.query_code == query_code
    assert error.status == status
    assert error.code == f"com.amazon.coral.service#{query_code}"
    assert error.query_error == f"{query_code};Sender"


async def test_an_expired_presigned_sqs_url_is_request_expired(keyring, key) -> None:
    parts = sign_query(key, service="sqs", expires=10)
    error = await refusal(parts, keyring, service="sqs", now=NOW + 11)
    assert isinstance(error, QueryAuthenticationError)
    assert (error.query_code, error.status, error.message) == (
        "RequestExpired",
        400,
        "Request has expired.",
    )


async def test_an_sqs_signature_mismatch_has_aws_message(keyring, key) -> None:
    error = await refusal(sign_header(key, service="sqs", secret="z" * 40), keyring, service="sqs")
    assert error.message == MISMATCH


# -- the pieces ----------------------------------------------------------------------------


def test_parts_are_read_from_an_asgi_scope() -> None:
    scope = {
        "method": "POST",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
        "headers": [(b"host", b"localhost"), (b"x-amz-date", b"20260301T120000Z")],
    }
    parts = SignedRequestParts.from_asgi(scope, b"{}")
    assert (parts.method, parts.path, parts.query, parts.body) == ("POST", "/a%20b", "x=1", b"{}")
    assert parts.header("X-Amz-Date") == "20260301T120000Z"


async def test_a_lookup_is_only_asked_for_well_formed_requests() -> None:
    asked: list[str] = []

    class Lookup:
        async def signing_key(self, access_key_id: str) -> SigningKey | None:
            asked.append(access_key_id)
            return None

    request = AWSRequest(method="POST", url="http://h/", data=b"{}", headers={"Host": "h"})
    SigV4Auth(Credentials("AKIAAAAAAAAAAAAAAAAA", "s" * 40), "events", "eu-west-1").add_auth(
        request
    )
    with pytest.raises(InvalidSignature):
        await verify(_parts(request), Lookup(), service="events", now=NOW, regions={REGION})
    assert asked == []  # a wrong scope is refused before any key is looked up


def test_the_signing_clock_is_frozen() -> None:
    assert calendar.timegm(SIGNED_AT.timetuple()) == NOW


# -- requests as boto3 clients send them ---------------------------------------------------


def _sent_by_boto3(service: str, key: NewKey, call: str, **params: object) -> SignedRequestParts:
    """The request a boto3 client sends for ``call``, captured before it leaves."""
    import boto3
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

    captured: list[SignedRequestParts] = []

    def capture(request: AWSPreparedRequest, **_: object) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body or b""
        captured.append(
            SignedRequestParts(
                method=request.method,
                path=url.path or "/",
                query=url.query,
                # the HTTP client adds Host when it sends: botocore signed the same value
                headers=(
                    ("Host", url.netloc),
                    *(
                        (name, value.decode() if isinstance(value, bytes) else value)
                        for name, value in request.headers.items()
                    ),
                ),
                body=body if isinstance(body, bytes) else body.encode(),
            )
        )
        return AWSResponse(request.url, 200, {}, None)  # type: ignore[arg-type]

    client = boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url="http://localhost:4010",
        region_name=REGION,
        aws_access_key_id=key.key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
    )
    client.meta.events.register("before-send", capture)
    with contextlib.suppress(Exception):  # the fake answer may not parse: only the request matters
        getattr(client, call)(**params)
    return captured[0]


async def test_a_boto3_eventbridge_call_verifies(keyring, key) -> None:
    parts = _sent_by_boto3(
        "events", key, "put_events", Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]
    )
    assert (await check(parts, keyring)).account_id == "111122223333"


async def test_a_boto3_sqs_call_verifies(keyring, key) -> None:
    parts = _sent_by_boto3(
        "sqs", key, "send_message", QueueUrl="http://localhost:4010/q", MessageBody="hi"
    )
    assert (await check(parts, keyring, service="sqs")).account_id == "111122223333"
