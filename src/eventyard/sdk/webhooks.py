"""Verify signed webhook deliveries on the receiving side (Standard Webhooks).

An HTTP target with a signing secret (``eventyard targets secret``, see
``docs/webhooks.md``) signs each delivery as https://www.standardwebhooks.com/ has it:

- ``webhook-id``: the event id, the same on every retry (use it to de-duplicate);
- ``webhook-timestamp``: the attempt time, integer seconds since the epoch;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``
  keyed by the secret's bytes; while a secret is being rotated there are two, separated
  by a space, one per secret.

A secret is written ``whsec_<base64>`` (the ``whsec_`` prefix is optional here). The
receiver checks the signature over the **raw body bytes** as received: parsing the JSON
and serialising it again changes them.

:func:`verify` is all a receiver needs; :func:`sign` computes the header value the
sender would, for tests of a receiver. Neither depends on the server: any receiver can
use them, and any Standard Webhooks library can verify eventyard's deliveries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import Final

from eventyard.errors import ConfigurationError, WebhookVerificationError

__all__ = [
    "DEFAULT_TOLERANCE",
    "ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "decode_secret",
    "sign",
    "verify",
]

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"
#: seconds a delivery's timestamp may differ from the receiver's clock, either way
DEFAULT_TOLERANCE: Final = 300
_VERSION: Final = "v1"
# a timestamp is an integer of at most this many digits (year 5138): longer text is
# refused before int() so that a hostile header costs nothing
_MAX_TIMESTAMP_DIGITS: Final = 11


def decode_secret(secret: str | bytes) -> bytes:
    """The key bytes of a secret: ``whsec_<base64>`` or the base64 alone, or raw bytes.

    Raises:
        ConfigurationError: the text is not base64, or decodes to nothing.
    """
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.strip()
        text = text.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise ConfigurationError(
                "a webhook secret is whsec_ followed by base64 text, as eventyard printed it"
            ) from None
    if not key:
        raise ConfigurationError("a webhook secret must not be empty")
    return key


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = b"%s.%s.%s" % (msg_id.encode(), timestamp.encode(), body)
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(
    payload: bytes | str,
    secrets: str | bytes | Iterable[str | bytes],
    *,
    msg_id: str,
    timestamp: int,
) -> str:
    """The ``webhook-signature`` value for ``payload``: one ``v1,<base64>`` per secret.

    Raises:
        ConfigurationError: a secret is not valid (:func:`decode_secret`).
    """
    body = payload.encode() if isinstance(payload, str) else payload
    stamp = str(int(timestamp))
    return " ".join(
        f"{_VERSION},{base64.b64encode(_signature(key, msg_id, stamp, body)).decode()}"
        for key in _keys(secrets)
    )


def verify(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret_or_secrets: str | bytes | Iterable[str | bytes],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that a delivery was signed with one of the secrets, recently.

    Args:
        payload: the request body exactly as received (bytes, or text, encoded as UTF-8).
        headers: the request headers, any mapping; names are matched ignoring case.
        secret_or_secrets: the secret, or several (e.g. the old and the new one while
            the sender rotates): any one matching signature is enough.
        tolerance: how many seconds the ``webhook-timestamp`` may be from ``now``, in
            the past or in the future (replays of old deliveries are refused).
        now: the current time in epoch seconds; the system clock by default.

    Returns:
        None: the delivery is authentic. Use ``headers["webhook-id"]`` to de-duplicate.

    Raises:
        WebhookVerificationError: a header is missing, the timestamp is not an integer
            or outside the tolerance, or no signature matches (``reason`` says which).
        ConfigurationError: a secret is not valid, or none is given.
    """
    keys = _keys(secret_or_secrets)
    msg_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    signatures = _header(headers, SIGNATURE_HEADER)
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
        raise WebhookVerificationError(
            f"the {TIMESTAMP_HEADER} header is not a number of seconds",
            reason="INVALID_TIMESTAMP",
        )
    sent = int(stamp)
    current = time.time() if now is None else now
    if sent < current - tolerance:
        raise WebhookVerificationError(
            f"the delivery is too old: signed {current - sent:.0f} s ago, more than the "
            f"{tolerance:g} s tolerated",
            reason="TIMESTAMP_TOO_OLD",
        )
    if sent > current + tolerance:
        raise WebhookVerificationError(
            f"the delivery is signed {sent - current:.0f} s in the future, more than the "
            f"{tolerance:g} s tolerated",
            reason="TIMESTAMP_TOO_NEW",
        )
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    expected = [_signature(key, msg_id, stamp, body) for key in keys]
    matched = False
    for item in signatures.split(" "):
        version, _, encoded = item.partition(",")
        if version != _VERSION or not encoded:
            continue  # another scheme (v1a) or an empty item: not ours to judge
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        for candidate in expected:
            # every candidate is compared, whatever matched before: constant time
            matched |= hmac.compare_digest(candidate, given)
    if not matched:
        raise WebhookVerificationError(
            "no signature matches: the body, the id or the timestamp was changed, or the "
            "delivery was signed with another secret",
            reason="NO_MATCHING_SIGNATURE",
        )


def _keys(secrets: str | bytes | Iterable[str | bytes]) -> list[bytes]:
    items: Iterable[str | bytes] = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    keys = [decode_secret(item) for item in items]
    if not keys:
        raise ConfigurationError("no webhook secret given")
    return keys


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        for key, item in headers.items():
            if key.lower() == name:
                value = item
                break
    if value is None or not str(value).strip():
        raise WebhookVerificationError(f"the {name} header is missing", reason="MISSING_HEADER")
    return str(value).strip()
