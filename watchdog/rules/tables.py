"""The rules file's settings tables: ``[watch]``, ``[slack]``, ``[ha]``, ``[digest]`` and
``[[projects]]``.

Frozen models with ``extra="forbid"`` like every part of the file (see
:mod:`watchdog.rules.ruleset`), so a typo is an error rather than a setting silently left
at its default.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from watchdog.rules.durations import Duration, format_duration
from watchdog.rules.fields import (
    ApiUrl,
    AtLeast1s,
    AtLeast100ms,
    EnvName,
    PositiveDuration,
    ProjectId,
    ProjectName,
    SlackUserIds,
    Text,
    TimeOfDay,
    TimeZoneName,
)

#: Seconds without progress before a loop counts as stuck, at the least. A loop that
#: cannot reach the database or Polaris still goes round — each store call gives up
#: within 10 s, each listing at the tick's deadline — only slower; /livez must not get a
#: replica restarted for an outage that a restart cannot cure.
STALL_AFTER = 60.0


class Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )


class WatchSettings(Frozen):
    """``[watch]``: how often and how hard to poll Polaris."""

    interval: AtLeast100ms = 30.0
    concurrency: StrictInt = Field(default=16, ge=1, le=256)
    max_rate: StrictFloat = Field(default=50.0, gt=0)
    page_size: StrictInt = Field(default=500, ge=1, le=1000)
    timeout: PositiveDuration = 10.0
    no_data_after: PositiveDuration = 300.0
    #: pages one listing may take; past it the listing is incomplete (a Polaris that
    #: always says "more results" must not hold the bot for ever)
    max_pages: StrictInt = Field(default=200, ge=1)
    #: jobs one tick's listings may hold together (each of N listings up to max_jobs / N);
    #: past it a listing is incomplete. A listed job costs ~1.5 KB of memory: this bounds
    #: what a listing that never ends can take
    max_jobs: StrictInt = Field(default=20_000, ge=100)
    #: how long one tick's listings may take (default: twice the interval); past it the
    #: listings that did not finish are incomplete and their rules unknown this tick
    deadline: Duration | None = None

    @property
    def tick_deadline(self) -> float:
        return self.deadline if self.deadline is not None else 2 * self.interval

    @property
    def health_window(self) -> float:
        """How long the watch may go without progress before ``/healthz`` (and the
        liveness probe) call the replica stuck: three intervals, and :data:`STALL_AFTER`
        at the least."""
        return max(3 * self.interval, STALL_AFTER)

    @model_validator(mode="after")
    def _no_data_spans_a_poll(self) -> WatchSettings:
        # Shorter than one poll period, every gap between two polls would look like an outage.
        if self.no_data_after < self.interval:
            raise ValueError(
                f"no_data_after ({format_duration(self.no_data_after)}) must be at least "
                f"interval ({format_duration(self.interval)})"
            )
        return self


class SlackSettings(Frozen):
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


class HaSettings(Frozen):
    """``[ha]``: several replicas on one PostgreSQL database."""

    #: a project's lease lasts this long unless renewed; a replica that dies is replaced
    #: within about this long (plus one interval)
    lease: AtLeast1s = 15.0


class DigestSettings(Frozen):
    """``[digest]``: once a day at ``at`` (in ``timezone``), the last 24 hours in one post."""

    at: TimeOfDay
    timezone: TimeZoneName = "UTC"
    #: where it is posted (default: ``[slack] channel``)
    channel: Text | None = None

    @model_validator(mode="after")
    def _within_the_day(self) -> DigestSettings:
        if self.at == "24:00":
            raise ValueError("at must be at most 23:59 (write '00:00' for midnight)")
        return self


class ProjectSpec(Frozen):
    """One ``[[projects]]`` entry: a Polaris project to watch, and how to reach it."""

    name: ProjectName
    url: ApiUrl
    id: ProjectId
    api_key_env: EnvName
    channel: Text | None = None
    #: this organisation's own request quota (default: ``[watch]``'s)
    max_rate: StrictFloat | None = Field(default=None, gt=0)
    concurrency: StrictInt | None = Field(default=None, ge=1, le=256)
