"""The on-call workflow in Slack: escalations, redraws after an acknowledgement, the digest.

- An **escalation** is one reply in the incident's thread mentioning the rule's
  ``escalate.mention``, and, with ``escalate.channel``, a message there linking to the
  alert (``chat.getPermalink``; a link built from the channel and ts when Slack will not
  say). An incident whose first post is missing gets the escalation at the top level.
- A **redraw** draws an incident's message again from what the store holds now — its
  alert state and its acknowledgement — as a click does
  (:func:`watchdog.slack.commands.clicks.redrawn_alert` uses :func:`live_message` too):
  an incident that resolved meanwhile keeps its resolved edit, and a storm's member is
  left to its storm's post.
- The **digest** is one post (:mod:`watchdog.slack.alerts.digest`).
"""

from __future__ import annotations

from typing import Protocol

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from watchdog.domain.alerts import AlertState, Phase, Reason, RuleFacts
from watchdog.domain.oncall import with_ack
from watchdog.domain.outgoing import DigestPost, Notification, Redraw
from watchdog.rules.model import Rule
from watchdog.rules.ruleset import RuleSet
from watchdog.slack.actions import Action
from watchdog.slack.alerts import messages
from watchdog.slack.alerts.digest import digest_message
from watchdog.slack.alerts.messages import SlackMessage
from watchdog.store import MessageRef, Store


class Poster(Protocol):
    """The Slack calls the on-call messages need (the notifier provides them)."""

    async def post(
        self, channel: str, message: SlackMessage, *, thread_ts: str | None = None
    ) -> MessageRef: ...

    async def update(self, ref: MessageRef, message: SlackMessage) -> bool: ...

    async def permalink(self, ref: MessageRef) -> str: ...

    def channel_for(self, wanted: str | None) -> str: ...


log = structlog.get_logger(__name__)


def archive_link(ref: MessageRef) -> str:
    """A link to a message built from its channel and ts (when Slack gives no permalink)."""
    return f"https://slack.com/archives/{ref.channel}/p{ref.ts.replace('.', '')}"


async def permalink(web: AsyncWebClient, ref: MessageRef) -> str:
    """Slack's link to a message (``chat.getPermalink``), else one built from its channel
    and ts: the escalation it is for goes out either way. A read, so neither paced nor
    held to the lease like a post."""
    try:
        resp = await web.chat_getPermalink(channel=ref.channel, message_ts=ref.ts)
        link = resp.get("permalink")
    except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("slack.permalink_failed", error=type(exc).__name__)
        link = None
    if isinstance(link, str) and link.startswith("https://"):
        return link
    return archive_link(ref)


async def escalate(poster: Poster, n: Notification, ref: MessageRef | None, now: float) -> None:
    """Escalate one incident: a mention in its thread, and a link in the escalation channel."""
    reply = messages.thread_reply(n, now=now)
    if ref is not None:
        await poster.post(ref.channel, reply, thread_ts=ref.ts)
    else:
        ref = await poster.post(poster.channel_for(n.channel), reply)
    if n.escalate_channel:
        link = await poster.permalink(ref)
        await poster.post(n.escalate_channel, messages.escalation_message(n, link, now=now))


def live_message(
    alert: AlertState,
    rule: Rule | None,
    *,
    now: float,
    outcome: str | None = None,
    after: Action | None = None,
) -> SlackMessage:
    """The message of a live incident as it stands: ``rule`` is its rule if it still
    exists (a rule reloaded away leaves what the alert itself knows)."""
    if rule is None:
        facts = RuleFacts(name=alert.rule, kind="removed", severity=alert.severity)
    else:
        facts = RuleFacts(
            name=rule.name,
            kind=rule.kind,
            severity=rule.severity,
            description=rule.description,
            runbook=rule.runbook,
        )
    mention = rule.mention if rule is not None else None
    n = Notification(Reason.NEW, alert, facts, mention=mention)
    return messages.alert_message(n, now=now, outcome=outcome, after=after)


async def live_alert(store: Store, project: str, incident_id: str) -> AlertState | None:
    """The firing alert of ``incident_id`` as stored now, with its acknowledgement; None
    when it resolved or another incident replaced it."""
    found = [
        a
        for a in await store.load_alerts(project)
        if a.incident_id == incident_id and a.phase is Phase.FIRING
    ]
    if not found:
        return None
    acks = [a for a in await store.list_acks(project) if a.incident_id == incident_id]
    return with_ack(found[0], acks[0] if acks else None)


async def redraw(poster: Poster, store: Store, rules: RuleSet, item: Redraw, now: float) -> None:
    """Draw ``item``'s incident message again from the store (nothing when it is gone)."""
    ref = await store.get_message(item.incident_id)
    if ref is None or ref.kind != "single":
        return  # never posted, or a storm member: the storm's post has no buttons
    alert = await live_alert(store, item.project, item.incident_id)
    if alert is not None:
        await poster.update(ref, live_message(alert, rules.rule(alert.rule), now=now))


async def post_digest(poster: Poster, item: DigestPost) -> None:
    message = digest_message(item.digest, timezone=item.timezone)
    await poster.post(poster.channel_for(item.channel), message)
