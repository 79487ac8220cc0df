"""The ``test-rules`` file: TOML in, checked cases out, every problem as ``FILE:LINE``.

A test file names a rules file and holds cases; each case describes jobs as series over
ticks (execution status, health, cumulative counters) and what must hold at given times:
which alerts fire, which are pending, which notifications go out. A case may also hold
maintenance windows of its own (``[[case.maintenance]]``, as in the rules file, next to
the rules file's), acknowledgements (``[[case.ack]]``), and the time of its first tick
(``start``), so windows and escalations can be tested at the hours they mean. This module
reads and checks the file; :mod:`watchdog.testing.run` runs the cases.

Series use promtool's expanding notation, so people who know Prometheus' rule tests feel
at home: ``"0+10x3"`` is ``0 10 20 30`` (a start and three more steps), ``"5x2"`` is
``5 5 5``, ``"_"`` is a tick without a sample and ``"_x3"`` three of them. A word does not
count up, so like ``_`` it *repeats*: ``"running x3 failed"`` is three ticks running,
then failed.
"""

from __future__ import annotations

import math
import re
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from watchdog.errors import InputError
from watchdog.polaris.models import EXECUTION_STATUSES, HEALTH_STATUSES, JOB_TYPES
from watchdog.rules.durations import UNSIGNED_NUMBER, parse_duration
from watchdog.rules.fields import Instant, JobId, MetricName, Text
from watchdog.rules.maintenance import MaintenanceWindow
from watchdog.rules.problems import Problem, describe_error, did_you_mean, toml_problem
from watchdog.rules.toml_lines import TomlLines

#: The longest series and the longest case, in ticks: a slip such as ``0+1x1000000000``
#: must be an error, not a hang.
MAX_TICKS = 100_000

_NUMBER = re.compile(rf"[+-]?{UNSIGNED_NUMBER}")
_EXPANDING = re.compile(rf"([+-]?{UNSIGNED_NUMBER})(?:([+-])({UNSIGNED_NUMBER}))?x(\d+)")
_GAPS = re.compile(r"_x(\d+)")
_REPEAT = re.compile(r"x(\d+)")
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HINT = "use numbers like '0+10x20' (0, 10, ... 200), '5x3' (5, 5, 5, 5), '_' (no sample)"

Loc = tuple[str | int, ...]
Health = tuple[str, str | None]  # (status, code)


# ---- series notation ----------------------------------------------------------------------


def _finite(token: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"bad value {token!r}: too large")
    return value


def _room(out: list[Any], more: int) -> None:
    if len(out) + more > MAX_TICKS:
        raise ValueError(f"the series is too long: at most {MAX_TICKS:,} ticks")


def parse_numbers(text: str) -> list[float | None]:
    """Expand a counter series (``None``: no sample that tick); ValueError says what is wrong."""
    out: list[float | None] = []
    for token in text.split():
        if token == "_":
            _room(out, 1)
            out.append(None)
        elif gaps := _GAPS.fullmatch(token):
            _room(out, int(gaps.group(1)))
            out.extend([None] * int(gaps.group(1)))
        elif _NUMBER.fullmatch(token):
            _room(out, 1)
            out.append(_finite(token, float(token)))
        elif expanding := _EXPANDING.fullmatch(token):
            start, sign, step, count = expanding.groups()
            first = _finite(token, float(start))
            delta = _finite(token, float(step or 0)) * (-1 if sign == "-" else 1)
            _room(out, int(count) + 1)
            _finite(token, first + delta * int(count))
            # start + i*step rather than a running sum: no float drift over long series.
            out.extend(first + delta * i for i in range(int(count) + 1))
        elif _REPEAT.fullmatch(token):
            raise ValueError(f"bad value {token!r}: write the count onto the number: '5x3'")
        else:
            raise ValueError(f"bad value {token!r}: {_HINT}")
    if not out:
        raise ValueError(f"the series is empty: {_HINT}")
    return out


def parse_words(text: str) -> list[str | None]:
    """Expand a word series such as ``"running x3 failed"``; ``_`` gives ``None``."""
    out: list[str | None] = []
    repeatable = False
    for token in text.split():
        repeat = _REPEAT.fullmatch(token)
        if repeat is None:
            _room(out, 1)
            out.append(None if token == "_" else token)
            repeatable = True
            continue
        if not repeatable:
            raise ValueError(f"{token!r} repeats the word before it, but there is none")
        count = int(repeat.group(1))
        if count < 1:
            raise ValueError(f"{token!r}: a word lasts at least one tick")
        _room(out, count - 1)
        out.extend([out[-1]] * (count - 1))
        repeatable = False
    if not out:
        raise ValueError("the series is empty: use words like 'running x10 suspended'")
    return out


def _series(parse: Callable[[str], list[Any]], numbers: bool) -> Callable[[Any], list[Any]]:
    """A series written as notation text, a lone number, or a list of numbers and texts."""

    def read(value: Any) -> list[Any]:
        out: list[Any] = []
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"item {index}: " if isinstance(value, list) else ""
            if isinstance(item, str):
                try:
                    out.extend(parse(item))
                except ValueError as error:
                    raise ValueError(f"{where}{error}") from None
            elif numbers and isinstance(item, int | float) and not isinstance(item, bool):
                out.append(_finite(str(item), float(item)))
            else:
                raise ValueError(f"{where}must be {'a number or ' * numbers}text, not {item!r}")
            _room(out, 0)
        if not out:
            raise ValueError("the series is empty")
        return out

    return read


def _one_of(what: str, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    """A check of one word, or of every word of a series (``None``, nothing there, passes)."""

    def check(value: Any) -> Any:
        for word in value if isinstance(value, list | tuple) else [value]:
            if word is not None and word not in choices:
                hint = did_you_mean(word, choices) or f"expected one of: {', '.join(choices)}"
                raise ValueError(f"unknown {what} {word!r} ({hint})")
        return value

    return check


def _health(words: list[str | None]) -> list[Health | None]:
    out: list[Health | None] = []
    for word in words:
        if word is None:
            out.append(None)
            continue
        status, colon, code = word.partition(":")
        _one_of("health status", HEALTH_STATUSES)(status)
        if colon and (status == "ok" or not code):
            raise ValueError(f"{word!r}: write 'warn:CODE' or 'error:CODE'; ok takes no code")
        out.append((status, code or None))
    return out


# ---- the file's shape ---------------------------------------------------------------------


def _duration(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}: durations are strings like '30s', '5m'")
    return parse_duration(value)


def _tick_interval(seconds: float) -> float:
    if seconds < 0.1:
        raise ValueError("must be at least 100ms")
    return seconds


def _job_name(value: str) -> str:
    if not _JOB_NAME.fullmatch(value):
        raise ValueError(f"bad job name {value!r}: use letters, digits, '_', '.' and '-'")
    return value


Seconds = Annotated[float, BeforeValidator(_duration)]
Interval = Annotated[Seconds, AfterValidator(_tick_interval)]
Numbers = Annotated[tuple[float | None, ...], BeforeValidator(_series(parse_numbers, True))]
Executions = Annotated[
    tuple[str | None, ...],
    BeforeValidator(_series(parse_words, False)),
    AfterValidator(_one_of("execution status", EXECUTION_STATUSES)),
]
Healths = Annotated[
    tuple[tuple[str, str | None] | None, ...],
    BeforeValidator(lambda value: _health(_series(parse_words, False)(value))),
]
JobType = Annotated[str, AfterValidator(_one_of("job type", JOB_TYPES))]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class JobSpec(_Strict):
    """One job of a case; each series is indexed by tick and repeats its last value."""

    name: Annotated[str, AfterValidator(_job_name)]
    id: JobId
    type: JobType
    table: Text | None = None
    execution: Executions = ("running",)  # None: the job does not exist at that tick
    health: Healths = (("ok", None),)  # None: Polaris reports no health
    max_parse_exceptions: StrictInt | None = Field(default=None, ge=0)
    updated_ago: Seconds = 0.0  # lastUpdatedTimestamp: this long before the first tick
    metrics: dict[MetricName, Numbers] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_id(cls, data: Any) -> Any:
        # Stable across runs, so a rule's `match.job_id` can be pinned in a test as well.
        if isinstance(data, dict) and "id" not in data and isinstance(data.get("name"), str):
            seed = f"polaris-watchdog-test:{data['name']}"
            return {**data, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, seed))}
        return data


class ExpectSpec(_Strict):
    """What must hold right after the tick at ``at``; a key left out is not checked."""

    at: Seconds
    firing: tuple[str, ...] | None = None  # "rule/job"
    pending: tuple[str, ...] | None = None  # "rule/job"
    notified: tuple[str, ...] | None = None  # "kind:rule/job"

    @model_validator(mode="after")
    def _says_something(self) -> ExpectSpec:
        if self.firing is None and self.pending is None and self.notified is None:
            raise ValueError("an expect needs at least one of: firing, pending, notified")
        return self


class AckSpec(_Strict):
    """An operator acknowledges the incident of ``alert`` ("rule/job") firing at ``at``
    (before that tick is judged); with ``until``, withdraws it at that time."""

    at: Seconds
    alert: str
    until: Seconds | None = None

    @field_validator("until")
    @classmethod
    def _until_after_at(cls, value: float | None, info: ValidationInfo) -> float | None:
        at = info.data.get("at")
        if value is not None and at is not None and value <= at:
            raise ValueError("must be later than at")
        return value


class CaseSpec(_Strict):
    name: Text
    interval: Interval | None = None
    #: the time of the first tick (default 2023-11-14T22:13:20Z)
    start: Instant | None = None
    job: tuple[JobSpec, ...] = Field(min_length=1)
    expect: tuple[ExpectSpec, ...] = Field(min_length=1)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    ack: tuple[AckSpec, ...] = ()

    @model_validator(mode="after")
    def _unique_jobs(self) -> CaseSpec:
        for what in ("name", "id"):
            values = [getattr(job, what) for job in self.job]
            twice = sorted({value for value in values if values.count(value) > 1})
            if twice:
                raise ValueError(f"job {what}s must differ within a case: {', '.join(twice)}")
        return self


class _Document(_Strict):
    rules: Text
    interval: Interval | None = None
    case: tuple[CaseSpec, ...] = Field(min_length=1)


_MODELS: dict[str, type[BaseModel]] = {
    "case": CaseSpec,
    "job": JobSpec,
    "expect": ExpectSpec,
    "maintenance": MaintenanceWindow,
    "ack": AckSpec,
}


# ---- the checked file ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleTestFile:
    """A test file of a valid shape; :mod:`watchdog.testing.run` checks it against its rules."""

    path: Path
    rules: Path  # the rules file it tests, resolved against the test file's folder
    interval: float | None  # tick spacing of cases that set none; None: the rules file's
    cases: tuple[CaseSpec, ...]
    lines: TomlLines

    def problem(self, at: Loc, message: str) -> Problem:
        """A problem at the line of key path ``at`` (or of its nearest located parent)."""
        return Problem(str(self.path), self.lines.nearest_line(at), message)


class RuleTestFileError(InputError):
    """The test file, or the rules file it names, cannot be used; ``problems`` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def load_test_file(path: Path) -> RuleTestFile:
    """Read and check the test file at ``path``; raises :class:`RuleTestFileError`."""
    try:
        raw = path.read_bytes()
        return parse_test_text(raw.decode("utf-8"), path)
    except OSError as error:
        reason = f"cannot read test file: {error.strerror or error}"
        raise RuleTestFileError([Problem(str(path), 1, reason)]) from None
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = f"not UTF-8 text: byte {raw[error.start]:#04x} cannot be decoded"
        raise RuleTestFileError([Problem(str(path), line, message)]) from None


def parse_test_text(text: str, path: Path) -> RuleTestFile:
    """Check the shape of test-file ``text``, read from ``path``."""
    shown = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RuleTestFileError([toml_problem(shown, text, str(error))]) from None
    except RecursionError:
        raise RuleTestFileError([Problem(shown, 1, "invalid TOML: nested too deeply")]) from None
    lines = TomlLines(text)
    try:
        document = _Document.model_validate(data)
    except ValidationError as error:
        details = error.errors()
        # A list whose only item is broken is also "too short": say only what is broken.
        inner = {tuple(d["loc"][:n]) for d in details for n in range(len(d["loc"]))}
        problems = {
            _problem(shown, detail, data, lines)
            for detail in details
            if detail["type"] != "too_short" or tuple(detail["loc"]) not in inner
        }
        raise RuleTestFileError(sorted(problems, key=lambda p: (p.line, p.message))) from None
    rules = path.parent / document.rules
    return RuleTestFile(path, rules, document.interval, document.case, lines)


def _problem(shown: str, error: ErrorDetails, data: dict[str, Any], lines: TomlLines) -> Problem:
    """One pydantic error about the test file, said as the rules file says its problems.

    The error is re-rooted at the innermost case, job or expect it is about, so the words
    come from :func:`describe_error` and the "where" names that table (``case 'x': job 'y'``).
    """
    loc = tuple(part for part in error["loc"] if part != "[key]")
    root: type[BaseModel] = _Document
    start, node, walk, context = 0, data, cast(Any, data), []
    for index, part in enumerate(loc):
        if isinstance(walk, dict) and part in walk:
            walk = walk[part]
        elif isinstance(walk, list) and isinstance(part, int) and 0 <= part < len(walk):
            walk = walk[part]
        else:
            break
        parent = loc[index - 1] if index else ""
        if isinstance(part, int) and parent in _MODELS and isinstance(walk, dict):
            node, start, root = walk, index + 1, _MODELS[str(parent)]
            name = walk.get("name")
            context.append(f"{parent} {name!r}" if isinstance(name, str) else f"{parent}[{part}]")
    inner_error = cast(ErrorDetails, {**error, "loc": loc[start:]})
    message = describe_error(shown, inner_error, node, lines, root).message
    if context:  # describe_error thinks it is at the top of a rules file; we know better
        message = message.replace(" at the top level", "")
    where = "".join(f"{part}: " for part in context)
    return Problem(shown, lines.nearest_line(loc), where + message)
