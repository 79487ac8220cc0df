"""Changes attempted from Slack, each audited exactly once, and the failure of a command.

A :class:`Change` (pause, resume, cancel, silence, unsilence) is filled in as it is learnt —
which job, in which project, on which table — and :meth:`Auditor.audited` runs it and hands
one :class:`~watchdog.domain.outgoing.AuditEntry` to the audit sink however it ends: done,
refused, failed, or cut short by a shutdown. Kept apart from
:mod:`watchdog.slack.commands.service` so the service reads as the commands' control flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import structlog

from watchdog.domain.outgoing import AuditEntry
from watchdog.errors import WatchdogError
from watchdog.polaris.errors import PolarisError, is_job_id
from watchdog.slack.commands import replies

log = structlog.get_logger(__name__)
T = TypeVar("T")


class CommandFailed(WatchdogError):
    """A command that cannot be carried out; ``reason`` is for the user, in plain words,
    ``what`` (optional) the attempt it spoiled."""

    def __init__(self, reason: str, what: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.text = f"{what}: {reason}" if what else reason


@dataclass
class Change:
    """One attempted change, filled in as it is learnt, and audited exactly once."""

    user: str
    action: str
    target: str
    channel: str | None
    table: str | None = None
    incident_id: str | None = None
    #: the job's project, once known (and configured): its lease holder delivers the line
    project: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Auditor:
    """Runs changes and hands each one's audit entry to ``sink``, exactly once."""

    def __init__(
        self, sink: Callable[[AuditEntry], Awaitable[None]], clock: Callable[[], float]
    ) -> None:
        self._sink = sink
        self._clock = clock

    async def audited(self, change: Change, work: Awaitable[T]) -> T:
        """Run a change and audit it once, however it ends; failures become
        :class:`CommandFailed`."""
        try:
            result = await work
        except asyncio.CancelledError:
            # Shutdown cut the change short after it may already have reached Polaris: the
            # audit line must still say someone tried, and that the outcome is unknown.
            reason = "interrupted by a restart of the bot; check the job's status"
            await asyncio.shield(self.audit(change, reason))
            raise
        except Exception as exc:
            if isinstance(exc, CommandFailed):
                reason = exc.reason
            elif isinstance(exc, PolarisError):
                job = change.target if is_job_id(change.target) else None
                reason = replies.explain(exc, job)
            else:
                log.exception("slack.change_crashed", action=change.action)
                reason = "something went wrong on the bot's side"
            await self.audit(change, reason)
            what = f"could not {change.action} {replies.quoted(change.target)}"
            raise CommandFailed(reason, what) from None
        await self.audit(change, "ok")
        return result

    async def audit(self, change: Change, result: str) -> None:
        entry = AuditEntry(**asdict(change), result=result, at=self._clock())
        log.info(
            "slack.audit",
            action=change.action,
            target=change.target,
            project=change.project,
            result=result,
        )
        try:
            await self._sink(entry)
        except Exception:
            # The change itself happened (or failed) regardless; losing the line is logged.
            log.exception("slack.audit_failed", action=change.action, target=change.target)
