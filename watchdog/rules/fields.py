"""Validated field types of the rules file: names, choices, durations, ids, links.

Each type checks one kind of value and says what is wrong in words that end up in a
``FILE:LINE: message`` problem, with a "did you mean" for near-miss spellings. Lists of
choices also accept a single string (``type = "batch"``), since that is how people
write a one-element set.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictFloat

from watchdog.domain.names import PROJECT_NAME, RULE_NAME, SLACK_USER_ID
from watchdog.polaris.errors import is_job_id
from watchdog.polaris.models import EXECUTION_STATUSES, HEALTH_STATUSES, JOB_TYPES, KNOWN_METRICS
from watchdog.rules.durations import Duration, format_duration
from watchdog.rules.problems import did_you_mean

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# What Polaris project ids look like (UUIDs) and what stand-ins use: no '/', '?', '%'.
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_API_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")


def _one_of(what: str, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, str) and value not in choices:
            hint = did_you_mean(value, choices) or f"expected one of: {', '.join(choices)}"
            raise ValueError(f"unknown {what} {value!r} ({hint})")
        return value

    return check


def listify(value: Any) -> Any:
    # `type = "batch"` and `type = ["batch", "sql"]` both mean a set of choices.
    return [value] if isinstance(value, str) else value


def _at_least(minimum: float, *, strictly: bool = False) -> Callable[[float], float]:
    def check(seconds: float) -> float:
        if seconds < minimum or (strictly and seconds == minimum):
            relation = "longer than" if strictly else "at least"
            raise ValueError(f"must be {relation} {format_duration(minimum)}")
        return seconds

    return check


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _rule_name(value: str) -> str:
    if not RULE_NAME.fullmatch(value):
        raise ValueError(
            f"bad rule name {value!r}: use lowercase letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    return value


def _slack_user(value: str) -> str:
    if not SLACK_USER_ID.fullmatch(value):
        raise ValueError(
            f"bad Slack user id {value!r}: operators are member ids like 'U0123ABCD' "
            "(profile → ⋮ → Copy member ID), not names"
        )
    return value


def _job_id(value: str) -> str:
    # The same shape the Polaris client demands before an id goes into a URL path.
    if not is_job_id(value):
        raise ValueError(f"bad job id {value!r}: job ids are UUIDs (8-4-4-4-12 hex digits)")
    return value.lower()


def _project_name(value: str) -> str:
    if not PROJECT_NAME.fullmatch(value):
        raise ValueError(
            f"bad project name {value!r}: use lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit, at most 32 characters"
        )
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"bad variable name {value!r}: api_key_env names the environment variable "
            "that holds the key (like POLARIS_API_KEY_PROD), never the key itself"
        )
    return value


def _project_id(value: str) -> str:
    if not _PROJECT_ID.fullmatch(value):
        raise ValueError(f"bad project id {value!r}: Polaris project ids are UUIDs")
    return value


def _api_url(value: str) -> str:
    if not _API_URL.fullmatch(value):
        raise ValueError(
            f"bad url {value!r}: the organisation's API root, like "
            "'https://myorg.us-east-1.aws.api.imply.io' (no query, no credentials)"
        )
    return value.rstrip("/")


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"bad runbook {value!r}: must start with http:// or https://")
    return value


def _weekday(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str type check says what is wrong
    word = value.strip().lower()
    if word in _FULL_DAYS:
        return WEEKDAYS[_FULL_DAYS.index(word)]
    if word not in WEEKDAYS:
        hint = did_you_mean(word, WEEKDAYS) or f"expected one of: {', '.join(WEEKDAYS)}"
        raise ValueError(f"bad day {value!r} ({hint})")
    return word


def _time_of_day(value: str) -> str:
    if not _TIME_OF_DAY.fullmatch(value):
        raise ValueError(f"bad time {value!r}: write 24-hour HH:MM, like '02:00' or '23:30'")
    return value


def _time_zone(value: str) -> str:
    try:
        if not _ZONE_NAME.fullmatch(value):
            raise ValueError(value)
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = did_you_mean(value, zoneinfo.available_timezones()) or (
            "an IANA name like 'Europe/Berlin', 'America/New_York' or 'UTC'"
        )
        raise ValueError(f"unknown time zone {value!r} ({hint})") from None
    return value


def _instant(value: Any) -> Any:
    """An RFC 3339 timestamp with its UTC offset, as text or a TOML date-time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"bad timestamp {value!r}: use RFC 3339, like '2026-12-24T00:00:00Z'"
            ) from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(
            f"timestamp {value.isoformat()!r} has no UTC offset: add 'Z' or one like '+01:00'"
        )
    return value


def _fraction(value: float) -> float:
    if value > 1:
        raise ValueError(f"must be a fraction, at most 1 (0.05 means 5%; got {value:g})")
    return value


def _repeat_shorthand(value: Any) -> Any:
    return {"every": value} if isinstance(value, str) else value


Text = Annotated[str, AfterValidator(_not_empty)]
TextList = Annotated[tuple[Text, ...], BeforeValidator(listify)]
RuleName = Annotated[str, AfterValidator(_rule_name)]
SlackUserIds = Annotated[
    tuple[Annotated[str, AfterValidator(_slack_user)], ...], BeforeValidator(listify)
]
JobId = Annotated[str, AfterValidator(_job_id)]
JobIds = Annotated[tuple[JobId, ...], BeforeValidator(listify)]
Url = Annotated[str, AfterValidator(_url)]
ProjectName = Annotated[str, AfterValidator(_project_name)]
ProjectNames = Annotated[tuple[ProjectName, ...], BeforeValidator(listify)]
EnvName = Annotated[str, AfterValidator(_env_name)]
ProjectId = Annotated[str, AfterValidator(_project_id)]
ApiUrl = Annotated[str, AfterValidator(_api_url)]
Severity = Annotated[
    Literal["info", "warning", "critical"], BeforeValidator(_one_of("severity", SEVERITIES))
]
AtLeast100ms = Annotated[Duration, AfterValidator(_at_least(0.1))]
AtLeast1s = Annotated[Duration, AfterValidator(_at_least(1.0))]
PositiveDuration = Annotated[Duration, AfterValidator(_at_least(0.0, strictly=True))]
#: `repeat = "1h"` is short for `repeat = { every = "1h" }`.
RepeatShorthand = BeforeValidator(_repeat_shorthand)
MetricName = Annotated[str, AfterValidator(_one_of("metric", KNOWN_METRICS))]
#: A share such as an error ratio: 0.01 is 1%. `above = 5` almost surely meant 5%.
Fraction = Annotated[StrictFloat, Field(gt=0), AfterValidator(_fraction)]
Hysteresis = Annotated[StrictFloat, Field(ge=0.0, lt=1.0)]
#: ``days = ["sat", "sun"]`` (full names too, any case)
Weekdays = Annotated[
    tuple[Annotated[str, BeforeValidator(_weekday)], ...], BeforeValidator(listify)
]
#: ``"02:00"``; ``"24:00"`` is the end of the day
TimeOfDay = Annotated[str, AfterValidator(_time_of_day)]
#: an IANA time zone name that :mod:`zoneinfo` knows
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
#: an RFC 3339 timestamp with its offset: ``"2026-12-24T00:00:00Z"``
Instant = Annotated[datetime, BeforeValidator(_instant)]
JobTypes = Annotated[
    tuple[Annotated[str, AfterValidator(_one_of("job type", JOB_TYPES))], ...],
    BeforeValidator(listify),
]
ExecutionStatuses = Annotated[
    tuple[Annotated[str, AfterValidator(_one_of("execution status", EXECUTION_STATUSES))], ...],
    BeforeValidator(listify),
]
HealthStatuses = Annotated[
    tuple[Annotated[str, AfterValidator(_one_of("health status", HEALTH_STATUSES))], ...],
    BeforeValidator(listify),
    Field(min_length=1),
]
