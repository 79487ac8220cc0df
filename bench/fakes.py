"""An in-process Polaris for the CPU and memory figures: real models, no network.

:class:`FakePolaris` answers the :class:`~watchdog.polaris.api.PolarisApi` protocol (the
calls the watcher and its metrics sweep make) with the real model objects, so a
:class:`~watchdog.watch.loop.Watcher` runs unchanged on it and a thousand ticks finish in
minutes. Jobs are streaming jobs whose counters grow with the
clock the caller sets (:attr:`FakePolaris.now`); a few per hundred are in health error
and a few have rows skipped by error, so some rules fire.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, cast

from watchdog.polaris.api import JobListing, PolarisApi
from watchdog.polaris.errors import PolarisNotFoundError
from watchdog.polaris.models import Job, Metrics, read_model

_ERROR_EVERY = 33  # ~3 % of jobs in health error, like the simulator's large scenario
_SKIPPING_EVERY = 20  # 5 % of jobs skip rows by error


def job_payload(
    index: int, job_id: str, *, born: float, job_type: str = "streaming"
) -> dict[str, Any]:
    """A job as ``GET /jobs`` shows it (the fields the bot reads)."""
    error = index % _ERROR_EVERY == 0
    health: dict[str, Any] = {"status": "ok"}
    if error:
        health = {"status": "error", "code": "internal_error", "message": "Simulated failure"}
    return {
        "id": job_id,
        "type": job_type,
        "executionStatus": "running",
        "desiredExecutionStatus": "running",
        "health": health,
        "target": {"type": "table", "tableName": f"table_{index % 250:03d}"},
        "source": {"type": "connection", "connectionName": f"kafka-{index % 250:03d}"},
        "maxParseExceptions": 100_000,
        "createdTimestamp": "2024-01-01T00:00:00.000Z",
        "lastUpdatedTimestamp": "2024-01-01T00:00:00.000Z",
    }


class FakePolaris:
    """``jobs`` streaming jobs; counters are functions of :attr:`now`."""

    def __init__(self, jobs: int, *, born: float, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.now = born
        self._born = born
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self._skipping: set[str] = set()
        for index in range(jobs):
            job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            self._ids.append(job_id)
            self._index[job_id] = index
            self._rates[job_id] = rng.uniform(50.0, 500.0)
            if index % _SKIPPING_EVERY == 1:
                self._skipping.add(job_id)
        self.requests = 0

    @functools.cached_property
    def jobs(self) -> list[Job]:
        """Every job as a model (for benchmarks that evaluate without listing)."""
        return [read_model(Job, payload) for payload in self._payloads()]

    def _payloads(self) -> Iterator[dict[str, Any]]:
        for index, job_id in enumerate(self._ids):
            yield job_payload(index, job_id, born=self._born)

    @property
    def concurrency(self) -> int:
        """Read by the sweep to size its workers (no request waits here anyway)."""
        return 16

    def client(self) -> PolarisApi:
        """This fake, typed as the API the watcher expects."""
        return cast(PolarisApi, self)

    def totals(self, job_id: str, now: float) -> dict[str, float]:
        age = max(now - self._born, 0.0)
        processed = self._rates[job_id] * age
        skipped = processed * 0.02 if job_id in self._skipping else 0.0
        return {
            "numRowsProcessed": processed,
            "numRowsProcessedWithWarning": processed * 0.01,
            "numRowsSkippedByError": skipped,
            "numRowsSkippedByFilter": processed * 0.05,
            "numRowsPersisted": processed - skipped,
            "numBytesProcessed": processed * 180.0,
        }

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
        healths, statuses, kinds = set(health), set(execution), set(types)
        listing = JobListing()
        for payload in self._payloads():
            if healths and payload["health"]["status"] not in healths:
                continue
            if statuses and payload["executionStatus"] not in statuses:
                continue
            if kinds and payload["type"] not in kinds:
                continue
            if table is not None and payload["target"]["tableName"] != table:
                continue
            listing.jobs.append(read_model(Job, payload))
        listing.pages = max(1, -(-len(listing.jobs) // page_size))
        self.requests += listing.pages
        return listing

    async def get_metrics(self, job_id: str, *, attempts: int | None = None) -> Metrics:
        self.requests += 1
        return Metrics(totals=self.totals(job_id, self.now))

    async def get_job(self, job_id: str) -> Job:
        self.requests += 1
        index = self._index.get(job_id)
        if index is None:
            raise PolarisNotFoundError(f"Job {job_id} not found", endpoint="get_job", status=404)
        return read_model(Job, job_payload(index, job_id, born=self._born))

    async def set_status(self, job_id: str, desired: str) -> Job:
        raise NotImplementedError("the benchmarks never change a job")
