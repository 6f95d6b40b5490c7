"""Target kinds through the engine: webhooks, queues and buses, and how failures classify."""

from __future__ import annotations

import email.utils
import time
from dataclasses import replace

import pytest

from eventyard import __version__
from eventyard.errors import LimitExceeded, ResourceNotFound, StoreError, ValidationError
from eventyard.server.catalog import Target, TargetDoc
from eventyard.server.config import Settings
from eventyard.server.delivery.engine import TargetSpec
from eventyard.server.delivery.targets import target_kind
from eventyard.server.delivery.targets.http import parse_retry_after
from eventyard.server.delivery.targets.queue import _message as queue_message
from eventyard.server.store import Delivery, NewDelivery, NewEvent
from tests.server.delivery.conftest import (
    RULE_ARN,
    Harness,
    ManualClock,
    Webhook,
    refused_url,
    statuses,
)

BUS_ARN = "arn:aws:events:us-east-1:000000000000:event-bus/audit"


def _attr(message: object, name: str) -> str:
    attributes = message.attributes  # type: ignore[attr-defined]
    assert attributes[name]["DataType"] == "String"
    value: str = attributes[name]["StringValue"]
    return value


# -- webhooks ----------------------------------------------------------------------------


async def test_webhook_gets_payload_with_event_id_attempt_and_content_type(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("orders/placed/web", webhook.url("/hook"))
    [record] = await harness.add("orders/placed/web", payload=b'{"rendered": true}')
    await harness.engine()

    [hit] = await webhook.wait_hits("/hook", 1)
    assert hit.body == b'{"rendered": true}'
    assert hit.headers["Content-Type"] == "application/json; charset=utf-8"
    assert hit.headers["X-Eventyard-Event-Id"] == record.event_id
    assert hit.headers["X-Eventyard-Attempt"] == "1"
    assert hit.headers["User-Agent"] == f"eventyard/{__version__}"
    await harness.wait_settled()


async def test_webhook_500_is_retried_with_growing_attempt_number_until_it_succeeds(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/flaky", statuses(500, 503, 200)))
    [record] = await harness.add("b/r/t")
    await harness.engine()

    hits = await webhook.wait_hits("/flaky", 3)
    assert [h.headers["X-Eventyard-Attempt"] for h in hits] == ["1", "2", "3"]
    assert {h.headers["X-Eventyard-Event-Id"] for h in hits} == {record.event_id}
    await harness.wait_settled()
    assert len(webhook.hits_on("/flaky")) == 3


async def test_webhook_429_waits_for_retry_after_even_when_the_backoff_is_shorter(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/busy", statuses(429, 200, headers={"Retry-After": "1"})))
    await harness.add("b/r/t")
    await harness.engine(base_delay=0.01, jitter="none", clock=clock)

    await webhook.wait_hits("/busy", 1)
    assert await clock.next_deadline() == clock.now + 1  # Retry-After, not the 0.01 s backoff
    clock.advance(1)
    await webhook.wait_hits("/busy", 2)
    await harness.wait_settled()


async def test_webhook_negative_retry_after_stops_retries(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target(
        "b/r/t",
        webhook.url("/stop", statuses(503, headers={"Retry-After": "-1"})),
        dlq_arn=harness.queue("dlq"),
    )
    await harness.add("b/r/t")
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "ERROR_CODE") == "HTTP_5XX"
    assert len(webhook.hits_on("/stop")) == 1


@pytest.mark.parametrize("status", [301, 400, 403, 404, 413])
async def test_webhook_4xx_and_3xx_are_not_retried_and_go_straight_to_the_dlq(
    harness: Harness, webhook: Webhook, status: int
) -> None:
    url = webhook.url("/reject", statuses(status))
    harness.target("b/r/t", url, dlq_arn=harness.queue("dlq"))
    [record] = await harness.add("b/r/t")
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert message.body == record.event.decode()
    assert _attr(message, "ERROR_CODE") == f"HTTP_{status // 100}XX"
    assert str(status) in _attr(message, "ERROR_MESSAGE")
    assert _attr(message, "RETRY_ATTEMPTS") == "0"
    assert _attr(message, "RULE_ARN") == RULE_ARN
    assert _attr(message, "TARGET_ARN") == url
    assert "EXHAUSTED_RETRY_CONDITION" not in message.attributes
    await harness.wait_settled()
    assert len(webhook.hits_on("/reject")) == 1


async def test_webhook_timeout_is_retried(harness: Harness, webhook: Webhook) -> None:
    harness.target("b/r/t", webhook.url("/slow", webhook.slow(2.0)), timeout=0.2)
    await harness.add("b/r/t")
    await harness.engine()

    first, second = await webhook.wait_hits("/slow", 2)
    assert second.headers["X-Eventyard-Attempt"] == "2"
    assert second.at - first.at >= 0.19
    await harness.wait_settled()


async def test_webhook_timeout_and_refused_connection_carry_their_error_codes_to_the_dlq(
    harness: Harness, webhook: Webhook
) -> None:
    dlq = harness.queue("dlq")
    slow = harness.target(
        "b/r/slow", webhook.url("/hang", webhook.hang), timeout=0.1, max_attempts=1, dlq_arn=dlq
    )
    gone = harness.target("b/r/gone", refused_url(), max_attempts=1, dlq_arn=dlq)
    await harness.add("b/r/slow")
    await harness.add("b/r/gone")
    await harness.engine()

    messages = await harness.messages("dlq", 2)
    codes = {_attr(m, "TARGET_ARN"): _attr(m, "ERROR_CODE") for m in messages}
    assert codes == {slow.arn: "TIMEOUT", gone.arn: "CONNECTION_ERROR"}
    assert {_attr(m, "EXHAUSTED_RETRY_CONDITION") for m in messages} == {"MaximumRetryAttempts"}
    assert {_attr(m, "RETRY_ATTEMPTS") for m in messages} == {"1"}


async def test_webhook_request_aiohttp_refuses_is_a_permanent_failure(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/ok"), dlq_arn=harness.queue("dlq"))
    body = b'{"id": "x"}'
    # An event id with a line break (forwarded events keep their id) cannot be a header.
    await harness.store.ingest(
        [NewEvent("bad\r\nX-Injected: 1", "orders", time.time(), body)],
        [NewDelivery("b/r/t", "bad\r\nX-Injected: 1", body, body, time.time(), 0.0)],
    )
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "ERROR_CODE") == "INVALID_PARAMETER"
    assert webhook.hits == []


def test_retry_after_parses_seconds_dates_and_rejects_garbage() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" -1 ") == -1.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


# -- queues ----------------------------------------------------------------------------


async def test_queue_target_puts_the_payload_on_the_queue_and_settles_the_record(
    harness: Harness,
) -> None:
    harness.target("b/r/q", harness.queue("stock"))
    await harness.add("b/r/q", 3, payload=b'{"reserve": 1}')
    await harness.engine()

    messages = await harness.messages("stock", 3)
    assert [m.body for m in messages] == ['{"reserve": 1}'] * 3
    await harness.wait_settled()


def test_a_queue_message_id_is_derived_from_its_record_so_a_settle_put_again_is_the_same() -> None:
    spec = TargetSpec(key="b/r/q", arn="arn:aws:sqs:us-east-1:000000000000:q", rule_arn="r")
    record = Delivery(7, "b/r/q", "e1", b"{}", b"{}", 1.5, 1.5, 0)
    first = queue_message("q", spec, record)
    assert first.derived
    # the record redelivered (after a crash), attempted again: the same message
    assert queue_message("q", spec, replace(record, attempts=2)).message_id == first.message_id
    # another record of the same event and target (a replay): another message
    assert queue_message("q", spec, replace(record, id=8)).message_id != first.message_id


async def test_queue_target_whose_queue_does_not_exist_is_dead_lettered_as_no_resource(
    harness: Harness,
) -> None:
    dlq = harness.queue("dlq")
    harness.target("b/r/q", "arn:aws:sqs:us-east-1:000000000000:missing", dlq_arn=dlq)
    await harness.add("b/r/q")
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "ERROR_CODE") == "NO_RESOURCE"
    assert _attr(message, "RETRY_ATTEMPTS") == "0"
    await harness.wait_settled()


# -- buses ------------------------------------------------------------------------------


async def test_bus_target_forwards_the_payload_through_the_router(harness: Harness) -> None:
    harness.target("b/r/bus", BUS_ARN)
    await harness.add("b/r/bus", payload=b'{"id": "x"}')
    await harness.engine()

    await harness.wait_settled()
    assert harness.forwarded == [(BUS_ARN, b'{"id": "x"}')]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ResourceNotFound("Event bus audit does not exist."), "NO_RESOURCE"),
        (ValidationError("bad event"), "INVALID_PARAMETER"),
    ],
)
async def test_bus_target_permanent_errors_are_not_retried(
    harness: Harness, error: Exception, code: str
) -> None:
    harness.forward_error = error
    harness.target("b/r/bus", BUS_ARN, dlq_arn=harness.queue("dlq"))
    await harness.add("b/r/bus")
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "ERROR_CODE") == code
    assert _attr(message, "RETRY_ATTEMPTS") == "0"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (LimitExceeded("slow down"), "THROTTLING"),
        (StoreError("disk full"), "INTERNAL_FAILURE"),
        (RuntimeError("a bug in the router"), "INTERNAL_FAILURE"),
    ],
)
async def test_bus_target_transient_errors_and_bugs_are_retried(
    harness: Harness, error: Exception, code: str
) -> None:
    harness.forward_error = error
    harness.target("b/r/bus", BUS_ARN, dlq_arn=harness.queue("dlq"), max_attempts=2)
    await harness.add("b/r/bus")
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "ERROR_CODE") == code
    assert _attr(message, "RETRY_ATTEMPTS") == "2"
    assert _attr(message, "EXHAUSTED_RETRY_CONDITION") == "MaximumRetryAttempts"


# -- kinds and specs --------------------------------------------------------------------


def test_target_kind_recognises_webhooks_queues_and_buses() -> None:
    assert target_kind("https://example.com/hook") == "http"
    assert target_kind("http://127.0.0.1:9/x") == "http"
    assert target_kind("arn:aws:sqs:us-east-1:000000000000:q") == "queue"
    assert target_kind(BUS_ARN) == "bus"
    assert target_kind("arn:aws:lambda:us-east-1:000000000000:function:f") is None
    assert target_kind("arn:aws:events:us-east-1:000000000000:rule/x") is None
    assert target_kind("ftp://example.com") is None


async def test_unsupported_target_arn_is_dead_lettered_without_an_attempt(
    harness: Harness,
) -> None:
    harness.target(
        "b/r/f",
        "arn:aws:lambda:us-east-1:000000000000:function:f",
        dlq_arn=harness.queue("dlq"),
    )
    await harness.add("b/r/f")
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "ERROR_CODE") == "UNSUPPORTED_TARGET"


def test_target_spec_from_target_reads_retry_policy_dlq_and_settings() -> None:
    target: TargetDoc = {
        "Id": "t",
        "Arn": "https://example.com/hook",
        "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 120},
        "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:000000000000:dlq"},
    }
    settings = Settings(http_timeout=2.5, target_concurrency=4)
    spec = TargetSpec.from_target("b/r/t", Target.from_doc(target), RULE_ARN, settings)
    assert spec == TargetSpec(
        key="b/r/t",
        arn="https://example.com/hook",
        rule_arn=RULE_ARN,
        max_attempts=3,
        max_age=120.0,
        dlq_arn="arn:aws:sqs:us-east-1:000000000000:dlq",
        timeout=2.5,
        concurrency=4,
    )
    plain = TargetSpec.from_target("b/r/u", Target.from_doc({"Id": "u", "Arn": BUS_ARN}), RULE_ARN)
    assert (plain.max_attempts, plain.max_age, plain.dlq_arn) == (185, 86400.0, None)
    assert (plain.timeout, plain.concurrency) == (5.0, 32)
    zero = TargetSpec.from_target(
        "b/r/z",
        Target.from_doc({"Id": "z", "Arn": BUS_ARN, "RetryPolicy": {"MaximumRetryAttempts": 0}}),
        RULE_ARN,
    )
    assert zero.max_attempts == 0


def test_target_spec_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        TargetSpec("k", BUS_ARN, RULE_ARN, concurrency=0)
    with pytest.raises(ValueError, match="max_attempts"):
        TargetSpec("k", BUS_ARN, RULE_ARN, max_attempts=-1)
