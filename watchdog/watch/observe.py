"""What one tick learns from Polaris: listings, metrics, and the jobs that left them.

The listings the plan asks for run concurrently (each reads every page); jobs with live
alerts that left their listing are looked up one by one, so a deleted job resolves as "no
longer exists" and a recovered one with its real state. Metrics come second, only for the
jobs some metric rule watches, fetched by a few workers taking jobs in turn (the client
bounds requests in flight and per second) until a deadline: a Polaris whose metrics hang
cannot hold the tick for ever, and the next tick starts where this one stopped, so a
project too large for one tick is still covered over a few. Failures are kept per listing
and per job: the caller treats what it could not learn as unknown, never as a verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from watchdog.polaris.api import JobListing
from watchdog.polaris.client import PolarisClient
from watchdog.polaris.errors import PolarisError, PolarisNotFoundError
from watchdog.polaris.models import Job, Metrics
from watchdog.rules.ruleset import RuleSet
from watchdog.store import SampleRow
from watchdog.watch.plan import Plan, metric_targets
from watchdog.watch.samples import SampleBook

#: What a lookup of a job that left its listing found: the job, "gone" (404), or None.
Lookup = Job | str | None
#: Attempts per metrics request in the watch loop: the next tick is the real retry.
METRICS_ATTEMPTS = 2


@dataclass
class Observation:
    results: list[JobListing | PolarisError]  # one per plan query, in plan order
    listed: list[dict[str, Job]] = field(default_factory=list)  # per query: id -> job
    unparsed: set[str] = field(default_factory=set)  # listed in a shape we could not read
    jobs: dict[str, Job] = field(default_factory=dict)  # every listed job
    looked_up: dict[str, Lookup] = field(default_factory=dict)
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # job -> metrics
    metrics_ok: set[str] = field(default_factory=set)
    metrics_failed: int = 0
    metrics_skipped: int = 0  # not reached before the deadline: unknown this tick
    rows: list[SampleRow] = field(default_factory=list)  # samples recorded this tick

    @property
    def failures(self) -> list[PolarisError]:
        return [r for r in self.results if isinstance(r, PolarisError)]

    def failed(self, index: int) -> bool:
        return isinstance(self.results[index], PolarisError)


class Observer:
    def __init__(self, client: PolarisClient, on_progress: Callable[[], None] = lambda: None):
        self._client = client
        self._on_progress = on_progress  # told of every answer: the loop is alive
        self._cursor = 0  # where the next tick's metrics fetch starts

    async def listings(
        self, rules: RuleSet, plan: Plan, now: float, alerting: Mapping[str, Iterable[str]]
    ) -> Observation:
        """List jobs, and look up the jobs of ``alerting`` (rule name → job ids with live
        alerts) that left their listing."""
        seen = Observation(await self._list(rules, plan))
        for result in seen.results:
            if isinstance(result, JobListing):
                seen.listed.append({job.id: job for job in result.jobs})
                seen.unparsed |= result.unparsed_ids
            else:
                seen.listed.append({})
        for jobs in seen.listed:
            seen.jobs.update(jobs)
        absent: set[str] = set()
        for rule in rules.rules:
            index = plan.rule_queries.get(rule.name)
            if index is None or seen.failed(index):
                continue
            absent.update(
                job
                for job in alerting.get(rule.name, ())
                if job not in seen.listed[index] and job not in seen.unparsed
            )
        seen.looked_up = await self._lookup(absent)
        seen.targets = metric_targets(rules.metric_rules, list(seen.jobs.values()), now)
        self._on_progress()
        return seen

    async def metrics(
        self, seen: Observation, book: SampleBook, now: float, *, within: float
    ) -> None:
        """Fetch the metrics of ``seen.targets`` for up to ``within`` seconds and record
        them into ``book`` at ``now``."""
        ids = list(seen.targets)
        start = self._cursor % len(ids) if ids else 0
        order = iter(ids[start:] + ids[:start])
        fetched: dict[str, Metrics | Exception] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within

        async def worker() -> None:
            for job_id in order:  # shared: each job is taken by exactly one worker
                if loop.time() >= deadline:
                    return  # the rest stays unknown this tick; the next starts there
                try:
                    fetched[job_id] = await self._client.get_metrics(
                        job_id, attempts=METRICS_ATTEMPTS
                    )
                except (PolarisError, ValueError) as exc:  # ValueError: not a job id
                    fetched[job_id] = exc
                self._on_progress()

        # A few workers taking jobs in turn, not one task per job: 5,000 tasks created at
        # once run their first steps in one event-loop pass (~300 ms in which no slash
        # command is acked) and stay alive for the cyclic GC to scan. Twice the client's
        # concurrency keeps every request slot busy while a worker reads its answer.
        workers = min(len(ids), 2 * self._client.concurrency)
        await asyncio.gather(*(worker() for _ in range(workers)))
        self._cursor = start + len(fetched) if len(fetched) < len(ids) else 0
        for job_id, metrics in seen.targets.items():
            result = fetched.get(job_id)
            if result is None:
                seen.metrics_skipped += 1
                continue
            if isinstance(result, Exception):
                seen.metrics_failed += 1
                continue
            seen.metrics_ok.add(job_id)
            for metric in metrics:
                value = result.totals.get(metric)
                if value is not None and book.record(job_id, metric, now, value):
                    seen.rows.append((job_id, metric, now, value))

    async def _list(self, rules: RuleSet, plan: Plan) -> list[JobListing | PolarisError]:
        async def one(index: int) -> JobListing | PolarisError:
            q = plan.queries[index]
            try:
                return await self._client.list_jobs(
                    health=q.health,
                    execution=q.execution,
                    types=q.types,
                    table=q.table,
                    page_size=rules.watch.page_size,
                )
            except PolarisError as exc:
                return exc

        return list(await asyncio.gather(*(one(i) for i in range(len(plan.queries)))))

    async def _lookup(self, job_ids: Iterable[str]) -> dict[str, Lookup]:
        async def one(job_id: str) -> tuple[str, Lookup]:
            try:
                return job_id, await self._client.get_job(job_id)
            except PolarisNotFoundError:
                return job_id, "gone"
            except (PolarisError, ValueError):
                return job_id, None

        return dict(await asyncio.gather(*(one(j) for j in job_ids)))
