"""Slack messages for alerts, incidents, storms and the audit trail, as Block Kit.

Pure functions from the domain objects of :mod:`watchdog.domain.alerts` to a
:class:`SlackMessage` ready for ``chat_postMessage(**message.as_kwargs())``. A data
engineer on call must see at a glance what is wrong, on which job and table, how bad it
is and what to do, so every alert carries the job's facts and the buttons that fit its
state. Structure is slack-sdk's Block Kit models; every string that comes from Polaris
or a user is cleaned, escaped and clipped (see :mod:`watchdog.slack.text` and
:mod:`watchdog.slack.alerts.parts`), and :func:`watchdog.slack.text.finish` holds each
message to Slack's limits: no table name can ping a channel, and no input makes a
message Slack would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ContextBlock,
    HeaderBlock,
    SectionBlock,
)

from watchdog.domain.alerts import META_RULE, AlertState, Phase, Reason, RuleFacts
from watchdog.domain.outgoing import AuditEntry, Notification
from watchdog.slack import text as tx
from watchdog.slack.actions import Action
from watchdog.slack.alerts import parts as ap
from watchdog.slack.alerts.parts import RESOLVED_MARK as DONE
from watchdog.slack.alerts.parts import format_mention, marker, sparkline

__all__ = [
    "INCIDENT_EVENT",
    "OUTCOME_BLOCK",
    "SlackMessage",
    "alert_message",
    "audit_message",
    "escalation_message",
    "format_mention",
    "marker",
    "meta_message",
    "resolved_message",
    "sparkline",
    "storm_escalation",
    "storm_list_replies",
    "storm_message",
    "thread_reply",
]

_STORM_SHOWN = 10  # jobs listed in a storm post; the rest go to its thread
_DETAIL_SHOWN = 1500  # of a health message: enough to act on, short enough to scan
_REPLY_BUDGET = 30_000  # text per storm-list reply, well under Slack's 40,000
_SECTION_BUDGET = tx.MAX_SECTION_TEXT - 100
#: The message metadata event type of the bot's top-level posts: how it finds a post of
#: its own again whose answer it never got (see :mod:`watchdog.slack.alerts.recovery`).
INCIDENT_EVENT = "polaris_watchdog_incident"
#: block_id of the context line a click adds; replaced, not stacked, on the next click.
OUTCOME_BLOCK = "wd_outcome"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A message ready to send: its plain fallback ``text`` (notifications and screen
    readers read it), its blocks as JSON, and optional message metadata."""

    text: str
    blocks: list[dict[str, Any]]
    metadata: Mapping[str, Any] | None = field(default=None)

    @classmethod
    def of(cls, text: str, blocks: Sequence[Block | dict[str, Any]]) -> SlackMessage:
        """Held to Slack's limits by :func:`watchdog.slack.text.finish`."""
        fallback, dumped = tx.finish(text, blocks)
        return cls(fallback, dumped)

    def as_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": self.text, "blocks": self.blocks}
        if self.metadata is not None:
            kwargs["metadata"] = dict(self.metadata)
        return kwargs

    def tagged(self, incident: str, **payload: str) -> SlackMessage:
        """This message with metadata naming the incident (or storm) it stands for."""
        event = {"event_type": INCIDENT_EVENT, "event_payload": {"incident": incident, **payload}}
        return SlackMessage(self.text, self.blocks, event)


def _header(text: str) -> HeaderBlock:
    return HeaderBlock(text=tx.plain(text, tx.MAX_HEADER_TEXT))


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=tx.mrkdwn(text, tx.MAX_SECTION_TEXT))


def _context(text: str, block_id: str | None = None) -> ContextBlock:
    return ContextBlock(block_id=block_id, elements=[tx.mrkdwn(text, tx.MAX_CONTEXT_TEXT)])


def alert_message(
    n: Notification, *, now: float, outcome: str | None = None, after: Action | None = None
) -> SlackMessage:
    """The top-level post of a new incident.

    Redrawn after a button click, it carries the click's ``outcome`` line (mrkdwn) under
    the buttons, and ``after`` (the action that succeeded) decides which buttons remain.
    """
    if n.alert.rule == META_RULE:
        return meta_message(n, now=now)
    alert, rule = n.alert, n.rule
    mark = ap.marker(alert.severity)
    mention = ap.format_mention(n.mention)
    summary = tx.esc(ap.summary(alert), 2500)
    blocks: list[Block] = [
        _header(f"{mark} {rule.name}"),
        _section(f"{mention} {summary}" if mention else summary),
        ap.job_fields(alert.job, alert.project),
    ]
    if alert.job.health_message.strip():
        detail = alert.job.health_message.strip().replace("```", "'''")
        blocks.append(_section(f"*Health message*\n```{tx.esc(detail, _DETAIL_SHOWN)}```"))
    if alert.condition.metric:
        blocks.append(_section(ap.metric_line(alert)))
    about = ap.rule_info(rule)
    if about:
        blocks.append(_context(about))
    buttons = ap.buttons(alert, after)
    if buttons:
        blocks.append(ActionsBlock(block_id="wd_alert_actions", elements=buttons))
    if outcome is not None:
        blocks.append(_context(outcome, OUTCOME_BLOCK))
    owner = ap.acknowledged(alert)
    if owner is not None:
        blocks.append(_context(owner))
    blocks.append(_context(ap.timeline(alert, now)))
    names = ap.names(rule.name, alert.job, alert.project)
    text = f"{mark} FIRING {names}: {tx.esc(ap.gist(alert), 300)}"
    return SlackMessage.of(text, blocks)


def resolved_message(n: Notification, *, now: float) -> SlackMessage:
    """What the original post becomes on resolve: how long it fired, why it ended."""
    if n.alert.rule == META_RULE:
        return meta_message(n, now=now)
    alert = n.alert
    took, reason = ap.fired_for(alert, now), ap.resolve_reason(alert)
    started = alert.fired_at if alert.fired_at is not None else alert.since
    ended = alert.resolved_at if alert.resolved_at is not None else now
    blocks = [
        _header(f"{DONE} RESOLVED · {n.rule.name}"),
        _section(
            f"Fired for *{took}* ({tx.date_token(started)} → {tx.date_token(ended)}).\n"
            f"*Resolved:* {reason}\n_Was:_ {tx.esc(ap.summary(alert), 2000)}"
        ),
        ap.job_fields(alert.job, alert.project),
    ]
    owner = ap.acknowledged(alert)
    if owner is not None:
        blocks.append(_context(owner))
    names = ap.names(n.rule.name, alert.job, alert.project)
    text = f"{DONE} RESOLVED {names} after {took}: {reason}"
    return SlackMessage.of(text, blocks)


def thread_reply(n: Notification, *, now: float) -> SlackMessage:
    """A short reply in the incident's thread: still firing, changed, or resolved."""
    alert = n.alert
    mark = ap.marker(alert.severity)
    summary = tx.esc(ap.summary(alert), 2000)
    if n.reason is Reason.RESOLVED or alert.phase is Phase.RESOLVED:
        took = ap.fired_for(alert, now)
        line = f"{DONE} Resolved after {took}: {ap.resolve_reason(alert)}"
    elif n.reason is Reason.REPEAT:
        line = f"{mark} Still firing after {ap.fired_for(alert, now)}: {summary}"
    elif n.reason is Reason.CHANGED and alert.rule != META_RULE:
        line = f"{mark} Changed: {ap.changes(alert)}\n{summary}"
    elif n.reason is Reason.CHANGED:
        line = f"{mark} Changed: {summary}"
    elif n.reason is Reason.ESCALATE:
        line = _escalated(n, now)
    else:
        line = f"{mark} Firing: {summary}"
    return SlackMessage.of(line, [_section(line)])


def _escalated(n: Notification, now: float, jobs: int = 1) -> str:
    """The escalation's words, mention first (≤ 800); ``jobs`` > 1 for a storm's."""
    mention = ap.format_mention(n.mention)
    tag = ap.project_tag(n.alert.project)
    lead = f"🚨 {mention} Escalated {tag}:" if mention else f"🚨 Escalated {tag}:"
    rule, took = tx.esc(n.rule.name, 150), ap.fired_for(n.alert, now)
    if jobs > 1:
        return f"{lead} *{rule}* fires on {jobs} jobs and nobody has acknowledged them."
    job = tx.code(n.alert.job_id, 100)
    table = f" (table {tx.esc(n.alert.job.table, 200)})" if n.alert.job.table else ""
    return f"{lead} *{rule}* on job {job}{table} has been firing for {took} unacknowledged."


def escalation_message(
    n: Notification, link: str | None, *, now: float, jobs: int = 1
) -> SlackMessage:
    """The escalation, for the escalation channel: the mention and a link to the alert
    (or to the storm's post, for ``jobs`` of a storm)."""
    alert = n.alert
    body = _escalated(n, now, jobs)
    if link is not None:
        body += f"\n<{link.replace('&', '&amp;')}|Open the alert>"
    # The mention leads the plain text too: notifications are made from it.
    lead = f"{ap.format_mention(n.mention) or ''} 🚨 ESCALATED".lstrip()
    if jobs > 1:
        text = f"{lead} {tx.esc(n.rule.name, 150)} on {jobs} jobs: unacknowledged"
        return SlackMessage.of(text, [_section(body)])
    took = ap.fired_for(alert, now)
    names = ap.names(n.rule.name, alert.job, alert.project)
    text = f"{lead} {names}: unacknowledged for {took}"
    return SlackMessage.of(text, [_section(body), _context(ap.timeline(alert, now))])


def storm_escalation(n: Notification, jobs: int, *, now: float) -> SlackMessage:
    """The mention in a storm's thread when ``jobs`` of its members escalate."""
    line = _escalated(n, now, jobs)
    return SlackMessage.of(line, [_section(line)])


def meta_message(n: Notification, *, now: float) -> SlackMessage:
    """The alert about Polaris itself (unreachable, key rejected): no job, no buttons.
    Its summary names the project (``[prod] cannot reach Polaris…``); so does the resolve."""
    alert = n.alert
    summary = tx.esc(ap.summary(alert), 2500)
    if n.reason is Reason.RESOLVED or alert.phase is Phase.RESOLVED:
        took, reason = ap.fired_for(alert, now), ap.resolve_reason(alert)
        project = tx.esc(alert.project, 100)
        blocks = [
            _header(f"{DONE} RESOLVED · Polaris API reachable again"),
            _section(
                f"Polaris (project *{project}*) was unavailable for *{took}*.\n*Resolved:* {reason}"
            ),
            _context(f"_Was:_ {tx.esc(ap.summary(alert), 2000)}"),
        ]
        tag = ap.project_tag(alert.project)
        text = f"{DONE} RESOLVED {tag} Polaris API reachable again after {took}: {reason}"
        return SlackMessage.of(text, blocks)
    mark = ap.marker(alert.severity)
    mention = ap.format_mention(n.mention)
    blocks = [
        _header(f"{mark} Polaris API problem"),
        _section(f"{mention} {summary}" if mention else summary),
        _section(
            "Until Polaris answers again, no job can be watched, and pausing, resuming "
            "or canceling jobs from Slack will fail."
        ),
        _context(ap.timeline(alert, now)),
    ]
    return SlackMessage.of(f"{mark} FIRING Polaris API problem: {summary}", blocks)


def storm_message(
    rule: RuleFacts,
    alerts: Sequence[AlertState],
    *,
    resolved: int,
    total: int,
    now: float,
    mention: str | None,
) -> SlackMessage:
    """One grouped post for many alerts of one rule (of one project), updated as its
    incidents resolve."""
    mark = ap.marker(rule.severity)
    project = alerts[0].project if alerts else None
    done = total > 0 and resolved >= total
    if done:
        prefix, suffix = f"{DONE} RESOLVED · ", f": {total} jobs"
    elif resolved:
        prefix, suffix = f"{mark} ", f": {total - resolved} of {total} jobs firing"
    else:
        prefix, suffix = f"{mark} ", f": {total} jobs firing"
    room = tx.MAX_HEADER_TEXT - tx.length(prefix) - tx.length(suffix)
    name = tx.esc(rule.name, 150)
    lead = f"*{total}* jobs matched *{name}*"
    if project is not None:
        lead = f"*{total}* jobs of project *{tx.esc(project, 100)}* matched *{name}*"
    if done:
        lead = f"All *{total}* jobs of *{name}* have resolved."
    elif resolved:
        lead += f" · *{resolved} of {total} resolved*"
    mention_text = None if done else ap.format_mention(mention)
    blocks = [
        _header(prefix + tx.clip(rule.name, room) + suffix),
        _section(f"{mention_text} {lead}" if mention_text else lead),
    ]
    if alerts:
        blocks.append(_section(ap.breakdown(alerts)))
        shown = "\n".join(ap.job_line(alert) for alert in alerts[:_STORM_SHOWN])
        if len(alerts) > _STORM_SHOWN:
            shown += f"\n…and {len(alerts) - _STORM_SHOWN} more: *full list in thread*."
        blocks.append(_section(shown))
    about = ap.rule_info(rule)
    if about:
        blocks.append(_context(about))
    fired = [a.fired_at for a in alerts if a.fired_at is not None]
    times = [f"Updated {tx.date_token(now)}"]
    if fired:
        times.insert(0, f"First fired {tx.date_token(min(fired))}")
    blocks.append(_context(" · ".join(times)))
    tables = sorted({a.job.table for a in alerts if a.job.table})
    where = ", ".join(tx.esc(t, 60) for t in tables[:3]) + (", …" if len(tables) > 3 else "")
    status = "RESOLVED" if done else "FIRING"
    tag = f"{ap.project_tag(project)} " if project is not None else ""
    text = f"{DONE if done else mark} {status} {tag}{tx.esc(rule.name, 150)}{suffix}"
    if where:
        text += f" (tables {where})"
    return SlackMessage.of(text, blocks)


def storm_list_replies(alerts: Sequence[AlertState], *, heading: str) -> list[SlackMessage]:
    """The full job list of a storm, one line per job, in as few thread replies as fit."""
    lines = [ap.job_line(alert) for alert in alerts]
    sections: list[tuple[int, int, str]] = []  # (first, last) line numbers and the text
    start, chunk = 0, ""
    for number, line in enumerate(lines):
        candidate = f"{chunk}\n{line}" if chunk else line
        if chunk and tx.length(candidate) > _SECTION_BUDGET:
            sections.append((start, number - 1, chunk))
            start, candidate = number, line
        chunk = candidate
    if chunk:
        sections.append((start, len(lines) - 1, chunk))
    # Group sections into messages: under the block limit and the text budget each.
    groups: list[list[tuple[int, int, str]]] = []
    used = 0
    for part in sections:
        size = tx.length(part[2])
        if not groups or len(groups[-1]) >= tx.MAX_BLOCKS - 2 or used + size > _REPLY_BUDGET:
            groups.append([])
            used = 0
        groups[-1].append(part)
        used += size
    title = tx.esc(heading, 200)
    replies = []
    for group in groups:
        first, last = group[0][0] + 1, group[-1][1] + 1
        span = f"{title} ({first}–{last} of {len(lines)})"
        blocks = [_context(span), *(_section(text) for _, _, text in group)]
        replies.append(SlackMessage.of(span, blocks))
    return replies


_VERBS = {
    "pause": ("paused", "pause"),
    "resume": ("resumed", "resume"),
    "cancel": ("canceled", "cancel"),
    "silence": ("silenced", "silence"),
    "unsilence": ("removed silence", "remove silence"),
    "ack": ("acknowledged", "acknowledge"),
    "unack": ("withdrew the acknowledgement of", "withdraw the acknowledgement of"),
}


def audit_message(entry: AuditEntry) -> SlackMessage:
    """The in-channel line saying who did what to which job, and whether it worked."""
    who = ap.user(entry.user)
    done, verb = _VERBS.get(entry.action, (f"did {entry.action} on", f"{entry.action}"))
    done, verb = tx.esc(done, 50), tx.esc(verb, 50)
    target = tx.code(entry.target, 200)
    if entry.action in ("pause", "resume", "cancel", "ack", "unack"):
        target = f"job {target}"
        if entry.table:
            target += f" (table {tx.esc(entry.table, 200)})"
    if entry.project:
        target += f" in project {tx.esc(entry.project, 100)}"
    if entry.ok:
        line = f"{DONE} {who} {done} {target}"
    else:
        line = f"⚠️ {who} tried to {verb} {target} — failed: {tx.esc(entry.result, 1000)}"
    extras = [f"{tx.esc(k, 50)}: {tx.esc(v, 200)}" for k, v in list(entry.extra.items())[:5]]
    if extras:
        line += " · " + " · ".join(extras)
    blocks = [_section(line), _context(f"At {tx.date_token(entry.at)}")]
    return SlackMessage.of(line, blocks)
