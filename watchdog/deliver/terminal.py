"""The terminal notifier: one coloured line per item, for the demo and Slack-less runs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from watchdog.deliver.notifier import Receipts
from watchdog.domain.alerts import Reason
from watchdog.domain.outgoing import AuditEntry, Notification
from watchdog.rules.durations import format_duration
from watchdog.store import OutboxRecord

_COLOURS = {
    "FIRING": "\x1b[1;31m",
    "REPEAT": "\x1b[33m",
    "CHANGED": "\x1b[35m",
    "RESOLVED": "\x1b[1;32m",
    "AUDIT": "\x1b[36m",
}
_RESET = "\x1b[0m"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def describe(item: Notification | AuditEntry) -> tuple[str, str]:
    """(label, line) for one outgoing item: the plain-words form used in a terminal."""
    if isinstance(item, AuditEntry):
        verdict = "ok" if item.ok else f"failed: {item.result}"
        return "AUDIT", f"<{item.user}> {item.action} {item.target} — {verdict}"
    alert = item.alert
    job = alert.job
    where = f"job {job.job_id} table {job.table or '-'}" if job.job_id != "-" else "Polaris API"
    label = {
        Reason.NEW: "FIRING",
        Reason.REPEAT: "REPEAT",
        Reason.CHANGED: "CHANGED",
        Reason.RESOLVED: "RESOLVED",
    }[item.reason]
    if item.reason is Reason.RESOLVED:
        lasted = format_duration(max((alert.resolved_at or 0) - (alert.fired_at or 0), 0))
        why = f"{alert.resolve_reason or 'resolved'} (fired for {lasted})"
    else:
        why = alert.condition.summary
    return label, f"{alert.severity:<8} {alert.rule} · {where} · {why}"


class TerminalNotifier:
    """Prints one clear, coloured line per notification. Never fails."""

    def __init__(
        self,
        write: Callable[[str], None] | None = None,
        colour: bool | None = None,
        clock: Callable[[float], str] = _clock,
    ) -> None:
        self._write = write or (lambda line: print(line, file=sys.stdout, flush=True))
        self._colour = sys.stdout.isatty() if colour is None else colour
        self._clock = clock

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        for record in records:
            if receipts.out_of_time():
                return
            if not await receipts.start([record.id]):
                continue  # another deliverer has it
            label, line = describe(record.item)
            at = (
                record.item.at
                if isinstance(record.item, AuditEntry)
                else record.item.alert.last_eval
            )
            shown = f"{_COLOURS[label]}{label:<8}{_RESET}" if self._colour else f"{label:<8}"
            self._write(f"{self._clock(at)} {shown} {line}")
            await receipts.done(record.id)
