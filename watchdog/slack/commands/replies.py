"""What the bot answers in Slack: the :class:`Reply` value and the words and blocks of each answer.

Pure functions from domain values (jobs, metrics, alerts, silences, Polaris errors) to
replies, kept apart from :mod:`watchdog.slack.commands.service` so the service reads as control
flow and this module as copy. Everything that came from outside (table names, Polaris'
messages, reasons users typed) is cleaned and escaped for Slack's mrkdwn with
:mod:`watchdog.slack.text`: a silence reason of ``<!channel>`` must not ping a channel.
Whatever Polaris returns, a reply stays within Slack's limits: each line is clipped,
each list is cut to a budget and says how many items it left out, and
:meth:`Reply.to_json` holds the whole to a message's limits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import Block

from watchdog.domain.alerts import AlertState
from watchdog.polaris.errors import (
    PolarisAuthError,
    PolarisBadRequestError,
    PolarisError,
    PolarisMalformedError,
    PolarisNotFoundError,
    PolarisRateLimitedError,
    PolarisUnavailableError,
    is_job_id,
)
from watchdog.polaris.models import KNOWN_METRICS, Job
from watchdog.polaris.models import Metrics as JobMetrics
from watchdog.rules.durations import format_duration
from watchdog.rules.windows import number
from watchdog.slack import text as tx
from watchdog.slack.alerts.parts import user as mention
from watchdog.slack.commands import parse
from watchdog.slack.commands.parse import COMMAND_NAMES, USAGE, Command
from watchdog.slack.text import code, esc
from watchdog.slack.text import date_token as when
from watchdog.store import Silence

MAX_JOB_LINES = 20
MAX_CANDIDATES = 10
#: projects named one by one in a line about failures; the rest are counted
MAX_PROJECTS_NAMED = 5
#: Text of one reply: a screenful or two, far under Slack's 40,000.
REPLY_BUDGET = 12_000
#: One line of a list (a job, a rule's alerts, a silence).
MAX_LINE = 600

_HEALTH_ICON = {"ok": "🟢", "warn": "🟡", "error": "🔴"}


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer to Slack: an ack body, or a message posted to a ``response_url``."""

    text: str
    blocks: Sequence[Block | dict[str, Any]] | None = None
    ephemeral: bool = True
    replace_original: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON body for Slack, held to a message's limits (see :func:`tx.finish`)."""
        text, blocks = tx.finish(self.text, self.blocks)
        # response_type is always explicit: Slack's default has changed meaning before.
        body: dict[str, Any] = {
            "response_type": "ephemeral" if self.ephemeral else "in_channel",
            "text": text,
        }
        if self.blocks is not None:
            body["blocks"] = blocks
        if self.replace_original:
            body["replace_original"] = True
        return body


def _listed(lines: Sequence[str], more: str, budget: int = REPLY_BUDGET) -> str:
    """Lines of a list, each clipped, the whole within ``budget``."""
    return tx.fit_lines([tx.clip(line, MAX_LINE) for line in lines], budget, more)


# ---- immediate answers ----------------------------------------------------------------


HELP = Reply(esc(USAGE))  # `<command>` would be read as markup
UNAVAILABLE = Reply("⏳ The bot is restarting; please try again in a minute.")
BAD_RESPONSE_URL = Reply("⚠️ This request cannot be answered: its response_url is not Slack's.")
CRASHED = Reply("💥 Something went wrong on the bot's side; it has been logged.")


def usage_reply(reason: str) -> Reply:
    return Reply(f"⚠️ {esc(reason, 500)}\n\n{esc(USAGE)}")


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
            return f"{present} {code(ref.shown, 100)}…"
        case parse.Status(job=ref) | parse.Metrics(job=ref):
            return f"Asking Polaris about {code(ref.shown, 100)}…"
        case parse.ListJobs():
            return "Listing jobs…"
        case parse.Silence(target=target, duration=duration):
            return f"Silencing {code(target, 100)} for {format_duration(duration)}…"
        case parse.Unsilence(id=silence_id):
            return f"Ending silence {code(silence_id, 60)}…"
    return "Working on it…"


# ---- errors in plain words ------------------------------------------------------------
# Plain text, not yet escaped: a reason goes both into a reply (escaped there, with
# esc()) and into an audit entry (escaped by the audit message).


def quoted(text: str, limit: int = 100) -> str:
    """Inline code in plain text, clipped (escaping is left to whoever renders it)."""
    return f"`{tx.clip(text.replace('`', 'ˋ').replace(chr(10), ' '), limit)}`"


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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job a typed reference may stand for."""

    project: str
    job_id: str
    table: str | None


def _candidate(found: Candidate, with_project: bool) -> str:
    name = f"{found.project}/{found.job_id}" if with_project else found.job_id
    return f"{quoted(name, 100)} ({tx.clip(found.table or '?', 60)})"


def no_match(prefix: str, where: str | None = None) -> str:
    """Nothing matched ``prefix`` (in ``where``, e.g. "any project", when given)."""
    place = f" in {where}" if where else ""
    if is_job_id(prefix):
        return f"no job {quoted(prefix)}{place}"
    return f"no job starts with {quoted(prefix)}{place}"


def ambiguous(prefix: str, candidates: Sequence[Candidate], *, with_projects: bool) -> str:
    shown = ", ".join(_candidate(c, with_projects) for c in candidates[:MAX_CANDIDATES])
    more = len(candidates) - MAX_CANDIDATES
    tail = f" and {more} more" if more > 0 else ""
    return f"ambiguous: {len(candidates)} jobs start with {quoted(prefix)} — {shown}{tail}"


def _failures(failed: Mapping[str, PolarisError]) -> str:
    """ "project prod (reason), project qa (reason)", the first few named."""
    named = [
        f"project {tx.clip(name, 40)} ({explain(error)})"
        for name, error in list(failed.items())[:MAX_PROJECTS_NAMED]
    ]
    more = len(failed) - MAX_PROJECTS_NAMED
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def unsearched(prefix: str, found: Sequence[Candidate], failed: Mapping[str, PolarisError]) -> str:
    """A prefix looked up while some projects could not be listed: what was found where
    the lookup worked, and how to choose without the others."""
    missing = _failures(failed)
    if found:
        job = f"{found[0].project}/{found[0].job_id}"
        return (
            f"{quoted(prefix)} matches {_candidate(found[0], True)}, but {missing} could not "
            f"be searched: write {quoted(job)} to use it"
        )
    return (
        f"{no_match(prefix)} where the bot could look; {missing} could not be searched: "
        "try again, or write PROJECT/JOB"
    )


def already_over(job: Job) -> str:
    status = tx.clip(job.execution_status, 40)
    return f"job {quoted(job.id)} is already {status}: nothing to cancel"


# ---- jobs, status, metrics ------------------------------------------------------------


def _health(job: Job) -> str:
    status = job.health_status
    icon = _HEALTH_ICON.get(status or "", "⚪")
    text = f"{icon} {esc(status or 'unknown', 40)}"
    if job.health_code:
        text += f" {code(job.health_code, 100)}"
    return text


def job_line(job: Job, project: str | None = None) -> str:
    """One job of a list; with ``project``, its short id is written ``PROJECT/ID`` (what a
    command takes)."""
    short = f"{project}/{job.id[:8]}" if project else job.id[:8]
    return (
        f"{code(short, 50)} {esc(job.table or '(no table)', 100)} · {esc(job.type, 40)} · "
        f"{esc(job.execution_status, 40)} · {_health(job)}"
    )


def jobs_reply(
    listed: Sequence[tuple[str | None, Job]],
    unreadable: int,
    filters: str,
    failed: Mapping[str, PolarisError] | None = None,
) -> Reply:
    """The jobs of one or more projects, each paired with the project to name on its line
    (None: none named); ``failed`` are projects that could not be listed."""
    heading = f"*{len(listed)} job{'s' if len(listed) != 1 else ''}*" + (
        f" ({esc(filters, 200)})" if filters else ""
    )
    warning = f"⚠️ Not listed: {esc(_failures(failed), 2000)}" if failed else None
    if not listed and warning:
        return Reply(warning)  # nothing could be listed: "none match" would be untrue
    if not listed:
        return Reply("\n".join([f"{heading}: none match.", *([warning] if warning else [])]))
    lines = [job_line(job, project) for project, job in listed[:MAX_JOB_LINES]]
    listed_text = _listed(lines, "{n} more not shown")
    head = [heading, warning] if warning else [heading]
    tail = []
    if len(listed) > MAX_JOB_LINES:
        narrow = "project=… health=… type=…" if any(p for p, _ in listed) else "health=… type=…"
        tail.append(f"… and {len(listed) - MAX_JOB_LINES} more (narrow with {narrow})")
    if unreadable:
        tail.append(f"({unreadable} more listed by Polaris in a shape the bot cannot read)")
    return Reply("\n".join([*head, listed_text, *tail]))


def status_reply(job: Job, project: str | None = None) -> Reply:
    execution = esc(job.execution_status, 40)
    desired = job.desired_execution_status
    # Polaris keeps the last desired state on a finished job ("completed", desired
    # "running"): a desired state is only shown where it can still happen.
    if desired and desired != job.execution_status and not job.is_terminal:
        execution += f" (→ {esc(desired, 40)})"
    lines = [
        f"*Job* {code(job.id, 100)}" + (f" in project {code(project, 60)}" if project else ""),
        f"• table: {esc(job.table or '(none)', 500)} · type: {esc(job.type, 40)}",
        f"• execution: {execution}",
        f"• health: {_health(job)}",
    ]
    if job.health_detail:
        lines.append(f"• message: {esc(job.health_detail, 1500)}")
    if job.last_updated_timestamp:
        lines.append(f"• last updated: {esc(job.last_updated_timestamp, 60)}")
    return Reply("\n".join(lines))


def metrics_reply(job_id: str, metrics: JobMetrics, project: str | None = None) -> Reply:
    what = code(job_id, 100) + (f" in project {code(project, 60)}" if project else "")
    if not metrics.totals:
        return Reply(f"*Metrics of* {what}: none reported yet.")
    known = [name for name in KNOWN_METRICS if name in metrics.totals]
    names = known + sorted(set(metrics.totals) - set(known))
    lines = [f"• {esc(name, 100)}: {number(metrics.totals[name])}" for name in names]
    listed = _listed(lines, "{n} more metrics not shown")
    return Reply(f"*Metrics of* {what} (totals)\n{listed}")


# ---- alerts and silences --------------------------------------------------------------


def _silence_line(silence: Silence) -> str:
    reason = f" — {esc(silence.reason, 200)}" if silence.reason else ""
    return (
        f"{code(silence.id, 40)} {esc(silence.target_kind, 10)} {code(silence.target, 200)} "
        f"until {when(silence.until)}, by {mention(silence.created_by)}{reason}"
    )


def _silence_lines(silences: Sequence[Silence], budget: int = REPLY_BUDGET) -> str:
    lines = [_silence_line(s) for s in silences[:MAX_JOB_LINES]]
    listed = _listed(lines, "{n} more silences not shown", budget)
    if len(silences) > MAX_JOB_LINES:
        listed += f"\n… and {len(silences) - MAX_JOB_LINES} more"
    return listed


def silences_reply(silences: Sequence[Silence]) -> Reply:
    if not silences:
        return Reply("🔔 No active silences.")
    return Reply(f"*Active silences*\n{_silence_lines(silences)}")


def alerts_reply(
    firing: Iterable[AlertState], silences: Sequence[Silence], *, with_projects: bool = False
) -> Reply:
    by_rule: dict[str, list[AlertState]] = defaultdict(list)
    for alert in firing:
        by_rule[alert.rule].append(alert)
    lines: list[str] = []
    for rule in sorted(by_rule):
        alerts = by_rule[rule]
        jobs = ", ".join(
            f"{code(_short(a, with_projects), 50)} {esc(a.job.table or '', 100)}".rstrip()
            for a in alerts[:10]
        )
        more = f" and {len(alerts) - 10} more" if len(alerts) > 10 else ""
        lines.append(
            f"🚨 *{esc(rule, 100)}* ({esc(alerts[0].severity, 20)}) — {len(alerts)} firing: "
            f"{jobs}{more}"
        )
    # Alerts and silences share the reply: each list gets half of it.
    half = REPLY_BUDGET // 2
    parts = [_listed(lines, "{n} more rules not shown", half) if lines else "✅ No alerts firing."]
    if silences:
        parts.append(f"*Active silences*\n{_silence_lines(silences, half)}")
    return Reply("\n".join(parts))


def _short(alert: AlertState, with_project: bool) -> str:
    return f"{alert.project}/{alert.job_id[:8]}" if with_project else alert.job_id[:8]


def silenced_reply(silence: Silence) -> Reply:
    return Reply(
        f"🔕 Silenced {esc(silence.target_kind, 10)} {code(silence.target, 200)} for "
        f"{format_duration(silence.until - silence.created_at)} (until {when(silence.until)}). "
        f"Id {code(silence.id, 40)}: `unsilence {esc(silence.id, 40)}` ends it."
    )


def silence_extra(silence: Silence) -> dict[str, str]:
    return {
        "silence_id": silence.id,
        "kind": silence.target_kind,
        "duration": format_duration(silence.until - silence.created_at),
        "until": f"{silence.until:.0f}",
    }
