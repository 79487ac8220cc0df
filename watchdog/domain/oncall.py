"""The on-call workflow's records: acknowledgements, and the history of incidents.

An :class:`Ack` says that someone owns an incident: while it stands, the incident's
repeats and its escalation stop. It is keyed by incident id, so a job that fires again
later is a new, unacknowledged incident. Acks are written by whichever replica serves
the Slack request (unfenced, like silences) and read by the project's watch loop each
tick, which copies them into the alert states (:func:`with_ack`).

An :class:`Incident` is one line of the incident history the daily digest is made of:
when an announced incident fired, was acknowledged and resolved. The store derives it
from the notifications a tick commits (:func:`incident_of` their alerts), in the same
transaction, so the history never tells of an incident the outbox does not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from watchdog.domain.alerts import AlertState, fingerprint

#: How long the incident history is kept: the digest reads a day of it, ``/polaris
#: digest`` up to a week.
HISTORY_SECONDS = 8 * 86_400.0


@dataclass(frozen=True, slots=True)
class Ack:
    """``user`` acknowledged incident ``incident_id`` (of ``rule`` on ``job_id``) at ``at``."""

    incident_id: str
    project: str
    rule: str
    job_id: str
    user: str
    at: float

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.project, self.rule, self.job_id)

    @classmethod
    def of(cls, alert: AlertState, user: str, at: float) -> Ack:
        return cls(alert.incident_id, alert.project, alert.rule, alert.job_id, user, at)


def with_ack(alert: AlertState, ack: Ack | None) -> AlertState:
    """``alert`` as ``ack`` (None: no acknowledgement) says it stands."""
    if ack is None or ack.incident_id != alert.incident_id:
        if alert.acked_by is None and alert.acked_at is None:
            return alert
        return replace(alert, acked_by=None, acked_at=None)
    if alert.acked_by == ack.user and alert.acked_at == ack.at:
        return alert
    return replace(alert, acked_by=ack.user, acked_at=ack.at)


@dataclass(frozen=True, slots=True)
class Incident:
    """One announced incident in the history: what, where, and its times."""

    incident_id: str
    project: str
    rule: str
    job_id: str
    table: str | None
    severity: str
    fired_at: float
    resolved_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.project, self.rule, self.job_id)


def incident_of(alert: AlertState, *, resolved: bool = False) -> Incident:
    """The history line of ``alert``'s incident (resolved when ``resolved``)."""
    return Incident(
        incident_id=alert.incident_id,
        project=alert.project,
        rule=alert.rule,
        job_id=alert.job_id,
        table=alert.job.table,
        severity=alert.severity,
        fired_at=alert.fired_at if alert.fired_at is not None else alert.since,
        resolved_at=(alert.resolved_at or alert.last_eval) if resolved else None,
        acked_at=alert.acked_at,
        acked_by=alert.acked_by,
    )
