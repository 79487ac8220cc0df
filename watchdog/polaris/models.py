"""Typed models of the Polaris Jobs v1 API answers.

Polaris adds fields over time and leaves optional ones out, so every model ignores
unknown fields and defaults the optional ones. Enumerations are kept as plain strings:
a new job type or status must not turn a whole listing into a parse error. The health
object is a union keyed by ``status`` (``ok`` / ``warn`` with a code / ``error`` with a
code and a message), as the API documents it.

A listing holds every job of a project at once (5,000 and more), so the job and what it
nests are slotted pydantic dataclasses: about 0.3 KB a job besides its strings, where a
``BaseModel`` (an instance ``__dict__`` and a set of the fields given) costs ~2.5 KB. The
answers about one job stay ``BaseModel`` classes. :func:`read_model` validates either kind.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic.dataclasses import dataclass

#: Cumulative counters of ``GET /jobs/{id}/metrics`` (``totals``).
KNOWN_METRICS: tuple[str, ...] = (
    "numRowsProcessed",
    "numRowsProcessedWithWarning",
    "numRowsSkippedByError",
    "numRowsSkippedByFilter",
    "numRowsPersisted",
    "numBytesProcessed",
)

EXECUTION_STATUSES: tuple[str, ...] = (
    "pending",
    "running",
    "completed",
    "idle",
    "canceled",
    "failed",
    "suspended",
    "unknown",
)
#: A job in one of these states will not change by itself any more.
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "canceled", "failed"})
HEALTH_STATUSES: tuple[str, ...] = ("ok", "warn", "error")
JOB_TYPES: tuple[str, ...] = (
    "batch",
    "sql",
    "streaming",
    "delete_data",
    "drop_table",
    "restore_data",
)
DESIRED_STATUSES: tuple[str, ...] = ("running", "suspended", "canceled")

#: Polaris' "unlimited" maxParseExceptions (Java's Integer.MAX_VALUE).
UNLIMITED_PARSE_EXCEPTIONS = 2_147_483_647

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: object) -> datetime | None:
    """Parse a Polaris timestamp, tolerating 7-digit fractions and a missing zone.

    Answers carry timestamps such as ``2024-08-01T10:11:12.1234567Z``; anything that
    does not parse gives ``None`` instead of failing the whole job.
    """
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_CONFIG = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
#: The dataclasses say ``frozen`` in their decorator (pydantic warns when both do).
_DATACLASS_CONFIG = ConfigDict(extra="ignore", populate_by_name=True)

T = TypeVar("T")


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(model: type[Any]) -> TypeAdapter[Any]:
    # Building an adapter compiles a validator: once per model, not once per answer.
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def read_model(model: type[T], raw: Any) -> T:
    """``raw`` (decoded JSON) validated as ``model``; raises pydantic's ValidationError."""
    value: T = _adapter(model).validate_python(raw)
    return value


def document(value: object) -> dict[str, Any]:
    """A model as Polaris spells it (aliases, no unset optional fields): for ``--json``."""
    dumped: dict[str, Any] = _adapter(type(value)).dump_python(
        value, mode="json", by_alias=True, exclude_none=True
    )
    return dumped


class _Model(BaseModel):
    model_config = _CONFIG


@dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class LogEntry:
    timestamp: str | None = None
    health_status: str | None = Field(default=None, alias="healthStatus")
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class HealthOk:
    status: Literal["ok"]

    @property
    def code(self) -> str | None:
        return None

    @property
    def detail(self) -> str:
        return ""


@dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class HealthWarn:
    status: Literal["warn"]
    code: str = "unknown"
    log: LogEntry | None = None

    @property
    def detail(self) -> str:
        return (self.log.message or "") if self.log else ""


@dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class HealthError:
    status: Literal["error"]
    code: str = "unknown"
    message: str | None = None
    log: LogEntry | None = None

    @property
    def detail(self) -> str:
        """What is wrong, in Polaris' words: the message, else the log entry's."""
        if self.message:
            return self.message
        return (self.log.message or "") if self.log else ""


Health = Annotated[HealthOk | HealthWarn | HealthError, Field(discriminator="status")]


@dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class Target:
    type: str | None = None
    table_name: str | None = Field(default=None, alias="tableName")


@dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class Source:
    type: str | None = None
    connection_name: str | None = Field(default=None, alias="connectionName")


@dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class Job:
    """A job as ``GET /jobs`` and ``GET /jobs/{id}`` return it (only what we use)."""

    id: str
    type: str = "unknown"
    execution_status: str = Field(default="unknown", alias="executionStatus")
    desired_execution_status: str | None = Field(default=None, alias="desiredExecutionStatus")
    health: Health | None = None
    target: Target | None = None
    source: Source | None = None
    max_parse_exceptions: int | None = Field(default=None, alias="maxParseExceptions")
    created_timestamp: str | None = Field(default=None, alias="createdTimestamp")
    last_updated_timestamp: str | None = Field(default=None, alias="lastUpdatedTimestamp")

    @field_validator("created_timestamp", "last_updated_timestamp", mode="before")
    @classmethod
    def _any_timestamp_is_text(cls, value: Any) -> Any:
        # A timestamp that is not text (a number, an object) must not make the whole job
        # unreadable: kept as text, it parses to "unknown" (see Job.updated_at).
        if value is None or isinstance(value, str):
            return value
        return repr(value)[:100]

    @field_validator("health", mode="before")
    @classmethod
    def _unknown_health_is_none(cls, value: Any) -> Any:
        # A health status Polaris invents later must not make the job unreadable.
        if isinstance(value, dict) and value.get("status") not in HEALTH_STATUSES:
            return None
        return value

    @property
    def table(self) -> str | None:
        return self.target.table_name if self.target else None

    @property
    def health_status(self) -> str | None:
        return self.health.status if self.health else None

    @property
    def health_code(self) -> str | None:
        return self.health.code if self.health else None

    @property
    def health_detail(self) -> str:
        return self.health.detail if self.health else ""

    @property
    def is_terminal(self) -> bool:
        return self.execution_status in TERMINAL_STATUSES

    @property
    def parse_exception_limit(self) -> int | None:
        """maxParseExceptions when it is a real limit; ``None`` when unlimited."""
        limit = self.max_parse_exceptions
        if limit is None or limit <= 0 or limit >= UNLIMITED_PARSE_EXCEPTIONS:
            return None
        return limit

    @property
    def updated_at(self) -> datetime | None:
        """When the job last changed; None when Polaris' timestamp is missing or cannot be
        read (its age is then unknown)."""
        return parse_timestamp(self.last_updated_timestamp)


class JobStatus(_Model):
    execution_status: str = Field(alias="executionStatus")


class Metrics(_Model):
    """``GET /jobs/{id}/metrics``: cumulative counters for the job's life."""

    totals: dict[str, float] = Field(default_factory=dict)

    @field_validator("totals", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        # Booleans are ints to Python; a counter that says `true` is garbage, not 1.
        # Python's json reads NaN and Infinity, which no counter can be either.
        if isinstance(value, dict):
            for name, number in value.items():
                if isinstance(number, bool) or not isinstance(number, int | float):
                    raise ValueError(f"metric {name!r} is not a number: {number!r}")
                if isinstance(number, float) and not math.isfinite(number):
                    raise ValueError(f"metric {name!r} is not a finite number: {number!r}")
        return value


class JobLogs(_Model):
    logs: list[LogEntry] = Field(default_factory=list)


class JobProgress(_Model):
    overall_progress: float = Field(alias="overallProgress")


class ApiErrorBody(_Model):
    """Polaris' error body ``{code, message, target?, details?}``; ``details`` lists more
    specific errors (objects like the body itself, or plain strings)."""

    code: str | int | None = None
    message: str | None = None
    target: str | None = None
    details: list[Any] | None = None
