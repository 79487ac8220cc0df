"""What a simulated Polaris job does over time: its behaviour, counters, status and health.

A simulated job is a pure function of its age (seconds since it was added) plus the few
things that happened to it (a suspend, a cancel, a reset, a value pinned by a test).
Nothing runs in the background: every read evolves the job to the clock's current time,
so tests drive time by moving a fake clock and the same clock always gives the same job.

Counters are cumulative: ``base + grown(age) - grown(anchor)`` where ``grown`` is the
behaviour's monotone growth curve. Suspending freezes ``base``; resuming moves ``anchor``
to "now"; a reset (``POST /reset`` or the ``restart`` behaviour) zeroes ``base``. The
behaviours' "trouble" happens in a window of every ``cycle`` (by default 15 s to 50 s of
a 90 s cycle), so a demo shows an alert firing and resolving within two minutes.

Behaviours: ``healthy`` (rows grow steadily; a batch job completes after one cycle),
``skips_rising`` (rows skipped by error rise, health warn, inside the window),
``batch_fails`` (a batch job fails with ``cannot_parse_source`` when the window opens),
``recovers`` (health error ``could_not_connect_to_source`` and no rows inside the window),
``stalls`` (no rows inside the window, health still ok), ``pending_stuck`` (never starts),
``restart`` (counters drop to 0 mid-cycle), ``budget`` (maxParseExceptions 1000; skipped
rows climb to 90 % of it over one cycle), ``static_error`` (one health error for ever).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from watchdog.polaris.models import TERMINAL_STATUSES

BEHAVIOURS: tuple[str, ...] = (
    "healthy",
    "skips_rising",
    "batch_fails",
    "recovers",
    "stalls",
    "pending_stuck",
    "restart",
    "budget",
    "static_error",
)
#: Behaviours whose job view (status, health) changes with time; the rest are cached.
_TIMED = frozenset({"skips_rising", "batch_fails", "recovers"})
#: The trouble window as fractions of the cycle: 15 s to 50 s of a 90 s cycle.
TROUBLE_WINDOW: tuple[float, float] = (15 / 90, 50 / 90)
BUDGET_LIMIT = 1000

_BYTES_PER_ROW = 180
_WARN_SHARE = 0.01
_FILTER_SHARE = 0.05
_SKIP_RATE = 5.0  # rows/s skipped by error inside a skips_rising window
_BUDGET_SHARE = 0.9  # a budget job's skipped rows level off at 90 % of its limit
_LOG_WINDOWS = 10  # how many past trouble windows the logs endpoint still shows
_PARSE_WARNING = ("invalid_rows_found", "Rows could not be parsed and were skipped")
_FAILURES = {
    "recovers": ("could_not_connect_to_source", "Could not connect to the source of {connection}"),
    "batch_fails": (
        "cannot_parse_source",
        "Cannot parse s3://sim-ingest/{table}/part-00003.json: unexpected character '<' at line 1",
    ),
}
_STATIC_ERRORS = (
    ("internal_error", "An internal error occurred while ingesting into {table}"),
    ("row_too_large", "A row from {connection} is larger than the 1 MiB limit"),
    ("too_many_columns", "Rows for {table} have more than the maximum of 1000 columns"),
)


def natural_type(behaviour: str) -> str:
    """The job type a behaviour implies when none is given."""
    return "batch" if behaviour == "batch_fails" else "streaming"


class StatusRefused(ValueError):
    """A desired execution status Polaris would refuse for this job (answered 400)."""


class JobView(NamedTuple):
    """What the job JSON shows at one instant; equal views give the same JSON."""

    execution_status: str
    desired: str
    status_since: float
    health_status: str
    health_code: str | None
    health_message: str | None
    health_since: float
    updated: float


def iso(timestamp: float) -> str:
    """Polaris-style UTC timestamp with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SimJob:
    """One simulated job; properties evolve it to its clock's current time."""

    def __init__(
        self,
        *,
        job_id: str,
        type: str,
        table: str,
        behaviour: str,
        cycle: float,
        trouble: tuple[float, float],
        max_parse_exceptions: int,
        connection: str,
        rate: float,
        variant: int,
        creator: dict[str, str],
        clock: Callable[[], float],
    ) -> None:
        self.id = job_id
        self.type = type
        self.table = table
        self.behaviour = behaviour
        self.cycle = cycle
        self.connection = connection
        self.max_parse_exceptions = max_parse_exceptions
        self.rate = rate
        self.streaming = type == "streaming"
        self._window = trouble
        # What goes wrong when this job's behaviour fails, in Polaris' words.
        code, message = _FAILURES.get(behaviour, _STATIC_ERRORS[variant % len(_STATIC_ERRORS)])
        self._failure = code, message.format(table=table, connection=connection)
        self.creator = creator
        self._clock = clock
        self.born = clock()
        # A batch job's run ends at completion (one cycle) or, for batch_fails, at the
        # start of its trouble window; a streaming job runs for ever.
        self._run_for = math.inf
        if not self.streaming:
            self._run_for = trouble[0] if behaviour == "batch_fails" else cycle
        self._metric_names = (
            "numRowsProcessed",
            "numRowsProcessedWithWarning",
            "numRowsSkippedByError",
            "numRowsSkippedByFilter" if self.streaming else "numRowsPersisted",
            "numBytesProcessed",
        )
        self.desired = "running"
        self._override: str | None = None  # execution status set by a request or a test
        self._pin: tuple[str, str | None, str | None] | None = None
        self._pinned_at = 0.0
        self._changed = 0.0  # age of the last explicit change (for lastUpdatedTimestamp)
        self._override_at = 0.0  # age at which the override was set
        self._events: list[dict[str, Any]] = []
        self._base = dict.fromkeys(self._metric_names, 0.0)
        self._anchor = 0.0
        self._frozen = False
        self._view: JobView | None = None

    # -- the Python API (evolved to the clock's current time) -------------------------
    @property
    def execution_status(self) -> str:
        return self.view(self._clock()).execution_status

    @property
    def health_status(self) -> str:
        return self.view(self._clock()).health_status

    @property
    def health_code(self) -> str | None:
        return self.view(self._clock()).health_code

    @property
    def health_message(self) -> str | None:
        return self.view(self._clock()).health_message

    @property
    def totals(self) -> dict[str, int]:
        return self.totals_at(self._clock())

    # -- evolution --------------------------------------------------------------------
    def _age(self, now: float) -> float:
        # A clock set before the job was added must not run its counters backwards.
        return max(0.0, now - self.born)

    def _window_time(self, age: float) -> float:
        """Seconds of ``age`` spent inside trouble windows."""
        start, end = self._window
        cycles, phase = divmod(age, self.cycle)
        return cycles * (end - start) + min(max(phase - start, 0.0), end - start)

    def _last_edge(self, age: float) -> tuple[bool, float]:
        """Whether ``age`` is inside a trouble window, and when that last changed."""
        start, end = self._window
        cycles, phase = divmod(age, self.cycle)
        if start <= phase < end:
            return True, cycles * self.cycle + start
        if phase >= end:
            return False, cycles * self.cycle + end
        return False, max(0.0, (cycles - 1) * self.cycle + end)

    def _grown(self, age: float) -> dict[str, float]:
        """The behaviour's cumulative growth curves at ``age`` (monotone, from 0)."""
        run = min(age, self._run_for)
        behaviour = self.behaviour
        processed = skipped = 0.0
        if behaviour not in ("pending_stuck", "static_error"):
            active = run
            if behaviour in ("recovers", "stalls"):
                active -= self._window_time(run)
            processed = self.rate * active
            if behaviour == "skips_rising":
                skipped = _SKIP_RATE * self._window_time(run)
            elif behaviour == "budget":
                limit = self.max_parse_exceptions
                skipped = _BUDGET_SHARE * limit * min(1.0, run / self.cycle)
            elif behaviour == "batch_fails":
                skipped = 0.02 * processed
        warned = processed * _WARN_SHARE
        grown = {
            "numRowsProcessed": processed,
            "numRowsProcessedWithWarning": warned,
            "numRowsSkippedByError": skipped,
            "numBytesProcessed": (processed + warned) * _BYTES_PER_ROW,
        }
        if self.streaming:
            grown["numRowsSkippedByFilter"] = processed * _FILTER_SHARE
        else:
            grown["numRowsPersisted"] = processed + warned
        return grown

    def _restart_point(self, age: float) -> float | None:
        """The latest mid-cycle restart at or before ``age`` (``restart`` behaviour)."""
        half = self.cycle / 2
        if age < half:
            return None
        return math.floor((age - half) / self.cycle) * self.cycle + half

    def totals_at(self, now: float) -> dict[str, int]:
        """``GET /metrics`` totals: the six counters this job type reports."""
        if self._frozen:
            return {name: int(self._base[name]) for name in self._metric_names}
        age = self._age(now)
        base, anchor = self._base, self._anchor
        if self.behaviour == "restart":
            point = self._restart_point(age)
            if point is not None and point > anchor:
                base, anchor = dict.fromkeys(self._metric_names, 0.0), point
        grown, before = self._grown(age), self._grown(anchor)
        return {name: int(base[name] + grown[name] - before[name]) for name in self._metric_names}

    def _behaviour_status(self, age: float) -> tuple[str, float]:
        if self.behaviour == "pending_stuck":
            return "pending", 0.0
        if self.streaming:
            return "running", 0.0
        if self.behaviour == "static_error":
            return "failed", 0.0
        if age < self._run_for:
            return "running", 0.0
        return ("failed" if self.behaviour == "batch_fails" else "completed"), self._run_for

    def _behaviour_health(self, age: float) -> tuple[str, str | None, str | None, float]:
        behaviour = self.behaviour
        code, message = self._failure
        if behaviour == "static_error":
            return "error", code, message, 0.0
        if behaviour == "batch_fails":
            if age >= self._run_for:
                return "error", code, message, self._run_for
            return "ok", None, None, 0.0
        if behaviour in ("recovers", "skips_rising"):
            inside, since = self._last_edge(min(age, self._run_for))
            if not inside:
                return "ok", None, None, since
            if behaviour == "recovers":
                return "error", code, message, since
            return "warn", *_PARSE_WARNING, since
        return "ok", None, None, 0.0

    def view(self, now: float) -> JobView:
        """Status and health at ``now`` (cached while they cannot change by themselves)."""
        if self._view is not None:
            return self._view
        age = self._age(now)
        status, status_since = self._behaviour_status(age)
        if self._override is not None:
            status, status_since = self._override, self._override_at
        if self._pin is not None:
            health, code, message = self._pin
            since = self._pinned_at
        elif self._override in ("suspended", "canceled"):
            # A job that was told to stop no longer reports its source's trouble.
            health, code, message, since = "ok", None, None, self._override_at
        else:
            health, code, message, since = self._behaviour_health(age)
        updated = max(self._changed, status_since, since)
        view = JobView(status, self.desired, status_since, health, code, message, since, updated)
        if self.streaming and self.behaviour not in _TIMED:
            self._view = view
        return view

    # -- explicit changes ---------------------------------------------------------------
    def _touch(self, now: float) -> None:
        self._changed = self._age(now)
        self._view = None

    def _set_override(self, status: str | None, now: float) -> None:
        growing = status in (None, "running")
        if self._frozen and growing:
            self._anchor, self._frozen = self._age(now), False
        elif not self._frozen and not growing:
            self._base = {name: float(v) for name, v in self.totals_at(now).items()}
            self._frozen = True
        self._override, self._override_at = status, self._age(now)
        self._touch(now)

    def request_status(self, desired: str, now: float) -> None:
        """Apply ``desiredExecutionStatus`` as Polaris does, or raise StatusRefused."""
        current = self.view(now).execution_status
        if current in TERMINAL_STATUSES:
            raise StatusRefused(f"Job is already {current}")
        if desired == "canceled":
            self._set_override("canceled", now)
        elif not self.streaming:
            verb = "suspended" if desired == "suspended" else "resumed"
            raise StatusRefused(f"Only streaming jobs can be {verb}")
        elif desired == "suspended" and current != "suspended":
            self._set_override("suspended", now)
        elif desired == "running" and current == "suspended":
            self._set_override(None, now)
        if desired != self.desired:
            self.desired = desired
            self._touch(now)

    def set_execution(self, status: str, now: float) -> None:
        """Pin the execution status (a test's or the admin API's doing)."""
        self._set_override(status, now)

    def set_health(self, status: str, code: str | None, message: str | None, now: float) -> None:
        """Pin the health; it stays until pinned again."""
        self._pin = (status, code, message)
        self._pinned_at = self._age(now)
        if status != "ok":
            self._events.append(self.log_entry(self._pinned_at, status, code, message))
        self._touch(now)

    def reset_counters(self, now: float, totals: dict[str, float] | None = None) -> None:
        """Start the counters again from zero, or from ``totals`` where given."""
        current = {name: float(v) for name, v in self.totals_at(now).items()}
        self._base = dict.fromkeys(self._metric_names, 0.0) if totals is None else current
        for name, value in (totals or {}).items():
            if name in self._base:
                self._base[name] = float(value)
        self._anchor = self._age(now)

    # -- other answers --------------------------------------------------------------------
    def log_entry(
        self, age: float, status: str, code: str | None, message: str | None
    ) -> dict[str, Any]:
        """One log entry ``{timestamp, healthStatus, code, message}`` at ``age``."""
        timestamp = iso(self.born + age)
        return {"timestamp": timestamp, "healthStatus": status, "code": code, "message": message}

    def logs_at(self, now: float) -> list[dict[str, Any]]:
        """``GET /logs``: the trouble the job reported, oldest first, the last few."""
        age = min(self._age(now), self._run_for)
        code, message = self._failure
        entries = list(self._events)
        if self.behaviour == "static_error":
            entries.append(self.log_entry(0.0, "error", code, message))
        elif self.behaviour == "batch_fails" and age >= self._run_for:
            entries.append(self.log_entry(self._run_for, "error", code, message))
        elif self.behaviour in ("recovers", "skips_rising"):
            status = "error"
            if self.behaviour == "skips_rising":
                status, (code, message) = "warn", _PARSE_WARNING
            last = int(age // self.cycle)
            for cycle in range(max(0, last - _LOG_WINDOWS + 1), last + 1):
                start = cycle * self.cycle + self._window[0]
                if start <= age:
                    entries.append(self.log_entry(start, status, code, message))
        entries.sort(key=lambda entry: str(entry["timestamp"]))
        return entries[-50:]

    def progress_at(self, now: float) -> float:
        """``GET /progress``: the share of a batch job's work done (0 for streaming)."""
        status = self.view(now).execution_status
        if self.streaming or status == "pending":
            return 0.0
        if status == "completed":
            return 1.0
        age = self._override_at if self._override is not None else self._age(now)
        return round(min(1.0, min(age, self._run_for) / self.cycle), 4)
