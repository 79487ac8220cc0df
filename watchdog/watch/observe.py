"""What one listing tick learns from Polaris: listings, and the jobs that left them.

The listings the plan asks for run concurrently (each reads every page, up to the page
cap), all within the tick's deadline; jobs with live alerts that left their listing are
looked up one by one, so a deleted job resolves as "no longer exists" and a recovered one
with its real state. Failures are kept per listing and per job: the caller treats what
it could not learn as unknown, never as a verdict. Metrics are not fetched here: the
sweep (:mod:`watchdog.watch.sweep`) does that on its own cadence, for the ``targets``
this observation names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from watchdog.polaris.api import JobListing, PolarisApi
from watchdog.polaris.errors import (
    PolarisError,
    PolarisListingIncompleteError,
    PolarisNotFoundError,
)
from watchdog.polaris.models import Job
from watchdog.rules.model import Rule
from watchdog.rules.tables import WatchSettings
from watchdog.watch.plan import Plan, metric_targets

#: What a lookup of a job that left its listing found: the job, "gone" (404), or None.
Lookup = Job | str | None


@dataclass
class Observation:
    results: list[JobListing | PolarisError]  # one per plan query, in plan order
    listed: list[dict[str, Job]] = field(default_factory=list)  # per query: id -> job
    unparsed: set[str] = field(default_factory=set)  # listed in a shape we could not read
    jobs: dict[str, Job] = field(default_factory=dict)  # every listed job
    looked_up: dict[str, Lookup] = field(default_factory=dict)
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # job -> metrics
    #: finished jobs whose lastUpdatedTimestamp cannot be read (age unknown): id -> value
    ageless: dict[str, str | None] = field(default_factory=dict)

    @property
    def failures(self) -> list[PolarisError]:
        return [r for r in self.results if isinstance(r, PolarisError)]

    def failed(self, index: int) -> bool:
        return isinstance(self.results[index], PolarisError)

    def merged(self, other: Observation) -> Observation:
        """Both observations as one (for what the tick reports); ``other``'s targets."""
        return Observation(
            results=[*self.results, *other.results],
            listed=[*self.listed, *other.listed],
            unparsed=self.unparsed | other.unparsed,
            jobs={**self.jobs, **other.jobs},
            looked_up={**self.looked_up, **other.looked_up},
            targets=other.targets,
            ageless={**self.ageless, **other.ageless},
        )


async def observe(
    api: PolarisApi,
    rules: Iterable[Rule],
    plan: Plan,
    watch: WatchSettings,
    now: float,
    alerting: Mapping[str, Iterable[str]],
    *,
    deadline: float,
    listings: int | None = None,
) -> Observation:
    """List jobs as ``plan`` says, and look up the jobs of ``alerting`` (rule name → job
    ids with live alerts) that left their listing; everything by ``deadline`` (event-loop
    time): what is not done by then is a failure of that listing or lookup. ``listings``:
    how many listings the whole tick holds together (default: this plan's), which share
    ``max_jobs``."""
    rules = list(rules)
    seen = Observation(await _list(api, plan, watch, deadline, listings or len(plan.queries)))
    for result in seen.results:
        if isinstance(result, JobListing):
            seen.listed.append({job.id: job for job in result.jobs})
            seen.unparsed |= result.unparsed_ids
        else:
            seen.listed.append({})
    for jobs in seen.listed:
        seen.jobs.update(jobs)
    seen.ageless = {
        job.id: job.last_updated_timestamp
        for job in seen.jobs.values()
        if job.is_terminal and job.updated_at is None
    }
    absent: set[str] = set()
    for rule in rules:
        index = plan.rule_queries.get(rule.name)
        if index is None or seen.failed(index):
            continue
        absent.update(
            job
            for job in alerting.get(rule.name, ())
            if job not in seen.listed[index] and job not in seen.unparsed
        )
    seen.looked_up = await _lookup(api, absent, deadline)
    seen.targets = metric_targets(
        [rule for rule in rules if rule.metrics], list(seen.jobs.values()), now
    )
    return seen


async def _list(
    api: PolarisApi, plan: Plan, watch: WatchSettings, deadline: float, listings: int
) -> list[JobListing | PolarisError]:
    # The listings are held together until the tick is judged: they share max_jobs.
    share = watch.max_jobs // max(1, listings)
    pages = min(watch.max_pages, max(1, share // watch.page_size))

    async def one(index: int) -> JobListing | PolarisError:
        q = plan.queries[index]
        try:
            async with asyncio.timeout_at(deadline):
                return await api.list_jobs(
                    health=q.health,
                    execution=q.execution,
                    types=q.types,
                    table=q.table,
                    page_size=watch.page_size,
                    max_pages=pages,
                )
        except PolarisListingIncompleteError as exc:
            if pages == watch.max_pages:
                return exc
            return PolarisListingIncompleteError(
                f"the listing passed {pages * watch.page_size:,} jobs, its share of [watch] "
                f"max_jobs ({watch.max_jobs:,} for {listings} listing(s) a tick), "
                "and was cut off: raise max_jobs if the project really has that many jobs",
                endpoint="list_jobs",
            )
        except PolarisError as exc:
            return exc
        except TimeoutError:
            return PolarisListingIncompleteError(
                f"the listing did not finish within the tick's deadline "
                f"({watch.tick_deadline:g}s): Polaris is slow or the listing too long",
                endpoint="list_jobs",
            )

    return list(await asyncio.gather(*(one(i) for i in range(len(plan.queries)))))


async def _lookup(api: PolarisApi, job_ids: Iterable[str], deadline: float) -> dict[str, Lookup]:
    async def one(job_id: str) -> tuple[str, Lookup]:
        try:
            async with asyncio.timeout_at(deadline):
                return job_id, await api.get_job(job_id)
        except PolarisNotFoundError:
            return job_id, "gone"
        except (PolarisError, ValueError, TimeoutError):
            return job_id, None

    return dict(await asyncio.gather(*(one(j) for j in job_ids)))
