"""Verify AWS Signature Version 4 on an incoming request, and answer as AWS does.

Both forms are verified: the ``Authorization: AWS4-HMAC-SHA256 Credential=…,
SignedHeaders=…, Signature=…`` header, and the presigned query string (``X-Amz-Algorithm``,
``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``,
``X-Amz-Signature``). The canonical request, the string to sign and the signing key are
computed by botocore's own signer (:class:`botocore.auth.SigV4Auth`) over an
:class:`~botocore.awsrequest.AWSRequest` rebuilt from the incoming method, raw path, query
(less ``X-Amz-Signature``), the *signed* headers only, and the client's timestamp: the
server canonicalises exactly as boto3 does, with no hand-written canonical request. The
signatures are compared with :func:`hmac.compare_digest`.

Checked, in order: the form of the credentials (``IncompleteSignature``), the credential
scope (date equal to the request date's, region among the configured ones, service the
API's own, ``events`` for EventBridge, ``sqs`` for SQS and ``scheduler`` for EventBridge
Scheduler (whose errors are EventBridge's), terminator ``aws4_request``),
the clock skew (5 minutes by default, as AWS; the clock is a parameter), the access key
(``UnrecognizedClient``), the payload hash (``x-amz-content-sha256``, when sent, must be
the body's SHA-256; ``UNSIGNED-PAYLOAD`` is refused because the JSON APIs always sign
their body), then the signature.

The errors are AWS's and depend on the API (``service``):

=========================  ====================================  ==============================
refusal                    EventBridge (AWS JSON 1.1), HTTP 400  SQS (JSON 1.0, query codes)
=========================  ====================================  ==============================
no credentials             MissingAuthenticationTokenException   MissingAuthenticationToken 403
malformed credentials      IncompleteSignatureException          IncompleteSignature 400
unknown access key         UnrecognizedClientException           InvalidClientTokenId 403
wrong signature or scope   InvalidSignatureException             SignatureDoesNotMatch 403
clock skew                 InvalidSignatureException             SignatureDoesNotMatch 403
presigned URL expired      InvalidSignatureException             RequestExpired 400
=========================  ====================================  ==============================

Sources (the messages are AWS's verbatim where a source shows them):

* SQS codes and statuses: Amazon SQS API Reference, "Common Errors"
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html):
  IncompleteSignature 400, InvalidClientTokenId 403, MissingAuthenticationToken 403,
  RequestExpired 400 ("…more than 15 minutes after the request expiration date (such as
  for pre-signed URLs)"). SignatureDoesNotMatch 403 with "Signature expired: … is now
  earlier than … (… - 15 min.)" from SQS itself: aws/aws-sdk-go#487, aws/aws-sdk-js#401.
  SQS's JSON answers name unmodeled errors ``com.amazon.coral.service#<code>`` and
  botocore takes the code from the ``x-amzn-query-error`` header (awsQueryCompatible).
* JSON-protocol codes, all HTTP 400: DynamoDB developer guide, "Error handling"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html)
  lists IncompleteSignatureException, MissingAuthenticationTokenException,
  UnrecognizedClientException and InvalidSignatureException, which AWS's shared front
  end answers for every JSON service, EventBridge included.
* Messages: "The security token included in the request is invalid." (localstack#3562,
  aws-sdk-js-v3#6715); "The request signature we calculated does not match the signature
  you provided. Check your AWS Secret Access Key and signing method. Consult the service
  documentation for details." (boto/boto#1573, SQS); "Request is missing Authentication
  Token"; "Signature expired: X is now earlier than Y (Z - 5 min.)" and "Signature not
  yet current: X is still later than Y (Z + 5 min.)"; "Credential should be scoped to a
  valid region, not 'r'.", "Credential should be scoped to correct service: 's'.",
  "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from
  HTTP: 'a' != 'b', from 'c'." (IAM user guide, "Troubleshoot signing errors",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-troubleshooting.html);
  "Authorization header requires 'Credential' parameter." and its siblings.
* Inferred, not observed: an expired presigned URL on EventBridge answers
  InvalidSignatureException "Request has expired." (SQS's RequestExpired, renamed as the
  JSON front end renames its siblings); a request carrying both forms of signature is
  IncompleteSignature.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from eventyard.errors import (
    AuthenticationError,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    QueryAuthenticationError,
    UnrecognizedClient,
)
from eventyard.server.auth.keys import Principal, SigningKey

__all__ = [
    "ALGORITHM",
    "DEFAULT_MAX_SKEW",
    "MAX_EXPIRES",
    "SERVICES",
    "KeyLookup",
    "Service",
    "SignedRequestParts",
    "incomplete",
    "missing",
    "screen",
    "unrecognized",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_MAX_SKEW = 300.0  # AWS's 5 minutes
MAX_EXPIRES = 604_800  # a presigned URL lives at most 7 days, as on AWS
SERVICES = frozenset({"events", "sqs", "scheduler"})  # one server serves the three APIs

Service = Literal["events", "sqs", "scheduler"]

_TIMESTAMP_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
_MAX_EXPIRES_DIGITS = len(str(MAX_EXPIRES))
_UNSIGNED = ("UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)
_INVALID_TOKEN = "The security token included in the request is invalid."
_MISSING_TOKEN = "Request is missing Authentication Token"


@dataclass(frozen=True, slots=True)
class SignedRequestParts:
    """The parts of an HTTP request a signature covers, as received.

    Attributes:
        method: the HTTP method.
        path: the path exactly as sent on the wire (still percent-encoded, no query).
        query: the raw query string, without ``?``.
        headers: every header as ``(name, value)``, in order, repeated names repeated.
        body: the request body.
    """

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def from_asgi(cls, scope: Mapping[str, Any], body: bytes) -> SignedRequestParts:
        """The parts of an ASGI HTTP request (``raw_path``, ``query_string``, ``headers``)."""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        return cls(
            method=scope["method"],
            path=raw_path.decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=tuple(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in scope["headers"]
            ),
            body=body,
        )

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


class KeyLookup(Protocol):
    """Finds the signing key of an access key id (:class:`~.keys.Keyring` is one)."""

    async def signing_key(self, access_key_id: str) -> SigningKey | None:
        """The key with its plaintext secret, or None when there is no such key."""
        ...


# -- the two flavours of errors -----------------------------------------------------------


def missing(service: Service) -> AuthenticationError:
    """No credentials at all, in ``service``'s words."""
    if service == "sqs":
        return QueryAuthenticationError("MissingAuthenticationToken", _MISSING_TOKEN, status=403)
    return MissingAuthenticationToken(_MISSING_TOKEN)


def incomplete(service: Service, message: str) -> AuthenticationError:
    """Credentials that are malformed or cannot be read, in ``service``'s words."""
    if service == "sqs":
        return QueryAuthenticationError("IncompleteSignature", message, status=400)
    return IncompleteSignature(message)


def unrecognized(service: Service) -> AuthenticationError:
    """An access key (or bearer token) the server does not know, in ``service``'s words."""
    if service == "sqs":
        return QueryAuthenticationError("InvalidClientTokenId", _INVALID_TOKEN, status=403)
    return UnrecognizedClient(_INVALID_TOKEN)


def _mismatch(service: Service, message: str = _MISMATCH) -> AuthenticationError:
    if service == "sqs":
        return QueryAuthenticationError("SignatureDoesNotMatch", message, status=403)
    return InvalidSignature(message)


def _expired(service: Service) -> AuthenticationError:
    if service == "sqs":
        return QueryAuthenticationError("RequestExpired", "Request has expired.", status=400)
    return InvalidSignature("Request has expired.")


# -- parsing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    """What a request claims: who signed it, when, for which scope, and the signature."""

    access_key_id: str
    scope_date: str
    region: str
    scope_service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # SigV4 form, e.g. 20250101T000000Z
    expires: int | None  # presigned only


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's ``(name, value)`` pairs, percent-decoded (``+`` stays ``+``)."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _parse_timestamp(value: str, service: Service) -> datetime.datetime:
    if not _TIMESTAMP_RE.match(value):
        raise incomplete(
            service,
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601",
        )
    try:
        return _datetime(value)
    except ValueError:
        raise incomplete(
            service,
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601",
        ) from None


def _datetime(stamp: str) -> datetime.datetime:
    """``20250101T000000Z`` (checked by ``_TIMESTAMP_RE``) as a UTC datetime.

    By slicing: ``strptime`` would be a fifth of the cost of verifying a request.
    """
    return datetime.datetime(
        int(stamp[0:4]),
        int(stamp[4:6]),
        int(stamp[6:8]),
        int(stamp[9:11]),
        int(stamp[11:13]),
        int(stamp[13:15]),
        tzinfo=datetime.UTC,
    )


def _format(when: datetime.datetime) -> str:
    """``when`` (UTC) in SigV4's basic ISO 8601 form, always with a 4-digit year.

    Not ``strftime("%Y…")``: it writes years below 1000 with fewer digits (``999``), a
    stamp that is no longer 16 characters and that :func:`_datetime` cannot read back.
    """
    return (
        f"{when.year:04d}{when.month:02d}{when.day:02d}"
        f"T{when.hour:02d}{when.minute:02d}{when.second:02d}Z"
    )


def _credential(value: str, service: Service) -> list[str]:
    parts = value.split("/")
    if len(parts) != 5 or not all(parts):
        raise incomplete(
            service,
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{value}'",
        )
    return parts


def _header_claim(authorization: str, request: SignedRequestParts, service: Service) -> _Claim:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != ALGORITHM:
        raise incomplete(service, f"Unsupported AWS 'algorithm': '{scheme}'")
    fields: dict[str, str] = {}
    for item in re.split(r"[,\s]+", rest.strip()):
        name, sep, value = item.partition("=")
        if sep:
            fields[name] = value
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    amz_date = request.header("x-amz-date")
    date = request.header("date")
    if amz_date is None and date is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise incomplete(service, " ".join(problems))
    if amz_date is not None:
        when = _parse_timestamp(amz_date, service)
    else:
        assert date is not None
        try:
            parsed = email.utils.parsedate_to_datetime(date)
            # "-0000" (what botocore writes) parses as naive: it means UTC, not local time
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.UTC)
            when = parsed.astimezone(datetime.UTC)
        except (TypeError, ValueError, OverflowError):
            # OverflowError: a zone that moves the date out of years 1 to 9999
            raise incomplete(
                service, f"Date must be in RFC 1123 format or X-Amz-Date given. Got '{date}'."
            ) from None
    return _claim(
        service,
        fields["Credential"],
        fields["SignedHeaders"],
        fields["Signature"],
        when=when,
        expires=None,
    )


def _query_claim(pairs: list[tuple[str, str]], service: Service) -> _Claim:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("X-Amz-"):
            if name in params:
                raise incomplete(service, f"Query-string parameter '{name}' is given twice.")
            params[name] = value
    problems = [
        f"AWS query-string parameters must include '{name}'."
        for name in _QUERY_PARAMS
        if not params.get(name)
    ]
    if problems:
        raise incomplete(service, " ".join([*problems, "Re-examine the query-string parameters."]))
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise incomplete(service, f"Unsupported AWS 'algorithm': '{params['X-Amz-Algorithm']}'")
    expires: int | None = None
    if "X-Amz-Expires" in params:
        raw = params["X-Amz-Expires"]
        # ASCII digits only: str.isdigit() is also true of '²' and '٣', which int() refuses
        if not (raw.isascii() and raw.isdigit()):
            raise incomplete(service, "X-Amz-Expires must be non-negative")
        # a long run of digits is over the week whatever it says (and int() refuses
        # more than 4300 digits)
        expires = int(raw) if len(raw.lstrip("0")) <= _MAX_EXPIRES_DIGITS else MAX_EXPIRES + 1
        if expires > MAX_EXPIRES:
            raise incomplete(
                service,
                f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}",
            )
    when = _parse_timestamp(params["X-Amz-Date"], service)
    return _claim(
        service,
        params["X-Amz-Credential"],
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        when=when,
        expires=expires,
    )


def _claim(
    service: Service,
    /,
    credential: str,
    signed_headers: str,
    signature: str,
    *,
    when: datetime.datetime,
    expires: int | None,
) -> _Claim:
    """The claim of either signing form, once its own parameters are read."""
    key_id, scope_date, region, scope_service, terminator = _credential(credential, service)
    signed = tuple(signed_headers.split(";"))
    if "host" not in signed and ":authority" not in signed:
        raise incomplete(
            service, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    return _Claim(
        key_id,
        scope_date,
        region,
        scope_service,
        terminator,
        signed,
        signature,
        _format(when),
        expires,
    )


# -- checks ------------------------------------------------------------------------------


def _check_scope(claim: _Claim, regions: Collection[str], service: Service) -> None:
    problems = []
    if claim.region not in regions:
        problems.append(f"Credential should be scoped to a valid region, not '{claim.region}'.")
    if claim.scope_service != service:  # an sqs signature does not open EventBridge
        problems.append(f"Credential should be scoped to correct service: '{service}'.")
    if claim.terminator != "aws4_request":
        problems.append(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{claim.terminator}'."
        )
    if claim.scope_date != claim.timestamp[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{claim.scope_date}' != '{claim.timestamp[:8]}', "
            f"from '{claim.timestamp}'."
        )
    if problems:
        raise _mismatch(service, " ".join(problems))


def _stamp(epoch: float) -> str:
    return _format(datetime.datetime.fromtimestamp(epoch, datetime.UTC))


def _check_time(claim: _Claim, now: float, max_skew: float, service: Service) -> None:
    signed_at = _datetime(claim.timestamp).timestamp()
    window = f"{max_skew / 60:g} min."
    if signed_at > now + max_skew:
        raise _mismatch(
            service,
            f"Signature not yet current: {claim.timestamp} is still later than "
            f"{_stamp(now + max_skew)} ({_stamp(now)} + {window})",
        )
    if claim.expires is not None:
        if now > signed_at + claim.expires:
            raise _expired(service)
    elif signed_at < now - max_skew:
        raise _mismatch(
            service,
            f"Signature expired: {claim.timestamp} is now earlier than "
            f"{_stamp(now - max_skew)} ({_stamp(now)} - {window})",
        )


def _payload_hash(request: SignedRequestParts, service: Service) -> str:
    """The body's SHA-256, checked against ``x-amz-content-sha256`` when that is sent."""
    computed = hashlib.sha256(request.body).hexdigest()
    declared = request.header("x-amz-content-sha256")
    if declared is not None and declared != computed:
        if declared in _UNSIGNED:
            raise _mismatch(
                service,
                f"{declared} is not accepted: this API signs the SHA-256 of the request body.",
            )
        raise _mismatch(
            service, "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    return computed


# -- the signature, computed by botocore ------------------------------------------------


class _Verifier(SigV4Auth):
    """botocore's signer, told which headers the client signed and the body's hash.

    Everything else (canonical URI, query string, headers, string to sign, signing key)
    is botocore's own code, the code that signed the request on the client side.
    """

    def __init__(self, key: SigningKey, claim: _Claim, body_hash: str) -> None:
        super().__init__(
            Credentials(key.access_key_id, key.secret_access_key),
            claim.scope_service,
            claim.region,
        )
        self._signed = claim.signed_headers
        self._body_hash = body_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        # Exactly the client's SignedHeaders (botocore would pick every header present,
        # and add a Host of its own); a signed header that is absent stays absent, so
        # the signature cannot match.
        selected = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name, []):
                selected[name] = value
        return selected

    def payload(self, request: AWSRequest) -> str:
        return self._body_hash


def _expected_signature(
    request: SignedRequestParts,
    pairs: list[tuple[str, str]],
    claim: _Claim,
    key: SigningKey,
    body_hash: str,
) -> str:
    path = request.path if request.path.startswith("/") else "/" + request.path
    rebuilt = AWSRequest(method=request.method.upper(), url=f"http://eventyard{path}")
    signed = frozenset(name.lower() for name in claim.signed_headers)
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in signed:  # the others would only be copied to be ignored
            rebuilt.headers[lowered] = value
    # Decoded pairs: botocore re-encodes them canonically (RFC 3986, sorted).
    rebuilt.params = [(name, value) for name, value in pairs if name != "X-Amz-Signature"]  # type: ignore[assignment]
    rebuilt.context["timestamp"] = claim.timestamp
    signer = _Verifier(key, claim, body_hash)
    canonical = signer.canonical_request(rebuilt)
    return signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)


# -- the entry point ---------------------------------------------------------------------


async def _checked_claim(
    request: SignedRequestParts,
    keys: KeyLookup,
    *,
    service: Service,
    now: float,
    regions: Collection[str],
    max_skew: float,
) -> tuple[_Claim, SigningKey, list[tuple[str, str]]]:
    """Every check that does not need the body: form, scope, clock and the key's existence."""
    if service not in SERVICES:
        raise ValueError(f"service must be one of {sorted(SERVICES)}, not {service!r}")
    authorization = request.header("authorization")
    pairs = _query_pairs(request.query)
    presigned = any(name in _QUERY_PARAMS for name, _ in pairs)
    if authorization is not None and presigned:
        raise incomplete(
            service,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or "
            "the Authorization header should be specified.",
        )
    if authorization is None and not presigned:
        raise missing(service)
    if authorization is not None:
        claim = _header_claim(authorization, request, service)
    else:
        claim = _query_claim(pairs, service)
    _check_scope(claim, regions, service)
    _check_time(claim, now, max_skew, service)
    key = await keys.signing_key(claim.access_key_id)
    if key is None:
        raise unrecognized(service)
    return claim, key, pairs


async def screen(
    request: SignedRequestParts,
    keys: KeyLookup,
    *,
    service: Service,
    now: float,
    regions: Collection[str],
    max_skew: float = DEFAULT_MAX_SKEW,
) -> None:
    """Refuse, before its body is read, a request that cannot verify whatever its body.

    Everything :func:`verify` checks but the payload hash and the signature: the form
    of the credentials, the scope, the clock and that the access key exists.
    ``request.body`` is not read. A request that passes must still be :func:`verify`-ed
    with its body.

    Raises:
        AuthenticationError: as :func:`verify`.
    """
    await _checked_claim(
        request, keys, service=service, now=now, regions=regions, max_skew=max_skew
    )


async def verify(
    request: SignedRequestParts,
    keys: KeyLookup,
    *,
    service: Service,
    now: float,
    regions: Collection[str],
    max_skew: float = DEFAULT_MAX_SKEW,
) -> Principal:
    """Verify the SigV4 signature of ``request``; return who signed it.

    Args:
        request: the request as received.
        keys: finds the secret of the access key the request names.
        service: which API answers, ``events`` (EventBridge) or ``sqs``: the service
            the credential scope must name, and the flavour of the error codes.
        now: the current time, epoch seconds.
        regions: the regions a credential scope may name.
        max_skew: how far, in seconds, the request's date may be from ``now``.

    Raises:
        AuthenticationError: the request is not authenticated; the subclass and its
            ``code``/``status`` are AWS's for ``service`` (table in the module doc).
    """
    claim, key, pairs = await _checked_claim(
        request, keys, service=service, now=now, regions=regions, max_skew=max_skew
    )
    body_hash = _payload_hash(request, service)
    expected = _expected_signature(request, pairs, claim, key, body_hash)
    if not hmac.compare_digest(expected.encode(), claim.signature.encode()):
        raise _mismatch(service)
    return Principal(key.account_id, key.access_key_id)
