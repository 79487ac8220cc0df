"""Tests for the pure rule evaluators: matching, reset-aware increase, windows, each kind."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.domain.alerts import Condition
from watchdog.domain.samples import SampleBook, Series
from watchdog.polaris.models import UNLIMITED_PARSE_EXCEPTIONS, Job, read_model
from watchdog.rules.evaluate import evaluate, increase, matches, needs_samples, window
from watchdog.rules.load import parse_ruleset
from watchdog.rules.model import (
    BudgetRule,
    ExecutionRule,
    HealthRule,
    Match,
    RateRule,
    RatioRule,
    RisingRule,
    StalledRule,
)
from watchdog.rules.windows import number, percent

JOB_ID = "6f1c2a7e-5b1d-4c3e-9a2b-1d2e3f4a5b6c"
OTHER_ID = "0b9e8d7c-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
T0 = 1_722_500_000.0  # 2024-08-01T08:13:20Z
TICK = 30.0
SKIPPED = "numRowsSkippedByError"
PROCESSED = "numRowsProcessed"


def make_job(**overrides: Any) -> Job:
    raw: dict[str, Any] = {
        "id": JOB_ID,
        "type": "streaming",
        "executionStatus": "running",
        "health": {"status": "ok"},
        "target": {"type": "table", "tableName": "clicks_raw"},
        "maxParseExceptions": 1000,
        "lastUpdatedTimestamp": "2024-08-01T08:00:00Z",
    }
    raw.update(overrides)
    return read_model(Job, raw)


def feed(book: SampleBook, metric: str, values: Sequence[float], *, job_id: str = JOB_ID) -> float:
    """Record ``values`` one tick apart from T0; return the last tick's time (the "now")."""
    t = T0
    for index, value in enumerate(values):
        t = T0 + index * TICK
        book.record(job_id, metric, t, value)
    return t


def rising(**overrides: Any) -> RisingRule:
    fields: dict[str, Any] = {
        "name": "skips",
        "metric": SKIPPED,
        "increase": 100.0,
        "within": 600.0,
    }
    return RisingRule(**{**fields, **overrides})


# -- matches ----------------------------------------------------------------------------


def test_match_filters_on_job_type() -> None:
    """A rule restricted to streaming jobs ignores a batch job."""
    rule = rising(match=Match(type=("streaming",)))
    assert matches(rule, make_job(), T0)
    assert not matches(rule, make_job(type="batch"), T0)


def test_match_filters_on_execution_status() -> None:
    """A rule restricted to running jobs ignores a suspended one."""
    rule = rising(match=Match(execution_status=("running",)))
    assert matches(rule, make_job(), T0)
    assert not matches(rule, make_job(executionStatus="suspended"), T0)


def test_match_table_is_a_case_sensitive_glob() -> None:
    """Table globs use fnmatch case-sensitively; a job without a table never matches one."""
    rule = rising(match=Match(table=("clicks_*", "orders")))
    assert matches(rule, make_job(), T0)
    assert matches(rule, make_job(target={"tableName": "orders"}), T0)
    assert not matches(rule, make_job(target={"tableName": "Clicks_raw"}), T0)
    assert not matches(rule, make_job(target=None), T0)


def test_match_filters_on_job_id() -> None:
    """A rule naming job ids looks at those jobs only, whatever the id's letter case."""
    rule = rising(match=Match(job_id=(JOB_ID.upper(),)))
    assert matches(rule, make_job(), T0)
    assert not matches(rule, make_job(id=OTHER_ID), T0)


def test_max_age_skips_terminal_jobs_last_updated_long_ago() -> None:
    """A job that failed two days ago is history; one that failed an hour ago is news."""
    rule = ExecutionRule(name="failed", status=("failed",), max_age=86_400.0)
    updated = datetime.fromtimestamp(T0, UTC).isoformat()
    job = make_job(executionStatus="failed", lastUpdatedTimestamp=updated)
    assert matches(rule, job, T0 + 3_600)
    assert not matches(rule, job, T0 + 2 * 86_400)
    # Running jobs are never too old, no limit means no limit.
    assert matches(rule, make_job(lastUpdatedTimestamp=updated), T0 + 2 * 86_400)
    unlimited = ExecutionRule(name="failed", status=("failed",), max_age=0.0)
    assert matches(unlimited, job, T0 + 365 * 86_400)
    # An alert already firing on the job keeps it in view: it does not "resolve" by age.
    assert matches(rule, job, T0 + 2 * 86_400, check_age=False)


@pytest.mark.parametrize(
    "stamp", [None, "", "yesterday, around noon", "2024-13-45T25:61:99.000Z", 1_700_000_000]
)
def test_a_terminal_job_of_unknown_age_counts_as_old(stamp: object) -> None:
    """A failed job whose lastUpdatedTimestamp is missing or cannot be read may be years
    old: max_age treats it as old (it used to count as recent, and paged), while a rule
    without max_age, or an alert already firing, still sees it."""
    rule = ExecutionRule(name="failed", status=("failed",), max_age=86_400.0)
    job = make_job(executionStatus="failed", lastUpdatedTimestamp=stamp)
    assert job.updated_at is None
    assert not matches(rule, job, T0)
    assert matches(ExecutionRule(name="any", status=("failed",), max_age=0.0), job, T0)
    assert matches(rule, job, T0, check_age=False)
    assert matches(HealthRule(name="h"), make_job(lastUpdatedTimestamp=stamp), T0)


# -- increase and window ----------------------------------------------------------------


def test_single_point_is_a_baseline_not_an_increase() -> None:
    """One sample (or none) gives no increase, however large the counter already is."""
    assert increase([]) == 0.0
    assert increase([(T0, 1_000_000.0)]) == 0.0


def test_counter_reset_counts_the_new_value_as_growth_from_zero() -> None:
    """10 → 50 → (reset) 5 → 20 grew by 40 + 5 + 15, as Prometheus' increase counts it."""
    points = [(0.0, 10.0), (30.0, 50.0), (60.0, 5.0), (90.0, 20.0)]
    assert increase(points) == 60.0


@given(st.lists(st.floats(min_value=0, max_value=1e12), min_size=1, max_size=50))
def test_increase_is_never_negative_and_exact_for_monotone_counters(values: list[float]) -> None:
    """increase() ≥ 0 always, and equals last − first when the counter never decreases."""
    points = [(float(index), value) for index, value in enumerate(values)]
    assert increase(points) >= 0.0
    ordered = [(float(index), value) for index, value in enumerate(sorted(values))]
    assert increase(ordered) == ordered[-1][1] - ordered[0][1]


def test_window_with_exact_ticks_spans_exactly_within() -> None:
    """With a point at now − within, "within 10m" spans 10m: 21 points at 30 s ticks."""
    series = Series(100)
    for index in range(40):
        series.append(T0 + index * TICK, float(index))
    now = T0 + 39 * TICK
    points = window(series, now, 600.0)
    assert len(points) == 21
    assert points[0][0] == now - 600.0 and points[-1][0] == now


def test_window_excludes_points_after_now() -> None:
    """Replaying history: samples later than now are not part of the window."""
    series = Series(100)
    for index in range(10):
        series.append(T0 + index * TICK, float(index))
    assert window(series, T0 + 3 * TICK, 60.0) == [
        (T0 + TICK, 1.0),
        (T0 + 2 * TICK, 2.0),
        (T0 + 3 * TICK, 3.0),
    ]


# -- health and execution ---------------------------------------------------------------


def test_health_rule_fires_on_error_with_code_and_message() -> None:
    """An errored job fires with its code and the start of Polaris' message."""
    job = make_job(
        health={"status": "error", "code": "cannot_parse_source", "message": "Bad JSON " * 40}
    )
    condition = evaluate(HealthRule(name="unhealthy"), job, SampleBook(4), T0, firing=False)
    assert condition is not None and condition.active
    assert condition.summary.startswith("health error: cannot_parse_source — Bad JSON Bad JSON")
    assert len(condition.summary) < 200 and condition.summary.endswith("…")


def test_health_rule_is_inactive_on_ok_and_on_other_codes() -> None:
    """Healthy jobs and errors with codes the rule does not list do not fire."""
    book = SampleBook(4)
    assert not _active(evaluate(HealthRule(name="h"), make_job(), book, T0, firing=False))
    rule = HealthRule(name="h", status=("error", "warn"), codes=("row_too_large",))
    warn = make_job(health={"status": "warn", "code": "no_rows_found"})
    assert not _active(evaluate(rule, warn, book, T0, firing=True))
    hit = make_job(health={"status": "error", "code": "row_too_large"})
    condition = evaluate(rule, hit, book, T0, firing=False)
    assert condition is not None and condition.summary == "health error: row_too_large"


def test_health_rule_without_health_in_the_answer_is_unknown() -> None:
    """A job whose health Polaris left out (or gave in a form we do not know) is unknown:
    an alert on it neither fires nor resolves."""
    job = make_job(health=None)
    assert evaluate(HealthRule(name="h"), job, SampleBook(4), T0, firing=True) is None
    odd = make_job(health={"status": "degraded"})
    assert evaluate(HealthRule(name="h"), odd, SampleBook(4), T0, firing=True) is None


def test_execution_rule_fires_on_listed_status() -> None:
    """A failed job fires an execution rule for failed; a running one does not."""
    rule = ExecutionRule(name="failed", status=("failed",))
    condition = evaluate(rule, make_job(executionStatus="failed"), SampleBook(4), T0, firing=False)
    assert condition is not None and condition.active
    assert condition.summary == "execution status failed"
    assert not _active(evaluate(rule, make_job(), SampleBook(4), T0, firing=False))


def test_canceled_job_makes_every_non_execution_rule_inactive() -> None:
    """A canceled job's rules go inactive, even with data that would fire; execution still works."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [0.0, 500.0, 990.0])
    job = make_job(executionStatus="canceled", health={"status": "error", "code": "x"})
    for rule in (HealthRule(name="h"), rising(), BudgetRule(name="b", percent=50.0)):
        condition = evaluate(rule, job, book, now, firing=True)
        assert condition is not None and not condition.active, rule.kind
    canceled = ExecutionRule(name="canceled", status=("canceled",))
    assert _active(evaluate(canceled, job, book, now, firing=False))


# -- rising -----------------------------------------------------------------------------


def test_rising_fires_when_the_counter_grows_enough_within_the_window() -> None:
    """340 more skipped rows in 10m against a threshold of 100 fires, with a useful summary."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [5.0] * 10 + [5.0 + 17.0 * step for step in range(1, 21)])
    condition = evaluate(rising(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.summary == "numRowsSkippedByError rose by 340 in 10m (threshold 100)"
    assert condition.value == condition.increase == 340.0
    assert condition.threshold == 100.0 and condition.metric == SKIPPED
    assert condition.values[-1] == 345.0 and len(condition.values) == 20


def test_rising_ignores_growth_older_than_the_window() -> None:
    """Growth 20 minutes ago, flat since: the 10m window sees none, no summary is built."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [0.0, 1_000.0] + [1_000.0] * 40)
    condition = evaluate(rising(), make_job(), book, now, firing=False)
    assert condition is not None and not condition.active
    assert condition.value == 0.0 and condition.summary == ""


def test_counter_already_high_when_first_seen_does_not_fire() -> None:
    """A counter at 1,000,000 on first sight is a baseline: no alert, then growth counts."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [1_000_000.0])
    assert evaluate(rising(), make_job(), book, now, firing=False) is None
    now = feed(book, SKIPPED, [1_000_000.0, 1_000_005.0])
    condition = evaluate(rising(), make_job(), book, now, firing=False)
    assert condition is not None and not condition.active and condition.increase == 5.0


def test_growth_across_a_data_gap_is_not_counted_as_growth_within_the_window() -> None:
    """60 rows per 10m never reach 100 in 10m; after a 20-minute outage the first samples
    back must not compare against the last one before it (120 rows "in 10m")."""
    book = SampleBook(128)
    rule = rising()
    steady = [index * 3.0 for index in range(21)]  # 3 rows a tick = 60 per 10m
    now = feed(book, SKIPPED, steady)
    assert not _active(evaluate(rule, make_job(), book, now, firing=False))
    after = now + 40 * TICK  # 20 minutes without data, the counter kept growing
    book.record(JOB_ID, SKIPPED, after, steady[-1] + 123.0)
    assert evaluate(rule, make_job(), book, after, firing=False) is None  # unknown
    book.record(JOB_ID, SKIPPED, after + TICK, steady[-1] + 126.0)
    condition = evaluate(rule, make_job(), book, after + TICK, firing=False)
    assert condition is not None and not condition.active and condition.increase == 3.0


def test_rising_counts_growth_across_a_counter_reset() -> None:
    """A restart resets the counter to 0; 80 before and 150 after the reset fire."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [1_000.0, 1_080.0, 0.0, 150.0])
    condition = evaluate(rising(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active and condition.increase == 230.0


def test_rising_hysteresis_keeps_a_firing_alert_until_below_the_lower_bound() -> None:
    """At 95 (threshold 100, hysteresis 0.1) a firing alert holds; a new one does not start."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [0.0, 95.0])
    assert _active(evaluate(rising(), make_job(), book, now, firing=True))
    assert not _active(evaluate(rising(), make_job(), book, now, firing=False))
    book = SampleBook(64)
    now = feed(book, SKIPPED, [0.0, 89.0])
    assert not _active(evaluate(rising(), make_job(), book, now, firing=True))


def test_missing_samples_give_unknown_not_a_verdict() -> None:
    """No series, or no sample at this tick (fetch failed), gives None."""
    book = SampleBook(64)
    assert evaluate(rising(), make_job(), book, T0, firing=True) is None
    last = feed(book, SKIPPED, [0.0, 500.0])
    assert evaluate(rising(), make_job(), book, last + TICK, firing=True) is None
    # A caller stamping samples otherwise says from when a sample counts as current.
    condition = evaluate(rising(), make_job(), book, last + 5, firing=False, fresh_since=last)
    assert condition is not None and condition.active


# -- rate -------------------------------------------------------------------------------


def rate_rule(**overrides: Any) -> RateRule:
    fields: dict[str, Any] = {"name": "rate", "metric": SKIPPED, "above": 1_000.0, "within": 600.0}
    return RateRule(**{**fields, **overrides})


def test_rate_fires_above_the_per_minute_threshold() -> None:
    """Growing 617 per 30 s is 1,234/min over 10m, above 1,000/min."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [617.0 * step for step in range(21)])
    condition = evaluate(rate_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.value == pytest.approx(1_234.0)
    assert condition.summary == (
        "numRowsSkippedByError at 1,234/min over 10m (threshold 1,000/min)"
    )


def test_rate_below_the_threshold_is_inactive() -> None:
    """400 per 30 s is 800/min: below 1,000/min, inactive."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [400.0 * step for step in range(21)])
    condition = evaluate(rate_rule(), make_job(), book, now, firing=False)
    assert condition is not None and not condition.active
    assert condition.value == pytest.approx(800.0)


def test_rate_needs_half_the_window_of_data() -> None:
    """Just after start, 60 s of data is no rate over 10m: unknown until 5m are covered."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [0.0, 5_000.0, 10_000.0])
    assert evaluate(rate_rule(), make_job(), book, now, firing=False) is None
    now = feed(book, SKIPPED, [5_000.0 * step for step in range(11)])
    assert _active(evaluate(rate_rule(), make_job(), book, now, firing=False))


def test_rate_hysteresis_holds_a_firing_alert() -> None:
    """At 950/min a firing alert (hysteresis 0.1) stays active; at 850/min it resolves."""
    for per_tick, firing, expected in ((475.0, True, True), (425.0, True, False)):
        book = SampleBook(64)
        now = feed(book, SKIPPED, [per_tick * step for step in range(21)])
        condition = evaluate(rate_rule(), make_job(), book, now, firing=firing)
        assert _active(condition) is expected


# -- ratio ------------------------------------------------------------------------------


def ratio_rule(**overrides: Any) -> RatioRule:
    fields: dict[str, Any] = {"name": "ratio", "above": 0.05, "within": 600.0}
    return RatioRule(**{**fields, **overrides})


def test_ratio_fires_when_errors_are_too_large_a_share() -> None:
    """125 skipped for 1,000 processed over 10m is 12.5%, above 5%."""
    book = SampleBook(64)
    feed(book, PROCESSED, [0.0, 500.0, 1_000.0])
    now = feed(book, SKIPPED, [10.0, 60.0, 135.0])
    condition = evaluate(ratio_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.value == pytest.approx(0.125)
    assert "12.5%" in condition.summary and "threshold 5%" in condition.summary


def test_ratio_under_the_threshold_is_inactive() -> None:
    """3 skipped for 1,000 processed is 0.3%: inactive."""
    book = SampleBook(64)
    feed(book, PROCESSED, [0.0, 1_000.0])
    now = feed(book, SKIPPED, [0.0, 3.0])
    assert not _active(evaluate(ratio_rule(), make_job(), book, now, firing=False))


def test_ratio_with_too_little_traffic_is_quiet_not_unknown() -> None:
    """Under min_denominator processed rows the verdict is inactive, even while firing."""
    book = SampleBook(64)
    feed(book, PROCESSED, [0.0, 40.0])
    now = feed(book, SKIPPED, [0.0, 40.0])
    condition = evaluate(ratio_rule(min_denominator=100.0), make_job(), book, now, firing=True)
    assert condition is not None and not condition.active


def test_ratio_without_the_denominator_is_unknown() -> None:
    """A missing denominator series gives None, not a verdict."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [0.0, 50.0])
    assert evaluate(ratio_rule(), make_job(), book, now, firing=True) is None


def test_ratio_hysteresis_holds_a_firing_alert() -> None:
    """At 4.6% (threshold 5%, hysteresis 0.1) a firing alert holds; a new one does not start."""
    book = SampleBook(64)
    feed(book, PROCESSED, [0.0, 1_000.0])
    now = feed(book, SKIPPED, [0.0, 46.0])
    assert _active(evaluate(ratio_rule(), make_job(), book, now, firing=True))
    assert not _active(evaluate(ratio_rule(), make_job(), book, now, firing=False))


# -- stalled ----------------------------------------------------------------------------


def stalled_rule() -> StalledRule:
    return StalledRule(name="stalled", within=900.0)


def test_stalled_fires_when_a_running_stream_stops_processing() -> None:
    """A running streaming job flat for 15m fires."""
    book = SampleBook(64)
    now = feed(book, PROCESSED, [100.0, 5_000.0] + [5_000.0] * 30)
    condition = evaluate(stalled_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.summary == "numRowsProcessed has not grown for 15m"


def test_stalled_is_inactive_while_the_counter_grows() -> None:
    """One new row within the 15m is progress."""
    book = SampleBook(64)
    now = feed(book, PROCESSED, [5_000.0] * 31 + [5_001.0])
    assert not _active(evaluate(stalled_rule(), make_job(), book, now, firing=True))


def test_stalled_counts_a_reset_with_new_rows_as_progress() -> None:
    """A restarted job whose counter fell back and grows again is not stalled."""
    book = SampleBook(64)
    now = feed(book, PROCESSED, [5_000.0] * 30 + [0.0, 20.0])
    assert not _active(evaluate(stalled_rule(), make_job(), book, now, firing=False))


def test_stalled_applies_only_to_running_streaming_jobs() -> None:
    """Flat counters of a batch job or a suspended stream are expected: inactive."""
    book = SampleBook(64)
    now = feed(book, PROCESSED, [5_000.0] * 32)
    for job in (make_job(type="batch"), make_job(executionStatus="suspended")):
        assert not _active(evaluate(stalled_rule(), job, book, now, firing=True))


def test_stalled_needs_a_baseline_at_or_before_the_window_start() -> None:
    """Watched for 10 of 15 minutes: unknown, not stalled."""
    book = SampleBook(64)
    now = feed(book, PROCESSED, [5_000.0] * 21)
    assert evaluate(stalled_rule(), make_job(), book, now, firing=False) is None


# -- budget -----------------------------------------------------------------------------


def budget_rule() -> BudgetRule:
    return BudgetRule(name="budget", percent=80.0)


def test_budget_fires_near_max_parse_exceptions() -> None:
    """830 skipped rows of a 1,000 limit is 83% of the budget, past 80%."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [830.0])
    condition = evaluate(budget_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.summary == "parse-error budget 83% used (830 of 1,000)"
    assert condition.value == 830.0 and condition.threshold == 800.0


def test_budget_below_the_percentage_is_inactive() -> None:
    """500 of 1,000 is half the budget: inactive; hysteresis keeps a firing one at 750."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [500.0])
    assert not _active(evaluate(budget_rule(), make_job(), book, now, firing=True))
    now = feed(book, SKIPPED, [500.0, 750.0])
    assert _active(evaluate(budget_rule(), make_job(), book, now, firing=True))
    assert not _active(evaluate(budget_rule(), make_job(), book, now, firing=False))


def test_budget_of_a_job_with_unlimited_parse_exceptions_is_inactive() -> None:
    """Polaris' default (unlimited) maxParseExceptions has no budget to use up."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [5_000_000.0])
    for limit in (UNLIMITED_PARSE_EXCEPTIONS, None):
        job = make_job(maxParseExceptions=limit)
        condition = evaluate(budget_rule(), job, book, now, firing=True)
        assert condition is not None and not condition.active


def test_budget_without_samples_is_unknown() -> None:
    """No sample of numRowsSkippedByError (or none this tick) gives None."""
    book = SampleBook(64)
    assert evaluate(budget_rule(), make_job(), book, T0, firing=False) is None
    now = feed(book, SKIPPED, [900.0])
    assert evaluate(budget_rule(), make_job(), book, now + TICK, firing=False) is None


# -- needs_samples and rules from a file ------------------------------------------------


def test_needs_samples_only_where_a_verdict_depends_on_them() -> None:
    """Health rules, canceled jobs, stalled non-streams and unlimited budgets need no fetch."""
    assert not needs_samples(HealthRule(name="h"), make_job())
    assert needs_samples(rising(), make_job())
    assert not needs_samples(rising(), make_job(executionStatus="canceled"))
    assert not needs_samples(stalled_rule(), make_job(type="batch"))
    assert not needs_samples(budget_rule(), make_job(maxParseExceptions=None))
    assert needs_samples(budget_rule(), make_job())


def test_rules_parsed_from_toml_evaluate_like_constructed_ones() -> None:
    """The rules file's durations and match tables feed the evaluators as seconds and tuples."""
    ruleset = parse_ruleset(
        "[[rules]]\n"
        'name = "skips"\n'
        'kind = "rising"\n'
        'metric = "numRowsSkippedByError"\n'
        "increase = 100.0\n"
        'within = "10m"\n'
        'match = { type = "streaming", table = "clicks_*" }\n',
        "test.toml",
    )
    rule = ruleset.rules[0]
    book = SampleBook(64)
    now = feed(book, SKIPPED, [0.0, 340.0])
    assert matches(rule, make_job(), now)
    condition = evaluate(rule, make_job(), book, now, firing=False)
    assert condition is not None and condition.active and "in 10m" in condition.summary


def forecast_rule(**fields: Any) -> BudgetRule:
    return BudgetRule.model_validate({"name": "budget-eta", "eta_below": 1800.0, **fields})


def test_budget_forecasts_when_the_job_fails_at_the_current_rate() -> None:
    """Skipping 40 rows a minute with 480 left: the job fails in ~12 min, and the alert says
    so, with the time, on the forecast alone (no percent is set)."""
    book = SampleBook(64)
    per_tick = 40 * TICK / 60
    now = feed(book, SKIPPED, [120 + per_tick * i for i in range(11)])
    used = 120 + per_tick * 10
    condition = evaluate(forecast_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.rate == pytest.approx(40.0)
    assert condition.eta == pytest.approx((1000 - used) / 40 * 60)
    when = time.strftime("%H:%M UTC", time.gmtime(now + condition.eta))
    assert condition.summary == (
        f"parse-error budget {int(used / 10)}% used ({used:,.0f} of 1,000): fails in "
        f"~{round(condition.eta / 60)} min (around {when}) at 40 rows/min"
    )


def test_budget_forecast_beyond_eta_below_is_quiet_and_holds_with_hysteresis() -> None:
    """Failing in ~33 min is past eta_below 30m: quiet; a firing forecast holds until the job
    would need more than 30m × 1.1 to fail."""
    book = SampleBook(64)
    per_tick = 10 * TICK / 60  # 10 rows a minute
    now = feed(book, SKIPPED, [635 + per_tick * i for i in range(11)])
    condition = evaluate(forecast_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.eta is not None
    assert 30 * 60 < condition.eta <= 33 * 60
    assert not condition.active
    assert _active(evaluate(forecast_rule(), make_job(), book, now, firing=True))


def test_budget_without_growth_has_no_forecast() -> None:
    """A counter that stopped growing has no ETA: an eta_below rule is quiet, a percent rule
    at 90% says the budget is not growing."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [900.0] * 11)
    quiet = evaluate(forecast_rule(), make_job(), book, now, firing=False)
    assert quiet is not None and not quiet.active and quiet.eta is None and quiet.rate == 0.0
    both = evaluate(forecast_rule(percent=80.0), make_job(), book, now, firing=False)
    assert both is not None and both.active
    assert both.summary == (
        "parse-error budget 90% used (900 of 1,000), not growing over the last 10m"
    )


def test_a_budget_growing_by_a_hair_forecasts_nothing_absurd() -> None:
    """900 of 1,000 used and growing by 1e-12 a tick: the job fails in some 10^16 years,
    which is "not within a year" (it raised, past datetime's range, and ended the tick)."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [900.0 + 1e-12 * i for i in range(11)])
    condition = evaluate(budget_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.summary.endswith("rows/min, not within a year")
    assert not re.search(r"\d[eE][+-]?\d", condition.summary)


def test_numbers_in_messages_are_never_inf_nan_or_exponents() -> None:
    """What a message shows of a number that is not finite, past any counter, or tiny."""
    assert [number(v) for v in (float("inf"), float("-inf"), float("nan"))] == ["n/a"] * 3
    assert number(1e308) == number(-(2.0**64)) == "out of range"
    assert number(2.0**62) == "4,611,686,018,427,387,904"
    assert (number(1e-20), number(-1e-9), number(0.0)) == ("< 0.001", "> -0.001", "0")
    assert (number(1234.0), number(0.0123), number(12.5)) == ("1,234", "0.0123", "12.5")
    assert (percent(0.0123), percent(12.3456), percent(float("nan"))) == (
        "1.23%",
        "1,235%",
        "n/a",
    )


def test_budget_forecast_needs_a_quarter_of_its_window() -> None:
    """Two samples a minute apart say little about the next hour: no rate, no forecast."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [100.0, 400.0])
    condition = evaluate(forecast_rule(within=3600.0), make_job(), book, now, firing=False)
    assert condition is not None and not condition.active
    assert condition.rate is None and condition.eta is None


def test_budget_spent_fires_a_forecast_rule_and_says_so() -> None:
    """At the limit there is nothing left to forecast: the job fails at its next bad row."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [1000.0] * 11)
    condition = evaluate(forecast_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.summary == (
        "parse-error budget 100% used (1,000 of 1,000): spent — Polaris fails the job at "
        "its next unparseable row"
    )


def test_budget_of_an_absurd_counter_neither_crashes_nor_prints_absurd_shares() -> None:
    """A counter far beyond any limit is clamped in the text, never an OverflowError."""
    book = SampleBook(64)
    now = feed(book, SKIPPED, [1e300])
    condition = evaluate(budget_rule(), make_job(), book, now, firing=False)
    assert condition is not None and condition.active
    assert condition.summary.startswith("parse-error budget 1000% used")


def _active(condition: Condition | None) -> bool:
    assert condition is not None, "expected a verdict, got unknown (None)"
    return condition.active
