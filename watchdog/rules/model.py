"""The rules of the rules file: one frozen model per kind, and the keys every rule takes.

Everything a rule can say is modelled here with ``extra="forbid"``, so a typo is an error
instead of a silently ignored key. The evaluators that give each kind its meaning are in
:mod:`watchdog.rules.evaluate`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictFloat, model_validator

from watchdog.rules.durations import Duration, format_duration
from watchdog.rules.fields import (
    ExecutionStatuses,
    Fraction,
    HealthStatuses,
    Hysteresis,
    JobIds,
    JobTypes,
    MetricName,
    PositiveDuration,
    ProjectNames,
    RepeatShorthand,
    RuleName,
    Severity,
    Text,
    TextList,
    Url,
)
from watchdog.rules.tables import Frozen


class Match(Frozen):
    """Which jobs a rule looks at; an empty tuple puts no constraint on that field."""

    type: JobTypes = ()
    execution_status: ExecutionStatuses = Field(default=(), alias="executionStatus")
    table: TextList = Field(default=(), description="fnmatch globs on the table name")
    job_id: JobIds = ()
    #: names of ``[[projects]]`` (``default`` when the file has none)
    project: ProjectNames = ()


class Repeat(Frozen):
    """Re-notify a still-firing alert every ``every``, growing by ``backoff`` up to ``max``."""

    every: PositiveDuration
    backoff: StrictFloat = Field(default=1.0, ge=1.0)
    max: Duration | None = None

    @model_validator(mode="after")
    def _cap_not_below_start(self) -> Repeat:
        if self.max is not None and self.max < self.every:
            raise ValueError(
                f"max ({format_duration(self.max)}) must be at least every "
                f"({format_duration(self.every)})"
            )
        return self


class Escalate(Frozen):
    """An alert neither acknowledged nor resolved ``after`` it was posted gets one thread
    reply mentioning ``mention`` (and, with ``channel``, a message there linking to it)."""

    after: PositiveDuration
    mention: Text
    channel: Text | None = None


class RuleBase(Frozen):
    """Keys every rule takes, whatever its kind."""

    name: RuleName
    kind: str
    severity: Severity = "warning"
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    match: Match = Field(default_factory=Match)
    channel: Text | None = None
    mention: Text | None = None
    repeat: Annotated[Repeat | None, RepeatShorthand] = None
    escalate: Escalate | None = None
    # Terminal jobs last updated longer ago than this are history, not news: without it
    # the first start would page for every failure still listed by Polaris.
    max_age: Duration = 86_400.0
    description: str | None = None
    runbook: Url | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this rule reads (empty: it needs only the job listing)."""
        return ()

    @property
    def window(self) -> float:
        """The longest look-back, in seconds, this rule needs in a job's metric history."""
        return 0.0


class HealthRule(RuleBase):
    """Fires while the job's health status is one of ``status`` (and its code in ``codes``)."""

    kind: Literal["health"] = "health"
    status: HealthStatuses = ("error",)
    codes: TextList = ()


class ExecutionRule(RuleBase):
    """Fires while the job's execution status is one of ``status``."""

    kind: Literal["execution"] = "execution"
    status: Annotated[ExecutionStatuses, Field(min_length=1)]


class _WindowedRule(RuleBase):
    """A rule that compares a job's counters over the look-back ``within``."""

    within: PositiveDuration

    @property
    def window(self) -> float:
        return self.within


class _OneMetricRule(_WindowedRule):
    """A windowed rule over one counter, ``metric``."""

    metric: MetricName

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


class RisingRule(_OneMetricRule):
    """Fires when counter ``metric`` grows by at least ``increase`` within ``within``."""

    kind: Literal["rising"] = "rising"
    increase: StrictFloat = Field(gt=0)
    hysteresis: Hysteresis = 0.1


class RateRule(_OneMetricRule):
    """Fires when counter ``metric`` grows faster than ``above`` per minute over ``within``."""

    kind: Literal["rate"] = "rate"
    above: StrictFloat = Field(gt=0)
    hysteresis: Hysteresis = 0.1


class RatioRule(_WindowedRule):
    """Fires when numerator growth / denominator growth over ``within`` exceeds ``above``."""

    kind: Literal["ratio"] = "ratio"
    numerator: MetricName = "numRowsSkippedByError"
    denominator: MetricName = "numRowsProcessed"
    above: Fraction
    min_denominator: StrictFloat = Field(default=1.0, ge=0)
    hysteresis: Hysteresis = 0.1

    @model_validator(mode="after")
    def _different_metrics(self) -> RatioRule:
        if self.numerator == self.denominator:
            raise ValueError("numerator and denominator must be different metrics")
        return self

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.numerator, self.denominator)


class StalledRule(_OneMetricRule):
    """Fires when counter ``metric`` of a running job has not grown for ``within``."""

    kind: Literal["stalled"] = "stalled"
    metric: MetricName = "numRowsProcessed"


class BudgetRule(RuleBase):
    """Warns before Polaris fails a job on its parse-error budget (maxParseExceptions).

    Fires when numRowsSkippedByError reaches ``percent`` of the job's limit, or — with
    ``eta_below`` — when, at the rate it grew over ``within``, it will reach the limit
    sooner than that: the alert says when ("fails in ~12 min at 43 rows/min")."""

    kind: Literal["budget"] = "budget"
    percent: StrictFloat | None = Field(default=None, gt=0, le=100)
    eta_below: PositiveDuration | None = None
    #: the look-back the skip rate (and so the forecast) is measured over
    within: PositiveDuration = 600.0
    hysteresis: Hysteresis = 0.1

    @model_validator(mode="after")
    def _says_when(self) -> BudgetRule:
        if self.percent is None and self.eta_below is None:
            raise ValueError(
                "a budget rule needs percent (fire at this share of maxParseExceptions), "
                "eta_below (fire when the job will reach it sooner than this), or both"
            )
        return self

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("numRowsSkippedByError",)

    @property
    def window(self) -> float:
        return self.within


Rule = Annotated[
    HealthRule | ExecutionRule | RisingRule | RateRule | RatioRule | StalledRule | BudgetRule,
    Field(discriminator="kind"),
]
