"""What every backend does alike: rows of the serialised form, lease terms, write checks.

The three stores keep the same serialised form (alert states, outbox items and message
data as JSON text) and answer lease requests by the same rule; keeping that here means a
difference between backends can only be one of storage, never one of meaning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from watchdog.domain.alerts import AlertState, alert_to_dict
from watchdog.store import Fence, MessageRef

#: (fingerprint, project, rule, job_id, phase, state JSON): one alerts row
AlertRow = tuple[str, str, str, str, str, str]
#: (key, channel, ts, kind, data JSON): one messages row
MessageRow = tuple[str, str, str, str, str]


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
