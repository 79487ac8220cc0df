"""The on-call workflow in the watch loop: acknowledgements stop repeats and escalation,
an unacknowledged alert escalates once, maintenance windows hold alerts back (also across
a daylight-saving change in Berlin), the incident history follows the ticks, and the
daily digest is enqueued once a day by the coordinator only — on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime

import pytest
from harness import (
    START,
    FakeClock,
    RecordingNotifier,
    Sleeps,
    WatchRig,
    holder,
    job_id,
    serve_polaris,
    watch_rig,
)

from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.domain.oncall import Ack
from watchdog.domain.outgoing import DigestPost, Notification
from watchdog.rules.holder import RulesHolder
from watchdog.store import Store
from watchdog.store.memory import MemoryStore
from watchdog.watch.daily import DailyDigest
from watchdog.watch.fleet import Fleet
from watchdog.watch.loop import Watcher

CLICKS, VIEWS = job_id(1), job_id(2)
FP = f"default/job-unhealthy/{CLICKS}"
RULES = """
[watch]
interval = "30s"
no_data_after = "2m"

[slack]
channel = "C0ALERTS"

[[rules]]
name = "job-unhealthy"
kind = "health"
severity = "critical"
repeat = "1m"
escalate = { after = "90s", mention = "<!subteam^S0LEADS>", channel = "C0ESCALATE" }
"""

Start = Callable[..., Awaitable[WatchRig]]


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    sim = Simulator(clock=clock, sleep=Sleeps(clock))
    sim.add_job(type="streaming", table="clicks", job_id=CLICKS)
    sim.add_job(type="streaming", table="views", job_id=VIEWS)
    return sim


@pytest.fixture
async def start(clock: FakeClock, sim: Simulator) -> AsyncIterator[Start]:
    """``await start(rules_text)``: a watch rig over ``sim`` on a memory store."""
    async with AsyncExitStack() as stack:

        async def start_rig(rules: str = RULES) -> WatchRig:
            store = MemoryStore(clock=clock)
            await store.open()
            stack.push_async_callback(store.close)
            rig = watch_rig(sim, holder(rules), store, RecordingNotifier(), clock)
            return await stack.enter_async_context(rig)

        yield start_rig


def seen(rig: WatchRig) -> list[tuple[str, str]]:
    """(reason, job id) of every notification delivered so far."""
    assert isinstance(rig.notifier, RecordingNotifier)
    return [(reason, job) for reason, _, job in rig.notifier.seen()]


def last(rig: WatchRig) -> Notification:
    assert isinstance(rig.notifier, RecordingNotifier)
    return rig.notifier.notifications[-1]


# ---- acknowledgements and escalation ----------------------------------------------------


async def test_an_unacknowledged_alert_escalates_once_after_its_first_post(
    start: Start, sim: Simulator
) -> None:
    """escalate.after 90s: the alert is posted, repeats after 1m, escalates at 90s with the
    escalation's mention and channel — once, however long it keeps firing."""
    sim.set_health(CLICKS, "error")
    rig = await start()
    await rig.tick()
    await rig.step(2)  # +60s: the repeat is due
    assert seen(rig) == [("new", CLICKS), ("repeat", CLICKS)]
    await rig.step()  # +90s
    escalation = last(rig)
    assert seen(rig)[-1] == ("escalate", CLICKS)
    assert (escalation.mention, escalation.channel, escalation.escalate_channel) == (
        "<!subteam^S0LEADS>",
        None,
        "C0ESCALATE",
    )
    assert rig.watcher.alerts[FP].escalated_at == START + 90
    await rig.step(6)
    assert [reason for reason, _ in seen(rig)].count("escalate") == 1


async def test_an_acknowledged_alert_neither_repeats_nor_escalates_until_withdrawn(
    start: Start, sim: Simulator
) -> None:
    """Acked after its post: no repeat, no escalation, its state names the owner; a
    change still goes out. Withdrawn: the escalation is due at once, then the repeats."""
    sim.set_health(CLICKS, "error", "internal_error")
    rig = await start()
    await rig.tick()
    state = rig.watcher.alerts[FP]
    await rig.store.add_ack(Ack.of(state, "U0OWNER", START + 10))
    await rig.step(4)
    assert seen(rig) == [("new", CLICKS)]
    owned = rig.watcher.alerts[FP]
    assert (owned.acked_by, owned.acked_at) == ("U0OWNER", START + 10)
    sim.set_health(CLICKS, "error", "cannot_parse_source")
    await rig.step()
    assert seen(rig)[-1] == ("changed", CLICKS)
    assert last(rig).alert.acked_by == "U0OWNER"
    await rig.store.remove_ack(state.incident_id)
    await rig.step()
    assert seen(rig)[-1] == ("escalate", CLICKS)
    await rig.step()
    assert seen(rig)[-1] == ("repeat", CLICKS)
    assert rig.watcher.alerts[FP].acked_by is None


async def test_an_acknowledgement_holds_one_incident_not_the_next(
    start: Start, sim: Simulator
) -> None:
    """The job recovers and fails again: the new incident is not acknowledged, and the old
    incident's acknowledgement is gone from the store with its resolve."""
    sim.set_health(CLICKS, "error")
    rig = await start()
    await rig.tick()
    await rig.store.add_ack(Ack.of(rig.watcher.alerts[FP], "U0OWNER", START))
    await rig.step()
    sim.set_health(CLICKS, "ok")
    await rig.step()
    assert seen(rig)[-1] == ("resolved", CLICKS)
    assert await rig.store.list_acks() == []
    sim.set_health(CLICKS, "error")
    await rig.step(4)
    assert ("escalate", CLICKS) in seen(rig)
    assert rig.watcher.alerts[FP].acked_by is None


# ---- maintenance windows ----------------------------------------------------------------

WINDOW = """
[[maintenance]]
name = "reload"
match = { table = ["cli*"] }
rules = ["job-unhealthy"]
start = "2023-11-14T22:00:00Z"
end = "2023-11-14T22:16:00Z"
"""


async def test_a_window_holds_matching_alerts_and_posts_them_when_it_closes(
    start: Start, sim: Simulator
) -> None:
    """The clicks alert waits out the window (22:16 UTC, START + 120s) and is posted then,
    once; the views alert, outside the window's match, is posted at once. Escalation
    counts from the post, not from the fire."""
    sim.set_health(CLICKS, "error")
    sim.set_health(VIEWS, "error")
    rig = await start(RULES + WINDOW)
    await rig.tick()
    assert seen(rig) == [("new", VIEWS)]
    await rig.step(3)  # +90s: still in the window
    assert ("new", CLICKS) not in seen(rig)
    assert rig.watcher.alerts[FP].fired_at == START
    await rig.step()  # +120s: closed
    assert seen(rig).count(("new", CLICKS)) == 1
    assert rig.watcher.alerts[FP].posted_at == START + 120
    await rig.step(2)
    assert ("escalate", CLICKS) not in seen(rig)
    await rig.step()  # 90s after its post
    assert seen(rig)[-1] == ("escalate", CLICKS)


async def test_a_berlin_window_opens_when_the_clocks_spring_forward(clock: FakeClock) -> None:
    """02:00–04:00 Europe/Berlin on 2026-03-29: an alert at 01:00 UTC (the clocks jump
    from 02:00 to 03:00) is held, and posted at 02:00 UTC (04:00 CEST)."""
    clock.now = at("2026-03-29T00:50:00+00:00")
    sim = Simulator(clock=clock, sleep=Sleeps(clock))
    sim.add_job(type="streaming", table="clicks", job_id=CLICKS)
    rules = RULES.replace('interval = "30s"', 'interval = "5m"').replace('"2m"', '"10m"')
    rules += '[[maintenance]]\nname = "night"\nfrom = "02:00"\nto = "04:00"\n'
    rules += 'timezone = "Europe/Berlin"\n'
    store = MemoryStore(clock=clock)
    await store.open()
    async with watch_rig(sim, holder(rules), store, RecordingNotifier(), clock) as rig:
        await rig.tick()  # 00:50 UTC = 01:50 CET: open? no
        await rig.step(2)  # 01:00 UTC: the jump, the window opens
        sim.set_health(CLICKS, "error")
        await rig.step()  # 01:05 UTC
        assert rig.watcher.alerts[FP].fired_at == at("2026-03-29T01:05:00+00:00")
        await rig.step(11)  # 02:00 UTC: closed
        assert seen(rig) == [("new", CLICKS)]
        assert last(rig).alert.posted_at is None  # as announced; the state records it
        assert rig.watcher.alerts[FP].posted_at == at("2026-03-29T02:00:00+00:00")
    await store.close()


# ---- the incident history ---------------------------------------------------------------


async def test_the_history_records_each_announced_incident_with_its_times(
    start: Start, sim: Simulator
) -> None:
    """Fired, acknowledged and resolved times land in the history with the ticks that
    announce them; a held-back incident that never got posted is not in it."""
    sim.set_health(CLICKS, "error")
    rig = await start(RULES + WINDOW.replace("cli*", "views"))
    await rig.tick()
    await rig.store.add_ack(Ack.of(rig.watcher.alerts[FP], "U0OWNER", START + 45))
    sim.set_health(VIEWS, "error")  # held by the window for good (it resolves inside)
    await rig.step(2)
    sim.set_health(CLICKS, "ok")
    sim.set_health(VIEWS, "ok")
    await rig.step()
    [line] = await rig.store.list_incidents(0.0)
    assert (line.job_id, line.table, line.fired_at) == (CLICKS, "clicks", START)
    assert (line.acked_at, line.acked_by, line.resolved_at) == (START + 45, "U0OWNER", START + 90)


# ---- the daily digest -------------------------------------------------------------------

DIGEST = """
[ha]
lease = "15s"

[digest]
at = "09:00"
timezone = "Europe/Berlin"
channel = "C0DIGEST"

[[rules]]
name = "job-unhealthy"
kind = "health"
"""


async def parked(delay: float) -> None:
    await asyncio.Event().wait()


def fleet(name: str, store: Store, rules: RulesHolder, clock: FakeClock, client: object) -> Fleet:
    watcher = Watcher(
        project="default",
        client=client,  # type: ignore[arg-type]
        store=store,
        rules=rules,
        clock=clock,
        sleep=parked,
    )
    daily = DailyDigest(store, rules, clock)
    return Fleet({"default": watcher}, store, rules, replica=name, clock=clock, daily=daily)


def digests(records: list[object]) -> list[DigestPost]:
    return [r for r in records if isinstance(r, DigestPost)]


async def test_the_coordinator_enqueues_one_digest_a_day_across_replicas_and_restarts(
    clock: FakeClock, sim: Simulator
) -> None:
    """Two replicas, one store: before 09:00 Berlin nothing; at 09:00 the lease holder
    (the coordinator) enqueues the day's digest as a coordinator item, once; the other
    replica, a restarted one and later rounds add nothing; the next day brings one more."""
    clock.now = at("2026-11-28T07:59:00+00:00")  # 08:59 CET
    store = MemoryStore(clock=clock)
    await store.open()
    rules = holder(DIGEST)
    async with serve_polaris(sim) as client:
        a, b = fleet("a", store, rules, clock, client), fleet("b", store, rules, clock, client)
        await a.round()
        await b.round()
        assert a.leads() == ["default"] and b.leads() == []
        assert await store.outbox_size() == 0
        clock.advance(60)  # 09:00 Berlin
        for replica in (b, a, b, a):
            await replica.round()
        due = await store.outbox_due(clock(), projects=[""])
        [post] = digests([r.item for r in due])
        assert (post.channel, post.timezone) == ("C0DIGEST", "Europe/Berlin")
        assert post.digest.until - post.digest.since == 86_400
        await a.stop(within=1.0)  # a rolling restart: the other replica takes over
        await b.round()
        restarted = fleet("a", store, rules, clock, client)
        await restarted.round()
        assert b.leads() == ["default"]
        assert await store.outbox_size() == 1
        clock.advance(86_400)
        await b.round()
        await restarted.round()
        assert len(digests([r.item for r in await store.outbox_due(clock())])) == 2
        await b.stop(within=1.0)
        await restarted.stop(within=1.0)
    await store.close()


async def test_a_digest_sums_up_the_last_day_of_incidents(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """What the digest holds: the incidents of the last 24 hours by rule and table, the
    acknowledged ones and the time they took, the one still firing."""
    sim.set_health(CLICKS, "error")
    sim.set_health(VIEWS, "error")
    rig = await start()
    await rig.tick()
    await rig.store.add_ack(Ack.of(rig.watcher.alerts[FP], "U0OWNER", START + 60))
    sim.set_health(CLICKS, "ok")
    await rig.step(4)
    daily = DailyDigest(rig.store, holder(RULES + '[digest]\nat = "00:00"\n'), clock)
    fences = {"": rig.watcher.fence} if rig.watcher.fence else {}
    assert await daily.check(fences)
    [post] = digests([r.item for r in await rig.store.outbox_due(clock(), projects=[""])])
    d = post.digest
    assert (d.incidents, d.still_firing, d.acknowledged, d.resolved) == (2, 1, 1, 1)
    assert d.by_rule == (("job-unhealthy", 2),)
    assert d.by_table == (("clicks", 1), ("views", 1))
    assert (d.median_ack, d.median_resolve) == (60.0, 30.0)
    assert not await daily.check(fences), "once a day"
