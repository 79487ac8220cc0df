"""The watch loop of one Polaris project: list, judge, commit — every interval, on time.

A :class:`Watcher` runs while this replica holds its project's lease (the fleet,
:mod:`watchdog.watch.fleet`, takes and renews leases and starts and stops watchers). Each
tick lists the jobs the rules can match and judges every rule
(:func:`watchdog.watch.tick.judge_tick`), adds the meta-alert about Polaris itself, and
commits the new alert states together with the notifications they owe in one
transaction under the lease's term, so a replica that lost the lease cannot write.
Delivery happens elsewhere (:mod:`watchdog.deliver.outbox`): a Slack outage never slows
the watch. Metrics are swept on their own cadence (:mod:`watchdog.watch.sweep`), so a
health alert never waits for thousands of metrics requests.

Missing data is never a verdict: a failed listing leaves its rules' alerts untouched,
missing metrics leave that job's metric alerts untouched, and a job that vanished from a
listing is looked up before its alerts resolve ("job no longer exists" on a 404). What the
loop cannot do — reach Polaris, finish a listing, get fresh metrics, record its state —
it says (:mod:`watchdog.watch.health`), never silently.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import structlog

from watchdog.domain.alerts import (
    META_JOB,
    META_RULE,
    AlertState,
    Phase,
    RuleFacts,
    fingerprint,
)
from watchdog.domain.oncall import HISTORY_SECONDS
from watchdog.domain.outgoing import Notification
from watchdog.domain.samples import SampleBook, capacity_for, retention_for
from watchdog.errors import WatchdogError
from watchdog.metrics import BotMetrics
from watchdog.polaris.api import PolarisApi
from watchdog.rules.holder import RulesHolder
from watchdog.rules.ruleset import RuleSet
from watchdog.store import Fence, FencedOut, Store, StoreError
from watchdog.watch import meta
from watchdog.watch.health import Health
from watchdog.watch.judge import Tally
from watchdog.watch.lifecycle import Timing, Verdict
from watchdog.watch.observe import Observation
from watchdog.watch.sweep import MetricsSweep
from watchdog.watch.tick import TickContext, TickReport, judge_tick

log = structlog.get_logger(__name__)

#: Sample rows one restoring query aims at (~3 MB as rows).
_RESTORE_ROWS = 10_000
_META_FACTS = RuleFacts(
    name=META_RULE,
    kind="meta",
    severity="critical",
    description="The bot cannot watch this project's jobs.",
)


class LeaseLost(WatchdogError):
    """Another replica took the project's lease: this tick's results are dropped."""


class Watcher:
    def __init__(
        self,
        *,
        project: str,
        client: PolarisApi,
        store: Store,
        rules: RulesHolder,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: BotMetrics | None = None,
        channel: str | None = None,
    ) -> None:
        self.project = project
        self._api = client
        self._store = store
        self._rules = rules
        self._on_commit = on_commit
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        self._channel = channel
        self._log = log.bind(project=project)
        self._alerts: dict[str, AlertState] = {}
        self._context: tuple[RuleSet, TickContext] | None = None
        self.book = SampleBook(self._capacity(rules.current))
        self.sweep = self._new_sweep()
        self.health = Health(project)
        self.term: int | None = None
        self.last_tick_at: float | None = None
        self.last_progress_at: float | None = None  # any answer from Polaris, any commit
        self.last_data_at: float | None = None
        self._last_prune = 0.0
        self._forgotten: set[str] = set()  # jobs dropped from the book, still on disk
        self._ageless: set[str] = set()  # jobs of unknown age, logged once
        self.idle = asyncio.Event()  # clear while a tick runs: shutdown waits for it
        self.idle.set()
        if metrics is not None:
            metrics.leader.labels(project).set(0)  # every project shows, led or not

    # ---- state -------------------------------------------------------------------------

    def _new_sweep(self) -> MetricsSweep:
        return MetricsSweep(
            self._api,
            self.book,
            interval=lambda: self._rules.current.watch.interval,
            clock=self._clock,
            sleep=self._sleep,
            on_progress=self._progress,
            project=self.project,
        )

    @staticmethod
    def _capacity(rules: RuleSet) -> int:
        return capacity_for(rules.max_window, rules.watch.interval)

    def _retention(self, rules: RuleSet) -> float:
        return retention_for(rules.max_window, rules.watch.interval)

    def _progress(self) -> None:
        self.last_progress_at = self._clock()

    @property
    def alerts(self) -> dict[str, AlertState]:
        return self._alerts

    @property
    def fence(self) -> Fence | None:
        return None if self.term is None else Fence(self.project, self.term)

    async def load(self, now: float) -> None:
        """Restore the project's alert states and sample history saved by an earlier run
        (or by the replica that watched it before us), and resume the sweep from them."""
        self._alerts = {a.fingerprint: a for a in await self._store.load_alerts(self.project)}
        rules = self._rules.current
        self.book = SampleBook(max(self.book.capacity, self._capacity(rules)))
        self.sweep = self._new_sweep()
        # In slices of ~_RESTORE_ROWS rows: an hour of 10,000 series is ~1.2 M rows at
        # ~0.3 KB each as rows (new strings for every id), so 100,000 rows at once (~30
        # MB) would set the process' resident high-water mark for good, while slices of
        # one interval would be thousands of queries with a short interval. The first
        # slice is one interval; each next one is sized by the density just read.
        retention = self._retention(rules)
        step = rules.watch.interval
        start, loaded = now - retention, 0
        while start <= now:
            rows = await self._store.load_samples(self.project, start, start + step)
            loaded += self.book.load(rows)
            start += step
            grown = step * _RESTORE_ROWS / max(len(rows), 1)
            step = min(max(grown, rules.watch.interval), retention)
        self.sweep.resume_from_book()
        self._log.info("watch.restored", alerts=len(self._alerts), samples=loaded)

    async def lead(self, term: int) -> None:
        """Watch under ``term``: after a takeover (a new term) reload what the previous
        holder left, since our own view of the project is stale."""
        if term != self.term:
            await self.load(self._clock())
            self._log.info("watch.leading", term=term)
        self.term = term
        if self._metrics is not None:
            self._metrics.leader.labels(self.project).set(1)

    def step_down(self, reason: str) -> None:
        """Stop speaking for the project (the lease is gone): nothing more is written."""
        if self.term is not None:
            self._log.warning("watch.stepped_down", reason=reason, term=self.term)
        self.term = None
        self.health.clear()
        if self._metrics is not None:
            self._metrics.leader.labels(self.project).set(0)

    async def _tick_context(self, rules: RuleSet) -> TickContext:
        if self._context is None or self._context[0] is not rules:
            mine = rules.rules_for(self.project)
            spec = rules.project(self.project)
            channel = (spec.channel if spec else None) or self._channel
            # Off the event loop: thousands of rules take a noticeable while to plan.
            started = time.perf_counter()
            context = await asyncio.to_thread(
                TickContext.planned, self.project, mine, rules.watch, channel, rules.maintenance
            )
            self._log.info(
                "watch.planned",
                rules=len(mine),
                listings=len(context.listing_plan.queries) + len(context.metric_plan.queries),
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            self._context = (rules, context)
            # Only ever grow: the points kept were spaced by the old interval, and a
            # shorter ring would cut history a window still needs.
            if self._capacity(rules) > self.book.capacity:
                self.book.resize(self._capacity(rules))
        return self._context[1]

    # ---- the tick ----------------------------------------------------------------------

    async def tick(
        self, now: float, *, before_judging: Callable[[], Awaitable[object]] | None = None
    ) -> TickReport:
        """One list → judge → commit round at time ``now``; :class:`LeaseLost` when the
        lease moved on (nothing of this tick is kept). ``before_judging``: see
        :func:`~watchdog.watch.tick.judge_tick` (tests sweep the metrics there)."""
        fence = self.fence
        if fence is None:
            raise LeaseLost(f"not holding the lease of project {self.project!r}")
        started = time.perf_counter()
        rules = self._rules.current
        context = await self._tick_context(rules)
        silences = await self._store.list_silences()
        acks = await self._store.list_acks(self.project)
        committed: list[Notification] = []

        async def listings_judged(first: Tally) -> None:
            # Health and execution verdicts go out now, not after the metric rules' long
            # listings: an unhealthy job is posted within one short listing of the tick.
            await self._commit(first, fence)
            committed.extend(first.committed)

        tally, seen = await judge_tick(
            self._api,
            context,
            self.sweep,
            self._alerts,
            silences,
            now,
            acks=acks,
            listings_judged=listings_judged,
            before_judging=before_judging,
        )
        self._progress()
        self._say_ageless(seen)
        meta = self._alerts.get(fingerprint(self.project, META_RULE, META_JOB))
        timing = Timing(for_=rules.watch.no_data_after)
        tally.settle(None, _META_FACTS, timing, meta, self._meta_verdict(now, seen, rules))
        await self._commit(tally, fence)
        if not seen.failures and context.metric_plan.queries:
            # Dropped from memory now, from the store at the next prune.
            gone = self.book.expire(seen.targets, now, self._retention(rules))
            self.sweep.forget(gone)
            self._forgotten.update(gone)
        await self._prune(now, rules)
        report = TickReport(
            now=now,
            jobs=len(seen.jobs),
            listings_failed=len(seen.failures),
            lookups=len(seen.looked_up),
            evaluations=tally.evaluations,
            targets=len(seen.targets),
        )
        report.notifications.update(n.reason.value for n in [*committed, *tally.committed])
        firing = Counter(a.rule for a in self._alerts.values() if a.phase is Phase.FIRING)
        report.firing = sum(firing.values())
        report.seconds = time.perf_counter() - started
        self._observe(report, firing, now)
        return report

    async def _commit(self, tally: Tally, fence: Fence) -> None:
        """Write what the tally decided (and the samples swept since), then adopt it."""
        upserts, deletes, outgoing = tally.take()
        rows = self.sweep.take_rows()
        try:
            await self._store.commit(
                fence=fence, upserts=upserts, deletes=deletes, outbox=outgoing, now=tally.now
            )
        except FencedOut as exc:
            self.step_down(str(exc))
            raise LeaseLost(str(exc)) from None
        except StoreError as exc:
            self.health.report("store", f"cannot record the project's state: {exc}", tally.now)
            raise
        tally.committed.extend(outgoing)
        self._alerts = dict(tally.alerts)  # only now: the store has it
        self._progress()
        if outgoing:
            self._on_commit()
        # After the fenced commit, so that a replica that lost the lease writes no samples.
        # Failing here loses nothing the watch needs now (the book holds the samples),
        # only history for a restart or a successor: said, not raised.
        try:
            await self._store.append_samples(self.project, rows)
        except StoreError as exc:
            self.health.report("store", f"cannot record the project's samples: {exc}", tally.now)
            return
        self.health.report("store", None, tally.now)

    def _meta_verdict(self, now: float, seen: Observation, rules: RuleSet) -> Verdict:
        """The verdict of the meta-alert, and the project's health as it stands."""
        problems = meta.problems(
            seen, self.sweep, now, rules.watch.no_data_after, self.last_data_at
        )
        for kind, message in problems.items():
            self.health.report(kind, message, now)
        verdict = meta.verdict(self.project, problems)
        if verdict.condition is not None and not verdict.condition.active:
            self.last_data_at = now
        return verdict

    def _say_ageless(self, seen: Observation) -> None:
        """One line per finished job whose age cannot be read, while it stays listed."""
        for job_id, value in seen.ageless.items():
            if job_id not in self._ageless:
                self._log.warning(
                    "watch.job_age_unknown",
                    job_id=job_id,
                    last_updated=repr(value)[:100],
                    effect="max_age counts it as old: rules with max_age start no alert on it",
                )
        if seen.failures:
            self._ageless |= seen.ageless.keys()
        else:
            self._ageless = set(seen.ageless)

    async def _prune(self, now: float, rules: RuleSet) -> None:
        if now - self._last_prune < 300:
            return
        self._last_prune = now
        gone = sorted(self._forgotten)
        self._forgotten.clear()
        await self._store.prune_samples(self.project, now - self._retention(rules), gone)
        await self._store.prune_history(self.project, now - HISTORY_SECONDS)

    def _observe(self, report: TickReport, firing: Counter[str], now: float) -> None:
        if self._metrics is None:
            return
        m, p = self._metrics, self.project
        m.ticks.labels(p, report.outcome).inc()
        m.tick_seconds.labels(p).observe(report.seconds)
        m.last_tick.labels(p).set(now)
        m.jobs_watched.labels(p).set(report.jobs)
        m.set_firing(p, dict(firing))
        m.metric_targets.labels(p).set(report.targets)
        m.metrics_staleness.labels(p).set(self.sweep.staleness(now))
        if self.sweep.period is not None:
            m.sweep_period.labels(p).set(self.sweep.period)
        for reason, count in report.notifications.items():
            m.notifications.labels(reason).inc(count)

    # ---- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``interval`` without drift, while leading; a slow tick skips ticks,
        never bunches them. The fleet cancels this task when the lease is gone."""
        sweeping = asyncio.create_task(self.sweep.run(), name=f"sweep:{self.project}")
        try:
            await self._ticks()
        finally:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)

    async def _ticks(self) -> None:
        next_at = self._clock()
        while self.term is not None:
            interval = self._rules.current.watch.interval
            self.idle.clear()
            store_failed = False
            try:
                report = await self.tick(next_at)
                self._log.debug(
                    "watch.tick",
                    jobs=report.jobs,
                    seconds=round(report.seconds, 3),
                    outcome=report.outcome,
                    firing=report.firing,
                )
            except LeaseLost as exc:
                self._log.warning("watch.lease_lost", reason=str(exc))
                return
            except StoreError as exc:
                # A problem until a commit succeeds (_commit says which write failed; a
                # read may fail first); the next tick tries again.
                store_failed = True
                if "store" not in self.health.problems:
                    self.health.report("store", f"cannot use the state store: {exc}", next_at)
            except Exception:
                self._log.exception("watch.tick_crashed")
                self.health.report("tick", "the watch loop crashed (see the logs)", next_at)
                if self._metrics is not None:
                    self._metrics.ticks.labels(self.project, "failed").inc()
            else:
                self.health.report("tick", None, next_at)
            finally:
                self.idle.set()
            self.last_tick_at = self._clock()
            next_at += interval
            behind = self._clock() - next_at
            if behind > 0:
                skipped = math.ceil(behind / interval)
                # A store that does not answer is a problem of its own (said above), not
                # a slow Polaris listing.
                if not store_failed:
                    self._log.warning(
                        "watch.overrun",
                        skipped_ticks=skipped,
                        hint="a listing tick took longer than [watch] interval: Polaris is "
                        "slow to list, or the listings are long; lengthen the interval or "
                        "raise page_size",
                    )
                next_at += skipped * interval
            await self._sleep(next_at - self._clock())
