"""The state store: one interface, an in-memory and a SQLite backend.

Everything the bot must not forget across a restart lives behind :class:`Store`: alert
states, the Slack message of each incident, silences, the outbox of notifications not yet
accepted by Slack, the sample history windows need, and a leader lease. Each method is one
transaction, so a crash leaves either the old or the new state, never half of each.

A second backend (PostgreSQL, shared by several replicas) implements the same protocol;
:meth:`Store.acquire_lease` is what lets exactly one replica poll and post.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from watchdog.domain.alerts import AlertState, fingerprint
from watchdog.domain.outgoing import Outgoing

SampleRow = tuple[str, str, float, float]  # (job_id, metric, t, value)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a Slack message lives. ``data`` holds notifier bookkeeping (e.g. storm members)."""

    channel: str
    ts: str
    kind: str = "single"
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    #: "rule": every job of a rule; "job": every rule on a job; "alert": one rule on one
    #: job (target is the fingerprint "project/rule/job_id", what an alert's Silence
    #: button mutes)
    target_kind: Literal["rule", "job", "alert"]
    target: str
    until: float
    created_by: str
    created_at: float
    reason: str = ""

    def matches(self, project: str, rule: str, job_id: str) -> bool:
        if self.target_kind == "alert":
            return self.target == fingerprint(project, rule, job_id)
        return self.target == (rule if self.target_kind == "rule" else job_id)

    def active(self, now: float) -> bool:
        return now < self.until


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: int
    item: Outgoing
    attempts: int
    next_attempt: float
    created_at: float


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema. Idempotent."""

    async def close(self) -> None: ...

    # -- alerts and the tick's outcome ---------------------------------------------------
    async def load_alerts(self) -> list[AlertState]: ...

    async def commit(
        self,
        *,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        """Atomically save alert states (by fingerprint), delete fingerprints, enqueue items."""

    # -- outbox ---------------------------------------------------------------------------
    async def outbox_due(self, now: float, limit: int = 500) -> list[OutboxRecord]:
        """Items whose next attempt is due, oldest first (by id: enqueue order)."""

    async def outbox_done(self, item_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        """Remove a delivered item and record the messages it created, in one transaction."""

    async def outbox_retry(self, item_id: int, next_attempt: float, error: str) -> None: ...

    async def outbox_dead(self, item_id: int, error: str) -> None:
        """Give up on an item Slack will never accept (kept for inspection, not retried)."""

    async def outbox_size(self) -> int: ...

    # -- Slack messages of incidents ------------------------------------------------------
    async def get_message(self, key: str) -> MessageRef | None: ...

    async def save_messages(self, messages: Mapping[str, MessageRef]) -> None: ...

    # -- silences -------------------------------------------------------------------------
    async def add_silence(self, silence: Silence) -> None: ...

    async def remove_silence(self, silence_id: str) -> bool: ...

    async def list_silences(self) -> list[Silence]: ...

    # -- sample history -------------------------------------------------------------------
    async def append_samples(self, rows: Sequence[SampleRow]) -> None: ...

    async def load_samples(self, since: float, until: float | None = None) -> list[SampleRow]:
        """Rows with since <= t < until (no upper bound when None), ordered by t.

        Callers restoring an hour of history load it in slices of time, so a restart
        never holds every row in memory at once."""

    async def prune_samples(self, before: float, gone_jobs: Sequence[str] = ()) -> None:
        """Drop rows older than ``before`` and every row of ``gone_jobs``."""

    # -- small values and leadership ------------------------------------------------------
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def acquire_lease(self, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the leader lease; False while another holder's lease is live."""

    async def release_lease(self, holder: str) -> None:
        """Give the lease up (graceful shutdown), so a successor need not wait it out."""
