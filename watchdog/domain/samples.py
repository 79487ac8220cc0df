"""Compact per-(job, metric) sample history: the memory the windowed rules read.

The bot watches thousands of jobs and keeps up to an hour of samples for each metric a
rule reads. A deque of ``(float, float)`` tuples costs ~120 bytes a point; a ring over two
arrays (millisecond times, float values) costs 12, so 10,000 series of 133 points fit in
16 MB. The memory is bounded by the ring capacity, never by uptime: old points are
overwritten.

Times are float epoch seconds, strictly increasing within a series: a re-sent tick (same
or earlier time) is ignored rather than stored twice, which would make a window look like
it holds more ticks than it does.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

__all__ = ["SampleBook", "SampleRow", "Series", "capacity_for", "retention_for"]

SampleRow = tuple[str, str, float, float]  # (job_id, metric, t, value)


# Extra points beyond the window: drift-free polling can run a tick early after a slow one,
# and a restart adds an off-grid tick, so a window may hold a few more points than
# window / interval.
_MIN_SLACK = 2
_SLACK_FRACTION = 0.1


def capacity_for(window: float, interval: float) -> int:
    """Points a series must hold to cover ``window`` seconds of ``interval``-spaced ticks.

    That is the points inside the window, one baseline point at or before its start, and a
    little slack; at least 2 (a baseline and a current point).
    """
    if interval <= 0 or not math.isfinite(interval):
        raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
    if window < 0 or not math.isfinite(window):
        raise ValueError(f"window must be a finite number of seconds >= 0, not {window!r}")
    inside = math.ceil(window / interval)
    slack = max(_MIN_SLACK, math.ceil(inside * _SLACK_FRACTION))
    return max(2, inside + 1 + slack)


class Series:
    """A fixed-capacity ring of ``(t, value)`` points, oldest overwritten first.

    Values live in an ``array('d')``; times in an ``array('i')`` of whole milliseconds
    after ``_base`` (the series' first time, moved forward when the offsets would leave
    the 32-bit range, every ~24 days): 12 bytes a point instead of 16. Times are kept to
    the millisecond after the first point's exact time, rounded down, so a point never
    lies after the moment it was taken; two points within one millisecond are one point.
    Both arrays are allocated whole, at the capacity, when the series is made: a ring
    whose oldest slot is ``_head``. Growing them point by point would save a little for
    jobs seen briefly, but 10,000 arrays reallocated step by step, interleaved, fragment
    the heap (~6 MB more resident for the same points, measured with ``python -m bench
    memory``).
    """

    __slots__ = ("_base", "_cap", "_head", "_ms", "_size", "_values")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._cap = capacity
        self._base = 0.0
        self._ms = _ZERO_MS * capacity
        self._values = _ZERO_VALUE * capacity
        self._head = 0  # physical slot of the oldest point (0 until the ring is full)
        self._size = 0

    @property
    def capacity(self) -> int:
        return self._cap

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"Series(capacity={self._cap}, size={self._size}, last={self.last()})"

    def _slot(self, index: int) -> int:
        """Array offset of the ``index``-th oldest point."""
        return (self._head + index) % self._cap

    def _time(self, slot: int) -> float:
        return self._base + self._ms[slot] / 1000.0

    def _point(self, slot: int) -> tuple[float, float]:
        return (self._time(slot), self._values[slot])

    def _offset(self, t: float) -> int:
        """Whole milliseconds from ``_base`` to ``t``, rounded down. The microsecond added
        first absorbs float noise (``(0.3 - 0.1) * 1000`` is 199.999…), which is far
        smaller, so a point still never lands after the moment it was taken."""
        ms = (t - self._base) * 1000.0 + 0.001
        if not math.isfinite(ms):  # a query at ±inf (NaN never is a sample's time)
            return _FAR if ms > 0 else -_FAR
        return math.floor(ms)

    def append(self, t: float, v: float) -> bool:
        """Add a point; ``False`` (and nothing stored) when ``t`` is not after the last one
        (to the millisecond)."""
        if not math.isfinite(t):
            return False
        size = self._size
        if not size:
            self._base = t
        offset = self._offset(t)
        if size:
            if offset <= self._ms[self._slot(size - 1)]:
                return False
            if offset > _MAX_MS:
                offset = self._rebase(t)
                size = self._size
        if size < self._cap:
            slot = self._slot(size)
            self._size = size + 1
        else:
            slot = self._head
            self._head = (self._head + 1) % self._cap
        self._ms[slot] = offset
        self._values[slot] = v
        return True

    def _rebase(self, t: float) -> int:
        """Make room for ``t`` in 32 bits; returns its new offset.

        Points more than ~24 days older than ``t`` are dropped (no window reaches that
        far back), then ``_base`` moves to the oldest point kept. Once in ~24 days of a
        series' life.
        """
        target = self._offset(t)
        while self._size and target - self._ms[self._head] > _MAX_MS:
            self._head = (self._head + 1) % self._cap
            self._size -= 1
        if not self._size:
            self._head, self._base = 0, t
            return 0
        shift = self._ms[self._head]
        ms = self._ms
        for index in range(self._size):
            slot = self._slot(index)
            ms[slot] -= shift
        self._base += shift / 1000.0
        return max(self._offset(t), ms[self._slot(self._size - 1)] + 1)

    def last(self) -> tuple[float, float] | None:
        if not self._size:
            return None
        return self._point(self._slot(self._size - 1))

    def last_time(self) -> float | None:
        """Time of the newest point (cheaper than :meth:`last` when only that is needed)."""
        if not self._size:
            return None
        return self._time(self._slot(self._size - 1))

    def _count_at_or_before(self, t: float) -> int:
        """How many points have time <= ``t``."""
        return self._count_up_to(self._offset(t))

    def _count_up_to(self, limit: int) -> int:
        """How many points have an offset <= ``limit`` ms (binary search over the ring)."""
        ms, head, cap = self._ms, self._head, self._cap
        lo, hi = 0, self._size
        while lo < hi:
            mid = (lo + hi) >> 1
            if ms[(head + mid) % cap] <= limit:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _points(self, start: int, stop: int) -> list[tuple[float, float]]:
        ms, values, head, cap, base = self._ms, self._values, self._head, self._cap, self._base
        out = []
        for index in range(start, stop):
            slot = (head + index) % cap
            out.append((base + ms[slot] / 1000.0, values[slot]))
        return out

    def points_since(self, t0: float) -> list[tuple[float, float]]:
        """Points with time >= ``t0``, oldest first."""
        first = (t0 - self._base) * 1000.0 - 0.001  # offsets from here on are >= t0
        before = math.ceil(first) - 1 if math.isfinite(first) else (_FAR if first > 0 else -1)
        return self._points(self._count_up_to(before), self._size)

    def before_or_at(self, t: float) -> tuple[float, float] | None:
        """The latest point with time <= ``t``, if any."""
        count = self._count_at_or_before(t)
        return self._point(self._slot(count - 1)) if count else None

    def window(self, start: float, end: float) -> list[tuple[float, float]]:
        """A baseline point, then every point with ``start < t <= end``, oldest first.

        The baseline is the latest point at or before ``start`` when there is one (so with
        exact ticks a 10-minute window spans exactly 10 minutes), else the oldest point
        after ``start``. Empty when no point lies at or before ``end``.
        """
        first = self._count_at_or_before(start)
        stop = self._count_at_or_before(end)
        return self._points(first - 1 if first else 0, stop)

    def values(self, n: int) -> tuple[float, ...]:
        """The last ``n`` values, oldest first (for sparklines)."""
        size = self._size
        start = size - n if n < size else 0
        values, head, cap = self._values, self._head, self._cap
        return tuple(values[(head + index) % cap] for index in range(start, size))

    def resize(self, capacity: int) -> None:
        """Change the capacity, keeping the newest points that fit."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        keep = min(self._size, capacity)
        ms, values = _ZERO_MS * capacity, _ZERO_VALUE * capacity
        for new, index in enumerate(range(self._size - keep, self._size)):
            slot = self._slot(index)
            ms[new], values[new] = self._ms[slot], self._values[slot]
        self._cap, self._ms, self._values, self._head, self._size = capacity, ms, values, 0, keep


#: One point's room in each array: ``_ZERO_MS * n`` allocates n at once, exactly.
_ZERO_MS = array("i", (0,))
_ZERO_VALUE = array("d", (0.0,))
#: The largest offset a C int holds (``array('i')`` is 32-bit on every platform we run).
_MAX_MS = 2**31 - 1
_FAR = 2**63


def retention_for(window: float, interval: float) -> float:
    """How long history is kept: the longest window plus a few ticks of slack. A job
    unwatched for this long is forgotten (:meth:`SampleBook.expire`), and older stored
    rows are pruned."""
    return window + 3 * interval


class SampleBook:
    """Every watched job's metric series, each a :class:`Series` of one shared capacity."""

    __slots__ = ("_capacity", "_jobs", "_watched_at")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._capacity = capacity
        self._jobs: dict[str, dict[str, Series]] = {}
        self._watched_at: dict[str, float] = {}  # job -> last time it was a metrics target

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        """The number of series (job, metric pairs) held."""
        return sum(len(metrics) for metrics in self._jobs.values())

    def record(self, job_id: str, metric: str, t: float, v: float) -> bool:
        """Store one sample; ``False`` when ``t`` is not after the series' last point."""
        metrics = self._jobs.get(job_id)
        if metrics is None:
            metrics = self._jobs[job_id] = {}
        series = metrics.get(metric)
        if series is None:
            series = metrics[metric] = Series(self._capacity)
        return series.append(t, v)

    def series(self, job_id: str, metric: str) -> Series | None:
        metrics = self._jobs.get(job_id)
        return metrics.get(metric) if metrics is not None else None

    def expire(self, watched: Iterable[str], now: float, keep_for: float) -> list[str]:
        """Mark ``watched`` as watched at ``now``; forget (and return) the jobs nobody has
        watched for longer than ``keep_for``.

        Not at the first absence: offset pagination can skip a job for a tick when the
        list shifts under it, and a job missing once must keep its windows. A job known
        only from loaded history counts as watched from its first call here.
        """
        for job_id in watched:
            self._watched_at[job_id] = now
        gone = [
            job_id
            for job_id in self._jobs
            if now - self._watched_at.setdefault(job_id, now) > keep_for
        ]
        for job_id in gone:
            del self._jobs[job_id]
            del self._watched_at[job_id]
        return gone

    def jobs(self) -> set[str]:
        return set(self._jobs)

    def job_series(self, job_id: str) -> list[Series]:
        """Every series of one job (one per metric)."""
        return list(self._jobs.get(job_id, {}).values())

    def resize(self, capacity: int) -> None:
        """Change every series' capacity (a rules reload changed the longest window)."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        if capacity == self._capacity:
            return
        self._capacity = capacity
        for metrics in self._jobs.values():
            for series in metrics.values():
                series.resize(capacity)

    def load(self, rows: Iterable[SampleRow]) -> int:
        """Restore rows (as the store gives them); returns how many were new.

        Rows must come in time order within each series (the store returns them ordered
        by time); a row not after its series' last point is skipped like a re-sent tick.
        Rows are consumed one by one, so a large history is never held twice in memory.
        """
        taken = 0
        for job_id, metric, t, value in rows:
            taken += self.record(job_id, metric, t, value)
        return taken
