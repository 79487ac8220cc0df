"""The metrics sweep of one project: every watched job's counters, stalest first, for ever.

The listing tick (every interval) decides which jobs some metric rule watches and hands
them over as *targets*; the sweep fetches their metrics continuously, within the
project's rate and concurrency and below the listings' priority (see
:mod:`watchdog.polaris.gate`), the job whose last fetch is oldest first. Each answer is
recorded into the :class:`~watchdog.domain.samples.SampleBook` at the time it arrived, so
metric rules judge real timestamps, however long a sweep takes. A pass over all targets
takes at least one interval (fetching faster than the rules judge only spends quota),
and its length — the *sweep period* — is how stale a metric rule's data can be.

One job's bad answer (an error, a counter that cannot be: negative, not finite, absurdly
large, missing) makes that job's metrics unknown and nothing else; a pass whose answers
are nearly all bad says "the metric rules are blind" (:attr:`PassReport.blind`).
After a restart the sweep starts with the jobs whose stored samples are oldest, so it
resumes where it stood.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import structlog

from watchdog.domain.samples import SampleBook, SampleRow
from watchdog.polaris.api import PolarisApi
from watchdog.polaris.errors import PolarisError, PolarisMalformedError
from watchdog.polaris.models import Metrics

log = structlog.get_logger(__name__)

#: Attempts per metrics request: the next pass is the real retry.
METRICS_ATTEMPTS = 2
#: Share of a pass's answers that must be bad for "the metric rules are blind".
BLIND_SHARE = 0.9
#: The largest value a cumulative counter can hold (Druid counts in signed 64-bit longs).
MAX_COUNTER = float(2**63)


def counter_value(value: float | None) -> float | None:
    """``value`` when it can be a cumulative counter, else ``None`` (bad data)."""
    if value is None or not math.isfinite(value) or value < 0 or value > MAX_COUNTER:
        return None
    return float(value)


@dataclass
class PassReport:
    """What one pass over the targets did."""

    started: float
    seconds: float = 0.0
    attempted: int = 0
    fetched: int = 0
    failed: int = 0  # Polaris errors, unreadable answers
    bad: int = 0  # answered, but a counter a rule needs is missing or impossible

    @property
    def blind(self) -> bool:
        return self.attempted > 0 and self.failed + self.bad >= BLIND_SHARE * self.attempted


class MetricsSweep:
    def __init__(
        self,
        api: PolarisApi,
        book: SampleBook,
        *,
        interval: Callable[[], float],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_progress: Callable[[], None] = lambda: None,
        project: str = "",
    ) -> None:
        self._api = api
        self.book = book
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._on_progress = on_progress
        self._log = log.bind(project=project) if project else log
        self._targets: dict[str, tuple[str, ...]] = {}
        self._target_since: dict[str, float] = {}  # when each became a target
        self._visited: dict[str, float] = {}  # last attempt, good or bad
        self._sampled: dict[str, float] = {}  # last answer recorded for every wanted metric
        self._bad_jobs: set[str] = set()  # logged once while their data stays bad
        self._rows: list[SampleRow] = []
        self._changed = asyncio.Event()
        self.last_pass: PassReport | None = None
        self._overrun = False
        self.current: PassReport | None = None

    # ---- what the tick hands over and reads back --------------------------------------

    def set_targets(self, targets: Mapping[str, tuple[str, ...]], now: float) -> None:
        """The jobs metric rules watch now, with the metrics each needs."""
        for job_id in targets.keys() - self._targets.keys():
            self._target_since[job_id] = now
        for job_id in self._targets.keys() - targets.keys():
            self._target_since.pop(job_id, None)
            self._visited.pop(job_id, None)
        if targets.keys() != self._targets.keys():
            self._changed.set()
        self._targets = dict(targets)

    @property
    def targets(self) -> Mapping[str, tuple[str, ...]]:
        return self._targets

    def resume_from_book(self) -> None:
        """After loading stored samples: a job's last visit is its newest stored sample, so
        the first pass starts with the stalest jobs, as the previous run would have."""
        for job_id in self.book.jobs():
            newest = max(
                (t for s in self.book.job_series(job_id) if (t := s.last_time()) is not None),
                default=None,
            )
            if newest is not None:
                self._visited[job_id] = newest
                self._sampled[job_id] = newest

    def sampled_at(self, job_id: str) -> float | None:
        """When the job's metrics were last fetched and recorded (None: never)."""
        return self._sampled.get(job_id)

    def staleness(self, now: float, jobs: Iterable[str] | None = None) -> float:
        """Age of the oldest data a metric rule relies on: the longest a target (of
        ``jobs``, when given) has gone without a good answer (counted from when it became
        a target, if never)."""
        since = self._target_since
        chosen = since.keys() if jobs is None else [j for j in jobs if j in since]
        return max((now - self._sampled.get(j, since[j]) for j in chosen), default=0.0)

    @property
    def bad_jobs(self) -> frozenset[str]:
        """Targets whose last answer could not be counters (impossible values, an answer
        that is not one): their metric rules are blind, the others' are not."""
        return frozenset(self._bad_jobs & self._targets.keys())

    @property
    def period(self) -> float | None:
        """How long the last full pass took, at least one interval (None: none yet)."""
        if self.last_pass is None:
            return None
        return max(self.last_pass.seconds, self._interval())

    def take_rows(self) -> list[SampleRow]:
        """Samples recorded since the last call, for the store."""
        rows, self._rows = self._rows, []
        return rows

    def forget(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self._sampled.pop(job_id, None)
            self._visited.pop(job_id, None)

    # ---- sweeping ---------------------------------------------------------------------

    async def run(self) -> None:
        """Sweep for ever: a pass over every target, stalest first, at most one per interval."""
        while True:
            if not self._targets:
                self._changed.clear()
                await self._changed.wait()
                continue
            started = self._clock()
            report = await self.sweep_once()
            self._say_overrun(report)
            rest = self._interval() - (self._clock() - started)
            if rest > 0:
                await self._sleep(rest)

    def _say_overrun(self, report: PassReport) -> None:
        """Log once when passes start taking longer than the interval, and once when they
        fit again: the sweep period is how stale metric rules' data gets."""
        interval = self._interval()
        over = report.seconds > interval * 1.05
        if over and not self._overrun:
            jobs = report.attempted
            self._log.warning(
                "watch.overrun",
                sweep_period=round(report.seconds, 1),
                interval=interval,
                jobs=jobs,
                hint=(
                    f"a metrics sweep over {jobs} jobs takes {report.seconds:.0f}s, longer "
                    f"than the {interval:g}s interval: metric rules judge samples up to that "
                    f"old. max_rate >= {math.ceil(jobs / interval * 1.1)} (and concurrency "
                    "to match the latency) would bring it under the interval, if Polaris "
                    "allows; health and execution rules are not delayed"
                ),
            )
        elif not over and self._overrun:
            self._log.info("watch.overrun_over", sweep_period=round(report.seconds, 1))
        self._overrun = over

    async def sweep_once(self) -> PassReport:
        """One pass: fetch every current target once, stalest first; record the answers."""
        report = PassReport(started=self._clock())
        self.current = report
        never = float("-inf")
        order = iter(sorted(self._targets, key=lambda job: self._visited.get(job, never)))

        async def worker() -> None:
            for job_id in order:  # shared: each job is taken by exactly one worker
                wanted = self._targets.get(job_id)
                if wanted is None:
                    continue  # no longer a target (the tick moved on meanwhile)
                report.attempted += 1
                try:
                    answer: Metrics | Exception = await self._api.get_metrics(
                        job_id, attempts=METRICS_ATTEMPTS
                    )
                except (PolarisError, ValueError) as exc:  # ValueError: not a job id
                    answer = exc
                self._record(job_id, wanted, answer, report)
                self._on_progress()

        # A few workers taking jobs in turn, not one task per job: 5,000 tasks created at
        # once run their first steps in one event-loop pass and stay alive for the cyclic
        # GC to scan. Twice the concurrency keeps every slot busy while a worker reads.
        workers = min(len(self._targets), 2 * self._api.concurrency)
        await asyncio.gather(*(worker() for _ in range(workers)))
        report.seconds = self._clock() - report.started
        self.last_pass, self.current = report, None
        return report

    def _record(
        self, job_id: str, wanted: tuple[str, ...], answer: Metrics | Exception, report: PassReport
    ) -> None:
        now = self._clock()
        self._visited[job_id] = now
        if isinstance(answer, Exception):
            report.failed += 1
            if isinstance(answer, PolarisMalformedError | ValueError):
                # Not an outage (those are the meta-alert's): this job's answer cannot be
                # read, now and probably next time — said once, as for impossible values.
                self._say_bad(job_id, f"unreadable answer: {answer}")
            return
        values = {metric: counter_value(answer.totals.get(metric)) for metric in wanted}
        recorded = False
        for metric, value in values.items():
            if value is not None and self.book.record(job_id, metric, now, value):
                self._rows.append((job_id, metric, now, value))
                recorded = True
        if recorded:
            # Rules over the metrics that came are judged at this time; a rule over one
            # that did not finds no point at it and says "unknown".
            self._sampled[job_id] = now
        bad = [metric for metric, value in values.items() if value is None]
        if not bad:
            self._bad_jobs.discard(job_id)
            report.fetched += 1
            return
        report.bad += 1
        shown = {metric: answer.totals.get(metric) for metric in bad}
        self._say_bad(job_id, repr(shown))

    def _say_bad(self, job_id: str, what: str) -> None:
        if job_id not in self._bad_jobs:
            self._bad_jobs.add(job_id)
            self._log.warning(
                "watch.bad_metrics",
                job_id=job_id,
                metrics=what[:200],
                why="missing, negative, not finite, absurdly large or not numbers: unknown "
                "until it is fixed",
            )
