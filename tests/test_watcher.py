"""The watch loop end to end: a real PolarisClient and the simulator, the outbox, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from harness import (
    START,
    FakeClock,
    RecordingNotifier,
    Sleeps,
    StopLoop,
    WatchRig,
    alert,
    holder,
    job_id,
    lead,
    list_queries,
    metric_paths,
    remove_job,
    serve_polaris,
    watch_rig,
)

from watchdog.deliver.terminal import TerminalNotifier
from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.domain.alerts import DEFAULT_PROJECT, META_RULE, Phase
from watchdog.domain.samples import SampleBook
from watchdog.polaris.models import Job, read_model
from watchdog.rules.holder import RulesHolder
from watchdog.rules.model import ExecutionRule, StalledRule
from watchdog.store import Silence, Store
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore
from watchdog.watch.loop import Watcher
from watchdog.watch.tick import TickReport
from watchdog.watch.verdicts import verdict_for

CLICKS, VIEWS, ORDERS = job_id(1), job_id(2), job_id(3)
SKIPPED = "numRowsSkippedByError"
HEALTH = """
[watch]
interval = "30s"
no_data_after = "2m"

[slack]
channel = "C0ALERTS"

[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"
"""
RISING = (
    HEALTH
    + """
[[rules]]
name = "skips-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "2m"
match = { table = ["clicks"] }
"""
)

Start = Callable[..., Awaitable[WatchRig]]


def simulator(clock: FakeClock) -> Simulator:
    sim = Simulator(clock=clock, sleep=Sleeps(clock))
    sim.add_job(type="streaming", table="clicks", job_id=CLICKS)
    sim.add_job(type="streaming", table="views", job_id=VIEWS)
    sim.add_job(type="streaming", table="orders", job_id=ORDERS)
    return sim


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return simulator(clock)


@pytest.fixture
async def start(clock: FakeClock, sim: Simulator) -> AsyncIterator[Start]:
    """Start a watch rig over ``sim``: ``await start(rules_text_or_holder, store=None)``."""
    async with AsyncExitStack() as stack:
        notifier = RecordingNotifier()

        async def start_rig(
            rules: str | RulesHolder = HEALTH, store: Store | None = None
        ) -> WatchRig:
            if store is None:
                store = MemoryStore(clock=clock)
            await store.open()
            stack.push_async_callback(store.close)
            held = holder(rules) if isinstance(rules, str) else rules
            return await stack.enter_async_context(watch_rig(sim, held, store, notifier, clock))

        yield start_rig


def recorded(rig: WatchRig) -> RecordingNotifier:
    assert isinstance(rig.notifier, RecordingNotifier)
    return rig.notifier


def notified(rig: WatchRig) -> list[tuple[str, str, str]]:
    """(reason, rule, job id) of every notification delivered so far."""
    return recorded(rig).seen()


def last_reason(rig: WatchRig) -> str | None:
    """The resolve reason or condition summary of the last notification."""
    n = recorded(rig).notifications[-1]
    return n.alert.resolve_reason if n.alert.phase is Phase.RESOLVED else n.alert.condition.summary


async def test_health_rule_asks_polaris_for_jobs_in_error_only(
    start: Start, sim: Simulator
) -> None:
    """A health rule lists with healthStatus=error on the wire, never every job."""
    sim.set_health(VIEWS, "error", "internal_error", "broken")
    rig = await start(HEALTH)
    report = await rig.tick()
    await rig.step(2)
    queries = list_queries(sim)
    assert len(queries) == 3
    assert all("healthStatus=error" in query for query in queries), queries
    assert report.jobs == 1 and report.evaluations == 1
    assert notified(rig) == [("new", "job-unhealthy", VIEWS)]


async def test_metrics_are_fetched_only_for_jobs_a_metric_rule_matches(
    start: Start, sim: Simulator
) -> None:
    """A rising rule on table clicks fetches the clicks job's metrics, and no other job's."""
    rig = await start(RISING)
    await rig.tick()
    await rig.step(2)
    assert metric_paths(sim) == [f"/v1/projects/demo-project/jobs/{CLICKS}/metrics"] * 3
    queries = list_queries(sim)
    assert all("healthStatus=error" in q or "targetTableName=clicks" in q for q in queries)
    sweep = rig.watcher.sweep.last_pass
    assert sweep is not None and sweep.fetched == 1 and rig.reports[-1].targets == 1


async def test_counter_already_high_when_first_seen_does_not_fire(
    start: Start, sim: Simulator
) -> None:
    """A million skipped rows at the first sight is a baseline, not an increase from zero."""
    sim.set_totals(CLICKS, {SKIPPED: 1_000_000})
    rig = await start(RISING)
    await rig.tick()
    await rig.step(6)
    assert notified(rig) == []
    assert not rig.watcher.alerts


async def test_rising_counter_fires_then_resolves_when_it_stops(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """500 more skipped rows within the window fire; once the window has passed, it resolves."""
    sim.set_totals(CLICKS, {SKIPPED: 1_000})
    rig = await start(RISING)
    await rig.tick()
    clock.advance(30)
    sim.set_totals(CLICKS, {SKIPPED: 1_500})
    await rig.tick()
    assert notified(rig) == [("new", "skips-rising", CLICKS)]
    assert "rose by 500" in (last_reason(rig) or "")
    await rig.step(3)  # still within 2m of the jump
    assert len(notified(rig)) == 1
    await rig.step(2)
    assert notified(rig)[-1] == ("resolved", "skips-rising", CLICKS)
    assert last_reason(rig) == "back within the threshold"


async def test_job_deleted_from_polaris_resolves_as_no_longer_existing(
    start: Start, sim: Simulator
) -> None:
    """A firing job that vanishes (404 on lookup) resolves with "job no longer exists"."""
    sim.set_health(CLICKS, "error")
    rig = await start(HEALTH)
    await rig.tick()
    remove_job(sim, CLICKS)
    report = await rig.step()
    assert report.lookups == 1
    assert notified(rig) == [
        ("new", "job-unhealthy", CLICKS),
        ("resolved", "job-unhealthy", CLICKS),
    ]
    assert last_reason(rig) == "job no longer exists"
    assert not rig.watcher.alerts


@pytest.mark.parametrize("left_listing", [False, True])
async def test_canceled_job_resolves_as_canceled(
    start: Start, sim: Simulator, left_listing: bool
) -> None:
    """A firing job that gets canceled resolves at once with "job canceled", whether it is
    still listed in error or has left the listing (and is looked up)."""
    sim.set_health(CLICKS, "error")
    rig = await start(HEALTH)
    await rig.tick()
    sim.set_execution(CLICKS, "canceled")
    if left_listing:
        sim.set_health(CLICKS, "ok")
    report = await rig.step()
    assert report.lookups == (1 if left_listing else 0)
    assert notified(rig)[-1] == ("resolved", "job-unhealthy", CLICKS)
    assert last_reason(rig) == "job canceled"


async def test_polaris_down_resolves_nothing_and_pages_once_about_polaris(
    start: Start, sim: Simulator
) -> None:
    """503 for every request: alerts stay, one meta-alert after no_data_after, resolved after."""
    sim.set_health(CLICKS, "error")
    rig = await start(HEALTH)
    await rig.tick()
    sim.faults.configure({"error_status": 503})
    sim.set_health(CLICKS, "ok")  # unseen while Polaris is down: must not resolve
    reports = [await rig.step() for _ in range(4)]
    assert all(r.listings_failed == 1 for r in reports)
    assert notified(rig) == [("new", "job-unhealthy", CLICKS)]
    await rig.step()  # 2 minutes after the first failed tick
    assert notified(rig)[-1] == ("new", META_RULE, "-")
    summary = last_reason(rig) or ""
    assert "cannot reach Polaris" in summary and "503" in summary
    await rig.step(5)
    assert len(notified(rig)) == 2, "the meta-alert pages once, and nothing resolved"
    assert rig.watcher.alerts[f"default/job-unhealthy/{CLICKS}"].phase is Phase.FIRING

    sim.faults.clear()
    await rig.step()
    assert sorted(notified(rig)[2:]) == [
        ("resolved", META_RULE, "-"),
        ("resolved", "job-unhealthy", CLICKS),
    ]
    meta = next(n for n in recorded(rig).notifications if n.alert.rule == META_RULE)
    assert meta.channel is None


async def test_rejected_api_key_meta_alert_says_the_key_was_rejected(
    start: Start, sim: Simulator
) -> None:
    """401 on every listing: the meta-alert says Polaris rejects the API key."""
    rig = await start(HEALTH)
    await rig.tick()
    key, sim.api_key = sim.api_key, "rotated-key"
    await rig.step(5)
    assert notified(rig) == [("new", META_RULE, "-")]
    summary = last_reason(rig) or ""
    assert "Polaris rejects the API key" in summary and "rejected" in summary
    sim.api_key = key
    await rig.step()
    assert notified(rig)[-1] == ("resolved", META_RULE, "-")


@pytest.mark.parametrize("kind", ["truncated", "types", "html"])
async def test_malformed_listing_keeps_alerts_and_tick_survives(
    start: Start, sim: Simulator, kind: str
) -> None:
    """A listing Polaris garbles is no data: the tick completes and nothing resolves."""
    sim.set_health(CLICKS, "error")
    rig = await start(HEALTH)
    await rig.tick()
    sim.faults.configure({"malformed": kind, "endpoints": ["list"]})
    sim.set_health(CLICKS, "ok")
    report = await rig.step(3)
    assert report.listings_failed == 1 and report.outcome == "partial"
    assert notified(rig) == [("new", "job-unhealthy", CLICKS)]
    assert rig.watcher.alerts[f"default/job-unhealthy/{CLICKS}"].phase is Phase.FIRING


@pytest.mark.parametrize(
    ("endpoint", "blind", "seen"),
    [("metrics", "skips-rising", "job-unhealthy"), ("job", "job-unhealthy", "skips-rising")],
)
async def test_failed_metrics_or_lookup_leaves_only_those_alerts_alone(
    start: Start, sim: Simulator, clock: FakeClock, endpoint: str, blind: str, seen: str
) -> None:
    """503 on metrics (for a rising alert) or on the lookup of a job that left its listing
    (for a health alert) is "unknown": that alert stays; the one with data resolves. Metrics
    failing for longer than no_data_after also raise the meta-alert: rules are blind."""
    sim.set_totals(CLICKS, {SKIPPED: 1_000})
    sim.set_health(VIEWS, "error")
    rig = await start(RISING)
    await rig.tick()
    clock.advance(30)
    sim.set_totals(CLICKS, {SKIPPED: 2_000})
    await rig.tick()
    assert len(notified(rig)) == 2
    job = {"skips-rising": CLICKS, "job-unhealthy": VIEWS}
    sim.faults.configure({"error_status": 503, "endpoints": [endpoint]})
    sim.set_health(VIEWS, "ok")  # leaves the error listing: looked up
    await rig.step(6)  # 3 minutes: the rising window has long passed
    meta = [("new", META_RULE, "-")] if endpoint == "metrics" else []
    assert notified(rig)[2:] == [("resolved", seen, job[seen]), *meta]
    assert rig.watcher.alerts[f"default/{blind}/{job[blind]}"].phase is Phase.FIRING
    sweep = rig.watcher.sweep.last_pass
    assert sweep is not None and sweep.failed == (1 if endpoint == "metrics" else 0)
    sim.faults.clear()
    # After a gap a window needs two fresh samples (the old baseline is stale): the
    # rising alert resolves on the second tick back; the health alert on the first.
    await rig.step(2 if blind == "skips-rising" else 1)
    back = [("resolved", META_RULE, "-")] if meta else []
    assert notified(rig)[3 + len(meta) :] == [*back, ("resolved", blind, job[blind])]


async def test_reload_removing_a_rule_resolves_its_alerts(
    start: Start, sim: Simulator, tmp_path: Path
) -> None:
    """Rules reloaded without the rule: its firing alerts resolve, saying why."""
    path = tmp_path / "rules.toml"
    path.write_text(RISING)
    rules = RulesHolder.from_file(path)
    sim.set_health(VIEWS, "error")
    rig = await start(rules)
    await rig.tick()
    path.write_text(HEALTH.replace("job-unhealthy", "job-broken"))
    assert rules.reload()
    await rig.step()
    assert notified(rig) == [
        ("new", "job-unhealthy", VIEWS),
        ("new", "job-broken", VIEWS),
        ("resolved", "job-unhealthy", VIEWS),
    ]
    assert last_reason(rig) == "rule removed from the rules file"
    assert set(rig.watcher.alerts) == {f"default/job-broken/{VIEWS}"}


async def test_restart_on_the_same_state_file_does_not_renotify(
    start: Start, sim: Simulator, tmp_path: Path
) -> None:
    """A new watcher on the same SQLite file keeps the incident: no second page, resolves later."""
    sim.set_health(CLICKS, "error")
    first = SqliteStore(tmp_path / "state.db")
    rig = await start(HEALTH, store=first)
    await rig.tick()
    await rig.step()
    assert notified(rig) == [("new", "job-unhealthy", CLICKS)]
    await first.close()  # the process dies

    second = SqliteStore(tmp_path / "state.db")
    await second.open()
    try:
        await rig.restart(second)
        assert rig.watcher.alerts[f"default/job-unhealthy/{CLICKS}"].posted
        await rig.step(3)
        assert len(notified(rig)) == 1
        sim.set_health(CLICKS, "ok")
        await rig.step()
        assert notified(rig)[-1] == ("resolved", "job-unhealthy", CLICKS)
        assert last_reason(rig) == "health is ok again"
        assert await second.load_alerts() == []
    finally:
        await second.close()


async def test_rising_history_survives_a_restart(
    start: Start, sim: Simulator, clock: FakeClock, tmp_path: Path
) -> None:
    """Samples are persisted: a baseline seen before a restart still counts after it."""
    sim.set_totals(CLICKS, {SKIPPED: 1_000})
    first = SqliteStore(tmp_path / "state.db")
    rig = await start(RISING, store=first)
    await rig.tick()
    await first.close()

    second = SqliteStore(tmp_path / "state.db")
    await second.open()
    try:
        await rig.restart(second)
        clock.advance(30)
        sim.set_totals(CLICKS, {SKIPPED: 1_400})
        await rig.tick()
        assert notified(rig) == [("new", "skips-rising", CLICKS)]
        assert "rose by 400" in (last_reason(rig) or "")
    finally:
        await second.close()


async def test_silenced_alert_is_announced_when_the_silence_ends(
    start: Start, sim: Simulator
) -> None:
    """A job silenced while it fires is announced (NEW) on the first tick after the silence."""
    sim.set_health(CLICKS, "error")
    rig = await start(HEALTH)
    silence = Silence("s1", "job", CLICKS, START + 75, "U0OPERATOR", START)
    await rig.store.add_silence(silence)
    await rig.tick()
    await rig.step(2)
    assert notified(rig) == []
    await rig.step()
    assert notified(rig) == [("new", "job-unhealthy", CLICKS)]
    assert recorded(rig).notifications[0].alert.fired_at == START


async def test_alert_silence_mutes_one_rule_on_one_job_only(start: Start, sim: Simulator) -> None:
    """A silence of the alert (rule/job) keeps that alert quiet, other jobs still page."""
    sim.set_health(CLICKS, "error")
    sim.set_health(VIEWS, "error")
    rig = await start(HEALTH)
    fp = f"default/job-unhealthy/{CLICKS}"
    await rig.store.add_silence(Silence("s1", "alert", fp, START + 3600, "U0OPERATOR", START))
    await rig.tick()
    assert notified(rig) == [("new", "job-unhealthy", VIEWS)]


class TimedWatcher(Watcher):
    """Records the ``now`` of every tick and whether ``idle`` was clear during it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ticked: list[float] = []
        self.idle_in_tick: list[bool] = []

    async def tick(self, now: float, **kwargs: Any) -> TickReport:
        self.ticked.append(now)
        self.idle_in_tick.append(self.idle.is_set())
        return await super().tick(now, **kwargs)


@pytest.mark.parametrize(
    ("latency", "spacing", "pause"),
    [
        (7.0, 30.0, 23.0),  # sleeps interval - elapsed, not interval
        (70.0, 90.0, 20.0),  # an overrun skips ticks, never bunches them
    ],
)
async def test_run_ticks_on_the_interval_grid_however_long_a_tick_takes(
    clock: FakeClock, sim: Simulator, latency: float, spacing: float, pause: float
) -> None:
    """run() is drift-free: tick times are exact multiples of interval; idle is set between."""
    sim.faults.configure({"latency": latency})  # every request moves the fake clock
    store = MemoryStore()
    await store.open()
    idle_between: list[bool] = []
    sleeps: list[float] = []
    watcher: TimedWatcher

    async def sleep(delay: float) -> None:
        idle_between.append(watcher.idle.is_set())
        sleeps.append(delay)
        if len(sleeps) == 5:
            raise StopLoop
        clock.advance(delay)

    async with serve_polaris(sim) as client:
        watcher = TimedWatcher(
            project=DEFAULT_PROJECT,
            client=client,
            store=store,
            rules=holder(HEALTH),
            clock=clock,
            sleep=sleep,
        )
        await lead(watcher, store)
        with pytest.raises(StopLoop):
            await watcher.run()
    assert watcher.ticked == [START + spacing * i for i in range(5)]
    assert sleeps == [pause] * 5
    assert idle_between == [True] * 5
    assert watcher.idle_in_tick == [False] * 5
    assert watcher.last_tick_at == START + spacing * 4 + latency


async def test_terminal_notifier_prints_one_line_per_notification(
    clock: FakeClock, sim: Simulator
) -> None:
    """Without Slack, the terminal shows the alert firing and resolving, plainly."""
    lines: list[str] = []
    store = MemoryStore()
    await store.open()
    sim.set_health(CLICKS, "error", "internal_error", "broken")
    notifier = TerminalNotifier(write=lines.append, colour=False)
    async with watch_rig(sim, holder(HEALTH), store, notifier, clock) as rig:
        await rig.tick()
        sim.set_health(CLICKS, "ok")
        await rig.step()
    assert len(lines) == 2
    assert lines[0].split()[1] == "FIRING" and CLICKS in lines[0] and "clicks" in lines[0]
    assert lines[0].split()[2] == "[default]"
    assert lines[1].split()[1] == "RESOLVED" and "health is ok again" in lines[1]


def test_a_stalled_alert_resolves_when_its_job_is_suspended() -> None:
    """A stalled rule fetches no metrics for a suspended job, yet its verdict is "inactive",
    not "unknown": the alert resolves instead of firing for ever."""
    rule = StalledRule(name="stalled", kind="stalled", within=600)
    job = read_model(
        Job,
        {
            "id": job_id(1),
            "type": "streaming",
            "executionStatus": "suspended",
            "health": {"status": "ok"},
        },
    )
    state = alert(job_id(1), rule="stalled")
    verdict = verdict_for(rule, job, state, SampleBook(10), START, sampled={})
    assert verdict is not None and verdict.condition is not None
    assert verdict.condition.active is False


def test_a_failed_job_alert_does_not_resolve_when_the_job_grows_old() -> None:
    """max_age keeps old failures from starting alerts; it does not end one that fires."""
    rule = ExecutionRule(name="failed", status=("failed",), max_age=86_400.0)
    job = read_model(
        Job,
        {
            "id": job_id(1),
            "type": "batch",
            "executionStatus": "failed",
            "lastUpdatedTimestamp": "2023-11-14T22:00:00Z",
        },
    )
    later = START + 2 * 86_400
    assert verdict_for(rule, job, None, SampleBook(10), later, sampled={}) is None
    state = alert(job_id(1), rule="failed")
    verdict = verdict_for(rule, job, state, SampleBook(10), later, sampled={})
    assert verdict is not None and verdict.condition is not None and verdict.condition.active


class FlakyCommitStore(MemoryStore):
    """A store whose next ``commit`` fails once (a locked or full disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    async def commit(self, **kwargs: Any) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("database is locked")
        await super().commit(**kwargs)


async def test_a_failed_commit_announces_the_alert_on_the_next_tick(
    start: Start, sim: Simulator
) -> None:
    """The tick whose commit fails leaves no trace in the bot's memory: the next tick
    decides (and announces) the same incident again instead of believing it was posted."""
    store = FlakyCommitStore()
    rig = await start(HEALTH, store=store)
    sim.set_health(CLICKS, "error")
    store.fail_next = True
    with pytest.raises(OSError):
        await rig.tick()
    assert rig.watcher.alerts == {}
    await rig.step()
    assert notified(rig) == [("new", "job-unhealthy", CLICKS)]


async def test_a_tick_commits_health_alerts_without_a_single_metrics_request(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """The listing tick fetches no metrics: an unhealthy job is announced by a tick whose
    metric targets are all failing, and the failures are the sweep's, not the tick's."""
    sim.set_health(ORDERS, "error")
    rig = await start(RISING)
    sim.faults.configure({"error_status": 503, "endpoints": ["metrics"]})
    report = await rig.watcher.tick(clock())  # no sweep: the tick alone
    assert metric_paths(sim) == []
    assert report.targets == 1
    await rig.dispatcher.deliver_once()
    assert notified(rig) == [("new", "job-unhealthy", ORDERS)]


async def test_health_alerts_are_committed_before_the_metric_rules_listings(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """The listing-only rules commit on their own short listing, first: the health alert
    is written (and delivery woken) before the metric rules' listing is asked for."""
    sim.set_health(ORDERS, "error")
    rig = await start(RISING)
    commits: list[tuple[int, list[str]]] = []  # (notifications, listings asked so far)
    original = rig.store.commit

    async def counting(**kwargs: Any) -> None:
        commits.append((len(kwargs.get("outbox", ())), list_queries(sim)))
        await original(**kwargs)

    rig.store.commit = counting  # type: ignore[method-assign]
    await rig.watcher.tick(clock())
    first_notes, asked = commits[0]
    assert first_notes == 1
    assert len(asked) == 1 and "healthStatus=error" in asked[0]
    assert any("targetTableName=clicks" in q for q in list_queries(sim)[1:])
    await rig.dispatcher.deliver_once()
    assert notified(rig) == [("new", "job-unhealthy", ORDERS)]


async def test_a_job_missing_from_one_listing_keeps_its_history(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """Offset pagination can skip a job for a tick: its samples stay, so its firing rising
    alert neither resolves on a half-empty window nor pages again when it is back."""
    sim.set_totals(CLICKS, {SKIPPED: 1_000})
    rig = await start(RISING)
    await rig.tick()
    clock.advance(30)
    sim.set_totals(CLICKS, {SKIPPED: 2_000})
    await rig.tick()
    assert ("new", "skips-rising", CLICKS) in notified(rig)
    sim.set_execution(CLICKS, "suspended")  # gone from this tick's metric targets
    await rig.step()
    assert rig.watcher.book.series(CLICKS, SKIPPED) is not None
    sim.set_execution(CLICKS, "running")
    await rig.step()
    assert [n for n in notified(rig) if n[0] == "new"] == [("new", "skips-rising", CLICKS)]


async def test_reload_to_a_longer_interval_keeps_the_history(start: Start, tmp_path: Path) -> None:
    """Lengthening the interval never shrinks the sample rings (their points are spaced
    by the old interval)."""
    path = tmp_path / "rules.toml"
    path.write_text(RISING)
    rules = RulesHolder.from_file(path)
    rig = await start(rules)
    await rig.tick()
    before = rig.watcher.book.capacity
    path.write_text(RISING.replace('interval = "30s"', 'interval = "60s"'))
    assert rules.reload()
    await rig.step()
    assert rig.watcher.book.capacity == before


async def test_a_job_id_that_is_not_a_uuid_does_not_stop_the_tick(
    start: Start, sim: Simulator
) -> None:
    """One odd id in a listing: its metrics are unknown, everything else is judged."""
    sim.add_job(table="clicks", job_id="legacy-job-7")
    sim.set_health(VIEWS, "error")
    rig = await start(RISING)
    await rig.tick()
    sweep = rig.watcher.sweep.last_pass
    assert sweep is not None and sweep.failed == 1
    assert notified(rig) == [("new", "job-unhealthy", VIEWS)]
