"""The rules file: TOML in, frozen and validated models out, every problem as ``FILE:LINE``.

The file is parsed once at start-up (and by ``polaris-watchdog check``). Everything a
rule can say is modelled here with ``extra="forbid"``, so a typo is an error instead of
a silently ignored key, and all problems are reported at once, each at the line where
the offending key, table or rule starts (see :mod:`watchdog.rules.toml_lines`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from watchdog.rules.durations import STRINGS_ONLY, Duration, format_duration
from watchdog.rules.fields import (
    AtLeast100ms,
    ExecutionStatuses,
    Fraction,
    HealthStatuses,
    Hysteresis,
    JobIds,
    JobTypes,
    MetricName,
    PositiveDuration,
    RepeatShorthand,
    RuleName,
    Severity,
    SlackUserIds,
    Text,
    TextList,
    Url,
)
from watchdog.rules.problems import (
    Problem,
    RulesFileError,
    describe_error,
    duplicate_names,
    toml_problem,
)
from watchdog.rules.toml_lines import TomlLines


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )


class WatchSettings(_Frozen):
    """``[watch]``: how often and how hard to poll Polaris."""

    interval: AtLeast100ms = 30.0
    concurrency: StrictInt = Field(default=16, ge=1, le=256)
    max_rate: StrictFloat = Field(default=50.0, gt=0)
    page_size: StrictInt = Field(default=500, ge=1, le=1000)
    timeout: PositiveDuration = 10.0
    no_data_after: PositiveDuration = 300.0

    @model_validator(mode="after")
    def _no_data_spans_a_poll(self) -> WatchSettings:
        # Shorter than one poll period, every gap between two polls would look like an outage.
        if self.no_data_after < self.interval:
            raise ValueError(
                f"no_data_after ({format_duration(self.no_data_after)}) must be at least "
                f"interval ({format_duration(self.interval)})"
            )
        return self


class SlackSettings(_Frozen):
    """``[slack]``: where alerts go and who may change jobs from Slack."""

    channel: Text | None = None
    operators: SlackUserIds = ()
    group_threshold: StrictInt = Field(default=5, ge=2)
    audit_channel: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _audit_defaults_to_channel(cls, data: Any) -> Any:
        # Only a usable channel is copied: a bad one is reported once, at `channel`.
        if isinstance(data, dict) and data.get("audit_channel") is None:
            channel = data.get("channel")
            if isinstance(channel, str) and channel.strip():
                return {**data, "audit_channel": channel}
        return data


class Match(_Frozen):
    """Which jobs a rule looks at; an empty tuple puts no constraint on that field."""

    type: JobTypes = ()
    execution_status: ExecutionStatuses = Field(default=(), alias="executionStatus")
    table: TextList = Field(default=(), description="fnmatch globs on the table name")
    job_id: JobIds = ()


class Repeat(_Frozen):
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


class RuleBase(_Frozen):
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
    """Fires when numRowsSkippedByError reaches ``percent`` of the job's maxParseExceptions."""

    kind: Literal["budget"] = "budget"
    percent: StrictFloat = Field(gt=0, le=100)
    hysteresis: Hysteresis = 0.1

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("numRowsSkippedByError",)


Rule = Annotated[
    HealthRule | ExecutionRule | RisingRule | RateRule | RatioRule | StalledRule | BudgetRule,
    Field(discriminator="kind"),
]


class _Document(_Frozen):
    """The file's top level, before it is tied to a path."""

    watch: WatchSettings = Field(default_factory=WatchSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    rules: tuple[Rule, ...] = ()


class RuleSet(_Document):
    """A whole, valid rules file."""

    path: Path = Path("<memory>")

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return self

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``, if there is one."""
        return next((rule for rule in self.rules if rule.name == name), None)

    @property
    def metric_rules(self) -> tuple[Rule, ...]:
        """Rules that need metric samples (so jobs they match need a metrics fetch)."""
        return tuple(rule for rule in self.rules if rule.metrics)

    @property
    def max_window(self) -> float:
        """The longest look-back any rule needs, in seconds (0 when none needs history)."""
        return max((rule.window for rule in self.rules), default=0.0)


def parse_ruleset(text: str, path: str | Path) -> RuleSet:
    """Parse and validate rules-file ``text``; ``path`` is used in problems and kept."""
    shown = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RulesFileError([toml_problem(shown, text, str(error))]) from None
    except RecursionError:
        raise RulesFileError([Problem(shown, 1, "invalid TOML: nested too deeply")]) from None
    lines = TomlLines(text)
    problems = duplicate_names(shown, data, lines)
    document: _Document | None = None
    try:
        document = _Document.model_validate(data, context={STRINGS_ONLY: True})
    except ValidationError as error:
        for detail in error.errors():
            problems.append(describe_error(shown, detail, data, lines, _Document))
    if problems or document is None:
        raise RulesFileError(sorted(set(problems), key=lambda p: (p.line, p.message)))
    return RuleSet(
        watch=document.watch, slack=document.slack, rules=document.rules, path=Path(path)
    )


def load_ruleset(path: str | Path) -> RuleSet:
    """Read and parse the rules file at ``path``; raises :class:`RulesFileError`."""
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise RulesFileError([Problem(shown, 1, f"cannot read rules file: {reason}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = f"not UTF-8 text: byte {raw[error.start]:#04x} cannot be decoded"
        raise RulesFileError([Problem(shown, line, message)]) from None
    return parse_ruleset(text, path)
