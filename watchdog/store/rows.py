"""What every backend does alike: rows of the serialised form, lease terms, write checks.

The three stores keep the same serialised form (alert states, outbox items and message
data as JSON text) and answer lease requests by the same rule; keeping that here means a
difference between backends can only be one of storage, never one of meaning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from watchdog.domain.alerts import AlertState, Reason, alert_to_dict
from watchdog.domain.oncall import Incident, incident_of
from watchdog.domain.outgoing import Notification, Outgoing
from watchdog.store import Fence, MessageRef

#: (fingerprint, project, rule, job_id, phase, state JSON): one alerts row
AlertRow = tuple[str, str, str, str, str, str]
#: (key, channel, ts, kind, data JSON): one messages row
MessageRow = tuple[str, str, str, str, str]
#: (incident_id, project, fingerprint, rule, job_id, table_name, severity, fired_at,
#: resolved_at, acked_at, acked_by): one incidents row
IncidentRow = tuple[
    str, str, str, str, str, str | None, str, float, float | None, float | None, str | None
]


def alert_rows(
    fence: Fence, upserts: Sequence[AlertState], deletes: Sequence[str]
) -> list[AlertRow]:
    """The rows of a fenced commit; ``ValueError`` (nothing written) when an alert or a
    fingerprint belongs to another project than the fence speaks for."""
    prefix = f"{fence.project}/"
    for state in upserts:
        if state.project != fence.project:
            raise ValueError(
                f"alert {state.fingerprint} is not of project {fence.project!r}: "
                "each project's alerts are committed under its own lease"
            )
    for fp in deletes:
        if not fp.startswith(prefix):
            raise ValueError(f"fingerprint {fp!r} is not of project {fence.project!r}")
    return [
        (s.fingerprint, s.project, s.rule, s.job_id, s.phase.value, json.dumps(alert_to_dict(s)))
        for s in upserts
    ]


def message_rows(messages: Mapping[str, MessageRef]) -> list[MessageRow]:
    return [
        (key, ref.channel, ref.ts, ref.kind, json.dumps(dict(ref.data)))
        for key, ref in messages.items()
    ]


def lease_term(current: tuple[str, int, float] | None, holder: str, now: float) -> int | None:
    """The term ``holder`` gets for a lease now (holder, term, expires) — ``None`` while
    another holder's lease is live. A live lease renewed by its holder keeps its term;
    taking a lease (free, expired or released) bumps it, also for its previous holder:
    whatever that holder staged before its lease lapsed may have been overtaken."""
    if current is None:
        return 1
    held_by, term, expires = current
    if expires > now:
        return term if held_by == holder else None
    return term + 1


def claimable(claim: tuple[str, int] | None, terms: Mapping[str, int]) -> bool:
    """Whether an outbox item claimed under ``claim`` (project, term) may be claimed
    again: never claimed, or claimed under a lease term that is no longer current (its
    deliverer lost the lease or crashed, and a successor took over)."""
    if claim is None:
        return True
    project, term = claim
    return terms.get(project) != term


def history_rows(outbox: Sequence[Outgoing]) -> tuple[list[IncidentRow], list[str]]:
    """What a commit's notifications add to the incident history: one row per incident
    they announce or follow up (the last word on each wins; a resolve closes it), and the
    ids of the incidents that resolved (their acknowledgements are done with)."""
    rows: dict[str, IncidentRow] = {}
    resolved: list[str] = []
    for item in outbox:
        if not isinstance(item, Notification):
            continue
        done = item.reason is Reason.RESOLVED
        rows[item.incident_id] = incident_row(incident_of(item.alert, resolved=done))
        if done:
            resolved.append(item.incident_id)
    return list(rows.values()), resolved


def incident_row(i: Incident) -> IncidentRow:
    return (
        i.incident_id,
        i.project,
        i.fingerprint,
        i.rule,
        i.job_id,
        i.table,
        i.severity,
        float(i.fired_at),
        None if i.resolved_at is None else float(i.resolved_at),
        None if i.acked_at is None else float(i.acked_at),
        i.acked_by,
    )


def incident_from_row(row: Sequence[object]) -> Incident:
    """An :class:`Incident` from (incident_id, project, rule, job_id, table_name, severity,
    fired_at, resolved_at, acked_at, acked_by)."""
    iid, project, rule, job, table, severity, fired, resolved, acked, by = row

    def maybe(value: object) -> float | None:
        return None if value is None else float(str(value))

    return Incident(
        incident_id=str(iid),
        project=str(project),
        rule=str(rule),
        job_id=str(job),
        table=None if table is None else str(table),
        severity=str(severity),
        fired_at=float(str(fired)),
        resolved_at=maybe(resolved),
        acked_at=maybe(acked),
        acked_by=None if by is None else str(by),
    )


def open_or_since(incident: Incident, since: float) -> bool:
    """Whether :meth:`Store.list_incidents` ``(since)`` lists ``incident``."""
    return incident.resolved_at is None or incident.resolved_at >= since
