"""``eventyard.webhooks.verify``: the receiving side of signed webhooks (Standard Webhooks).

The delivery side is tested against it in ``tests/server/delivery/test_webhook_signing.py``
and, through a real server, in ``tests/e2e/test_webhooks_e2e.py``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

import eventyard
from eventyard import webhooks
from eventyard.errors import ConfigurationError, WebhookVerificationError

# The Standard Webhooks specification's published test vector (its libraries' tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret of 24+ bytes!").decode()


def _headers(
    signature: str = VECTOR_SIGNATURE, timestamp: Any = VECTOR_TIMESTAMP, msg_id: str = VECTOR_ID
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def _reason(
    payload: bytes | str,
    headers: Mapping[str, str],
    secrets: Any = VECTOR_SECRET,
    **kwargs: Any,
) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        webhooks.verify(payload, headers, secrets, **kwargs)
    return caught.value.reason


def test_the_specification_test_vector_signs_and_verifies() -> None:
    signed = webhooks.sign(
        VECTOR_PAYLOAD, VECTOR_SECRET, msg_id=VECTOR_ID, timestamp=VECTOR_TIMESTAMP
    )
    assert signed == VECTOR_SIGNATURE
    webhooks.verify(VECTOR_PAYLOAD, _headers(), VECTOR_SECRET, now=VECTOR_TIMESTAMP)
    # bytes or text, with or without the prefix, any header case
    shouted = {k.upper(): v for k, v in _headers().items()}
    webhooks.verify(VECTOR_PAYLOAD.encode(), shouted, VECTOR_SECRET[6:], now=VECTOR_TIMESTAMP)


def test_it_is_reachable_as_eventyard_webhooks() -> None:
    assert eventyard.webhooks.verify is webhooks.verify
    from eventyard.webhooks import verify

    assert verify is webhooks.verify


def test_any_of_several_secrets_may_match_and_any_of_several_signatures() -> None:
    both = webhooks.sign(
        VECTOR_PAYLOAD,
        [OTHER_SECRET, VECTOR_SECRET],
        msg_id=VECTOR_ID,
        timestamp=VECTOR_TIMESTAMP,
    )
    assert both.split(" ")[1] == VECTOR_SIGNATURE
    for secrets in (VECTOR_SECRET, OTHER_SECRET, [OTHER_SECRET], (VECTOR_SECRET, OTHER_SECRET)):
        webhooks.verify(VECTOR_PAYLOAD, _headers(both), secrets, now=VECTOR_TIMESTAMP)
    # the receiver holds two secrets and the sender signed with one of them
    webhooks.verify(VECTOR_PAYLOAD, _headers(), [OTHER_SECRET, VECTOR_SECRET], now=VECTOR_TIMESTAMP)


def test_other_schemes_and_garbage_among_the_signatures_are_skipped() -> None:
    mixed = f"v1a,c2lnbmF0dXJl v1,not-base64!! v2,{VECTOR_SIGNATURE[3:]}  {VECTOR_SIGNATURE}"
    webhooks.verify(VECTOR_PAYLOAD, _headers(mixed), VECTOR_SECRET, now=VECTOR_TIMESTAMP)
    only_other = f"v1a,{VECTOR_SIGNATURE[3:]} v2,{VECTOR_SIGNATURE[3:]}"
    assert (
        _reason(VECTOR_PAYLOAD, _headers(only_other), now=VECTOR_TIMESTAMP)
        == "NO_MATCHING_SIGNATURE"
    )


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("payload", '{"test": 2432232315}'),
        ("payload", '{"test":2432232314}'),  # the same JSON, other bytes
        ("id", "msg_other"),
        ("timestamp", VECTOR_TIMESTAMP + 1),
        ("secret", OTHER_SECRET),
        ("signature", "v1," + base64.b64encode(b"\0" * 32).decode()),
    ],
)
def test_any_change_breaks_the_signature(change: str, value: Any) -> None:
    payload = value if change == "payload" else VECTOR_PAYLOAD
    headers = _headers(
        signature=value if change == "signature" else VECTOR_SIGNATURE,
        timestamp=value if change == "timestamp" else VECTOR_TIMESTAMP,
        msg_id=value if change == "id" else VECTOR_ID,
    )
    secret = value if change == "secret" else VECTOR_SECRET
    assert _reason(payload, headers, secret, now=VECTOR_TIMESTAMP) == "NO_MATCHING_SIGNATURE"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_or_empty_header_is_refused(missing: str) -> None:
    headers = _headers()
    del headers[missing]
    assert _reason(VECTOR_PAYLOAD, headers, now=VECTOR_TIMESTAMP) == "MISSING_HEADER"
    assert (
        _reason(VECTOR_PAYLOAD, {**_headers(), missing: "  "}, now=VECTOR_TIMESTAMP)
        == "MISSING_HEADER"
    )


@pytest.mark.parametrize("stamp", ["", "abc", "1614265330.5", "-5", "1e9", "١٢٣", "9" * 40])
def test_a_timestamp_that_is_not_whole_seconds_is_refused(stamp: str) -> None:
    headers = {**_headers(), "webhook-timestamp": stamp}
    expected = "MISSING_HEADER" if not stamp else "INVALID_TIMESTAMP"
    assert _reason(VECTOR_PAYLOAD, headers, now=VECTOR_TIMESTAMP) == expected


def test_the_tolerance_is_inclusive_both_ways_and_refuses_past_it() -> None:
    for now in (VECTOR_TIMESTAMP - 300, VECTOR_TIMESTAMP + 300):
        webhooks.verify(VECTOR_PAYLOAD, _headers(), VECTOR_SECRET, now=now)
    assert _reason(VECTOR_PAYLOAD, _headers(), now=VECTOR_TIMESTAMP + 301) == "TIMESTAMP_TOO_OLD"
    assert _reason(VECTOR_PAYLOAD, _headers(), now=VECTOR_TIMESTAMP - 301) == "TIMESTAMP_TOO_NEW"
    webhooks.verify(
        VECTOR_PAYLOAD, _headers(), VECTOR_SECRET, now=VECTOR_TIMESTAMP + 3600, tolerance=3600
    )
    # by default the system clock: a delivery of 2021 is far too old
    assert _reason(VECTOR_PAYLOAD, _headers()) == "TIMESTAMP_TOO_OLD"


def test_the_timestamp_is_checked_before_the_signature() -> None:
    """A replayed delivery is refused as old even though its signature is right."""
    assert _reason(VECTOR_PAYLOAD, _headers(), now=VECTOR_TIMESTAMP + 10_000) == "TIMESTAMP_TOO_OLD"


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_", "", "whsec_ü"])
def test_a_bad_secret_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError):
        webhooks.verify(VECTOR_PAYLOAD, _headers(), secret, now=VECTOR_TIMESTAMP)


def test_no_secret_at_all_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no webhook secret"):
        webhooks.verify(VECTOR_PAYLOAD, _headers(), [], now=VECTOR_TIMESTAMP)


def test_raw_key_bytes_are_accepted_as_a_secret() -> None:
    key = webhooks.decode_secret(VECTOR_SECRET)
    assert len(key) == 24
    webhooks.verify(VECTOR_PAYLOAD, _headers(), key, now=VECTOR_TIMESTAMP)


def test_the_error_says_why_in_words() -> None:
    with pytest.raises(WebhookVerificationError, match="webhook-signature header is missing"):
        webhooks.verify(
            VECTOR_PAYLOAD,
            {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP)},
            VECTOR_SECRET,
            now=VECTOR_TIMESTAMP,
        )
