"""One tick's judgement: verdicts through the lifecycle into states and notifications.

A :class:`Tally` works on a staged copy of the alert states. For every rule it judges the
jobs of the rule's listing and the jobs that left it, moves each fingerprint through its
lifecycle (:func:`watchdog.watch.lifecycle.evolve`), applies silences, maintenance windows
and acknowledgements, and collects what changed and what to announce. Nothing is written
here: the watch loop commits a tally's changes and only then makes the staged states its
own, so a failed commit never leaves the bot believing it announced something it did not.

:func:`judge_rules` is the whole judgement of one tick over what the tick observed; the
watch loop and ``test-rules`` both call it, so a rules test runs the production code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from watchdog.domain.alerts import (
    DEFAULT_PROJECT,
    META_RULE,
    AlertState,
    Condition,
    JobFacts,
    Reason,
    RuleFacts,
    fingerprint,
)
from watchdog.domain.oncall import Ack, with_ack
from watchdog.domain.outgoing import Notification
from watchdog.domain.samples import SampleBook
from watchdog.polaris.models import Job
from watchdog.rules.maintenance import MaintenanceWindow, open_windows
from watchdog.rules.model import Rule
from watchdog.store import Silence
from watchdog.watch.lifecycle import Timing, Verdict, evolve
from watchdog.watch.observe import Observation
from watchdog.watch.plan import Plan
from watchdog.watch.verdicts import verdict_for

#: Evaluations between two yields to the event loop, so slash commands are acked promptly
#: even during a 5,000-job tick.
_YIELD_EVERY = 200


def facts_of(rule: Rule) -> RuleFacts:
    return RuleFacts(
        name=rule.name,
        kind=rule.kind,
        severity=rule.severity,
        description=rule.description,
        runbook=rule.runbook,
    )


class Tally:
    def __init__(
        self,
        alerts: dict[str, AlertState],
        silences: Sequence[Silence],
        now: float,
        project: str = DEFAULT_PROJECT,
        channel: str | None = None,
        *,
        acks: Collection[Ack] = (),
        windows: Sequence[MaintenanceWindow] = (),
    ) -> None:
        self.project = project
        self.channel = channel  # the project's channel, where a rule names none
        self.alerts = alerts  # staged: the tick's view, adopted after a commit
        self.now = now
        self.upserts: list[AlertState] = []
        self.deletes: list[str] = []
        self.outgoing: list[Notification] = []
        self.committed: list[Notification] = []  # taken and written (the loop fills it)
        self.evaluations = 0
        active = [s for s in silences if s.active(now)]
        self._muted = {
            kind: {s.target for s in active if s.target_kind == kind}
            for kind in ("rule", "job", "alert")
        }
        self._windows = open_windows(windows, now)
        self._take_acks({ack.incident_id: ack for ack in acks})

    def _take_acks(self, acks: Mapping[str, Ack]) -> None:
        """Copy the acknowledgements as they stand into the staged states (an unack
        clears one), before anything is judged: the lifecycle reads them."""
        for fp, state in list(self.alerts.items()):
            acked = with_ack(state, acks.get(state.incident_id))
            if acked is not state:
                self.alerts[fp] = acked
                self.upserts.append(acked)

    def _held(self, rule: str, job: JobFacts) -> bool:
        """Whether an open maintenance window holds back ``rule``'s alerts on ``job``."""
        return any(window.covers(rule, self.project, job) for window in self._windows)

    def take(self) -> tuple[list[AlertState], list[str], list[Notification]]:
        """What changed since the last take: to commit."""
        taken = (self.upserts, self.deletes, self.outgoing)
        self.upserts, self.deletes, self.outgoing = [], [], []
        return taken

    def settle(
        self,
        rule: Rule | None,
        facts: RuleFacts,
        timing: Timing,
        prev: AlertState | None,
        verdict: Verdict,
    ) -> None:
        """One fingerprint's step: its new state, and the notification it owes, if any."""
        job_id = verdict.job.job_id
        muted = (
            facts.name in self._muted["rule"]
            or job_id in self._muted["job"]
            or fingerprint(self.project, facts.name, job_id) in self._muted["alert"]
            or self._held(facts.name, verdict.job)
        )
        step = evolve(
            prev,
            verdict,
            rule=facts.name,
            severity=facts.severity,
            timing=timing,
            now=self.now,
            muted=muted,
            project=self.project,
        )
        if step.state is None:
            if prev is not None:
                self.deletes.append(prev.fingerprint)
                del self.alerts[prev.fingerprint]
        elif step.state != prev:
            self.upserts.append(step.state)
            self.alerts[step.state.fingerprint] = step.state
        if step.reason is not None and step.announced is not None:
            mention = rule.mention if rule is not None and step.reason is Reason.NEW else None
            escalate = rule.escalate if rule is not None else None
            if step.reason is not Reason.ESCALATE:
                escalate = None
            elif escalate is not None:
                mention = escalate.mention
            self.outgoing.append(
                Notification(
                    reason=step.reason,
                    alert=step.announced,
                    rule=facts,
                    channel=(rule.channel if rule is not None else None) or self.channel,
                    mention=mention,
                    escalate_channel=escalate.channel if escalate is not None else None,
                )
            )

    async def judge(
        self,
        rule: Rule,
        index: int | None,
        seen: Observation,
        states: Mapping[str, AlertState],
        book: SampleBook,
        sampled: Mapping[str, float],
    ) -> None:
        """Judge ``rule`` on the jobs of its listing (``index`` in the plan) and on the
        jobs with live alerts that left it. A failed listing changes nothing."""
        if index is not None and seen.failed(index):
            return  # no data for this rule: its alerts stay as they are
        facts, timing, now, ok = facts_of(rule), Timing.of(rule), self.now, sampled
        candidates = seen.listed[index] if index is not None else {}
        for job in candidates.values():
            prev = states.get(job.id)
            verdict = verdict_for(rule, job, prev, book, now, ok)
            if verdict is not None:
                self.settle(rule, facts, timing, prev, verdict)
            self.evaluations += 1
            if self.evaluations % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for job_id, state in states.items():
            if job_id in candidates or job_id in seen.unparsed:
                continue
            found = seen.looked_up.get(job_id) if index is not None else None
            if found == "gone":
                gone = Verdict(state.job, None, gone="job no longer exists")
                self.settle(rule, facts, timing, state, gone)
            elif isinstance(found, Job):
                verdict = verdict_for(rule, found, state, book, now, ok)
                if verdict is not None:
                    self.settle(rule, facts, timing, state, verdict)
            elif index is None:
                reason = "the rule can no longer match any job"
                verdict = Verdict(state.job, Condition(False), clear_reason=reason)
                self.settle(rule, facts, timing, state, verdict)

    def resolve_removed(self, known: set[str]) -> None:
        """Alerts of rules that a reload removed resolve with that reason."""
        known = known | {META_RULE}
        for state in [s for s in self.alerts.values() if s.rule not in known]:
            facts = RuleFacts(name=state.rule, kind="removed", severity=state.severity)
            verdict = Verdict(state.job, None, gone="rule removed from the rules file")
            self.settle(None, facts, Timing(), state, verdict)


async def judge_rules(
    tally: Tally,
    rules: Sequence[Rule],
    plan: Plan,
    seen: Observation,
    book: SampleBook,
    sampled: Mapping[str, float],
) -> None:
    """Judge ``rules`` into ``tally``: each on the jobs of its listing (in ``plan``) and on
    its alerting jobs that left it. ``sampled`` maps the jobs whose metrics are fresh to
    when they were fetched. (Alerts of rules no longer in force are resolved by
    :meth:`Tally.resolve_removed`, once per tick.)"""
    by_rule: dict[str, dict[str, AlertState]] = {}
    for state in tally.alerts.values():
        by_rule.setdefault(state.rule, {})[state.job_id] = state
    for rule in rules:
        index = plan.rule_queries.get(rule.name)
        await tally.judge(rule, index, seen, by_rule.get(rule.name, {}), book, sampled)
