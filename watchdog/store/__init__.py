"""The state store: one protocol, three backends (memory, SQLite, PostgreSQL).

Everything the bot must not forget across a restart — or share between replicas — lives
behind :class:`Store`: alert states, the Slack message of each incident, silences and
acknowledgements, the outbox of notifications not yet accepted by Slack, the sample
history windows need, the incident history the digest reads, and one lease per Polaris
project. Each method is one transaction, so a crash leaves either
the old or the new state, never half of each.

Leases and fencing. Each project is watched by the replica holding its lease; taking a
lease over (it expired, or was released) bumps its *term*, a fencing token. Every write
that speaks for a project — alert states, outbox items it enqueues or settles, Slack
message ids — carries a :class:`Fence` (the project and the term the writer believes it
holds) and is refused with :class:`FencedOut` when the project's lease has a newer term,
so a replica that was paused or cut off past its lease cannot change anything once another
took over. Lease times come from the store's own clock (the database's ``now()`` for
PostgreSQL), never from the replicas'.

Items without a project (audit lines of commands on no job, the daily digest) belong to
the *coordinator*: the holder of the lease of the first project by name. Their fence is
the coordinator project's.

The incident history is written by :meth:`Store.commit` from the notifications it
enqueues, in the same transaction: a NEW (or any follow-up) records the incident, a
RESOLVED closes it and ends its acknowledgement. Acknowledgements are written unfenced by
any replica serving Slack, like silences, and stamp the incident's history line.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from watchdog.domain.alerts import AlertState, fingerprint
from watchdog.domain.oncall import Ack, Incident
from watchdog.domain.outgoing import Outgoing
from watchdog.domain.samples import SampleRow
from watchdog.errors import WatchdogError


class StoreError(WatchdogError):
    """The store cannot do what was asked (unreachable, refuses writes, broken)."""


class FencedOut(StoreError):
    """A write under a lease term that is no longer current: another replica took over.

    The writer must stop speaking for ``project`` at once (and drop what it staged)."""

    def __init__(self, project: str, term: int, current: int | None) -> None:
        now = f"term {current}" if current is not None else "no lease"
        super().__init__(f"lease of project {project!r} moved on (ours: term {term}, now {now})")
        self.project = project
        self.term = term
        self.current = current


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a write is made under: ``project`` and the ``term`` we hold."""

    project: str
    term: int


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a project's lease, under which term, until when (store clock)."""

    project: str
    holder: str
    term: int
    expires: float


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
    #: the project the item speaks for ("" for coordinator items)
    project: str = ""
    #: an earlier attempt may have reached the destination (it was started and never
    #: settled, or failed in a way that does not say it was refused): look before re-posting
    maybe_sent: bool = False


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema. Idempotent. :class:`StoreError` (one clear line,
        no secret) when the store cannot be used: unreachable, a newer schema, a file
        that is not a database."""

    async def close(self) -> None: ...

    # -- leases ---------------------------------------------------------------------------
    async def acquire_lease(self, project: str, holder: str, ttl: float) -> int | None:
        """Take or renew ``project``'s lease for ``ttl`` seconds of the store's clock.

        The term while ``holder`` holds it; ``None`` while another holder's lease is
        live. Renewing keeps the term; taking it over (free, expired, released) bumps it.
        """

    async def release_lease(self, project: str, holder: str) -> None:
        """Give the lease up (graceful shutdown, rebalancing): a successor need not wait
        it out. Releasing a lease one does not hold does nothing."""

    async def heartbeat(self, replica: str, ttl: float) -> list[str]:
        """Say ``replica`` is alive for ``ttl`` seconds of the store's clock (0: it is
        leaving); the names of the replicas alive now, sorted. Projects are shared out
        by this count."""

    async def leases(self) -> list[Lease]:
        """Every project's lease row (expired ones included), ordered by project."""

    # -- alerts and the tick's outcome ----------------------------------------------------
    async def load_alerts(self, project: str | None = None) -> list[AlertState]:
        """The stored alert states of ``project`` (every project when None)."""

    async def commit(
        self,
        *,
        fence: Fence,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        """Atomically save alert states (by fingerprint), delete fingerprints, enqueue
        items for ``fence.project`` and record the incidents their notifications announce
        or resolve (a resolve also drops the incident's acknowledgement);
        :class:`FencedOut` (and nothing written) when the project's lease term is not
        ``fence.term``."""

    async def enqueue(self, items: Sequence[Outgoing], *, project: str, now: float) -> None:
        """Enqueue items outside any tick, unfenced: audit lines of commands, which any
        replica serving Slack may write. ``project`` "" for coordinator items."""

    async def enqueue_once(
        self, key: str, items: Sequence[Outgoing], *, project: str, fence: Fence, now: float
    ) -> bool:
        """Enqueue ``items`` for ``project`` ("" for coordinator items) under ``fence``
        and mark ``key`` done, in one transaction — unless ``key`` is marked already: then
        nothing is written and the answer is False. What must happen once (a day's digest) happens
        once, across crashes and replicas. Marks are kept for a week and more
        (:meth:`prune_history`)."""

    # -- outbox ---------------------------------------------------------------------------
    async def outbox_due(
        self, now: float, limit: int = 500, projects: Collection[str] | None = None
    ) -> list[OutboxRecord]:
        """Items whose next attempt is due, oldest first (by id: enqueue order), of
        ``projects`` only when given ("" selects coordinator items). Reads only."""

    async def outbox_start(self, item_ids: Sequence[int], fence: Fence) -> list[int]:
        """Claim items for an attempt, under ``fence``: mark them in flight (so that after
        a crash they read back with ``maybe_sent``) and return the ids claimed — ids
        another deliverer holds right now (PostgreSQL: row locks, ``SKIP LOCKED``) or
        that are gone are left out. :class:`FencedOut` when the term is stale."""

    async def outbox_done(
        self, item_id: int, fence: Fence, messages: Mapping[str, MessageRef] = {}
    ) -> None:
        """Remove a delivered item and record the messages it created, in one transaction
        under ``fence``."""

    async def outbox_retry(
        self, item_id: int, next_attempt: float, error: str, *, maybe_sent: bool = False
    ) -> None:
        """Count a failed attempt and schedule the next. ``maybe_sent`` keeps the item
        marked as possibly delivered (a timeout); False says the destination refused it."""

    async def outbox_dead(self, item_id: int, error: str) -> None:
        """Give up on an item Slack will never accept (kept for inspection, not retried)."""

    async def outbox_size(self, projects: Collection[str] | None = None) -> int:
        """Items not yet delivered (in flight included, dead ones not)."""

    # -- Slack messages of incidents ------------------------------------------------------
    async def get_message(self, key: str) -> MessageRef | None: ...

    async def save_messages(self, messages: Mapping[str, MessageRef], fence: Fence) -> None:
        """Upsert message refs under ``fence`` (storm thread progress)."""

    # -- silences -------------------------------------------------------------------------
    async def add_silence(self, silence: Silence) -> None: ...

    async def remove_silence(self, silence_id: str) -> bool: ...

    async def list_silences(self) -> list[Silence]: ...

    # -- acknowledgements and the incident history ---------------------------------------
    async def add_ack(self, ack: Ack) -> None:
        """Acknowledge ``ack.incident_id`` (replacing an earlier ack of it); the incident's
        history line keeps the first acknowledgement's time."""

    async def remove_ack(self, incident_id: str) -> bool:
        """Withdraw an acknowledgement (and clear it from the history line); whether
        there was one."""

    async def list_acks(self, project: str | None = None) -> list[Ack]:
        """The acknowledgements of ``project`` (every project when None), by incident id."""

    async def list_incidents(self, since: float) -> list[Incident]:
        """The history lines of incidents that fired, resolved or were still open at or
        after ``since``, ordered by fire time (then incident id)."""

    async def prune_history(self, project: str, before: float) -> None:
        """Drop ``project``'s incidents resolved before ``before`` (and unresolved ones
        fired before it whose alert is gone), its acknowledgements made before it of
        alerts that are gone, and :meth:`enqueue_once` marks made before it."""

    # -- sample history -------------------------------------------------------------------
    async def append_samples(self, project: str, rows: Sequence[SampleRow]) -> None: ...

    async def load_samples(
        self, project: str, since: float, until: float | None = None
    ) -> list[SampleRow]:
        """Rows of ``project`` with since <= t < until (no upper bound when None), ordered
        by t. Callers restoring an hour of history load it in slices of time, so a restart
        never holds every row in memory at once."""

    async def prune_samples(
        self, project: str, before: float, gone_jobs: Sequence[str] = ()
    ) -> None:
        """Drop ``project``'s rows older than ``before`` and every row of ``gone_jobs``."""

    # -- small values ---------------------------------------------------------------------
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    # -- things done once -----------------------------------------------------------------
    async def claim_once(self, key: str, until: float) -> bool:
        """Remember ``key`` until ``until`` (epoch seconds): True the first time, False
        while it is remembered, across every replica sharing the store (a signed Slack
        request replayed to any of them). Keys past their ``until`` on the store's clock
        are forgotten (pruned), so a key claimed again after that is new again."""
