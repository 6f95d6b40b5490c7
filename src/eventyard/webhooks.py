"""``eventyard.webhooks``: verify signed webhook deliveries (see :mod:`eventyard.sdk.webhooks`).

``eventyard.webhooks.verify(body, headers, secret)`` raises
:class:`eventyard.errors.WebhookVerificationError` unless the delivery was signed with
the secret within the tolerance (five minutes by default).
"""

from __future__ import annotations

from eventyard.sdk.webhooks import (
    DEFAULT_TOLERANCE,
    ID_HEADER,
    SECRET_PREFIX,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    decode_secret,
    sign,
    verify,
)

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
