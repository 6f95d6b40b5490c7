"""The scheduler in a real runtime: one event per tick, exactly once, on a manual clock.

A real :class:`~eventyard.server.runtime.Runtime` (router, delivery engine, EventBridge
and SQS APIs over SQLite) runs with a :class:`ManualClock` as the scheduler's clock: the
test sees the scheduler wait for its next tick (``next_deadline``) and moves the time
there (``advance``), so no test waits for a minute. Restarts reopen the same store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from eventyard.envelope import format_time
from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore, Principal
from eventyard.server.config import Settings
from eventyard.server.runtime import Runtime
from eventyard.server.schedules.ticker import SCHEDULE, Ticker
from eventyard.server.store.sqlite import SQLiteStore
from tests.helpers import apoll_until
from tests.server.delivery.conftest import ManualClock

HOME = "111111111111"
OTHER = Principal("222222222222", "AKIAAAAAAAAAAAAAAAAA")
REGION = "eu-west-1"
# 2001-09-09T01:46:40Z; the first whole minute after it is START_MINUTE + 60
START = 1_000_000_000.0
START_MINUTE = 999_999_960.0


class Server:
    def __init__(self, runtime: Runtime, clock: ManualClock) -> None:
        self.runtime = runtime
        self.clock = clock

    async def events(self, op: str, who: Principal | None = None, **params: Any) -> Any:
        return await self.runtime.services["AWSEvents"].call(op, params, who)

    async def sqs(self, op: str, who: Principal | None = None, **params: Any) -> Any:
        return await self.runtime.services["AmazonSQS"].call(op, params, who)

    async def scheduled_rule_to_queue(
        self, rule: str, expression: str, queue: str = "ticks", who: Principal | None = None
    ) -> str:
        """A rule firing on ``expression`` with queue ``queue`` as its target; its URL."""
        url = (await self.sqs("CreateQueue", who, QueueName=queue))["QueueUrl"]
        arn = (
            await self.sqs("GetQueueAttributes", who, QueueUrl=url, AttributeNames=["QueueArn"])
        )["Attributes"]["QueueArn"]
        await self.events("PutRule", who, Name=rule, ScheduleExpression=expression)
        await self.events("PutTargets", who, Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
        return str(url)

    async def tick_wait(self) -> float:
        """The time the scheduler waits for once it has nothing more to do now."""
        ticker = self.runtime.ticker
        assert ticker is not None
        sleepers = self.clock._sleepers

        def waiting() -> float | None:
            # two sleepers: the ticker and the Scheduler invoker (idle, an hour ahead)
            if not (ticker.settled and len(sleepers) >= 2):
                return None
            return min(deadline for deadline, _ in sleepers)

        deadline: float = await apoll_until(waiting, what="the scheduler waits")
        return deadline

    async def advance_to(self, when: float) -> None:
        """Move the clock to ``when`` and let the scheduler finish what fell due."""
        self.clock.advance(when - self.clock.now)
        await self.tick_wait()
        await self.idle()

    async def idle(self) -> None:
        assert self.runtime.router is not None
        engine = self.runtime.router.engine
        await apoll_until(lambda: engine.pending == 0, what="deliveries settled")

    async def drain(self, url: str, who: Principal | None = None) -> list[dict[str, Any]]:
        """Every message now on the queue (received and deleted), as parsed bodies."""
        await self.idle()
        bodies: list[dict[str, Any]] = []
        while True:
            answer = await self.sqs(
                "ReceiveMessage", who, QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                await self.sqs(
                    "DeleteMessage", who, QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
                )


@asynccontextmanager
async def running(path: Path, clock: ManualClock) -> AsyncIterator[Server]:
    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.create_account(OTHER.account_id)
    settings = Settings(account_id=HOME, region=REGION, data_dir=str(path))
    runtime = Runtime(
        settings,
        SQLiteStore(str(path / "eventyard.db")),
        account_lookup=keyring.get_account,
        schedule_clock=clock,
    )
    await runtime.start()
    try:
        yield Server(runtime, clock)
    finally:
        await runtime.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def _iso(epoch: float) -> str:
    return format_time(epoch)


async def test_a_rate_rule_fires_one_aws_shaped_event_per_tick(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url = await server.scheduled_rule_to_queue("every-minute", "rate(1 minute)")
        first = START_MINUTE + 60
        assert await server.tick_wait() == first
        await server.advance_to(first - 1)
        assert await server.drain(url) == []
        await server.advance_to(first)
        [event] = await server.drain(url)
        assert list(event) == [
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        ]
        assert event["source"] == "aws.events"
        assert event["detail-type"] == "Scheduled Event"
        assert event["detail"] == {}
        assert event["account"] == HOME
        assert event["region"] == REGION
        assert event["resources"] == [f"arn:aws:events:{REGION}:{HOME}:rule/every-minute"]
        assert event["time"] == _iso(first)
        # the next minute: one more, and the time it waits for is the one after
        await server.advance_to(first + 60)
        assert [e["time"] for e in await server.drain(url)] == [_iso(first + 60)]
        assert await server.tick_wait() == first + 120


async def test_a_scheduled_event_goes_to_its_rules_targets_only(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url = await server.scheduled_rule_to_queue("ticks", "rate(1 minute)")
        # a rule whose pattern matches every aws.events event on the default bus
        other = (await server.sqs("CreateQueue", QueueName="other"))["QueueUrl"]
        await server.events("PutRule", Name="spy", EventPattern='{"source": ["aws.events"]}')
        await server.events(
            "PutTargets",
            Rule="spy",
            Targets=[{"Id": "q", "Arn": f"arn:aws:sqs:{REGION}:{HOME}:other"}],
        )
        await server.advance_to(START_MINUTE + 60)
        assert len(await server.drain(url)) == 1
        assert await server.drain(other) == []


async def test_a_cron_rule_fires_at_its_times_and_input_applies(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url = (await server.sqs("CreateQueue", QueueName="q"))["QueueUrl"]
        await server.events("PutRule", Name="quarter", ScheduleExpression="cron(0/15 * * * ? *)")
        await server.events(
            "PutTargets",
            Rule="quarter",
            Targets=[
                {
                    "Id": "q",
                    "Arn": f"arn:aws:sqs:{REGION}:{HOME}:q",
                    "InputTransformer": {
                        "InputPathsMap": {"t": "$.time", "r": "$.resources[0]"},
                        "InputTemplate": '{"at": <t>, "rule": <r>}',
                    },
                }
            ],
        )
        # 01:46:40 → 02:00:00, then 02:15:00
        two = 1_000_000_800.0
        assert await server.tick_wait() == two
        await server.advance_to(two)
        assert await server.drain(url) == [
            {"at": "2001-09-09T02:00:00Z", "rule": f"arn:aws:events:{REGION}:{HOME}:rule/quarter"}
        ]
        assert await server.tick_wait() == two + 900


async def test_a_disabled_rule_does_not_fire_and_a_deleted_one_stops(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url = await server.scheduled_rule_to_queue("r", "rate(1 minute)")
        await server.events("DisableRule", Name="r")
        await server.advance_to(START_MINUTE + 60 * 5)
        assert await server.drain(url) == []
        assert await server.runtime.store.catalog_get(SCHEDULE, "default/r") is None
        # enabled again: no catch-up for the ticks it was disabled, a minute from now
        await server.events("EnableRule", Name="r")
        now = clock.now
        assert await server.tick_wait() == now + 60
        await server.advance_to(now + 60)
        assert len(await server.drain(url)) == 1
        await server.events("RemoveTargets", Rule="r", Ids=["q"])
        await server.events("DeleteRule", Name="r")
        await server.advance_to(now + 600)
        assert await server.drain(url) == []
        assert await server.runtime.store.catalog_get(SCHEDULE, "default/r") is None


async def test_a_restart_mid_tick_fires_no_duplicate(tmp_path: Path, clock: ManualClock) -> None:
    first = START_MINUTE + 60
    async with running(tmp_path, clock) as server:
        url = await server.scheduled_rule_to_queue("r", "rate(1 minute)")
        await server.advance_to(first)
        assert len(await server.drain(url)) == 1
    clock.advance(30)  # restarted within the same minute
    async with running(tmp_path, clock) as server:
        assert await server.tick_wait() == first + 60
        assert await server.drain(url) == []
        await server.advance_to(first + 60)
        assert [e["time"] for e in await server.drain(url)] == [_iso(first + 60)]


async def test_after_downtime_one_catch_up_tick_fires_and_the_rest_are_skipped(
    tmp_path: Path, clock: ManualClock
) -> None:
    first = START_MINUTE + 60
    async with running(tmp_path, clock) as server:
        url = await server.scheduled_rule_to_queue("r", "rate(1 minute)")
        await server.advance_to(first)
        assert len(await server.drain(url)) == 1
    clock.advance(10 * 60 + 30)  # down for ten ticks
    async with running(tmp_path, clock) as server:
        await server.tick_wait()
        # the first missed tick, late, with its own time; the nine after it skipped
        assert [e["time"] for e in await server.drain(url)] == [_iso(first + 60)]
        assert await server.tick_wait() == first + 11 * 60


async def test_two_schedulers_on_one_store_fire_each_tick_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        assert server.runtime.router is not None
        second = Ticker(server.runtime.router, clock=clock)
        await second.start()
        try:
            url = await server.scheduled_rule_to_queue("r", "rate(1 minute)")
            first = server.runtime.ticker

            def both_wait() -> bool:
                assert first is not None
                # the two tickers and the Scheduler invoker
                return first.settled and second.settled and len(clock._sleepers) == 3

            await apoll_until(both_wait, what="both schedulers wait")
            for minute in range(1, 4):
                clock.advance(START_MINUTE + 60 * minute - clock.now)
                await apoll_until(both_wait, what="both schedulers wait")
                await server.idle()
            times = sorted(e["time"] for e in await server.drain(url))
            assert times == [_iso(START_MINUTE + 60 * m) for m in range(1, 4)]
        finally:
            await second.stop()


async def test_a_changed_expression_starts_afresh_and_the_event_is_the_rule_accounts(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url = await server.scheduled_rule_to_queue("r", "rate(5 minutes)", who=OTHER)
        assert await server.tick_wait() == START_MINUTE + 300
        await server.events("PutRule", OTHER, Name="r", ScheduleExpression="rate(2 minutes)")
        assert await server.tick_wait() == START_MINUTE + 120
        await server.advance_to(START_MINUTE + 120)
        [event] = await server.drain(url, OTHER)
        assert event["account"] == OTHER.account_id
        assert event["resources"] == [f"arn:aws:events:{REGION}:{OTHER.account_id}:rule/r"]
