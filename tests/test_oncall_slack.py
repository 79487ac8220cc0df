"""The on-call workflow as Slack shows it: escalations, redraws after an acknowledgement, the
digest post — the real AsyncWebClient and the outbox against the Slack stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from harness import (
    CHANNEL,
    START,
    FakeClock,
    SlackRig,
    alert,
    hold,
    holder,
    job_id,
    notification,
    serve_slack,
)

from watchdog.deliver.outbox import Dispatcher
from watchdog.deliver.terminal import describe
from watchdog.devtools.slack_standin.server import StoredMessage
from watchdog.domain.alerts import Reason
from watchdog.domain.digest import summarize
from watchdog.domain.oncall import Ack, Incident
from watchdog.domain.outgoing import DigestPost, Notification, Outgoing, Redraw
from watchdog.slack.alerts.notifier import SlackNotifier
from watchdog.store import Fence
from watchdog.store.memory import MemoryStore

ESCALATE_TO = "C0ESCALATE"
DIGESTS = "C0DIGEST"
LEADS = "<!subteam^S0LEADS>"
RULES = f"""
[slack]
channel = "{CHANNEL}"
group_threshold = 5

[[rules]]
name = "job-unhealthy"
kind = "health"
severity = "critical"
escalate = {{ after = "15m", mention = "{LEADS}", channel = "{ESCALATE_TO}" }}
"""
CLICKS = job_id(1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[SlackRig]:
    async with serve_slack(clock, channels=[CHANNEL, ESCALATE_TO, DIGESTS]) as rig:
        yield rig


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def fence(store: MemoryStore) -> Fence:
    return (await hold(store))["default"]


@pytest.fixture
def dispatcher(slack: SlackRig, store: MemoryStore, clock: FakeClock, fence: Fence) -> Dispatcher:
    notifier = SlackNotifier(slack.web, store, holder(RULES), clock=clock, pace=None)
    return Dispatcher(store, notifier, fences=lambda: {"default": fence, "": fence}, clock=clock)


async def send(store: MemoryStore, dispatcher: Dispatcher, *items: Outgoing) -> None:
    await store.enqueue(list(items), project="default", now=START)
    assert await dispatcher.deliver_once()


def escalation(n: Notification) -> Notification:
    return replace(n, reason=Reason.ESCALATE, mention=LEADS, escalate_channel=ESCALATE_TO)


def text_of(message: StoredMessage) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


async def test_an_escalation_mentions_in_the_thread_and_links_from_its_channel(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """ONE reply in the alert's thread mentions the group; the escalation channel gets a
    message with the alert's permalink (chat.getPermalink)."""
    new = notification(alert(CLICKS))
    await send(store, dispatcher, new)
    [post] = slack.standin.top_level(CHANNEL)
    await send(store, dispatcher, escalation(new))
    [reply] = slack.standin.replies(post.ts)
    assert LEADS in reply.text and "Escalated" in reply.text and CLICKS in reply.text
    assert "unacknowledged" in reply.text
    [elsewhere] = slack.standin.top_level(ESCALATE_TO)
    link = f"https://standin.slack.invalid/archives/{CHANNEL}/p{post.ts.replace('.', '')}"
    assert LEADS in elsewhere.text
    assert f"<{link}|Open the alert>" in text_of(elsewhere)
    assert slack.standin.calls_of("chat.getPermalink")[0]["message_ts"] == post.ts


async def test_an_escalation_without_a_permalink_links_by_channel_and_ts(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """Slack refuses the permalink: the link is built from the channel and ts instead."""
    new = notification(alert(CLICKS))
    await send(store, dispatcher, new)
    [post] = slack.standin.top_level(CHANNEL)
    slack.standin.refuse(1, "missing_scope", methods=["chat.getPermalink"])
    await send(store, dispatcher, escalation(new))
    [elsewhere] = slack.standin.top_level(ESCALATE_TO)
    link = f"https://slack.com/archives/{CHANNEL}/p{post.ts.replace('.', '')}"
    assert link in text_of(elsewhere)


async def test_an_escalation_of_an_alert_never_posted_goes_to_the_top_level(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """No message of the incident (its post was dead-lettered): the escalation is posted
    in the alert's channel itself, and the escalation channel links to that."""
    await send(store, dispatcher, escalation(notification(alert(CLICKS))))
    [post] = slack.standin.top_level(CHANNEL)
    assert LEADS in text_of(post)
    [elsewhere] = slack.standin.top_level(ESCALATE_TO)
    assert post.ts.replace(".", "") in text_of(elsewhere)


async def test_a_storm_escalates_with_one_mention_and_one_link(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """Five members of a storm escalate in one batch: one mention in the storm's thread
    (then the job list), one message in the escalation channel linking to the storm."""
    members = [notification(alert(job_id(n))) for n in range(1, 6)]
    await send(store, dispatcher, *members)
    [storm] = slack.standin.top_level(CHANNEL)
    before = len(slack.standin.replies(storm.ts))
    await send(store, dispatcher, *[escalation(n) for n in members])
    replies = slack.standin.replies(storm.ts)[before:]
    assert LEADS in replies[0].text and "fires on 5 jobs" in replies[0].text
    assert "Escalated: 5 jobs" in replies[1].text
    assert sum(LEADS in text_of(r) for r in replies) == 1
    [elsewhere] = slack.standin.top_level(ESCALATE_TO)
    assert storm.ts.replace(".", "") in text_of(elsewhere)


async def test_a_redraw_edits_the_alert_to_show_its_owner_and_leaves_a_resolved_one(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher, fence: Fence
) -> None:
    """After a slash-command acknowledgement the alert's message says who owns it and
    offers Unacknowledge; once the incident is over a redraw leaves its message alone."""
    state = replace(alert(CLICKS), posted=True)
    await store.commit(fence=fence, upserts=[state], now=START)
    await send(store, dispatcher, notification(state))
    [post] = slack.standin.top_level(CHANNEL)
    await store.add_ack(Ack.of(state, "U0OWNER", START + 60))
    await send(store, dispatcher, Redraw(state.incident_id, "default", "acknowledged", START))
    edited = slack.standin.messages[post.ts]
    assert edited.edited == 1
    assert "Acknowledged by <@U0OWNER>" in text_of(edited)
    actions = [b for b in edited.blocks if b["type"] == "actions"]
    assert actions[0]["elements"][0]["action_id"] == "wd_unack"
    await store.commit(fence=fence, deletes=[state.fingerprint], now=START + 90)
    await send(store, dispatcher, Redraw(state.incident_id, "default", "withdrawn", START))
    assert slack.standin.messages[post.ts].edited == 1


async def test_the_digest_is_posted_to_its_channel(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """The daily digest is one post in [digest] channel with its totals and lists."""
    incidents = [
        Incident(
            f"i{n}",
            "default",
            "job-unhealthy",
            job_id(n % 2),
            "clicks",
            "critical",
            START + n,
            START + n + 600,
            START + n + 60,
            "U0OWNER",
        )
        for n in range(3)
    ]
    digest = summarize(incidents, START - 3600, START + 86_000)
    await send(store, dispatcher, DigestPost(digest, DIGESTS, "Europe/Berlin"))
    [post] = slack.standin.top_level(DIGESTS)
    assert post.text.startswith("📋 Polaris digest")
    body = text_of(post)
    assert "*3* incidents fired" in body and "Europe/Berlin" in body
    assert "job-unhealthy ×3" in body and "Noisiest jobs" in body


def test_the_terminal_prints_escalations_redraws_and_digests() -> None:
    """Each on-call item is a plain line in the demo's terminal."""
    n = escalation(notification(alert(CLICKS)))
    assert describe(n) == (
        "ESCALATE",
        f"[default] critical job-unhealthy · job {CLICKS} table clicks · unacknowledged, "
        "escalated to "
        f"{LEADS}",
    )
    assert describe(Redraw("i1", "default", "acknowledged by U1", START)) == (
        "UPDATE",
        "incident i1: acknowledged by U1",
    )
    label, line = describe(DigestPost(summarize([], START - 86_400, START)))
    assert label == "DIGEST" and line.startswith("last 1d: 0 incidents, 0 still firing")
