"""What the pipeline hands to notifiers, and how it is kept in the outbox.

A :class:`Notification` is self-contained: it carries the alert as it was when the
decision was made and the rule facts a message needs, so it can wait in the durable
outbox across a restart or a rules reload and still render the same message. An
:class:`AuditEntry` is the in-channel line that says who changed which job from Slack.
Both serialise to plain JSON (:func:`dump_outgoing` / :func:`load_outgoing`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from watchdog.domain.alerts import AlertState, Reason, RuleFacts, alert_from_dict, plain


@dataclass(frozen=True, slots=True)
class Notification:
    reason: Reason
    alert: AlertState
    rule: RuleFacts
    channel: str | None = None  # None: the notifier's default channel
    mention: str | None = None  # only set on NEW

    @property
    def incident_id(self) -> str:
        return self.alert.incident_id


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which job through the bot, and the result."""

    user: str
    action: str  # pause | resume | cancel | silence | unsilence
    target: str  # a job id, rule name or silence id
    result: str  # "ok" or the error in plain words
    at: float
    channel: str | None = None
    table: str | None = None
    incident_id: str | None = None  # set when the action came from an alert's button
    project: str | None = None  # the job's project, when the action was on a job
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result == "ok"


Outgoing = Notification | AuditEntry


def dump_outgoing(item: Outgoing) -> str:
    """JSON for the outbox."""
    if isinstance(item, Notification):
        return json.dumps({"type": "notification", **plain(item)}, separators=(",", ":"))
    return json.dumps({"type": "audit", **plain(item)}, separators=(",", ":"))


def load_outgoing(text: str) -> Outgoing:
    """Inverse of :func:`dump_outgoing`; raises ``ValueError`` on anything else."""
    try:
        raw: dict[str, Any] = json.loads(text)
        kind = raw.pop("type")
        if kind == "audit":
            return AuditEntry(**raw)
        if kind == "notification":
            return Notification(
                reason=Reason(raw["reason"]),
                alert=alert_from_dict(raw["alert"]),
                rule=RuleFacts(**raw["rule"]),
                channel=raw.get("channel"),
                mention=raw.get("mention"),
                # Rows queued by earlier builds may carry "muted_until" (never set, never
                # read, now gone): like any key not listed here, it is ignored.
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an outbox item: {exc}") from exc
    raise ValueError(f"unknown outbox item type {kind!r}")
