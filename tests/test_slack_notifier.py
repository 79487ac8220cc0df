"""Slack delivery end to end: the real AsyncWebClient against the Slack stand-in, the outbox,
and (for whole incidents) the watcher polling the Polaris simulator, all on a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from harness import (
    AUDIT_CHANNEL,
    BOT_TOKEN,
    CHANNEL,
    START,
    FakeClock,
    SlackRig,
    WatchRig,
    alert,
    audit,
    hold,
    holder,
    job_id,
    notification,
    serve_slack,
    watch_rig,
)
from structlog.testing import capture_logs

from watchdog.deliver.notifier import DeliveryUnavailable
from watchdog.deliver.outbox import Dispatcher, Fences
from watchdog.devtools.polaris_sim.simulator import Simulator, build_scenario
from watchdog.devtools.slack_standin.server import StoredMessage
from watchdog.domain.alerts import Phase, Reason
from watchdog.domain.outgoing import Outgoing
from watchdog.rules.holder import RulesHolder
from watchdog.slack.alerts.messages import INCIDENT_EVENT
from watchdog.slack.alerts.notifier import SlackAuthError, SlackNotifier, SlackUnreachableError
from watchdog.slack.alerts.recovery import MARGIN
from watchdog.slack.web import SlackWebClient, open_web_client
from watchdog.store import Fence, MessageRef, OutboxRecord
from watchdog.store.memory import MemoryStore

RULES = f"""
[watch]
interval = "30s"

[slack]
channel = "{CHANNEL}"
audit_channel = "{AUDIT_CHANNEL}"
group_threshold = 5

[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"
mention = "@here"
"""
REPEATING = RULES + 'repeat = "1m"\n'
CLICKS = job_id(1)
Watch = Callable[..., Awaitable[WatchRig]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[SlackRig]:
    async with serve_slack(clock, channels=[CHANNEL, AUDIT_CHANNEL, "C0OTHER"]) as rig:
        yield rig


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def rules() -> RulesHolder:
    return holder(RULES)


@pytest.fixture
async def fences(store: MemoryStore) -> Fences:
    """This replica holds the lease: the dispatcher delivers under it."""
    held = await hold(store)
    return lambda: held


@pytest.fixture
def dispatcher(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder, clock: FakeClock, fences: Fences
) -> Dispatcher:
    notifier = SlackNotifier(slack.web, store, rules, clock=clock, pace=None)
    return Dispatcher(store, notifier, fences=fences, clock=clock)


@pytest.fixture
async def watch(slack: SlackRig, store: MemoryStore, clock: FakeClock) -> AsyncIterator[Watch]:
    """Start the watcher over a simulator, delivering to Slack: ``await watch(sim, rules)``."""
    async with AsyncExitStack() as stack:

        async def start(sim: Simulator, rules_text: str = RULES) -> WatchRig:
            rules = holder(rules_text)
            notifier = SlackNotifier(slack.web, store, rules, clock=clock, pace=None)
            return await stack.enter_async_context(watch_rig(sim, rules, store, notifier, clock))

        yield start


async def send(store: MemoryStore, dispatcher: Dispatcher, *items: Outgoing) -> bool:
    await store.enqueue(list(items), project="default", now=START)
    return await dispatcher.deliver_once()


def blocks_text(message: StoredMessage) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def refused(slack: SlackRig) -> int:
    """Posts the stand-in refused (bad blocks, too long, unknown channel...)."""
    return len(slack.standin.calls_of("chat.postMessage")) - len(slack.standin.messages)


def one_job_sim(clock: FakeClock) -> Simulator:
    sim = Simulator(clock=clock)
    sim.add_job(type="streaming", table="clicks", job_id=CLICKS)
    sim.add_job(type="streaming", table="views", job_id=job_id(2))
    return sim


async def test_alert_message_names_rule_job_and_table(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """The plain text of a new alert names the rule, the job id and the table."""
    assert await send(store, dispatcher, notification(alert(CLICKS), mention="@here"))
    [post] = slack.standin.top_level(CHANNEL)
    assert "job-unhealthy" in post.text and CLICKS in post.text and "clicks" in post.text
    shown = blocks_text(post)
    assert "An internal error occurred" in shown and "<!here>" in shown
    assert await store.get_message(alert(CLICKS).incident_id) is not None


async def test_huge_health_message_is_posted_within_slack_limits(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """A 10,000-character health message from Polaris still makes one valid post."""
    sim = one_job_sim(clock)
    detail = "Cannot parse row <@U0EVIL> & <!channel>: " + "x" * 10_000
    sim.set_health(CLICKS, "error", "cannot_parse_source", detail)
    rig = await watch(sim)
    await rig.tick()
    [post] = slack.standin.top_level(CHANNEL)
    assert CLICKS in post.text
    assert "<!channel>" not in blocks_text(post) and "<@U0EVIL>" not in blocks_text(post)
    assert refused(slack) == 0 and await rig.store.outbox_size() == 0


async def test_300_alerts_in_one_tick_all_reach_slack(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """300 jobs failing in one tick: nothing refused, every job listed, one grouped post."""
    sim = build_scenario("healthy", jobs=300, clock=clock)
    for job in sim.jobs:
        sim.set_health(job.id, "error", "internal_error", "x" * 2000)
    rig = await watch(sim)
    await rig.tick()
    assert refused(slack) == 0 and await rig.store.outbox_size() == 0
    [head] = slack.standin.top_level(CHANNEL)
    listed = " ".join(reply.text + blocks_text(reply) for reply in slack.standin.replies(head.ts))
    assert all(job.id in listed for job in sim.jobs)


async def test_one_top_level_post_per_incident_over_many_ticks(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """A job unhealthy for 10 ticks is one post, not ten."""
    sim = one_job_sim(clock)
    sim.set_health(CLICKS, "error")
    rig = await watch(sim)
    await rig.tick()
    await rig.step(10)
    [post] = slack.standin.top_level()
    assert post.channel == CHANNEL
    assert slack.standin.replies(post.ts) == []
    assert len(slack.standin.calls_of("chat.postMessage")) == 1


async def test_repeats_are_thread_replies(slack: SlackRig, watch: Watch, clock: FakeClock) -> None:
    """With `repeat = "1m"`, a still-firing alert replies in its own thread every minute."""
    sim = one_job_sim(clock)
    sim.set_health(CLICKS, "error")
    rig = await watch(sim, REPEATING)
    await rig.tick()
    await rig.step(4)
    [post] = slack.standin.top_level()
    replies = slack.standin.replies(post.ts)
    assert len(replies) == 2
    assert all("Still firing" in reply.text for reply in replies)


async def test_resolve_edits_the_original_post_and_replies_in_its_thread(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """Recovery: chat.update turns the post into RESOLVED, and the thread says so too."""
    sim = one_job_sim(clock)
    sim.set_health(CLICKS, "error")
    rig = await watch(sim)
    await rig.tick()
    sim.set_health(CLICKS, "ok")
    await rig.step()
    [post] = slack.standin.top_level()
    [update] = slack.standin.calls_of("chat.update")
    assert update["ts"] == post.ts and post.edited == 1
    assert post.text.startswith("✅ RESOLVED") and CLICKS in post.text
    [reply] = slack.standin.replies(post.ts)
    assert "Resolved after" in reply.text and "health is ok again" in reply.text


async def test_mention_only_on_the_first_post(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """The rule's mention pings once: not in repeats, not in the resolved edit."""
    sim = one_job_sim(clock)
    sim.set_health(CLICKS, "error")
    rig = await watch(sim, REPEATING)
    await rig.tick()
    [post] = slack.standin.top_level()
    assert "<!here>" in blocks_text(post)
    await rig.step(3)
    sim.set_health(CLICKS, "ok")
    await rig.step()
    replies = slack.standin.replies(post.ts)
    assert len(replies) == 2  # one repeat, one resolve
    assert all("<!here>" not in r.text + blocks_text(r) for r in [*replies, post])


async def test_storm_is_one_grouped_post_and_its_resolve_updates_it(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """200 jobs failing in one tick: one grouped post, the list in a few thread replies,
    and their recovery edits that post instead of touching 200 messages."""
    sim = build_scenario("storm", jobs=200, clock=clock, storm_at=30, storm_for=60)
    rig = await watch(sim)
    await rig.tick()
    await rig.step()  # the storm starts
    [head] = slack.standin.top_level()
    assert "200 jobs firing" in head.text
    replies = slack.standin.replies(head.ts)
    assert 1 <= len(replies) <= 3
    listed = " ".join(blocks_text(reply) for reply in replies)
    assert all(job.id in listed for job in sim.jobs)

    await rig.step(2)  # the storm is over
    assert slack.standin.top_level() == [head]
    assert head.edited >= 1 and head.text.startswith("✅ RESOLVED")
    assert len(slack.standin.calls_of("chat.update")) == 1
    assert len(slack.standin.replies(head.ts)) <= 6  # the list again, marked resolved
    assert await rig.store.outbox_size() == 0


async def test_rate_limited_post_is_retried_after_retry_after(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """A 429 keeps the item and waits Retry-After; the retry posts it, once."""
    slack.standin.rate_limit(1, retry_after=7)
    assert not await send(store, dispatcher, notification(alert(CLICKS)))
    assert dispatcher.blocked_until == START + 7
    assert slack.standin.top_level() == []
    clock.advance(7)
    assert await dispatcher.deliver_once()
    assert len(slack.standin.top_level()) == 1
    assert len(slack.standin.calls_of("chat.postMessage")) == 2


async def test_slack_outage_then_recovery_delivers_each_item_once_in_order(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """503s while Slack is down: nothing lost, nothing doubled, order kept when it is back."""
    first = alert(job_id(1))
    assert await send(store, dispatcher, notification(first))
    slack.standin.down()
    items: list[Outgoing] = [
        notification(alert(job_id(2))),
        notification(alert(job_id(3))),
        notification(first, Reason.REPEAT),
        audit(4),
    ]
    await store.enqueue(items, project="default", now=START)
    for _ in range(3):
        assert not await dispatcher.deliver_once()
        clock.advance(60)
    assert await store.outbox_size() == 4
    slack.standin.up()
    assert await dispatcher.deliver_once()
    posts = slack.standin.top_level(CHANNEL)
    assert [
        job for post in posts for job in (job_id(1), job_id(2), job_id(3)) if job in post.text
    ] == [
        job_id(1),
        job_id(2),
        job_id(3),
    ]
    [repeat] = slack.standin.replies(posts[0].ts)
    [logged] = slack.standin.top_level(AUDIT_CHANNEL)
    assert "Still firing" in repeat.text
    assert posts[2].ts < repeat.ts < logged.ts  # in enqueue order
    assert await store.outbox_size() == 0


async def test_bad_token_fails_check_auth_with_a_clear_message(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder
) -> None:
    """auth.test with a wrong token raises SlackAuthError naming the setting to fix."""
    notifier = SlackNotifier(slack.client("xoxb-wrong"), store, rules, pace=None)
    with pytest.raises(SlackAuthError, match=r"SLACK_BOT_TOKEN \(invalid_auth\).*xoxb-"):
        await notifier.check_auth()
    good = SlackNotifier(slack.web, store, rules, pace=None)
    assert await good.check_auth() == "U0WATCHDOG"


async def test_alert_for_a_closed_rule_channel_goes_to_the_default_channel(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """A rule's channel that is gone (channel_not_found) does not lose its alert: it is
    posted in the default channel instead."""
    assert await send(store, dispatcher, notification(alert(job_id(1)), channel="C0NOWHERE"))
    [post] = slack.standin.top_level(CHANNEL)
    assert job_id(1) in post.text
    assert await store.outbox_size() == 0


async def test_undeliverable_item_is_dead_lettered_and_does_not_block(
    slack: SlackRig, store: MemoryStore, clock: FakeClock, fences: Fences
) -> None:
    """The default channel itself refused: that item is set aside, the next is posted."""
    rules = holder(RULES.replace(f'channel = "{CHANNEL}"', 'channel = "C0GONE"'))
    notifier = SlackNotifier(slack.web, store, rules, clock=clock, pace=None)
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    lost = notification(alert(job_id(1)))
    assert await send(store, dispatcher, lost, notification(alert(job_id(2)), channel=CHANNEL))
    [post] = slack.standin.top_level()
    assert job_id(2) in post.text
    assert await store.outbox_size() == 0
    assert len(slack.standin.calls_of("chat.postMessage")) == 2


async def test_an_error_slack_reports_in_a_200_body_is_retried_not_dropped(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """fatal_error / internal_error in an HTTP 200 answer is Slack having trouble: the alert
    stays queued and is posted on the retry."""
    slack.standin.fail(1, status=200, methods=["chat.postMessage"])
    assert not await send(store, dispatcher, notification(alert(job_id(1))))
    assert await store.outbox_size() == 1
    clock.advance(dispatcher.blocked_until - clock())
    assert await dispatcher.deliver_once()
    assert len(slack.standin.top_level()) == 1


async def test_audit_entries_go_to_the_audit_channel(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """Who paused which job is posted to [slack] audit_channel — also when it was typed
    in another channel or a DM, where the team would not see it."""
    assert await send(store, dispatcher, audit(7), audit(8, channel="D0PRIVATEDM"))
    post, other = slack.standin.top_level(AUDIT_CHANNEL)
    assert "<@U0OPERATOR>" in post.text and "paused" in post.text and job_id(7) in post.text
    assert job_id(8) in other.text
    assert slack.standin.top_level(CHANNEL) == []


async def test_posts_to_one_channel_are_paced(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder, clock: FakeClock, fences: Fences
) -> None:
    """With pacing on, posts to one channel are spaced by the configured rate."""
    notifier = SlackNotifier(slack.web, store, rules, clock=clock, pace=(1, 0.04))
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    items = [notification(alert(job_id(n))) for n in range(1, 5)]
    assert await send(store, dispatcher, *items)
    times = [post.at for post in slack.standin.posts_by_time]
    assert len(times) == 4
    # One post per 40 ms after the first: three waits (robust to per-request jitter).
    assert times[-1] - times[0] >= 0.1, times
    assert times == sorted(times)


async def test_incident_that_began_and_ended_during_an_outage_is_one_edited_post(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """Fired and resolved while Slack was down: once back, one post, edited to RESOLVED."""
    sim = one_job_sim(clock)
    rig = await watch(sim)
    await rig.tick()
    slack.standin.down()
    sim.set_health(CLICKS, "error")
    await rig.step()
    sim.set_health(CLICKS, "ok")
    await rig.step()
    slack.standin.up()
    assert await rig.dispatcher.deliver_once()
    [post] = slack.standin.top_level()
    assert post.edited == 1 and post.text.startswith("✅ RESOLVED")
    [reply] = slack.standin.replies(post.ts)
    assert "Resolved after" in reply.text


async def test_storm_that_began_and_ended_during_an_outage_is_one_grouped_post(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """A whole storm queued behind an outage still makes one grouped post, then its edit."""
    sim = build_scenario("storm", jobs=50, clock=clock, storm_at=30, storm_for=60)
    rig = await watch(sim)
    await rig.tick()
    slack.standin.down()
    await rig.step(3)
    slack.standin.up()
    assert await rig.dispatcher.deliver_once()
    [head] = slack.standin.top_level()
    assert head.edited == 1 and head.text.startswith("✅ RESOLVED")
    assert len(slack.standin.replies(head.ts)) == 2  # the list, then the resolved list


async def test_check_auth_while_slack_is_down_does_not_blame_the_token(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder
) -> None:
    """A 503 from auth.test is an outage (SlackUnreachableError), not a wrong token."""
    slack.standin.down()
    notifier = SlackNotifier(slack.web, store, rules, pace=None)
    with pytest.raises(SlackUnreachableError) as caught:
        await notifier.check_auth()
    assert "503" in str(caught.value) and "rejected" not in str(caught.value)


async def test_polaris_outage_is_one_post_edited_when_polaris_answers_again(
    slack: SlackRig, watch: Watch, clock: FakeClock
) -> None:
    """The meta-alert about Polaris posts once (no_data_after = 5m) and is edited on recovery."""
    sim = one_job_sim(clock)
    rig = await watch(sim)
    await rig.tick()
    sim.faults.configure({"error_status": 503})
    await rig.step(9)
    assert slack.standin.top_level() == []
    await rig.step(5)
    [post] = slack.standin.top_level()
    assert "Polaris API problem" in post.text and "503" in post.text
    sim.faults.clear()
    await rig.step()
    assert slack.standin.top_level() == [post]
    assert post.edited == 1 and "reachable again" in post.text


class FlakyNotifier(SlackNotifier):
    """Fails the ``fail_at``-th post (1-based) once, as a Slack outage would mid-storm."""

    def __init__(self, *args: Any, fail_at: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.posts = 0
        self.fail_at = fail_at

    async def post(self, channel: str, message: Any, *, thread_ts: str | None = None) -> Any:
        self.posts += 1
        if self.posts == self.fail_at:
            raise DeliveryUnavailable("Slack went away mid-storm")
        return await super().post(channel, message, thread_ts=thread_ts)


async def test_storm_interrupted_mid_thread_continues_without_repeating_replies(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder, clock: FakeClock, fences: Fences
) -> None:
    """Slack failing between two list replies: the retry posts neither the grouped message
    nor the replies already accepted again — every job is listed exactly once."""
    notifier = FlakyNotifier(slack.web, store, rules, clock=clock, pace=None, fail_at=3)
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    jobs = [job_id(n) for n in range(1, 1001)]
    assert not await send(store, dispatcher, *(notification(alert(j)) for j in jobs))
    clock.advance(dispatcher.blocked_until - clock())
    assert await dispatcher.deliver_once()
    [head] = slack.standin.top_level()
    replies = slack.standin.replies(head.ts)
    assert len(replies) >= 2
    listed = " ".join(blocks_text(reply) for reply in replies)
    assert all(listed.count(j) == 1 for j in jobs)
    assert await store.outbox_size() == 0


# ---- exactly once: metadata, the crash window, timeouts ---------------------------------


class Settled:
    """Receipts that record what the notifier settled, and the messages it created;
    every record may be sent, under the test's leases."""

    def __init__(self, fences: Fences) -> None:
        self._fences = fences
        self.messages: dict[int, Mapping[str, MessageRef]] = {}
        self.dead_letters: dict[int, str] = {}

    async def start(self, record_ids: Sequence[int]) -> list[int]:
        return list(record_ids)

    def confirm(self, project: str) -> None:
        """The test's leases are always held."""

    def fence(self, project: str) -> Fence:
        return self._fences()[project]

    async def done(self, record_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        self.messages[record_id] = messages

    async def dead(self, record_id: int, error: str) -> None:
        self.dead_letters[record_id] = error

    def out_of_time(self) -> bool:
        return False


def outbox(*items: Outgoing, maybe_sent: bool = False, at: float = START) -> list[OutboxRecord]:
    """Outbox records as the dispatcher hands them over; ``maybe_sent`` as after a crash."""
    return [
        OutboxRecord(n + 1, item, 1, at, at, maybe_sent=maybe_sent) for n, item in enumerate(items)
    ]


@pytest.fixture
async def timed_web(slack: SlackRig) -> AsyncIterator[SlackWebClient]:
    """The bot's own kind of client, on the stand-in, giving up after 0.3 s."""
    web = open_web_client(BOT_TOKEN, slack.standin.api_url, timeout=0.3)
    yield web
    await web.close()


async def test_nothing_is_posted_once_the_lease_is_in_doubt(
    slack: SlackRig,
    store: MemoryStore,
    rules: RulesHolder,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lease goes right after the item is claimed (the replica was paused past it):
    the notifier confirms the lease before posting, so nothing reaches Slack, and the
    item stays queued for whoever holds the lease."""
    held = await hold(store)
    claim = store.outbox_start

    async def claim_then_lose(item_ids: Sequence[int], fence: Fence) -> list[int]:
        claimed = await claim(item_ids, fence)
        held.clear()
        return claimed

    monkeypatch.setattr(store, "outbox_start", claim_then_lose)
    notifier = SlackNotifier(slack.web, store, rules, clock=clock, pace=None)
    dispatcher = Dispatcher(store, notifier, fences=lambda: held, clock=clock)
    await store.enqueue([notification(alert(CLICKS))], project="default", now=clock())
    assert not await dispatcher.deliver_once()
    assert slack.standin.calls_of("chat.postMessage") == []
    assert await store.outbox_size() == 1


async def test_a_slack_call_that_hangs_is_cut_off_and_logged_with_its_method(
    slack: SlackRig, timed_web: SlackWebClient
) -> None:
    """A post whose answer never comes ends at the client's timeout as a TimeoutError,
    and one warning names the method: a hanging Slack is never silent."""
    slack.standin.hold(1, methods=["chat.postMessage"])
    with capture_logs() as logs, pytest.raises(TimeoutError):
        await timed_web.chat_postMessage(channel=CHANNEL, text="hello")
    [said] = [e for e in logs if e["event"] == "slack.call_timed_out"]
    assert said["method"] == "chat.postMessage" and said["log_level"] == "warning"


async def test_top_level_posts_carry_metadata_naming_their_incident(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """An alert post and a storm post name their incident (or storm) in message metadata;
    thread replies and audit lines carry none."""
    single = alert(CLICKS)
    assert await send(store, dispatcher, notification(single), audit(3))
    storm = [notification(alert(job_id(n), rule="storm-rule")) for n in range(10, 15)]
    assert await send(store, dispatcher, *storm)
    post, storm_post = slack.standin.top_level(CHANNEL)
    assert post.metadata == {
        "event_type": INCIDENT_EVENT,
        "event_payload": {
            "incident": single.incident_id,
            "kind": "alert",
            "project": "default",
            "rule": "job-unhealthy",
            "job": CLICKS,
        },
    }
    assert storm_post.metadata is not None
    payload = storm_post.metadata["event_payload"]
    assert payload["kind"] == "storm" and payload["incident"].startswith(
        "storm/default/storm-rule/"
    )
    assert await store.get_message(payload["incident"]) is not None
    assert all(reply.metadata is None for reply in slack.standin.replies(storm_post.ts))
    assert slack.standin.top_level(AUDIT_CHANNEL)[0].metadata is None


async def test_post_accepted_but_never_answered_is_found_not_posted_again(
    slack: SlackRig,
    store: MemoryStore,
    rules: RulesHolder,
    timed_web: SlackWebClient,
    fences: Fences,
) -> None:
    """Slack takes the post but its answer never comes (the call times out): the retry of
    that record looks in the channel's history, finds the post by its metadata and
    records it instead of posting a second time."""
    notifier = SlackNotifier(timed_web, store, rules, pace=None)
    n = notification(alert(CLICKS))
    slack.standin.hold(1, methods=["chat.postMessage"])
    with pytest.raises(DeliveryUnavailable, match="TimeoutError"):
        await notifier.deliver(outbox(n), Settled(fences))
    [posted] = slack.standin.top_level(CHANNEL)  # Slack has it, the bot does not know
    settled = Settled(fences)
    await notifier.deliver(outbox(n, maybe_sent=True), settled)
    assert slack.standin.top_level(CHANNEL) == [posted]
    assert settled.messages[1] == {n.incident_id: MessageRef(CHANNEL, posted.ts)}
    [scan] = slack.standin.calls_of("conversations.history")
    assert scan["channel"] == CHANNEL and scan["include_all_metadata"] == "1"
    assert float(scan["oldest"]) == START - MARGIN


async def test_storm_post_whose_answer_was_lost_continues_its_thread(
    slack: SlackRig,
    store: MemoryStore,
    rules: RulesHolder,
    timed_web: SlackWebClient,
    fences: Fences,
) -> None:
    """A storm post Slack accepted without the bot hearing back is found again on the
    retry; the retry goes on with the job list in its thread, and there is one storm post."""
    notifier = SlackNotifier(timed_web, store, rules, pace=None)
    storm = [notification(alert(job_id(n))) for n in range(1, 7)]
    slack.standin.hold(1, methods=["chat.postMessage"])
    with pytest.raises(DeliveryUnavailable):
        await notifier.deliver(outbox(*storm), Settled(fences))
    settled = Settled(fences)
    await notifier.deliver(outbox(*storm, maybe_sent=True), settled)
    [head] = slack.standin.top_level(CHANNEL)
    [listing] = slack.standin.replies(head.ts)
    assert all(job_id(n) in blocks_text(listing) for n in range(1, 7))
    assert sorted(settled.messages) == [1, 2, 3, 4, 5, 6]
    assert settled.messages[1]["storm/default/job-unhealthy/1"].ts == head.ts


async def test_one_history_scan_per_channel_per_batch(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder, fences: Fences
) -> None:
    """Three records that may have been sent to one channel and one to another cost two
    history reads; records that were never attempted cost none."""
    notifier = SlackNotifier(slack.web, store, rules, pace=None)
    items = [notification(alert(job_id(n))) for n in range(1, 4)]
    items.append(notification(alert(job_id(4)), channel="C0OTHER"))
    await notifier.deliver(outbox(*items), Settled(fences))
    assert slack.standin.calls_of("conversations.history") == []
    again = [notification(alert(job_id(n), at=START + 60)) for n in range(5, 8)]
    again.append(notification(alert(job_id(8), at=START + 60), channel="C0OTHER"))
    await notifier.deliver(outbox(*again, maybe_sent=True), Settled(fences))
    scans = slack.standin.calls_of("conversations.history")
    assert sorted(scan["channel"] for scan in scans) == sorted([CHANNEL, "C0OTHER"])
    assert len(slack.standin.top_level()) == 8  # none of them had been posted


async def test_look_back_is_bounded_by_the_records_age(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder, clock: FakeClock, fences: Fences
) -> None:
    """A post older than the record (minus the margin) is not searched for: the scan
    starts at the record's creation less the margin."""
    notifier = SlackNotifier(slack.web, store, rules, pace=None)
    n = notification(alert(CLICKS))
    await notifier.deliver(outbox(n), Settled(fences))
    clock.advance(2 * MARGIN)
    await notifier.deliver(outbox(n, maybe_sent=True, at=clock()), Settled(fences))
    assert len(slack.standin.top_level(CHANNEL)) == 2


async def test_unreadable_history_is_a_warning_and_the_alert_is_posted(
    slack: SlackRig, store: MemoryStore, rules: RulesHolder, fences: Fences
) -> None:
    """Without the history scope the bot says so and posts: a duplicate beats a lost alert."""
    notifier = SlackNotifier(slack.web, store, rules, pace=None)
    slack.standin.refuse(5, "missing_scope", methods=["conversations.history"])
    with capture_logs() as logs:
        settled = Settled(fences)
        await notifier.deliver(outbox(notification(alert(CLICKS)), maybe_sent=True), settled)
    assert len(slack.standin.top_level(CHANNEL)) == 1 and 1 in settled.messages
    [warning] = [e for e in logs if e["event"] == "slack.history_unavailable"]
    assert warning["log_level"] == "warning" and "missing_scope" in warning["error"]


async def test_a_slack_call_that_hangs_times_out_and_is_logged(
    slack: SlackRig, timed_web: SlackWebClient
) -> None:
    """With the stand-in holding its answer, a call gives up after the configured timeout
    (not aiohttp's five minutes) and says which method hung."""
    slack.standin.hold(1, methods=["chat.update"])
    posted = await timed_web.chat_postMessage(channel=CHANNEL, text="x")
    started = asyncio.get_running_loop().time()
    with capture_logs() as logs, pytest.raises(TimeoutError):
        await timed_web.chat_update(channel=CHANNEL, ts=posted["ts"], text="y")
    assert asyncio.get_running_loop().time() - started < 5
    [warning] = [e for e in logs if e["event"] == "slack.call_timed_out"]
    assert warning["log_level"] == "warning" and warning["method"] == "chat.update"
    slack.standin.release()


async def test_storm_post_ticks_off_members_as_they_resolve(
    slack: SlackRig, store: MemoryStore, dispatcher: Dispatcher
) -> None:
    """As storm members resolve, the storm post ticks them off and strikes them through."""
    alerts = [alert(job_id(n)) for n in range(1, 7)]
    assert await send(store, dispatcher, *(notification(a) for a in alerts))
    resolved = [dataclasses.replace(a, phase=Phase.RESOLVED) for a in alerts[:2]]
    assert await send(store, dispatcher, *(notification(a, Reason.RESOLVED) for a in resolved))
    [head] = slack.standin.top_level(CHANNEL)
    listing = next(b["text"]["text"] for b in head.blocks if "• " in b["text"].get("text", ""))
    lines = listing.splitlines()
    assert lines[0].startswith(f"✅ ~`{job_id(1)}`") and lines[0].endswith("~")
    assert lines[1].startswith(f"✅ ~`{job_id(2)}`")
    assert all(line.startswith("• ") for line in lines[2:6])
    assert "4 of 6 jobs firing" in head.blocks[0]["text"]["text"]


async def test_through_the_outbox_a_post_whose_answer_never_came_is_posted_once(
    slack: SlackRig,
    store: MemoryStore,
    rules: RulesHolder,
    clock: FakeClock,
    fences: Fences,
    timed_web: SlackWebClient,
) -> None:
    """End to end: Slack takes a post but never answers; the call times out, the outbox
    keeps the item as maybe sent, and its retry finds the post instead of repeating it.
    The incident's message is recorded, so its resolve edits that one post."""
    notifier = SlackNotifier(timed_web, store, rules, clock=clock, pace=None)
    dispatcher = Dispatcher(store, notifier, fences=fences, clock=clock)
    firing = alert(CLICKS)
    slack.standin.hold(1, methods=["chat.postMessage"])
    assert not await send(store, dispatcher, notification(firing))
    [record] = await store.outbox_due(clock() + 3600)
    assert record.maybe_sent
    clock.advance(dispatcher.blocked_until - clock())
    assert await dispatcher.deliver_once()
    [post] = slack.standin.top_level(CHANNEL)
    assert await store.get_message(firing.incident_id) == MessageRef(CHANNEL, post.ts)
    resolved = dataclasses.replace(firing, phase=Phase.RESOLVED)
    assert await send(store, dispatcher, notification(resolved, Reason.RESOLVED))
    assert slack.standin.top_level(CHANNEL) == [post] and post.edited == 1
    slack.standin.release()
