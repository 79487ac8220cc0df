"""The parse-error budget: how much of maxParseExceptions a job used, and when it runs out.

Polaris fails a job once its ``numRowsSkippedByError`` passes ``maxParseExceptions``. A
``budget`` rule fires at a share of that limit (``percent``), or — the forecast — when, at
the rate the counter grew over ``within``, the job will reach the limit sooner than
``eta_below``; the alert then says when ("fails in ~12 min (around 14:32 UTC) at 43
rows/min"). Pure, like every evaluator: ``now`` comes from the caller.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from watchdog.domain.alerts import Condition
from watchdog.domain.samples import SampleBook, Series
from watchdog.polaris.models import Job
from watchdog.rules.durations import format_duration
from watchdog.rules.model import BudgetRule
from watchdog.rules.windows import SPARKLINE_POINTS, holds, increase, number, window

#: The counter Polaris compares with maxParseExceptions.
BUDGET_METRIC = "numRowsSkippedByError"
_INACTIVE = Condition(active=False)
#: Forecasts further out than this are not given as a date.
_HORIZON = 365 * 86_400.0


def evaluate_budget(
    rule: BudgetRule, job: Job, book: SampleBook, now: float, fresh: float, firing: bool
) -> Condition | None:
    limit = job.parse_exception_limit
    if limit is None:
        return _INACTIVE  # unlimited maxParseExceptions: there is no budget to use up
    series = book.series(job.id, BUDGET_METRIC)
    if series is None:
        return None
    newest = series.last_time()
    point = series.last() if newest is not None and newest <= now else series.before_or_at(now)
    if point is None or point[0] < fresh:
        return None
    at, used = point
    rate, eta = _skip_forecast(rule, series, at, used, limit)
    by_share = rule.percent is not None and holds(
        used, limit * rule.percent / 100.0, rule.hysteresis, firing, strict=False
    )
    by_eta = False
    if rule.eta_below is not None:
        # A spent budget is the end of any forecast; hysteresis holds a firing forecast
        # until the job would need (1 + h) times eta_below to fail.
        horizon = rule.eta_below * (1.0 + rule.hysteresis if firing else 1.0)
        by_eta = used >= limit or (eta is not None and eta <= horizon)
    active = by_share or by_eta
    threshold = limit * rule.percent / 100.0 if rule.percent is not None else float(limit)
    return Condition(
        active=active,
        summary=_budget_summary(rule, used, limit, rate, eta, at) if active else "",
        value=used,
        threshold=threshold,
        metric=BUDGET_METRIC,
        values=series.values(SPARKLINE_POINTS) if active or firing else (),
        rate=rate,
        eta=eta,
    )


def _skip_forecast(
    rule: BudgetRule, series: Series, at: float, used: float, limit: float
) -> tuple[float | None, float | None]:
    """(rows skipped per minute over ``rule.within``, seconds until ``limit`` at that rate).

    No rate before a quarter of the window has been watched (two samples a minute apart
    say little about the next hour); no ETA while the counter is not growing."""
    points = window(series, at, rule.within)
    if len(points) < 2:
        return None, None
    span = points[-1][0] - points[0][0]
    if span < rule.within / 4:
        return None, None
    per_second = increase(points) / span
    if per_second <= 0.0:
        return 0.0, None
    return per_second * 60.0, max(limit - used, 0.0) / per_second


def _budget_summary(
    rule: BudgetRule, used: float, limit: float, rate: float | None, eta: float | None, at: float
) -> str:
    # Floor, so "100%" means the limit is reached; clamped, so a counter far past a tiny
    # limit cannot print a number nobody reads.
    share = math.floor(min(used / limit, 10.0) * 100)
    text = f"parse-error budget {share}% used ({number(used)} of {number(limit)})"
    if used >= limit:
        return f"{text}: spent — Polaris fails the job at its next unparseable row"
    if eta is not None and rate is not None:
        if eta > _HORIZON:
            # A counter that barely moves: a date centuries away (or past datetime's
            # range, which raised) says nothing.
            return f"{text}: at {number(rate)} rows/min, not within a year"
        when = datetime.fromtimestamp(at + eta, UTC).strftime("%H:%M UTC")
        return f"{text}: fails in ~{_eta(eta)} (around {when}) at {number(rate)} rows/min"
    if rate == 0.0:
        return f"{text}, not growing over the last {format_duration(rule.within)}"
    return text


def _eta(seconds: float) -> str:
    """A forecast's horizon, as coarse as a forecast is: ~40s, ~12 min, ~3h 20 min, ~2 days."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours}h {rest} min" if rest and hours < 10 else f"{round(minutes / 60)}h"
    return f"{seconds / 86_400:.0f} days"
