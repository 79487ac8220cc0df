"""A hostile Polaris against the watch loop: data that cannot be, listings that never end.

The simulator's hostile faults against a real client and watcher (fast, in one process);
what the whole bot process does on such days is tests/test_bad_days.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from harness import FakeClock, RecordingNotifier, Sleeps, WatchRig, holder, job_id, watch_rig
from structlog.testing import capture_logs

from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.domain.alerts import META_RULE
from watchdog.store.memory import MemoryStore

FAILED = job_id(1)
STREAM = job_id(2)

RULES = """
[watch]
interval = "30s"
no_data_after = "1m"
page_size = 100
max_jobs = 500
[slack]
channel = "C0ALERTS"
[[rules]]
name = "job-unhealthy"
kind = "health"
[[rules]]
name = "job-failed"
kind = "execution"
status = ["failed"]
"""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    sim = Simulator(clock=clock, sleep=Sleeps(clock))
    sim.add_job(type="batch", table="backfill", job_id=FAILED)
    sim.add_job(type="streaming", table="clicks", job_id=STREAM)
    return sim


@pytest.fixture
async def rig(clock: FakeClock, sim: Simulator) -> AsyncIterator[WatchRig]:
    store = MemoryStore(clock=clock)
    await store.open()
    async with watch_rig(sim, holder(RULES), store, RecordingNotifier(), clock) as running:
        yield running
    await store.close()


def posted(rig: WatchRig) -> list[tuple[str, str, str]]:
    assert isinstance(rig.notifier, RecordingNotifier)
    return rig.notifier.seen()


@pytest.mark.parametrize("mode", ["garbage", "impossible", "empty", "number", "null"])
async def test_a_failed_job_of_unknown_age_is_not_paged_and_is_said_once(
    rig: WatchRig, sim: Simulator, mode: str
) -> None:
    """A failed job whose timestamps cannot be read may be years old: max_age counts it
    as old — no alert — and one log line says so, however many ticks list it."""
    sim.set_execution(FAILED, "failed")
    sim.faults.configure({"bad_timestamps": {FAILED: mode}})
    with capture_logs() as logs:
        for _ in range(3):
            await rig.step()
    assert posted(rig) == []
    said = [e for e in logs if e["event"] == "watch.job_age_unknown"]
    assert [e["job_id"] for e in said] == [FAILED]


async def test_a_job_with_unreadable_timestamps_is_still_watched(
    rig: WatchRig, sim: Simulator
) -> None:
    """Timestamps are only about age: a running job whose timestamps are numbers is
    readable, and its health still pages."""
    sim.set_health(STREAM, "error", "internal_error", "it broke")
    sim.faults.configure({"bad_timestamps": {"*": "number"}})
    await rig.step()
    assert posted(rig) == [("new", "job-unhealthy", STREAM)]


async def test_a_recent_failure_with_a_readable_timestamp_still_pages(
    rig: WatchRig, sim: Simulator
) -> None:
    """The counterpart: the same failed job with its real timestamp is news."""
    sim.set_execution(FAILED, "failed")
    await rig.step()
    assert posted(rig) == [("new", "job-failed", FAILED)]


async def test_an_endless_listing_ends_at_the_tick_share_of_max_jobs(
    rig: WatchRig, sim: Simulator
) -> None:
    """Polaris always says "more results" with new jobs: the listing stops when it holds
    its share of [watch] max_jobs, the tick ends, nothing about the phantom jobs is
    posted, and the listing problem is reported (then posted after no_data_after)."""
    sim.faults.configure({"endless": "new"})
    report = await rig.step()
    assert report.listings_failed == 2  # health=error and executionStatus=failed
    assert rig.watcher.health.problems["listing"].message.startswith(
        "2 of 2 job listings could not be read (the listing passed 200 jobs, its share of "
        "[watch] max_jobs (500 for 2 listing(s) a tick)"
    )
    pages = [q for _, _, path, q in sim.stats.request_log if path.endswith("/jobs")]
    assert len(pages) == 4  # each listing: 250 jobs at most, in pages of 100
    await rig.step(2)
    assert [(reason, rule) for reason, rule, _ in posted(rig)] == [("new", META_RULE)]


async def test_a_job_answering_impossible_metrics_is_said_not_blamed_on_slowness(
    clock: FakeClock, sim: Simulator
) -> None:
    """One job's metrics answers cannot be read (NaN): said once in the log, no alert for
    it, and after no_data_after the project's problem names bad data — not a slow sweep
    and "raise max_rate" — while the other job's metric rule still fires."""
    hostile = job_id(3)
    sim.add_job(type="streaming", table="views", job_id=hostile)
    sim.faults.configure({"hostile_metrics": {hostile: "nan"}})
    rules = RULES + (
        '[[rules]]\nname = "skips"\nkind = "rising"\nmetric = "numRowsSkippedByError"\n'
        'increase = 10\nwithin = "2m"\n'
    )
    store = MemoryStore(clock=clock)
    await store.open()
    async with watch_rig(sim, holder(rules), store, RecordingNotifier(), clock) as rig:
        with capture_logs() as logs:
            await rig.step()
            for n in range(1, 5):
                sim.set_totals(STREAM, {"numRowsSkippedByError": 100 * n})
                await rig.step()
        said = [e for e in logs if e["event"] == "watch.bad_metrics"]
        assert [e["job_id"] for e in said] == [hostile]
        assert ("new", "skips", STREAM) in posted(rig)
        assert all(job != hostile for _, _, job in posted(rig))
        problem = rig.watcher.health.problems["metrics"].message
        assert problem.startswith("Polaris answers metrics no counter can have for 1 job(s)")
        assert hostile in problem and "max_rate" not in problem
    await store.close()
