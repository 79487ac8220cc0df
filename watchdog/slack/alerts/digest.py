"""The digest as a Slack message: the daily post, and the answer to ``/polaris digest``.

One pure function from a :class:`~watchdog.domain.digest.Digest` to a
:class:`~watchdog.slack.alerts.messages.SlackMessage`: a header, the totals (incidents,
still firing, acknowledged, the median times to acknowledge and to resolve), counts by
rule, project and table, and the noisiest jobs. Rule names, tables and job ids come from
the rules file and Polaris, so each is escaped and clipped, and each list is cut to a few
entries with a count of the rest.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import Block, ContextBlock, HeaderBlock, SectionBlock

from watchdog.domain.digest import Counts, Digest
from watchdog.slack import text as tx
from watchdog.slack.alerts.messages import SlackMessage
from watchdog.slack.alerts.parts import span

#: Entries of each list shown; the rest are counted.
SHOWN = 8


def _list(counts: Counts, code: bool = False) -> str:
    shown = [
        f"{tx.code(name, 80) if code else tx.esc(name, 80)} ×{count}"
        for name, count in counts[:SHOWN]
    ]
    rest = len(counts) - len(shown)
    return " · ".join(shown) + (f" · …{rest} more" if rest > 0 else "") if shown else "—"


def _local(epoch: float, zone: str) -> str:
    moment = datetime.fromtimestamp(epoch, ZoneInfo(zone))
    return moment.strftime("%a %d %b %H:%M ") + tx.esc(zone, 60)


def digest_message(d: Digest, *, timezone: str = "UTC", title: str | None = None) -> SlackMessage:
    """The digest ``d``; its span is shown in ``timezone`` (an IANA name)."""
    length = span(d.until - d.since)
    heading = title or f"📋 Polaris digest · last {length}"
    since, until = _local(d.since, timezone), _local(d.until, timezone)

    def median(seconds: float | None) -> str:
        return "—" if seconds is None else span(seconds)

    totals = (
        f"*{d.incidents}* incident{'s' if d.incidents != 1 else ''} fired · "
        f"*{d.still_firing}* still firing · *{d.acknowledged}* acknowledged · "
        f"*{d.resolved}* resolved\n"
        f"Median time to acknowledge *{median(d.median_ack)}* · "
        f"to resolve *{median(d.median_resolve)}*"
    )
    blocks: list[Block] = [
        HeaderBlock(text=tx.plain(heading, tx.MAX_HEADER_TEXT)),
        ContextBlock(elements=[tx.mrkdwn(f"{since} → {until}", tx.MAX_CONTEXT_TEXT)]),
        SectionBlock(text=tx.mrkdwn(totals, tx.MAX_SECTION_TEXT)),
    ]
    if d.incidents:
        lists = (
            f"*By rule:* {_list(d.by_rule)}\n*By project:* {_list(d.by_project)}\n"
            f"*By table:* {_list(d.by_table, code=True)}"
        )
        blocks.append(SectionBlock(text=tx.mrkdwn(lists, tx.MAX_SECTION_TEXT)))
    if d.noisiest:
        lines = [
            f"• {tx.code(job.job_id, 64)} · {tx.esc(job.table or 'no table', 80)} · "
            f"{tx.esc(job.project, 40)} — *{job.incidents}* incident"
            + ("s" if job.incidents != 1 else "")
            for job in d.noisiest
        ]
        noisy = "*Noisiest jobs*\n" + "\n".join(lines)
        blocks.append(SectionBlock(text=tx.mrkdwn(noisy, tx.MAX_SECTION_TEXT)))
    if not d.incidents and not d.still_firing:
        blocks.append(SectionBlock(text=tx.mrkdwn("✅ A quiet stretch: nothing fired.")))
    text = (
        f"{heading}: {d.incidents} incidents, {d.still_firing} still firing, "
        f"{d.acknowledged} acknowledged, {d.resolved} resolved"
    )
    return SlackMessage.of(text, blocks)
