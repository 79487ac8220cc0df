"""Cumulative counters over time: windows of samples and their reset-aware growth.

What every windowed rule kind reads (:mod:`watchdog.rules.evaluate`,
:mod:`watchdog.rules.budget`): the points of a window, with a baseline that is not
left over from before a gap; a counter's growth over them, as Prometheus counts it; the
threshold test with hysteresis; and numbers as an alert shows them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from watchdog.domain.samples import Series

#: How many recent values a condition carries for the message's sparkline.
SPARKLINE_POINTS = 20
#: No count of rows or bytes passes this (Druid counts in signed 64-bit longs): a number
#: beyond it in a message is nonsense from somewhere, and says so.
ABSURD = float(2**63)

Point = tuple[float, float]


def increase(points: Sequence[Point]) -> float:
    """Reset-aware growth of a counter over ``points`` (oldest first), as Prometheus counts it.

    The first point is the baseline. A decrease is a counter reset: the growth of the
    segment before it is kept, and the new value counts as growth from zero. Each segment's
    growth is taken as last - first (not a sum of deltas) so a monotone series gives exactly
    ``last - first``.
    """
    iterator = iter(points)
    first = next(iterator, None)
    if first is None:
        return 0.0
    base = prev = first[1]
    total = 0.0
    for _, value in iterator:
        if value < prev:
            total += prev - base
            # Growth from zero; a (nonsensical) negative counter must not count as shrinkage.
            base = value if value < 0.0 else 0.0
        prev = value
    return total + (prev - base)


def window(series: Series, now: float, within: float) -> list[Point]:
    """The points a rule over ``within`` reads: a baseline, then every point in (now - within, now].

    The baseline is the latest point at or before ``now - within`` when there is one and it
    is not stale (see :func:`_without_stale_baseline`), else the oldest point inside the
    window.
    """
    return without_stale_baseline(series.window(now - within, now), now - within, within)


def holds(value: float, threshold: float, hysteresis: float, firing: bool, strict: bool) -> bool:
    if firing:
        return value >= threshold * (1.0 - hysteresis)
    return value > threshold if strict else value >= threshold


def without_stale_baseline(points: list[Point], start: float, within: float) -> list[Point]:
    """Drop a baseline left over from before a gap in the data (an outage, a restart).

    Growth since a point from 25 minutes ago is not growth "within 10m": after a gap the
    window starts at its first point inside instead, which can only understate growth.
    A baseline is stale when it lies further before the first point inside the window than
    twice the series' spacing (or than the whole window, when the spacing is unknown).
    """
    if len(points) < 2 or points[0][0] > start:
        return points  # no baseline before the window
    gap = points[1][0] - points[0][0]
    if len(points) >= 3:
        limit = 2 * (points[-1][0] - points[1][0]) / (len(points) - 2)
    else:
        limit = within
    return points[1:] if gap > limit * (1 + 1e-9) else points


def number(value: float) -> str:
    """``1234.0`` → ``1,234``; small fractions keep three significant digits.

    Never ``inf``, ``nan``, ``1e+308`` or a row of 300 digits in a message: a value that
    is not finite shows as "n/a", one past any counter (:data:`ABSURD`) as "out of
    range", a fraction too small for three decimals as "< 0.001"."""
    if not math.isfinite(value):
        return "n/a"
    if abs(value) > ABSURD:
        return "out of range"
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) < 0.001:
        return "< 0.001" if value > 0 else "> -0.001"
    return f"{value:,.3g}"


def percent(fraction: float) -> str:
    """``0.0123`` → ``1.23%``; as :func:`number` does, never ``inf%`` or ``1.23e+03%``."""
    shown = number(fraction * 100)
    return shown if shown in ("n/a", "out of range") else f"{shown}%"
