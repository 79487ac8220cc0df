"""The notifier interface, and the terminal notifier for the demo and Slack-less runs.

A notifier receives outbox records in enqueue order and reports, one by one, which it
delivered (:meth:`Receipts.done`) or can never deliver (:meth:`Receipts.dead`). When the
destination is down it raises :class:`DeliveryUnavailable`: the dispatcher keeps the rest
queued and tries again later, so nothing is lost and nothing jumps the queue.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from watchdog.durations import format_duration
from watchdog.notifications import AuditEntry, Notification, Reason
from watchdog.store import MessageRef, OutboxRecord


class Receipts(Protocol):
    async def done(self, record_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        """The destination accepted the item; ``messages`` are the messages it created."""

    async def dead(self, record_id: int, error: str) -> None:
        """The destination will never accept this item."""

    def out_of_time(self) -> bool:
        """A graceful stop's deadline has passed: start no further item (the rest stays
        queued for the next start)."""


class DeliveryUnavailable(Exception):
    """The destination cannot take anything now; retry after ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Notifier(Protocol):
    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None: ...


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
            label, line = describe(record.item)
            at = (
                record.item.at
                if isinstance(record.item, AuditEntry)
                else record.item.alert.last_eval
            )
            shown = f"{_COLOURS[label]}{label:<8}{_RESET}" if self._colour else f"{label:<8}"
            self._write(f"{self._clock(at)} {shown} {line}")
            await receipts.done(record.id)
