"""Chaos: the real bot (a subprocess) against the simulator and the Slack stand-in while
Polaris and Slack fail, and the bot is SIGKILLed and SIGTERMed, on a compressed timescale.

One run (about 45 s) is shared by the tests below; each checks one promise against its
verdict (:mod:`chaos_accounting`). ``python -m bench.chaos`` runs the same, longer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chaos_accounting import SHUTDOWN_LIMIT, ChaosReport
from chaos_scenario import POST_IN_FLIGHT, Timing, run_chaos

pytestmark = pytest.mark.slow

#: Windows the scenario opens; a change to the scenario must change this on purpose.
EXPECTED_INCIDENTS = 16


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> ChaosReport:
    workdir: Path = tmp_path_factory.mktemp("chaos")
    report = asyncio.run(run_chaos(workdir, Timing(scale=1.0)))
    print(f"\nchaos run in {workdir}\n{report.markdown()}")
    return report


def _detail(report: ChaosReport) -> str:
    return "\n".join([report.markdown(), *report.problems()])


def test_every_window_is_one_expected_incident(chaos: ChaosReport) -> None:
    """The scenario ran every phase and opened the error windows it plans."""
    assert chaos.expected == EXPECTED_INCIDENTS
    assert all(i.window.closed is not None for i in chaos.incidents)


def test_no_incident_is_lost(chaos: ChaosReport) -> None:
    """Every error window got a top-level Slack post naming its job."""
    assert not chaos.lost, _detail(chaos)
    assert chaos.delivered == chaos.expected, _detail(chaos)


def test_no_incident_is_duplicated(chaos: ChaosReport) -> None:
    """No error window got two posts (bar the documented SIGKILL race)."""
    assert not chaos.duplicated, _detail(chaos)


def test_sigterm_with_a_post_in_flight_posts_it_once(chaos: ChaosReport) -> None:
    """A post in flight when SIGTERM comes is finished, not cancelled and re-sent."""
    mine = [i for i in chaos.incidents if i.window.note == POST_IN_FLIGHT]
    assert len(mine) == 1 and len(mine[0].posts) == 1, _detail(chaos)


def test_every_delivered_incident_is_resolved_once(chaos: ChaosReport) -> None:
    """Every delivered post was edited to RESOLVED, and at most once more after a kill."""
    assert not chaos.unresolved, _detail(chaos)
    assert chaos.resolves_delivered == chaos.delivered, _detail(chaos)
    kills = sum(1 for s in chaos.record.stops if s.how == "SIGKILL")
    assert chaos.repeated_edits <= kills, _detail(chaos)


def test_nothing_spurious_is_posted(chaos: ChaosReport) -> None:
    """No post about a healthy job, outside a window, or that fits no incident."""
    assert not chaos.spurious, _detail(chaos)


def test_meta_alerts_are_once_per_outage_and_resolved(chaos: ChaosReport) -> None:
    """At most one "cannot reach Polaris" alert per Polaris fault, each resolved."""
    assert not chaos.meta_over, _detail(chaos)
    assert chaos.meta_resolved == len(chaos.meta_posts), _detail(chaos)


def test_sigterm_exits_0_within_10_seconds(chaos: ChaosReport) -> None:
    """Every SIGTERM (mid-tick, and at the end) drained and exited 0 in time."""
    assert len(chaos.sigterms) == 3
    for code, seconds in chaos.sigterms:
        assert code == 0, _detail(chaos)
        assert seconds <= SHUTDOWN_LIMIT, _detail(chaos)


def test_bot_comes_back_after_every_restart(chaos: ChaosReport) -> None:
    """After each SIGKILL and SIGTERM the restarted bot was healthy again."""
    assert chaos.restarts == 4
    assert chaos.restarts_survived == chaos.restarts, _detail(chaos)


def test_outbox_is_empty_at_the_end(chaos: ChaosReport) -> None:
    """Nothing is left waiting for Slack once the faults are over."""
    assert chaos.record.outbox_at_end == 0, _detail(chaos)


def test_bot_logs_no_traceback(chaos: ChaosReport) -> None:
    """The bot's logs hold no traceback: no tick, delivery or shutdown crashed."""
    assert not chaos.logs.tracebacks, _detail(chaos)


def test_bot_never_exits_on_its_own(chaos: ChaosReport) -> None:
    """The bot never exited unless signalled: not even restarted while Slack was down."""
    assert not chaos.record.crashes, _detail(chaos)
