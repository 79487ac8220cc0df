"""Chaos with several replicas: three real bot processes on one private PostgreSQL server,
three Polaris projects, while replicas are SIGKILLed, SIGSTOPped past their lease and
SIGTERMed and the database restarts.

One run (about a minute) is shared by the tests below; each checks one promise of
"Several replicas" (README, High availability) against its verdict
(:mod:`chaos_ha_accounting`). The server is the test's own (:mod:`pg_private`): without
PostgreSQL binaries the tests skip, saying why — and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chaos_accounting import SHUTDOWN_LIMIT
from chaos_ha_accounting import HaReport
from chaos_ha_rig import REPLICAS
from chaos_ha_scenario import run_ha_chaos
from pg_private import PrivatePostgres, find_bin_dir

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE = 2.0
INTERVAL = 1.0
#: Windows the scenario opens; a change to the scenario must change this on purpose.
EXPECTED_INCIDENTS = 10


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> HaReport:
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        pytest.skip(why)
    workdir: Path = tmp_path_factory.mktemp("chaos-ha")

    async def run() -> HaReport:
        async with PrivatePostgres(bin_dir) as pg:
            return await run_ha_chaos(workdir, pg, lease=LEASE, interval=INTERVAL)

    report = asyncio.run(run())
    print(f"\nchaos run in {workdir}\n{report.markdown()}")
    return report


def _detail(report: HaReport) -> str:
    return "\n".join([report.markdown(), *report.problems(), *report.record.notes])


def test_every_phase_ran_and_every_window_is_one_incident(chaos: HaReport) -> None:
    """The scenario ran to its end and opened the error windows it plans."""
    assert not [n for n in chaos.record.notes if n.startswith("STOPPED EARLY")], _detail(chaos)
    assert chaos.single.expected == EXPECTED_INCIDENTS, _detail(chaos)


def test_no_incident_is_lost_or_duplicated(chaos: HaReport) -> None:
    """Every window got exactly one top-level post, whichever replica made it."""
    assert not chaos.single.lost, _detail(chaos)
    assert not chaos.single.duplicated and not chaos.single.explained_duplicates, _detail(chaos)
    assert chaos.single.delivered == chaos.single.expected, _detail(chaos)


def test_every_resolve_edits_the_original_post(chaos: HaReport) -> None:
    """Every post was edited to RESOLVED once, also when another replica resolved it."""
    assert not chaos.single.unresolved, _detail(chaos)
    assert chaos.single.resolves_delivered == chaos.single.delivered, _detail(chaos)
    assert chaos.single.repeated_edits == 0, _detail(chaos)
    assert chaos.resolved_by_another >= 2, _detail(chaos)  # after the SIGKILL and the SIGTERM


def test_nothing_spurious_is_posted(chaos: HaReport) -> None:
    """No post about a healthy job, outside a window, and no meta-alert."""
    assert not chaos.single.spurious, _detail(chaos)
    assert not chaos.single.meta_posts, _detail(chaos)


def test_no_replica_writes_without_the_projects_lease(chaos: HaReport) -> None:
    """In the database's own history, every write to a project's rows was made by the
    holder of its lease — also by the replica that woke from SIGSTOP."""
    assert chaos.writes_checked > 100, _detail(chaos)
    assert not chaos.stale_writes, _detail(chaos)


def test_no_replica_posts_or_edits_without_the_projects_lease(chaos: HaReport) -> None:
    """Every Slack post and edit began while its replica held the project's lease."""
    assert chaos.calls_checked >= 2 * EXPECTED_INCIDENTS, _detail(chaos)
    assert not chaos.stale_calls, _detail(chaos)


def test_a_replica_woken_past_its_lease_changes_nothing(chaos: HaReport) -> None:
    """SIGSTOPped with a post queued, past its lease, SIGCONTed after another replica took
    over and delivered: the woken replica posted, edited and wrote nothing without it."""
    assert len(chaos.record.pauses) == 1, _detail(chaos)
    assert chaos.after_waking(chaos.stale_writes) == 0, _detail(chaos)
    assert chaos.after_waking(chaos.stale_calls) == 0, _detail(chaos)


def test_a_dead_leaders_project_is_taken_over_within_lease_and_interval(
    chaos: HaReport,
) -> None:
    """After SIGKILL another replica lists the project within the lease + one interval."""
    listed = chaos.figure("sigkill: first listing by the new leader")
    assert listed is not None and listed <= LEASE + INTERVAL, _detail(chaos)


def test_a_stopping_leader_hands_over_at_once(chaos: HaReport) -> None:
    """After SIGTERM another replica lists the project within one lease renewal period
    (plus a listing), not after the lease."""
    listed = chaos.figure("sigterm: first listing by the new leader")
    assert listed is not None and listed <= LEASE / 3 + INTERVAL, _detail(chaos)


def test_a_database_outage_is_reported_and_posts_nothing(chaos: HaReport) -> None:
    """While PostgreSQL is down every replica says so in /healthz (503, "store"), stays
    alive for its probe, and nothing reaches Slack that could not be recorded."""
    for name in REPLICAS:
        said = chaos.figure(f"database: {name} said so after")
        assert said is not None and said >= 0, _detail(chaos)
        assert chaos.figure(f"database: {name} /livez not 200") == 0, _detail(chaos)
    assert chaos.figure("database: Slack posts and edits while down") == 0, _detail(chaos)
    assert chaos.figure("database: healthy again after") is not None, _detail(chaos)


def test_replicas_exit_cleanly_and_never_crash(chaos: HaReport) -> None:
    """Every SIGTERM exits 0 in time; no replica exited unasked or logged a traceback."""
    assert len(chaos.sigterms) == 1 + len(REPLICAS), _detail(chaos)
    for code, seconds in chaos.sigterms:
        assert code == 0 and seconds <= SHUTDOWN_LIMIT, _detail(chaos)
    assert not chaos.record.crashes, _detail(chaos)
    assert not chaos.single.logs.tracebacks, _detail(chaos)


def test_outbox_is_empty_at_the_end(chaos: HaReport) -> None:
    """Nothing is left waiting for Slack once the faults are over."""
    assert chaos.record.outbox_at_end == 0, _detail(chaos)
