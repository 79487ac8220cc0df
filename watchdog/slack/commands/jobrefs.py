"""What a user typed as ``JOB`` → a full job id: the id itself, or a unique prefix of one.

Prefixes are matched against every job of the project (all pages), listed at most once per
``ttl`` seconds; a prefix that matches nothing in a cached list is checked once more
against a fresh one, so a job created a moment ago is still found. Only UUID-shaped text
reaches here (:func:`watchdog.slack.commands.parse.parse_job_ref` refuses the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from watchdog.errors import InputError
from watchdog.polaris.client import PolarisClient
from watchdog.slack.commands import replies
from watchdog.slack.commands.parse import JobRef


class JobRefError(InputError):
    """No job, or several, match what the user typed; the message says which."""


class JobDirectory:
    def __init__(
        self, polaris: PolarisClient, clock: Callable[[], float], ttl: float = 30.0
    ) -> None:
        self._polaris = polaris
        self._clock = clock
        self._ttl = ttl
        self._ids: list[tuple[str, str | None]] = []  # (job id, table)
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def resolve(self, ref: JobRef) -> str:
        """The full job id ``ref`` stands for; :class:`JobRefError` when not exactly one
        job matches. Polaris' errors pass through."""
        if ref.is_full:
            return ref.text
        fresh = await self._refresh(force=False)
        matches = [(i, t) for i, t in self._ids if i.startswith(ref.text)]
        if not matches and not fresh:
            # The job may be newer than the cached list: look once more before saying no.
            await self._refresh(force=True)
            matches = [(i, t) for i, t in self._ids if i.startswith(ref.text)]
        if not matches:
            raise JobRefError(replies.no_match(ref.text))
        if len(matches) > 1:
            raise JobRefError(replies.ambiguous(ref.text, matches))
        return matches[0][0]

    async def _refresh(self, *, force: bool) -> bool:
        """Reload the id list when stale (or forced); True when it was loaded just now."""
        async with self._lock:
            now = self._clock()
            if not force and self._at is not None and now - self._at < self._ttl:
                return False
            listing = await self._polaris.list_jobs(page_size=1000)
            ids = [(job.id.lower(), job.table) for job in listing.jobs]
            ids += [(job_id.lower(), None) for job_id in sorted(listing.unparsed_ids)]
            self._ids, self._at = ids, now
            return True
