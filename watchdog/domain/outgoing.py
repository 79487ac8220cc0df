"""What the pipeline hands to notifiers, and how it is kept in the outbox.

A :class:`Notification` is self-contained: it carries the alert as it was when the
decision was made and the rule facts a message needs, so it can wait in the durable
outbox across a restart or a rules reload and still render the same message. An
:class:`AuditEntry` is the in-channel line that says who changed which job from Slack. A
:class:`Redraw` asks the project's deliverer to draw an incident's message again from
what the store holds now (after a slash-command acknowledgement), and a
:class:`DigestPost` is the daily digest. All serialise to plain JSON
(:func:`dump_outgoing` / :func:`load_outgoing`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from watchdog.domain.alerts import AlertState, Reason, RuleFacts, alert_from_dict, plain
from watchdog.domain.digest import Digest, digest_from_dict, digest_to_dict


@dataclass(frozen=True, slots=True)
class Notification:
    reason: Reason
    alert: AlertState
    rule: RuleFacts
    channel: str | None = None  # None: the notifier's default channel
    mention: str | None = None  # only set on NEW (the rule's) and ESCALATE (its escalation's)
    #: ESCALATE: the channel that also gets a message linking to the alert
    escalate_channel: str | None = None

    @property
    def incident_id(self) -> str:
        return self.alert.incident_id


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which job through the bot, and the result."""

    user: str
    action: str  # pause | resume | cancel | silence | unsilence | ack | unack
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


@dataclass(frozen=True, slots=True)
class Redraw:
    """Draw incident ``incident_id``'s message again from the stored state (its
    acknowledgement changed); ``note`` says why, in plain words, for a terminal."""

    incident_id: str
    project: str
    note: str = ""
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class DigestPost:
    """The daily digest, to post in ``channel`` (None: the default channel)."""

    digest: Digest
    channel: str | None = None
    timezone: str = "UTC"  # the zone its times are shown in


Outgoing = Notification | AuditEntry | Redraw | DigestPost


def dump_outgoing(item: Outgoing) -> str:
    """JSON for the outbox."""
    raw: dict[str, Any]
    if isinstance(item, Notification):
        raw = {"type": "notification", **plain(item)}
    elif isinstance(item, AuditEntry):
        raw = {"type": "audit", **plain(item)}
    elif isinstance(item, Redraw):
        raw = {"type": "redraw", **plain(item)}
    else:
        raw = {"type": "digest", **plain(item), "digest": digest_to_dict(item.digest)}
    return json.dumps(raw, separators=(",", ":"))


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
                escalate_channel=raw.get("escalate_channel"),
                # Rows queued by earlier builds may carry "muted_until" (never set, never
                # read, now gone): like any key not listed here, it is ignored.
            )
        if kind == "redraw":
            return Redraw(**raw)
        if kind == "digest":
            return DigestPost(
                digest=digest_from_dict(raw["digest"]),
                channel=raw.get("channel"),
                timezone=raw.get("timezone", "UTC"),
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an outbox item: {exc}") from exc
    raise ValueError(f"unknown outbox item type {kind!r}")
