"""The pieces alert messages are made of: severity marks, sparklines, mentions, spans of
time, the job's fields, its buttons, the one-line summary of a job.

Each piece escapes and clips what it takes from Polaris or a user (with
:mod:`watchdog.slack.text`) and stays within a known size, so
:mod:`watchdog.slack.alerts.messages` can add pieces up without breaking a Block Kit
limit. Structure is slack-sdk's Block Kit models. All pure functions; time comes in as
``now``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from slack_sdk.models.blocks import ButtonElement, ConfirmObject, SectionBlock

from watchdog.domain.alerts import AlertState, JobFacts, Phase, RuleFacts
from watchdog.domain.names import SLACK_USER_ID
from watchdog.polaris.models import TERMINAL_STATUSES
from watchdog.rules.durations import format_duration
from watchdog.rules.windows import ABSURD
from watchdog.slack import text as tx
from watchdog.slack.actions import MAX_VALUE, Action, ButtonValue, encode_value

_MARKERS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_MARK = "✅"
_BARS = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 40  # more points than this no longer fit a phone screen
_PAUSABLE = frozenset({"running", "idle", "pending"})
_GROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
_URL = re.compile(r"https?://[^\s<>|]+")


def marker(severity: str) -> str:
    return _MARKERS.get(severity, "⚪")


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled between the lowest and highest; a gap for NaN or infinity."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    bars = []
    for value in values:
        if not math.isfinite(value):
            bars.append(" ")
        elif high == low:
            bars.append(_BARS[0])
        else:
            # Halving first keeps the span finite even for values near the float limits.
            ratio = (value / 2 - low / 2) / (high / 2 - low / 2)
            bars.append(_BARS[min(len(_BARS) - 1, int(ratio * len(_BARS)))])
    return "".join(bars)


def format_mention(raw: str | None) -> str | None:
    """A rule's ``mention`` as Slack syntax: ids and @here/@channel become real mentions."""
    text = (raw or "").strip()
    if not text:
        return None
    if text.startswith("<") and text.endswith(">") and tx.length(text) <= 200:
        return text  # already Slack syntax, written by whoever owns the rules file
    bare = text.lstrip("@")
    if bare.lower() in ("here", "channel", "everyone"):
        return f"<!{bare.lower()}>"
    if SLACK_USER_ID.fullmatch(bare):
        return f"<@{bare}>"
    if _GROUP_ID.fullmatch(bare):
        return f"<!subteam^{bare}>"
    return tx.esc(text, 200)


def user(user_id: str) -> str:
    """A Slack user id as a mention; anything else (a CLI user) as escaped text."""
    return f"<@{user_id}>" if SLACK_USER_ID.fullmatch(user_id) else tx.esc(user_id, 100)


def number(value: float) -> str:
    """A value of a metric line: whole numbers with thousands separators, else two
    decimals; as :func:`watchdog.rules.windows.number`, never inf, nan or 1e+308."""
    if not math.isfinite(value):
        return "n/a"
    if abs(value) > ABSURD:
        return "out of range"
    return f"{int(value):,}" if value == int(value) else f"{value:,.2f}"


def span(seconds: float) -> str:
    """A coarse human duration: seconds under a minute, minutes under a day, else hours."""
    if not math.isfinite(seconds):
        return "an unknown time"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return format_duration(round(seconds))
    if seconds < 86_400:
        return format_duration(round(seconds / 60) * 60)
    return format_duration(round(seconds / 3600) * 3600)


def fired_for(alert: AlertState, now: float) -> str:
    start = alert.fired_at if alert.fired_at is not None else alert.since
    end = alert.resolved_at if alert.resolved_at is not None else now
    return span(end - start)


def resolve_reason(alert: AlertState) -> str:
    return tx.esc(alert.resolve_reason or "the condition no longer holds", 500)


def project_tag(project: str) -> str:
    """``[prod]``: the project an alert is about, for a fallback text (≤ 42)."""
    return f"[{tx.esc(project, 40)}]"


def names(rule: str, job: JobFacts, project: str) -> str:
    """Project, rule, job and table for a fallback text, escaped and clipped (≤ 550)."""
    table = f"on table {tx.esc(job.table, 200)}" if job.table else "(no table)"
    return f"{project_tag(project)} {tx.esc(rule, 150)} — job {tx.esc(job.job_id, 100)} {table}"


def summary(alert: AlertState) -> str:
    """The rule's sentence about the job (raw: escape it where it is used)."""
    text = alert.condition.summary.strip()
    if text:
        return text
    job = alert.job
    health = "/".join(part for part in (job.health_status, job.health_code) if part)
    return f"{alert.rule} holds for job {job.job_id}" + (f" (health {health})" if health else "")


def gist(alert: AlertState) -> str:
    """The few words a notification preview has room for (raw)."""
    if alert.condition.metric or not alert.job.health_code:
        return alert.condition.summary.strip() or alert.job.health_status or alert.rule
    return alert.job.health_code


def job_fields(job: JobFacts, project: str) -> SectionBlock:
    """The job's facts as a section's fields, its project last (so the usual five keep
    their places)."""
    health = tx.esc(job.health_status or "unknown", 100)
    if job.health_code:
        health += f" · {tx.code(job.health_code, 200)}"
    table = tx.code(job.table, 300) if job.table else "_none_"
    items = [
        f"*Job*\n{tx.code(job.job_id, 300)}",
        f"*Table*\n{table}",
        f"*Type*\n{tx.esc(job.type, 100)}",
        f"*Execution status*\n{tx.esc(job.execution_status, 100)}",
        f"*Health*\n{health}",
        f"*Project*\n{tx.esc(project, 100)}",
    ]
    return SectionBlock(fields=[tx.mrkdwn(item, tx.MAX_FIELD_TEXT) for item in items])


def metric_line(alert: AlertState) -> str:
    """Metric name, sparkline of recent values, increase over the window (≤ 400)."""
    cond = alert.condition
    parts = [f"*{tx.esc(cond.metric or '', 100)}*"]
    values = cond.values[-SPARK_POINTS:]
    if values:
        spark = f"`{sparkline(values)}`"
        parts.append(f"{spark} {number(values[0])} → {number(values[-1])}")
    if cond.increase is not None:
        sign = "+" if cond.increase >= 0 else ""
        parts.append(f"*{sign}{number(cond.increase)}* over the window")
    if cond.value is not None:
        parts.append(f"value {number(cond.value)}")
    if cond.threshold is not None:
        parts.append(f"threshold {number(cond.threshold)}")
    return " · ".join(parts)


def rule_info(rule: RuleFacts) -> str | None:
    """The rule's description and runbook link, if it has them (≤ 2600)."""
    parts = []
    if rule.description and rule.description.strip():
        parts.append(tx.esc(rule.description.strip(), 1000))
    if rule.runbook:
        url = rule.runbook.strip()
        if _URL.fullmatch(url) and tx.length(url) <= 1500:
            parts.append(f"📖 <{url.replace('&', '&amp;')}|Runbook>")
        else:
            parts.append(f"📖 Runbook: {tx.esc(url, 500)}")
    return " · ".join(parts) or None


#: What a successful click makes of the job, for the buttons offered after it.
_STATUS_AFTER = {Action.PAUSE: "suspended", Action.RESUME: "running", Action.CANCEL: "canceled"}


def buttons(alert: AlertState, after: Action | None = None) -> list[ButtonElement]:
    """Acknowledge (or Unacknowledge), Pause or Resume as the job's state allows, Cancel
    unless terminal, Silence 1h.

    ``after`` is a click that just succeeded: a paused job offers Resume, a canceled one
    no job buttons, a silenced alert no second Silence. Whether the incident is
    acknowledged is the alert's own word (the redraw after a click reads the store).
    """
    job = alert.job
    value = encode_value(ButtonValue(job.job_id, alert.rule, alert.incident_id, alert.project))
    if tx.length(value) > MAX_VALUE:
        return []  # a job id this long is not Polaris': offer no action on it
    status = _STATUS_AFTER.get(after, job.execution_status) if after else job.execution_status
    found = []
    if alert.acked_by is None:
        found.append(_button("Acknowledge", Action.ACK, value, style="primary"))
    else:
        found.append(_button("Unacknowledge", Action.UNACK, value))
    if status not in TERMINAL_STATUSES:
        if job.type == "streaming" and status in _PAUSABLE:
            found.append(_button("Pause", Action.PAUSE, value))
        elif status == "suspended":
            found.append(_button("Resume", Action.RESUME, value, style="primary"))
        table = f"table {tx.clip(job.table, 100)}" if job.table else "no table"
        dialog = ConfirmObject(
            title=tx.plain("Cancel job?", tx.MAX_CONFIRM_TITLE),
            text=tx.plain(
                f"Cancel job {tx.clip(job.job_id, 80)} ({table})? Polaris stops it for good; "
                "a canceled job cannot be resumed.",
                tx.MAX_CONFIRM_TEXT,
            ),
            confirm=tx.plain("Cancel job", tx.MAX_CONFIRM_BUTTON),
            deny=tx.plain("Keep it", tx.MAX_CONFIRM_BUTTON),
            style="danger",
        )
        found.append(_button("Cancel", Action.CANCEL, value, style="danger", confirm=dialog))
    if after is not Action.SILENCE:
        found.append(_button("Silence 1h", Action.SILENCE, value))
    return found


def _button(
    label: str,
    action: Action,
    value: str,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=tx.plain(label, tx.MAX_BUTTON_TEXT),
        action_id=action.value,
        value=value,
        style=style,
        confirm=confirm,
    )


def acknowledged(alert: AlertState) -> str | None:
    """The line "👀 Acknowledged by @ann · 10:04" while someone owns the incident."""
    if alert.acked_by is None:
        return None
    at = f" · {tx.date_token(alert.acked_at)}" if alert.acked_at is not None else ""
    return f"👀 Acknowledged by {user(alert.acked_by)}{at}"


def timeline(alert: AlertState, now: float) -> str:
    parts = [f"First seen {tx.date_token(alert.since)} ({span(now - alert.since)} ago)"]
    if alert.fired_at is not None:
        parts.append(f"fired {tx.date_token(alert.fired_at)}")
    parts.append(f"last evaluated {tx.date_token(alert.last_eval)}")
    return " · ".join(parts)


def changes(alert: AlertState) -> str:
    """What changed since the last notification: health and execution status (≤ 600)."""
    old, new = alert.notified_signature, alert.job.signature

    def health(sig: tuple[str | None, str | None, str]) -> str:
        return tx.esc("/".join(part for part in sig[:2] if part) or "unknown", 150)

    if old is None or tuple(old) == new:
        return f"now health {health(new)}, status {tx.esc(new[2], 100)}"
    parts = []
    if tuple(old[:2]) != new[:2]:
        parts.append(f"health {health(old)} → {health(new)}")
    if old[2] != new[2]:
        parts.append(f"status {tx.esc(old[2], 100)} → {tx.esc(new[2], 100)}")
    return "; ".join(parts)


def job_line(alert: AlertState) -> str:
    """One job of a storm: id, table and what is wrong (≤ 280); ticked off and struck
    through once it has resolved."""
    job = alert.job
    table = tx.esc(job.table.replace("~", "-"), 80) if job.table else "_no table_"
    what = job.health_code if job.health_code and not alert.condition.metric else gist(alert)
    line = f"{tx.code(job.job_id, 64)} · {table} · {tx.esc(what.replace('~', '-'), 120)}"
    if alert.phase is Phase.RESOLVED:
        return f"{RESOLVED_MARK} ~{line}~"
    return f"• {line}"


def breakdown(alerts: Sequence[AlertState]) -> str:
    """Counts by health code and by table, the top five of each (≤ 1000)."""
    codes = Counter(a.job.health_code or a.condition.metric or "no code" for a in alerts)
    tables = Counter(a.job.table or "no table" for a in alerts)

    def top(counts: Counter[str]) -> str:
        shown = [f"{tx.code(name, 60)} ×{count}" for name, count in counts.most_common(5)]
        rest = len(counts) - len(shown)
        return " · ".join(shown) + (f" · …{rest} more" if rest > 0 else "")

    return f"*By health code:* {top(codes)}\n*By table:* {top(tables)}"
