"""The delivery side of signed webhooks: secrets, sealing, and what an HTTP target sends.

The receiving side (:func:`eventyard.webhooks.verify`) checks what this side signs; the
two are written separately, so each is a test of the other.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from eventyard import webhooks
from eventyard.errors import (
    ConfigurationError,
    DeliveryError,
    ValidationError,
    WebhookVerificationError,
)
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.delivery.http_parameters import HttpParameters
from eventyard.server.delivery.signing import (
    generate_secret,
    parse_secret,
    seal_secret,
    signature_headers,
    unseal_secrets,
)
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets.http import HttpTarget
from eventyard.server.store import Delivery

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
RULE_ARN = "arn:aws:events:us-east-1:111111111111:rule/orders/placed"


def test_generated_secrets_are_32_random_bytes_in_the_standard_form() -> None:
    made = {generate_secret() for _ in range(20)}
    assert len(made) == 20
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(parse_secret(secret)) == 32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "holds 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "holds 65"),
    ],
)
def test_a_bad_secret_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_secret(text)


def test_the_signature_is_the_specification_test_vector() -> None:
    headers = signature_headers(
        [parse_secret(VECTOR_SECRET)],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_two_keys_give_two_signatures_newest_first_each_verifiable_alone() -> None:
    new, old = generate_secret(), generate_secret()
    headers = signature_headers([parse_secret(new), parse_secret(old)], "e-1", 1000, b"{}")
    first, second = headers["webhook-signature"].split(" ")
    assert first == webhooks.sign(b"{}", new, msg_id="e-1", timestamp=1000)
    assert second == webhooks.sign(b"{}", old, msg_id="e-1", timestamp=1000)
    for secret in (new, old):
        webhooks.verify(b"{}", headers, secret, now=1000)


def test_sealed_secrets_open_only_for_their_target_and_master_key() -> None:
    master = MasterKey.generate()
    secret = generate_secret()
    record = seal_secret(master, "orders/placed/hook", secret, 1.5)
    assert secret not in repr(record)
    assert record["CreationTime"] == 1.5
    assert unseal_secrets(master, "orders/placed/hook", [record]) == (parse_secret(secret),)
    with pytest.raises(ConfigurationError, match="does not decrypt"):
        unseal_secrets(master, "orders/placed/other", [record])
    with pytest.raises(ConfigurationError, match="master key"):
        unseal_secrets(MasterKey.generate(), "orders/placed/hook", [record])
    with pytest.raises(ConfigurationError, match="not a sealed record"):
        unseal_secrets(master, "orders/placed/hook", [{"CreationTime": 1}])


# -- what the HTTP target sends --------------------------------------------------------


@dataclass
class _Hit:
    path_qs: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class _Receiver:
    base: str = ""
    hits: list[_Hit] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(_Hit(request.path_qs, request.headers, await request.read()))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[_Receiver]:
    hook = _Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    hook.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield hook
    finally:
        await runner.cleanup()
        sock.close()


def _delivery(payload: bytes, event: bytes, attempts: int = 0) -> Delivery:
    return Delivery(1, "orders/placed/hook", "evt-42", payload, event, 0.0, 0.0, attempts)


async def test_a_signed_target_sends_verifiable_headers_at_the_attempt_time(
    receiver: _Receiver,
) -> None:
    new, old = generate_secret(), generate_secret()
    spec = TargetSpec(
        "orders/placed/hook",
        receiver.base + "/hook",
        RULE_ARN,
        signing_keys=(parse_secret(new), parse_secret(old)),
    )
    now = [1_700_000_000.7]
    target = HttpTarget(clock=lambda: now[0])
    try:
        await target.send(spec, _delivery(b'{"a": 1}', b"{}"))
        now[0] += 90
        await target.send(spec, _delivery(b'{"a": 1}', b"{}", attempts=1))
    finally:
        await target.close()
    first, second = receiver.hits
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "evt-42"
    assert first.headers["webhook-timestamp"] == "1700000000"
    assert second.headers["webhook-timestamp"] == "1700000090"
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    for hit, at in ((first, 1_700_000_000), (second, 1_700_000_090)):
        for secret in (new, old):
            webhooks.verify(hit.body, hit.headers, secret, now=at)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(first.body, first.headers, generate_secret(), now=1_700_000_000)


async def test_an_unsigned_target_sends_no_signature_headers(receiver: _Receiver) -> None:
    spec = TargetSpec("orders/placed/hook", receiver.base + "/plain", RULE_ARN)
    target = HttpTarget()
    try:
        await target.send(spec, _delivery(b"{}", b"{}"))
    finally:
        await target.close()
    [hit] = receiver.hits
    assert "webhook-signature" not in hit.headers
    assert "webhook-id" not in hit.headers


async def test_http_parameters_shape_the_request_from_the_original_event(
    receiver: _Receiver,
) -> None:
    params = HttpParameters.from_doc(
        {
            "PathParameterValues": ["$.detail.tenant"],
            "HeaderParameters": {"X-Kind": "$.detail-type", "Content-Type": "text/plain"},
            "QueryStringParameters": {"order": "$.detail.order", "v": "2"},
        }
    )
    spec = TargetSpec(
        "orders/placed/hook",
        receiver.base + "/tenants/*/events",
        RULE_ARN,
        http_parameters=params,
        signing_keys=(parse_secret(VECTOR_SECRET),),
    )
    event = b'{"detail-type": "OrderPlaced", "detail": {"tenant": "acme co", "order": 7}}'
    target = HttpTarget()
    try:
        # the payload is the transformed input; the parameters read the original event
        await target.send(spec, _delivery(b'"just the order"', event))
    finally:
        await target.close()
    [hit] = receiver.hits
    assert hit.path_qs == "/tenants/acme%20co/events?order=7&v=2"
    assert hit.headers["X-Kind"] == "OrderPlaced"
    assert hit.headers.getall("Content-Type") == ["text/plain"]
    assert hit.body == b'"just the order"'
    webhooks.verify(hit.body, hit.headers, VECTOR_SECRET)


async def test_parameters_that_do_not_apply_fail_for_good_without_a_request(
    receiver: _Receiver,
) -> None:
    params = HttpParameters.from_doc({"PathParameterValues": ["$.detail.missing"]})
    spec = TargetSpec(
        "orders/placed/hook", receiver.base + "/x/*", RULE_ARN, http_parameters=params
    )
    target = HttpTarget()
    try:
        with pytest.raises(DeliveryError) as caught:
            await target.send(spec, _delivery(b"{}", b'{"detail": {}}'))
    finally:
        await target.close()
    assert (caught.value.retryable, caught.value.error_code) == (False, "INVALID_PARAMETER")
    assert receiver.hits == []


def test_the_spec_never_shows_its_keys() -> None:
    key = parse_secret(VECTOR_SECRET)
    spec = TargetSpec("b/r/t", "https://h/", RULE_ARN, signing_keys=(key,))
    assert repr(key) not in repr(spec)
    assert "signing_keys" not in repr(spec)
