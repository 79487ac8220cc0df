"""Async client for the Imply Polaris Jobs v1 API.

One :class:`PolarisClient` per project wraps the app's single ``aiohttp.ClientSession``.
Every request passes the project's :class:`~watchdog.polaris.gate.RequestGate` (requests in
flight, their rate, and listings before metrics), transient failures are retried with
capped, jittered backoff that honours ``Retry-After`` (tenacity), a listing reads every
page up to a cap, an answer is read up to a size cap fit for it (a page of N jobs: N × 64
KiB; one job's answer: 1 MiB), and every other failure becomes one of the typed errors of
:mod:`watchdog.polaris.errors`. What Polaris sends is bounded: a
listing that never ends or a 200 MB answer is an error, not a hang or an out-of-memory.
The API key only ever goes into the ``Authorization`` header; no message, log line or
error built here contains it.
"""

from __future__ import annotations

import asyncio
import json as json_module
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import structlog
from pydantic import SecretStr, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from watchdog.polaris.api import JobListing, JobPage
from watchdog.polaris.errors import (
    PolarisError,
    PolarisListingIncompleteError,
    PolarisMalformedError,
    PolarisUnavailableError,
    check_job_id,
    error_for_status,
)
from watchdog.polaris.gate import Priority, RequestGate
from watchdog.polaris.models import (
    DESIRED_STATUSES,
    Job,
    JobLogs,
    JobProgress,
    JobStatus,
    LogEntry,
    Metrics,
    read_model,
)
from watchdog.polaris.retry import DEFAULT_RETRY, RetryPolicy

log = structlog.get_logger(__name__)
M = TypeVar("M")  # a model of polaris.models: a BaseModel or a pydantic dataclass

MAX_PAGE_SIZE = 1000
#: The largest answer read: a page of 1,000 jobs is a few MB; past this it is not Polaris'.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
#: The most one job of a listing page may take (health messages can be long): a page of N
#: jobs is refused past N times this, and one with more than N jobs is malformed; together
#: they bound what a parsed page costs (a small job parsed takes ~5 times its JSON).
MAX_JOB_BYTES = 64 * 1024
MIN_PAGE_BYTES = 1024 * 1024
#: The largest answer about one job (the job, its status, metrics or progress: a few KB).
#: The sweep has up to ``concurrency`` metrics answers in flight at once.
MAX_JOB_ANSWER_BYTES = 1024 * 1024
#: Answers that may be longer than that: a job's logs (read only by a command).
_LONG_ANSWERS = frozenset({"logs"})


#: Told about every HTTP attempt (endpoint, outcome, seconds), for ``/metrics`` and
#: the benchmarks.
RequestObserver = Callable[[str, str, float], None]


class PolarisClient:
    """The Jobs v1 API of one project. Construct once; share across tasks."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        project_id: str,
        api_key: SecretStr,
        *,
        concurrency: int = 16,
        max_rate: float | None = 50.0,
        timeout: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        observer: RequestObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        gate: RequestGate | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._session = session
        self._base = f"{api_url.rstrip('/')}/v1/projects/{quote(project_id, safe='')}"
        self._headers = {
            "Authorization": f"Basic {api_key.get_secret_value()}",
            "Accept": "application/json",
        }
        self.gate = gate or RequestGate(concurrency, max_rate)
        self._max_answer = max_answer_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._observer = observer
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.concurrency = self.gate.concurrency

    # ---- endpoints -------------------------------------------------------------------

    async def iter_job_pages(
        self,
        *,
        health: Iterable[str] = (),
        execution: Iterable[str] = (),
        types: Iterable[str] = (),
        table: str | None = None,
        page_size: int = 100,
        max_pages: int | None = None,
    ) -> AsyncIterator[JobPage]:
        """Yield every page of ``GET /jobs`` for the filters (OR within, AND across).

        :class:`PolarisListingIncompleteError` after ``max_pages`` pages that all said
        more results are available."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        params: list[tuple[str, str]] = [("healthStatus", h) for h in health]
        params += [("executionStatus", s) for s in execution]
        params += [("type", t) for t in types]
        if table is not None:
            params.append(("targetTableName", table))
        offset = pages = 0
        while True:
            if max_pages is not None and pages >= max_pages:
                raise PolarisListingIncompleteError(
                    f"the listing had more than {max_pages} pages of {page_size} jobs "
                    f"({offset} jobs so far) and was cut off: raise [watch] max_pages if "
                    "the project really has that many jobs",
                    endpoint="list_jobs",
                )
            pages += 1
            query = [
                *params,
                ("paginationLimit", str(page_size)),
                ("paginationOffset", str(offset)),
            ]
            raw = await self._request(
                "GET",
                "/jobs",
                "list_jobs",
                params=query,
                priority=Priority.LISTING,
                max_bytes=max(MIN_PAGE_BYTES, page_size * MAX_JOB_BYTES),
            )
            page = self._parse_page(raw, page_size)
            yield page
            if not page.more:
                return
            if page.listed == 0:
                # "More results" with an empty page would loop forever.
                raise PolarisMalformedError(
                    "listing says more results are available but returned none",
                    endpoint="list_jobs",
                )
            offset += page.listed

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
        """All jobs matching the filters, across every page (at most ``max_pages``),
        without duplicates."""
        listing = JobListing()
        seen: set[str] = set()
        async for page in self.iter_job_pages(
            health=tuple(health),
            execution=tuple(execution),
            types=tuple(types),
            table=table,
            page_size=page_size,
            max_pages=max_pages,
        ):
            listing.pages += 1
            # Offset pages over a list sorted by last update can overlap when jobs
            # change between two pages: keep the first sighting of each id.
            for job in page.jobs:
                if job.id not in seen:
                    seen.add(job.id)
                    listing.jobs.append(job)
            listing.unparsed_ids |= page.unparsed_ids - seen
        return listing

    async def get_job(self, job_id: str) -> Job:
        raw = await self._request("GET", f"/jobs/{check_job_id(job_id)}", "get_job")
        return self._model(Job, raw, "get_job")

    async def get_status(self, job_id: str) -> str:
        raw = await self._request("GET", f"/jobs/{check_job_id(job_id)}/status", "get_status")
        return self._model(JobStatus, raw, "get_status").execution_status

    async def set_status(self, job_id: str, desired: str) -> Job:
        """POST ``/status`` with ``desiredExecutionStatus`` (running, suspended, canceled)."""
        if desired not in DESIRED_STATUSES:
            raise ValueError(f"desired status must be one of {', '.join(DESIRED_STATUSES)}")
        path = f"/jobs/{check_job_id(job_id)}/status"
        # A status change is not idempotent from the user's point of view only when it
        # fails half-way; Polaris applies the same desired state twice harmlessly, so
        # the transient-retry policy is safe here too.
        raw = await self._request(
            "POST", path, "set_status", json={"desiredExecutionStatus": desired}
        )
        return self._model(Job, raw, "set_status")

    async def get_metrics(self, job_id: str, *, attempts: int | None = None) -> Metrics:
        """``attempts`` overrides the retry policy's (the watch loop retries on its next
        tick instead of holding the tick up)."""
        path = f"/jobs/{check_job_id(job_id)}/metrics"
        raw = await self._request(
            "GET", path, "metrics", attempts=attempts, priority=Priority.METRICS
        )
        return self._model(Metrics, raw, "metrics")

    async def get_logs(self, job_id: str) -> list[LogEntry]:
        raw = await self._request("GET", f"/jobs/{check_job_id(job_id)}/logs", "logs")
        return self._model(JobLogs, raw, "logs").logs

    async def get_progress(self, job_id: str) -> float:
        raw = await self._request("GET", f"/jobs/{check_job_id(job_id)}/progress", "progress")
        return self._model(JobProgress, raw, "progress").overall_progress

    # ---- parsing ---------------------------------------------------------------------

    @staticmethod
    def _model(model: type[M], raw: Any, endpoint: str) -> M:
        try:
            return read_model(model, raw)
        except ValidationError as exc:
            raise PolarisMalformedError(
                f"unexpected answer shape: {exc.errors()[0]['msg']}", endpoint=endpoint
            ) from None

    @staticmethod
    def _parse_page(raw: Any, page_size: int | None = None) -> JobPage:
        if not isinstance(raw, dict) or not isinstance(raw.get("values", []), list):
            raise PolarisMalformedError("listing is not {values: [...]}", endpoint="list_jobs")
        if page_size is not None and len(raw.get("values", [])) > page_size:
            raise PolarisMalformedError(
                f"listing page has {len(raw['values'])} jobs, more than the {page_size} asked for",
                endpoint="list_jobs",
            )
        more = raw.get("moreResultsAvailable", False)
        if not isinstance(more, bool):
            raise PolarisMalformedError(
                "moreResultsAvailable is not a boolean", endpoint="list_jobs"
            )
        values = raw.get("values", [])
        jobs: list[Job] = []
        unparsed: set[str] = set()
        for item in values:
            try:
                jobs.append(read_model(Job, item))
            except ValidationError as exc:
                # One odd job must not blind the bot to the other thousand.
                job_id = item.get("id") if isinstance(item, dict) else None
                log.warning("polaris.job_unreadable", job_id=job_id, error=exc.errors()[0]["msg"])
                if isinstance(job_id, str):
                    unparsed.add(job_id)
        return JobPage(jobs=jobs, unparsed_ids=frozenset(unparsed), more=more, listed=len(values))

    # ---- transport -------------------------------------------------------------------

    def _backoff(self, failed_attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed."""
        backoff = min(self._retry.cap, self._retry.base * 2 ** (failed_attempt - 1))
        jittered = self._rng.uniform(0, backoff)
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float):
            return min(max(float(hint), jittered), self._retry.max_retry_after)
        return jittered

    def _wait(self, state: RetryCallState) -> float:
        # Tenacity counts from the second attempt: the first ran before it (_request).
        exc = state.outcome.exception() if state.outcome else None
        return self._backoff(state.attempt_number + 1, exc)

    async def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
        attempts: int | None = None,
        priority: Priority = Priority.LISTING,
        max_bytes: int | None = None,
    ) -> Any:
        attempts = self._retry.attempts if attempts is None else attempts
        if max_bytes is None:
            max_bytes = self._max_answer if endpoint in _LONG_ANSWERS else MAX_JOB_ANSWER_BYTES
        limit = min(max_bytes, self._max_answer)
        # The first attempt runs without a retry loop: nearly every request succeeds at
        # once, and tenacity's per-call objects form reference cycles (~32 objects a call)
        # that only the cyclic GC frees — at thousands of requests a tick that garbage
        # drove full collections that stalled the event loop.
        try:
            return await self._attempt(method, path, endpoint, params, json, priority, limit)
        except PolarisError as exc:
            if not exc.transient or attempts < 2:
                raise
            await self._sleep(self._backoff(1, exc))
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, PolarisError) and e.transient),
            stop=stop_after_attempt(attempts - 1),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                log.debug(
                    "polaris.retry",
                    endpoint=endpoint,
                    attempt=attempt.retry_state.attempt_number + 1,
                )
                return await self._attempt(method, path, endpoint, params, json, priority, limit)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: list[tuple[str, str]] | None,
        json: Any,
        priority: Priority,
        limit: int,
    ) -> Any:
        loop = asyncio.get_running_loop()
        async with self.gate.slot(priority):
            started = loop.time()
            outcome = "cancelled"  # only cancellation leaves the try without setting one
            try:
                async with self._session.request(
                    method,
                    self._base + path,
                    params=params,
                    json=json,
                    headers=self._headers,
                    timeout=self._timeout,
                ) as resp:
                    body = await self._read(resp, endpoint, limit)
                    outcome = str(resp.status)
                    if resp.status >= 400:
                        # Any bytes make a readable message; an error page need not be UTF-8.
                        text = body.decode("utf-8", errors="replace")
                        raise error_for_status(resp.status, text, resp.headers, endpoint)
                    try:
                        # JSON is UTF-8: undecodable bytes are a ValueError (malformed) here,
                        # not a UnicodeDecodeError escaping the client from resp.text().
                        return json_module.loads(body)
                    except ValueError:
                        outcome = "malformed"
                        raise PolarisMalformedError(
                            f"answer is not JSON ({resp.content_type})", endpoint=endpoint
                        ) from None
            except PolarisMalformedError:
                outcome = "malformed"
                raise
            except TimeoutError:
                outcome = "timeout"
                raise PolarisUnavailableError(
                    f"Polaris did not answer within {self._timeout.total:g}s", endpoint=endpoint
                ) from None
            except aiohttp.ClientError as exc:
                outcome = "connection"
                raise PolarisUnavailableError(
                    f"cannot reach Polaris: {type(exc).__name__}: {exc}", endpoint=endpoint
                ) from None
            finally:
                if self._observer is not None:
                    self._observer(endpoint, outcome, loop.time() - started)

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse, endpoint: str, limit: int) -> bytearray:
        """The answer's body, refused as soon as it is known to pass ``limit`` bytes (one
        buffer grown in place: chunks joined at the end held the answer twice)."""
        if resp.content_length is not None and resp.content_length > limit:
            raise _too_large(limit, endpoint)
        body = bytearray()
        while chunk := await resp.content.readany():
            if len(body) + len(chunk) > limit:
                # The error's traceback keeps this frame alive (retries keep errors in
                # reference cycles, freed only by a full collection): not the megabytes.
                body.clear()
                raise _too_large(limit, endpoint)
            body += chunk
        return body


def _too_large(limit: int, endpoint: str) -> PolarisMalformedError:
    size = f"{limit / (1024 * 1024):.3g} MiB"
    return PolarisMalformedError(f"answer larger than {size}: not read", endpoint=endpoint)
