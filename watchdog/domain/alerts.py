"""The alert model every stage shares: a (rule, job) fingerprint's place in the lifecycle.

:class:`AlertState` is what the watch loop keeps per fingerprint, what the store saves,
and what a notification carries; :class:`JobFacts` and :class:`Condition` are the facts
and the rule's verdict it was last seen with. Plain frozen values, serialisable to JSON
(:func:`alert_to_dict` / :func:`alert_from_dict`), with no behaviour beyond naming.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from watchdog.polaris.models import Job

#: The project of a single-project set-up (no ``[[projects]]`` in the rules file).
DEFAULT_PROJECT = "default"
#: Rule name of the meta-alert about Polaris itself; rule names cannot start with "_".
META_RULE = "_polaris"
META_JOB = "-"


class Phase(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Reason(StrEnum):
    """Why a notification is sent."""

    NEW = "new"  # first notification of an incident (also: a silence ended while firing)
    REPEAT = "repeat"  # still firing; the rule's repeat interval is due
    CHANGED = "changed"  # still firing, but health or execution status changed
    RESOLVED = "resolved"
    ESCALATE = "escalate"  # firing, unacknowledged, for the rule's `escalate.after`


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What a message shows about the job, as last seen."""

    job_id: str
    table: str | None = None
    type: str = "unknown"
    execution_status: str = "unknown"
    health_status: str | None = None
    health_code: str | None = None
    health_message: str = ""

    @classmethod
    def from_job(cls, job: Job) -> JobFacts:
        return cls(
            job_id=job.id,
            table=job.table,
            type=job.type,
            execution_status=job.execution_status,
            health_status=job.health_status,
            health_code=job.health_code,
            health_message=job.health_detail,
        )

    @property
    def signature(self) -> tuple[str | None, str | None, str]:
        """The facts whose change is worth a thread reply (not every counter tick)."""
        return (self.health_status, self.health_code, self.execution_status)


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's verdict on one job at one instant (see :mod:`watchdog.rules.evaluate`)."""

    active: bool
    summary: str = ""
    value: float | None = None
    threshold: float | None = None
    metric: str | None = None
    #: recent values of the metric, oldest first, for the sparkline
    values: tuple[float, ...] = ()
    #: the metric's increase over the rule's window, when the rule computes one
    increase: float | None = None
    #: budget rules: the counter's growth per minute, and the seconds until it reaches
    #: the job's limit at that rate (None: not growing, or no forecast)
    rate: float | None = None
    eta: float | None = None


@dataclass(frozen=True, slots=True)
class AlertState:
    """One fingerprint's (project, rule, job) place in the lifecycle."""

    rule: str
    job_id: str
    phase: Phase
    severity: str
    since: float  # when the condition was first seen holding (start of pending)
    last_active: float  # last evaluation that found the condition holding
    last_eval: float
    job: JobFacts
    condition: Condition
    fired_at: float | None = None
    resolved_at: float | None = None
    resolve_reason: str | None = None
    posted: bool = False  # a NEW notification was handed on for this incident
    repeats: int = 0
    next_repeat: float | None = None
    notified_signature: tuple[str | None, str | None, str] | None = None
    #: the Polaris project the job belongs to (``default`` in single-project mode)
    project: str = DEFAULT_PROJECT
    #: when the incident's first post was handed on (later than ``fired_at`` when a
    #: silence or a maintenance window held it back): escalation counts from here
    posted_at: float | None = None
    #: who acknowledged the incident (a Slack user id) and when; the watch loop copies
    #: it from the store's acknowledgements each tick
    acked_by: str | None = None
    acked_at: float | None = None
    #: when the incident was escalated (it is, at most once)
    escalated_at: float | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.project, self.rule, self.job_id)

    @property
    def incident_id(self) -> str:
        """Stable id of this incident: one fingerprint can have many incidents over time."""
        return f"{self.fingerprint}@{int((self.fired_at or self.since) * 1000)}"


def fingerprint(project: str, rule: str, job_id: str) -> str:
    """``project/rule/job``: none of the three can contain a ``/`` (names are checked,
    job ids are UUIDs), so the key reads back unambiguously."""
    return f"{project}/{rule}/{job_id}"


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """The rule facts a message needs, frozen with the notification."""

    name: str
    kind: str
    severity: str = "warning"
    description: str | None = None
    runbook: str | None = None


def alert_to_dict(state: AlertState) -> dict[str, Any]:
    result: dict[str, Any] = plain(state)
    return result


def plain(value: Any) -> Any:
    """What ``dataclasses.asdict`` makes of a value (dataclasses become dicts, all the
    way down), without its deep copies: the values here are immutable, and a storm of
    5,000 alerts took seconds of the event loop to serialise with ``asdict``."""
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return type(value)(plain(item) for item in value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def alert_from_dict(raw: dict[str, Any]) -> AlertState:
    """Rebuild an :class:`AlertState` from :func:`alert_to_dict` (or its JSON)."""
    data = dict(raw)
    data["phase"] = Phase(data["phase"])
    data["job"] = JobFacts(**data["job"])
    cond = dict(data["condition"])
    cond["values"] = tuple(cond.get("values", ()))
    data["condition"] = Condition(**cond)
    signature = data.get("notified_signature")
    data["notified_signature"] = tuple(signature) if signature is not None else None
    return AlertState(**data)
