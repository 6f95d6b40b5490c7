"""The Scheduler invoker in a real runtime (SQLite store, delivery engine, SQS API) on a
manual clock: one invocation per tick, exactly once across restarts, missed ticks,
flexible windows that survive a restart, completion, retry and dead-letter queues, and
per-account isolation."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from eventyard.envelope import format_time
from eventyard.errors import Conflict, ResourceNotFound, ValidationError
from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore, Principal
from eventyard.server.config import Settings
from eventyard.server.router import Router
from eventyard.server.runtime import Runtime
from eventyard.server.schedules.definitions import SCHEDULE, STATE, target_key
from eventyard.server.schedules.invoker import Invoker
from eventyard.server.schedules.timing import flex_offset
from eventyard.server.store.sqlite import SQLiteStore
from tests.helpers import apoll_until
from tests.server.delivery.conftest import ManualClock

HOME = "111111111111"
OTHER = Principal("222222222222", "AKIAAAAAAAAAAAAAAAAA")
REGION = "eu-west-1"
START = 1_000_000_000.0  # 2001-09-09T01:46:40Z
START_MINUTE = 999_999_960.0
ROLE = f"arn:aws:iam::{HOME}:role/scheduler"


class Server:
    def __init__(self, runtime: Runtime, clock: ManualClock) -> None:
        self.runtime = runtime
        self.clock = clock

    async def scheduler(self, op: str, who: Principal | None = None, **params: Any) -> Any:
        assert self.runtime.scheduler is not None
        return await self.runtime.scheduler.call(op, params, who)

    async def sqs(self, op: str, who: Principal | None = None, **params: Any) -> Any:
        return await self.runtime.services["AmazonSQS"].call(op, params, who)

    async def queue(self, name: str, who: Principal | None = None) -> tuple[str, str]:
        url = (await self.sqs("CreateQueue", who, QueueName=name))["QueueUrl"]
        account = who.account_id if who else HOME
        return str(url), f"arn:aws:sqs:{REGION}:{account}:{name}"

    async def schedule(
        self,
        name: str,
        expression: str,
        arn: str,
        who: Principal | None = None,
        **more: Any,
    ) -> Any:
        target = {"Arn": arn, "RoleArn": ROLE, **more.pop("target", {})}
        params = {"FlexibleTimeWindow": {"Mode": "OFF"}, **more}
        return await self.scheduler(
            "CreateSchedule", who, Name=name, ScheduleExpression=expression, Target=target, **params
        )

    async def wait(self) -> float | None:
        """When the next tick fires, once the invoker has caught up and waits for it."""
        invoker = self.runtime.invoker
        assert invoker is not None
        sleepers = self.clock._sleepers

        def waiting() -> bool:
            return invoker.settled and len(sleepers) >= 2

        await apoll_until(waiting, what="the invoker waits")
        return invoker.next_due

    async def advance_to(self, when: float) -> None:
        self.clock.advance(when - self.clock.now)
        await self.wait()
        await self.idle()

    async def idle(self) -> None:
        assert self.runtime.router is not None
        engine = self.runtime.router.engine
        await apoll_until(lambda: engine.pending == 0, what="deliveries settled")

    async def drain(self, url: str, who: Principal | None = None) -> list[dict[str, Any]]:
        await self.idle()
        messages: list[dict[str, Any]] = []
        while True:
            answer = await self.sqs(
                "ReceiveMessage",
                who,
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(message)
                await self.sqs(
                    "DeleteMessage", who, QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
                )

    async def bodies(self, url: str, who: Principal | None = None) -> list[Any]:
        return [json.loads(m["Body"]) for m in await self.drain(url, who)]


@asynccontextmanager
async def running(path: Path, clock: ManualClock) -> AsyncIterator[Server]:
    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.create_account(OTHER.account_id)
    settings = Settings(
        account_id=HOME,
        region=REGION,
        data_dir=str(path),
        retry_base_delay=0.01,
        retry_max_delay=0.02,
        outbound_allow="127.0.0.0/8",
    )
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


def _at(epoch: float) -> str:
    return f"at({format_time(epoch)[:-1]})"


async def test_a_one_time_schedule_fires_once_with_context_attributes(
    tmp_path: Path, clock: ManualClock
) -> None:
    when = START_MINUTE + 180
    async with running(tmp_path, clock) as server:
        url, arn = await server.queue("q")
        answer = await server.schedule(
            "once",
            _at(when),
            arn,
            target={
                "Input": '{"arn": "<aws.scheduler.schedule-arn>", '
                '"at": "<aws.scheduler.scheduled-time>"}'
            },
        )
        schedule_arn = f"arn:aws:scheduler:{REGION}:{HOME}:schedule/default/once"
        assert answer == {"ScheduleArn": schedule_arn}
        assert await server.wait() == when
        await server.advance_to(when - 1)
        assert await server.bodies(url) == []
        await server.advance_to(when)
        assert await server.bodies(url) == [{"arn": schedule_arn, "at": format_time(when)}]
        await server.advance_to(when + 3600)
        assert await server.bodies(url) == []
        # completed, kept (ActionAfterCompletion NONE), and its state says so
        got = await server.scheduler("GetSchedule", Name="once")
        assert got["State"] == "ENABLED"
        state = await server.runtime.store.catalog_get(STATE, "default/once")
        assert state is not None and state.doc["Completed"] is True


async def test_a_completed_one_time_schedule_with_delete_is_deleted(
    tmp_path: Path, clock: ManualClock
) -> None:
    when = START_MINUTE + 120
    async with running(tmp_path, clock) as server:
        url, arn = await server.queue("q")
        await server.schedule("once", _at(when), arn, ActionAfterCompletion="DELETE")
        await server.advance_to(when)
        assert await server.bodies(url) == [{}]

        async def gone() -> bool:
            # the schedule first, then its state (a state left alone is forgotten)
            if await server.runtime.store.catalog_get(STATE, "default/once") is not None:
                return False
            with pytest.raises(ResourceNotFound):
                await server.scheduler("GetSchedule", Name="once")
            return True

        await apoll_until(gone, what="the completed schedule deleted")


async def test_a_rate_schedule_fires_at_once_then_each_period_and_restarts_fire_no_duplicate(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url, arn = await server.queue("q")
        await server.schedule(
            "every", "rate(2 minutes)", arn, target={"Input": '"<aws.scheduler.scheduled-time>"'}
        )
        await server.advance_to(clock.now)
        assert await server.bodies(url) == [format_time(START_MINUTE)]
        assert await server.wait() == START_MINUTE + 120
    clock.advance(30)  # restarted before the next tick
    async with running(tmp_path, clock) as server:
        assert await server.wait() == START_MINUTE + 120
        assert await server.bodies(url) == []
        await server.advance_to(START_MINUTE + 120)
        assert await server.bodies(url) == [format_time(START_MINUTE + 120)]
    clock.advance(10 * 60)  # down for five ticks
    async with running(tmp_path, clock) as server:
        await server.wait()
        # one catch-up for the first missed tick, the others skipped
        assert await server.bodies(url) == [format_time(START_MINUTE + 240)]
        assert await server.wait() == START_MINUTE + 840


async def test_a_flexible_window_fires_at_the_same_point_across_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    start = START_MINUTE + 3600
    async with running(tmp_path, clock) as server:
        url, arn = await server.queue("q")
        await server.schedule(
            "flex",
            "rate(1 hour)",
            arn,
            StartDate=start,
            FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 30},
        )
        due = start + flex_offset("default/flex", start, 1800)
        assert due != start
        assert await server.wait() == due
    async with running(tmp_path, clock) as server:
        assert await server.wait() == due
        await server.advance_to(due - 0.5)
        assert await server.bodies(url) == []
        await server.advance_to(due)
        assert await server.bodies(url) == [{}]


async def test_disabled_and_updated_schedules(tmp_path: Path, clock: ManualClock) -> None:
    async with running(tmp_path, clock) as server:
        url, arn = await server.queue("q")
        base = {
            "Name": "s",
            "ScheduleExpression": "rate(5 minutes)",
            "FlexibleTimeWindow": {"Mode": "OFF"},
        }
        await server.scheduler(
            "CreateSchedule", **base, State="DISABLED", Target={"Arn": arn, "RoleArn": ROLE}
        )
        await server.advance_to(START_MINUTE + 900)
        assert await server.bodies(url) == []
        assert await server.runtime.store.catalog_get(STATE, "default/s") is None
        # enabled by an update: a rate starts at once; a new input keeps the position
        await server.scheduler("UpdateSchedule", **base, Target={"Arn": arn, "RoleArn": ROLE})
        await server.advance_to(clock.now)
        assert await server.bodies(url) == [{}]
        await server.scheduler(
            "UpdateSchedule", **base, Target={"Arn": arn, "RoleArn": ROLE, "Input": '"two"'}
        )
        assert await server.wait() == START_MINUTE + 1200
        await server.advance_to(START_MINUTE + 1200)
        assert await server.bodies(url) == ["two"]
        await server.scheduler("DeleteSchedule", Name="s")
        await server.advance_to(START_MINUTE + 3600)
        assert await server.bodies(url) == []


async def test_a_schedule_deleted_and_made_again_starts_afresh(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url, arn = await server.queue("q")
        await server.schedule("s", "rate(1 hour)", arn)
        await server.advance_to(clock.now)
        assert await server.bodies(url) == [{}]
        assert await server.wait() == START_MINUTE + 3600
        clock.advance(120)
        # both changes reach the invoker together (as a compacted change feed would tell
        # another process): the deletion is not told, the new schedule is
        assert await server.runtime.store.catalog_delete(SCHEDULE, "default/s")
        await server.schedule("s", "rate(1 hour)", arn)
        # a rate fires at once: the new schedule's first tick, not the old one's next
        assert await server.wait() == START_MINUTE + 120 + 3600
        assert await server.bodies(url) == [{}]


async def test_an_event_bus_target_gets_an_event_with_the_schedule_as_resource(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url, queue_arn = await server.queue("q")
        events = server.runtime.services["AWSEvents"]
        await events.call("PutRule", {"Name": "r", "EventPattern": '{"source": ["my.app"]}'})
        await events.call("PutTargets", {"Rule": "r", "Targets": [{"Id": "q", "Arn": queue_arn}]})
        bus = f"arn:aws:events:{REGION}:{HOME}:event-bus/default"
        await server.schedule(
            "to-bus",
            _at(START_MINUTE + 60),
            bus,
            target={
                "Input": '{"job": "nightly"}',
                "EventBridgeParameters": {"DetailType": "Job Due", "Source": "my.app"},
            },
        )
        await server.advance_to(START_MINUTE + 60)
        await server.idle()
        [event] = await server.bodies(url)
        assert event["source"] == "my.app"
        assert event["detail-type"] == "Job Due"
        assert event["detail"] == {"job": "nightly"}
        assert event["resources"] == [f"arn:aws:scheduler:{REGION}:{HOME}:schedule/default/to-bus"]
        assert event["account"] == HOME


@asynccontextmanager
async def webhook(status: list[int]) -> AsyncIterator[tuple[str, list[tuple[int, bytes]]]]:
    """A local HTTP endpoint answering every POST with ``status[0]`` (changeable); its
    URL and the (status, body) of each request."""
    seen: list[tuple[int, bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                code = status[0]
                seen.append((code, await reader.readexactly(length)))
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % code)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_a_failing_target_is_retried_then_dead_lettered(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server, webhook([500]) as (url, seen):
        dlq_url, dlq_arn = await server.queue("dlq")
        await server.schedule(
            "broken",
            _at(START_MINUTE + 60),
            url,
            target={
                "Input": '{"n": 1}',
                "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 600},
                "DeadLetterConfig": {"Arn": dlq_arn},
            },
        )
        await server.advance_to(START_MINUTE + 60)
        [dead] = await server.drain(dlq_url)
        assert seen == [(500, b'{"n": 1}')] * 3  # the first attempt and two retries
        assert json.loads(dead["Body"]) == {"n": 1}
        attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
        assert attributes["RULE_ARN"] == (
            f"arn:aws:scheduler:{REGION}:{HOME}:schedule/default/broken"
        )
        assert attributes["TARGET_ARN"] == url
        assert attributes["RETRY_ATTEMPTS"] == "2"
        assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"


async def test_a_delivery_pending_across_a_restart_still_reaches_its_target(
    tmp_path: Path, clock: ManualClock
) -> None:
    status = [500]
    async with webhook(status) as (url, seen):
        async with running(tmp_path, clock) as server:
            await server.schedule("s", _at(START_MINUTE + 60), url, target={"Input": '"x"'})
            clock.advance(START_MINUTE + 60 - clock.now)
            await apoll_until(lambda: len(seen) >= 3, what="a few failed attempts")
        # stopped with the delivery waiting for a retry; the target recovers meanwhile
        status[0] = 200
        async with running(tmp_path, clock) as server:
            await apoll_until(lambda: seen[-1][0] == 200, what="the retry after the restart")
            await server.idle()
        assert seen[-1] == (200, b'"x"')
        assert all(body == b'"x"' for _, body in seen)


async def test_groups_isolate_accounts_and_delete_their_schedules(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        url, arn = await server.queue("q", OTHER)
        await server.scheduler("CreateScheduleGroup", OTHER, Name="nightly")
        await server.schedule("a", "rate(1 minute)", arn, OTHER, GroupName="nightly")
        # the home account sees none of it, and may create the same names
        with pytest.raises(ResourceNotFound):
            await server.scheduler("GetScheduleGroup", Name="nightly")
        assert (await server.scheduler("ListSchedules"))["Schedules"] == []
        await server.scheduler("CreateScheduleGroup", Name="nightly")
        listed = await server.scheduler("ListSchedules", OTHER, GroupName="nightly")
        assert [s["Arn"] for s in listed["Schedules"]] == [
            f"arn:aws:scheduler:{REGION}:{OTHER.account_id}:schedule/nightly/a"
        ]
        # a queue of another account cannot be a target
        with pytest.raises(ValidationError):
            await server.schedule("b", "rate(1 minute)", arn)
        with pytest.raises(Conflict):
            await server.schedule("a", "rate(1 minute)", arn, OTHER, GroupName="nightly")
        await server.advance_to(clock.now)
        assert len(await server.bodies(url, OTHER)) == 1
        await server.scheduler("DeleteScheduleGroup", OTHER, Name="nightly")
        with pytest.raises(ResourceNotFound):
            await server.scheduler("GetSchedule", OTHER, Name="a", GroupName="nightly")
        await server.advance_to(clock.now + 600)
        assert await server.bodies(url, OTHER) == []


async def test_load_gives_the_router_every_schedules_target_before_deliveries_start(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with running(tmp_path, clock) as server:
        _, arn = await server.queue("q")
        await server.schedule("s", "rate(1 hour)", arn)
    store = SQLiteStore(str(tmp_path / "eventyard.db"))
    await store.open()
    try:
        settings = Settings(account_id=HOME, region=REGION, data_dir=str(tmp_path))
        router = Router(settings, store)  # not started: its engine delivers nothing yet
        assert router.routing.resolve(target_key("default/s")) is None
        await Invoker(router, settings, clock=clock).load()
        spec = router.routing.resolve(target_key("default/s"))
        assert spec is not None
        assert (spec.arn, spec.rule_arn) == (
            arn,
            f"arn:aws:scheduler:{REGION}:{HOME}:schedule/default/s",
        )
    finally:
        await store.close()
