"""Tests for the sample ring and the per-job sample book."""

from __future__ import annotations

import math

import pytest

from watchdog.domain.samples import SampleBook, Series, capacity_for

JOB_A = "0a3f6f5e-0000-4000-8000-00000000000a"
JOB_B = "0a3f6f5e-0000-4000-8000-00000000000b"


def filled(capacity: int, count: int, *, step: float = 30.0) -> Series:
    series = Series(capacity)
    for index in range(count):
        series.append(index * step, float(index))
    return series


def test_empty_series_has_no_points() -> None:
    """A new series is empty and answers every query with nothing."""
    series = Series(4)
    assert len(series) == 0
    assert series.last() is None
    assert series.points_since(0.0) == []
    assert series.before_or_at(100.0) is None
    assert series.values(5) == ()
    assert series.window(0.0, 100.0) == []


def test_ring_wraps_and_keeps_the_newest_points_in_order() -> None:
    """Past its capacity the ring overwrites its oldest points and keeps time order."""
    series = filled(4, 10)
    assert len(series) == 4
    assert series.points_since(0.0) == [(180.0, 6.0), (210.0, 7.0), (240.0, 8.0), (270.0, 9.0)]
    assert series.last() == (270.0, 9.0)


def test_capacity_bounds_storage_whatever_the_uptime() -> None:
    """A day of ticks stored in a 10-point ring still holds 10 points and 10 points' bytes."""
    series = filled(10, 2880)
    assert len(series) == 10
    assert (len(series._ms), len(series._values)) == (10, 10)  # nothing grows past capacity
    assert series._ms.itemsize == 4  # milliseconds in 32 bits: 12 bytes a point


def test_times_are_kept_to_the_millisecond_never_later() -> None:
    """The first time exactly, later ones to the millisecond rounded down (float noise
    such as 0.3 - 0.1 aside), so a point is never after the moment it was taken."""
    series = Series(8)
    assert series.append(1_700_000_000.123456, 1.0)
    assert series.append(1_700_000_000.1238, 2.0) is False  # 0.34 ms later: same ms
    assert series.append(1_700_000_030.4567, 2.0)
    first, second = series.window(0.0, math.inf)
    assert first == (1_700_000_000.123456, 1.0)
    assert second[0] <= 1_700_000_030.4567 and 1_700_000_030.4567 - second[0] < 0.001
    tenths = Series(4)
    for t in (0.1, 0.2, 0.3):
        assert tenths.append(t, t)
    assert [t for t, _ in tenths.window(0.0, 0.3)] == pytest.approx([0.1, 0.2, 0.3])
    assert tenths.before_or_at(0.3) == pytest.approx((0.3, 0.3))


def test_a_series_lives_past_the_32_bit_millisecond_range() -> None:
    """Offsets from the first point outgrow 32 bits after ~24.8 days: the base moves on,
    the points and their times stay; a gap longer than that keeps only the new point."""
    series = Series(4)
    day = 86_400.0
    times = [t * 0.25 * day for t in range(1, 200)]  # 50 days, a point every 6 hours
    for t in times:
        assert series.append(t, t)
    assert [t for t, _ in series.window(0.0, math.inf)] == pytest.approx(times[-4:])
    assert series.last() == pytest.approx((times[-1], times[-1]))
    assert series.append(times[-1] + 30 * day, 1.0)  # a month's silence
    assert series.window(0.0, math.inf) == [pytest.approx((times[-1] + 30 * day, 1.0))]
    assert not series.append(float("nan"), 1.0) and not series.append(math.inf, 1.0)


def test_duplicate_or_earlier_time_is_ignored() -> None:
    """A re-sent tick (same time) or an earlier time does not add a sample."""
    series = Series(8)
    assert series.append(30.0, 1.0)
    assert not series.append(30.0, 5.0)
    assert not series.append(10.0, 7.0)
    assert series.points_since(0.0) == [(30.0, 1.0)]


def test_points_since_is_inclusive_and_oldest_first() -> None:
    """points_since(t0) returns the points at or after t0, oldest first, across the wrap."""
    series = filled(5, 7)  # holds t = 60 .. 180
    assert series.points_since(120.0) == [(120.0, 4.0), (150.0, 5.0), (180.0, 6.0)]
    assert series.points_since(121.0) == [(150.0, 5.0), (180.0, 6.0)]
    assert series.points_since(500.0) == []


def test_before_or_at_finds_the_latest_point_not_after_t() -> None:
    """before_or_at gives the latest point with time <= t, or None before the first."""
    series = filled(5, 7)  # holds t = 60 .. 180
    assert series.before_or_at(120.0) == (120.0, 4.0)
    assert series.before_or_at(149.9) == (120.0, 4.0)
    assert series.before_or_at(10_000.0) == (180.0, 6.0)
    assert series.before_or_at(59.0) is None


def test_window_starts_at_the_baseline_point_at_or_before_its_start() -> None:
    """window(start, end) begins with the latest point at or before start, then (start, end]."""
    series = filled(20, 10)  # t = 0 .. 270
    assert series.window(60.0, 150.0) == [(60.0, 2.0), (90.0, 3.0), (120.0, 4.0), (150.0, 5.0)]
    assert series.window(70.0, 150.0)[0] == (60.0, 2.0)
    # No point at or before start: the oldest point in the window is the baseline.
    assert series.window(-100.0, 30.0) == [(0.0, 0.0), (30.0, 1.0)]


def test_values_returns_the_last_n_values_oldest_first() -> None:
    """values(n) gives the newest n values for a sparkline, or all when fewer are held."""
    series = filled(6, 9)
    assert series.values(3) == (6.0, 7.0, 8.0)
    assert series.values(100) == (3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


def test_series_resize_keeps_the_newest_points() -> None:
    """Shrinking keeps the newest points; growing keeps all and makes room for more."""
    series = filled(6, 9)
    series.resize(3)
    assert series.points_since(0.0) == [(180.0, 6.0), (210.0, 7.0), (240.0, 8.0)]
    series.resize(5)
    series.append(270.0, 9.0)
    series.append(300.0, 10.0)
    series.append(330.0, 11.0)
    assert series.values(10) == (7.0, 8.0, 9.0, 10.0, 11.0)


def test_capacity_for_covers_window_baseline_and_slack() -> None:
    """An hour of 30 s ticks needs 120 points, a baseline and slack; never fewer than 2."""
    capacity = capacity_for(3600.0, 30.0)
    assert 122 <= capacity <= 140
    assert capacity_for(0.0, 30.0) >= 2
    assert capacity_for(600.0, 30.0) >= 22
    with pytest.raises(ValueError, match="interval"):
        capacity_for(600.0, 0.0)


def test_book_records_per_job_and_metric() -> None:
    """Each (job, metric) pair gets its own series; len counts series."""
    book = SampleBook(4)
    book.record(JOB_A, "numRowsProcessed", 30.0, 1.0)
    book.record(JOB_A, "numRowsSkippedByError", 30.0, 0.0)
    book.record(JOB_B, "numRowsProcessed", 30.0, 9.0)
    assert len(book) == 3
    assert book.jobs() == {JOB_A, JOB_B}
    series = book.series(JOB_B, "numRowsProcessed")
    assert series is not None and series.last() == (30.0, 9.0)
    assert book.series(JOB_B, "numRowsSkippedByError") is None
    assert book.series("missing", "numRowsProcessed") is None


def test_book_ignores_a_resent_tick() -> None:
    """Recording the same tick twice keeps one sample."""
    book = SampleBook(4)
    assert book.record(JOB_A, "numRowsProcessed", 30.0, 1.0)
    assert not book.record(JOB_A, "numRowsProcessed", 30.0, 1.0)
    series = book.series(JOB_A, "numRowsProcessed")
    assert series is not None and len(series) == 1


def test_expire_drops_jobs_unwatched_for_longer_than_keep_for() -> None:
    """expire drops the jobs unwatched for longer than keep_for, not those missing for a
    moment."""
    book = SampleBook(4)
    for job in (JOB_A, JOB_B):
        book.record(job, "numRowsProcessed", 30.0, 1.0)
    assert book.expire({JOB_A, JOB_B}, 30.0, keep_for=100.0) == []
    assert book.expire({JOB_B, "unknown"}, 60.0, keep_for=100.0) == []  # A missing once
    assert book.jobs() == {JOB_A, JOB_B}
    assert book.expire({JOB_B}, 131.0, keep_for=100.0) == [JOB_A]
    assert book.jobs() == {JOB_B}
    assert book.series(JOB_A, "numRowsProcessed") is None


def test_book_resize_keeps_the_newest_points_of_every_series() -> None:
    """A rules reload that shortens windows keeps each series' newest points."""
    book = SampleBook(10)
    for index in range(10):
        book.record(JOB_A, "numRowsProcessed", 30.0 * index, float(index))
    book.resize(3)
    assert book.capacity == 3
    series = book.series(JOB_A, "numRowsProcessed")
    assert series is not None and series.values(10) == (7.0, 8.0, 9.0)
    book.record(JOB_B, "numRowsProcessed", 0.0, 0.0)
    new_series = book.series(JOB_B, "numRowsProcessed")
    assert new_series is not None and new_series.capacity == 3


def test_load_restores_stored_rows_once() -> None:
    """Rows as the store returns them (time order per series) rebuild each series, keeping
    the newest that fit; loading the same rows again (a restart re-reading them) adds
    nothing."""
    rows = [
        row
        for index in range(8)
        for row in (
            (JOB_A, "numRowsProcessed", 30.0 * index, 10.0 * index),
            (JOB_B, "numRowsSkippedByError", 30.0 * index + 1, float(index)),
        )
    ]
    book = SampleBook(5)
    assert book.load(rows) == 16
    series = book.series(JOB_A, "numRowsProcessed")
    assert series is not None and series.points_since(0.0) == [
        (30.0 * index, 10.0 * index) for index in range(3, 8)
    ]
    other = book.series(JOB_B, "numRowsSkippedByError")
    assert other is not None and other.last() == (211.0, 7.0) and len(other) == 5
    assert book.load(rows) == 0
