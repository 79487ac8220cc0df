"""The Polaris client: real aiohttp against the simulator, aioresponses for odd answers."""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from pydantic import SecretStr

from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.polaris.client import PolarisClient, RetryPolicy
from watchdog.polaris.errors import (
    InvalidJobIdError,
    PolarisAuthError,
    PolarisBadRequestError,
    PolarisMalformedError,
    PolarisNotFoundError,
    PolarisRateLimitedError,
    PolarisUnavailableError,
)

START = 1_700_000_000.0
API_KEY = "pok_sim-key-0123456789abcdefghij"  # long, so a leak would be unmistakable
READ_KEY = "pok_read-only-key-0123456789abcd"
MOCK_URL = "http://polaris.test"
MOCK_JOBS = re.compile(r"^http://polaris\.test/v1/projects/demo-project/jobs\?")


class RecordingSleep:
    """Stands in for asyncio.sleep in the client's retries: records, never waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Gate:
    """The simulator's sleep for hangs: blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        await self.opened.wait()


class Observer:
    """Records every (endpoint, outcome) the client reports."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, endpoint: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.seen.append((endpoint, outcome))


class MockResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates the ``stream_writer`` that aiohttp 3.14 requires."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


Connect = Callable[..., PolarisClient]


@pytest.fixture
def sim() -> Simulator:
    return Simulator(clock=lambda: START, api_key=API_KEY, readonly_keys=(READ_KEY,))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def waits() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def connect(session: aiohttp.ClientSession, waits: RecordingSleep) -> Connect:
    """Builds clients with fast, recorded retries and no rate limit unless a test asks."""

    def build(url: str, **overrides: Any) -> PolarisClient:
        options: dict[str, Any] = {
            "max_rate": None,
            "retry": RetryPolicy(attempts=3),
            "sleep": waits,
            "rng": random.Random(7),
        }
        options.update(overrides)
        key = SecretStr(options.pop("key", API_KEY))
        return PolarisClient(session, url, "demo-project", key, **options)

    return build


@pytest.fixture
async def polaris(sim: Simulator, connect: Connect) -> AsyncIterator[PolarisClient]:
    """A client of the simulator served by aiohttp's test server."""
    async with TestServer(sim.app()) as server:
        yield connect(str(server.make_url("/")))


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as mock:
        yield mock


def reply(mock: Any, url: str | re.Pattern[str], **kwargs: Any) -> None:
    mock.get(url, response_class=MockResponse, **kwargs)


def job_json(job_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": job_id, "type": "streaming", "executionStatus": "running", **fields}


def offsets(sim: Simulator) -> list[str]:
    return [parse_qs(query)["paginationOffset"][0] for *_, query in sim.stats.request_log]


def uuid_of(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


# -- listing ----------------------------------------------------------------------------------
async def test_listing_reads_every_page_and_misses_no_error_job(
    sim: Simulator, polaris: PolarisClient
) -> None:
    """250 jobs, every tenth in error: three pages of 100 hold all of them, each once."""
    jobs = [sim.add_job(table=f"t{index}") for index in range(250)]
    errors = {job.id for index, job in enumerate(jobs) if index % 10 == 7}
    for job_id in errors:
        sim.set_health(job_id, "error", "internal_error")
    listing = await polaris.list_jobs(page_size=100)
    assert offsets(sim) == ["0", "100", "200"] and listing.pages == 3
    assert [job.id for job in listing.jobs] == [job.id for job in jobs]
    assert {job.id for job in listing.jobs if job.health_status == "error"} == errors
    assert len(errors) == 25 and errors & {job.id for job in listing.jobs[200:]}


async def test_a_filtered_listing_returns_exactly_the_matching_jobs(
    sim: Simulator, polaris: PolarisClient
) -> None:
    """healthStatus=error over three pages of 10 returns exactly the 25 error jobs."""
    jobs = [sim.add_job() for _ in range(250)]
    errors = [job.id for index, job in enumerate(jobs) if index % 10 == 3]
    for job_id in errors:
        sim.set_health(job_id, "error")
    listing = await polaris.list_jobs(health=["error"], page_size=10)
    assert [job.id for job in listing.jobs] == errors
    assert offsets(sim) == ["0", "10", "20"]
    assert all(parse_qs(q)["healthStatus"] == ["error"] for *_, q in sim.stats.request_log)


async def test_filters_are_or_within_a_name_and_and_across_names(
    sim: Simulator, polaris: PolarisClient
) -> None:
    """health ok+error AND type batch gives the ok and error batch jobs, nothing else."""
    sim.add_job(type="batch", table="ok_batch")
    error_batch = sim.add_job(type="batch", table="error_batch")
    warn_batch = sim.add_job(type="batch", table="warn_batch")
    sim.add_job(table="ok_stream")
    error_stream = sim.add_job(table="error_stream")
    sim.set_health(error_batch.id, "error")
    sim.set_health(warn_batch.id, "warn")
    sim.set_health(error_stream.id, "error")
    listing = await polaris.list_jobs(health=["ok", "error"], types=["batch"])
    assert [job.table for job in listing.jobs] == ["ok_batch", "error_batch"]
    query = parse_qs(sim.stats.request_log[-1][3])
    assert query["healthStatus"] == ["ok", "error"] and query["type"] == ["batch"]
    listing = await polaris.list_jobs(health=["error"], types=["streaming"], table="error_stream")
    assert [job.id for job in listing.jobs] == [error_stream.id]


async def test_overlapping_pages_are_deduplicated(connect: Connect, mocked: Any) -> None:
    """A job that shows up again on the next page (it moved) is listed once."""
    first = [job_json(uuid_of(n)) for n in (1, 2)]
    second = [job_json(uuid_of(n)) for n in (2, 3)]
    reply(mocked, MOCK_JOBS, payload={"values": first, "moreResultsAvailable": True})
    reply(mocked, MOCK_JOBS, payload={"values": second, "moreResultsAvailable": False})
    listing = await connect(MOCK_URL).list_jobs(page_size=2)
    assert [job.id for job in listing.jobs] == [uuid_of(1), uuid_of(2), uuid_of(3)]
    assert listing.pages == 2


async def test_more_results_with_an_empty_page_is_malformed_not_endless(
    connect: Connect, mocked: Any
) -> None:
    """moreResultsAvailable with no values cannot advance the offset: it is an error."""
    reply(
        mocked, MOCK_JOBS, payload={"values": [job_json(uuid_of(1))], "moreResultsAvailable": True}
    )
    reply(mocked, MOCK_JOBS, payload={"values": [], "moreResultsAvailable": True}, repeat=True)
    with pytest.raises(PolarisMalformedError, match="more results"):
        await connect(MOCK_URL).list_jobs()
    assert sum(len(calls) for calls in mocked.requests.values()) == 2


async def test_one_unreadable_job_does_not_hide_the_others(connect: Connect, mocked: Any) -> None:
    """A job with wrong types is reported by id; the jobs around it are still listed."""
    values = [
        job_json(uuid_of(1)),
        job_json(uuid_of(2), executionStatus=["running"], health="broken"),
        job_json(uuid_of(3), health={"status": "error", "code": "internal_error"}),
    ]
    reply(mocked, MOCK_JOBS, payload={"values": values, "moreResultsAvailable": False})
    listing = await connect(MOCK_URL).list_jobs()
    assert [job.id for job in listing.jobs] == [uuid_of(1), uuid_of(3)]
    assert listing.unparsed_ids == {uuid_of(2)}


async def test_unreadable_entries_still_move_the_offset_on(connect: Connect, mocked: Any) -> None:
    """The next page starts after every entry Polaris sent, even ones without an id."""
    base = f"{MOCK_URL}/v1/projects/demo-project/jobs?paginationLimit=3&paginationOffset="
    first = [job_json(uuid_of(1)), {"type": "batch"}, "not a job"]
    reply(mocked, base + "0", payload={"values": first, "moreResultsAvailable": True})
    reply(mocked, base + "3", payload={"values": [job_json(uuid_of(4))]})
    listing = await connect(MOCK_URL).list_jobs(page_size=3)
    assert [job.id for job in listing.jobs] == [uuid_of(1), uuid_of(4)]
    assert listing.unparsed_ids == set()


async def test_a_page_size_outside_the_api_range_is_refused(polaris: PolarisClient) -> None:
    """paginationLimit is 1..1000 in the API; anything else is a programming error."""
    for size in (0, 1001):
        with pytest.raises(ValueError, match="page_size"):
            await polaris.list_jobs(page_size=size)


# -- the other endpoints ----------------------------------------------------------------------
async def test_every_endpoint_reads_the_simulator_answers(
    sim: Simulator, polaris: PolarisClient
) -> None:
    """Job, status, metrics, logs and progress come back as typed values."""
    job = sim.add_job(table="orders", behaviour="static_error")
    batch = sim.add_job(type="batch", table="daily")
    read = await polaris.get_job(job.id)
    assert (read.table, read.health_status, read.health_code) == (
        "orders",
        "error",
        job.health_code,
    )
    assert read.health_detail == job.health_message
    assert await polaris.get_status(job.id) == "running"
    assert set((await polaris.get_metrics(job.id)).totals) >= {"numRowsProcessed"}
    assert [entry.health_status for entry in await polaris.get_logs(job.id)] == ["error"]
    assert await polaris.get_progress(batch.id) == 0.0


async def test_status_changes_reach_the_simulator(sim: Simulator, polaris: PolarisClient) -> None:
    """Suspend, resume and cancel POST desiredExecutionStatus and return the job."""
    job = sim.add_job()
    assert (await polaris.set_status(job.id, "suspended")).execution_status == "suspended"
    assert (await polaris.set_status(job.id, "running")).execution_status == "running"
    assert (await polaris.set_status(job.id, "canceled")).execution_status == "canceled"
    assert sim.stats.status_changes == [
        (job.id, "suspended"),
        (job.id, "running"),
        (job.id, "canceled"),
    ]
    with pytest.raises(ValueError, match="desired status"):
        await polaris.set_status(job.id, "paused")
    assert sim.stats.requests == 3


async def test_an_uppercase_job_id_is_sent_lowercased(
    sim: Simulator, polaris: PolarisClient
) -> None:
    """UUIDs are case-insensitive; the path carries the canonical lowercase form."""
    job = sim.add_job()
    assert (await polaris.get_job(job.id.upper())).id == job.id
    assert sim.stats.request_log[0][2].endswith(f"/jobs/{job.id}")


JOB_CALLS: dict[str, Callable[[PolarisClient, str], Awaitable[object]]] = {
    "get_job": lambda client, job_id: client.get_job(job_id),
    "get_status": lambda client, job_id: client.get_status(job_id),
    "set_status": lambda client, job_id: client.set_status(job_id, "canceled"),
    "get_metrics": lambda client, job_id: client.get_metrics(job_id),
    "get_logs": lambda client, job_id: client.get_logs(job_id),
    "get_progress": lambda client, job_id: client.get_progress(job_id),
}


@pytest.mark.parametrize("call", sorted(JOB_CALLS))
@pytest.mark.parametrize(
    "job_id",
    [
        "../../jobs",
        "abc/status",
        "%2e%2e",
        "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f/x",
        "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f?x=1",
        "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f\n",
        "",
    ],
)
async def test_a_path_like_job_id_is_refused_before_any_request(
    sim: Simulator, polaris: PolarisClient, call: str, job_id: str
) -> None:
    """Nothing a user typed reaches a URL path unless it is a UUID."""
    with pytest.raises(InvalidJobIdError):
        await JOB_CALLS[call](polaris, job_id)
    assert sim.stats.requests == 0 and list(sim.stats.request_log) == []


# -- errors that are not retried --------------------------------------------------------------
async def test_a_wrong_key_is_an_auth_error_that_never_shows_the_key(
    sim: Simulator, session: aiohttp.ClientSession, connect: Connect
) -> None:
    """401 says the key was rejected; neither message nor repr contains the key."""
    wrong = "pok_wrong-key-9876543210zyxwvutsrq"
    async with TestServer(sim.app()) as server:
        client = connect(str(server.make_url("/")), key=wrong)
        with pytest.raises(PolarisAuthError) as caught:
            await client.list_jobs()
    text = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert "key was rejected" in str(caught.value) and caught.value.status == 401
    assert wrong not in text and API_KEY not in text
    assert sim.stats.requests == 1


async def test_a_read_only_key_is_told_it_lacks_manage_ingestion_jobs(
    sim: Simulator, connect: Connect
) -> None:
    """403 names the missing permission, and the job is unchanged."""
    job = sim.add_job()
    async with TestServer(sim.app()) as server:
        client = connect(str(server.make_url("/")), key=READ_KEY)
        assert (await client.get_job(job.id)).id == job.id
        with pytest.raises(PolarisAuthError, match="ManageIngestionJobs") as caught:
            await client.set_status(job.id, "suspended")
    assert caught.value.status == 403 and READ_KEY not in str(caught.value)
    assert sim.stats.status_changes == [] and job.execution_status == "running"


async def test_an_unknown_job_is_not_found(sim: Simulator, polaris: PolarisClient) -> None:
    """404 is PolarisNotFoundError, asked once."""
    with pytest.raises(PolarisNotFoundError) as caught:
        await polaris.get_metrics(uuid_of(42))
    assert caught.value.status == 404 and sim.stats.requests == 1


async def test_suspending_a_batch_job_is_a_bad_request_in_polaris_words(
    sim: Simulator, polaris: PolarisClient, waits: RecordingSleep
) -> None:
    """400 carries Polaris' own message and is not retried."""
    job = sim.add_job(type="batch")
    with pytest.raises(PolarisBadRequestError, match="Only streaming jobs can be suspended"):
        await polaris.set_status(job.id, "suspended")
    assert sim.stats.requests == 1 and waits.delays == []


async def test_an_internal_server_error_is_not_retried(
    sim: Simulator, polaris: PolarisClient, waits: RecordingSleep
) -> None:
    """500 is a bug on Polaris' side, not a blip: it surfaces at once."""
    job = sim.add_job()
    sim.faults.configure({"error_status": 500})
    with pytest.raises(PolarisUnavailableError, match="500") as caught:
        await polaris.get_job(job.id)
    assert caught.value.status == 500 and not caught.value.transient
    assert sim.stats.requests == 1 and waits.delays == []


# -- retries ----------------------------------------------------------------------------------
async def test_rate_limiting_waits_the_hinted_retry_after_then_succeeds(
    sim: Simulator, polaris: PolarisClient, waits: RecordingSleep
) -> None:
    """429 with Retry-After: 3 is retried after 3 s (recorded, not slept), then succeeds."""
    job = sim.add_job()
    sim.faults.configure({"rate_limit_count": 2, "retry_after": 3})
    assert (await polaris.get_job(job.id)).id == job.id
    assert waits.delays == [3.0, 3.0] and sim.stats.requests == 3


async def test_endless_rate_limiting_gives_up_after_the_configured_attempts(
    sim: Simulator, polaris: PolarisClient, waits: RecordingSleep
) -> None:
    """429 for ever: three attempts, jittered backoff between them, then the typed error."""
    job = sim.add_job()
    sim.faults.configure({"error_status": 429})
    with pytest.raises(PolarisRateLimitedError) as caught:
        await polaris.get_status(job.id)
    assert caught.value.retry_after is None and caught.value.status == 429
    assert sim.stats.requests == 3 and len(waits.delays) == 2
    assert 0 <= waits.delays[0] <= 0.25 and 0 <= waits.delays[1] <= 0.5


async def test_service_unavailable_then_success_is_retried(
    sim: Simulator, polaris: PolarisClient, waits: RecordingSleep
) -> None:
    """A 503 (maintenance) is transient: the second attempt answers."""
    job = sim.add_job()
    sim.faults.configure({"error_status": 503, "error_count": 1})
    assert (await polaris.get_metrics(job.id)).totals
    assert sim.stats.requests == 2 and len(waits.delays) == 1


async def test_a_hanging_request_times_out_and_the_retry_answers(connect: Connect) -> None:
    """A request past the client timeout is abandoned and tried again."""
    gate = Gate()
    sim = Simulator(clock=lambda: START, api_key=API_KEY, sleep=gate)
    job = sim.add_job()
    sim.faults.configure({"hang": 60, "hang_count": 1})
    observer = Observer()
    async with TestServer(sim.app()) as server:
        try:
            client = connect(str(server.make_url("/")), timeout=0.05, observer=observer)
            assert (await client.get_job(job.id)).id == job.id
        finally:
            gate.opened.set()  # let the abandoned handler finish so the server can close
    assert observer.seen == [("get_job", "timeout"), ("get_job", "200")]


async def test_a_request_that_never_answers_ends_as_unavailable(connect: Connect) -> None:
    """When every attempt times out the error says how long it waited."""
    gate = Gate()
    sim = Simulator(clock=lambda: START, api_key=API_KEY, sleep=gate)
    job = sim.add_job()
    sim.faults.configure({"hang": 60})
    async with TestServer(sim.app()) as server:
        try:
            client = connect(str(server.make_url("/")), timeout=0.05, retry=RetryPolicy(2))
            with pytest.raises(PolarisUnavailableError, match=r"within 0\.05s"):
                await client.get_status(job.id)
        finally:
            gate.opened.set()
    assert sim.stats.requests == 2


async def test_a_timeout_raised_by_the_transport_is_retried(connect: Connect, mocked: Any) -> None:
    """aiohttp's TimeoutError on one attempt, an answer on the next."""
    url = f"{MOCK_URL}/v1/projects/demo-project/jobs/{uuid_of(5)}/status"
    reply(mocked, url, exception=TimeoutError())
    reply(mocked, url, payload={"executionStatus": "idle"})
    assert await connect(MOCK_URL).get_status(uuid_of(5)) == "idle"


async def test_a_refused_connection_is_unavailable(connect: Connect, waits: RecordingSleep) -> None:
    """Nothing listening on the port: retried, then PolarisUnavailableError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    observer = Observer()
    client = connect(f"http://127.0.0.1:{port}", observer=observer)
    with pytest.raises(PolarisUnavailableError, match="cannot reach Polaris") as caught:
        await client.list_jobs()
    assert caught.value.transient and len(waits.delays) == 2
    assert observer.seen == [("list_jobs", "connection")] * 3


async def test_the_observer_hears_every_attempt_and_its_outcome(
    sim: Simulator, connect: Connect
) -> None:
    """429, then 503, then 200: three attempts of one call, each reported."""
    job = sim.add_job()
    sim.faults.configure({"rate_limit_count": 1, "error_status": 503, "error_count": 1})
    observer = Observer()
    async with TestServer(sim.app()) as server:
        client = connect(str(server.make_url("/")), observer=observer)
        await client.get_job(job.id)
        sim.faults.configure({"malformed": "html", "malformed_count": 1})
        with pytest.raises(PolarisMalformedError):
            await client.get_logs(job.id)
    assert observer.seen == [
        ("get_job", "429"),
        ("get_job", "503"),
        ("get_job", "200"),
        ("logs", "malformed"),
    ]


# -- malformed answers ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "call"),
    [
        ("html", "list"),
        ("html", "get_job"),
        ("truncated", "list"),
        ("truncated", "get_job"),
        ("types", "list"),
        ("types", "get_job"),
        ("types", "get_status"),
        ("types", "get_metrics"),
        ("types", "get_logs"),
        ("types", "get_progress"),
    ],
)
async def test_a_malformed_answer_is_a_malformed_error(
    sim: Simulator, polaris: PolarisClient, mode: str, call: str
) -> None:
    """HTML, cut-short JSON and wrong types all end as PolarisMalformedError, asked once."""
    job = sim.add_job(type="batch")
    sim.faults.configure({"malformed": mode})
    with pytest.raises(PolarisMalformedError):
        if call == "list":
            await polaris.list_jobs()
        else:
            await JOB_CALLS[call](polaris, job.id)
    assert sim.stats.requests == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"values": [], "moreResultsAvailable": "no"}',
        b'{"values": null}',
        b"[1, 2, 3]",
        b'{"values": [{"id": "\xff\xfe"}]}',
        b"",
    ],
)
async def test_a_listing_of_the_wrong_shape_is_malformed(
    connect: Connect, mocked: Any, body: bytes
) -> None:
    """Wrong shapes, undecodable bytes and an empty body never escape as other errors."""
    reply(mocked, MOCK_JOBS, body=body)
    with pytest.raises(PolarisMalformedError):
        await connect(MOCK_URL).list_jobs()


async def test_an_html_error_page_gives_a_short_readable_message(
    connect: Connect, mocked: Any
) -> None:
    """A gateway's HTML 502 becomes a one-line excerpt, after the retries."""
    page = "<html>\n<body>\n  <h1>502 Bad Gateway</h1>\n" + "x" * 1000 + "</body></html>"
    reply(mocked, MOCK_JOBS, status=502, body=page, repeat=True)
    with pytest.raises(PolarisUnavailableError) as caught:
        await connect(MOCK_URL).list_jobs()
    message = str(caught.value)
    assert "502 Bad Gateway" in message and "\n" not in message and len(message) < 300


# -- concurrency and rate -------------------------------------------------------------------
async def test_concurrency_never_exceeds_the_bound(connect: Connect) -> None:
    """50 metrics calls at once with concurrency=4 keep at most 4 requests in flight."""
    sim = Simulator(clock=lambda: START, api_key=API_KEY)  # real latency, 10 ms
    jobs = [sim.add_job() for _ in range(50)]
    sim.faults.configure({"latency": 0.01, "endpoints": ["metrics"]})
    async with TestServer(sim.app()) as server:
        client = connect(str(server.make_url("/")), concurrency=4)
        results = await asyncio.gather(*(client.get_metrics(job.id) for job in jobs))
    assert len(results) == 50 and sim.stats.by_endpoint["metrics"] == 50
    assert sim.stats.max_in_flight == 4


async def test_requests_are_spaced_to_the_maximum_rate(sim: Simulator, connect: Connect) -> None:
    """With max_rate=100, 21 concurrent calls arrive at least 10 ms apart on average."""
    job = sim.add_job()
    async with TestServer(sim.app()) as server:
        client = connect(str(server.make_url("/")), max_rate=100.0, concurrency=16)
        await asyncio.gather(*(client.get_status(job.id) for _ in range(21)))
    times = [entry[0] for entry in sim.stats.request_log]
    assert len(times) == 21 and times[-1] - times[0] >= 0.17
    # Any ten consecutive gaps span about 100 ms; network jitter can only shrink a window
    # by the delay of its first request, so allow a little slack.
    assert all(times[i + 10] - times[i] >= 0.07 for i in range(len(times) - 10))


# -- hostile answers: bounded -----------------------------------------------------------------
async def test_a_listing_page_is_refused_past_its_size_cap_without_holding_it(
    sim: Simulator, connect: Connect
) -> None:
    """A 200 MB listing page (streamed, no Content-Length) is refused at the page's cap,
    page_size × 64 KiB (the process-level test measures the memory it leaves)."""
    sim.add_job()
    sim.faults.configure({"huge_mb": 200, "endpoints": ["list"]})
    async with TestServer(sim.app()) as server:
        client = connect(str(server.make_url("/")), retry=RetryPolicy(attempts=1))
        with pytest.raises(PolarisMalformedError, match=r"larger than 6.25 MiB"):
            await client.list_jobs(page_size=100)


async def test_a_metrics_answer_is_refused_past_one_mebibyte(
    sim: Simulator, connect: Connect
) -> None:
    """An answer about one job padded to 3 MB is refused (1 MiB cap), where a job's logs
    may be longer (the 32 MiB cap)."""
    job = sim.add_job()
    sim.faults.configure({"huge_mb": 3})
    async with TestServer(sim.app()) as server:
        client = connect(str(server.make_url("/")), retry=RetryPolicy(attempts=1))
        with pytest.raises(PolarisMalformedError, match=r"larger than 1 MiB"):
            await client.get_metrics(job.id)
        assert isinstance(await client.get_logs(job.id), list)


async def test_a_page_with_more_jobs_than_asked_for_is_malformed(
    connect: Connect, mocked: Any
) -> None:
    """Polaris never sends more than paginationLimit jobs: a page of 3 for 2 is refused."""
    values = [job_json(uuid_of(n)) for n in range(3)]
    reply(mocked, MOCK_JOBS, payload={"values": values, "moreResultsAvailable": False})
    with pytest.raises(PolarisMalformedError, match="3 jobs, more than the 2 asked for"):
        await connect(MOCK_URL).list_jobs(page_size=2)
