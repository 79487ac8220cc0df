"""Rule kinds as pure evaluators: (rule, job, samples, now) → :class:`Condition` or ``None``.

Nothing here does I/O or reads a clock: ``now`` (float epoch seconds) is taken once per
tick by the caller and passed down, so a tick evaluates every rule against one instant
and tests drive time by hand.

``None`` means *unknown*: not enough data to say (a window with fewer than two points,
metrics missing this tick). The caller then leaves the alert where it is, which is how
the bot never fires, and never resolves, on missing data. An inactive :class:`Condition`
is a verdict ("quiet"), and lets a firing alert resolve.

Samples are recorded with the tick's ``now`` as their time, so "the metric was fetched this
tick" reads as "the series' newest point is at ``now``" (see ``fresh_since`` of
:func:`evaluate` for callers that stamp samples otherwise). Counters are reset-aware as in
Prometheus, and the first sample of a series is a baseline, never an increase from zero.

Evaluation runs for every (job, rule) pair each tick, so the hot path avoids needless
allocation: windows are found by binary search, and summaries are formatted only for
active conditions. Windows and counter growth are :mod:`watchdog.rules.windows`'; the
parse-error budget and its forecast are :mod:`watchdog.rules.budget`.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from watchdog.domain.alerts import Condition
from watchdog.domain.samples import SampleBook, Series
from watchdog.polaris.models import Job
from watchdog.rules.budget import BUDGET_METRIC, evaluate_budget
from watchdog.rules.durations import format_duration
from watchdog.rules.model import (
    BudgetRule,
    ExecutionRule,
    HealthRule,
    Match,
    RateRule,
    RatioRule,
    RisingRule,
    Rule,
    StalledRule,
)
from watchdog.rules.windows import (
    SPARKLINE_POINTS,
    Point,
    holds,
    increase,
    number,
    percent,
    window,
)

__all__ = [
    "BUDGET_METRIC",
    "SPARKLINE_POINTS",
    "evaluate",
    "fits",
    "increase",
    "matches",
    "needs_samples",
    "window",
]

_MESSAGE_CHARS = 120
_INACTIVE = Condition(active=False)


def matches(rule: Rule, job: Job, now: float, *, check_age: bool = True) -> bool:
    """Whether ``rule`` looks at ``job`` at all (its ``match`` filters and ``max_age``).

    ``max_age`` keeps old history (and jobs of unknown age) from starting alerts;
    ``check_age=False`` leaves it out
    for a job whose alert already fires (a job that stays failed must not "resolve" a day
    later just because it got old)."""
    if not fits(rule.match, job.type, job.execution_status, job.table, job.id):
        return False
    if check_age and rule.max_age > 0 and job.is_terminal:
        # A job that ended long ago is history: listing it must not page anyone. One whose
        # age cannot be read may be as old as any: it counts as old, not as recent (failed
        # jobs from years ago were paged when an unreadable timestamp meant "recent").
        updated = job.updated_at
        if updated is None or updated.timestamp() < now - rule.max_age:
            return False
    return True


def fits(
    match: Match,
    job_type: str,
    execution_status: str,
    table: str | None,
    job_id: str,
    project: str | None = None,
) -> bool:
    """Whether a job with these facts passes ``match`` — the rules' matcher, which
    maintenance windows use too. ``project`` None leaves ``match.project`` out (the watch
    loop hands a rule only the jobs of projects it looks at)."""
    if match.type and job_type not in match.type:
        return False
    if match.execution_status and execution_status not in match.execution_status:
        return False
    if match.table and (table is None or not any(fnmatchcase(table, g) for g in match.table)):
        return False
    if match.job_id and job_id.lower() not in match.job_id:
        return False
    return project is None or not match.project or project in match.project


def needs_samples(rule: Rule, job: Job) -> bool:
    """Whether evaluating ``rule`` on ``job`` reads samples (so its metrics are worth fetching).

    False for rules that need no metrics, and where :func:`evaluate` gives an inactive
    verdict from the job alone: canceled jobs, stalled rules on anything but a running
    streaming job, budget rules on jobs without a finite maxParseExceptions.
    """
    if not rule.metrics or job.execution_status == "canceled":
        return False
    if isinstance(rule, StalledRule):
        return job.type == "streaming" and job.execution_status == "running"
    if isinstance(rule, BudgetRule):
        return job.parse_exception_limit is not None
    return True


def evaluate(
    rule: Rule,
    job: Job,
    book: SampleBook,
    now: float,
    *,
    firing: bool,
    fresh_since: float | None = None,
) -> Condition | None:
    """Evaluate ``rule`` on ``job`` at ``now``; ``None`` when the data cannot tell.

    The caller has checked :func:`matches`. ``firing`` says the alert is firing, which
    turns on hysteresis: it stays active until the value drops below
    threshold × (1 − hysteresis). Samples older than ``fresh_since`` (default ``now``) are
    from an earlier tick: when a metric has none newer, it is missing this tick.
    """
    if isinstance(rule, ExecutionRule):
        return _execution(rule, job)
    if job.execution_status == "canceled":
        # The caller resolves with "job canceled": nothing else about it is news any more.
        return _INACTIVE
    if isinstance(rule, HealthRule):
        return _health(rule, job)
    fresh = now if fresh_since is None else fresh_since
    if isinstance(rule, RisingRule):
        return _rising(rule, job, book, now, fresh, firing)
    if isinstance(rule, RateRule):
        return _rate(rule, job, book, now, fresh, firing)
    if isinstance(rule, RatioRule):
        return _ratio(rule, job, book, now, fresh, firing)
    if isinstance(rule, StalledRule):
        return _stalled(rule, job, book, now, fresh)
    return evaluate_budget(rule, job, book, now, fresh, firing)


def _current_window(
    book: SampleBook, job_id: str, metric: str, now: float, within: float, fresh: float
) -> tuple[Series, list[Point]] | None:
    """The metric's window, or ``None`` when it has under two points or nothing this tick."""
    series = book.series(job_id, metric)
    if series is None:
        return None
    points = window(series, now, within)
    if len(points) < 2 or points[-1][0] < fresh:
        return None
    return series, points


def _health(rule: HealthRule, job: Job) -> Condition | None:
    status = job.health_status
    if status is None:
        return None  # no (readable) health in Polaris' answer: unknown, not healthy
    if status not in rule.status:
        return _INACTIVE
    code = job.health_code
    if rule.codes and code not in rule.codes:
        return _INACTIVE
    summary = f"health {status}: {code}" if code else f"health {status}"
    message = " ".join(job.health_detail.split())
    if message:
        if len(message) > _MESSAGE_CHARS:
            message = message[: _MESSAGE_CHARS - 1].rstrip() + "…"
        summary = f"{summary} — {message}"
    return Condition(active=True, summary=summary)


def _execution(rule: ExecutionRule, job: Job) -> Condition:
    status = job.execution_status
    if status not in rule.status:
        return _INACTIVE
    return Condition(active=True, summary=f"execution status {status}")


def _rising(
    rule: RisingRule, job: Job, book: SampleBook, now: float, fresh: float, firing: bool
) -> Condition | None:
    found = _current_window(book, job.id, rule.metric, now, rule.within, fresh)
    if found is None:
        return None
    series, points = found
    grown = increase(points)
    active = holds(grown, rule.increase, rule.hysteresis, firing, strict=False)
    summary = ""
    if active:
        summary = (
            f"{rule.metric} rose by {number(grown)} in {format_duration(rule.within)} "
            f"(threshold {number(rule.increase)})"
        )
    return Condition(
        active=active,
        summary=summary,
        value=grown,
        threshold=rule.increase,
        metric=rule.metric,
        values=series.values(SPARKLINE_POINTS) if active or firing else (),
        increase=grown,
    )


def _rate(
    rule: RateRule, job: Job, book: SampleBook, now: float, fresh: float, firing: bool
) -> Condition | None:
    found = _current_window(book, job.id, rule.metric, now, rule.within, fresh)
    if found is None:
        return None
    series, points = found
    span = points[-1][0] - points[0][0]
    # Thirty seconds of data just after start are not a rate "over 10m": wait for half.
    if span < rule.within / 2:
        return None
    grown = increase(points)
    per_minute = grown / span * 60.0
    active = holds(per_minute, rule.above, rule.hysteresis, firing, strict=True)
    summary = ""
    if active:
        summary = (
            f"{rule.metric} at {number(per_minute)}/min over {format_duration(rule.within)} "
            f"(threshold {number(rule.above)}/min)"
        )
    return Condition(
        active=active,
        summary=summary,
        value=per_minute,
        threshold=rule.above,
        metric=rule.metric,
        values=series.values(SPARKLINE_POINTS) if active or firing else (),
        increase=grown,
    )


def _ratio(
    rule: RatioRule, job: Job, book: SampleBook, now: float, fresh: float, firing: bool
) -> Condition | None:
    numerator = _current_window(book, job.id, rule.numerator, now, rule.within, fresh)
    if numerator is None:
        return None
    denominator = _current_window(book, job.id, rule.denominator, now, rule.within, fresh)
    if denominator is None:
        return None
    series, points = numerator
    bad = increase(points)
    total = increase(denominator[1])
    if total < rule.min_denominator or total <= 0.0:
        # Too little traffic for a meaningful ratio: that is "quiet", a verdict.
        return Condition(active=False, threshold=rule.above, metric=rule.numerator, increase=bad)
    ratio = bad / total
    active = holds(ratio, rule.above, rule.hysteresis, firing, strict=True)
    summary = ""
    if active:
        summary = (
            f"{rule.numerator} at {percent(ratio)} of {rule.denominator} over "
            f"{format_duration(rule.within)} ({number(bad)} of {number(total)}; "
            f"threshold {percent(rule.above)})"
        )
    return Condition(
        active=active,
        summary=summary,
        value=ratio,
        threshold=rule.above,
        metric=rule.numerator,
        values=series.values(SPARKLINE_POINTS) if active or firing else (),
        increase=bad,
    )


def _stalled(
    rule: StalledRule, job: Job, book: SampleBook, now: float, fresh: float
) -> Condition | None:
    if job.type != "streaming" or job.execution_status != "running":
        return _INACTIVE
    series = book.series(job.id, rule.metric)
    if series is None:
        return None
    start = now - rule.within
    points = series.window(start, now)
    # Without a point at or before the window's start we have not watched for `within` yet.
    if len(points) < 2 or points[0][0] > start or points[-1][0] < fresh:
        return None
    grown = increase(points)
    if grown > 0.0:
        return Condition(active=False, metric=rule.metric, value=points[-1][1], increase=grown)
    return Condition(
        active=True,
        summary=f"{rule.metric} has not grown for {format_duration(rule.within)}",
        value=points[-1][1],
        metric=rule.metric,
        values=series.values(SPARKLINE_POINTS),
        increase=grown,
    )
