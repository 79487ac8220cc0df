"""The Polaris simulator, through a real aiohttp client against its test server."""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from watchdog.cli import main as cli_main
from watchdog.devtools.polaris_sim import hostile
from watchdog.devtools.polaris_sim.jobs import BEHAVIOURS
from watchdog.devtools.polaris_sim.simulator import (
    SCENARIOS,
    SimProject,
    Simulator,
    build_projects,
    build_scenario,
    project_settings,
    serve,
)
from watchdog.polaris.client import PolarisClient
from watchdog.polaris.models import (
    KNOWN_METRICS,
    UNLIMITED_PARSE_EXCEPTIONS,
    Job,
    JobLogs,
    JobProgress,
    JobStatus,
    Metrics,
    parse_timestamp,
    read_model,
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
        listed = read_model(Job, (await list_jobs(client))["values"][0])
        single = read_model(Job, (await call(client, "GET", path))[1])
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
    model = read_model(Job, (await call(client, "GET", f"{BASE}/jobs/{job.id}"))[1])
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
    model: type[Any] | None,
) -> None:
    """'types' answers valid JSON that every model of that endpoint rejects."""
    job = sim.add_job()
    sim.faults.configure({"malformed": "types", "malformed_count": 1, "endpoints": [kind]})
    status, body = await call(client, "GET", f"{BASE}/jobs" + suffix.format(id=job.id))
    assert status == 200
    with pytest.raises(pydantic.ValidationError):
        if model is None:
            [read_model(Job, value) for value in body["values"]]
            pydantic.TypeAdapter(bool).validate_python(body["moreResultsAvailable"], strict=True)
        else:
            read_model(model, body)
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
    job = read_model(Job, (await call(client, "GET", f"{BASE}/jobs/{ids[0]}"))[1])
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


# -- several projects -----------------------------------------------------------------------
@pytest.fixture
def second(sim: Simulator) -> SimProject:
    """A second project of the same organisation (same base URL), with its own key."""
    return sim.add_project(project_id="other-project", api_key="other-key")


OTHER = "/v1/projects/other-project"
OTHER_AUTH = {"Authorization": "Basic other-key"}


async def test_projects_at_one_base_url_list_only_their_own_jobs(
    sim: Simulator, second: SimProject, client: TestClient[Any, Any]
) -> None:
    """Each project answers its own jobs at /v1/projects/{id}, with its own key."""
    mine = [sim.add_job(table="clicks").id, sim.add_job(table="orders").id]
    theirs = [second.add_job(table="clicks").id]
    listed = (await list_jobs(client))["values"]
    status, other = await call(client, "GET", f"{OTHER}/jobs", headers=OTHER_AUTH)
    assert [job["id"] for job in listed] == mine and status == 200
    assert [job["id"] for job in other["values"]] == theirs
    status, _ = await call(client, "GET", f"{OTHER}/jobs/{mine[0]}", headers=OTHER_AUTH)
    assert status == 404


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/metrics"), ("POST", "/status")]
)
async def test_another_projects_key_is_refused_with_403_and_changes_nothing(
    sim: Simulator, second: SimProject, client: TestClient[Any, Any], method: str, suffix: str
) -> None:
    """A key of one project opens no other project of the organisation: 403, no change."""
    job = second.add_job()
    body = {"desiredExecutionStatus": "suspended"}
    status, error = await call(client, method, f"{OTHER}/jobs/{job.id}{suffix}", json=body)
    assert status == 403 and error["code"] == "Forbidden" and "other-project" in error["message"]
    assert job.execution_status == "running" and second.stats.status_changes == []


async def test_each_project_keeps_its_own_faults_stats_and_keys(
    sim: Simulator, second: SimProject, client: TestClient[Any, Any]
) -> None:
    """A fault in one project leaves the other alone; each counts only its own requests."""
    second.faults.configure({"error_status": 503})
    assert (await call(client, "GET", f"{BASE}/jobs"))[0] == 200
    assert (await call(client, "GET", f"{OTHER}/jobs", headers=OTHER_AUTH))[0] == 503
    await call(client, "GET", f"{OTHER}/jobs")  # the wrong key, recorded where it went
    assert sim.stats.requests == 1 and second.stats.requests == 2
    assert sim.stats.keys == {"sim-key": 1}
    assert second.stats.keys == {"other-key": 1, "sim-key": 1}


async def test_unknown_project_counts_as_a_stray_and_a_bad_key_is_still_401(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """A path naming no project is 404 with a good key, 401 without; both count as strays."""
    assert (await call(client, "GET", "/v1/projects/nope/jobs"))[0] == 404
    status, _ = await call(client, "GET", "/v1/projects/nope/jobs", headers={})
    assert status == 401 and sim.strays.requests == 2 and sim.stats.requests == 0


async def test_two_organisations_on_two_servers_never_see_each_others_keys(
    clock: FakeClock,
) -> None:
    """With one client per organisation, each server only ever sees its own project's key."""
    first = build_scenario("healthy", jobs=3, clock=clock, project_id="p-a", api_key="key-a")
    other = build_scenario("healthy", jobs=2, clock=clock, project_id="p-b", api_key="key-b")
    async with (
        TestServer(first.app()) as server_a,
        TestServer(other.app()) as server_b,
        aiohttp.ClientSession() as session,
    ):
        clients = [
            PolarisClient(session, str(server.make_url("/")), sim.project_id, SecretStr(key))
            for server, sim, key in ((server_a, first, "key-a"), (server_b, other, "key-b"))
        ]
        listings = [await client.list_jobs() for client in clients]
    assert [len(listing.jobs) for listing in listings] == [3, 2]
    assert first.stats.keys == {"key-a": 1} and other.stats.keys == {"key-b": 1}


async def test_a_stranger_key_is_recorded_and_shown_only_as_a_hash(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """A key the simulator never issued is refused, and kept only as unknown:<hash>."""
    headers = {"Authorization": "Basic pok_RealProductionSecret"}
    assert (await call(client, "GET", f"{BASE}/jobs", headers=headers))[0] == 401
    async with client.get("/_sim/stats") as response:
        text = await response.text()
    (label,) = sim.stats.keys
    assert label.startswith("unknown:") and "RealProductionSecret" not in label + text


def test_projects_need_their_own_id_and_keys(sim: Simulator) -> None:
    """A taken project id, a key another project has, or an empty key raise ValueError."""
    sim.add_project(project_id="taken", api_key="k2")
    for kwargs in (
        {"project_id": "taken", "api_key": "k3"},
        {"project_id": "p3", "api_key": "k2"},
        {"project_id": "p3", "api_key": "sim-key"},
        {"project_id": "p3", "api_key": "k3", "readonly_keys": ["read-key"]},
        {"project_id": "a/b", "api_key": "k3"},
    ):
        with pytest.raises(ValueError):
            sim.add_project(**kwargs)
    with pytest.raises(ValueError):
        sim.api_key = "k2"
    assert [p.project_id for p in sim.projects] == ["demo-project", "taken"]


def test_more_projects_keep_the_first_projects_job_ids(clock: FakeClock) -> None:
    """Adding projects changes no job id of the first; the others' ids are their own."""
    alone = build_scenario("demo", clock=clock, seed=5)
    three = build_projects(["demo", "demo"], projects=3, clock=clock, seed=5)
    assert [job.id for job in three.jobs] == [job.id for job in alone.jobs]
    first, second_, third = three.projects
    assert (second_.project_id, second_.api_key) == ("demo-project-2", "sim-key-2")
    assert second_.scenarios == ["demo"] and third.scenarios == ["healthy"]
    assert not {job.id for job in first.jobs} & {job.id for job in second_.jobs}
    again = build_projects(["demo", "demo"], projects=3, clock=clock, seed=5)
    assert [job.id for job in again.projects[1].jobs] == [job.id for job in second_.jobs]


@pytest.mark.parametrize(
    ("scenarios", "projects"), [(["demo"], 0), (["demo", "storm"], 1), (["demo", "chaos"], None)]
)
def test_bad_project_setups_are_refused(scenarios: list[str], projects: int | None) -> None:
    """No projects, more scenarios than projects or an unknown scenario: ValueError."""
    with pytest.raises(ValueError):
        build_projects(scenarios, projects=projects)


def test_project_settings_are_toml_projects_and_export_lines(clock: FakeClock) -> None:
    """The snippet parses as [[projects]] naming key variables the export lines set."""
    sim = build_projects(["demo"], projects=2, clock=clock)
    text = project_settings(sim, "http://127.0.0.1:8181")
    blocks, _, shell = text.partition("\nexport ")
    projects = tomllib.loads(blocks)["projects"]
    assert [(p["name"], p["id"], p["url"]) for p in projects] == [
        ("sim1", "demo-project", "http://127.0.0.1:8181"),
        ("sim2", "demo-project-2", "http://127.0.0.1:8181"),
    ]
    exports = dict(line.split("=", 1) for line in ("export " + shell).splitlines())
    assert exports == {
        f"export {projects[0]['api_key_env']}": "sim-key",
        f"export {projects[1]['api_key_env']}": "sim-key-2",
    }


async def test_admin_routes_address_a_project_with_the_project_parameter(
    sim: Simulator, second: SimProject, client: TestClient[Any, Any]
) -> None:
    """?project= picks the project for jobs, faults and stats; without it, the first."""
    async with client.post("/_sim/jobs?project=other-project", json={"count": 2}) as response:
        ids = (await response.json())["ids"]
    assert [job.id for job in second.jobs] == ids and sim.jobs == []
    async with client.post("/_sim/faults?project=other-project", json={"latency": 2}) as response:
        assert response.status == 200
    assert second.faults.latency == 2 and sim.faults.latency == 0
    async with client.get("/_sim/stats?project=other-project") as response:
        assert (await response.json())["requests"] == 0
    async with client.get("/_sim/projects") as response:
        listed = await response.json()
    assert [(p["id"], p["api_key"], p["jobs"]) for p in listed] == [
        ("demo-project", "sim-key", 0),
        ("other-project", "other-key", 2),
    ]
    async with client.get("/_sim/jobs?project=nope") as response:
        assert response.status == 404 and "other-project" in (await response.json())["message"]


async def test_simulate_serves_several_projects_and_prints_their_settings(
    tmp_path: Path,
) -> None:
    """`simulate --projects 2` prints ids, keys and a [[projects]] snippet that work."""
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "watchdog", "simulate", "--port", "0", "--projects", "2"],
        *["--scenario", "storm", "--jobs", "4"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while sum(line.startswith("export ") for line in lines) < 2:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"simulate ended early: {lines}"
            lines.append(line.decode())
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
    text = "".join(lines)
    assert "demo-project-2  key sim-key-2  healthy, 4 jobs" in text
    assert "demo-project    key sim-key    storm, 4 jobs" in text
    projects = tomllib.loads(text[text.index("[[projects]]") : text.index("export ")])
    assert [p["api_key_env"] for p in projects["projects"]] == [
        "POLARIS_API_KEY_SIM1",
        "POLARIS_API_KEY_SIM2",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["--projects", "0"],
        ["--projects", "1", "--scenario", "demo", "--scenario", "storm"],
        ["--scenario", "chaos"],
    ],
)
def test_simulate_refuses_bad_project_setups_with_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad --projects/--scenario combinations end in one line on stderr and exit 2."""
    assert cli_main(["simulate", "--port", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polaris-watchdog: ") and len(err.splitlines()) == 1


# -- hostile answers ("never silently blind") ----------------------------------------------
async def test_endless_listing_has_new_job_ids_on_every_page(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """endless=new: every page is full, says more follow, and lists ids never seen before."""
    real = sim.add_job()
    sim.faults.configure({"endless": "new"})
    seen: set[str] = set()
    for offset in (0, 50, 100, 100):
        page = await list_jobs(client, f"paginationLimit=50&paginationOffset={offset}")
        ids = {read_model(Job, value).id for value in page["values"]}
        assert page["moreResultsAvailable"] is True and len(ids) == 50
        assert not ids & seen and real.id not in ids
        seen |= ids
    phantom = next(iter(seen))
    assert (await call(client, "GET", f"{BASE}/jobs/{phantom}"))[0] == 404


async def test_repeating_listing_answers_the_first_page_at_every_offset(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """endless=repeat: whatever the offset, the same first page and moreResultsAvailable."""
    ids = [sim.add_job().id for _ in range(3)]
    sim.faults.configure({"endless": "repeat"})
    for offset in (0, 2, 2, 500):
        page = await list_jobs(client, f"paginationLimit=2&paginationOffset={offset}")
        assert [job["id"] for job in page["values"]] == ids[:2]
        assert page["moreResultsAvailable"] is True


async def test_a_huge_listing_streams_megabytes_of_valid_jobs_without_a_length(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """huge_mb=3: a chunked answer of at least 3 MB that still parses as a listing."""
    sim.add_job()
    sim.faults.configure({"huge_mb": 3, "endpoints": ["list"]})
    async with client.get(f"{BASE}/jobs", headers=AUTH) as response:
        assert response.status == 200 and response.content_length is None
        body = b"".join([chunk async for chunk in response.content.iter_chunked(1 << 16)])
    listing = json.loads(body)
    assert len(body) >= 3_000_000 and listing["moreResultsAvailable"] is False
    assert len({read_model(Job, value).id for value in listing["values"]}) > 1000


def test_huge_listing_is_made_in_bounded_chunks(sim: Simulator) -> None:
    """The listing generator never holds more than about 64 KiB; together they are valid."""
    chunks = list(hostile.huge_listing(sim.default.phantoms(), 1_000_000))
    assert max(len(chunk) for chunk in chunks) < 70_000
    body = b"".join(chunks)
    assert len(body) >= 1_000_000 and json.loads(body)["values"]


async def test_a_huge_answer_elsewhere_is_padded_and_keeps_its_fields(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """On metrics, huge_mb adds a megabytes-long padding field before the real totals."""
    job = sim.add_job()
    sim.faults.configure({"huge_mb": 1.5})
    async with client.get(f"{BASE}/jobs/{job.id}/metrics", headers=AUTH) as response:
        body = await response.read()
    data = json.loads(body)
    assert len(body) >= 1_500_000 and len(data["padding"]) > 1_000_000
    assert Metrics.model_validate(data).totals == job.totals


@pytest.mark.parametrize(
    ("mode", "literal", "expected"),
    [
        ("negative", None, lambda v: isinstance(v, int) and v < 0),
        ("nan", b"NaN", lambda v: v != v),
        ("infinity", b"Infinity", lambda v: v in (float("inf"), float("-inf"))),
        ("huge", b"1e+308", lambda v: v == 1e308),
        ("strings", None, lambda v: isinstance(v, str)),
        ("null", b"null", lambda v: v is None),
    ],
)
async def test_hostile_metrics_spoil_only_the_chosen_jobs(
    sim: Simulator,
    client: TestClient[Any, Any],
    clock: FakeClock,
    mode: str,
    literal: bytes | None,
    expected: Any,
) -> None:
    """hostile_metrics gives the chosen job impossible counters; other jobs stay sane."""
    spoiled, sane = sim.add_job(), sim.add_job()
    clock.advance(30)
    sim.default.set_faults({"hostile_metrics": {spoiled.id: mode}})
    async with client.get(f"{BASE}/jobs/{spoiled.id}/metrics", headers=AUTH) as response:
        raw = await response.read()
    totals = json.loads(raw)["totals"]  # Python's json reads NaN and Infinity literals
    assert set(totals) == set(sane.totals) and all(expected(v) for v in totals.values())
    assert literal is None or literal in raw
    _, body = await call(client, "GET", f"{BASE}/jobs/{sane.id}/metrics")
    assert Metrics.model_validate(body).totals == sane.totals


async def test_missing_metrics_and_every_job_wildcard(
    sim: Simulator, client: TestClient[Any, Any]
) -> None:
    """hostile_metrics {"*": "missing"} answers empty totals for every job."""
    jobs = [sim.add_job(), sim.add_job(type="batch")]
    sim.faults.configure({"hostile_metrics": {"*": "missing"}})
    for job in jobs:
        assert await call(client, "GET", f"{BASE}/jobs/{job.id}/metrics") == (200, {"totals": {}})


@pytest.mark.parametrize("mode", ["garbage", "impossible", "empty", "number", "null"])
async def test_bad_timestamps_make_the_chosen_jobs_timestamps_unreadable(
    sim: Simulator, client: TestClient[Any, Any], mode: str
) -> None:
    """bad_timestamps spoils created/updated timestamps of one job in listing and GET."""
    spoiled, sane = sim.add_job(), sim.add_job()
    sim.faults.configure({"bad_timestamps": {spoiled.id: mode}})
    listed = {job["id"]: job for job in (await list_jobs(client))["values"]}
    single = (await call(client, "GET", f"{BASE}/jobs/{spoiled.id}"))[1]
    for job in (listed[spoiled.id], single):
        for name in ("createdTimestamp", "lastUpdatedTimestamp"):
            assert parse_timestamp(job[name]) is None, (name, job[name])
    assert parse_timestamp(listed[sane.id]["lastUpdatedTimestamp"]) is not None
    sim.faults.clear()
    fixed = (await call(client, "GET", f"{BASE}/jobs/{spoiled.id}"))[1]
    assert parse_timestamp(fixed["createdTimestamp"]) is not None


async def test_trickle_sends_the_body_in_pieces_after_pauses(
    sim: Simulator, client: TestClient[Any, Any], sleep: RecordingSleep
) -> None:
    """trickle pauses before every trickle_bytes piece; the body arrives whole, with a length."""
    job = sim.add_job()
    sim.faults.configure({"trickle": 0.5, "trickle_bytes": 4, "endpoints": ["status"]})
    async with client.get(f"{BASE}/jobs/{job.id}/status", headers=AUTH) as response:
        body = await response.read()
        assert response.content_length == len(body)
    assert json.loads(body) == {"executionStatus": "running"}
    assert sleep.delays == [0.5] * -(-len(body) // 4)


async def test_a_trickled_answer_outlasts_a_real_clients_total_timeout(clock: FakeClock) -> None:
    """Bytes every 50 ms keep a read alive, so only the total timeout ends the request."""
    sim = Simulator(clock=clock)  # the real asyncio.sleep: this one takes real time
    job = sim.add_job()
    sim.faults.configure({"trickle": 0.05})
    async with TestClient(TestServer(sim.app())) as own:
        timeout = aiohttp.ClientTimeout(total=0.4, sock_read=0.3)
        with pytest.raises(TimeoutError) as timed_out:
            async with own.get(f"{BASE}/jobs/{job.id}", headers=AUTH, timeout=timeout) as resp:
                assert resp.status == 200  # the headers came at once
                await resp.read()
        assert not isinstance(timed_out.value, aiohttp.ServerTimeoutError)  # not sock_read
        sim.faults.clear()
        assert (await call(own, "GET", f"{BASE}/jobs/{job.id}"))[0] == 200


@pytest.mark.parametrize(
    "data",
    [
        {"endless": "forever"},
        {"huge_mb": -1},
        {"huge_mb": 1e9},
        {"trickle": -0.5},
        {"trickle_bytes": 0},
        {"hostile_metrics": "nan"},
        {"hostile_metrics": {"job": "weird"}},
        {"bad_timestamps": {"": "garbage"}},
        {"bad_timestamps": {"job": "yesterday"}},
    ],
)
def test_invalid_hostile_settings_are_refused_and_change_nothing(
    sim: Simulator, data: dict[str, Any]
) -> None:
    """Bad hostile fault values raise ValueError and leave the current faults as they were."""
    sim.faults.configure({"endless": "new"})
    with pytest.raises(ValueError):
        sim.faults.configure(data)
    assert sim.faults.endless == "new"


async def test_hostile_faults_over_the_admin_route_name_real_jobs_of_that_project(
    sim: Simulator, second: SimProject, client: TestClient[Any, Any]
) -> None:
    """/_sim/faults?project= sets hostile faults there; a job it lacks is a 400, no change."""
    mine, theirs = sim.add_job(), second.add_job()
    wrong = {"hostile_metrics": {mine.id: "nan"}}
    async with client.post("/_sim/faults?project=other-project", json=wrong) as response:
        assert response.status == 400 and mine.id in (await response.json())["message"]
    right = {"hostile_metrics": {theirs.id: "nan"}, "endless": "repeat"}
    async with client.post("/_sim/faults?project=other-project", json=right) as response:
        assert (await response.json())["hostile_metrics"] == {theirs.id: "nan"}
    assert second.faults.endless == "repeat" and sim.faults.endless is None
    _, page = await call(client, "GET", f"{BASE}/jobs")
    assert page["moreResultsAvailable"] is False


def test_simulator_modules_import_each_other_without_a_circle() -> None:
    """The simulator's modules form a DAG and none imports another only for type checking."""
    package = Path(hostile.__file__).parent
    imports: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "watchdog.devtools.polaris_sim":
                    names |= {alias.name for alias in node.names}
                elif node.module.startswith("watchdog.devtools.polaris_sim."):
                    names.add(node.module.rsplit(".", 1)[1])
            assert not (isinstance(node, ast.Name) and node.id == "TYPE_CHECKING"), path.name
        imports[path.stem] = names
    order: list[str] = []
    while len(order) < len(imports):
        ready = [m for m in imports if m not in order and imports[m] <= set(order)]
        assert ready, f"import circle among {set(imports) - set(order)}"
        order += sorted(ready)
    assert order[-1] == "simulator"
