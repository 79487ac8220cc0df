"""What the rest of the bot needs from Polaris: a small protocol, and listing results.

The watch loop, the metrics sweep and the Slack commands are typed against
:class:`PolarisApi`, not the HTTP client, so ``test-rules`` (and the benchmarks) can run the
production code over an in-memory Polaris. :class:`~watchdog.polaris.client.PolarisClient`
is the real one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from watchdog.polaris.models import Job, Metrics


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /jobs``. ``unparsed_ids`` are jobs Polaris listed in a shape we
    could not read: the watcher must treat them as "unknown", not as gone."""

    jobs: list[Job]
    unparsed_ids: frozenset[str]
    more: bool
    #: Entries the page carried, readable or not: the next page starts this far on.
    listed: int


@dataclass
class JobListing:
    jobs: list[Job] = field(default_factory=list)
    unparsed_ids: set[str] = field(default_factory=set)
    pages: int = 0


class PolarisApi(Protocol):
    """The Jobs v1 calls of one project that the bot makes."""

    @property
    def concurrency(self) -> int:
        """Requests it lets run at once (callers size their worker pools by it)."""

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
        """Every job matching the filters (OR within one, AND across), all pages."""

    async def get_job(self, job_id: str) -> Job: ...

    async def get_metrics(self, job_id: str, *, attempts: int | None = None) -> Metrics: ...

    async def set_status(self, job_id: str, desired: str) -> Job:
        """Ask for ``desired`` (running, suspended, canceled); the job as Polaris answers."""
