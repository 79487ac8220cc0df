"""This tick's verdict on one (rule, job): the bridge from evaluation to the lifecycle.

Pure, and shared by the watch loop and ``test-rules`` so both judge a job the same way:
a job that stopped matching the rule clears its alert, a canceled job resolves it as
gone, missing metrics are "unknown" (nothing changes), and otherwise the rule's
evaluator decides.
"""

from __future__ import annotations

from collections.abc import Mapping

from watchdog.domain.alerts import AlertState, Condition, JobFacts, Phase
from watchdog.domain.samples import SampleBook
from watchdog.polaris.models import Job
from watchdog.rules.evaluate import evaluate, matches, needs_samples
from watchdog.rules.model import Rule
from watchdog.watch.lifecycle import Verdict


def verdict_for(
    rule: Rule,
    job: Job,
    state: AlertState | None,
    book: SampleBook,
    now: float,
    sampled: Mapping[str, float],
) -> Verdict | None:
    """The verdict for (rule, job) at ``now``; None when there is nothing to do.

    ``sampled`` holds, for the jobs whose metrics are fresh, when they were last fetched:
    a rule that needs samples judges them as of that time (the sweep's real timestamp),
    and says "unknown" for jobs without fresh metrics.
    """
    # JobFacts are built only for a verdict: most (rule, job) pairs of a tick have none,
    # and building them for every pair was a quarter of the evaluation's cost.
    if not matches(rule, job, now, check_age=state is None):
        if state is None:
            return None
        return Verdict(
            JobFacts.from_job(job),
            Condition(False),
            clear_reason="the job no longer matches the rule",
        )
    if job.execution_status == "canceled" and rule.kind != "execution":
        if state is None:
            return None
        return Verdict(JobFacts.from_job(job), None, gone="job canceled")
    at = now
    if needs_samples(rule, job):
        fetched = sampled.get(job.id)
        if fetched is None:
            return Verdict(JobFacts.from_job(job), None)  # metrics unknown: change nothing
        at = fetched
    firing = state is not None and state.phase is Phase.FIRING
    condition = evaluate(rule, job, book, at, firing=firing)
    if condition is None or (not condition.active and state is None):
        return None if state is None else Verdict(JobFacts.from_job(job), condition)
    return Verdict(JobFacts.from_job(job), condition, clear_reason=clear_reason(rule, job))


def clear_reason(rule: Rule, job: Job) -> str:
    """Why an alert of ``rule`` resolves when its condition no longer holds for ``job``."""
    if rule.kind == "health":
        return f"health is {job.health_status or 'unknown'} again"
    if rule.kind == "execution":
        return f"execution status is now {job.execution_status}"
    return "back within the threshold"
