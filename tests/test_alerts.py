"""The alert lifecycle as pure functions: pending, firing, holding, resolving, notifying."""

from __future__ import annotations

from dataclasses import replace

from harness import START

from watchdog.domain.alerts import AlertState, Condition, JobFacts, Phase, Reason
from watchdog.watch.lifecycle import Step, Timing, Verdict, decide, evolve, transition

JOB = "00000001-0000-4000-8000-000000000001"
ERROR = JobFacts(
    job_id=JOB,
    table="clicks",
    type="streaming",
    execution_status="running",
    health_status="error",
    health_code="internal_error",
    health_message="boom",
)
OK = replace(ERROR, health_status="ok", health_code=None, health_message="")
ACTIVE = Verdict(ERROR, Condition(True, summary="health error: internal_error"))
QUIET = Verdict(OK, Condition(False), clear_reason="health is ok again")
UNKNOWN = Verdict(ERROR, None)


class Lifecycle:
    """One fingerprint driven tick by tick, keeping what evolve() says to keep."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.state: AlertState | None = None
        self.sent: list[tuple[float, Reason]] = []

    def at(self, t: float, verdict: Verdict, *, muted: bool = False) -> Step:
        step = evolve(
            self.state,
            verdict,
            rule="job-unhealthy",
            severity="critical",
            timing=self.timing,
            now=START + t,
            muted=muted,
        )
        self.state = step.state
        if step.reason is not None:
            self.sent.append((t, step.reason))
        return step

    @property
    def reasons(self) -> list[Reason]:
        return [reason for _, reason in self.sent]


def test_pending_turns_firing_once_for_has_elapsed() -> None:
    """With `for = 60s` an active condition is pending until 60 s have passed, then fires."""
    life = Lifecycle(Timing(for_=60))
    life.at(0, ACTIVE)
    assert life.state is not None and life.state.phase is Phase.PENDING
    life.at(30, ACTIVE)
    assert life.state.phase is Phase.PENDING and life.sent == []
    step = life.at(60, ACTIVE)
    assert step.state is not None and step.state.phase is Phase.FIRING
    assert step.state.fired_at == START + 60 and step.state.since == START
    assert life.sent == [(60, Reason.NEW)]


def test_active_condition_without_for_fires_at_once() -> None:
    """A rule without `for` fires, and announces, on the first tick its condition holds."""
    life = Lifecycle(Timing())
    step = life.at(0, ACTIVE)
    assert step.reason is Reason.NEW
    assert step.announced is not None and step.announced.phase is Phase.FIRING
    assert step.state is not None and step.state.posted


def test_pending_that_clears_is_forgotten_silently() -> None:
    """A condition that clears before `for` elapsed leaves no state and sends nothing."""
    life = Lifecycle(Timing(for_=60))
    life.at(0, ACTIVE)
    step = life.at(30, QUIET)
    assert step == Step(None, None)
    life.at(60, ACTIVE)  # starts over: the pending clock restarts
    assert life.state is not None and life.state.phase is Phase.PENDING
    assert life.state.since == START + 60


def test_keep_firing_for_holds_a_firing_alert_through_a_dip() -> None:
    """A dip shorter than keep_firing_for neither resolves nor notifies."""
    life = Lifecycle(Timing(keep_firing_for=90))
    life.at(0, ACTIVE)
    life.at(30, QUIET)
    life.at(60, QUIET)
    assert life.state is not None and life.state.phase is Phase.FIRING
    assert life.reasons == [Reason.NEW]


def test_flapping_job_pages_once() -> None:
    """A job flapping between error and ok faster than keep_firing_for is one page, no noise."""
    life = Lifecycle(Timing(keep_firing_for=90))
    for t in range(0, 600, 30):
        life.at(t, ACTIVE if (t // 30) % 2 == 0 else QUIET)
    assert life.reasons == [Reason.NEW]
    assert life.state is not None and life.state.phase is Phase.FIRING


def test_resolves_once_quiet_for_keep_firing_for() -> None:
    """After keep_firing_for of quiet the alert resolves, says why, and is forgotten."""
    life = Lifecycle(Timing(keep_firing_for=60))
    life.at(0, ACTIVE)
    life.at(30, QUIET)
    step = life.at(60, QUIET)
    assert step.reason is Reason.RESOLVED
    assert step.state is None
    assert step.announced is not None
    assert step.announced.phase is Phase.RESOLVED
    assert step.announced.resolve_reason == "health is ok again"
    assert step.announced.resolved_at == START + 60 and step.announced.fired_at == START


def test_without_keep_firing_for_first_quiet_tick_resolves() -> None:
    """keep_firing_for = 0: the first quiet verdict resolves a firing alert."""
    life = Lifecycle(Timing())
    life.at(0, ACTIVE)
    assert life.at(30, QUIET).reason is Reason.RESOLVED
    assert life.state is None


def test_new_is_sent_only_when_not_muted_and_not_yet_posted() -> None:
    """Muted: no NEW; once posted: no second NEW however long it fires."""
    life = Lifecycle(Timing())
    assert life.at(0, ACTIVE, muted=True).reason is None
    assert life.state is not None and not life.state.posted
    assert life.at(30, ACTIVE).reason is Reason.NEW
    for t in range(60, 600, 30):
        assert life.at(t, ACTIVE).reason is None
    assert life.reasons == [Reason.NEW]


def test_silence_ending_while_firing_announces_new_then() -> None:
    """An alert that fired during a silence is announced as NEW the tick the silence ends."""
    life = Lifecycle(Timing())
    for t in (0, 30, 60):
        life.at(t, ACTIVE, muted=True)
    assert life.sent == []
    step = life.at(90, ACTIVE, muted=False)
    assert step.reason is Reason.NEW
    assert step.announced is not None and step.announced.fired_at == START  # fired back then


def test_repeat_follows_every_times_backoff_capped_by_max() -> None:
    """REPEAT at every, every·backoff, every·backoff², … never longer apart than max."""
    life = Lifecycle(Timing(repeat_every=60, repeat_backoff=2, repeat_max=300))
    for t in range(0, 1500, 10):
        life.at(t, ACTIVE)
    repeats = [t for t, reason in life.sent if reason is Reason.REPEAT]
    # NEW at 0; then +60, +120, +240, +300 (capped), +300, ...
    assert repeats == [60, 180, 420, 720, 1020, 1320]
    assert life.sent[0] == (0, Reason.NEW)


def test_repeat_waits_while_muted() -> None:
    """A due repeat is not sent while the alert is muted."""
    life = Lifecycle(Timing(repeat_every=60))
    life.at(0, ACTIVE)
    assert life.at(60, ACTIVE, muted=True).reason is None
    assert life.at(70, ACTIVE).reason is Reason.REPEAT


def test_changed_only_when_health_code_changes() -> None:
    """New counter values are not news; a different health code is, once."""
    life = Lifecycle(Timing())
    life.at(0, ACTIVE)
    busier = Verdict(ERROR, Condition(True, summary="health error (again)", value=5.0))
    assert life.at(30, busier).reason is None
    other = replace(ERROR, health_code="could_not_connect_to_source", health_message="gone")
    step = life.at(60, Verdict(other, Condition(True, summary="health error: other")))
    assert step.reason is Reason.CHANGED
    assert step.announced is not None and step.announced.job.health_code == other.health_code
    assert life.at(90, Verdict(other, Condition(True))).reason is None


def test_dip_held_by_keep_firing_for_sends_no_changed() -> None:
    """While keep_firing_for holds an alert through a healthy dip, no CHANGED reply is sent."""
    life = Lifecycle(Timing(keep_firing_for=120))
    life.at(0, ACTIVE)
    assert life.at(30, QUIET).reason is None
    assert life.at(60, ACTIVE).reason is None
    assert life.reasons == [Reason.NEW]


def test_resolved_is_sent_only_for_posted_incidents() -> None:
    """An incident muted all its life resolves without a word (there is nothing to edit)."""
    life = Lifecycle(Timing())
    life.at(0, ACTIVE, muted=True)
    assert life.at(30, QUIET, muted=True) == Step(None, None)
    state = transition(None, ACTIVE, rule="r", severity="warning", timing=Timing(), now=START)
    assert state is not None
    resolved = replace(state, phase=Phase.RESOLVED, resolved_at=START)
    assert decide(resolved, muted=False, now=START) is None
    assert decide(replace(resolved, posted=True), muted=False, now=START) is Reason.RESOLVED


def test_gone_resolves_at_once_bypassing_keep_firing_for() -> None:
    """A deleted or canceled job resolves on the spot, with the reason given."""
    life = Lifecycle(Timing(keep_firing_for=3600))
    life.at(0, ACTIVE)
    step = life.at(30, Verdict(ERROR, None, gone="job no longer exists"))
    assert step.reason is Reason.RESOLVED and step.state is None
    assert step.announced is not None
    assert step.announced.resolve_reason == "job no longer exists"


def test_gone_forgets_a_pending_alert_silently() -> None:
    """A pending alert of a job that is gone is dropped, no notification."""
    life = Lifecycle(Timing(for_=300))
    life.at(0, ACTIVE)
    assert life.at(30, Verdict(ERROR, None, gone="job canceled")) == Step(None, None)


def test_unknown_condition_changes_nothing() -> None:
    """No data (condition None) neither fires, resolves, repeats nor advances pending."""
    firing = Lifecycle(Timing(repeat_every=60))
    firing.at(0, ACTIVE)
    before = firing.state
    for t in range(30, 600, 30):
        assert firing.at(t, UNKNOWN) == Step(before, None)
    assert firing.reasons == [Reason.NEW]
    assert firing.at(600, ACTIVE).reason is Reason.REPEAT  # data again: the overdue repeat

    pending = Lifecycle(Timing(for_=60))
    pending.at(0, ACTIVE)
    for t in (60, 120, 600):
        assert pending.at(t, UNKNOWN).reason is None
    assert pending.state is not None and pending.state.phase is Phase.PENDING
    assert Lifecycle(Timing()).at(0, UNKNOWN) == Step(None, None)


def test_refiring_after_resolve_is_a_new_incident() -> None:
    """Firing again after a resolve announces NEW with a fresh incident id."""
    life = Lifecycle(Timing())
    first = life.at(0, ACTIVE).announced
    life.at(30, QUIET)
    second = life.at(60, ACTIVE).announced
    assert life.reasons == [Reason.NEW, Reason.RESOLVED, Reason.NEW]
    assert first is not None and second is not None
    assert first.incident_id != second.incident_id
