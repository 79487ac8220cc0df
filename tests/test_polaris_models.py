"""The typed models of Polaris answers: tolerant of what Polaris adds, strict on garbage."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.polaris.client import PolarisClient
from watchdog.polaris.errors import PolarisMalformedError
from watchdog.polaris.models import (
    UNLIMITED_PARSE_EXCEPTIONS,
    ApiErrorBody,
    Job,
    JobLogs,
    JobProgress,
    Metrics,
    parse_timestamp,
    read_model,
)

JOB_ID = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"


def job(**fields: Any) -> Job:
    return read_model(Job, {"id": JOB_ID, **fields})


# -- jobs -------------------------------------------------------------------------------------
def test_unknown_fields_are_ignored_and_missing_optional_ones_defaulted() -> None:
    """A bare id is a job; fields Polaris adds later change nothing."""
    bare = job()
    assert (bare.type, bare.execution_status, bare.health, bare.table) == (
        "unknown",
        "unknown",
        None,
        None,
    )
    assert (bare.health_status, bare.health_code, bare.health_detail) == (None, None, "")
    assert bare.updated_at is None and bare.parse_exception_limit is None
    richer = job(type="streaming", spareField={"x": [1]}, target={"tableName": "t", "new": 1})
    assert richer.type == "streaming" and richer.table == "t"


def test_an_ok_health_has_no_code_and_no_detail() -> None:
    """{status: ok} is healthy and says nothing more."""
    healthy = job(health={"status": "ok"})
    assert (healthy.health_status, healthy.health_code, healthy.health_detail) == ("ok", None, "")


def test_a_warn_health_takes_its_detail_from_the_log_entry() -> None:
    """warn has a code and a log entry whose message explains it."""
    log = {"timestamp": "2024-08-01T10:11:12Z", "healthStatus": "warn", "message": "rows skipped"}
    warned = job(health={"status": "warn", "code": "invalid_rows_found", "log": log})
    assert (warned.health_code, warned.health_detail) == ("invalid_rows_found", "rows skipped")
    assert job(health={"status": "warn"}).health_code == "unknown"


def test_an_error_health_prefers_its_message_then_the_log_message() -> None:
    """error's detail is its message, else its log entry's message, else empty."""
    log = {"message": "from the log"}
    with_message = job(health={"status": "error", "code": "x", "message": "direct", "log": log})
    assert with_message.health_detail == "direct"
    without = job(health={"status": "error", "code": "x", "log": log})
    assert (without.health_code, without.health_detail) == ("x", "from the log")
    assert job(health={"status": "error"}).health_detail == ""


def test_an_unknown_health_status_gives_no_health_but_a_readable_job() -> None:
    """A status Polaris invents later must not make the job unreadable."""
    odd = job(health={"status": "degraded", "code": "new_code"}, type="streaming")
    assert odd.health is None and odd.type == "streaming"


@pytest.mark.parametrize("health", ["broken", 3, ["ok"], {"status": "error", "code": 5}])
def test_a_health_of_the_wrong_type_is_a_validation_error(health: Any) -> None:
    """A health that is not the documented object is garbage, not 'no health'."""
    with pytest.raises(pydantic.ValidationError):
        job(health=health)


def test_a_job_without_an_id_or_with_a_numeric_id_is_invalid() -> None:
    """The id is the one field nothing can do without."""
    for data in ({}, {"id": 12345}, {"id": None}):
        with pytest.raises(pydantic.ValidationError):
            read_model(Job, data)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(None, None), (0, None), (-1, None), (UNLIMITED_PARSE_EXCEPTIONS, None), (250, 250)],
)
def test_parse_exception_limit_is_none_when_unlimited(limit: int | None, expected: int) -> None:
    """maxParseExceptions' Integer.MAX_VALUE and non-positive values mean no limit."""
    assert job(maxParseExceptions=limit).parse_exception_limit == expected


def test_terminal_statuses_and_update_time() -> None:
    """completed, canceled and failed are terminal; lastUpdatedTimestamp is parsed."""
    assert [job(executionStatus=s).is_terminal for s in ("completed", "failed", "canceled")] == [
        True
    ] * 3
    assert not job(executionStatus="running").is_terminal
    stamped = job(lastUpdatedTimestamp="2024-08-01T10:11:12.1234567Z")
    assert stamped.updated_at == datetime(2024, 8, 1, 10, 11, 12, 123456, tzinfo=UTC)


# -- other answers ----------------------------------------------------------------------------
def test_metrics_accept_numbers_and_default_to_no_totals() -> None:
    """Integer and float counters are kept; a missing totals object is empty."""
    read = Metrics.model_validate({"totals": {"numRowsProcessed": 10, "numBytesProcessed": 2.5}})
    assert read.totals == {"numRowsProcessed": 10.0, "numBytesProcessed": 2.5}
    assert Metrics.model_validate({}).totals == {}


@pytest.mark.parametrize("value", [True, False, "12", None, [1], {"n": 1}])
def test_metrics_reject_totals_that_are_not_numbers(value: Any) -> None:
    """A counter of true, "12" or null is garbage, not 1, 12 or 0."""
    with pytest.raises(pydantic.ValidationError):
        Metrics.model_validate({"totals": {"numRowsProcessed": value}})


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_metrics_reject_non_finite_totals(text: str) -> None:
    """Python's json reads NaN and Infinity; no counter can be either."""
    with pytest.raises(pydantic.ValidationError):
        Metrics.model_validate(json.loads(f'{{"totals": {{"numRowsProcessed": {text}}}}}'))


def test_logs_progress_and_error_bodies() -> None:
    """Logs default to none, progress needs its number, error bodies take any code."""
    assert JobLogs.model_validate({}).logs == []
    entry = JobLogs.model_validate({"logs": [{"healthStatus": "error", "code": "c"}]}).logs[0]
    assert (entry.health_status, entry.code, entry.message) == ("error", "c", None)
    assert JobProgress.model_validate({"overallProgress": 0.5}).overall_progress == 0.5
    with pytest.raises(pydantic.ValidationError):
        JobProgress.model_validate({"overallProgress": "halfway"})
    assert ApiErrorBody.model_validate({"code": 400, "message": "m", "extra": 1}).message == "m"


# -- timestamps -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-08-01T10:11:12.1234567Z", datetime(2024, 8, 1, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2024-08-01T10:11:12.123456789Z", datetime(2024, 8, 1, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2024-08-01T10:11:12Z", datetime(2024, 8, 1, 10, 11, 12, tzinfo=UTC)),
        ("2024-08-01T10:11:12", datetime(2024, 8, 1, 10, 11, 12, tzinfo=UTC)),
        (
            "2024-08-01T10:11:12.5+02:00",
            datetime(2024, 8, 1, 10, 11, 12, 500000, tzinfo=timezone(timedelta(hours=2))),
        ),
        (" 2024-08-01T10:11:12.1234567Z ", datetime(2024, 8, 1, 10, 11, 12, 123456, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_reads_polaris_timestamps(text: str, expected: datetime) -> None:
    """Seven-digit fractions (and more) are cut to microseconds; no zone means UTC."""
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("value", [None, "", "yesterday", "2024-13-01T00:00:00Z", 1722500000, []])
def test_parse_timestamp_gives_none_for_anything_else(value: Any) -> None:
    """What does not parse is None, never an exception."""
    assert parse_timestamp(value) is None


# -- property: never an unexpected exception -------------------------------------------------
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["ok", "warn", "error", JOB_ID, "2024-08-01T10:11:12.1234567Z"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
HEALTH = st.fixed_dictionaries(
    {"status": st.sampled_from(["ok", "warn", "error", "degraded"]) | JSON},
    optional={
        "code": JSON,
        "message": JSON,
        "log": JSON
        | st.fixed_dictionaries(
            {}, optional={"message": JSON, "healthStatus": JSON, "timestamp": JSON}
        ),
    },
)
JOB_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.just(JOB_ID) | JSON,
        "type": JSON,
        "executionStatus": JSON,
        "health": HEALTH | JSON,
        "target": st.fixed_dictionaries({}, optional={"tableName": JSON}) | JSON,
        "maxParseExceptions": JSON,
        "lastUpdatedTimestamp": JSON,
    },
)
METRICS_LIKE = st.fixed_dictionaries(
    {}, optional={"totals": st.dictionaries(st.text(max_size=8), JSON, max_size=4) | JSON}
)
PAGE_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "values": st.lists(JOB_LIKE | JSON, max_size=4) | JSON,
        "moreResultsAvailable": st.booleans() | JSON,
    },
)


@settings(max_examples=100, deadline=None)
@given(JOB_LIKE | JSON)
def test_any_json_is_a_job_or_a_validation_error(data: Any) -> None:
    """Arbitrary JSON gives a Job or pydantic.ValidationError, never another exception."""
    try:
        read = read_model(Job, data)
    except pydantic.ValidationError:
        return
    assert isinstance(read.id, str)
    _ = (read.health_status, read.health_detail, read.updated_at, read.parse_exception_limit)


@settings(max_examples=100, deadline=None)
@given(METRICS_LIKE | JSON)
def test_any_json_is_metrics_or_a_validation_error(data: Any) -> None:
    """Arbitrary JSON gives Metrics with finite totals or pydantic.ValidationError."""
    try:
        read = Metrics.model_validate(data)
    except pydantic.ValidationError:
        return
    assert all(isinstance(value, float) and math.isfinite(value) for value in read.totals.values())


@settings(max_examples=100, deadline=None)
@given(PAGE_LIKE | JSON)
def test_any_json_is_a_page_or_a_malformed_error(data: Any) -> None:
    """The client's page parser gives a page or PolarisMalformedError, nothing else."""
    try:
        page = PolarisClient._parse_page(data)
    except PolarisMalformedError:
        return
    assert isinstance(page.more, bool)
    assert len(page.jobs) + len(page.unparsed_ids) <= page.listed


@given(st.text(max_size=40) | JSON)
def test_parse_timestamp_never_raises(value: Any) -> None:
    """Any value gives an aware datetime or None."""
    parsed = parse_timestamp(value)
    assert parsed is None or parsed.tzinfo is not None
