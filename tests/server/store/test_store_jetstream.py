"""What is particular to the JetStream store: many store instances (processes) share one.

Two :class:`JetStreamStore` instances with the same prefix are what two eventyard
processes are: each has its own NATS connection, and they share the streams. Leases are
timed by the server (``AckWait``) in real time, so the lease tests use short leases and
wait for the store to say when to look again (``Claim.next_due``).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from tests.conftest import require
from tests.natsserver import NatsCluster, free_port

from eventyard.errors import ConcurrentModification, StoreError
from eventyard.server.store import NewDelivery, NewEvent, NewMessage, open_store
from eventyard.server.store.jetstream import JetStreamStore
from eventyard.server.store.jetstream.codec import decode_token, encode_token
from eventyard.server.store.jetstream.journal import Entry, decode_entry, encode_entry
from eventyard.server.store.protocol import CatalogChange, CatalogClaim, Claim, Delivery

T = TypeVar("T")


@pytest.fixture
async def pair(
    nats_cluster: NatsCluster, tmp_path: Path
) -> AsyncIterator[tuple[JetStreamStore, JetStreamStore]]:
    """Two store instances over the same streams (two processes, one store)."""
    prefix = f"p{abs(hash(str(tmp_path))) % 10**12}"
    a = JetStreamStore(nats_cluster.urls, prefix=prefix, name="a")
    b = JetStreamStore(nats_cluster.urls, prefix=prefix, name="b")
    await asyncio.gather(a.open(), b.open())  # concurrent opens create the streams once
    try:
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())


class Recorder:
    """A StoreListener that records what it hears and lets a test wait for it."""

    def __init__(self) -> None:
        self.changes: list[CatalogChange] = []
        self.targets: set[str] = set()
        self.queues: set[str] = set()
        self._event = asyncio.Event()

    def catalog_changed(self, change: CatalogChange) -> None:
        self.changes.append(change)
        self._event.set()

    def deliveries_ready(self, targets: object) -> None:
        self.targets |= set(targets)  # type: ignore[call-overload]
        self._event.set()

    def queues_ready(self, queues: object) -> None:
        self.queues |= set(queues)  # type: ignore[call-overload]
        self._event.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._event.clear()
                await self._event.wait()


def _delivery(n: int, target: str = "b/r/t", due: float = 0.0) -> tuple[NewEvent, NewDelivery]:
    event = NewEvent(f"e{n}-{time.monotonic_ns()}", "b", 1.0 + n, f'{{"n":{n}}}'.encode())
    return event, NewDelivery(target, event.event_id, b"p%d" % n, event.body, event.time, due)


async def _ingest(store: JetStreamStore, count: int, **kwargs: float | str) -> list[Delivery]:
    pairs = [_delivery(n, **kwargs) for n in range(count)]  # type: ignore[arg-type]
    return await store.ingest([e for e, _ in pairs], [d for _, d in pairs])


async def _claim_when_due(claim: Callable[[], Awaitable[Claim]], timeout: float = 15.0) -> Claim:
    """Claim again at each ``next_due`` the store gives until something comes."""
    async with asyncio.timeout(timeout):
        while True:
            result = await claim()
            if result.deliveries:
                return result
            assert result.next_due is not None, "records are pending, next_due must say when"
            await asyncio.sleep(max(0.0, result.next_due - time.time()))


# -- codec -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "default/r1/t", "a.b", "ü ✓", "=", "=3D", "a\U0010ffff", "*>", "-_/09aZ"]
)
def test_key_tokens_are_reversible_and_valid_kv_tokens(text: str) -> None:
    token = encode_token(text)
    assert token and all(c.isalnum() or c in "-/_=" for c in token)
    assert token.isascii()
    assert decode_token(token) == text


def test_open_store_picks_jetstream_for_nats_urls() -> None:
    store = open_store("nats://h1:4222,h2:4223")
    assert isinstance(store, JetStreamStore)
    assert repr(store) == "JetStreamStore(['nats://h1:4222', 'nats://h2:4223'], prefix='eventyard')"


def test_open_store_without_nats_py_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "eventyard.server.store.jetstream", None)
    with pytest.raises(StoreError, match=r"pip install 'eventyard\[jetstream\]'"):
        open_store("nats://127.0.0.1:4222")


def test_a_bad_prefix_is_refused() -> None:
    with pytest.raises(StoreError, match="invalid JetStream prefix"):
        JetStreamStore(["nats://127.0.0.1:4222"], prefix="a.b")


# -- claims and leases -------------------------------------------------------------------


async def test_claim_leases_due_records_in_due_order_and_then_reports_none_left(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    pairs = [_delivery(n, due=d) for n, d in enumerate([3.0, 1.0, 2.0])]
    stored = await a.ingest([e for e, _ in pairs], [d for _, d in pairs])
    claim = await a.claim_deliveries("o", "b/r/t", 10, 30.0)
    assert claim.deliveries == sorted(stored, key=lambda d: (d.due, d.id))
    assert claim.next_due is None  # everything is leased to the caller
    assert a.pending_count() == 3
    assert await a.settle("o", done=[d.id for d in stored]) == []
    assert a.pending_count() == 0
    assert await a.pending_deliveries() == []
    assert await a.pending_targets() == []


async def test_a_claim_of_a_target_with_nothing_pending_returns_at_once(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    started = time.monotonic()
    claim = await a.claim_deliveries("o", "b/r/none", 10, 30.0)
    assert claim == Claim([], None)
    assert time.monotonic() - started < 2.0


async def test_a_record_not_yet_due_is_not_claimed_and_next_due_says_when(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    due = time.time() + 300
    (record,) = await _ingest(a, 1, due=due)
    claim = await a.claim_deliveries("o", "b/r/t", 10, 30.0)
    assert claim.deliveries == []
    assert claim.next_due == pytest.approx(due)
    assert [d.id for d in await a.pending_deliveries()] == [record.id]


async def test_a_claim_is_limited_and_says_more_is_due(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    await _ingest(a, 5)
    first = await a.claim_deliveries("o", "b/r/t", 2, 30.0)
    assert len(first.deliveries) == 2 and first.next_due is not None
    assert first.next_due <= a.now()
    rest = await a.claim_deliveries("o", "b/r/t", 10, 30.0)
    assert len(rest.deliveries) == 3
    assert {d.id for d in first.deliveries}.isdisjoint(d.id for d in rest.deliveries)


async def test_a_record_claimed_by_one_process_is_not_claimable_by_another_until_its_lease_ends(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    (record,) = await _ingest(a, 1)
    (held,) = (await a.claim_deliveries("a", "b/r/t", 10, 1.0)).deliveries
    other = await b.claim_deliveries("b", "b/r/t", 10, 1.0)
    assert other.deliveries == [] and other.next_due is not None
    # the lease ends (a is presumed dead): b gets the record, with nothing lost
    taken = await _claim_when_due(lambda: b.claim_deliveries("b", "b/r/t", 10, 1.0))
    assert taken.deliveries == [held]
    # a's settle comes too late: refused, and b's lease is untouched
    assert await a.settle("a", done=[record.id]) == [record.id]
    assert await a.renew_leases("a", [record.id], 30.0) == [record.id]
    assert await b.settle("b", done=[record.id]) == []
    assert await b.pending_deliveries() == []


async def test_renewed_leases_keep_the_record_from_other_processes(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    (record,) = await _ingest(a, 1)
    await a.claim_deliveries("a", "b/r/t", 10, 1.0)
    deadline = time.monotonic() + 2.5  # two and a half leases
    while time.monotonic() < deadline:
        assert await a.renew_leases("a", [record.id], 1.0) == []
        assert (await b.claim_deliveries("b", "b/r/t", 10, 1.0)).deliveries == []
        await asyncio.sleep(0.3)
    assert await a.settle("a", done=[record.id]) == []


async def test_only_the_owner_settles(pair: tuple[JetStreamStore, JetStreamStore]) -> None:
    a, _ = pair
    (record,) = await _ingest(a, 1)
    await a.claim_deliveries("owner", "b/r/t", 10, 30.0)
    assert await a.settle("intruder", done=[record.id]) == [record.id]
    assert await a.settle("owner", done=[record.id, record.id]) == [record.id]
    assert await a.settle("owner", done=[record.id]) == [record.id]
    assert await a.settle("owner", done=[10**9]) == [10**9]


async def test_a_retry_keeps_the_record_and_its_attempts_and_is_due_again_later(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    (record,) = await _ingest(a, 1)
    await a.claim_deliveries("a", "b/r/t", 10, 30.0)
    due = time.time() + 0.5
    assert await a.settle("a", retry=[(record.id, due, 3)]) == []
    (pending,) = await b.pending_deliveries()
    assert (pending.id, pending.due, pending.attempts) == (record.id, due, 3)
    assert a.pending_count() == 1
    # the other process claims it once due, with the attempts made so far
    claimed = await _claim_when_due(lambda: b.claim_deliveries("b", "b/r/t", 10, 30.0))
    (again,) = claimed.deliveries
    assert time.time() >= due - 0.05
    assert (again.id, again.attempts, again.payload, again.event) == (
        record.id,
        3,
        record.payload,
        record.event,
    )
    assert await b.settle("b", dead=[(record.id, None)]) == []
    assert await b.pending_deliveries() == []


async def test_records_leased_by_a_process_killed_with_sigkill_are_taken_over_after_the_lease(
    pair: tuple[JetStreamStore, JetStreamStore], nats_cluster: NatsCluster
) -> None:
    a, _ = pair
    stored = await _ingest(a, 5, target="b/r/killed")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("jetstream_claimer.py")),
        nats_cluster.url,
        a._names.prefix,
        "b/r/killed",
        "2.0",
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().split()
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert line[0] == "claimed" and sorted(map(int, line[1:])) == [d.id for d in stored]
    killed_at = time.monotonic()
    # nothing is claimable while the dead process's lease runs; then everything is
    taken: list[Delivery] = []
    async with asyncio.timeout(20):
        while len(taken) < len(stored):
            # the same lease as the dead one (see "Leases of any length" in
            # docs/architecture.md: a longer one would lengthen the ack wait)
            claim = await a.claim_deliveries("survivor", "b/r/killed", 100, 2.0)
            taken += claim.deliveries
            if not claim.deliveries:
                assert claim.next_due is not None
                await asyncio.sleep(max(0.0, claim.next_due - time.time()))
    assert time.monotonic() - killed_at < 2.0 + 1.0 + 5.0  # the lease, a re-check, slack
    assert sorted(d.id for d in taken) == [d.id for d in stored]
    assert all(d.attempts == 0 for d in taken)
    assert await a.settle("survivor", done=[d.id for d in taken]) == []


async def test_a_lease_that_ends_does_not_count_as_an_attempt(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    await _ingest(a, 1)
    await a.claim_deliveries("a", "b/r/t", 10, 1.0)
    (again,) = (await _claim_when_due(lambda: b.claim_deliveries("b", "b/r/t", 10, 1.0))).deliveries
    assert again.attempts == 0


async def test_pending_count_and_targets_follow_ingest_and_settle(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    assert a.pending_count() == 0
    await _ingest(a, 3, target="b/r/x")
    await _ingest(a, 2, target="b/r/y")
    assert a.pending_count() == 5
    assert await b.pending_targets() == ["b/r/x", "b/r/y"]
    claim = await a.claim_deliveries("o", "b/r/x", 10, 30.0)
    await a.settle("o", done=[d.id for d in claim.deliveries])
    assert a.pending_count() == 2
    assert await a.pending_targets() == ["b/r/y"]


# -- catalog and wake-ups across processes ---------------------------------------------


async def test_a_catalog_change_by_one_process_reaches_the_other_s_listener(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    heard = Recorder()
    b.listen(heard)
    revision = await a.catalog_put("rule", "b/r", {"State": "ENABLED"})
    await a.catalog_delete("rule", "b/r")
    await heard.until(lambda: len(heard.changes) >= 2)
    put, deleted = heard.changes
    assert (put.revision, put.kind, put.key) == (revision, "rule", "b/r")
    assert put.entry is not None and put.entry.doc == {"State": "ENABLED"}
    assert (deleted.key, deleted.entry) == ("b/r", None) and deleted.revision > revision


async def test_the_change_feed_is_the_latest_change_per_key_in_revision_order(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    assert await b.catalog_revision() == 0
    one = await a.catalog_put("bus", "one", {"v": 1})
    await a.catalog_put("bus", "two", {"v": 1})
    await a.catalog_put("bus", "two", {"v": 2})
    await a.catalog_delete("bus", "two")
    changes = await b.catalog_changes()
    assert [(c.key, c.entry is None) for c in changes] == [("one", False), ("two", True)]
    assert await b.catalog_revision() == changes[-1].revision
    assert await b.catalog_changes(after=one) == changes[1:]
    assert await b.catalog_changes(after=changes[-1].revision) == []
    assert len(await b.catalog_changes(limit=1)) == 1


async def test_the_revision_of_a_delete_never_matches_a_put(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    await a.catalog_put("bus", "b", {})
    await a.catalog_delete("bus", "b")
    (deleted,) = await a.catalog_changes()
    assert deleted.entry is None
    with pytest.raises(ConcurrentModification):
        await a.catalog_put("bus", "b", {}, expect_revision=deleted.revision)
    with pytest.raises(ConcurrentModification):
        await a.catalog_delete("bus", "b", expect_revision=deleted.revision)
    assert await a.catalog_put("bus", "b", {}, expect_revision=0) > deleted.revision


async def test_deliveries_ready_crosses_processes(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    heard = Recorder()
    b.listen(heard)
    await _ingest(a, 2, target="b/r/wake")
    await heard.until(lambda: "b/r/wake" in heard.targets)


async def test_concurrent_claimed_ingests_from_two_processes_let_exactly_one_through(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, b = pair
    revision = await a.catalog_put("schedule", "b/r", {"Next": 0})

    async def tick(store: JetStreamStore, name: str) -> bool:
        event, delivery = _delivery(0, target="b/r/tick")
        claim = CatalogClaim("schedule", "b/r", {"By": name}, revision)
        try:
            await store.ingest([event], [delivery], claim=claim)
        except ConcurrentModification:
            return False
        return True

    results = await asyncio.gather(*(tick(s, f"{s!r}{i}") for i in range(4) for s in (a, b)))
    assert results.count(True) == 1
    assert len(await a.read_log()) == 1
    assert len(await b.pending_deliveries()) == 1
    # The losers' journal entries were discarded: a third process's recovery at open
    # applies none of them.
    c = JetStreamStore(a._servers, prefix=a._names.prefix)
    await c.open()
    try:
        assert len(await c.read_log()) == 1
        assert len(await c.pending_deliveries()) == 1
    finally:
        await c.close()


# -- the ingest journal ------------------------------------------------------------------


def test_journal_entries_read_back_as_written() -> None:
    event = NewEvent("e1", "b", 1.5, b'{"a":1}')
    entry = Entry(
        "k",
        False,
        (event,),
        (
            NewDelivery("b/r/t", "e1", event.body, event.body, 1.5, 2.5),
            NewDelivery("b/r/u", "e1", b"rendered \xff", b"other", 1.5, 3.0),
        ),
        (NewMessage("q", "body ✓", {"A": {"DataType": "String", "StringValue": "v"}}, 2.0, "m1"),),
    )
    assert decode_entry(encode_entry(entry)) == entry
    with pytest.raises(StoreError, match="journal"):
        decode_entry(b"{}")


async def test_an_ingest_journaled_by_a_process_that_died_is_applied_at_the_next_open(
    pair: tuple[JetStreamStore, JetStreamStore],
) -> None:
    a, _ = pair
    event, delivery = _delivery(1, target="b/r/crash")
    entry = Entry("died-mid-ingest", False, (event,), (delivery,), ())
    # the writer journals the ingest and dies before applying it
    await a._log.journal.write(entry, encode_entry(entry))
    assert await a.read_log() == []
    later = JetStreamStore(a._servers, prefix=a._names.prefix)
    await later.open()
    try:
        assert [r.event_id for r in await later.read_log()] == [event.event_id]
        (record,) = await later.pending_deliveries()
        assert (record.event_id, record.target, record.payload) == (
            event.event_id,
            "b/r/crash",
            delivery.payload,
        )
        # applying it again (another process's recovery) stores nothing twice
        assert await later._log.journal.recover(0.0) >= 0
        await later._log.apply(entry)
        assert len(await later.read_log()) == 1
        assert len(await later.pending_deliveries()) == 1
    finally:
        await later.close()


async def test_a_settle_retried_after_its_put_puts_a_derived_message_once(
    pair: tuple[JetStreamStore, JetStreamStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    (record,) = await _ingest(a, 1)
    await a.claim_deliveries("a", "b/r/t", 10, 30.0)
    message = NewMessage("q", "body", message_id="derived-1", derived=True)
    put = a._deliveries._put_messages

    async def put_then_fail(messages: object, dedup: object) -> list[str]:
        await put(messages, dedup)  # type: ignore[arg-type]
        raise StoreError("the answer was lost")

    monkeypatch.setattr(a._deliveries, "_put_messages", put_then_fail)
    with pytest.raises(StoreError, match="answer was lost"):
        await a.settle("a", done=[record.id], messages=[(record.id, message)])
    monkeypatch.undo()
    # the retry puts the same message again: de-duplicated, not "already in use"
    assert await a.settle("a", done=[record.id], messages=[(record.id, message)]) == []
    got = await a.queue_receive("q", 10, 30.0, time.time())
    assert [m.message_id for m in got] == ["derived-1"]
    assert await a.pending_deliveries() == []


async def test_an_ingest_time_dead_letter_is_all_or_nothing_with_its_ingest(
    pair: tuple[JetStreamStore, JetStreamStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    event, _ = _delivery(1)
    dead = NewMessage("dlq", "x", message_id="derived-dead", derived=True)

    async def fail(*_: object) -> None:
        raise StoreError("journal down")

    monkeypatch.setattr(a._log.journal, "write", fail)
    with pytest.raises(StoreError, match="journal down"):
        await a.ingest([event], [], [dead])
    assert await a.queue_receive("dlq", 10, 30.0, time.time()) == []
    monkeypatch.undo()
    await a.ingest([event], [], [dead])
    got = await a.queue_receive("dlq", 10, 30.0, time.time())
    assert [m.message_id for m in got] == ["derived-dead"]


# -- connection and setup ----------------------------------------------------------------


async def test_a_store_wanting_other_replicas_than_the_streams_have_is_refused(
    pair: tuple[JetStreamStore, JetStreamStore], nats_cluster: NatsCluster
) -> None:
    a, _ = pair
    # The single-node server cannot make R3 streams, and the existing ones are R1.
    other = JetStreamStore(nats_cluster.urls, prefix=a._names.prefix, replicas=3)
    with pytest.raises(StoreError, match="replicas"):
        await other.open()
    await other.close()


async def test_an_unreachable_server_is_a_clear_store_error() -> None:
    from tests.natsserver import free_port

    store = JetStreamStore([f"nats://127.0.0.1:{free_port()}"])
    with pytest.raises(StoreError, match="cannot connect to NATS"):
        await store._link.connect(timeout=1.0)


async def test_a_lost_server_is_a_write_failure_until_it_is_back(tmp_path: Path) -> None:
    from tests.conftest import require
    from tests.natsserver import nats_server_available

    require(nats_server_available(), "the pinned nats-server is not installed")
    with NatsCluster(tmp_path / "nats") as cluster:
        store = JetStreamStore(cluster.urls, prefix="lost")
        await store.open()
        try:
            await store.catalog_put("k", "a", {})
            assert store.write_failure() is None
            cluster.nodes[0].kill()
            async with asyncio.timeout(15):
                while store.write_failure() is None:
                    await asyncio.sleep(0.05)
            assert "NATS" in (store.write_failure() or "")
            with pytest.raises(StoreError):
                await store.catalog_put("k", "b", {})
            cluster.nodes[0].start()
            cluster.nodes[0].wait_healthy()
            async with asyncio.timeout(20):
                while store.write_failure() is not None:
                    await asyncio.sleep(0.05)
            # The data written before the crash is there; writes work again.
            assert await store.catalog_get("k", "a") is not None
            await store.catalog_put("k", "c", {})
        finally:
            await store.close()


async def _answered(call: Callable[[], Awaitable[T]], within: float = 90) -> T:
    """``await call()`` again until it does not fail with a StoreError (a JetStream
    leader election in progress), for at most ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            try:
                return await call()
            except StoreError:
                await asyncio.sleep(0.05)


async def test_r3_streams_keep_every_acknowledged_write_when_a_node_is_killed(
    tmp_path: Path,
) -> None:
    from tests.conftest import require
    from tests.natsserver import nats_server_available

    require(nats_server_available(), "the pinned nats-server is not installed")
    with NatsCluster(tmp_path / "nats", size=3) as cluster:
        store = JetStreamStore(cluster.urls, prefix="r3", replicas=3)
        await store.open()
        try:
            acked = [d.event_id for d in await _ingest(store, 20)]
            revision = await store.catalog_put("rule", "b/r", {"n": 1})
            cluster.nodes[0].kill()
            # Every stream and bucket elects its own leader: until it has one, a write or
            # a read of it fails with a StoreError (a 503 or a timeout). Each step is
            # retried until answered; a retried ingest with the same event ids is stored
            # once.
            event, delivery = _delivery(99)
            await _answered(lambda: store.ingest([event], [delivery]))
            acked.append(event.event_id)
            logged = [r.event_id for r in await _answered(store.read_log)]
            pending = [d.event_id for d in await _answered(store.pending_deliveries)]
            assert sorted(logged) == sorted(acked)
            assert sorted(pending) == sorted(acked)
            entry = await _answered(lambda: store.catalog_get("rule", "b/r"))
            assert entry is not None and entry.revision == revision
            # the consumer is made on the new leaders
            claim = await _answered(lambda: store.claim_deliveries("o", "b/r/t", 100, 30.0))
            assert len(claim.deliveries) == len(acked)
            assert await store.settle("o", done=[d.id for d in claim.deliveries]) == []
        finally:
            await store.close()


async def test_without_the_journal_ingest_and_claims_still_work(
    nats_cluster: NatsCluster,
) -> None:
    store = JetStreamStore(nats_cluster.urls, prefix="nojournal", atomic_ingest=False)
    await store.open()
    try:
        stored = await _ingest(store, 2)
        assert [r.event_id for r in await store.read_log()] == [d.event_id for d in stored]
        revision = await store.catalog_put("schedule", "b/r", {})
        event, delivery = _delivery(5)
        await store.ingest([event], [delivery], claim=CatalogClaim("schedule", "b/r", {}, revision))
        with pytest.raises(ConcurrentModification):
            await store.ingest(
                [event], [delivery], claim=CatalogClaim("schedule", "b/r", {}, revision)
            )
        assert len(await store.read_log()) == 3
    finally:
        await store.close()


async def test_an_old_nats_server_is_refused_with_the_version_it_runs(tmp_path: Path) -> None:
    """Debian's nats-server (2.9.10 on this machine) has no message scheduling, no
    per-message TTL and never fsyncs: the store says so instead of misbehaving later."""
    old = Path("/usr/sbin/nats-server")
    require(old.is_file(), "the Debian nats-server is not installed at /usr/sbin/nats-server")
    port = free_port()
    process = subprocess.Popen(
        [str(old), "-js", "-sd", str(tmp_path / "js"), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        store = JetStreamStore([f"nats://127.0.0.1:{port}"], prefix="old")
        deadline = time.monotonic() + 15
        while True:
            try:
                await store.open()
            except StoreError as exc:
                if "cannot connect" in str(exc) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # not listening yet
                    continue
                message = str(exc)
                break
            await store.close()
            pytest.fail("a 2.9 server was accepted")
        assert "runs nats-server 2.9" in message and "needs 2.12 or newer" in message
    finally:
        process.terminate()
        process.wait(10)
