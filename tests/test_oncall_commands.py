"""The on-call commands and buttons end to end: signed requests to the bot's routes, the
app's OnCallService over a memory store, replies on the Slack stand-in's response URLs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from test_commands import (
    OPERATOR,
    RULES,
    START,
    STRANGER,
    STREAM,
    STREAM2,
    Rig,
    alert_for,
    alert_post,
    button_ids,
    running_rig,
)
from test_projects import CHANNELS, PROD_JOB, STAGING_JOB, two_orgs, until
from test_projects import OPERATOR as PROJECTS_OPERATOR

from watchdog.domain.alerts import Reason, RuleFacts
from watchdog.domain.outgoing import Notification, Redraw
from watchdog.slack.actions import Action
from watchdog.slack.commands.oncall import OnCallService
from watchdog.store import Fence

ONCALL_RULES = (
    RULES
    + """
[[rules]]
name = "skips-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "10m"

[digest]
at = "09:00"
timezone = "Europe/Berlin"

[[maintenance]]
name = "tonight"
description = "The nightly reload of clicks."
match = { table = ["clicks"] }
rules = ["skips-rising"]
from = "22:00"
to = "23:00"

[[maintenance]]
name = "weekend"
days = ["sat", "sun"]
from = "02:00"
to = "04:00"
timezone = "Europe/Berlin"
"""
)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_rig(rules_text=ONCALL_RULES, service_class=OnCallService) as running:
        yield running


def texts(message: dict[str, Any]) -> str:
    """Every text of a message, its blocks' included."""
    found = [message.get("text", "")]
    for block in message.get("blocks", []):
        for part in (block.get("text"), *block.get("elements", []), *block.get("fields", [])):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append(part["text"])
    return "\n".join(found)


# ---- the buttons ------------------------------------------------------------------------


async def test_acknowledge_button_records_the_owner_and_redraws_the_alert(rig: Rig) -> None:
    """An operator's click acknowledges the incident in the store; the message, redrawn
    from the store, says who and when and offers Unacknowledge; the audit says it too."""
    alert = alert_for(STREAM, "clicks")
    answer = await rig.click_alert(Action.ACK, alert)
    updated = await answer.final()
    [ack] = await rig.store.list_acks()
    assert (ack.incident_id, ack.user, ack.at) == (alert.incident_id, OPERATOR, START)
    assert updated["replace_original"] is True and updated["response_type"] == "in_channel"
    assert f"👀 Acknowledged by <@{OPERATOR}> · <!date^{int(START)}^" in texts(updated)
    assert button_ids(updated)[0] == Action.UNACK
    [entry] = rig.audit
    assert (entry.user, entry.action, entry.target, entry.table, entry.incident_id) == (
        OPERATOR,
        "ack",
        STREAM,
        "clicks",
        alert.incident_id,
    )
    assert entry.extra == {"rule": "job-unhealthy"} and entry.ok


async def test_unacknowledge_button_withdraws_it(rig: Rig) -> None:
    """Unacknowledge removes the owner: the message offers Acknowledge again."""
    alert = alert_for(STREAM, "clicks")
    await (await rig.click_alert(Action.ACK, alert)).final()
    answer = await rig.click_alert(Action.UNACK, alert)
    updated = await answer.final()
    assert await rig.store.list_acks() == []
    assert "Acknowledged by" not in texts(updated)
    assert "Acknowledgement withdrawn by" in texts(updated)
    assert button_ids(updated)[0] == Action.ACK
    assert [e.action for e in rig.audit] == ["ack", "unack"]


async def test_a_non_operator_cannot_acknowledge(rig: Rig) -> None:
    """A stranger's click gets the polite refusal; nothing is acknowledged or audited."""
    alert = alert_for(STREAM, "clicks")
    await rig.save_alerts(alert)
    answer = await rig.click(
        Action.ACK, STREAM, STRANGER, alert_post(alert), incident=alert.incident_id
    )
    reply = await answer.final()
    assert "cannot ack here" in reply["text"] and f"<@{OPERATOR}>" in reply["text"]
    assert await rig.store.list_acks() == [] and rig.audit == []
    assert rig.count("button_ack", "forbidden") == 1


async def test_acknowledging_a_resolved_alert_changes_nothing(rig: Rig) -> None:
    """The incident resolved before the click: only the clicker hears so."""
    alert = alert_for(STREAM, "clicks")
    answer = await rig.click(
        Action.ACK, STREAM, message=alert_post(alert), incident=alert.incident_id
    )
    reply = await answer.final()
    assert "resolved or is gone" in reply["text"] and reply["response_type"] == "ephemeral"
    assert await rig.store.list_acks() == []


# ---- /polaris ack and unack -------------------------------------------------------------


async def test_slash_ack_acknowledges_the_jobs_alerts_and_queues_their_redraw(rig: Rig) -> None:
    """`ack PREFIX` acknowledges every firing alert on the job, queues a redraw of each
    message for the project's lease holder, and is audited."""
    unhealthy = alert_for(STREAM, "clicks")
    rising = replace(unhealthy, rule="skips-rising")
    other = alert_for(STREAM2, "views")
    await rig.save_alerts(unhealthy, rising, other)
    answer = await rig.slash(f"ack {STREAM[:8]}")
    assert answer.ack["text"] == f"⏳ Acknowledging `{STREAM[:8]}`…"
    reply = await answer.final()
    assert reply["text"].startswith(f"👀 Acknowledged on job `{STREAM}`")
    acks = await rig.store.list_acks()
    assert sorted(a.rule for a in acks) == ["job-unhealthy", "skips-rising"]
    assert {a.user for a in acks} == {OPERATOR}
    redraws = [r.item for r in await rig.store.outbox_due(START) if isinstance(r.item, Redraw)]
    assert sorted(r.incident_id for r in redraws) == sorted(
        [unhealthy.incident_id, rising.incident_id]
    )
    assert {(r.project, r.note) for r in redraws} == {("default", f"acknowledged by {OPERATOR}")}
    [entry] = rig.audit
    assert (entry.action, entry.target, entry.extra) == (
        "ack",
        STREAM,
        {"rule": "job-unhealthy, skips-rising"},
    )


async def test_slash_ack_with_a_rule_acknowledges_that_rule_only(rig: Rig) -> None:
    """`ack JOB RULE` leaves the job's other alerts unacknowledged."""
    unhealthy = alert_for(STREAM, "clicks")
    await rig.save_alerts(unhealthy, replace(unhealthy, rule="skips-rising"))
    await (await rig.slash(f"ack {STREAM} skips-rising")).final()
    [ack] = await rig.store.list_acks()
    assert ack.rule == "skips-rising"


async def test_slash_ack_says_what_stands_in_the_way(rig: Rig) -> None:
    """No firing alert, or one already owned: the answer says so and nothing changes."""
    reply = await (await rig.slash(f"ack {STREAM}")).final()
    assert "no alert fires on job" in reply["text"]
    await rig.save_alerts(alert_for(STREAM, "clicks"))
    reply = await (await rig.slash(f"ack {STREAM} skips-rising")).final()
    assert "no alert of rule `skips-rising` fires" in reply["text"]
    await (await rig.slash(f"ack {STREAM}")).final()
    reply = await (await rig.slash(f"ack {STREAM}", user="U0SECONDOP")).final()
    assert f"already acknowledged by {OPERATOR}" in reply["text"]
    assert [a.user for a in await rig.store.list_acks()] == [OPERATOR]


async def test_slash_unack_withdraws_and_queues_a_redraw(rig: Rig) -> None:
    """`unack JOB` withdraws the job's acknowledgements; a second one finds none."""
    alert = alert_for(STREAM, "clicks")
    await rig.save_alerts(alert)
    await (await rig.slash(f"ack {STREAM}")).final()
    reply = await (await rig.slash(f"unack {STREAM}")).final()
    assert reply["text"].startswith("↩️ Acknowledgement withdrawn on job")
    assert await rig.store.list_acks() == []
    notes = [r.item.note for r in await rig.store.outbox_due(START) if isinstance(r.item, Redraw)]
    assert notes == [f"acknowledged by {OPERATOR}", f"acknowledgement withdrawn by {OPERATOR}"]
    again = await (await rig.slash(f"unack {STREAM}")).final()
    assert "is acknowledged" in again["text"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ack", "`ack` takes a job id or prefix"),
        ("ack 12", "too short"),
        ("ack aaaaaa01 Not!a-rule", "is not a rule name"),
        ("maintenance now", "takes no arguments"),
        ("digest 30d", "at most 7d"),
        ("digest soon", "bad duration"),
    ],
)
async def test_oncall_usage_errors_answer_at_once(rig: Rig, text: str, words: str) -> None:
    """A mistyped on-call command is answered in the ack with the reason and the usage."""
    answer = await rig.slash(text)
    assert words in answer.ack["text"] and "*Usage:*" in answer.ack["text"]
    await rig.service.drain()
    assert answer.responses == [] and rig.audit == []


async def test_a_non_operator_cannot_ack_but_may_read_the_windows(rig: Rig) -> None:
    """`ack` is refused to strangers; `maintenance` and `digest` are open to everyone."""
    await rig.save_alerts(alert_for(STREAM, "clicks"))
    answer = await rig.slash(f"ack {STREAM}", user=STRANGER)
    assert "cannot ack here" in answer.ack["text"]
    assert (await (await rig.slash("maintenance", user=STRANGER)).final())["text"]
    assert await rig.store.list_acks() == []


# ---- /polaris maintenance and digest ----------------------------------------------------


async def test_maintenance_lists_windows_open_first_with_when_they_change(rig: Rig) -> None:
    """START is Tuesday 2023-11-14 22:13 UTC: 'tonight' is open until 23:00 UTC, the
    weekend window opens Saturday 02:00 Berlin (01:00 UTC)."""
    reply = await (await rig.slash("maintenance")).final()
    text = reply["text"]
    assert text.startswith("*Maintenance windows* (1 of 2 open)")
    tonight, weekend = text.index("*tonight*"), text.index("*weekend*")
    assert tonight < weekend
    assert "🛠 *open* until <!date^1700002800^" in text  # 23:00 UTC
    assert "⏸ closed, opens <!date^1700269200^" in text  # Sat 2023-11-18 01:00 UTC
    assert "daily 22:00–23:00 UTC" in text and "sat, sun 02:00–04:00 Europe/Berlin" in text
    assert "`skips-rising`" in text and "table clicks" in text and "every rule" in text
    assert reply["response_type"] == "ephemeral"


async def test_digest_answers_privately_with_the_history(rig: Rig) -> None:
    """`digest` sums up the last day of the incident history, to the asker only;
    `digest 2h` only the last two hours."""
    term = await rig.store.acquire_lease("default", "watching-replica", 3600.0)
    assert term is not None
    facts = RuleFacts("job-unhealthy", "health", "critical")
    old = replace(alert_for(STREAM, "clicks"), fired_at=START - 5 * 3600)
    new = alert_for(STREAM2, "views")
    notes = [Notification(Reason.NEW, a, facts) for a in (old, new)]
    await rig.store.commit(fence=Fence("default", term), outbox=notes, now=START)
    reply = await (await rig.slash("digest")).final()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("📋 Polaris digest · last 1d: 2 incidents, 2 still firing")
    assert "Europe/Berlin" in texts(reply)
    short = await (await rig.slash("digest 2h")).final()
    assert short["text"].startswith("📋 Polaris digest · last 2h: 1 incidents, 2 still firing")


async def test_help_lists_the_oncall_commands(rig: Rig) -> None:
    """`help` names ack, unack, maintenance and digest."""
    text = (await rig.slash("help")).ack["text"]
    assert "`ack JOB [RULE]`" in text and "`unack JOB [RULE]`" in text
    assert "`maintenance`" in text and "`digest [DURATION]`" in text


# ---- the running bot, several projects ---------------------------------------------------


async def test_ack_of_a_project_job_in_the_running_bot_edits_that_projects_alert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole app over two organisations: `ack staging/aaaaaa02` acknowledges staging's
    incident only; staging's lease holder edits its alert to name the owner; the audit
    line names the project; staging's watcher takes the owner into its state."""
    async with two_orgs(monkeypatch) as orgs:
        text = await orgs.slash("ack staging/aaaaaa02")
        assert text.startswith(f"👀 Acknowledged on job `{STAGING_JOB}`")
        [ack] = await orgs.bot.store.list_acks()
        assert (ack.project, ack.job_id, ack.user) == ("staging", STAGING_JOB, PROJECTS_OPERATOR)
        await until(lambda: any(m.edited for m in orgs.standin.top_level()))
        edited = [
            m
            for m in orgs.standin.top_level()
            if m.edited and "Acknowledged by" in json.dumps(m.blocks, ensure_ascii=False)
        ]
        assert [m.channel for m in edited] == [CHANNELS["staging"]]
        assert "[staging]" in edited[0].text
        await until(lambda: any("acknowledged job" in t for t in orgs.all_texts()))
        audit = [t for t in orgs.all_texts() if "acknowledged job" in t]
        assert audit == [
            f"✅ <@{PROJECTS_OPERATOR}> acknowledged job `{STAGING_JOB}` (table orders) in "
            "project staging · rule: job-unhealthy"
        ]
        await orgs.tick()
        states = orgs.bot.watchers["staging"].alerts.values()
        assert [s.acked_by for s in states if s.job_id == STAGING_JOB] == [PROJECTS_OPERATOR]
        prod = orgs.bot.watchers["prod"].alerts.values()
        assert [s.acked_by for s in prod if s.job_id == PROD_JOB] == [None]
