"""Grouped ("storm") messages: many alerts of one rule in one tick, one Slack post.

Which alerts form a storm is decided by the grouping stage
(:mod:`watchdog.deliver.group`); this module sends one. The grouped post carries the
counts and the first jobs (ticked off and struck through as they resolve); the full list
goes to its thread in as few replies as Slack's limits allow. Its bookkeeping lives in
the store under the storm's key: the member alerts as last notified (to redraw the post
as members resolve), the resolved ones, and how many thread replies of each step were
already accepted — so a retry after a Slack failure continues the thread where it
stopped instead of posting it again. That bookkeeping is written under the fence of the
storm's project (the delivery's lease), so a replica that lost the project cannot
rewrite it. The post carries the storm's key as message metadata, so a post whose
answer was lost is found again instead of repeated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from watchdog.domain.alerts import AlertState, RuleFacts, alert_from_dict, alert_to_dict
from watchdog.domain.outgoing import Notification
from watchdog.slack.alerts import messages
from watchdog.slack.alerts.messages import SlackMessage
from watchdog.store import Fence, MessageRef, Store


class Poster(Protocol):
    """The Slack calls a storm needs (the notifier provides them)."""

    async def post(
        self, channel: str, message: SlackMessage, *, thread_ts: str | None = None
    ) -> MessageRef: ...

    async def update(self, ref: MessageRef, message: SlackMessage) -> bool: ...

    async def permalink(self, ref: MessageRef) -> str: ...

    def channel_for(self, wanted: str | None) -> str: ...


#: Looks for the bot's earlier post of a storm (channel, storm key), when one may exist.
Finder = Callable[[str, str], Awaitable[MessageRef | None]]


def member_alerts(ref: MessageRef) -> list[AlertState]:
    """The alerts a grouped message stands for."""
    members: Mapping[str, Any] = ref.data.get("members", {})
    return [alert_from_dict(a) for a in members.values()]


async def _thread(
    poster: Poster,
    store: Store,
    fence: Fence,
    key: str,
    storm: MessageRef,
    replies: Sequence[SlackMessage],
    step: str,
) -> MessageRef:
    """Post ``replies`` in the storm's thread, skipping those an earlier try got through."""
    progress: dict[str, int] = dict(storm.data.get("progress", {}))
    for index in range(progress.get(step, 0), len(replies)):
        await poster.post(storm.channel, replies[index], thread_ts=storm.ts)
        progress[step] = index + 1
        storm = MessageRef(storm.channel, storm.ts, "storm", {**storm.data, "progress": progress})
        await store.save_messages({key: storm}, fence)
    return storm


async def send_storm(
    poster: Poster,
    store: Store,
    fence: Fence,
    key: str,
    items: Sequence[Notification],
    now: float,
    find: Finder | None = None,
) -> dict[str, MessageRef]:
    """Post the grouped message and its job list; return the message of every member.

    ``find`` is given when an earlier attempt may have posted the storm already."""
    alerts = [n.alert for n in items]
    first = items[0]
    storm = await store.get_message(key)
    if storm is None:
        channel = poster.channel_for(first.channel)
        posted = await find(channel, key) if find is not None else None
        if posted is None:
            head = messages.storm_message(
                first.rule, alerts, resolved=0, total=len(alerts), now=now, mention=first.mention
            ).tagged(key, kind="storm", project=first.alert.project, rule=first.alert.rule)
            posted = await poster.post(channel, head)
        storm = MessageRef(posted.channel, posted.ts, "storm", {
            "rule": asdict(first.rule),
            "members": {n.incident_id: alert_to_dict(n.alert) for n in items},
            "resolved": [],
        })  # fmt: skip
        # Recorded at once: if a thread reply fails below, the retry continues the
        # thread instead of posting the storm again.
        await store.save_messages({key: storm}, fence)
    replies = messages.storm_list_replies(alerts, heading=f"All {len(alerts)} jobs")
    storm = await _thread(poster, store, fence, key, storm, replies, "list")
    members = {
        n.incident_id: MessageRef(storm.channel, storm.ts, "storm-member", {"storm": key})
        for n in items
    }
    return {key: storm, **members}


async def storm_follow_up(
    poster: Poster,
    store: Store,
    fence: Fence,
    key: str,
    kind: str,
    items: Sequence[Notification],
    step: str,
    now: float,
) -> None:
    """Repeats, changes, escalations or resolves of storm members: one update (a resolve)
    and thread replies."""
    storm = await store.get_message(key)
    if storm is None:  # bookkeeping lost: fall back to plain, thread-less replies
        for n in items:
            await poster.post(poster.channel_for(n.channel), messages.thread_reply(n, now=now))
        return
    alerts = [n.alert for n in items]
    # The members as last notified: a resolved one is then ticked off in the post.
    members = dict(storm.data.get("members", {}))
    members.update(
        {n.incident_id: alert_to_dict(n.alert) for n in items if n.incident_id in members}
    )
    storm = MessageRef(storm.channel, storm.ts, "storm", {**storm.data, "members": members})
    if kind == "storm-resolved":
        resolved = sorted(set(storm.data.get("resolved", [])) | {n.incident_id for n in items})
        head = messages.storm_message(
            RuleFacts(**storm.data["rule"]),
            member_alerts(storm),
            resolved=len(resolved),
            total=len(members),
            now=now,
            mention=None,
        )
        if not await poster.update(storm, head):
            await poster.post(storm.channel, head)
        storm = MessageRef(storm.channel, storm.ts, "storm", {**storm.data, "resolved": resolved})
        await store.save_messages({key: storm}, fence)
        heading = f"Resolved: {len(items)} jobs ({len(resolved)} of {len(members)})"
    elif kind == "storm-escalate":
        # The mention first, then which jobs; the escalation channel gets a link after.
        mention = messages.storm_escalation(items[0], len(items), now=now)
        listed = messages.storm_list_replies(alerts, heading=f"Escalated: {len(items)} jobs")
        storm = await _thread(poster, store, fence, key, storm, [mention, *listed], step)
        if items[0].escalate_channel:
            link = await poster.permalink(storm)
            note = messages.escalation_message(items[0], link, now=now, jobs=len(items))
            await poster.post(items[0].escalate_channel, note)
        return
    else:
        verb = "Still firing" if kind == "storm-repeat" else "Changed"
        heading = f"{verb}: {len(items)} jobs"
    replies = messages.storm_list_replies(alerts, heading=heading)
    await _thread(poster, store, fence, key, storm, replies, step)
