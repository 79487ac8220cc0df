"""The jobs of the configured projects: what a user typed as ``JOB`` → the project and
full id of one job, and listings across projects.

``PROJECT/JOB`` looks in that project only; a bare id or prefix is looked up in every
project, and matching more than one job (in one project or across several) is an error
that lists the candidates with their projects. Prefixes (and, with several projects, full
ids too: the project is not written in them) are matched against every job of a project
(all pages), listed at most once per ``ttl`` seconds; a lookup that matches nothing in a
cached list is checked once more against a fresh one, so a job created a moment ago is
still found. Projects are listed concurrently, each with its own client and key.

A project that cannot be listed (its Polaris is down, its key revoked) does not stop a
lookup in the others: a full id found elsewhere is used; a prefix is not, because the
missing project might hold another match — the error names the job it found and asks for
``PROJECT/JOB``. Only UUID-shaped text reaches here
(:func:`watchdog.slack.commands.parse.parse_job_ref` refuses the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.errors import InputError
from watchdog.polaris.api import PolarisApi
from watchdog.polaris.errors import PolarisError
from watchdog.polaris.models import Job
from watchdog.slack.commands import replies
from watchdog.slack.commands.parse import JobRef
from watchdog.slack.commands.replies import Candidate


class JobRefError(InputError):
    """No job, or several, match what the user typed; the message says which."""


@dataclass(frozen=True, slots=True)
class FoundJob:
    """The job a reference stands for: its project and full id."""

    project: str
    job_id: str


class _JobList:
    """One project's job ids and tables, listed at most once per ``ttl`` seconds."""

    def __init__(self, polaris: PolarisApi, clock: Callable[[], float], ttl: float) -> None:
        self.polaris = polaris
        self._clock = clock
        self._ttl = ttl
        self._ids: list[tuple[str, str | None]] = []  # (job id, table)
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def matches(self, prefix: str) -> list[tuple[str, str | None]]:
        """The jobs whose id starts with ``prefix``; Polaris' errors pass through."""
        fresh = await self._refresh(force=False)
        found = [(i, t) for i, t in self._ids if i.startswith(prefix)]
        if not found and not fresh:
            # The job may be newer than the cached list: look once more before saying no.
            await self._refresh(force=True)
            found = [(i, t) for i, t in self._ids if i.startswith(prefix)]
        return found

    async def _refresh(self, *, force: bool) -> bool:
        """Reload the id list when stale (or forced); True when it was loaded just now."""
        async with self._lock:
            now = self._clock()
            if not force and self._at is not None and now - self._at < self._ttl:
                return False
            listing = await self.polaris.list_jobs(page_size=1000)
            ids = [(job.id.lower(), job.table) for job in listing.jobs]
            ids += [(job_id.lower(), None) for job_id in sorted(listing.unparsed_ids)]
            self._ids, self._at = ids, now
            return True


class JobDirectory:
    """Finds jobs by id or prefix across the projects of ``polaris`` (name → client)."""

    def __init__(
        self, polaris: Mapping[str, PolarisApi], clock: Callable[[], float], ttl: float = 30.0
    ) -> None:
        if not polaris:
            raise ValueError("a job directory needs at least one project")
        self._lists = {name: _JobList(api, clock, ttl) for name, api in polaris.items()}

    @property
    def several(self) -> bool:
        """More than one project: replies name the project of every job."""
        return len(self._lists) > 1

    async def resolve(self, ref: JobRef) -> FoundJob:
        """The one job ``ref`` stands for; :class:`JobRefError` when not exactly one job
        matches. Polaris' errors pass through when the only project searched failed."""
        if ref.project is not None and ref.project not in self._lists:
            raise JobRefError(f"project {replies.quoted(ref.project, 40)} is not configured")
        names = [ref.project] if ref.project is not None else list(self._lists)
        if ref.is_full and len(names) == 1:
            return FoundJob(names[0], ref.text)  # nothing to look up: Polaris says if it exists
        results = await asyncio.gather(
            *(self._lists[name].matches(ref.text) for name in names), return_exceptions=True
        )
        found: list[Candidate] = []
        failed: dict[str, PolarisError] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, PolarisError):
                failed[name] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                found += [Candidate(name, job_id, table) for job_id, table in result]
        if len(names) == 1 and failed:
            raise failed[names[0]]
        if len(found) > 1:
            raise JobRefError(replies.ambiguous(ref.text, found, with_projects=self.several))
        if len(found) == 1 and (ref.is_full or not failed):
            return FoundJob(found[0].project, found[0].job_id)
        if failed:
            raise JobRefError(replies.unsearched(ref.text, found, failed))
        where = None
        if self.several:
            where = f"project {names[0]}" if len(names) == 1 else "any project"
        raise JobRefError(replies.no_match(ref.text, where))

    # ---- the projects' clients and listings ----------------------------------------

    @property
    def projects(self) -> tuple[str, ...]:
        """The configured projects' names, in configuration order."""
        return tuple(self._lists)

    def client(self, project: str) -> PolarisApi:
        """The client of ``project`` (only ever with that project's own key)."""
        return self._lists[project].polaris

    async def list_jobs(
        self, projects: Sequence[str], *, health: Sequence[str], types: Sequence[str]
    ) -> Listing:
        """The jobs of ``projects`` (empty: every project) matching the filters, listed
        concurrently. A project that cannot be listed is reported in ``failed`` and does
        not hide the others; when the only project asked for fails, its error is raised."""
        names = list(projects) or list(self._lists)
        results = await asyncio.gather(
            *(self.client(n).list_jobs(health=health, types=types) for n in names),
            return_exceptions=True,
        )
        listing = Listing()
        for name, result in zip(names, results, strict=True):
            if isinstance(result, PolarisError):
                listing.failed[name] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                listing.jobs += [(name, job) for job in result.jobs]
                listing.unreadable += len(result.unparsed_ids)
        if len(names) == 1 and listing.failed:
            raise listing.failed[names[0]]
        return listing


@dataclass
class Listing:
    """Jobs of several projects: (project, job) pairs, how many Polaris listed in a shape
    the bot cannot read, and the projects that could not be listed."""

    jobs: list[tuple[str, Job]] = field(default_factory=list)
    unreadable: int = 0
    failed: dict[str, PolarisError] = field(default_factory=dict)
