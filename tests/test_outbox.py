"""The durable outbox: in order, exactly once, through outages, dead letters and restarts."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from harness import (
    START,
    TEST_HOLDER,
    FakeClock,
    RecordingNotifier,
    Sleeps,
    alert,
    audit,
    hold,
    job_id,
    notification,
)

from watchdog.deliver.notifier import Receipts
from watchdog.deliver.outbox import MAX_RETRY_AFTER, Dispatcher, Fences
from watchdog.domain.outgoing import AuditEntry, Outgoing, dump_outgoing, load_outgoing
from watchdog.metrics import BotMetrics
from watchdog.store import Fence, OutboxRecord, Store
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
async def fences(store: MemoryStore) -> Fences:
    """This replica holds the lease: the dispatcher delivers under it."""
    held = await hold(store)
    return lambda: held


async def enqueue(store: Store, numbers: Sequence[int], now: float = START) -> None:
    await store.enqueue([audit(n) for n in numbers], project="default", now=now)


def targets(items: Sequence[Outgoing]) -> list[str]:
    return [item.target for item in items if isinstance(item, AuditEntry)]


def ids(*numbers: int) -> list[str]:
    return [job_id(n) for n in numbers]


async def test_items_are_delivered_in_order_exactly_once(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """Two commits' items arrive in enqueue order; a second pass sends nothing again."""
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    await enqueue(store, [1, 2, 3])
    await enqueue(store, [4, 5])
    assert await dispatcher.deliver_once()
    assert await dispatcher.deliver_once()
    assert targets(notifier.items) == ids(1, 2, 3, 4, 5)
    assert notifier.record_ids == sorted(notifier.record_ids)
    assert await store.outbox_size() == 0 and dispatcher.delivered == 5


async def test_run_delivers_on_every_wake_up(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """The loop delivers what a commit enqueued as soon as it is woken."""
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock, sleep=Sleeps(clock))
    task = asyncio.create_task(dispatcher.run())
    try:
        await enqueue(store, [1, 2])
        dispatcher.wake()
        await notifier.wait_for(2)
        await enqueue(store, [3])
        dispatcher.wake()
        await notifier.wait_for(3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert targets(notifier.items) == ids(1, 2, 3)


async def test_run_drains_more_than_one_batch_per_wake_up(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """A backlog larger than one batch is drained without waiting for another commit."""
    dispatcher = Dispatcher(
        store, notifier, fences=fences, clock=clock, sleep=Sleeps(clock), batch=2
    )
    await enqueue(store, range(1, 8))
    task = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.wait_for(notifier.wait_for(7), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert targets(notifier.items) == ids(*range(1, 8))


async def test_unavailable_destination_keeps_the_rest_queued_and_honours_retry_after(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """Down after two items: the other three wait, in place, at least Retry-After seconds."""
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    await enqueue(store, [1, 2, 3, 4, 5])
    notifier.accept_first, notifier.unavailable = 2, [30.0]
    assert not await dispatcher.deliver_once()
    assert targets(notifier.items) == ids(1, 2)
    assert await store.outbox_size() == 3
    assert dispatcher.blocked_until == START + 30
    assert await dispatcher.deliver_once()
    assert targets(notifier.items) == ids(1, 2, 3, 4, 5)
    assert dispatcher.blocked_until == 0.0


async def test_run_backs_off_exponentially_capped_while_the_destination_is_down(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """Each failure doubles the (jittered) wait up to the cap; a Retry-After hint wins,
    up to MAX_RETRY_AFTER."""
    sleeps = Sleeps(clock)
    dispatcher = Dispatcher(
        store,
        notifier,
        fences=fences,
        clock=clock,
        sleep=sleeps,
        base_backoff=1.0,
        max_backoff=8.0,
        rng=random.Random(7),
    )
    await enqueue(store, [1, 2])
    notifier.unavailable = [None, None, None, None, None, 6.0, 100.0, 5000.0]
    task = asyncio.create_task(dispatcher.run())
    try:
        await notifier.wait_for(2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    caps = [1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(sleeps.delays) == 8
    for delay, cap in zip(sleeps.delays, caps, strict=False):
        assert cap / 2 <= delay <= cap
    assert sleeps.delays[5] == 6.0  # Retry-After above the jittered backoff
    assert sleeps.delays[6] == 100.0  # ... also past our own cap: Slack knows best
    assert sleeps.delays[7] == MAX_RETRY_AFTER  # ... within reason
    assert targets(notifier.items) == ids(1, 2)


async def test_dead_lettered_item_does_not_block_later_ones(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """An item the destination refuses for good is set aside; the rest go through."""
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    notifier.refuse = lambda item: isinstance(item, AuditEntry) and item.target == job_id(2)
    await enqueue(store, [1, 2, 3, 4])
    assert await dispatcher.deliver_once()
    assert await dispatcher.deliver_once()
    assert targets(notifier.items) == ids(1, 3, 4)
    assert await store.outbox_size() == 0
    assert await store.outbox_due(clock(), 10) == []


class Crashing(RecordingNotifier):
    """A notifier with a bug: it crashes on one item every time it sees it."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        for index, record in enumerate(records):
            item = record.item
            if isinstance(item, AuditEntry) and item.target == self.poison:
                await super().deliver(records[:index], receipts)
                raise KeyError("a bug in rendering")
        await super().deliver(records, receipts)


async def test_an_item_that_crashes_the_notifier_is_dead_lettered_after_a_few_tries(
    store: MemoryStore, clock: FakeClock, fences: Fences
) -> None:
    """A bug on one item must not hold back every later alert for ever."""
    notifier = Crashing(poison=job_id(2))
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock, sleep=Sleeps(clock))
    await enqueue(store, [1, 2, 3])
    task = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.wait_for(notifier.wait_for(2), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert targets(notifier.items) == ids(1, 3)
    assert await store.outbox_size() == 0


async def test_flush_delivers_everything_due(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """At shutdown, flush sends what is queued and reports nothing left."""
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    await enqueue(store, [1, 2, 3])
    assert await dispatcher.flush(within=5.0) == 0
    assert targets(notifier.items) == ids(1, 2, 3)


async def test_flush_while_down_returns_at_once_with_what_is_left(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock, fences: Fences
) -> None:
    """An unavailable destination does not make shutdown wait for its backoff."""
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    await enqueue(store, [1, 2, 3])
    notifier.accept_first, notifier.unavailable = 1, [60.0]
    assert await dispatcher.flush(within=5.0) == 2


class Slow(RecordingNotifier):
    """Takes a while per item, like a slow Slack; records what it started and finished."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = asyncio.Event()
        self.cancelled = False

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        for record in records:
            if receipts.out_of_time():
                return
            self.started.set()
            try:
                await asyncio.sleep(self.seconds)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
            self.items.append(record.item)
            await receipts.done(record.id)


async def test_stop_lets_the_delivery_in_flight_finish(
    store: MemoryStore, clock: FakeClock, fences: Fences
) -> None:
    """SIGTERM mid-post: the post in flight completes and is recorded (cancelling it could
    make Slack post what the next start sends again); later items wait for the restart."""
    notifier = Slow(0.2)
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    await enqueue(store, [1, 2, 3])
    task = asyncio.create_task(dispatcher.run())
    await notifier.started.wait()
    left = await dispatcher.stop(task, within=0.3)
    assert notifier.cancelled is False
    assert targets(notifier.items) == ids(1)
    assert left == 2
    assert [r.item.target for r in await store.outbox_due(START, 10)] == ids(2, 3)  # type: ignore[union-attr]


class Hanging:
    """A destination that never answers."""

    def __init__(self) -> None:
        self.never = asyncio.Event()
        self.waiting = asyncio.Event()

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        self.waiting.set()
        await self.never.wait()


async def test_the_outbox_gauge_counts_items_while_the_destination_hangs(
    store: MemoryStore, clock: FakeClock, fences: Fences
) -> None:
    """watchdog_outbox_size shows the items of a batch in flight to a Slack that hangs,
    not the 0 left from before they were due."""
    metrics = BotMetrics()
    notifier = Hanging()
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock, metrics=metrics)
    await enqueue(store, [1, 2, 3])
    delivering = asyncio.create_task(dispatcher.deliver_once())
    await notifier.waiting.wait()
    assert metrics.registry.get_sample_value("watchdog_outbox_size") == 3
    delivering.cancel()
    await asyncio.gather(delivering, return_exceptions=True)


async def test_flush_is_bounded_by_within(
    store: MemoryStore, clock: FakeClock, fences: Fences
) -> None:
    """A hung destination cannot hold shutdown longer than ``within``."""
    dispatcher = Dispatcher(store, Hanging(), fences=fences, clock=clock)
    await enqueue(store, [1, 2])
    started = time.monotonic()
    assert await dispatcher.flush(within=0.05) == 2
    assert time.monotonic() - started < 1.0


async def test_outbox_survives_a_restart_on_sqlite(clock: FakeClock, tmp_path: Path) -> None:
    """Items queued before the process died are delivered once, in order, by the next one."""
    path = tmp_path / "state.db"
    first = SqliteStore(path)
    await first.open()
    before = RecordingNotifier()
    await enqueue(first, [1, 2, 3])
    await enqueue(first, [4, 5])
    before.accept_first, before.unavailable = 2, [None]
    held = await hold(first)
    assert not await Dispatcher(first, before, fences=lambda: held, clock=clock).deliver_once()
    await first.close()  # the process dies with three items queued

    second = SqliteStore(path)
    await second.open()
    try:
        after = RecordingNotifier()
        taken = await hold(second)
        dispatcher = Dispatcher(second, after, fences=lambda: taken, clock=clock)
        assert await dispatcher.flush(within=5.0) == 0
        assert targets(before.items) == ids(1, 2)
        assert targets(after.items) == ids(3, 4, 5)
        assert await dispatcher.flush(within=5.0) == 0
        assert len(after.items) == 3
    finally:
        await second.close()


async def test_only_the_leader_delivers_and_polling_finds_other_processes_items(
    store: MemoryStore, notifier: RecordingNotifier, clock: FakeClock
) -> None:
    """A standby replica's dispatcher sends nothing; once it leads, it finds items another
    process queued (no wake-up reaches it) within the poll period."""
    held: dict[str, Fence] = {}
    dispatcher = Dispatcher(store, notifier, fences=lambda: held, clock=clock, poll=0.01)
    task = asyncio.create_task(dispatcher.run())
    try:
        await enqueue(store, [1])
        dispatcher.wake()
        await asyncio.sleep(0.05)
        assert notifier.items == []
        held.update(await hold(store))
        await asyncio.wait_for(notifier.wait_for(1), 5)  # no wake(): the poll finds it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert targets(notifier.items) == ids(1)


class Confirming(RecordingNotifier):
    """Confirms the lease right before each send, as the Slack notifier does, after
    ``before_send`` (where a test makes the lease go)."""

    def __init__(self) -> None:
        super().__init__()
        self.before_send: Callable[[int], None] = lambda index: None

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        for index, record in enumerate(records):
            if not await receipts.start([record.id]):
                continue
            self.before_send(index)
            receipts.confirm(record.project)
            self.items.append(record.item)
            await receipts.done(record.id)


async def test_a_lease_in_doubt_mid_delivery_sends_nothing_more_until_it_is_sure(
    store: MemoryStore, clock: FakeClock
) -> None:
    """The lease goes out of sight after the first item (a pause past it): nothing more is
    sent, the item claimed meanwhile is left alone, and once the lease is surely ours
    again that claim is handed back and everything is delivered, once."""
    held = await hold(store)
    sure = dict(held)
    notifier = Confirming()
    notifier.before_send = lambda index: held.clear() if index == 1 else None
    dispatcher = Dispatcher(store, notifier, fences=lambda: held, clock=clock)
    await enqueue(store, [1, 2, 3])
    assert not await dispatcher.deliver_once()
    assert targets(notifier.items) == ids(1)
    assert [r.maybe_sent for r in await store.outbox_due(clock(), 10)] == [True, False]
    assert await dispatcher.deliver_once() and targets(notifier.items) == ids(1)  # in doubt
    held.update(sure)
    notifier.before_send = lambda index: None
    assert await dispatcher.deliver_once()
    assert targets(notifier.items) == ids(1, 2, 3)
    assert await store.outbox_size() == 0


async def test_claims_under_a_lease_that_moved_on_are_left_to_the_next_holder(
    store: MemoryStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica whose lease moved on while it held a claim never writes to that item
    again (the successor may be posting it): when it leads the project again, under a
    new term, it simply claims the item afresh."""
    held = await hold(store)
    notifier = Confirming()
    notifier.before_send = lambda index: held.clear()
    dispatcher = Dispatcher(store, notifier, fences=lambda: held, clock=clock)
    await enqueue(store, [1])
    assert not await dispatcher.deliver_once()
    retried: list[int] = []
    real_retry = store.outbox_retry

    async def spy(item_id: int, next_attempt: float, error: str, **kw: bool) -> None:
        retried.append(item_id)
        await real_retry(item_id, next_attempt, error, **kw)

    monkeypatch.setattr(store, "outbox_retry", spy)
    await store.release_lease("default", TEST_HOLDER)
    assert await store.acquire_lease("default", "replica-b", 60.0) == 2  # a successor
    await store.release_lease("default", "replica-b")
    held.update(await hold(store))  # ours again, under term 3
    notifier.before_send = lambda index: None
    assert await dispatcher.deliver_once()
    assert retried == []
    assert targets(notifier.items) == ids(1) and await store.outbox_size() == 0


def test_outbox_items_serialise_as_asdict_would_without_its_copies() -> None:
    """The fast serialisation gives exactly what ``dataclasses.asdict`` gives, for a
    notification (nested facts, a tuple of values, an enum) and an audit line."""
    state = alert(job_id(1))
    state = replace(state, condition=replace(state.condition, values=(1.0, 2.5)))
    items: list[Outgoing] = [notification(state, mention="<!here>"), audit(2)]
    for item in items:
        assert json.loads(dump_outgoing(item)) == json.loads(
            json.dumps({"type": json.loads(dump_outgoing(item))["type"], **asdict(item)})
        )
        assert load_outgoing(dump_outgoing(item)) == item


def test_a_notification_queued_by_an_older_version_still_loads() -> None:
    """An outbox row that still carries the retired "muted_until" key loads as the same
    notification (the key is ignored), and a round trip is exact."""
    queued = notification(alert(job_id(1)), channel="C0ALERTS", mention="<!here>")
    assert load_outgoing(dump_outgoing(queued)) == queued
    old = json.loads(dump_outgoing(queued))
    assert "muted_until" not in old
    old["muted_until"] = START + 3600
    assert load_outgoing(json.dumps(old)) == queued
