"""An in-memory Polaris over a ``test-rules`` case: the jobs' series, as the API shows them.

A case describes each job as series over ticks (execution status, health, counters).
:class:`CasePolaris` answers the :class:`~watchdog.polaris.api.PolarisApi` calls with the
case's jobs at the current tick — listings filtered as Polaris filters them server-side,
a 404 for a job that does not exist at that tick, a failed metrics request where a tick
has no sample — so ``test-rules`` drives the watch loop's own observation, sweep and
judgement (:func:`watchdog.watch.tick.judge_tick`), not a second implementation of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from watchdog.polaris.api import JobListing
from watchdog.polaris.errors import PolarisNotFoundError, PolarisUnavailableError
from watchdog.polaris.models import Job, Metrics, read_model
from watchdog.testing.file import JobSpec

_T = TypeVar("_T")


def at_tick(series: Sequence[_T], tick: int) -> _T:
    """The series' value at ``tick``: a series shorter than the run holds its last value."""
    return series[min(tick, len(series) - 1)]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


class CasePolaris:
    """The case's jobs at the current tick (:meth:`move_to`), behind the Polaris API."""

    concurrency = 1  # one job at a time: a case's answers come in a stable order

    def __init__(self, jobs: Sequence[JobSpec], first_tick_at: float) -> None:
        self._specs = {spec.id: spec for spec in jobs}
        self._t0 = first_tick_at
        self._tick = 0
        self._now = first_tick_at
        self._jobs: dict[str, Job] = {}
        self._seen: dict[str, tuple[Any, float]] = {}  # id -> (statuses, lastUpdated)

    def move_to(self, tick: int, now: float) -> None:
        """Show the jobs as they are at ``tick`` (time ``now``)."""
        self._tick, self._now = tick, now
        self._jobs = {
            job.id: job for spec in self._specs.values() if (job := self._job(spec)) is not None
        }

    def _job(self, spec: JobSpec) -> Job | None:
        execution = at_tick(spec.execution, self._tick)
        if execution is None:
            return None  # not listed: the job does not exist (yet, or any more)
        health = at_tick(spec.health, self._tick)
        seen = self._seen.get(spec.id)
        if seen is None:
            updated = self._t0 - spec.updated_ago if self._tick == 0 else self._now
        else:
            # Polaris bumps lastUpdatedTimestamp when the job's state changes.
            updated = seen[1] if seen[0] == (execution, health) else self._now
        self._seen[spec.id] = ((execution, health), updated)
        raw: dict[str, Any] = {
            "id": spec.id,
            "type": spec.type,
            "executionStatus": execution,
            "createdTimestamp": _iso(self._t0 - spec.updated_ago),
            "lastUpdatedTimestamp": _iso(updated),
        }
        if health is not None:
            status, code = health
            raw["health"] = {"status": status, **({"code": code} if code else {})}
        if spec.table is not None:
            raw["target"] = {"type": "table", "tableName": spec.table}
        if spec.max_parse_exceptions is not None:
            raw["maxParseExceptions"] = spec.max_parse_exceptions
        return read_model(Job, raw)

    async def list_jobs(
        self,
        *,
        health: Iterable[str] = (),
        execution: Iterable[str] = (),
        types: Iterable[str] = (),
        table: str | None = None,
        page_size: int = 100,
        max_pages: int | None = None,
    ) -> JobListing:
        """The jobs matching the filters, as Polaris filters them (OR within, AND across)."""
        healths, executions, kinds = set(health), set(execution), set(types)
        listing = JobListing(pages=1)
        for job in self._jobs.values():
            if healths and job.health_status not in healths:
                continue
            if executions and job.execution_status not in executions:
                continue
            if kinds and job.type not in kinds:
                continue
            if table is not None and job.table != table:
                continue
            listing.jobs.append(job)
        return listing

    async def get_job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise PolarisNotFoundError(f"job {job_id} not found", endpoint="get_job", status=404)
        return job

    async def get_metrics(self, job_id: str, *, attempts: int | None = None) -> Metrics:
        spec = self._specs.get(job_id)
        if spec is None or job_id not in self._jobs:
            raise PolarisNotFoundError(f"job {job_id} not found", endpoint="metrics", status=404)
        totals = {
            name: value
            for name, series in spec.metrics.items()
            if (value := at_tick(series, self._tick)) is not None
        }
        if not totals:  # "_" for every counter: this tick's metrics request failed
            raise PolarisUnavailableError("no sample at this tick", endpoint="metrics")
        return Metrics(totals=totals)

    async def set_status(self, job_id: str, desired: str) -> Job:
        raise PolarisUnavailableError("a rules test changes no job", endpoint="set_status")
