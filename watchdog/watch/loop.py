"""The poll loop: observe Polaris → evaluate rules → lifecycle → commit → wake delivery.

One tick observes Polaris (:mod:`watchdog.watch.observe`: listings with the server-side filters
the rules need, metrics only for jobs some metric rule watches, lookups of jobs that left
their listing), judges each (rule, job) with the tick's single ``now``
(:mod:`watchdog.watch.verdicts`), moves each
fingerprint through its lifecycle, applies silences, and commits the new states together
with the notifications they owe in one transaction. Delivery happens elsewhere
(:mod:`watchdog.deliver.outbox`), so a Slack outage never slows the watch.

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

from watchdog.domain.alerts import (
    DEFAULT_PROJECT,
    META_JOB,
    META_RULE,
    AlertState,
    Condition,
    JobFacts,
    Phase,
    RuleFacts,
    fingerprint,
)
from watchdog.errors import WatchdogError
from watchdog.metrics import BotMetrics
from watchdog.polaris.client import PolarisClient
from watchdog.polaris.errors import PolarisAuthError
from watchdog.rules.holder import RulesHolder
from watchdog.rules.ruleset import RuleSet
from watchdog.store import Fence, FencedOut, Store
from watchdog.watch.judge import Tally
from watchdog.watch.lifecycle import Timing, Verdict
from watchdog.watch.observe import Observation, Observer
from watchdog.watch.plan import Plan, plan
from watchdog.watch.samples import SampleBook, capacity_for, retention_for

log = structlog.get_logger(__name__)

_META_FACTS = RuleFacts(
    name=META_RULE,
    kind="meta",
    severity="critical",
    description="The bot cannot get data from Polaris.",
)
#: Share of failed metrics requests that counts as "Polaris gives no metrics".
_METRICS_OUTAGE = 0.9


class LeaseLost(WatchdogError):
    """Another replica took the lease during this tick: its results are dropped."""


@dataclass
class TickReport:
    now: float
    seconds: float = 0.0
    jobs: int = 0
    listings_failed: int = 0
    metrics_fetched: int = 0
    metrics_failed: int = 0
    metrics_skipped: int = 0
    lookups: int = 0
    evaluations: int = 0
    notifications: Counter[str] = field(default_factory=Counter)
    firing: int = 0
    error: str | None = None

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "failed"
        if self.listings_failed or self.metrics_failed or self.metrics_skipped:
            return "partial"
        return "ok"


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
        self._observer = Observer(client, on_progress=self._progress)
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
        self.last_progress_at: float | None = None  # any answer from Polaris, any commit
        self.last_data_at: float | None = None
        self.leader = False
        # The term of the project's lease we last held, and the fence while we hold it.
        # Single-project for now: the lease is the "default" project's.
        self._term: int | None = None
        self._fence: Fence | None = None
        self._stood_by = False
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
        return retention_for(rules.max_window, rules.watch.interval)

    def _progress(self) -> None:
        self.last_progress_at = self._clock()

    async def load(self, now: float) -> None:
        """Restore alert states and sample history saved by an earlier run (or by the
        replica that led before us)."""
        self._alerts = {a.fingerprint: a for a in await self._store.load_alerts(DEFAULT_PROJECT)}
        rules = self._rules.current
        self.book = SampleBook(max(self.book.capacity, self._capacity(rules)))
        # Slices of a few ticks: an hour of 10,000 series is ~1.2 M rows, too many to
        # hold at once next to the book they are loaded into.
        step = 10 * rules.watch.interval
        start, loaded = now - self._retention(rules), 0
        while start <= now:
            loaded += self.book.load(
                await self._store.load_samples(DEFAULT_PROJECT, start, start + step)
            )
            start += step
        log.info("watch.restored", alerts=len(self._alerts), samples=loaded)

    @property
    def alerts(self) -> dict[str, AlertState]:
        return self._alerts

    def fences(self) -> dict[str, Fence]:
        """The leases this replica holds, by project, for delivery; "" (coordinator
        items) goes with the first project's, which single-project mode always is."""
        if self._fence is None:
            return {}
        return {DEFAULT_PROJECT: self._fence, "": self._fence}

    async def _take_lease(self, interval: float) -> int | None:
        """Take or renew the project's lease; None while another replica holds it."""
        term = await self._store.acquire_lease(DEFAULT_PROJECT, self._holder, 3 * interval)
        self._fence = None if term is None else Fence(DEFAULT_PROJECT, term)
        return term

    def _plan(self, rules: RuleSet) -> Plan:
        if self._plan_cache is None or self._plan_cache[0] is not rules:
            self._plan_cache = (rules, plan(rules.rules))
            # Only ever grow: the points kept were spaced by the old interval, and a
            # shorter ring would cut history a window still needs.
            if self._capacity(rules) > self.book.capacity:
                self.book.resize(self._capacity(rules))
        return self._plan_cache[1]

    # ---- the tick ----------------------------------------------------------------------

    async def tick(self, now: float) -> TickReport:
        """One observe → judge → commit round at time ``now``, in two phases.

        Rules that need only the listings are judged and committed first, so an unhealthy
        job is announced without waiting for thousands of metrics requests; metric rules
        and the meta-alert follow once the metrics are in (or their deadline passed).
        """
        started = time.perf_counter()
        rules = self._rules.current
        the_plan = self._plan(rules)
        report = TickReport(now=now)
        by_rule: dict[str, dict[str, AlertState]] = {}
        for state in self._alerts.values():
            by_rule.setdefault(state.rule, {})[state.job_id] = state
        seen = await self._observer.listings(rules, the_plan, now, by_rule)
        tally = Tally(dict(self._alerts), await self._store.list_silences(), now)

        for rule in rules.rules:
            if not rule.metrics:
                index = the_plan.rule_queries.get(rule.name)
                await tally.judge(rule, index, seen, by_rule.get(rule.name, {}), self.book)
        tally.resolve_removed({rule.name for rule in rules.rules})
        await self._commit(tally, seen, report, rules)

        watch = rules.watch
        await self._observer.metrics(
            seen, self.book, now, within=max(2 * watch.interval, 2 * watch.timeout)
        )
        meta = self._alerts.get(fingerprint(DEFAULT_PROJECT, META_RULE, META_JOB))
        tally.settle(None, _META_FACTS, Timing(for_=watch.no_data_after), meta,
                     self._meta_verdict(now, seen))  # fmt: skip
        for rule in rules.rules:
            if rule.metrics:
                index = the_plan.rule_queries.get(rule.name)
                await tally.judge(rule, index, seen, by_rule.get(rule.name, {}), self.book)
        await self._commit(tally, seen, report, rules)
        if not seen.failures and the_plan.queries:
            # Dropped from memory now, from the store at the next prune.
            self._forgotten.update(self.book.expire(seen.targets, now, self._retention(rules)))
        await self._prune(now, rules)

        report.listings_failed = len(seen.failures)
        report.jobs = len(seen.jobs)
        report.metrics_fetched = len(seen.metrics_ok)
        report.metrics_failed = seen.metrics_failed
        report.metrics_skipped = seen.metrics_skipped
        report.lookups = len(seen.looked_up)
        report.evaluations = tally.evaluations
        firing = Counter(a.rule for a in self._alerts.values() if a.phase is Phase.FIRING)
        report.firing = sum(firing.values())
        report.seconds = time.perf_counter() - started
        self._observe(report, firing)
        return report

    async def _commit(
        self, tally: Tally, seen: Observation, report: TickReport, rules: RuleSet
    ) -> None:
        """Write what the tally decided (and this tick's samples), then adopt it."""
        term = await self._take_lease(rules.watch.interval)
        if term is None:
            raise LeaseLost("another replica holds the lease")
        if self._term is not None and term != self._term:
            # Taken over since we loaded (by us again, after it lapsed): another replica
            # may have written in between, so this tick's view is stale. Reload first.
            self._fence = None
            raise LeaseLost(f"the lease moved from term {self._term} to {term}")
        self._term = term
        upserts, deletes, outgoing = tally.take()
        rows, seen.rows = seen.rows, []
        await self._store.append_samples(DEFAULT_PROJECT, rows)
        try:
            await self._store.commit(
                fence=Fence(DEFAULT_PROJECT, term),
                upserts=upserts,
                deletes=deletes,
                outbox=outgoing,
                now=tally.now,
            )
        except FencedOut as exc:
            self._fence = None
            raise LeaseLost(str(exc)) from None
        self._alerts = dict(tally.alerts)  # only now: the store has it
        self._progress()
        report.notifications.update(n.reason.value for n in outgoing)
        if outgoing:
            self._on_commit()

    def _meta_verdict(self, now: float, seen: Observation) -> Verdict:
        facts = JobFacts(job_id=META_JOB, table=None, type="polaris")
        failures = seen.failures
        tried = len(seen.targets) - seen.metrics_skipped
        since = self.last_data_at
        when = f" since {time.strftime('%H:%M:%S UTC', time.gmtime(since))}" if since else ""
        summary: str | None = None
        if seen.results and len(failures) == len(seen.results):
            auth = next((f for f in failures if isinstance(f, PolarisAuthError)), None)
            what = "Polaris rejects the API key" if auth is not None else "cannot reach Polaris"
            summary = f"{what}{when}: {auth or failures[0]}"
        elif tried > 0 and seen.metrics_failed >= max(1, _METRICS_OUTAGE * tried):
            summary = (
                f"Polaris lists jobs but does not answer their metrics{when} "
                f"({seen.metrics_failed} of {tried} failed): metric rules are blind"
            )
        if summary is not None:
            if self._failing is None:
                log.warning("watch.no_data", problem=summary)
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
        await self._store.prune_samples(DEFAULT_PROJECT, now - self._retention(rules), gone)

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

    async def _lead(self, interval: float) -> bool:
        """Take or renew the lease; on taking it over, reload what the previous holder
        left in the store (our own view of it is stale)."""
        try:
            term = await self._take_lease(interval)
        except Exception:
            log.exception("watch.lease_failed")  # a store hiccup: not leader this round
            self._fence = None
            term = None
        won = term is not None
        moved = won and self._term is not None and term != self._term
        if won and ((not self.leader and self._stood_by) or moved):
            log.info("watch.lease_acquired", holder=self._holder, term=term)
            await self.load(self._clock())
        if won:
            self._term = term
        elif not won and (self.leader or not self._stood_by):
            log.info("watch.standby", reason="another replica holds the leader lease")
        self._stood_by |= not won
        self.leader = won
        return won

    async def run(self) -> None:
        """Tick every ``interval`` without drift; a slow tick skips, never bunches, ticks."""
        next_at = self._clock()
        failures = 0
        while True:
            interval = self._rules.current.watch.interval
            self.idle.clear()
            try:
                if await self._lead(interval):
                    report = await self.tick(next_at)
                    failures = failures + 1 if report.listings_failed else 0
                    log.debug(
                        "watch.tick",
                        jobs=report.jobs,
                        seconds=round(report.seconds, 3),
                        outcome=report.outcome,
                        firing=report.firing,
                    )
            except LeaseLost as exc:
                log.warning("watch.lease_lost", holder=self._holder, reason=str(exc))
                self.leader = False
                self._fence = None
            except Exception:
                failures += 1
                log.exception("watch.tick_crashed")
                if self._metrics is not None:
                    self._metrics.ticks.labels("failed").inc()
            finally:
                self.idle.set()
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
