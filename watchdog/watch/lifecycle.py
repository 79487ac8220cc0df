"""The alert lifecycle of one fingerprint (rule, job), as pure functions.

inactive → pending (while ``for`` has not elapsed) → firing → resolved. ``keep_firing_for``
holds a firing alert through short gaps so a flapping job pages once, not every time it
dips. :func:`evolve` takes the previous state and this tick's verdict and returns the state
to keep, whether to notify, and why (:class:`~watchdog.domain.alerts.Reason`). No I/O and
no clock reads: ``now`` comes from the tick.

Notification rules in one place:
- NEW when a firing alert has not been announced and is not muted (by a silence or a
  maintenance window) — this also announces alerts that fired while muted once the
  silence ends or the window closes;
- ESCALATE once, when an announced alert nobody acknowledged is still firing the rule's
  ``escalate.after`` after its first post;
- REPEAT when the rule's ``repeat`` is due (interval × backoff^n, capped) and nobody
  acknowledged the incident;
- CHANGED when health or execution status changed since the last announcement
  (acknowledged or not: the owner wants to know);
- RESOLVED only for incidents that were announced (there is no message to edit otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from watchdog.domain.alerts import DEFAULT_PROJECT, AlertState, Condition, JobFacts, Phase, Reason


@dataclass(frozen=True, slots=True)
class Timing:
    """The lifecycle knobs of a rule."""

    for_: float = 0.0
    keep_firing_for: float = 0.0
    repeat_every: float | None = None
    repeat_backoff: float = 1.0
    repeat_max: float | None = None
    escalate_after: float | None = None

    @classmethod
    def of(cls, rule: Any) -> Timing:
        repeat = getattr(rule, "repeat", None)
        escalate = getattr(rule, "escalate", None)
        return cls(
            for_=rule.for_,
            keep_firing_for=rule.keep_firing_for,
            repeat_every=repeat.every if repeat else None,
            repeat_backoff=repeat.backoff if repeat else 1.0,
            repeat_max=repeat.max if repeat else None,
            escalate_after=escalate.after if escalate else None,
        )

    def repeat_after(self, repeats_done: int) -> float | None:
        """Delay before the next repeat when ``repeats_done`` repeats were sent."""
        if self.repeat_every is None:
            return None
        delay = self.repeat_every * self.repeat_backoff**repeats_done
        return min(delay, self.repeat_max) if self.repeat_max is not None else delay


@dataclass(frozen=True, slots=True)
class Verdict:
    """This tick's word on a fingerprint.

    ``condition`` None means "unknown" (no data): nothing changes. ``gone`` resolves a
    firing alert at once, bypassing ``keep_firing_for`` (the job is deleted or canceled).
    ``clear_reason`` says why an inactive condition resolves.
    """

    job: JobFacts
    condition: Condition | None
    gone: str | None = None
    clear_reason: str = "condition cleared"


@dataclass(frozen=True, slots=True)
class Step:
    """What :func:`evolve` decided: the state to store (None: forget the fingerprint),
    and the reason to notify with (None: stay quiet). ``announced`` is the state as the
    notification should show it."""

    state: AlertState | None
    reason: Reason | None
    announced: AlertState | None = None


def _start(
    rule: str,
    severity: str,
    verdict: Verdict,
    condition: Condition,
    now: float,
    timing: Timing,
    project: str,
) -> AlertState:
    state = AlertState(
        project=project,
        rule=rule,
        job_id=verdict.job.job_id,
        phase=Phase.PENDING,
        severity=severity,
        since=now,
        last_active=now,
        last_eval=now,
        job=verdict.job,
        condition=condition,
    )
    return replace(state, phase=Phase.FIRING, fired_at=now) if timing.for_ <= 0 else state


def transition(
    prev: AlertState | None,
    verdict: Verdict,
    *,
    rule: str,
    severity: str,
    timing: Timing,
    now: float,
    project: str = DEFAULT_PROJECT,
) -> AlertState | None:
    """The lifecycle state after this tick (before any notification bookkeeping)."""
    cond = verdict.condition
    if verdict.gone is not None:
        if prev is None or prev.phase is Phase.PENDING:
            return None
        if prev.phase is Phase.FIRING:
            return replace(
                prev,
                phase=Phase.RESOLVED,
                resolved_at=now,
                last_eval=now,
                resolve_reason=verdict.gone,
                job=verdict.job,
            )
        return prev
    if cond is None:
        return prev
    if cond.active:
        if prev is None or prev.phase is Phase.RESOLVED:
            return _start(rule, severity, verdict, cond, now, timing, project)
        updated = replace(
            prev, last_active=now, last_eval=now, job=verdict.job, condition=cond, severity=severity
        )
        if prev.phase is Phase.PENDING and now - prev.since >= timing.for_:
            return replace(updated, phase=Phase.FIRING, fired_at=now)
        return updated
    if prev is None or prev.phase is Phase.PENDING:
        return None
    if prev.phase is Phase.FIRING:
        if now - prev.last_active < timing.keep_firing_for:
            # Held: keep the job facts of the last active tick, or every dip of a
            # flapping job would read as a change worth a thread reply.
            return replace(prev, last_eval=now)
        return replace(
            prev,
            phase=Phase.RESOLVED,
            resolved_at=now,
            last_eval=now,
            resolve_reason=verdict.clear_reason,
            job=verdict.job,
        )
    return prev


def decide(
    state: AlertState | None, *, muted: bool, now: float, escalate_after: float | None = None
) -> Reason | None:
    """Whether to notify about ``state`` now, and why. Pure."""
    if state is None:
        return None
    if state.phase is Phase.RESOLVED:
        return Reason.RESOLVED if state.posted else None
    if state.phase is not Phase.FIRING or muted:
        return None
    if not state.posted:
        return Reason.NEW
    owned = state.acked_by is not None
    if escalate_after is not None and not owned and state.escalated_at is None:
        posted = state.posted_at or state.fired_at or state.since
        if now - posted >= escalate_after:
            return Reason.ESCALATE
    if not owned and state.next_repeat is not None and now >= state.next_repeat:
        return Reason.REPEAT
    if state.notified_signature is not None and state.job.signature != state.notified_signature:
        return Reason.CHANGED
    return None


def mark_notified(state: AlertState, reason: Reason, timing: Timing, now: float) -> AlertState:
    """Record that ``reason`` was handed on, and schedule the next repeat."""
    if reason is Reason.NEW:
        delay = timing.repeat_after(0)
        return replace(
            state,
            posted=True,
            posted_at=now,
            repeats=0,
            next_repeat=now + delay if delay is not None else None,
            notified_signature=state.job.signature,
        )
    if reason is Reason.REPEAT:
        done = state.repeats + 1
        delay = timing.repeat_after(done)
        return replace(
            state,
            repeats=done,
            next_repeat=now + delay if delay is not None else None,
            notified_signature=state.job.signature,
        )
    if reason is Reason.CHANGED:
        return replace(state, notified_signature=state.job.signature)
    if reason is Reason.ESCALATE:
        return replace(state, escalated_at=now)
    return state


def evolve(
    prev: AlertState | None,
    verdict: Verdict,
    *,
    rule: str,
    severity: str,
    timing: Timing,
    now: float,
    muted: bool = False,
    project: str = DEFAULT_PROJECT,
) -> Step:
    """One tick of one fingerprint: transition, decide, and book-keep."""
    if verdict.condition is None and verdict.gone is None:
        # No data: nothing changes and nothing is said (not even a due repeat, which
        # would claim the alert is still firing when nobody knows).
        return Step(prev, None)
    state = transition(
        prev, verdict, rule=rule, severity=severity, timing=timing, now=now, project=project
    )
    reason = decide(state, muted=muted, now=now, escalate_after=timing.escalate_after)
    if state is None:
        return Step(None, None)
    if state.phase is Phase.RESOLVED:
        # A resolved incident is finished: forget it once its resolve is handed on.
        return Step(None, reason, state if reason else None)
    if reason is None:
        return Step(state, None)
    return Step(mark_notified(state, reason, timing, now), reason, state)
