"""The terminal notifier: one coloured line per item, for the demo and Slack-less runs.

Every alert line starts with its project (``[prod]``), as every Slack alert names it.
Acknowledgement redraws become a line saying what changed, and the daily digest a line
of plain words.

It groups as the Slack notifier does (:mod:`watchdog.deliver.group`): a storm of NEW
alerts of one rule is one line with a count, and its members' later repeats and resolves
are one line per batch. Storms are remembered for the life of the process only.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from watchdog.deliver.group import SendUnit, group
from watchdog.deliver.notifier import Receipts
from watchdog.domain.alerts import Reason
from watchdog.domain.digest import Counts, Digest
from watchdog.domain.outgoing import AuditEntry, DigestPost, Outgoing, Redraw
from watchdog.rules.durations import format_duration
from watchdog.store import OutboxRecord

_COLOURS = {
    "FIRING": "\x1b[1;31m",
    "REPEAT": "\x1b[33m",
    "CHANGED": "\x1b[35m",
    "RESOLVED": "\x1b[1;32m",
    "ESCALATE": "\x1b[1;35m",
    "AUDIT": "\x1b[36m",
    "UPDATE": "\x1b[36m",
    "DIGEST": "\x1b[1;34m",
}
_RESET = "\x1b[0m"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def describe(item: Outgoing) -> tuple[str, str]:
    """(label, line) for one outgoing item: the plain-words form used in a terminal."""
    if isinstance(item, AuditEntry):
        verdict = "ok" if item.ok else f"failed: {item.result}"
        target = f"{item.project}/{item.target}" if item.project else item.target
        return "AUDIT", f"<{item.user}> {item.action} {target} — {verdict}"
    if isinstance(item, Redraw):
        return "UPDATE", f"incident {item.incident_id}: {item.note or 'redrawn'}"
    if isinstance(item, DigestPost):
        return "DIGEST", digest_text(item.digest)
    alert = item.alert
    job = alert.job
    where = f"job {job.job_id} table {job.table or '-'}" if job.job_id != "-" else "Polaris API"
    label = {
        Reason.NEW: "FIRING",
        Reason.REPEAT: "REPEAT",
        Reason.CHANGED: "CHANGED",
        Reason.RESOLVED: "RESOLVED",
        Reason.ESCALATE: "ESCALATE",
    }[item.reason]
    if item.reason is Reason.RESOLVED:
        lasted = format_duration(max((alert.resolved_at or 0) - (alert.fired_at or 0), 0))
        why = f"{alert.resolve_reason or 'resolved'} (fired for {lasted})"
    elif item.reason is Reason.ESCALATE:
        why = f"unacknowledged, escalated to {item.mention or 'nobody'}"
    else:
        why = alert.condition.summary
    return label, f"[{alert.project}] {alert.severity:<8} {alert.rule} · {where} · {why}"


def _top(counts: Counts, shown: int = 3) -> str:
    return ", ".join(f"{name} ×{count}" for name, count in counts[:shown]) or "-"


def digest_text(d: Digest) -> str:
    """A digest in one line of plain words."""
    span = format_duration(max(round(d.until - d.since), 1))

    def median(seconds: float | None) -> str:
        return "-" if seconds is None else format_duration(max(round(seconds), 0))

    noisy = ", ".join(f"{j.job_id[:8]} ({j.table or '-'}) ×{j.incidents}" for j in d.noisiest)
    return (
        f"last {span}: {d.incidents} incidents, {d.still_firing} still firing, "
        f"{d.acknowledged} acknowledged (median {median(d.median_ack)}), {d.resolved} "
        f"resolved (median {median(d.median_resolve)}) · by rule: {_top(d.by_rule)} · "
        f"by table: {_top(d.by_table)} · noisiest: {noisy or '-'}"
    )


def _at(item: Outgoing) -> float:
    if isinstance(item, AuditEntry | Redraw):
        return item.at
    if isinstance(item, DigestPost):
        return item.digest.until
    return item.alert.last_eval


_STORM_LABELS = {
    "storm-repeat": "REPEAT",
    "storm-changed": "CHANGED",
    "storm-resolved": "RESOLVED",
    "storm-escalate": "ESCALATE",
}


class TerminalNotifier:
    """Prints one clear, coloured line per notification or storm. Never fails."""

    def __init__(
        self,
        write: Callable[[str], None] | None = None,
        colour: bool | None = None,
        clock: Callable[[float], str] = _clock,
        group_threshold: Callable[[], int] = lambda: 5,
    ) -> None:
        self._write = write or (lambda line: print(line, file=sys.stdout, flush=True))
        self._colour = sys.stdout.isatty() if colour is None else colour
        self._clock = clock
        self._threshold = group_threshold
        self._member_of: dict[str, str] = {}  # incident -> storm key
        self._storms: dict[str, tuple[int, set[str]]] = {}  # key -> (size, resolved)

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        units = group(records, threshold=self._threshold(), storm_of=self._member_of.get)
        for unit in units:
            if receipts.out_of_time():
                return
            claimed = set(await receipts.start([r.id for r in unit.records]))
            mine = tuple(r for r in unit.records if r.id in claimed)
            if not mine:
                continue  # another deliverer has them
            unit = dataclasses.replace(unit, records=mine)
            for at, label, line in self._lines(unit):
                shown = f"{_COLOURS[label]}{label:<8}{_RESET}" if self._colour else f"{label:<8}"
                self._write(f"{self._clock(at)} {shown} {line}")
            for record in unit.records:
                await receipts.done(record.id)

    def _lines(self, unit: SendUnit) -> Iterator[tuple[float, str, str]]:
        if unit.kind in ("audit", "single", "redraw", "digest"):
            item = unit.records[0].item
            yield (_at(item), *describe(item))
            return
        items = unit.notifications
        first, key = items[0], unit.storm or ""
        alert = first.alert
        if unit.kind == "storm":
            self._storms[key] = (len(items), set())
            self._member_of.update((n.incident_id, key) for n in items)
            tables = sorted({n.alert.job.table for n in items if n.alert.job.table})
            shown = ", ".join(tables[:3]) + (", …" if len(tables) > 3 else "")
            where = f" · tables {shown}" if shown else ""
            line = f"[{alert.project}] {alert.severity:<8} {alert.rule} · {len(items)} jobs"
            yield _at(first), "FIRING", f"{line}{where} · {alert.condition.summary}"
            return
        size, resolved = self._storms.get(key, (len(items), set()))
        if unit.kind == "storm-resolved":
            resolved |= {n.incident_id for n in items}
            self._storms[key] = (size, resolved)
            line = f"{len(items)} jobs resolved ({len(resolved)} of {size})"
        else:
            verb = {"storm-repeat": "still firing", "storm-changed": "changed"}.get(
                unit.kind, f"unacknowledged, escalated to {first.mention or 'nobody'}"
            )
            line = f"{len(items)} of {size} jobs {verb}"
        line = f"[{alert.project}] {alert.severity:<8} {alert.rule} · {line}"
        yield _at(first), _STORM_LABELS[unit.kind], line
