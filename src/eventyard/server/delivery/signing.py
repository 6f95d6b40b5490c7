"""Signed webhooks: the Standard Webhooks signature of a delivery, and its secrets.

An HTTP target may have one or two signing secrets (two while one is rotated: both
sign, so a receiver that knows either accepts the delivery). Each delivery then carries
the headers of https://www.standardwebhooks.com/:

- ``webhook-id``: the event id, the same on every attempt, so receivers de-duplicate;
- ``webhook-timestamp``: the attempt time in integer epoch seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``,
  one per secret, newest first, separated by spaces.

Secrets are ``whsec_`` + base64 of 24 to 64 random bytes (:func:`generate_secret` makes
32). They are kept in the target's catalog entry, **sealed** with the master key
(:mod:`eventyard.server.auth.masterkey`), each bound to its target's key so that a
sealed secret copied to another target does not open; no API answer ever contains one,
except the call that creates a secret, once. The router unseals them when it loads the
rule (:func:`unseal_secrets`) and the HTTP target signs with the plaintext it holds in
memory, as the keyring holds access-key secrets.

The receiving side is :func:`eventyard.webhooks.verify` (the SDK; the server does not
import it, and the tests check each side against the other).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

from eventyard.errors import ConfigurationError, ValidationError
from eventyard.server.auth.masterkey import MasterKey

__all__ = [
    "GENERATED_SECRET_BYTES",
    "ID_HEADER",
    "MAX_SECRETS",
    "MAX_SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "generate_secret",
    "parse_secret",
    "seal_secret",
    "signature_headers",
    "unseal_secrets",
]

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"
#: the Standard Webhooks bounds of a secret's size (192 to 512 bits)
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
GENERATED_SECRET_BYTES: Final = 32
#: secrets valid at once: the current one and, during a rotation, the previous one
MAX_SECRETS: Final = 2


def generate_secret() -> str:
    """A new random secret, ``whsec_`` + base64 of 32 bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()


def parse_secret(text: str) -> bytes:
    """The key bytes of a secret a user gives (``whsec_<base64>``).

    Raises:
        ValidationError: not ``whsec_`` + base64, or not 24 to 64 bytes.
    """
    if not text.startswith(SECRET_PREFIX):
        raise ValidationError(
            f"A signing secret starts with {SECRET_PREFIX} followed by base64 text (omit it "
            "to have one generated)."
        )
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValidationError(
            f"A signing secret is {SECRET_PREFIX} followed by base64 text; this one is not base64."
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValidationError(
            f"A signing secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random "
            f"bytes; this one holds {len(key)}."
        )
    return key


def signature_headers(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt, signed with every key."""
    stamp = str(int(timestamp))
    signed = b"%s.%s.%s" % (msg_id.encode(), stamp.encode(), body)
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signatures}


def _context(target_key: str) -> str:
    return f"webhook-secret:{target_key}"


def seal_secret(master: MasterKey, target_key: str, secret: str, created: float) -> dict[str, Any]:
    """The stored form of one secret of target ``target_key``: sealed, with its time."""
    return {
        "Sealed": master.seal(secret, context=_context(target_key)),
        "CreationTime": created,
    }


def unseal_secrets(
    master: MasterKey, target_key: str, stored: Sequence[Mapping[str, Any]]
) -> tuple[bytes, ...]:
    """The key bytes of the secrets :func:`seal_secret` stored for ``target_key``.

    Raises:
        ConfigurationError: a secret does not open with this master key (another key
            sealed it, or the record was altered or moved from another target).
    """
    keys = []
    for record in stored:
        sealed = record.get("Sealed") if isinstance(record, Mapping) else None
        if not isinstance(sealed, Mapping):
            raise ConfigurationError(
                f"The signing secret of target {target_key} is not a sealed record."
            )
        text = master.unseal(sealed, context=_context(target_key))
        keys.append(base64.b64decode(text.removeprefix(SECRET_PREFIX)))
    return tuple(keys)
