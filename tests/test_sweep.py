"""The two cadences: listings judged every interval on time, metrics swept on their own.

Health and execution rules never wait for metrics; the sweep visits the stalest jobs
first, feeds metric rules with the real time of each answer however long a pass takes,
resumes after a restart where it stood, and says when metric rules go blind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from harness import (
    START,
    FakeClock,
    RecordingNotifier,
    Sleeps,
    WatchRig,
    holder,
    job_id,
    lead,
    metric_paths,
    serve_polaris,
    watch_rig,
    wire,
)

from watchdog.deliver.outbox import Dispatcher
from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.domain.alerts import DEFAULT_PROJECT, META_RULE
from watchdog.domain.samples import SampleBook
from watchdog.store import Fence, Store
from watchdog.store.memory import MemoryStore
from watchdog.watch.loop import Watcher
from watchdog.watch.sweep import MetricsSweep, counter_value

SKIPPED = "numRowsSkippedByError"
PROCESSED = "numRowsProcessed"
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

[[rules]]
name = "skips-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "2m"

[[rules]]
name = "ingest-stalled"
kind = "stalled"
within = "2m"
"""

Start = Callable[..., Awaitable[WatchRig]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(clock=clock, sleep=Sleeps(clock))


@pytest.fixture
async def start(clock: FakeClock, sim: Simulator) -> AsyncIterator[Start]:
    async with AsyncExitStack() as stack:

        async def start_rig(rules: str = RULES, store: Store | None = None) -> WatchRig:
            if store is None:
                store = MemoryStore(clock=clock)
            await store.open()
            stack.push_async_callback(store.close)
            notifier = RecordingNotifier()
            return await stack.enter_async_context(
                watch_rig(sim, holder(rules), store, notifier, clock)
            )

        yield start_rig


def fences(watcher: Watcher) -> dict[str, Fence]:
    fence = watcher.fence
    return {} if fence is None else {DEFAULT_PROJECT: fence, "": fence}


def seen(rig: WatchRig) -> list[tuple[str, str, str]]:
    assert isinstance(rig.notifier, RecordingNotifier)
    return rig.notifier.seen()


def swept(sim: Simulator) -> list[str]:
    """The job ids whose metrics were asked for, in order."""
    return [path.split("/")[-2] for path in metric_paths(sim)]


def test_a_counter_is_only_what_a_counter_can_be() -> None:
    """Negative, non-finite and absurdly large values are no counter: bad data."""
    assert counter_value(12.0) == 12.0
    for bad in (-1.0, float("nan"), float("inf"), 1e300, None):
        assert counter_value(bad) is None


async def test_a_pass_visits_the_jobs_never_fetched_first_then_the_stalest(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """A new target is fetched before the others; the rest go by their last fetch."""
    jobs = [sim.add_job(type="streaming", table=f"t{n}", job_id=job_id(n)).id for n in (1, 2, 3)]
    rig = await start()
    await rig.tick()
    assert swept(sim) == jobs
    sim.stats.reset()
    late = sim.add_job(type="streaming", table="late", job_id=job_id(9)).id
    clock.advance(30)
    await rig.watcher.tick(clock())  # the listing names the new job; no sweep yet
    await rig.watcher.sweep.sweep_once()
    assert swept(sim) == [late, *jobs]


async def test_a_listing_is_judged_on_time_while_a_slow_sweep_is_in_flight() -> None:
    """With metrics slow enough that one sweep takes ~20 intervals, a job turning
    unhealthy is committed within an interval: the tick never waits for the sweep."""
    sim = Simulator()  # real time: the two loops run side by side
    for n in range(1, 41):
        sim.add_job(type="streaming", table=f"t{n}", job_id=job_id(n))
    rules = holder(
        RULES.replace('interval = "30s"', 'interval = "200ms"').replace(
            'no_data_after = "2m"', 'no_data_after = "1m"'
        )
    )
    store = MemoryStore()
    await store.open()
    notifier = RecordingNotifier()
    sim.faults.configure({"latency": 0.1, "endpoints": ["metrics"]})  # 40 jobs: ~4 s a pass
    async with serve_polaris(sim, concurrency=1) as client:
        dispatcher = Dispatcher(store, notifier, fences=lambda: fences(watcher))
        watcher = Watcher(
            project=DEFAULT_PROJECT,
            client=client,
            store=store,
            rules=rules,
            on_commit=dispatcher.wake,
        )
        await lead(watcher, store)
        running = asyncio.create_task(watcher.run())
        delivering = asyncio.create_task(dispatcher.run())
        try:
            await asyncio.sleep(0.5)
            assert watcher.sweep.current is not None, "the first sweep pass is still going"
            flipped = time.monotonic()
            sim.set_health(job_id(7), "error", "internal_error", "broken")
            await asyncio.wait_for(notifier.wait_for(1), 2.0)
            latency = time.monotonic() - flipped
            assert watcher.sweep.current is not None, "the sweep is still in its first pass"
        finally:
            running.cancel()
            delivering.cancel()
            await asyncio.gather(running, delivering, return_exceptions=True)
    await store.close()
    assert notifier.seen() == [("new", "job-unhealthy", job_id(7))]
    assert latency < 0.2 + 0.3  # one interval, plus the listing and the delivery


async def test_a_sweep_that_takes_several_intervals_feeds_metric_rules_with_real_times(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """Samples 90 s apart (a sweep period of three intervals) still make a 2-minute rising
    window: growth between the samples fires, judged at the time of the newer one, and the
    ticks in between leave it as it is."""
    job = sim.add_job(type="streaming", table="clicks", job_id=job_id(1)).id
    sim.set_totals(job, {SKIPPED: 1_000, PROCESSED: 10})
    rig = await start()
    await rig.tick()  # a sweep at 0s, then the tick
    for _ in range(2):  # 30 s, 60 s: ticks with no new sample
        clock.advance(30)
        await rig.watcher.tick(clock())
    assert seen(rig) == []
    clock.advance(30)
    sim.set_totals(job, {SKIPPED: 1_250, PROCESSED: 20})
    await rig.tick()  # 90 s: the sweep's second visit
    await rig.dispatcher.deliver_once()
    assert seen(rig) == [("new", "skips-rising", job)]
    alert = rig.watcher.alerts[f"{DEFAULT_PROJECT}/skips-rising/{job}"]
    assert "rose by 250" in alert.condition.summary
    clock.advance(30)
    await rig.watcher.tick(clock())  # 120 s: judged again on the 90 s sample, unchanged
    await rig.dispatcher.deliver_once()
    assert seen(rig) == [("new", "skips-rising", job)]


async def test_a_stalled_job_is_seen_across_a_long_sweep_period(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """A counter flat over samples a sweep period apart, for longer than `within`, is
    stalled; the rule waits until its window is covered by real samples."""
    # "stalls" all the time: no row for the whole (long) cycle.
    job = sim.add_job(
        table="clicks", behaviour="stalls", cycle=10_000, trouble=(0, 10_000), job_id=job_id(1)
    ).id
    rig = await start()
    for _ in range(3):  # samples at 0, 90 and 180 s, with ticks in between
        await rig.tick()
        for _ in range(2):
            clock.advance(30)
            await rig.watcher.tick(clock())
        clock.advance(30)
    await rig.tick()
    await rig.dispatcher.deliver_once()
    assert ("new", "ingest-stalled", job) in seen(rig)


async def test_metrics_older_than_no_data_after_are_unknown_and_say_so(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """No sample for longer than no_data_after: metric rules change nothing, and the
    project reports that its metric rules are blind (health problem, then meta-alert)."""
    job = sim.add_job(type="streaming", table="clicks", job_id=job_id(1)).id
    sim.set_totals(job, {SKIPPED: 1_000, PROCESSED: 10})
    rig = await start()
    await rig.tick()
    for _ in range(5):  # 150 s of ticks and no sweep
        clock.advance(30)
        await rig.watcher.tick(clock())
    assert "metrics" in rig.watcher.health.problems
    assert "the oldest metrics sample is" in rig.watcher.health.problems["metrics"].message
    for _ in range(4):  # the meta-alert waits no_data_after before it fires
        clock.advance(30)
        await rig.watcher.tick(clock())
    await rig.dispatcher.deliver_once()
    assert seen(rig)[-1] == ("new", META_RULE, "-")


async def test_a_restart_resumes_the_sweep_where_it_stood(sim: Simulator, clock: FakeClock) -> None:
    """After a restart the first pass starts with the jobs whose stored samples are
    oldest (never-fetched ones first), as the stopped process would have gone on."""
    jobs = [sim.add_job(type="streaming", table=f"t{n}", job_id=job_id(n)).id for n in (1, 2, 3)]
    store = MemoryStore(clock=clock)
    await store.open()
    rows = [(jobs[0], SKIPPED, START - 20, 5.0), (jobs[1], SKIPPED, START - 50, 5.0)]
    await store.append_samples(DEFAULT_PROJECT, rows)
    async with serve_polaris(sim, concurrency=1) as client:
        watcher, _ = wire(client, store, holder(RULES), clock, RecordingNotifier())
        await lead(watcher, store)
        await watcher.tick(clock())
        await watcher.sweep.sweep_once()
    assert swept(sim) == [jobs[2], jobs[1], jobs[0]]
    await store.close()


class CountingStore(MemoryStore):
    """A MemoryStore that records how many rows each ``load_samples`` call returned."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.loads: list[int] = []

    async def load_samples(
        self, project: str, since: float, until: float | None = None
    ) -> list[tuple[str, str, float, float]]:
        rows = await super().load_samples(project, since, until)
        self.loads.append(len(rows))
        return rows


async def test_a_restart_restores_an_hour_in_a_few_bounded_queries(
    sim: Simulator, clock: FakeClock
) -> None:
    """An hour of 1 s samples (a 1 h window, interval 1 s) comes back whole, in slices
    sized by the density read so far: a handful of queries, not one per interval."""
    hourly = RULES.replace('interval = "30s"', 'interval = "1s"').replace(
        'within = "2m"\n\n[[rules]]', 'within = "1h"\n\n[[rules]]', 1
    )
    jobs = [sim.add_job(type="streaming", table=f"t{n}", job_id=job_id(n)).id for n in (1, 2, 3)]
    store = CountingStore(clock)
    await store.open()
    rows = [(job, SKIPPED, START - age, float(age)) for age in range(1, 3601) for job in jobs]
    await store.append_samples(DEFAULT_PROJECT, rows)
    async with serve_polaris(sim, concurrency=1) as client:
        watcher, _ = wire(client, store, holder(hourly), clock, RecordingNotifier())
        await lead(watcher, store)
    restored = [watcher.book.series(job, SKIPPED) for job in jobs]
    assert [len(series) for series in restored if series is not None] == [3600, 3600, 3600]
    assert sum(store.loads) == len(rows) and len(store.loads) <= 5
    await store.close()


async def test_the_sweep_reports_its_period_and_staleness(
    start: Start, sim: Simulator, clock: FakeClock
) -> None:
    """A pass over three jobs at 20 s a request takes 60 s: that is the sweep period,
    and a job's data is as old as the time since its answer."""
    for n in (1, 2, 3):
        sim.add_job(type="streaming", table=f"t{n}", job_id=job_id(n))
    rig = await start()
    await rig.watcher.tick(clock())
    sim.faults.configure({"latency": 20.0, "endpoints": ["metrics"]})
    sweep: MetricsSweep = rig.watcher.sweep
    report = await sweep.sweep_once()
    assert report.seconds == pytest.approx(60.0)
    assert sweep.period == pytest.approx(60.0)
    assert sweep.staleness(clock()) == pytest.approx(40.0)  # the first job, answered at 20 s


async def test_failed_answers_make_a_blind_pass(start: Start, sim: Simulator) -> None:
    """When (nearly) every metrics request fails, the pass says the rules are blind."""
    sim.add_job(type="streaming", table="clicks", job_id=job_id(1))
    rig = await start()
    await rig.watcher.tick(rig.clock())
    sim.faults.configure({"error_status": 503, "endpoints": ["metrics"]})
    report = await rig.watcher.sweep.sweep_once()
    assert (report.attempted, report.failed, report.blind) == (1, 1, True)
    assert isinstance(rig.watcher.sweep.book, SampleBook)
