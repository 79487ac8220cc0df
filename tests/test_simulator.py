"""The Polaris simulator, through a real aiohttp client against its test server."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp.test_utils import TestClient, TestServer

from watchdog.devtools.polaris_sim.jobs import BEHAVIOURS
from watchdog.devtools.polaris_sim.simulator import SCENARIOS, Simulator, build_scenario, serve
from watchdog.polaris.models import (
    KNOWN_METRICS,
    UNLIMITED_PARSE_EXCEPTIONS,
    Job,
    JobLogs,
    JobProgress,
    JobStatus,
    Metrics,
)

BASE = "/v1/projects/demo-project"
AUTH = {"Authorization": "Basic sim-key"}
START = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def sim(clock: FakeClock, sleep: RecordingSleep) -> Simulator:
    return Simulator(clock=clock, readonly_keys=("read-key",), sleep=sleep)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(sim.app())) as test_client:
        yield test_client


async def call(
    client: TestClient[Any, Any], method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """One authenticated request; the status and the decoded JSON body."""
    kwargs.setdefault("headers", AUTH)
    async with client.request(method, path, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def list_jobs(client: TestClient[Any, Any], query: str = "") -> dict[str, Any]:
    status, body = await call(client, "GET", f"{BASE}/jobs?{query}")
    assert status == 200, body
    return body


# -- auth and routing ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "header", ["Basic sim-key", "Basic " + base64.b64encode(b"sim-key:").decode()]
)
async def test_raw_key_and_base64_key_are_both_accepted(
    sim: Simulator, client: TestClient[Any, Any], header: str
) -> None:
    """The docs' raw key and the SDK's base64(key + ':') both authenticate."""
    sim.add_job()
    status, body = await call(client, "GET", f"{BASE}/jobs", headers={"Authorization": header})
    assert status == 200 and len(body["values"]) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic wrong"},
        {"Authorization": "Bearer sim-key"},
        {"Authorization": "Basic " + base64.b64encode(b"sim-key").decode()},
    ],
)
async def test_missing_or_wrong_key_is_refused_with_401(
    client: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    """Without the right key every API call answers 401 with Polaris' error body."""
    status, body = await call(client, "GET", f"{BASE}/jobs", headers=headers)
    assert status == 401 and body["code"] == "Unauthorized" and body["message"]


async def test_readonly_key_reads_but_cannot_change_a_job(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """A read-only key lists jobs but gets 403 on POST and PUT, and nothing changes."""
    job = sim.add_job()
    headers = {"Authorization": "Basic read-key"}
    assert (await call(client, "GET", f"{BASE}/jobs", headers=headers))[0] == 200
    body = {"desiredExecutionStatus": "canceled"}
    for method, path in (
        ("POST", f"{BASE}/jobs/{job.id}/status"),
        ("PUT", f"{BASE}/jobs/{job.id}"),
    ):
        status, error = await call(client, method, path, json=body, headers=headers)
        assert status == 403 and error["code"] == "Forbidden"
    assert job.execution_status == "running" and sim.stats.status_changes == []


async def test_unknown_project_job_and_route_answer_404_with_error_body(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """Another project, an unknown job id and an unknown path are all 404 {code, message}."""
    job = sim.add_job()
    for path in (
        f"/v1/projects/other/jobs/{job.id}",
        "/v1/projects/other/jobs",
        f"{BASE}/jobs/no-such-job/metrics",
        f"{BASE}/jobs/{job.id}/nonsense",
    ):
        status, body = await call(client, "GET", path)
        assert status == 404 and body["code"] == "NotFound" and body["message"], path


# -- listing ------------------------------------------------------------------------------
async def test_filters_are_or_within_a_name_and_and_across_names(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """healthStatus=ok&healthStatus=error&type=batch is (ok OR error) AND batch."""
    ok_batch = sim.add_job(type="batch")
    error_batch = sim.add_job(type="batch", behaviour="static_error")
    error_stream = sim.add_job(behaviour="static_error")
    sim.add_job(type="batch", behaviour="skips_rising")
    sim.set_health(sim.jobs[-1].id, "warn", "multiple")
    body = await list_jobs(client, "healthStatus=ok&healthStatus=error&type=batch")
    assert [job["id"] for job in body["values"]] == [ok_batch.id, error_batch.id]
    body = await list_jobs(client, "healthStatus=error")
    assert [job["id"] for job in body["values"]] == [error_batch.id, error_stream.id]
    body = await list_jobs(client, "executionStatus=failed&executionStatus=running&type=streaming")
    assert [job["id"] for job in body["values"]] == [error_stream.id]


async def test_connection_table_and_search_filters(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """connectionName repeats (OR); targetTableName is exact; searchString matches id or table."""
    clicks = sim.add_job(table="clicks", connection="kafka-a")
    orders = sim.add_job(table="orders", connection="kafka-b")
    sim.add_job(table="orders_archive", type="batch")
    body = await list_jobs(client, "connectionName=kafka-a&connectionName=kafka-b")
    assert [job["id"] for job in body["values"]] == [clicks.id, orders.id]
    body = await list_jobs(client, "targetTableName=orders")
    assert [job["id"] for job in body["values"]] == [orders.id]
    assert len((await list_jobs(client, "searchString=ORDERS"))["values"]) == 2
    assert [
        j["id"] for j in (await list_jobs(client, f"searchString={clicks.id[:8]}"))["values"]
    ] == [clicks.id]


async def test_250_jobs_come_in_three_pages_of_the_default_100(clock: FakeClock) -> None:
    """Without a limit a page holds 100 jobs; offsets page through all 250 in creation order."""
    sim = build_scenario("healthy", jobs=250, clock=clock)
    async with TestClient(TestServer(sim.app())) as own:
        pages = [await list_jobs(own, f"paginationOffset={offset}") for offset in (0, 100, 200)]
    assert [len(page["values"]) for page in pages] == [100, 100, 50]
    assert [page["moreResultsAvailable"] for page in pages] == [True, True, False]
    ids = [job["id"] for page in pages for job in page["values"]]
    assert ids == [job.id for job in sim.jobs]


@pytest.mark.parametrize(
    "query",
    [
        "paginationLimit=0",
        "paginationLimit=1001",
        "paginationLimit=ten",
        "paginationOffset=-1",
        "paginationOffset=1.5",
        "healthStatus=sick",
        "type=kafka",
        "executionStatus=done",
    ],
)
async def test_bad_listing_parameters_are_400(client: TestClient[Any, Any], query: str) -> None:
    """Out-of-range or non-integer pagination and unknown enum values answer 400."""
    status, body = await call(client, "GET", f"{BASE}/jobs?{query}")
    assert status == 400 and body["code"] == "BadRequest"


async def test_limit_1000_is_accepted(sim: Simulator, client: TestClient[Any, Any]) -> None:
    """The largest page Polaris allows is 1000."""
    for _ in range(3):
        sim.add_job()
    body = await list_jobs(client, "paginationLimit=1000&paginationOffset=1")
    assert len(body["values"]) == 2 and body["moreResultsAvailable"] is False


# -- status changes -----------------------------------------------------------------------
async def test_suspend_and_resume_a_streaming_job(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """Suspend then resume answer the job JSON; both changes are recorded."""
    job = sim.add_job()
    path = f"{BASE}/jobs/{job.id}/status"
    status, body = await call(client, "POST", path, json={"desiredExecutionStatus": "suspended"})
    assert status == 200 and body["executionStatus"] == "suspended"
    assert body["desiredExecutionStatus"] == "suspended"
    assert (await call(client, "GET", path))[1] == {"executionStatus": "suspended"}
    status, body = await call(
        client, "PUT", f"{BASE}/jobs/{job.id}", json={"desiredExecutionStatus": "running"}
    )
    assert status == 200 and body["executionStatus"] == "running"
    assert sim.stats.status_changes == [(job.id, "suspended"), (job.id, "running")]


@pytest.mark.parametrize("desired", ["suspended", "running"])
async def test_suspend_or_resume_of_a_batch_job_is_refused(
    sim: Simulator, client: TestClient[Any, Any], desired: str
) -> None:
    """Only streaming jobs can be suspended or resumed: a batch job answers 400."""
    job = sim.add_job(type="batch")
    status, body = await call(
        client, "POST", f"{BASE}/jobs/{job.id}/status", json={"desiredExecutionStatus": desired}
    )
    assert status == 400 and "Only streaming jobs" in body["message"]
    assert job.execution_status == "running" and sim.stats.status_changes == []


async def test_resume_of_a_running_streaming_job_is_a_no_op(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """Asking a running streaming job to run answers 200 and changes nothing."""
    job = sim.add_job()
    status, body = await call(
        client, "POST", f"{BASE}/jobs/{job.id}/status", json={"desiredExecutionStatus": "running"}
    )
    assert status == 200 and body["executionStatus"] == "running"


async def test_cancel_works_once_then_a_terminal_job_refuses(
    sim: Simulator, client: TestClient[Any, Any], clock: FakeClock
) -> None:
    """Cancel stops any live job; cancelling a terminal one answers 400 naming its status."""
    job = sim.add_job(type="batch")
    path = f"{BASE}/jobs/{job.id}/status"
    status, body = await call(client, "POST", path, json={"desiredExecutionStatus": "canceled"})
    assert status == 200 and body["executionStatus"] == "canceled"
    status, body = await call(client, "POST", path, json={"desiredExecutionStatus": "canceled"})
    assert status == 400 and body["message"] == "Job is already canceled"
    failed = sim.add_job(behaviour="batch_fails", cycle=90)
    clock.advance(20)
    status, body = await call(
        client, "PUT", f"{BASE}/jobs/{failed.id}", json={"desiredExecutionStatus": "canceled"}
    )
    assert status == 400 and body["message"] == "Job is already failed"


@pytest.mark.parametrize(
    "data",
    ["not json", "", "[]", '{"desired": "canceled"}', '{"desiredExecutionStatus": "paused"}'],
)
async def test_bad_status_body_is_400(
    sim: Simulator, client: TestClient[Any, Any], data: str
) -> None:
    """Non-JSON, a missing key or an unknown desired status answer 400."""
    job = sim.add_job()
    status, body = await call(client, "POST", f"{BASE}/jobs/{job.id}/status", data=data)
    assert status == 400 and body["code"] == "BadRequest"
    assert job.execution_status == "running"


async def test_reset_zeroes_counters_of_streaming_jobs_only(
    sim: Simulator, client: TestClient[Any, Any], clock: FakeClock
) -> None:
    """POST /reset restarts a streaming job's counters; a batch job answers 400."""
    stream, batch = sim.add_job(), sim.add_job(type="batch")
    clock.advance(10)
    assert stream.totals["numRowsProcessed"] > 0
    assert (await call(client, "POST", f"{BASE}/jobs/{stream.id}/reset"))[0] == 200
    assert stream.totals["numRowsProcessed"] == 0
    status, body = await call(client, "POST", f"{BASE}/jobs/{batch.id}/reset")
    assert status == 400 and "streaming" in body["message"]


# -- evolution ----------------------------------------------------------------------------
async def test_counters_grow_with_the_clock_and_stop_while_suspended(
    sim: Simulator, client: TestClient[Any, Any], clock: FakeClock
) -> None:
    """Counters follow the fake clock, freeze while suspended and grow again on resume."""
    job = sim.add_job()
    path = f"{BASE}/jobs/{job.id}"

    async def processed() -> float:
        _, body = await call(client, "GET", path + "/metrics")
        return float(Metrics.model_validate(body).totals["numRowsProcessed"])

    first = await processed()
    clock.advance(30)
    grown = await processed()
    assert grown > first
    await call(client, "POST", path + "/status", json={"desiredExecutionStatus": "suspended"})
    clock.advance(30)
    assert await processed() == grown
    await call(client, "POST", path + "/status", json={"desiredExecutionStatus": "running"})
    clock.advance(30)
    assert await processed() > grown


def test_restart_behaviour_drops_counters_once_mid_cycle(sim: Simulator, clock: FakeClock) -> None:
    """A ``restart`` job's counters fall to near zero at half the cycle, then grow again."""
    job = sim.add_job(behaviour="restart", cycle=60)
    clock.advance(29)
    before = job.totals["numRowsProcessed"]
    clock.advance(2)
    after = job.totals["numRowsProcessed"]
    clock.advance(10)
    assert after < before / 10 and job.totals["numRowsProcessed"] > after


def test_metrics_are_the_known_counters_per_job_type(sim: Simulator) -> None:
    """Streaming jobs report skipped-by-filter, batch jobs persisted rows; never both."""
    stream, batch = sim.add_job(), sim.add_job(type="batch")
    assert set(stream.totals) == set(KNOWN_METRICS) - {"numRowsPersisted"}
    assert set(batch.totals) == set(KNOWN_METRICS) - {"numRowsSkippedByFilter"}


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
async def test_every_answer_parses_with_the_client_models(
    sim: Simulator, client: TestClient[Any, Any], clock: FakeClock, behaviour: str
) -> None:
    """Job, status, metrics, logs and progress of every behaviour parse with polaris_models."""
    job = sim.add_job(behaviour=behaviour, cycle=90)
    for _ in range(4):
        clock.advance(20)
        path = f"{BASE}/jobs/{job.id}"
        listed = Job.model_validate((await list_jobs(client))["values"][0])
        single = Job.model_validate((await call(client, "GET", path))[1])
        assert listed == single and single.health_status == job.health_status
        JobStatus.model_validate((await call(client, "GET", path + "/status"))[1])
        assert Metrics.model_validate((await call(client, "GET", path + "/metrics"))[1]).totals
        JobLogs.model_validate((await call(client, "GET", path + "/logs"))[1])
        progress = JobProgress.model_validate((await call(client, "GET", path + "/progress"))[1])
        assert 0.0 <= progress.overall_progress <= 1.0


async def test_batch_fails_with_a_parse_error_and_stays_failed(
    sim: Simulator, client: TestClient[Any, Any], clock: FakeClock
) -> None:
    """batch_fails runs, then fails with cannot_parse_source, a message and a log entry."""
    job = sim.add_job(behaviour="batch_fails", cycle=90)
    assert job.type == "batch" and job.execution_status == "running"
    clock.advance(16)
    model = Job.model_validate((await call(client, "GET", f"{BASE}/jobs/{job.id}"))[1])
    assert model.execution_status == "failed" and model.health_code == "cannot_parse_source"
    assert model.health_detail and model.is_terminal
    logs = JobLogs.model_validate((await call(client, "GET", f"{BASE}/jobs/{job.id}/logs"))[1])
    assert [entry.code for entry in logs.logs] == ["cannot_parse_source"]
    before = job.totals
    clock.advance(300)
    assert job.execution_status == "failed" and job.totals == before


def test_recovers_turns_error_in_the_window_and_ok_after(sim: Simulator, clock: FakeClock) -> None:
    """recovers: ok, then could_not_connect_to_source from 15 s to 50 s, then ok, each cycle."""
    job = sim.add_job(behaviour="recovers", cycle=90)
    seen = []
    for second in (10, 20, 49, 51, 100, 110):
        clock.now = START + second
        seen.append((job.health_status, job.health_code))
    error = ("error", "could_not_connect_to_source")
    assert seen == [("ok", None), error, error, ("ok", None), ("ok", None), error]


async def test_health_changes_move_last_updated_timestamp(
    sim: Simulator, client: TestClient[Any, Any], clock: FakeClock
) -> None:
    """lastUpdatedTimestamp follows health changes and stays put otherwise."""
    job = sim.add_job(behaviour="recovers", cycle=90)

    async def updated() -> str:
        return str((await call(client, "GET", f"{BASE}/jobs/{job.id}"))[1]["lastUpdatedTimestamp"])

    start = await updated()
    clock.advance(10)
    assert await updated() == start
    clock.advance(10)
    turned = await updated()
    assert turned > start and turned.endswith("Z")


def test_skips_rising_only_inside_its_window(sim: Simulator, clock: FakeClock) -> None:
    """Rows skipped by error rise during the trouble window and stay flat outside it."""
    job = sim.add_job(behaviour="skips_rising", cycle=90)
    skipped = []
    for second in (10, 14, 30, 50, 80):
        clock.now = START + second
        skipped.append(job.totals["numRowsSkippedByError"])
    assert skipped[0] == skipped[1] == 0 and skipped[1] < skipped[2] < skipped[3]
    assert skipped[3] == skipped[4]


def test_stalls_stop_processing_but_stay_healthy(sim: Simulator, clock: FakeClock) -> None:
    """A stalled job processes nothing during the window and still reports health ok."""
    job = sim.add_job(behaviour="stalls", cycle=90)
    clock.advance(20)
    stalled = job.totals["numRowsProcessed"]
    clock.advance(20)
    assert job.totals["numRowsProcessed"] == stalled and job.health_status == "ok"
    clock.advance(20)
    assert job.totals["numRowsProcessed"] > stalled


async def test_pending_stuck_never_starts(
    sim: Simulator, client: TestClient[Any, Any], clock: FakeClock
) -> None:
    """A pending_stuck job stays pending without a start time or any rows."""
    job = sim.add_job(behaviour="pending_stuck")
    clock.advance(3600)
    body = (await call(client, "GET", f"{BASE}/jobs/{job.id}"))[1]
    assert body["executionStatus"] == "pending" and body["startedTimestamp"] is None
    assert job.totals["numRowsProcessed"] == 0


def test_budget_climbs_toward_its_parse_exception_limit(sim: Simulator, clock: FakeClock) -> None:
    """A budget job has maxParseExceptions 1000 and its skipped rows approach it."""
    job = sim.add_job(behaviour="budget", cycle=90)
    assert job.max_parse_exceptions == 1000 and sim.add_job().max_parse_exceptions == (
        UNLIMITED_PARSE_EXCEPTIONS
    )
    clock.advance(45)
    half = job.totals["numRowsSkippedByError"]
    clock.advance(600)
    full = job.totals["numRowsSkippedByError"]
    assert 0 < half < full < 1000 and full >= 800


def test_static_error_never_changes(sim: Simulator, clock: FakeClock) -> None:
    """static_error keeps one error code and message for ever."""
    job = sim.add_job(behaviour="static_error")
    first = (job.health_status, job.health_code, job.health_message)
    clock.advance(10_000)
    assert first[0] == "error" and first[2]
    assert (job.health_status, job.health_code, job.health_message) == first


# -- faults -------------------------------------------------------------------------------
async def test_latency_is_awaited_before_each_api_request(
    sim: Simulator, client: TestClient[Any, Any], sleep: RecordingSleep
) -> None:
    """faults.latency is slept through the injected sleep on API requests, not admin ones."""
    sim.faults.latency = 0.25
    await list_jobs(client)
    await call(client, "GET", "/_sim/stats")
    assert sleep.delays == [0.25]


async def test_error_status_fails_n_requests_then_clears_itself(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """error_status 503 with error_count 2 fails two requests with Retry-After, then heals."""
    sim.faults.configure({"error_status": 503, "error_count": 2, "retry_after": 7})
    for _ in range(2):
        async with client.get(f"{BASE}/jobs", headers=AUTH) as response:
            assert response.status == 503 and response.headers["Retry-After"] == "7"
            assert (await response.json())["code"] == "ServiceUnavailable"
    assert (await call(client, "GET", f"{BASE}/jobs"))[0] == 200
    assert sim.faults.error_status is None


async def test_500_has_no_retry_after_and_lasts_until_cleared(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """Without error_count the error stays until cleared; Retry-After is for 429/503 only."""
    sim.faults.configure({"error_status": 500, "retry_after": 3})
    for _ in range(3):
        async with client.get(f"{BASE}/jobs", headers=AUTH) as response:
            assert response.status == 500 and "Retry-After" not in response.headers
    sim.faults.clear()
    assert (await call(client, "GET", f"{BASE}/jobs"))[0] == 200


async def test_rate_limit_answers_429_with_retry_after(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """rate_limit_count turns the next N requests into 429 with Retry-After."""
    sim.faults.configure({"rate_limit_count": 1, "retry_after": 0.5})
    async with client.get(f"{BASE}/jobs", headers=AUTH) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "0.5"
    assert (await call(client, "GET", f"{BASE}/jobs"))[0] == 200


@pytest.mark.parametrize(
    ("kind", "suffix", "model"),
    [
        ("list", "", None),
        ("job", "/{id}", Job),
        ("status", "/{id}/status", JobStatus),
        ("metrics", "/{id}/metrics", Metrics),
        ("logs", "/{id}/logs", JobLogs),
        ("progress", "/{id}/progress", JobProgress),
    ],
)
async def test_malformed_types_fail_the_client_models(
    sim: Simulator,
    client: TestClient[Any, Any],
    kind: str,
    suffix: str,
    model: type[pydantic.BaseModel] | None,
) -> None:
    """'types' answers valid JSON that every model of that endpoint rejects."""
    job = sim.add_job()
    sim.faults.configure({"malformed": "types", "malformed_count": 1, "endpoints": [kind]})
    status, body = await call(client, "GET", f"{BASE}/jobs" + suffix.format(id=job.id))
    assert status == 200
    with pytest.raises(pydantic.ValidationError):
        if model is None:
            [Job.model_validate(value) for value in body["values"]]
            pydantic.TypeAdapter(bool).validate_python(body["moreResultsAvailable"], strict=True)
        else:
            model.model_validate(body)
    assert sim.faults.malformed is None


@pytest.mark.parametrize("mode", ["html", "truncated"])
async def test_malformed_html_and_truncated_are_not_json(
    sim: Simulator, client: TestClient[Any, Any], mode: str
) -> None:
    """'html' answers a 200 HTML page and 'truncated' cut JSON, for malformed_count requests."""
    sim.add_job()
    sim.faults.configure({"malformed": mode, "malformed_count": 1})
    async with client.get(f"{BASE}/jobs", headers=AUTH) as response:
        assert response.status == 200
        with pytest.raises(ValueError):
            await response.json(content_type=None)
    assert (await list_jobs(client))["values"]


async def test_hang_sleeps_before_answering_then_clears(
    sim: Simulator, client: TestClient[Any, Any], sleep: RecordingSleep
) -> None:
    """hang with hang_count 1 sleeps that long once, then requests answer at once."""
    sim.faults.configure({"hang": 30, "hang_count": 1})
    await list_jobs(client)
    await list_jobs(client)
    assert sleep.delays == [30] and sim.faults.hang == 0


async def test_faults_only_hit_the_chosen_endpoints(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """With endpoints=["metrics"] the listing works and metrics fail."""
    job = sim.add_job()
    sim.faults.configure({"error_status": 502, "endpoints": ["metrics"]})
    assert (await call(client, "GET", f"{BASE}/jobs"))[0] == 200
    assert (await call(client, "GET", f"{BASE}/jobs/{job.id}/metrics"))[0] == 502


async def test_faults_never_touch_the_admin_routes(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """A broken API can still be repaired over /_sim/faults."""
    sim.faults.configure({"error_status": 503})
    async with client.post("/_sim/faults", json={}) as response:
        assert response.status == 200 and (await response.json())["error_status"] is None
    assert (await call(client, "GET", f"{BASE}/jobs"))[0] == 200


def test_invalid_fault_settings_are_refused(sim: Simulator) -> None:
    """Unknown fields and values out of range raise ValueError and change nothing."""
    sim.faults.latency = 1.0
    for data in (
        {"bogus": 1},
        {"error_status": 200},
        {"malformed": "xml"},
        {"endpoints": ["everything"]},
        {"endpoints": 3},
        {"hang_count": -1},
        {"latency": True},
    ):
        with pytest.raises(ValueError):
            sim.faults.configure(data)
    assert sim.faults.latency == 1.0


# -- stats ----------------------------------------------------------------------------------
async def test_stats_count_requests_by_endpoint_and_log_paths_as_sent(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """Stats count API requests by kind and log the raw path and query of each."""
    job = sim.add_job()
    await list_jobs(client, "healthStatus=error")
    await call(client, "GET", f"{BASE}/jobs/{job.id}/metrics")
    await call(client, "GET", f"{BASE}/jobs/..%2Fsecret/status")
    await call(client, "GET", "/_sim/stats")
    assert sim.stats.requests == 3
    assert sim.stats.by_endpoint == {"list": 1, "metrics": 1, "status": 1}
    logged = [(method, path, query) for _, method, path, query in sim.stats.request_log]
    assert logged[0] == ("GET", f"{BASE}/jobs", "healthStatus=error")
    assert logged[2][1] == f"{BASE}/jobs/..%2Fsecret/status"
    sim.stats.reset()
    assert sim.stats.requests == 0 and not sim.stats.request_log and not sim.stats.by_endpoint


async def test_stats_track_the_most_requests_in_flight(sim: Simulator) -> None:
    """max_in_flight is the largest number of API requests being answered at once."""
    arrived, gate = asyncio.Event(), asyncio.Event()

    async def held(delay: float) -> None:
        if sim.stats.in_flight == 5:
            arrived.set()
        await gate.wait()

    sim.sleep = held
    sim.faults.latency = 1.0
    async with TestClient(TestServer(sim.app())) as own:
        requests = [asyncio.ensure_future(list_jobs(own)) for _ in range(5)]
        await arrived.wait()
        gate.set()
        await asyncio.gather(*requests)
    assert sim.stats.max_in_flight == 5 and sim.stats.in_flight == 0


# -- admin routes ---------------------------------------------------------------------------
async def test_admin_routes_add_and_change_jobs_without_auth(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """/_sim/jobs adds jobs and pins health, status and totals; the API then shows them."""
    async with client.post("/_sim/jobs", json={"count": 2, "type": "batch"}) as response:
        ids = (await response.json())["ids"]
    assert len(ids) == 2 and all(sim.job(job_id).type == "batch" for job_id in ids)
    change = {
        "health": "error",
        "code": "row_too_large",
        "message": "too big",
        "executionStatus": "failed",
        "totals": {"numRowsProcessed": 42},
    }
    async with client.post(f"/_sim/jobs/{ids[0]}", json=change) as response:
        assert response.status == 200
        assert (await response.json())["totals"]["numRowsProcessed"] == 42
    job = Job.model_validate((await call(client, "GET", f"{BASE}/jobs/{ids[0]}"))[1])
    assert (job.health_code, job.health_detail, job.execution_status) == (
        "row_too_large",
        "too big",
        "failed",
    )
    async with client.get("/_sim/jobs") as response:
        assert [summary["id"] for summary in await response.json()] == ids


async def test_deleted_job_is_gone_from_listings_and_answers_404(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """DELETE /_sim/jobs/{id} removes a job as deleting it in Polaris would."""
    gone, kept = sim.add_job(table="gone"), sim.add_job(table="kept")
    async with client.delete(f"/_sim/jobs/{gone.id}") as response:
        assert response.status == 200
    status, _ = await call(client, "GET", f"{BASE}/jobs/{gone.id}")
    assert status == 404
    listed = (await call(client, "GET", f"{BASE}/jobs"))[1]["values"]
    assert [j["id"] for j in listed if j["id"] in (gone.id, kept.id)] == [kept.id]
    async with client.delete(f"/_sim/jobs/{gone.id}") as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/_sim/jobs", {"count": 1, "behaviour": "explodes"}, 400),
        ("/_sim/jobs", {"colour": "red"}, 400),
        ("/_sim/jobs/nope", {"health": "error"}, 404),
        ("/_sim/faults", {"latency": -1}, 400),
    ],
)
async def test_admin_routes_refuse_bad_requests(
    client: TestClient[Any, Any], path: str, body: dict[str, Any], status: int
) -> None:
    """Bad admin requests answer 400 (or 404 for an unknown job) with an error body."""
    async with client.post(path, json=body) as response:
        assert response.status == status and (await response.json())["message"]


async def test_admin_stats_and_faults_round_trip(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """/_sim/faults shows what was set; /_sim/stats reports API requests; reset clears them."""
    await list_jobs(client)
    fault = {"latency": 0.5, "endpoints": ["list"]}
    async with client.post("/_sim/faults", json=fault) as response:
        assert (await response.json())["endpoints"] == ["list"]
    async with client.get("/_sim/faults") as response:
        assert (await response.json())["latency"] == 0.5
    async with client.get("/_sim/stats?log=5") as response:
        stats = await response.json()
    assert stats["requests"] == 1 and stats["by_endpoint"] == {"list": 1}
    assert stats["request_log"][0][1:] == ["GET", f"{BASE}/jobs", ""]
    async with client.post("/_sim/stats/reset") as response:
        assert (await response.json())["requests"] == 0


# -- scenarios ------------------------------------------------------------------------------
def test_unknown_scenario_names_the_valid_ones() -> None:
    """An unknown scenario raises ValueError listing every valid name."""
    with pytest.raises(ValueError) as error:
        build_scenario("chaos")
    assert all(name in str(error.value) for name in SCENARIOS)


def test_demo_has_a_job_that_goes_unhealthy_and_recovers_within_two_minutes(
    clock: FakeClock,
) -> None:
    """Polling the demo every 5 s for 2 minutes shows a job turn error and then ok again."""
    sim = build_scenario("demo", clock=clock)
    assert 7 <= len(sim.jobs) <= 10
    history: dict[str, list[str]] = {job.id: [] for job in sim.jobs}
    for _ in range(0, 120, 5):
        for job in sim.jobs:
            history[job.id].append(job.health_status)
        clock.advance(5)
    recovered = [
        seen for seen in history.values() if "error" in seen and "ok" in seen[seen.index("error") :]
    ]
    assert recovered
    assert sum(seen[0] == "ok" for seen in history.values()) > len(sim.jobs) / 2


def test_scenarios_are_deterministic_for_a_seed(clock: FakeClock) -> None:
    """The same seed gives the same job ids; another seed gives others."""
    ids = [job.id for job in build_scenario("demo", clock=clock, seed=3).jobs]
    assert ids == [job.id for job in build_scenario("demo", clock=clock, seed=3).jobs]
    assert ids != [job.id for job in build_scenario("demo", clock=clock, seed=4).jobs]


def test_storm_turns_every_job_unhealthy_at_storm_at_then_recovers(clock: FakeClock) -> None:
    """storm: all jobs ok before storm_at, all in error during the storm, all ok after."""
    sim = build_scenario("storm", jobs=20, clock=clock, storm_at=30, storm_for=60)
    states = []
    for second in (29, 31, 89, 91, 600):
        clock.now = START + second
        states.append({job.health_status for job in sim.jobs})
    assert states == [{"ok"}, {"error"}, {"error"}, {"ok"}, {"ok"}]


async def test_large_scenario_is_mostly_healthy_and_filters_server_side(
    clock: FakeClock,
) -> None:
    """large: 5,000 jobs, a few percent in error, some batch; healthStatus=error lists those."""
    sim = build_scenario("large", clock=clock)
    assert len(sim.jobs) == 5000 and build_scenario("empty", clock=clock).jobs == []
    async with TestClient(TestServer(sim.app())) as own:
        errors = await list_jobs(own, "healthStatus=error&paginationLimit=1000")
        batch = await list_jobs(own, "type=batch&paginationLimit=1000")
    assert 50 <= len(errors["values"]) <= 250 and not errors["moreResultsAvailable"]
    assert 100 <= len(batch["values"]) <= 1000


async def test_serve_answers_over_a_real_socket(clock: FakeClock) -> None:
    """serve() starts a TCP server that a plain ClientSession can query."""
    sim = build_scenario("healthy", jobs=3, clock=clock)
    runner = await serve(sim, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}{BASE}/jobs", headers=AUTH) as response:
                assert response.status == 200 and len((await response.json())["values"]) == 3
    finally:
        await runner.cleanup()
