"""The poll loop: observe Polaris → evaluate rules → lifecycle → commit → wake delivery.

One tick observes Polaris (:mod:`watchdog.observe`: listings with the server-side filters
the rules need, metrics only for jobs some metric rule watches, lookups of jobs that left
their listing), judges each (rule, job) with the tick's single ``now``
(:mod:`watchdog.verdicts`), moves each
fingerprint through its lifecycle, applies silences, and commits the new states together
with the notifications they owe in one transaction. Delivery happens elsewhere
(:mod:`watchdog.outbox`), so a Slack outage never slows the watch.

Missing data is never a verdict: a failed listing leaves its rules' alerts untouched, a
failed metrics fetch leaves that job's metric alerts untouched, and a job that vanished
from a listing is looked up before its alerts resolve ("job no longer exists" on a 404).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from watchdog.alerts import Timing, Verdict, evolve
from watchdog.metrics import BotMetrics
from watchdog.notifications import (
    META_JOB,
    META_RULE,
    AlertState,
    Condition,
    JobFacts,
    Notification,
    Phase,
    Reason,
    RuleFacts,
    fingerprint,
)
from watchdog.observe import Observer
from watchdog.planning import Plan, plan
from watchdog.polaris import JobListing, PolarisClient
from watchdog.polaris_errors import PolarisAuthError, PolarisError
from watchdog.polaris_models import Job
from watchdog.reload import RulesHolder
from watchdog.rulesfile import Rule, RuleSet
from watchdog.samples import SampleBook, capacity_for
from watchdog.store import Store
from watchdog.verdicts import verdict_for

log = structlog.get_logger(__name__)

#: Evaluations between two yields to the event loop, so slash commands are acked promptly
#: even during a 5,000-job tick.
_YIELD_EVERY = 200
_META_FACTS = RuleFacts(
    name=META_RULE,
    kind="meta",
    severity="critical",
    description="The bot cannot get data from Polaris.",
)


@dataclass
class TickReport:
    now: float
    seconds: float = 0.0
    jobs: int = 0
    listings_failed: int = 0
    metrics_fetched: int = 0
    metrics_failed: int = 0
    lookups: int = 0
    evaluations: int = 0
    notifications: Counter[str] = field(default_factory=Counter)
    firing: int = 0
    error: str | None = None

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "failed"
        return "partial" if self.listings_failed or self.metrics_failed else "ok"


class Watcher:
    def __init__(
        self,
        *,
        client: PolarisClient,
        store: Store,
        rules: RulesHolder,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: BotMetrics | None = None,
        holder: str = "watchdog",
    ) -> None:
        self._observer = Observer(client)
        self._store = store
        self._rules = rules
        self._on_commit = on_commit
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        self._holder = holder
        self._alerts: dict[str, AlertState] = {}
        self._plan_cache: tuple[RuleSet, Plan] | None = None
        self.book = SampleBook(self._capacity(rules.current))
        self.last_tick_at: float | None = None
        self.last_data_at: float | None = None
        self._last_prune = 0.0
        self._forgotten: set[str] = set()  # jobs dropped from the book, still on disk
        self._failing: str | None = None
        self.idle = asyncio.Event()  # clear while a tick runs: shutdown waits for it
        self.idle.set()

    # ---- state -------------------------------------------------------------------------

    @staticmethod
    def _capacity(rules: RuleSet) -> int:
        return capacity_for(rules.max_window, rules.watch.interval)

    def _retention(self, rules: RuleSet) -> float:
        return rules.max_window + 3 * rules.watch.interval

    async def load(self, now: float) -> None:
        """Restore alert states and sample history saved by an earlier run."""
        self._alerts = {a.fingerprint: a for a in await self._store.load_alerts()}
        rules = self._rules.current
        # Slices of a few ticks: an hour of 10,000 series is ~1.2 M rows, too many to
        # hold at once next to the book they are loaded into.
        step = 10 * rules.watch.interval
        start, loaded = now - self._retention(rules), 0
        while start <= now:
            loaded += self.book.load(await self._store.load_samples(start, start + step))
            start += step
        log.info("watch.restored", alerts=len(self._alerts), samples=loaded)

    @property
    def alerts(self) -> dict[str, AlertState]:
        return self._alerts

    def _plan(self, rules: RuleSet) -> Plan:
        if self._plan_cache is None or self._plan_cache[0] is not rules:
            self._plan_cache = (rules, plan(rules.rules))
            self.book.resize(self._capacity(rules))
        return self._plan_cache[1]

    # ---- the tick ----------------------------------------------------------------------

    async def tick(self, now: float) -> TickReport:
        """One observe → evaluate → commit round at time ``now``."""
        started = time.perf_counter()
        rules = self._rules.current
        the_plan = self._plan(rules)
        report = TickReport(now=now)
        by_rule: dict[str, dict[str, AlertState]] = {}
        for state in self._alerts.values():
            by_rule.setdefault(state.rule, {})[state.job_id] = state
        seen = await self._observer.observe(rules, the_plan, self.book, now, by_rule)
        failures = seen.failures
        report.listings_failed = len(failures)
        report.jobs = len(seen.jobs)
        report.metrics_fetched = len(seen.metrics_ok)
        report.metrics_failed = seen.metrics_failed
        report.lookups = len(seen.looked_up)

        silences = [s for s in await self._store.list_silences() if s.active(now)]
        muted_rules = {s.target for s in silences if s.target_kind == "rule"}
        muted_jobs = {s.target for s in silences if s.target_kind == "job"}
        muted_alerts = {s.target for s in silences if s.target_kind == "alert"}

        upserts: list[AlertState] = []
        deletes: list[str] = []
        outgoing: list[Notification] = []

        def settle(
            rule: Rule | None,
            facts: RuleFacts,
            timing: Timing,
            prev: AlertState | None,
            verdict: Verdict,
        ) -> None:
            muted = (
                facts.name in muted_rules
                or verdict.job.job_id in muted_jobs
                or fingerprint(facts.name, verdict.job.job_id) in muted_alerts
            )
            step = evolve(
                prev,
                verdict,
                rule=facts.name,
                severity=facts.severity,
                timing=timing,
                now=now,
                muted=muted,
            )
            if step.state is None:
                if prev is not None:
                    deletes.append(prev.fingerprint)
                    del self._alerts[prev.fingerprint]
            elif step.state != prev:
                upserts.append(step.state)
                self._alerts[step.state.fingerprint] = step.state
            if step.reason is not None and step.announced is not None:
                outgoing.append(
                    Notification(
                        reason=step.reason,
                        alert=step.announced,
                        rule=facts,
                        channel=rule.channel if rule is not None else None,
                        mention=rule.mention
                        if rule is not None and step.reason is Reason.NEW
                        else None,
                    )
                )

        settle(
            None,
            _META_FACTS,
            Timing(for_=rules.watch.no_data_after),
            self._alerts.get(f"{META_RULE}/{META_JOB}"),
            self._meta_verdict(now, seen.results, failures),
        )

        evaluations = 0
        known = {rule.name for rule in rules.rules}
        for rule in rules.rules:
            index = the_plan.rule_queries.get(rule.name)
            states = by_rule.get(rule.name, {})
            if index is not None and seen.failed(index):
                continue  # no data for this rule: its alerts stay as they are
            facts = RuleFacts(
                name=rule.name,
                kind=rule.kind,
                severity=rule.severity,
                description=rule.description,
                runbook=rule.runbook,
            )
            timing = Timing.of(rule)
            candidates = seen.listed[index] if index is not None else {}
            for job in candidates.values():
                prev = states.get(job.id)
                verdict = verdict_for(rule, job, prev, self.book, now, seen.metrics_ok)
                if verdict is not None:
                    settle(rule, facts, timing, prev, verdict)
                evaluations += 1
                if evaluations % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            for job_id, state in states.items():
                if job_id in candidates or job_id in seen.unparsed:
                    continue
                found = seen.looked_up.get(job_id) if index is not None else None
                if found == "gone":
                    settle(
                        rule,
                        facts,
                        timing,
                        state,
                        Verdict(state.job, None, gone="job no longer exists"),
                    )
                elif isinstance(found, Job):
                    verdict = verdict_for(rule, found, state, self.book, now, seen.metrics_ok)
                    if verdict is not None:
                        settle(rule, facts, timing, state, verdict)
                elif index is None:
                    settle(
                        rule,
                        facts,
                        timing,
                        state,
                        Verdict(
                            state.job,
                            Condition(False),
                            clear_reason="the rule can no longer match any job",
                        ),
                    )
        report.evaluations = evaluations

        # Alerts of rules that a reload removed resolve with that reason.
        for state in [s for s in self._alerts.values() if s.rule not in known | {META_RULE}]:
            settle(
                None,
                RuleFacts(name=state.rule, kind="removed", severity=state.severity),
                Timing(),
                state,
                Verdict(state.job, None, gone="rule removed from the rules file"),
            )

        await self._store.append_samples(seen.rows)
        await self._store.commit(upserts=upserts, deletes=deletes, outbox=outgoing, now=now)
        if outgoing:
            self._on_commit()
        if not failures and the_plan.queries:
            before = self.book.jobs()
            self.book.retain(set(seen.targets))
            self._forgotten |= before - self.book.jobs()
        await self._prune(now, rules)

        report.notifications.update(n.reason.value for n in outgoing)
        firing = Counter(a.rule for a in self._alerts.values() if a.phase is Phase.FIRING)
        report.firing = sum(firing.values())
        report.seconds = time.perf_counter() - started
        self._observe(report, firing)
        return report

    def _meta_verdict(
        self, now: float, results: list[JobListing | PolarisError], failures: list[PolarisError]
    ) -> Verdict:
        facts = JobFacts(job_id=META_JOB, table=None, type="polaris")
        if results and len(failures) == len(results):
            since = self.last_data_at
            auth = next((f for f in failures if isinstance(f, PolarisAuthError)), None)
            what = "Polaris rejects the API key" if auth is not None else "cannot reach Polaris"
            when = (
                f" since {time.strftime('%H:%M:%S UTC', time.gmtime(since))}"
                if since is not None
                else ""
            )
            summary = f"{what}{when}: {(auth or failures[0])}"
            if self._failing is None:
                log.warning("watch.no_data", error=str(auth or failures[0]))
            self._failing = summary
            return Verdict(facts, Condition(True, summary=summary[:2000]))
        if self._failing is not None:
            log.info("watch.data_back")
            self._failing = None
        self.last_data_at = now
        return Verdict(facts, Condition(False), clear_reason="Polaris answers again")

    async def _prune(self, now: float, rules: RuleSet) -> None:
        if now - self._last_prune < 300:
            return
        self._last_prune = now
        gone = sorted(self._forgotten)
        self._forgotten.clear()
        await self._store.prune_samples(now - self._retention(rules), gone)

    def _observe(self, report: TickReport, firing: Counter[str]) -> None:
        if self._metrics is None:
            return
        self._metrics.ticks.labels(report.outcome).inc()
        self._metrics.tick_seconds.observe(report.seconds)
        self._metrics.jobs_watched.set(report.jobs)
        self._metrics.set_firing(dict(firing))
        for reason, count in report.notifications.items():
            self._metrics.notifications.labels(reason).inc(count)

    # ---- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``interval`` without drift; a slow tick skips, never bunches, ticks."""
        next_at = self._clock()
        failures = 0
        waiting_for_lease = False
        while True:
            interval = self._rules.current.watch.interval
            if await self._store.acquire_lease(self._holder, self._clock(), 3 * interval):
                if waiting_for_lease:
                    log.info("watch.lease_acquired", holder=self._holder)
                waiting_for_lease = False
                self.idle.clear()
                try:
                    report = await self.tick(next_at)
                    failures = failures + 1 if report.listings_failed else 0
                    log.debug(
                        "watch.tick",
                        jobs=report.jobs,
                        seconds=round(report.seconds, 3),
                        outcome=report.outcome,
                        firing=report.firing,
                    )
                except Exception:
                    failures += 1
                    log.exception("watch.tick_crashed")
                    if self._metrics is not None:
                        self._metrics.ticks.labels("failed").inc()
                finally:
                    self.idle.set()
            elif not waiting_for_lease:
                waiting_for_lease = True
                log.info("watch.standby", reason="another replica holds the leader lease")
            self.last_tick_at = self._clock()
            # Back off a little while Polaris fails, but never past two intervals: the
            # health check calls the loop dead after three.
            next_at += interval * (2 if failures >= 2 else 1)
            behind = self._clock() - next_at
            if behind > 0:
                skipped = math.ceil(behind / interval)
                log.warning(
                    "watch.overrun",
                    skipped_ticks=skipped,
                    hint="a tick took longer than [watch] interval: raise max_rate or "
                    "concurrency if Polaris allows, or lengthen the interval",
                )
                next_at += skipped * interval
            await self._sleep(next_at - self._clock())
