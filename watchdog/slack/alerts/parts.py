"""The pieces alert messages are made of: severity marks, sparklines, mentions, spans of
time, the job's fields, its buttons, the one-line summary of a job.

Each piece escapes and clips what it takes from Polaris or a user and stays within a
known size, so :mod:`watchdog.slack.alerts.messages` can add pieces up without breaking a
Block Kit limit. All pure functions; time comes in as ``now``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from watchdog.domain.alerts import AlertState, JobFacts, Phase, RuleFacts
from watchdog.domain.names import SLACK_USER_ID
from watchdog.polaris.models import TERMINAL_STATUSES
from watchdog.rules.durations import format_duration
from watchdog.slack.actions import MAX_VALUE, Action, ButtonValue, encode_value
from watchdog.slack.alerts import blocks as bk

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
    if text.startswith("<") and text.endswith(">") and bk.length(text) <= 200:
        return text  # already Slack syntax, written by whoever owns the rules file
    bare = text.lstrip("@")
    if bare.lower() in ("here", "channel", "everyone"):
        return f"<!{bare.lower()}>"
    if SLACK_USER_ID.fullmatch(bare):
        return f"<@{bare}>"
    if _GROUP_ID.fullmatch(bare):
        return f"<!subteam^{bare}>"
    return bk.safe(text, 200)


def user(user_id: str) -> str:
    """A Slack user id as a mention; anything else (a CLI user) as escaped text."""
    return f"<@{user_id}>" if SLACK_USER_ID.fullmatch(user_id) else bk.safe(user_id, 100)


def number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e15:
        return f"{value:.3g}"
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
    return bk.safe(alert.resolve_reason or "the condition no longer holds", 500)


def names(rule: str, job: JobFacts) -> str:
    """Rule, job and table for a fallback text, escaped and clipped (≤ 500)."""
    table = f"on table {bk.safe(job.table, 200)}" if job.table else "(no table)"
    return f"{bk.safe(rule, 150)} — job {bk.safe(job.job_id, 100)} {table}"


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


def job_fields(job: JobFacts) -> bk.Block:
    health = bk.safe(job.health_status or "unknown", 100)
    if job.health_code:
        health += f" · {bk.code(job.health_code, 200)}"
    table = bk.code(job.table, 300) if job.table else "_none_"
    return bk.fields(
        [
            f"*Job*\n{bk.code(job.job_id, 300)}",
            f"*Table*\n{table}",
            f"*Type*\n{bk.safe(job.type, 100)}",
            f"*Execution status*\n{bk.safe(job.execution_status, 100)}",
            f"*Health*\n{health}",
        ]
    )


def metric_line(alert: AlertState) -> str:
    """Metric name, sparkline of recent values, increase over the window (≤ 400)."""
    cond = alert.condition
    parts = [f"*{bk.safe(cond.metric or '', 100)}*"]
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
        parts.append(bk.safe(rule.description.strip(), 1000))
    if rule.runbook:
        url = rule.runbook.strip()
        if _URL.fullmatch(url) and bk.length(url) <= 1500:
            parts.append(f"📖 <{url.replace('&', '&amp;')}|Runbook>")
        else:
            parts.append(f"📖 Runbook: {bk.safe(url, 500)}")
    return " · ".join(parts) or None


def buttons(alert: AlertState) -> list[dict[str, Any]]:
    """Pause or Resume as the job's state allows, Cancel unless terminal, Silence 1h."""
    job = alert.job
    value = encode_value(ButtonValue(job.job_id, alert.rule, alert.incident_id, alert.project))
    if bk.length(value) > MAX_VALUE:
        return []  # a job id this long is not Polaris': offer no action on it
    found = []
    if job.execution_status not in TERMINAL_STATUSES:
        if job.type == "streaming" and job.execution_status in _PAUSABLE:
            found.append(bk.button("Pause", Action.PAUSE, value))
        elif job.execution_status == "suspended":
            found.append(bk.button("Resume", Action.RESUME, value, style="primary"))
        table = f"table {bk.clip(job.table, 100)}" if job.table else "no table"
        dialog = bk.confirm(
            "Cancel job?",
            f"Cancel job {bk.clip(job.job_id, 80)} ({table})? Polaris stops it for good; "
            "a canceled job cannot be resumed.",
            "Cancel job",
            "Keep it",
            danger=True,
        )
        found.append(
            bk.button("Cancel", Action.CANCEL, value, style="danger", confirm_dialog=dialog)
        )
    found.append(bk.button("Silence 1h", Action.SILENCE, value))
    return found


def timeline(alert: AlertState, now: float) -> str:
    parts = [f"First seen {bk.date_token(alert.since)} ({span(now - alert.since)} ago)"]
    if alert.fired_at is not None:
        parts.append(f"fired {bk.date_token(alert.fired_at)}")
    parts.append(f"last evaluated {bk.date_token(alert.last_eval)}")
    return " · ".join(parts)


def changes(alert: AlertState) -> str:
    """What changed since the last notification: health and execution status (≤ 600)."""
    old, new = alert.notified_signature, alert.job.signature

    def health(sig: tuple[str | None, str | None, str]) -> str:
        return bk.safe("/".join(part for part in sig[:2] if part) or "unknown", 150)

    if old is None or tuple(old) == new:
        return f"now health {health(new)}, status {bk.safe(new[2], 100)}"
    parts = []
    if tuple(old[:2]) != new[:2]:
        parts.append(f"health {health(old)} → {health(new)}")
    if old[2] != new[2]:
        parts.append(f"status {bk.safe(old[2], 100)} → {bk.safe(new[2], 100)}")
    return "; ".join(parts)


def job_line(alert: AlertState) -> str:
    """One job of a storm: id, table and what is wrong (≤ 280)."""
    job = alert.job
    mark = f"{RESOLVED_MARK} " if alert.phase is Phase.RESOLVED else "• "
    table = bk.safe(job.table, 80) if job.table else "_no table_"
    what = job.health_code if job.health_code and not alert.condition.metric else gist(alert)
    return f"{mark}{bk.code(job.job_id, 64)} · {table} · {bk.safe(what, 120)}"


def breakdown(alerts: Sequence[AlertState]) -> str:
    """Counts by health code and by table, the top five of each (≤ 1000)."""
    codes = Counter(a.job.health_code or a.condition.metric or "no code" for a in alerts)
    tables = Counter(a.job.table or "no table" for a in alerts)

    def top(counts: Counter[str]) -> str:
        shown = [f"{bk.code(name, 60)} ×{count}" for name, count in counts.most_common(5)]
        rest = len(counts) - len(shown)
        return " · ".join(shown) + (f" · …{rest} more" if rest > 0 else "")

    return f"*By health code:* {top(codes)}\n*By table:* {top(tables)}"
