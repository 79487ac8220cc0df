"""Maintenance windows (``[[maintenance]]``): when matching alerts are held back.

A window is *recurring* — on ``days`` (default: every day), from ``from`` to ``to`` in
``timezone`` (an IANA name; default UTC), crossing midnight when ``to`` is earlier than
``from`` — or *one-off*, from ``start`` to ``end`` (RFC 3339). It holds back the alerts
of its ``rules`` (default: every rule) on the jobs its ``match`` selects, with the rules'
own matcher (:func:`watchdog.rules.evaluate.fits`). A held-back alert is not posted;
one still firing when the window closes is posted then, once, as after a silence.

Everything here is pure: ``now`` (epoch seconds) comes from the caller. A recurring
window follows the wall clock of its zone, so daylight-saving changes need no special
case: on the night the clocks spring forward a window from 02:00 to 04:00 in Berlin is
open for one hour (02:00–03:00 does not happen), on the night they fall back for three
(02:00–03:00 happens twice). :meth:`MaintenanceWindow.next_change` finds when that
changes next, for ``/polaris maintenance``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from watchdog.domain.alerts import JobFacts
from watchdog.rules.evaluate import fits
from watchdog.rules.fields import (
    WEEKDAYS,
    Instant,
    RuleName,
    Text,
    TimeOfDay,
    TimeZoneName,
    Weekdays,
    listify,
)
from watchdog.rules.model import Match
from watchdog.rules.problems import did_you_mean
from watchdog.rules.tables import Frozen

_DAY = 1440  # minutes
#: How far ahead :meth:`MaintenanceWindow.next_change` looks: a weekly window changes
#: within a week, a window that crosses midnight a day later.
_LOOKAHEAD_DAYS = 9

RuleNames = Annotated[tuple[RuleName, ...], BeforeValidator(listify)]
Loc = tuple[str | int, ...]


def minutes(text: str) -> int:
    """``"02:30"`` → 150; ``"24:00"`` → 1440."""
    hours, _, mins = text.partition(":")
    return int(hours) * 60 + int(mins)


class MaintenanceWindow(Frozen):
    """One ``[[maintenance]]`` table."""

    name: RuleName
    description: Text | None = None
    match: Match = Field(default_factory=Match)
    #: names of the rules it holds back; empty: every rule
    rules: RuleNames = ()
    days: Weekdays = ()
    from_: TimeOfDay | None = Field(default=None, alias="from")
    to: TimeOfDay | None = None
    timezone: TimeZoneName = "UTC"
    start: Instant | None = None
    end: Instant | None = None

    @field_validator("from_")
    @classmethod
    def _from_within_the_day(cls, value: str | None) -> str | None:
        if value == "24:00":
            raise ValueError("must be at most 23:59 ('24:00' can only end a window)")
        return value

    @field_validator("to")
    @classmethod
    def _to_differs(cls, value: str | None, info: ValidationInfo) -> str | None:
        start = info.data.get("from_")
        if value is not None and start is not None and minutes(value) == minutes(start):
            raise ValueError(
                f"must differ from from ({start}): a window from {start} to {value} "
                'would last no time (for a whole day write from = "00:00", to = "24:00")'
            )
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start")
        if value is not None and start is not None and value <= start:
            raise ValueError(
                f"must be after start: {value.isoformat()} is not after {start.isoformat()}"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        recurring = self.from_ is not None or self.to is not None
        one_off = self.start is not None or self.end is not None
        if recurring and one_off:
            raise ValueError(
                "a window is either recurring (from, to, days, timezone) or one-off "
                "(start, end), not both"
            )
        if not recurring and not one_off:
            raise ValueError(
                'a window needs from and to (recurring, e.g. from = "02:00", to = "04:00")'
                " or start and end (one-off, RFC 3339 timestamps)"
            )
        pairs = (("from", self.from_, "to", self.to), ("start", self.start, "end", self.end))
        for first, first_value, second, second_value in pairs:
            if (first_value is None) != (second_value is None):
                missing, given = (first, second) if first_value is None else (second, first)
                raise ValueError(f"missing required key {missing!r} (it goes with {given!r})")
        if one_off and self.days:
            raise ValueError("days belong to recurring windows (from, to), not to start/end")
        return self

    # ---- evaluation (pure) -------------------------------------------------------------

    @property
    def recurring(self) -> bool:
        return self.from_ is not None

    @cached_property
    def _zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @cached_property
    def _days(self) -> frozenset[int]:
        chosen = self.days or WEEKDAYS
        return frozenset(WEEKDAYS.index(day) for day in chosen)

    def is_open(self, now: float) -> bool:
        """Whether the window is open at ``now``."""
        if not self.recurring:
            assert self.start is not None and self.end is not None
            return self.start.timestamp() <= now < self.end.timestamp()
        assert self.from_ is not None and self.to is not None
        local = datetime.fromtimestamp(now, self._zone)
        t = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        day, opens, closes = local.weekday(), minutes(self.from_), minutes(self.to)
        if opens < closes:
            return day in self._days and opens <= t < closes
        # Crosses midnight: the evening belongs to its day, the morning to the day before.
        return (day in self._days and t >= opens) or ((day - 1) % 7 in self._days and t < closes)

    def covers(self, rule: str, project: str, job: JobFacts) -> bool:
        """Whether the window holds back ``rule``'s alerts on ``job`` (open or not)."""
        if self.rules and rule not in self.rules:
            return False
        return fits(self.match, job.type, job.execution_status, job.table, job.job_id, project)

    def next_change(self, now: float) -> float | None:
        """When the window next opens (when closed at ``now``) or closes (when open);
        None when it never will again."""
        if not self.recurring:
            assert self.start is not None and self.end is not None
            edges = (self.start.timestamp(), self.end.timestamp())
            return next((edge for edge in edges if edge > now), None)
        state = self.is_open(now)
        for candidate in sorted(c for c in self._candidates(now) if c > now):
            if self.is_open(candidate) != state:
                return candidate
        return None

    def _candidates(self, now: float) -> Iterator[float]:
        """Every instant the window may open or close at, around ``now``: the wall-clock
        boundaries of each day (both occurrences of a repeated hour) and the zone's
        daylight-saving transitions (where a boundary that does not happen takes effect)."""
        assert self.from_ is not None and self.to is not None
        today = datetime.fromtimestamp(now, self._zone).date()
        for offset in range(-1, _LOOKAHEAD_DAYS):
            day = today + timedelta(days=offset)
            for edge in (minutes(self.from_), minutes(self.to)):
                wall = datetime.combine(day, time()) + timedelta(minutes=edge)
                for fold in (0, 1):
                    yield wall.replace(tzinfo=self._zone, fold=fold).timestamp()
            transition = _transition(day, self._zone)
            if transition is not None:
                yield transition

    def schedule(self) -> str:
        """The window's times in words: ``sat, sun 02:00–04:00 Europe/Berlin``."""
        if not self.recurring:
            assert self.start is not None and self.end is not None
            return f"{_stamp(self.start)} → {_stamp(self.end)}"
        days = ", ".join(self.days) if self.days else "daily"
        return f"{days} {self.from_}–{self.to} {self.timezone}"


def _transition(day: date, zone: zoneinfo.ZoneInfo) -> float | None:
    """The instant ``zone``'s UTC offset changes during local ``day``, if it does."""
    low = int(datetime.combine(day, time(), zone).timestamp())
    high = int(datetime.combine(day + timedelta(days=1), time(), zone).timestamp())

    def offset(at: int) -> timedelta | None:
        return datetime.fromtimestamp(at, zone).utcoffset()

    if offset(low) == offset(high):
        return None
    after = offset(high)
    while high - low > 1:  # the first second with the new offset
        middle = (low + high) // 2
        if offset(middle) == after:
            high = middle
        else:
            low = middle
    return float(high)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def open_windows(windows: Iterable[MaintenanceWindow], now: float) -> list[MaintenanceWindow]:
    return [window for window in windows if window.is_open(now)]


def unknown_names(
    window: MaintenanceWindow, rules: Collection[str], projects: Collection[str]
) -> Iterator[tuple[Loc, str]]:
    """(key path in the window, problem) for each rule or project the window names that
    the rules file does not define."""
    for index, name in enumerate(window.rules):
        if name not in rules:
            hint = did_you_mean(name, rules) or f"rules: {', '.join(rules) or 'none'}"
            yield ("rules", index), f"unknown rule {name!r} ({hint})"
    for index, name in enumerate(window.match.project):
        if name not in projects:
            hint = did_you_mean(name, projects) or f"projects: {', '.join(projects)}"
            yield ("match", "project", index), f"unknown project {name!r} ({hint})"
