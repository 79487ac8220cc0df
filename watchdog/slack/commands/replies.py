"""What the bot answers in Slack: the :class:`Reply` value and the words and blocks of each answer.

Pure functions from domain values (jobs, metrics, alerts, silences, Polaris errors) to
replies, kept apart from :mod:`watchdog.slack.commands.service` so the service reads as control
flow and this module as copy. Everything that came from outside (table names, Polaris'
messages, reasons users typed) is escaped for Slack's mrkdwn: a silence reason of
``<!channel>`` must not ping a channel.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from watchdog.domain.alerts import AlertState
from watchdog.polaris.errors import (
    PolarisAuthError,
    PolarisBadRequestError,
    PolarisError,
    PolarisMalformedError,
    PolarisNotFoundError,
    PolarisRateLimitedError,
    PolarisUnavailableError,
)
from watchdog.polaris.models import KNOWN_METRICS, Job
from watchdog.polaris.models import Metrics as JobMetrics
from watchdog.rules.durations import format_duration
from watchdog.slack.commands import parse
from watchdog.slack.commands.parse import COMMAND_NAMES, USAGE, Command
from watchdog.store import Silence

MAX_JOB_LINES = 20
MAX_CANDIDATES = 10
MAX_BLOCKS = 50

_HEALTH_ICON = {"ok": "🟢", "warn": "🟡", "error": "🔴"}


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer to Slack: an ack body, or a message posted to a ``response_url``."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    ephemeral: bool = True
    replace_original: bool = False

    def to_json(self) -> dict[str, Any]:
        # response_type is always explicit: Slack's default has changed meaning before.
        body: dict[str, Any] = {
            "response_type": "ephemeral" if self.ephemeral else "in_channel",
            "text": self.text,
        }
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.replace_original:
            body["replace_original"] = True
        return body


def esc(text: object) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    return f"<@{esc(user_id)}>"


def when(at: float) -> str:
    """A Slack date token: shown in the reader's timezone, with a UTC fallback."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{fallback}>"


def clip(text: str, limit: int = 100) -> str:
    """Text from outside cut to ``limit`` characters, so no reply outgrows Slack's limits."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code(text: object) -> str:
    # A backtick inside inline code would end it early.
    return f"`{esc(text).replace('`', 'ˋ')}`"


# ---- immediate answers ----------------------------------------------------------------


HELP = Reply(USAGE)
UNAVAILABLE = Reply("⏳ The bot is restarting; please try again in a minute.")
BAD_RESPONSE_URL = Reply("⚠️ This request cannot be answered: its response_url is not Slack's.")
CRASHED = Reply("💥 Something went wrong on the bot's side; it has been logged.")


def usage_reply(reason: str) -> Reply:
    return Reply(f"⚠️ {esc(reason)}\n\n{USAGE}")


def refusal(command: str, operators: Sequence[str]) -> Reply:
    if not operators:
        who = "nobody can yet: no operators are listed in the rules file (`[slack] operators`)"
    else:
        who = "only " + ", ".join(mention(user) for user in operators) + " can"
    return Reply(f"🚫 Sorry, you cannot {esc(command)} here: {who}. Nothing was changed.")


def ack(command: Command) -> Reply:
    """The "⏳" line that acknowledges work going on in the background."""
    return Reply(f"⏳ {_doing(command)}")


def _doing(command: Command) -> str:
    match command:
        case parse.Pause(job=ref) | parse.Resume(job=ref) | parse.Cancel(job=ref):
            verb = COMMAND_NAMES[type(command)]
            present = {"pause": "Pausing", "resume": "Resuming", "cancel": "Looking up"}[verb]
            return f"{present} {code(ref.text)}…"
        case parse.Status(job=ref) | parse.Metrics(job=ref):
            return f"Asking Polaris about {code(ref.text)}…"
        case parse.ListJobs():
            return "Listing jobs…"
        case parse.Silence(target=target, duration=duration):
            return f"Silencing {code(target)} for {format_duration(duration)}…"
        case parse.Unsilence(id=silence_id):
            return f"Ending silence {code(silence_id)}…"
    return "Working on it…"


# ---- errors in plain words ------------------------------------------------------------
# Plain text, not yet escaped: a reason goes both into a reply (escaped there, with
# esc()) and into an audit entry (escaped by the audit message).


def quoted(text: str) -> str:
    """Inline code in plain text (escaping is left to whoever renders it)."""
    return f"`{text.replace('`', 'ˋ')}`"


def explain(error: PolarisError, job_id: str | None = None) -> str:
    """A Polaris failure as a sentence for a user: no traceback, no key, no URL."""
    if isinstance(error, PolarisNotFoundError):
        return f"job {quoted(job_id)} not found" if job_id else "not found in Polaris"
    if isinstance(error, PolarisBadRequestError):
        return f"Polaris refused: {error}"
    if isinstance(error, PolarisAuthError):
        if error.status == 401:
            return "the bot's API key was rejected by Polaris (wrong or revoked)"
        return "the bot's API key lacks permission (ManageIngestionJobs)"
    if isinstance(error, PolarisUnavailableError | PolarisRateLimitedError):
        return "Polaris is not answering right now, try again"
    if isinstance(error, PolarisMalformedError):
        return "Polaris answered something the bot cannot read"
    return "the request to Polaris failed"


def no_match(prefix: str) -> str:
    return f"no job starts with {quoted(prefix)}"


def ambiguous(prefix: str, candidates: Sequence[tuple[str, str | None]]) -> str:
    shown = ", ".join(
        f"{quoted(job_id)} ({clip(table or '?')})" for job_id, table in candidates[:MAX_CANDIDATES]
    )
    more = len(candidates) - MAX_CANDIDATES
    tail = f" and {more} more" if more > 0 else ""
    return f"ambiguous: {len(candidates)} jobs start with {quoted(prefix)} — {shown}{tail}"


def already_over(job: Job) -> str:
    return f"job {quoted(job.id)} is already {job.execution_status}: nothing to cancel"


# ---- jobs, status, metrics ------------------------------------------------------------


def _health(job: Job) -> str:
    status = job.health_status
    icon = _HEALTH_ICON.get(status or "", "⚪")
    text = f"{icon} {status or 'unknown'}"
    if job.health_code:
        text += f" {code(job.health_code)}"
    return text


def job_line(job: Job) -> str:
    return (
        f"{code(job.id[:8])} {esc(clip(job.table or '(no table)'))} · {esc(clip(job.type, 40))} · "
        f"{esc(clip(job.execution_status, 40))} · {_health(job)}"
    )


def jobs_reply(jobs: Sequence[Job], unreadable: int, filters: str) -> Reply:
    heading = f"*{len(jobs)} job{'s' if len(jobs) != 1 else ''}*" + (
        f" ({esc(filters)})" if filters else ""
    )
    if not jobs:
        return Reply(f"{heading}: none match.")
    lines = [heading] + [job_line(job) for job in jobs[:MAX_JOB_LINES]]
    if len(jobs) > MAX_JOB_LINES:
        lines.append(f"… and {len(jobs) - MAX_JOB_LINES} more (narrow with health=… type=…)")
    if unreadable:
        lines.append(f"({unreadable} more listed by Polaris in a shape the bot cannot read)")
    return Reply("\n".join(lines))


def status_reply(job: Job) -> Reply:
    execution = esc(job.execution_status)
    if job.desired_execution_status and job.desired_execution_status != job.execution_status:
        execution += f" (→ {esc(job.desired_execution_status)})"
    lines = [
        f"*Job* {code(job.id)}",
        f"• table: {esc(clip(job.table or '(none)', 500))} · type: {esc(job.type)}",
        f"• execution: {execution}",
        f"• health: {_health(job)}",
    ]
    if job.health_detail:
        lines.append(f"• message: {esc(job.health_detail[:500])}")
    if job.last_updated_timestamp:
        lines.append(f"• last updated: {esc(job.last_updated_timestamp)}")
    return Reply("\n".join(lines))


def metrics_reply(job_id: str, metrics: JobMetrics) -> Reply:
    if not metrics.totals:
        return Reply(f"*Metrics of* {code(job_id)}: none reported yet.")
    known = [name for name in KNOWN_METRICS if name in metrics.totals]
    names = known + sorted(set(metrics.totals) - set(known))
    lines = [f"*Metrics of* {code(job_id)} (totals)"]
    lines += [f"• {esc(name)}: {metrics.totals[name]:,.0f}" for name in names]
    return Reply("\n".join(lines))


# ---- alerts and silences --------------------------------------------------------------


def _silence_line(silence: Silence) -> str:
    reason = f" — {esc(silence.reason)}" if silence.reason else ""
    return (
        f"{code(silence.id)} {silence.target_kind} {code(silence.target)} until "
        f"{when(silence.until)}, by {mention(silence.created_by)}{reason}"
    )


def silences_reply(silences: Sequence[Silence]) -> Reply:
    if not silences:
        return Reply("🔔 No active silences.")
    lines = ["*Active silences*"] + [_silence_line(s) for s in silences[:MAX_JOB_LINES]]
    if len(silences) > MAX_JOB_LINES:
        lines.append(f"… and {len(silences) - MAX_JOB_LINES} more")
    return Reply("\n".join(lines))


def alerts_reply(firing: Iterable[AlertState], silences: Sequence[Silence]) -> Reply:
    by_rule: dict[str, list[AlertState]] = defaultdict(list)
    for alert in firing:
        by_rule[alert.rule].append(alert)
    lines: list[str] = []
    if not by_rule:
        lines.append("✅ No alerts firing.")
    for rule in sorted(by_rule):
        alerts = by_rule[rule]
        jobs = ", ".join(
            f"{code(a.job_id[:8])} {esc(clip(a.job.table or ''))}".rstrip() for a in alerts[:10]
        )
        more = f" and {len(alerts) - 10} more" if len(alerts) > 10 else ""
        lines.append(
            f"🚨 *{esc(rule)}* ({esc(alerts[0].severity)}) — {len(alerts)} firing: {jobs}{more}"
        )
    if silences:
        lines.append("*Active silences*")
        lines += [_silence_line(s) for s in silences[:MAX_JOB_LINES]]
    return Reply("\n".join(lines))


def silenced_reply(silence: Silence) -> Reply:
    return Reply(
        f"🔕 Silenced {silence.target_kind} {code(silence.target)} for "
        f"{format_duration(silence.until - silence.created_at)} (until {when(silence.until)}). "
        f"Id {code(silence.id)}: `unsilence {esc(silence.id)}` ends it."
    )


def silence_extra(silence: Silence) -> dict[str, str]:
    return {
        "silence_id": silence.id,
        "kind": silence.target_kind,
        "duration": format_duration(silence.until - silence.created_at),
        "until": f"{silence.until:.0f}",
    }
