"""Slack messages: what each kind says, which buttons it carries, and that Slack would take it
whatever the input (checked by the stand-in's check and by slack-sdk's Block Kit models)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock

from watchdog.devtools.slack_standin.blockcheck import check_message
from watchdog.domain.alerts import (
    META_RULE,
    AlertState,
    Condition,
    JobFacts,
    Phase,
    Reason,
    RuleFacts,
)
from watchdog.domain.outgoing import AuditEntry, Notification
from watchdog.slack import text as tx
from watchdog.slack.actions import Action, ButtonValue, decode_value
from watchdog.slack.alerts.messages import (
    SlackMessage,
    alert_message,
    audit_message,
    format_mention,
    meta_message,
    resolved_message,
    sparkline,
    storm_list_replies,
    storm_message,
    thread_reply,
)
from watchdog.slack.text import MAX_MESSAGE_TEXT, length

NOW = 1_700_000_000.0
JOB_ID = "0191a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b"


def make_alert(**changes: Any) -> AlertState:
    job = JobFacts(
        job_id=JOB_ID,
        table="events",
        type="streaming",
        execution_status="running",
        health_status="error",
        health_code="cannot_parse_source",
        health_message="Unable to parse the source data: unexpected token at line 3",
    )
    job = dataclasses.replace(job, **changes.pop("job", {}))
    alert = AlertState(
        rule="job-unhealthy",
        job_id=job.job_id,
        phase=Phase.FIRING,
        severity="critical",
        since=NOW - 900,
        last_active=NOW,
        last_eval=NOW,
        job=job,
        condition=Condition(active=True, summary="Job is in error: cannot_parse_source"),
        fired_at=NOW - 840,
    )
    return dataclasses.replace(alert, **changes)


def make_notification(alert: AlertState | None = None, **changes: Any) -> Notification:
    alert = alert or make_alert()
    rule = RuleFacts(name=alert.rule, kind="health", severity=alert.severity)
    n = Notification(reason=Reason.NEW, alert=alert, rule=rule)
    return dataclasses.replace(n, **changes)


def mrkdwn_texts(message: SlackMessage) -> Iterator[str]:
    """Every text Slack parses for mentions and links: the fallback and all mrkdwn objects."""
    yield message.text

    def walk(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                yield node["text"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(message.blocks)


def all_texts(message: SlackMessage) -> str:
    """The fallback and every string in the blocks, each once."""
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


def assert_slack_accepts(message: SlackMessage) -> None:
    """The stand-in's check passes, slack-sdk's models accept every block, text is bounded."""
    assert check_message(message.text, message.blocks) is None
    parsed = Block.parse_all(message.blocks)
    assert len(parsed) == len(message.blocks)
    for block in parsed:
        block.to_dict()  # raises SlackObjectFormationError past a limit slack-sdk knows
    assert length(message.text) + sum(length(t) for t in mrkdwn_texts(message)) < MAX_MESSAGE_TEXT


def buttons(message: SlackMessage) -> list[dict[str, Any]]:
    return [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def button_labels(message: SlackMessage) -> list[str]:
    return [b["text"]["text"] for b in buttons(message)]


# --- alert_message ---------------------------------------------------------------------


def test_alert_text_names_rule_job_table_and_problem() -> None:
    """The plain fallback names the project, the rule, the job id, the table and the
    health code."""
    message = alert_message(make_notification(), now=NOW)
    assert message.text == (
        f"🔴 FIRING [default] job-unhealthy — job {JOB_ID} on table events: cannot_parse_source"
    )
    assert_slack_accepts(message)


@pytest.mark.parametrize(
    ("severity", "mark"), [("critical", "🔴"), ("warning", "🟠"), ("info", "🔵")]
)
def test_alert_header_shows_severity_marker_and_rule(severity: str, mark: str) -> None:
    """The header is the severity marker and the rule name."""
    message = alert_message(make_notification(make_alert(severity=severity)), now=NOW)
    assert message.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"{mark} job-unhealthy", "emoji": True},
    }


def test_alert_shows_summary_and_job_fields() -> None:
    """Summary sentence, then job, table, type, execution status, health code and project
    as fields."""
    message = alert_message(make_notification(), now=NOW)
    assert message.blocks[1]["text"]["text"] == "Job is in error: cannot_parse_source"
    labels = [f["text"] for f in message.blocks[2]["fields"]]
    assert labels == [
        f"*Job*\n`{JOB_ID}`",
        "*Table*\n`events`",
        "*Type*\nstreaming",
        "*Execution status*\nrunning",
        "*Health*\nerror · `cannot_parse_source`",
        "*Project*\ndefault",
    ]
    assert "Unable to parse the source data" in message.blocks[3]["text"]["text"]


@pytest.mark.parametrize("status", ["running", "idle", "pending"])
def test_live_streaming_job_can_be_paused_canceled_and_silenced(status: str) -> None:
    """A live streaming job offers Acknowledge, Pause, Cancel and Silence 1h."""
    alert = make_alert(job={"execution_status": status})
    message = alert_message(make_notification(alert), now=NOW)
    assert button_labels(message) == ["Acknowledge", "Pause", "Cancel", "Silence 1h"]
    assert [b["action_id"] for b in buttons(message)] == [
        Action.ACK,
        Action.PAUSE,
        Action.CANCEL,
        Action.SILENCE,
    ]


def test_suspended_job_offers_resume_instead_of_pause() -> None:
    """A suspended job can be resumed (or canceled), not paused."""
    alert = make_alert(job={"execution_status": "suspended"})
    message = alert_message(make_notification(alert), now=NOW)
    assert button_labels(message) == ["Acknowledge", "Resume", "Cancel", "Silence 1h"]


@pytest.mark.parametrize("status", ["completed", "canceled", "failed"])
def test_terminal_job_offers_only_silence(status: str) -> None:
    """Nothing can be done to a finished job but acknowledging or silencing its alert."""
    alert = make_alert(job={"execution_status": status})
    message = alert_message(make_notification(alert), now=NOW)
    assert button_labels(message) == ["Acknowledge", "Silence 1h"]


def test_batch_job_cannot_be_paused() -> None:
    """Only streaming jobs pause; a running batch job gets Cancel and Silence."""
    alert = make_alert(job={"type": "batch"})
    message = alert_message(make_notification(alert), now=NOW)
    assert button_labels(message) == ["Acknowledge", "Cancel", "Silence 1h"]


def test_cancel_button_is_danger_with_confirm_dialog_naming_job_and_table() -> None:
    """Cancel is red and asks first, naming the job and the table."""
    cancel = buttons(alert_message(make_notification(), now=NOW))[2]
    assert cancel["style"] == "danger"
    dialog = cancel["confirm"]
    assert dialog["title"]["text"] == "Cancel job?"
    assert JOB_ID in dialog["text"]["text"] and "events" in dialog["text"]["text"]
    assert dialog["confirm"]["text"] == "Cancel job"
    assert dialog["deny"]["text"] == "Keep it"


def test_button_values_carry_job_rule_and_incident() -> None:
    """Every button's value decodes to the job, the rule and the incident."""
    alert = make_alert()
    for element in buttons(alert_message(make_notification(alert), now=NOW)):
        assert decode_value(element["value"]) == ButtonValue(
            JOB_ID, "job-unhealthy", alert.incident_id, "default"
        )


def test_mention_leads_the_summary_of_a_new_alert_only() -> None:
    """The mention opens the summary of the new alert and appears nowhere else."""
    n = make_notification(mention="S0ONCALL")
    message = alert_message(n, now=NOW)
    assert message.blocks[1]["text"]["text"].startswith("<!subteam^S0ONCALL> Job is in error")
    assert all_texts(message).count("S0ONCALL") == 1
    resolved = dataclasses.replace(n, reason=Reason.RESOLVED)
    for other in (
        resolved_message(resolved, now=NOW),
        thread_reply(dataclasses.replace(n, reason=Reason.REPEAT), now=NOW),
        thread_reply(resolved, now=NOW),
    ):
        assert "S0ONCALL" not in all_texts(other)


def test_metric_alert_shows_sparkline_and_increase() -> None:
    """A metric rule shows the metric, a sparkline of recent values and the increase."""
    condition = Condition(
        active=True,
        summary="numRowsSkippedByError rose by 1,200 in 10m",
        metric="numRowsSkippedByError",
        values=(100.0, 100.0, 400.0, 900.0, 1300.0),
        increase=1200.0,
        threshold=100.0,
    )
    alert = make_alert(condition=condition, severity="warning")
    message = alert_message(make_notification(alert), now=NOW)
    line = next(b["text"]["text"] for b in message.blocks if "over the window" in str(b))
    assert "`▁▁▃▆█` 100 → 1,300" in line
    assert "*+1,200* over the window" in line and "threshold 100" in line
    assert message.text.endswith("numRowsSkippedByError rose by 1,200 in 10m")


def test_rule_description_and_runbook_link_are_shown() -> None:
    """Description and runbook (as a link, its & escaped) go in a context line."""
    rule = RuleFacts(
        name="job-unhealthy",
        kind="health",
        description="Streaming jobs in error lose data",
        runbook="https://wiki.example.com/run?a=1&b=2",
    )
    message = alert_message(make_notification(rule=rule), now=NOW)
    assert (
        "Streaming jobs in error lose data · 📖 <https://wiki.example.com/run?a=1&amp;b=2|Runbook>"
        in all_texts(message)
    )


def test_context_line_uses_slack_date_tokens() -> None:
    """First seen, fired and last evaluated are Slack date tokens with a UTC fallback."""
    context = alert_message(make_notification(), now=NOW).blocks[-1]["elements"][0]["text"]
    since = int(NOW - 900)
    assert context.startswith(
        f"First seen <!date^{since}^{{date_short_pretty}} {{time}}|2023-11-14 21:58 UTC> (15m ago)"
    )
    assert f"fired <!date^{int(NOW - 840)}^" in context
    assert f"last evaluated <!date^{int(NOW)}^" in context


# --- resolved, thread replies, meta ----------------------------------------------------


def test_resolved_message_says_how_long_and_why_without_buttons() -> None:
    """The resolved post says how long it fired and why it ended; keeps fields, no buttons."""
    alert = make_alert(phase=Phase.RESOLVED, resolved_at=NOW, resolve_reason="health is ok again")
    n = make_notification(alert, reason=Reason.RESOLVED, mention="<!here>")
    message = resolved_message(n, now=NOW + 60)
    assert message.blocks[0]["text"]["text"] == "✅ RESOLVED · job-unhealthy"
    assert "Fired for *14m*" in message.blocks[1]["text"]["text"]
    assert "*Resolved:* health is ok again" in message.blocks[1]["text"]["text"]
    assert message.blocks[2]["fields"][1]["text"] == "*Table*\n`events`"
    assert not buttons(message) and "here" not in all_texts(message)
    assert JOB_ID in message.text and "events" in message.text
    assert_slack_accepts(message)


def test_repeat_reply_says_still_firing_and_for_how_long() -> None:
    """A repeat is a short "still firing after" line."""
    n = make_notification(reason=Reason.REPEAT)
    reply = thread_reply(n, now=NOW + 7200 - 840)
    assert reply.text == "🔴 Still firing after 2h: Job is in error: cannot_parse_source"
    assert_slack_accepts(reply)


def test_changed_reply_names_old_and_new_health() -> None:
    """A change says what the health and execution status were and are."""
    alert = make_alert(
        job={"health_code": "internal_error", "execution_status": "suspended"},
        notified_signature=("error", "cannot_parse_source", "running"),
    )
    reply = thread_reply(make_notification(alert, reason=Reason.CHANGED), now=NOW)
    assert reply.text.startswith(
        "🔴 Changed: health error/cannot_parse_source → error/internal_error; "
        "status running → suspended"
    )


def test_resolved_reply_says_after_how_long_and_why() -> None:
    """The resolve reply is "✅ Resolved after 14m: reason"."""
    alert = make_alert(phase=Phase.RESOLVED, resolved_at=NOW, resolve_reason="job completed")
    reply = thread_reply(make_notification(alert, reason=Reason.RESOLVED), now=NOW)
    assert reply.text == "✅ Resolved after 14m: job completed"


def test_meta_alert_has_no_job_fields_or_buttons() -> None:
    """The Polaris-down alert says what is wrong, with no job facts and no buttons."""
    alert = make_alert(
        rule=META_RULE,
        condition=Condition(active=True, summary="Polaris unreachable since 10:02 (timeout)"),
    )
    n = make_notification(alert, mention="@here")
    message = alert_message(n, now=NOW)
    assert message == meta_message(n, now=NOW)
    assert (
        message.text == "🔴 FIRING Polaris API problem: Polaris unreachable since 10:02 (timeout)"
    )
    assert message.blocks[1]["text"]["text"].startswith("<!here> Polaris unreachable")
    assert not buttons(message) and not any("fields" in b for b in message.blocks)
    gone = dataclasses.replace(alert, phase=Phase.RESOLVED, resolved_at=NOW, resolve_reason="ok")
    resolved = resolved_message(make_notification(gone, reason=Reason.RESOLVED), now=NOW)
    assert resolved.blocks[0]["text"]["text"] == "✅ RESOLVED · Polaris API reachable again"
    assert "<!here>" not in all_texts(resolved)
    assert_slack_accepts(message)
    assert_slack_accepts(resolved)


# --- storms ----------------------------------------------------------------------------


def storm_alerts(count: int, **job: Any) -> list[AlertState]:
    alerts = []
    for i in range(count):
        facts = {"job_id": f"job-{i:04d}", "table": f"table_{i % 3}", **job}
        if i % 4 == 0:
            facts.setdefault("health_code", "internal_error")
        alerts.append(make_alert(job=facts, job_id=facts["job_id"]))
    return alerts


def test_storm_message_counts_breaks_down_and_lists_the_first_jobs() -> None:
    """One post: how many jobs, by code and table, the first ten, the rest in the thread."""
    rule = RuleFacts(name="job-unhealthy", kind="health", severity="critical")
    message = storm_message(
        rule, storm_alerts(200), resolved=0, total=200, now=NOW, mention="U0ONCALL"
    )
    assert message.blocks[0]["text"]["text"] == "🔴 job-unhealthy: 200 jobs firing"
    lead = message.blocks[1]["text"]["text"]
    assert lead.startswith("<@U0ONCALL> *200* jobs of project *default* matched")
    breakdown = message.blocks[2]["text"]["text"]
    assert "`cannot_parse_source` ×150 · `internal_error` ×50" in breakdown
    assert "`table_0` ×67" in breakdown
    listing = message.blocks[3]["text"]["text"]
    assert listing.count("\n• ") == 9 and "`job-0009`" in listing and "job-0010" not in listing
    assert "190 more: *full list in thread*" in listing
    assert not buttons(message)
    assert message.text.startswith("🔴 FIRING [default] job-unhealthy: 200 jobs firing")
    assert_slack_accepts(message)


def test_storm_message_counts_resolved_and_turns_resolved_when_all_are() -> None:
    """As incidents resolve it says "37 of 200 resolved"; all resolved, the header says so."""
    rule = RuleFacts(name="job-unhealthy", kind="health", severity="critical")
    alerts = storm_alerts(200)
    partial = storm_message(rule, alerts, resolved=37, total=200, now=NOW, mention="@here")
    assert partial.blocks[0]["text"]["text"] == "🔴 job-unhealthy: 163 of 200 jobs firing"
    assert "*37 of 200 resolved*" in partial.blocks[1]["text"]["text"]
    done = storm_message(rule, alerts, resolved=200, total=200, now=NOW, mention="@here")
    assert done.blocks[0]["text"]["text"] == "✅ RESOLVED · job-unhealthy: 200 jobs"
    assert done.text.startswith("✅ RESOLVED [default] job-unhealthy")
    assert "<!here>" not in all_texts(done)


def test_storm_list_replies_list_every_job_once_in_few_messages() -> None:
    """1,000 jobs fit in a handful of replies, each job on exactly one line."""
    alerts = storm_alerts(1000)
    replies = storm_list_replies(alerts, heading="job-unhealthy: all jobs")
    assert len(replies) <= 4
    text = "\n".join(all_texts(reply) for reply in replies)
    assert all(text.count(f"`job-{i:04d}`") == 1 for i in range(1000))
    spans = [reply.text.rsplit("(", 1)[1] for reply in replies]
    assert spans[0].startswith("1–") and spans[-1].endswith("–1000 of 1000)")
    for reply in replies:
        assert_slack_accepts(reply)
        assert length(reply.text) + sum(map(length, mrkdwn_texts(reply))) <= 32_000


def test_storm_list_of_hostile_alerts_stays_within_limits() -> None:
    """300 alerts with huge ids, tables and codes still pack into valid replies."""
    alerts = storm_alerts(
        300, table="<!channel>" + "t" * 300, health_code="c" * 500, health_message="m" * 10_000
    )
    alerts = [
        dataclasses.replace(a, job=dataclasses.replace(a.job, job_id="j" * 300)) for a in alerts
    ]
    replies = storm_list_replies(alerts, heading="h" * 5000)
    assert 1 <= len(replies) <= 4
    for reply in replies:
        assert_slack_accepts(reply)
        assert all("<!channel>" not in text for text in mrkdwn_texts(reply))
    rule = RuleFacts(name="r" * 300, kind="health")
    assert_slack_accepts(storm_message(rule, alerts, resolved=3, total=300, now=NOW, mention=None))


def test_resolved_members_are_ticked_off_and_struck_through_in_the_storm_post() -> None:
    """A resolved member's line gets a ✅ and is struck through; firing ones keep their dot."""
    alerts = storm_alerts(12)
    alerts[1] = dataclasses.replace(alerts[1], phase=Phase.RESOLVED)
    rule = RuleFacts(name="job-unhealthy", kind="health", severity="critical")
    message = storm_message(rule, alerts, resolved=1, total=12, now=NOW, mention=None)
    listing = message.blocks[3]["text"]["text"].splitlines()
    assert listing[1] == "✅ ~`job-0001` · table_1 · cannot_parse_source~"
    assert listing[0].startswith("• `job-0000`") and listing[2].startswith("• `job-0002`")
    assert_slack_accepts(message)


def test_storm_list_of_nothing_is_no_reply() -> None:
    """No alerts, no replies."""
    assert storm_list_replies([], heading="none") == []


# --- audit -----------------------------------------------------------------------------


def test_audit_line_for_a_done_action_names_user_job_and_table() -> None:
    """A successful change reads "✅ <@U…> paused job … (table …)"."""
    entry = AuditEntry(
        user="U123ABC", action="pause", target=JOB_ID, result="ok", at=NOW, table="events"
    )
    message = audit_message(entry)
    assert message.text == f"✅ <@U123ABC> paused job `{JOB_ID}` (table events)"
    assert_slack_accepts(message)


def test_audit_line_names_the_project_of_the_job() -> None:
    """A change to a job of project prod says so: "… (table events) in project prod"."""
    entry = AuditEntry(
        user="U123ABC",
        action="resume",
        target=JOB_ID,
        result="ok",
        at=NOW,
        table="events",
        project="prod",
    )
    text = audit_message(entry).text
    assert text == f"✅ <@U123ABC> resumed job `{JOB_ID}` (table events) in project prod"


def test_audit_line_for_a_failed_action_says_why() -> None:
    """A failure says what was tried and Polaris' answer."""
    entry = AuditEntry(
        user="U123ABC",
        action="cancel",
        target=JOB_ID,
        result="Polaris refused: job is already canceled",
        at=NOW,
    )
    assert audit_message(entry).text == (
        f"⚠️ <@U123ABC> tried to cancel job `{JOB_ID}` — failed: Polaris refused: "
        "job is already canceled"
    )


# --- hostile input ---------------------------------------------------------------------


def hostile_notification(reason: Reason = Reason.NEW) -> Notification:
    alert = make_alert(
        rule="r" * 300,
        job={
            "table": "<!channel> & <@U999> " + "t" * 300,
            "health_message": "<!here> " + "x" * 10_000,
            "health_code": "<!everyone>",
        },
        condition=Condition(
            active=True, summary="s" * 5000, metric="m" * 300, values=tuple(range(500))
        ),
    )
    rule = RuleFacts(name="r" * 300, kind="rising", description="d" * 5000, runbook="h" * 3000)
    return Notification(reason=reason, alert=alert, rule=rule, mention="@channel")


def every_message(n: Notification) -> list[SlackMessage]:
    resolved = dataclasses.replace(
        n, reason=Reason.RESOLVED, alert=dataclasses.replace(n.alert, phase=Phase.RESOLVED)
    )
    return [
        alert_message(n, now=NOW),
        resolved_message(resolved, now=NOW),
        meta_message(n, now=NOW),
        *(thread_reply(dataclasses.replace(n, reason=r), now=NOW) for r in Reason),
        storm_message(n.rule, [n.alert] * 300, resolved=1, total=300, now=NOW, mention=n.mention),
        *storm_list_replies([n.alert] * 300, heading=n.rule.name),
        audit_message(
            AuditEntry(
                user=n.alert.job.table or "",
                action="cancel",
                target=n.alert.job_id,
                result=n.alert.job.health_message,
                at=NOW,
                table=n.alert.job.table,
                extra={"why": n.alert.job.health_message},
            )
        ),
    ]


def test_hostile_input_is_clipped_and_escaped() -> None:
    """Huge names and messages are clipped with "…"; user text never pings anyone."""
    n = hostile_notification()
    message = alert_message(n, now=NOW)
    assert_slack_accepts(message)
    assert length(message.blocks[0]["text"]["text"]) == 150  # the emoji counts twice
    assert message.blocks[0]["text"]["text"].endswith("…")
    detail = next(b["text"]["text"] for b in message.blocks if "Health message" in str(b))
    assert detail.endswith("…```") and len(detail) < 1600
    for text in mrkdwn_texts(message):
        unpinged = text.removeprefix("<!channel> ")  # the rule's own mention
        for ping in ("<!here>", "<!channel>", "<!everyone>", "<@U999>"):
            assert ping not in unpinged
    assert "&lt;!channel&gt; &amp; &lt;@U999&gt;" in message.blocks[2]["fields"][1]["text"]
    for other in every_message(n):
        assert_slack_accepts(other)


def test_only_the_configured_mention_can_ping() -> None:
    """The rule's mention is the only mention in a message built from hostile input."""
    message = alert_message(hostile_notification(), now=NOW)
    pings = [t for t in mrkdwn_texts(message) if "<!" in t.replace("<!date^", "") or "<@" in t]
    assert len(pings) == 1 and pings[0].startswith("<!channel> ")


_ANY = st.text(max_size=400)
_STATUSES = st.sampled_from(["running", "idle", "pending", "suspended", "failed", "canceled"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    job_id=_ANY,
    table=st.none() | _ANY,
    health_message=st.text(max_size=12_000),
    rule=_ANY,
    code=st.none() | _ANY,
    summary=_ANY,
    status=_STATUSES | _ANY,
    job_type=st.sampled_from(["streaming", "batch"]) | _ANY,
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=60),
    mention=st.none() | _ANY,
)
def test_any_input_gives_messages_slack_accepts(
    job_id: str,
    table: str | None,
    health_message: str,
    rule: str,
    code: str | None,
    summary: str,
    status: str,
    job_type: str,
    values: list[float],
    mention: str | None,
) -> None:
    """Whatever the strings, every message kind passes Slack's limits and slack-sdk's models."""
    alert = make_alert(
        rule=rule,
        job={
            "job_id": job_id,
            "table": table,
            "health_message": health_message,
            "health_code": code,
            "execution_status": status,
            "type": job_type,
        },
        job_id=job_id,
        condition=Condition(active=True, summary=summary, metric=code, values=tuple(values)),
    )
    n = Notification(
        reason=Reason.NEW,
        alert=alert,
        rule=RuleFacts(name=rule, kind="health", description=summary, runbook=table),
        mention=mention,
    )
    for message in every_message(n):
        assert_slack_accepts(message)


# --- control characters ----------------------------------------------------------------

#: NUL, BEL, ESC (a terminal escape), DEL, a C1 control, the bidi overrides, isolates and
#: marks, and a lone surrogate: none of them is text a reader should get.
CONTROL = "\x00\x07\x1b[31m\x7f\x85\u202e\u202d\u2066\u2069\u200f\ud800"
_FORBIDDEN = set("\x00\x07\x1b\x7f\x85\u202e\u202d\u2066\u2069\u200f\ud800")


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def test_control_characters_from_polaris_never_reach_a_message() -> None:
    """Control characters, bidi overrides and lone surrogates in every field Polaris or a
    user fills are dropped (or replaced) in every message kind."""
    alert = make_alert(
        rule="rule" + CONTROL,
        job={
            "table": "evil" + CONTROL + "table",
            "health_message": "bad" + CONTROL + "row",
            "health_code": "code" + CONTROL,
            "type": "streaming" + CONTROL,
            "execution_status": "running" + CONTROL,
        },
        condition=Condition(active=True, summary="sum" + CONTROL, metric="m" + CONTROL),
    )
    rule = RuleFacts(
        name="rule" + CONTROL, kind="health", description=CONTROL, runbook="x" + CONTROL
    )
    n = Notification(reason=Reason.NEW, alert=alert, rule=rule, mention="team" + CONTROL)
    for message in every_message(n):
        texts = list(strings([message.text, message.blocks]))
        assert not any(_FORBIDDEN & set(text) for text in texts), texts
        assert_slack_accepts(message)
    shown = all_texts(alert_message(n, now=NOW))
    # What is left of the text around them is kept; the lone surrogate shows as "�".
    assert "evil[31m\ufffdtable" in shown and "bad[31m\ufffdrow" in shown


# --- the text module --------------------------------------------------------------------


def test_clip_counts_utf16_units_and_never_splits_an_entity_or_a_token() -> None:
    """An emoji counts twice; a cut never leaves "&am" or half a "<…>" token behind."""
    assert tx.clip("😀" * 10, 8) == "😀😀😀…"
    assert length(tx.clip("😀" * 10, 8)) <= 8
    assert tx.clip("a" * 8 + "&amp;b", 11) == "a" * 8 + "…"
    token = tx.date_token(NOW)
    assert tx.clip(f"seen {token} ok", 12) == "seen…"
    assert tx.esc("<!here> & co", 9) == "&lt;!her…"
    assert tx.esc("a & b", 6) == "a…"


def test_code_span_cannot_be_broken_out_of() -> None:
    """Backticks and newlines inside an inline code span would end it: they are replaced."""
    assert tx.code("a`b\nc<@U1>", 100) == "`aˋb c&lt;@U1&gt;`"
    assert length(tx.code("x" * 500, 50)) <= 50


def test_finish_keeps_a_message_within_what_slack_sdk_does_not_check() -> None:
    """60 blocks, a 5,000-character field and 60,000 characters in all are cut to 50
    blocks, 2,000 per field and under 40,000 in total, saying what was left out."""
    many = [SectionBlock(text=tx.mrkdwn(f"part {i}")) for i in range(60)]
    text, blocks = tx.finish("fallback", many)
    assert len(blocks) == 50 and "11 more part(s) left out" in json.dumps(blocks)
    assert check_message(text, blocks) is None
    wide = SectionBlock(fields=[MarkdownTextObject(text="f" * 5000)])
    _, [field_block] = tx.finish("x", [wide])
    assert length(field_block["fields"][0]["text"]) == 2000
    heavy = [SectionBlock(text=tx.mrkdwn("h" * 2900)) for _ in range(20)]
    text, blocks = tx.finish("t" * 10_000, heavy)
    assert tx.total_length(text, blocks) < MAX_MESSAGE_TEXT
    assert check_message(text, blocks) is None and "left out" in json.dumps(blocks)


# --- projects --------------------------------------------------------------------------


def test_every_alert_message_names_its_project() -> None:
    """An alert of project prod says [prod] in the fallback and a Project field in the
    message; so do its resolve edit and a storm of its jobs."""
    alert = make_alert(project="prod")
    message = alert_message(make_notification(alert), now=NOW)
    assert message.text.startswith("🔴 FIRING [prod] job-unhealthy — job ")
    assert message.blocks[2]["fields"][-1]["text"] == "*Project*\nprod"
    gone = dataclasses.replace(alert, phase=Phase.RESOLVED, resolved_at=NOW, resolve_reason="ok")
    resolved = resolved_message(make_notification(gone, reason=Reason.RESOLVED), now=NOW)
    assert resolved.text.startswith("✅ RESOLVED [prod] job-unhealthy — job ")
    assert resolved.blocks[2]["fields"][-1]["text"] == "*Project*\nprod"
    rule = RuleFacts(name="job-unhealthy", kind="health", severity="critical")
    storm = storm_message(rule, [alert] * 12, resolved=0, total=12, now=NOW, mention=None)
    assert storm.text.startswith("🔴 FIRING [prod] job-unhealthy: 12 jobs firing")
    assert "*12* jobs of project *prod* matched" in storm.blocks[1]["text"]["text"]
    for each in (message, resolved, storm):
        assert_slack_accepts(each)


def test_the_resolve_of_a_meta_alert_names_its_project() -> None:
    """ "Polaris reachable again" says which project's Polaris: the firing summary named it
    already (``[prod] cannot reach…``), the resolve must too."""
    alert = make_alert(
        rule=META_RULE,
        project="prod",
        phase=Phase.RESOLVED,
        resolved_at=NOW,
        resolve_reason="Polaris answers again",
        condition=Condition(active=True, summary="[prod] cannot reach Polaris: timeout"),
    )
    resolved = resolved_message(make_notification(alert, reason=Reason.RESOLVED), now=NOW)
    assert resolved.text.startswith("✅ RESOLVED [prod] Polaris API reachable again after")
    assert "project *prod*" in resolved.blocks[1]["text"]["text"]
    assert_slack_accepts(resolved)


def test_a_hostile_project_name_from_the_store_stays_escaped_and_short() -> None:
    """A project name that reached the store some other way cannot ping or overflow."""
    alert = make_alert(project="<!channel>" + "p" * 5000)
    message = alert_message(make_notification(alert), now=NOW)
    assert "<!channel>" not in "".join(mrkdwn_texts(message))
    assert_slack_accepts(message)


# --- small pieces ----------------------------------------------------------------------


def test_sparkline_scales_between_lowest_and_highest() -> None:
    """Lowest value is the lowest bar, highest the highest, in between in proportion."""
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▁▁▁"
    assert sparkline([1, math.nan, 2]) == "▁ █"
    assert sparkline([-1e308, 1e308]) == "▁█"
    assert sparkline([]) == ""


@pytest.mark.parametrize(
    ("raw", "mention"),
    [
        ("U0123ABCD", "<@U0123ABCD>"),
        ("@S0ONCALL", "<!subteam^S0ONCALL>"),
        ("@here", "<!here>"),
        ("channel", "<!channel>"),
        ("<!subteam^S1|@data-oncall>", "<!subteam^S1|@data-oncall>"),
        ("@data-oncall <team>", "@data-oncall &lt;team&gt;"),
        ("  ", None),
        (None, None),
    ],
)
def test_mentions_are_written_as_slack_syntax(raw: str | None, mention: str | None) -> None:
    """Ids and @here/@channel become Slack mentions; other text is shown, escaped."""
    assert format_mention(raw) == mention
