"""Slack messages for alerts, incidents, storms and the audit trail, as Block Kit.

Pure functions from the domain objects of :mod:`watchdog.domain.alerts` to a
:class:`SlackMessage` ready for ``chat_postMessage(**message.as_kwargs())``. A data
engineer on call must see at a glance what is wrong, on which job and table, how bad it
is and what to do, so every alert carries the job's facts and the buttons that fit its
state. Every string that comes from Polaris or a user is escaped and clipped (see
:mod:`watchdog.slack.alerts.blocks` and :mod:`watchdog.slack.alerts.parts`): no table name can
ping a channel, and no input makes a message Slack would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watchdog.domain.alerts import META_RULE, AlertState, Phase, Reason, RuleFacts
from watchdog.domain.outgoing import AuditEntry, Notification
from watchdog.slack.alerts import blocks as bk
from watchdog.slack.alerts import parts as ap
from watchdog.slack.alerts.parts import RESOLVED_MARK as DONE
from watchdog.slack.alerts.parts import format_mention, marker, sparkline

__all__ = [
    "SlackMessage",
    "alert_message",
    "audit_message",
    "format_mention",
    "marker",
    "meta_message",
    "resolved_message",
    "sparkline",
    "storm_list_replies",
    "storm_message",
    "thread_reply",
]

_STORM_SHOWN = 10  # jobs listed in a storm post; the rest go to its thread
_DETAIL_SHOWN = 1500  # of a health message: enough to act on, short enough to scan
_REPLY_BUDGET = 30_000  # text per storm-list reply, well under Slack's 40,000
_SECTION_BUDGET = bk.MAX_SECTION_TEXT - 100


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # the plain fallback: notifications and screen readers read it
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def alert_message(n: Notification, *, now: float) -> SlackMessage:
    """The top-level post of a new incident."""
    if n.alert.rule == META_RULE:
        return meta_message(n, now=now)
    alert, rule = n.alert, n.rule
    mark = ap.marker(alert.severity)
    mention = ap.format_mention(n.mention)
    summary = bk.safe(ap.summary(alert), 2500)
    blocks = [
        bk.header(f"{mark} {rule.name}"),
        bk.section(f"{mention} {summary}" if mention else summary),
        ap.job_fields(alert.job),
    ]
    if alert.job.health_message.strip():
        detail = alert.job.health_message.strip().replace("```", "'''")
        blocks.append(bk.section(f"*Health message*\n```{bk.safe(detail, _DETAIL_SHOWN)}```"))
    if alert.condition.metric:
        blocks.append(bk.section(ap.metric_line(alert)))
    about = ap.rule_info(rule)
    if about:
        blocks.append(bk.context(about))
    buttons = ap.buttons(alert)
    if buttons:
        blocks.append(bk.actions("wd_alert_actions", buttons))
    blocks.append(bk.context(ap.timeline(alert, now)))
    text = f"{mark} FIRING {ap.names(rule.name, alert.job)}: {bk.safe(ap.gist(alert), 300)}"
    return SlackMessage(text=text, blocks=blocks)


def resolved_message(n: Notification, *, now: float) -> SlackMessage:
    """What the original post becomes on resolve: how long it fired, why it ended."""
    if n.alert.rule == META_RULE:
        return meta_message(n, now=now)
    alert = n.alert
    took, reason = ap.fired_for(alert, now), ap.resolve_reason(alert)
    started = alert.fired_at if alert.fired_at is not None else alert.since
    ended = alert.resolved_at if alert.resolved_at is not None else now
    blocks = [
        bk.header(f"{DONE} RESOLVED · {n.rule.name}"),
        bk.section(
            f"Fired for *{took}* ({bk.date_token(started)} → {bk.date_token(ended)}).\n"
            f"*Resolved:* {reason}\n_Was:_ {bk.safe(ap.summary(alert), 2000)}"
        ),
        ap.job_fields(alert.job),
    ]
    text = f"{DONE} RESOLVED {ap.names(n.rule.name, alert.job)} after {took}: {reason}"
    return SlackMessage(text=text, blocks=blocks)


def thread_reply(n: Notification, *, now: float) -> SlackMessage:
    """A short reply in the incident's thread: still firing, changed, or resolved."""
    alert = n.alert
    mark = ap.marker(alert.severity)
    summary = bk.safe(ap.summary(alert), 2000)
    if n.reason is Reason.RESOLVED or alert.phase is Phase.RESOLVED:
        took = ap.fired_for(alert, now)
        line = f"{DONE} Resolved after {took}: {ap.resolve_reason(alert)}"
    elif n.reason is Reason.REPEAT:
        line = f"{mark} Still firing after {ap.fired_for(alert, now)}: {summary}"
    elif n.reason is Reason.CHANGED and alert.rule != META_RULE:
        line = f"{mark} Changed: {ap.changes(alert)}\n{summary}"
    elif n.reason is Reason.CHANGED:
        line = f"{mark} Changed: {summary}"
    else:
        line = f"{mark} Firing: {summary}"
    return SlackMessage(text=line, blocks=[bk.section(line)])


def meta_message(n: Notification, *, now: float) -> SlackMessage:
    """The alert about Polaris itself (unreachable, key rejected): no job, no buttons."""
    alert = n.alert
    summary = bk.safe(ap.summary(alert), 2500)
    if n.reason is Reason.RESOLVED or alert.phase is Phase.RESOLVED:
        took, reason = ap.fired_for(alert, now), ap.resolve_reason(alert)
        blocks = [
            bk.header(f"{DONE} RESOLVED · Polaris API reachable again"),
            bk.section(f"Polaris was unavailable for *{took}*.\n*Resolved:* {reason}"),
            bk.context(f"_Was:_ {bk.safe(ap.summary(alert), 2000)}"),
        ]
        text = f"{DONE} RESOLVED Polaris API reachable again after {took}: {reason}"
        return SlackMessage(text=text, blocks=blocks)
    mark = ap.marker(alert.severity)
    mention = ap.format_mention(n.mention)
    blocks = [
        bk.header(f"{mark} Polaris API problem"),
        bk.section(f"{mention} {summary}" if mention else summary),
        bk.section(
            "Until Polaris answers again, no job can be watched, and pausing, resuming "
            "or canceling jobs from Slack will fail."
        ),
        bk.context(ap.timeline(alert, now)),
    ]
    return SlackMessage(text=f"{mark} FIRING Polaris API problem: {summary}", blocks=blocks)


def storm_message(
    rule: RuleFacts,
    alerts: Sequence[AlertState],
    *,
    resolved: int,
    total: int,
    now: float,
    mention: str | None,
) -> SlackMessage:
    """One grouped post for many alerts of one rule, updated as its incidents resolve."""
    mark = ap.marker(rule.severity)
    done = total > 0 and resolved >= total
    if done:
        prefix, suffix = f"{DONE} RESOLVED · ", f": {total} jobs"
    elif resolved:
        prefix, suffix = f"{mark} ", f": {total - resolved} of {total} jobs firing"
    else:
        prefix, suffix = f"{mark} ", f": {total} jobs firing"
    room = bk.MAX_HEADER_TEXT - bk.length(prefix) - bk.length(suffix)
    name = bk.safe(rule.name, 150)
    lead = f"*{total}* jobs matched *{name}*"
    if done:
        lead = f"All *{total}* jobs of *{name}* have resolved."
    elif resolved:
        lead += f" · *{resolved} of {total} resolved*"
    mention_text = None if done else ap.format_mention(mention)
    blocks = [
        bk.header(prefix + bk.clip(rule.name, room) + suffix),
        bk.section(f"{mention_text} {lead}" if mention_text else lead),
    ]
    if alerts:
        blocks.append(bk.section(ap.breakdown(alerts)))
        shown = "\n".join(ap.job_line(alert) for alert in alerts[:_STORM_SHOWN])
        if len(alerts) > _STORM_SHOWN:
            shown += f"\n…and {len(alerts) - _STORM_SHOWN} more: *full list in thread*."
        blocks.append(bk.section(shown))
    about = ap.rule_info(rule)
    if about:
        blocks.append(bk.context(about))
    fired = [a.fired_at for a in alerts if a.fired_at is not None]
    times = [f"Updated {bk.date_token(now)}"]
    if fired:
        times.insert(0, f"First fired {bk.date_token(min(fired))}")
    blocks.append(bk.context(" · ".join(times)))
    tables = sorted({a.job.table for a in alerts if a.job.table})
    where = ", ".join(bk.safe(t, 60) for t in tables[:3]) + (", …" if len(tables) > 3 else "")
    status = "RESOLVED" if done else "FIRING"
    text = f"{DONE if done else mark} {status} {bk.safe(rule.name, 150)}{suffix}"
    if where:
        text += f" (tables {where})"
    return SlackMessage(text=text, blocks=blocks)


def storm_list_replies(alerts: Sequence[AlertState], *, heading: str) -> list[SlackMessage]:
    """The full job list of a storm, one line per job, in as few thread replies as fit."""
    lines = [ap.job_line(alert) for alert in alerts]
    sections: list[tuple[int, int, str]] = []  # (first, last) line numbers and the text
    start, chunk = 0, ""
    for number, line in enumerate(lines):
        candidate = f"{chunk}\n{line}" if chunk else line
        if chunk and bk.length(candidate) > _SECTION_BUDGET:
            sections.append((start, number - 1, chunk))
            start, candidate = number, line
        chunk = candidate
    if chunk:
        sections.append((start, len(lines) - 1, chunk))
    # Group sections into messages: under the block limit and the text budget each.
    groups: list[list[tuple[int, int, str]]] = []
    used = 0
    for part in sections:
        size = bk.length(part[2])
        if not groups or len(groups[-1]) >= bk.MAX_BLOCKS - 2 or used + size > _REPLY_BUDGET:
            groups.append([])
            used = 0
        groups[-1].append(part)
        used += size
    title = bk.safe(heading, 200)
    replies = []
    for group in groups:
        first, last = group[0][0] + 1, group[-1][1] + 1
        span = f"{title} ({first}–{last} of {len(lines)})"
        blocks = [bk.context(span), *(bk.section(text) for _, _, text in group)]
        replies.append(SlackMessage(text=span, blocks=blocks))
    return replies


_VERBS = {
    "pause": ("paused", "pause"),
    "resume": ("resumed", "resume"),
    "cancel": ("canceled", "cancel"),
    "silence": ("silenced", "silence"),
    "unsilence": ("removed silence", "remove silence"),
}


def audit_message(entry: AuditEntry) -> SlackMessage:
    """The in-channel line saying who did what to which job, and whether it worked."""
    who = ap.user(entry.user)
    done, verb = _VERBS.get(entry.action, (f"did {entry.action} on", f"{entry.action}"))
    done, verb = bk.safe(done, 50), bk.safe(verb, 50)
    target = bk.code(entry.target, 200)
    if entry.action in ("pause", "resume", "cancel"):
        target = f"job {target}"
        if entry.table:
            target += f" (table {bk.safe(entry.table, 200)})"
    if entry.ok:
        line = f"{DONE} {who} {done} {target}"
    else:
        line = f"⚠️ {who} tried to {verb} {target} — failed: {bk.safe(entry.result, 1000)}"
    extras = [f"{bk.safe(k, 50)}: {bk.safe(v, 200)}" for k, v in list(entry.extra.items())[:5]]
    if extras:
        line += " · " + " · ".join(extras)
    blocks = [bk.section(line), bk.context(f"At {bk.date_token(entry.at)}")]
    return SlackMessage(text=line, blocks=blocks)
