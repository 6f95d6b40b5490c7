"""The delivery engine: retries, exhaustion, independence of targets, restart, batching."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY, Counter

from eventyard.server.delivery.engine import DeliveryEngine
from eventyard.server.delivery.metrics import DELIVERIES, metric
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import DeliveryDeferred
from eventyard.server.delivery.targets.api_destination import RATE_LIMITED
from eventyard.server.store import Delivery, NewMessage
from tests.helpers import apoll_until
from tests.server.delivery.conftest import (
    RULE_ARN,
    Harness,
    ManualClock,
    Webhook,
    refused_url,
    statuses,
)


def _attr(message: Any, name: str) -> str:
    value: str = message.attributes[name]["StringValue"]
    return value


def _outcome(outcome: str) -> float:
    return REGISTRY.get_sample_value("eventyard_deliveries_total", {"outcome": outcome}) or 0.0


class CountingStore:
    """A store proxy that counts ``settle`` calls and the records each one settles."""

    def __init__(self, inner: Any, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.settles: list[int] = []
        self.fail_next = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def settle(
        self,
        owner: str,
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, float, int]] = (),
        dead: Sequence[tuple[int, NewMessage | None]] = (),
        messages: Sequence[tuple[int, NewMessage]] = (),
    ) -> list[int]:
        self.settles.append(len(done) + len(retry) + len(dead))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next and len(done) + len(retry) + len(dead) > 1:
            self.fail_next -= 1
            raise RuntimeError("batch refused")
        lost: list[int] = await self.inner.settle(owner, done, retry, dead, messages)
        return lost


# -- retry exhaustion ------------------------------------------------------------------


async def test_max_attempts_exhausted_dead_letters_the_event_with_aws_attributes(
    harness: Harness, webhook: Webhook
) -> None:
    url = webhook.url("/down", statuses(500))
    harness.target("b/r/t", url, max_attempts=2, dlq_arn=harness.queue("dlq"))
    [record] = await harness.add("b/r/t", payload=b'{"rendered": 1}')
    before = _outcome("dead_lettered")
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert message.body == record.event.decode()
    assert _attr(message, "RULE_ARN") == RULE_ARN
    assert _attr(message, "TARGET_ARN") == url
    assert _attr(message, "ERROR_CODE") == "HTTP_5XX"
    assert "500" in _attr(message, "ERROR_MESSAGE")
    assert _attr(message, "EXHAUSTED_RETRY_CONDITION") == "MaximumRetryAttempts"
    assert _attr(message, "RETRY_ATTEMPTS") == "2"
    await harness.wait_settled()
    assert len(webhook.hits_on("/down")) == 3  # the first attempt and two retries
    assert _outcome("dead_lettered") == before + 1


async def test_max_attempts_zero_means_one_attempt_and_no_retry(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/down", statuses(500)), max_attempts=0)
    await harness.add("b/r/t")
    await harness.engine()

    await harness.wait_settled()
    assert len(webhook.hits_on("/down")) == 1


async def test_max_age_exhausted_dead_letters_with_maximum_event_age(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target(
        "b/r/t",
        webhook.url("/down", statuses(500)),
        max_age=60,
        dlq_arn=harness.queue("dlq"),
    )
    # First seen 57 s ago, retried every second: attempts at 57, 58 and 59 s of age;
    # the retry after the third would come at 60 s, when the event is too old.
    await harness.add("b/r/t", first_seen=clock.now - 57)
    await harness.engine(base_delay=1, max_delay=1, jitter="none", clock=clock)
    for hits in (1, 2):
        await webhook.wait_hits("/down", hits)
        await clock.advance_to_next()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "EXHAUSTED_RETRY_CONDITION") == "MaximumEventAgeInSeconds"
    assert _attr(message, "ERROR_CODE") == "HTTP_5XX"
    assert len(webhook.hits_on("/down")) == 3
    assert _attr(message, "RETRY_ATTEMPTS") == "2"


async def test_record_already_older_than_max_age_is_dead_lettered_without_an_attempt(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/ok"), max_age=60, dlq_arn=harness.queue("dlq"))
    await harness.add("b/r/t", first_seen=time.time() - 61)
    await harness.engine()

    [message] = await harness.messages("dlq", 1)
    assert _attr(message, "EXHAUSTED_RETRY_CONDITION") == "MaximumEventAgeInSeconds"
    assert _attr(message, "ERROR_CODE") == "EVENT_EXPIRED"
    assert _attr(message, "RETRY_ATTEMPTS") == "0"
    assert webhook.hits_on("/ok") == []


async def test_failure_without_dlq_drops_the_record(harness: Harness, webhook: Webhook) -> None:
    harness.target("b/r/t", webhook.url("/bad", statuses(400)))
    await harness.add("b/r/t")
    before = _outcome("dropped")
    await harness.engine()

    await harness.wait_settled()
    assert _outcome("dropped") == before + 1


async def test_dlq_that_does_not_exist_drops_the_record(harness: Harness, webhook: Webhook) -> None:
    harness.target(
        "b/r/t",
        webhook.url("/bad", statuses(400)),
        dlq_arn="arn:aws:sqs:us-east-1:000000000000:nope",
    )
    await harness.add("b/r/t")
    before = _outcome("dropped")
    await harness.engine()

    await harness.wait_settled()
    assert _outcome("dropped") == before + 1


async def test_record_of_a_removed_target_is_dropped_without_an_attempt(
    harness: Harness, webhook: Webhook
) -> None:
    await harness.add("b/r/removed")
    await harness.engine()

    await harness.wait_settled()
    assert webhook.hits == []


async def test_retry_is_persisted_with_its_due_time_and_attempt_count(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/down", statuses(500)))
    [record] = await harness.add("b/r/t")
    await harness.engine(base_delay=30, max_delay=30, jitter="none")

    await webhook.wait_hits("/down", 1)

    async def retry_stored() -> list[Any]:
        stored = await harness.pending()
        return stored if stored[0].attempts == 1 else []

    stored = await apoll_until(retry_stored)
    assert stored[0].id == record.id
    assert stored[0].due == pytest.approx(time.time() + 30, abs=2)


# -- targets fail independently ----------------------------------------------------------


async def test_dead_and_hanging_targets_do_not_delay_a_healthy_target(
    harness: Harness, webhook: Webhook
) -> None:
    # The hanging target's attempts never end during the test (its timeout is far off).
    harness.target("b/r/hang", webhook.url("/hang", webhook.hang), timeout=60.0, concurrency=4)
    harness.target("b/r/refused", refused_url(), max_attempts=1000)
    harness.target("b/r/ok", webhook.url("/ok"))
    # The broken targets' records come first in the store, so start() schedules them first.
    await harness.add("b/r/hang", 50)
    await harness.add("b/r/refused", 50)
    await harness.add("b/r/ok", 200)

    await harness.engine()
    await webhook.wait_hits("/ok", 200)
    await harness.wait_settled(100)
    # Every healthy delivery is done while the hanging target still holds exactly its
    # own 4 slots, none of them finished, and the refused target keeps failing.
    assert webhook.in_flight["/hang"] == 4
    assert webhook.peak["/hang"] == 4
    assert len(webhook.hits_on("/hang")) == 4
    assert {r.target for r in await harness.pending()} == {"b/r/hang", "b/r/refused"}


async def test_target_concurrency_limits_attempts_in_flight(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/slow", _slow_ok(0.05)), concurrency=3)
    await harness.add("b/r/t", 12)
    await harness.engine()

    await harness.wait_settled()
    assert webhook.peak["/slow"] == 3


def _slow_ok(seconds: float) -> Any:
    async def answer(n: int) -> Any:
        await asyncio.sleep(seconds)
        return await statuses(200)(n)

    return answer


# -- start, hints, stop --------------------------------------------------------------------


async def test_a_hint_delivers_new_records_once(harness: Harness, webhook: Webhook) -> None:
    harness.target("b/r/t", webhook.url("/ok"))
    loaded = await harness.add("b/r/t", 5)
    engine = await harness.engine()
    engine.deliveries_ready(["b/r/t"])  # claimed by start() already: not delivered twice
    fresh = await harness.add("b/r/t", 5)
    engine.deliveries_ready(["b/r/t"])
    engine.deliveries_ready(["b/r/t", "b/r/none"])

    await harness.wait_settled()  # and every attempt has ended: a duplicate would show
    hits = webhook.hits_on("/ok")
    assert sorted(h.headers["X-Eventyard-Event-Id"] for h in hits) == sorted(
        r.event_id for r in loaded + fresh
    )


async def test_start_waits_for_records_due_later(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/ok"))
    await harness.add("b/r/t", due=clock.now + 10)
    await harness.engine(clock=clock)

    assert await clock.next_deadline() == clock.now + 10
    assert webhook.hits_on("/ok") == []
    clock.advance(9.5)
    assert await clock.next_deadline() == clock.now + 0.5
    assert webhook.hits_on("/ok") == []
    clock.advance(0.5)
    await webhook.wait_hits("/ok", 1)


async def test_start_reads_the_store_page_by_page(harness: Harness, webhook: Webhook) -> None:
    harness.target("b/r/t", webhook.url("/ok"))
    await harness.add("b/r/t", 25)
    await harness.engine(page_size=10)

    await webhook.wait_hits("/ok", 25)
    await harness.wait_settled()


async def test_stop_finishes_attempts_in_flight(harness: Harness, webhook: Webhook) -> None:
    harness.target("b/r/t", webhook.url("/slow", _slow_ok(0.2)))
    await harness.add("b/r/t", 3)
    engine = await harness.engine()
    await webhook.wait_hits("/slow", 3)

    await engine.stop(timeout=5)
    assert await harness.pending() == []


async def test_stop_leaves_unfinished_records_pending_for_the_next_engine(
    harness: Harness, webhook: Webhook
) -> None:
    harness.target("b/r/t", webhook.url("/hang", webhook.hang), concurrency=2)
    records = await harness.add("b/r/t", 6)
    engine = await harness.engine()
    await webhook.wait_hits("/hang", 2)

    started = time.monotonic()
    await engine.stop(timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert [r.id for r in await harness.pending()] == [r.id for r in records]
    await harness.add("b/r/t")
    engine.deliveries_ready(["b/r/t"])  # ignored after stop, but the record stays pending

    harness.target("b/r/t", webhook.url("/ok"))
    await harness.engine()
    await webhook.wait_hits("/ok", 7)
    await harness.wait_settled()


async def test_retries_survive_a_restart_with_their_attempt_count(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target("b/r/t", webhook.url("/down", statuses(500)))
    await harness.add("b/r/t")
    engine = await harness.engine(base_delay=0.2, max_delay=0.2, jitter="none", clock=clock)
    await webhook.wait_hits("/down", 1)
    await clock.advance_to_next()
    await webhook.wait_hits("/down", 2)
    await clock.next_deadline()  # the second attempt failed and its retry is scheduled
    await engine.stop(timeout=1)
    [record] = await harness.pending()
    assert record.attempts == 2

    harness.target("b/r/t", webhook.url("/up"))
    await harness.engine()
    [hit] = await webhook.wait_hits("/up", 1)
    assert hit.headers["X-Eventyard-Attempt"] == "3"
    await harness.wait_settled()


async def test_engine_starts_once_and_stop_is_idempotent(harness: Harness) -> None:
    engine = await harness.engine()
    with pytest.raises(RuntimeError):
        await engine.start()
    await engine.stop(0.1)
    await engine.stop(0.1)
    never_started = await harness.engine(start=False)
    await never_started.stop(0.1)


# -- batching ------------------------------------------------------------------------------


async def test_settles_from_many_attempts_share_store_writes(
    harness: Harness, webhook: Webhook, store: Any
) -> None:
    counting = CountingStore(store, delay=0.02)
    harness.target("b/r/a", webhook.url("/a"))
    harness.target("b/r/b", webhook.url("/b"))
    await harness.add("b/r/a", 150)
    await harness.add("b/r/b", 150)
    await harness.engine(store=counting)

    await harness.wait_settled()
    assert sum(counting.settles) == 300
    assert len(counting.settles) <= 30, counting.settles
    assert max(counting.settles) >= 20


async def test_a_refused_settle_batch_is_retried_record_by_record(
    harness: Harness, webhook: Webhook, store: Any
) -> None:
    counting = CountingStore(store, delay=0.02)
    counting.fail_next = 1
    harness.target("b/r/t", webhook.url("/ok"))
    harness.target("b/r/q", harness.queue("stock"))
    await harness.add("b/r/t", 20)
    await harness.add("b/r/q", 20)
    await harness.engine(store=counting)

    await harness.wait_settled()
    assert counting.fail_next == 0, "no batch was refused"
    await harness.messages("stock", 20)
    assert len(webhook.hits_on("/ok")) == 20  # the refused batch did not cause redelivery


# -- backoff and metrics -------------------------------------------------------------------


def _engine(harness: Harness, **kw: Any) -> DeliveryEngine:
    return DeliveryEngine(
        harness.store,
        harness.specs.get,
        forward_to_bus=harness.forward_to_bus,
        queue_name_for_arn=harness.queues.get,
        **kw,
    )


async def test_backoff_doubles_from_base_delay_with_jitter_and_caps_at_max_delay(
    harness: Harness,
) -> None:
    rng = random.Random(7)
    equal = _engine(harness, base_delay=1.0, max_delay=300.0, rng=rng)
    full = _engine(harness, base_delay=1.0, max_delay=300.0, jitter="full", rng=rng)
    exact = _engine(harness, base_delay=1.0, max_delay=300.0, jitter="none")
    assert [exact._retry.backoff(n) for n in (1, 2, 3, 9, 10, 185)] == [1, 2, 4, 256, 300, 300]
    for n in range(1, 186):
        ceiling = min(300.0, 2.0 ** (n - 1))
        assert ceiling / 2 <= equal._retry.backoff(n) <= ceiling
        assert 0 <= full._retry.backoff(n) <= ceiling
    for engine in (equal, full, exact):
        await engine.stop(0)


async def test_engine_takes_its_backoff_from_settings_unless_given(harness: Harness) -> None:
    from eventyard.server.config import Settings

    settings = Settings(retry_base_delay=0.5, retry_max_delay=2.0)
    engine = _engine(harness, settings=settings, jitter="none")
    assert [engine._retry.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    override = _engine(harness, settings=settings, base_delay=0.1, jitter="none")
    assert override._retry.backoff(1) == 0.1
    with pytest.raises(ValueError):
        _engine(harness, base_delay=5, max_delay=1)
    for e in (engine, override):
        await e.stop(0)


def test_metrics_survive_a_second_definition() -> None:
    again = metric(
        "eventyard_deliveries",
        lambda: Counter("eventyard_deliveries", "duplicate", ["outcome"]),
    )
    assert again is DELIVERIES


async def test_failing_target_shrinks_to_one_attempt_in_flight_and_recovers(
    harness: Harness, webhook: Webhook
) -> None:
    failing = {"on": True}

    async def flaky(n: int) -> Any:
        if failing["on"]:
            await asyncio.sleep(0.02)  # a slow failure: attempts overlap if the lane lets them
            return web.Response(status=503)
        return web.Response(status=200)

    harness.target("b/r/flaky", webhook.url("/flaky", flaky), concurrency=8, max_attempts=50)
    await harness.add("b/r/flaky", 40)
    await harness.engine()
    await webhook.wait_hits("/flaky", 60)
    # after the first failures the lane keeps one attempt in flight, not eight
    webhook.peak["/flaky"] = webhook.in_flight.get("/flaky", 0)
    await webhook.wait_hits("/flaky", 80)
    assert webhook.peak["/flaky"] <= 2
    failing["on"] = False
    await harness.wait_settled(timeout=10)


async def test_a_call_held_back_by_its_own_rate_limit_uses_up_no_retry(
    harness: Harness, webhook: Webhook
) -> None:
    """A deferral of eventyard's own rate limit (RATE_LIMITED) is no attempt: with
    MaximumRetryAttempts 0 the record still waits for its slot and is delivered."""
    url = webhook.url("/slow", statuses(200))
    harness.target("b/r/t", url, max_attempts=0, dlq_arn=harness.queue("dlq"))
    await harness.add("b/r/t")
    engine = await harness.engine(start=False)
    real = engine._targets["http"]
    held_back = []

    class Limited:
        kind = real.kind
        settles = real.settles

        async def send(self, spec: TargetSpec, delivery: Delivery) -> None:
            if len(held_back) < 3:
                held_back.append(delivery.attempts)
                raise DeliveryDeferred("slot later", retry_after=0.01, error_code=RATE_LIMITED)
            await real.send(spec, delivery)

    engine._targets["http"] = Limited()  # type: ignore[assignment]
    await engine.start()
    await harness.wait_settled()
    assert held_back == [0, 0, 0]  # never counted as an attempt
    assert len(webhook.hits_on("/slow")) == 1
    assert await harness.store.queue_receive("dlq", 10, 30, time.time()) == []


def _paced() -> float:
    return REGISTRY.get_sample_value("eventyard_delivery_paced_total") or 0.0


async def _pacing_engine(
    harness: Harness, clock: ManualClock, failing_after: int, failing_interval: float
) -> DeliveryEngine:
    """An engine on ``clock`` with whole-second backoff (1 s doubling, no jitter) and the
    pace given."""
    return await harness.engine(
        clock=clock,
        base_delay=1,
        max_delay=300,
        jitter="none",
        failing_after=failing_after,
        failing_interval=failing_interval,
    )


async def test_a_failing_target_is_paced_and_its_first_success_ends_the_pace(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    """After ``failing_after`` retryable failures in a row, a target's due records are
    attempted one per pause (the clock stands still: one more attempt, then none), a
    healthy target is delivered meanwhile, and the first success ends the pace."""
    answers = {"status": 503}

    async def down_then_up(n: int) -> web.StreamResponse:
        return web.Response(status=answers["status"])

    # one attempt in flight (a lane starts with four), so the count below is exact
    harness.target("b/r/down", webhook.url("/down", down_then_up), max_attempts=50, concurrency=1)
    harness.target("b/r/ok", webhook.url("/ok"))
    await harness.add("b/r/down", 20)
    paced = _paced()
    engine = await _pacing_engine(harness, clock, 3, 10)
    # three failures, then a fourth attempt at once (the pace starts from it), then the
    # fifth waits for its slot a second later
    await apoll_until(lambda: _paced() == paced + 1, what="an attempt held back")
    assert len(webhook.hits_on("/down")) == 4
    await harness.add("b/r/ok", 5)
    engine.deliveries_ready(["b/r/ok"])
    await webhook.wait_hits("/ok", 5)
    assert len(webhook.hits_on("/down")) == 4

    answers["status"] = 200
    clock.advance(1)  # the held attempt goes, succeeds, and the pace ends
    await webhook.wait_hits("/down", 5)
    await harness.wait_settled(timeout=10)  # the four failed records were due by then
    assert len(webhook.hits_on("/down")) == 24
    assert _paced() == paced + 1  # nothing was held back after the success


async def test_the_pause_doubles_from_base_delay_up_to_the_interval(harness: Harness) -> None:
    engine = await harness.engine(
        start=False, base_delay=1, max_delay=300, failing_after=2, failing_interval=4
    )
    assert [engine._retry.pause(streak) for streak in range(2, 7)] == [1, 2, 4, 4, 4]
    capped = await harness.engine(
        start=False, base_delay=1, max_delay=3, failing_after=2, failing_interval=4
    )
    assert capped._retry.pause(10) == 3  # never above max_delay


async def test_an_interval_of_zero_turns_the_pace_off(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target("b/r/down", webhook.url("/down", statuses(503)), max_attempts=50)
    await harness.add("b/r/down", 20)
    paced = _paced()
    await harness.engine(
        clock=clock, base_delay=1, max_delay=300, failing_after=1, failing_interval=0
    )
    await webhook.wait_hits("/down", 20)  # the clock stands still: no pace, all at once
    assert _paced() == paced


async def test_stop_ends_a_paced_wait_and_gives_the_record_back_unattempted(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    harness.target("b/r/down", webhook.url("/down", statuses(503)), max_attempts=50, concurrency=1)
    await harness.add("b/r/down", 5)
    paced = _paced()
    engine = await _pacing_engine(harness, clock, 1, 60)
    await apoll_until(lambda: _paced() == paced + 1, what="an attempt held back")
    # the pace waits on a clock that stands still: only stop can end that wait (a stop
    # that waited for it would run into its own 60 s timeout)
    await asyncio.wait_for(engine.stop(60), 10)
    pending = await harness.pending()
    assert len(pending) == 5
    assert sorted(r.attempts for r in pending) == [0, 0, 0, 1, 1]
    assert len(webhook.hits_on("/down")) == 2


async def test_a_held_back_attempt_checks_its_target_and_age_again_when_its_turn_comes(
    harness: Harness, webhook: Webhook, clock: ManualClock
) -> None:
    """While an attempt waits for its turn, its target is removed (for one lane) and
    its record passes its age (for the other): neither is sent when the turn comes."""
    answers = {"status": 503}

    async def answer(n: int) -> web.StreamResponse:
        return web.Response(status=answers["status"])

    harness.target("b/r/gone", webhook.url("/gone", answer), max_attempts=50, concurrency=1)
    harness.target(
        "b/r/old",
        webhook.url("/old", answer),
        max_attempts=50,
        concurrency=1,
        max_age=60,
        dlq_arn=harness.queue("dlq"),
    )
    await harness.add("b/r/gone", 3, first_seen=clock.now)
    await harness.add("b/r/old", 3, first_seen=clock.now)
    paced = _paced()
    await _pacing_engine(harness, clock, 1, 100)
    # each lane: one failure, a second attempt at once, the third held back
    await apoll_until(lambda: _paced() == paced + 2, what="an attempt held back on each lane")
    assert (len(webhook.hits_on("/gone")), len(webhook.hits_on("/old"))) == (2, 2)
    del harness.specs["b/r/gone"]
    answers["status"] = 200
    clock.advance(70)  # both turns come, and every record is past its 60 s age
    await harness.wait_settled(timeout=10)
    assert (len(webhook.hits_on("/gone")), len(webhook.hits_on("/old"))) == (2, 2)
    # the old lane's records were dead-lettered for their age, the held one included
    dead = await harness.messages("dlq", 3)
    assert [_attr(m, "EXHAUSTED_RETRY_CONDITION") for m in dead] == ["MaximumEventAgeInSeconds"] * 3
