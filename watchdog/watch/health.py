"""Whether the bot is watching: the problems each project (and the replica) reports.

The bot either watches or says that it cannot. Every state in which it cannot — the
store refuses to record, Polaris cannot be reached or rejects the key, a listing does not
finish, the metric rules have no fresh data — is a :class:`Problem` here, shown by
``/healthz`` (non-200 with the reason), logged once when it starts and once when it ends,
and, where the store can record it, posted to Slack as a meta-alert by the project's loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # store | polaris | listing | metrics
    message: str
    since: float


@dataclass
class Health:
    """The problems of one project (``project`` "" for the replica itself)."""

    project: str
    problems: dict[str, Problem] = field(default_factory=dict)

    def report(self, kind: str, message: str | None, now: float) -> None:
        """Set (``message``) or clear (None) the problem ``kind``, logging the change once."""
        current = self.problems.get(kind)
        where = {"project": self.project} if self.project else {}
        if message is None:
            if current is not None:
                del self.problems[kind]
                log.info(
                    "watch.problem_cleared", kind=kind, lasted=round(now - current.since), **where
                )
            return
        if current is None:
            log.error("watch.cannot_watch", kind=kind, problem=message, **where)
            self.problems[kind] = Problem(kind, message, now)
        elif current.message != message:
            self.problems[kind] = Problem(kind, message, current.since)

    def clear(self) -> None:
        """Forget every problem without logging (the project is no longer ours to watch)."""
        self.problems.clear()

    @property
    def ok(self) -> bool:
        return not self.problems
