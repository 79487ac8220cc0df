"""The in-memory :class:`~watchdog.store.Store`: for tests and ``WATCHDOG_STATE=:memory:``.

It keeps what the SQLite store keeps, in the same serialised form (alert states, outbox
items and message data as JSON text), so that both backends behave alike down to the
details: a caller can never mutate stored state through an object it passed in or got
back, values that JSON cannot hold fail here too, and what comes out of the store is the
same round-tripped value SQLite would return. Lease times come from the injected clock
(the store's clock). Nothing survives the process.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from watchdog.domain.alerts import AlertState, alert_from_dict
from watchdog.domain.oncall import Ack, Incident
from watchdog.domain.outgoing import Outgoing, dump_outgoing, load_outgoing
from watchdog.domain.samples import SampleRow
from watchdog.store import (
    Fence,
    FencedOut,
    Lease,
    MessageRef,
    OutboxRecord,
    Silence,
)
from watchdog.store.rows import (
    IncidentRow,
    MessageRow,
    alert_rows,
    claimable,
    history_rows,
    incident_from_row,
    lease_term,
    message_rows,
    open_or_since,
)


@dataclass(slots=True)
class _OutboxRow:
    item: str  # dump_outgoing() JSON, as in the outbox table
    project: str
    attempts: int
    next_attempt: float
    created_at: float
    dead: bool = False
    error: str | None = None
    maybe_sent: bool = False
    claim: tuple[str, int] | None = None  # (project, term) it is in flight under


class MemoryStore:
    """Dicts and lists behind the :class:`~watchdog.store.Store` protocol."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._state = "new"  # new -> open -> closed; closed is final, as for SqliteStore
        self._alerts: dict[str, tuple[str, str]] = {}  # fingerprint -> (project, alert JSON)
        self._outbox: dict[int, _OutboxRow] = {}  # insertion order is id order
        self._last_outbox_id = 0  # ids are never reused, like AUTOINCREMENT
        self._messages: dict[str, MessageRow] = {}
        self._silences: dict[str, Silence] = {}
        self._samples: dict[str, list[SampleRow]] = {}  # project -> rows
        self._meta: dict[str, str] = {}
        self._leases: dict[str, tuple[str, int, float]] = {}  # project -> (holder, term, expires)
        self._replicas: dict[str, float] = {}  # replica -> alive until
        self._acks: dict[str, Ack] = {}  # incident id -> ack
        self._incidents: dict[str, IncidentRow] = {}  # incident id -> row
        self._marks: dict[str, float] = {}  # enqueue_once key -> when
        self._claims: dict[str, float] = {}  # key claimed once -> remembered until

    async def open(self) -> None:
        """Idempotent; a closed store cannot be reopened."""
        self._check("open")
        self._state = "open"

    async def close(self) -> None:
        self._state = "closed"

    def _check(self, what: str = "use") -> None:
        if self._state == "closed":
            raise RuntimeError(f"cannot {what} the memory store: it is closed")
        if self._state == "new" and what != "open":
            raise RuntimeError("the memory store is not open: call `await store.open()` first")

    def _fenced(self, fence: Fence) -> None:
        """Refuse a write under a term that is not the project's current one."""
        current = self._leases.get(fence.project)
        term = current[1] if current is not None else None
        if term != fence.term:
            raise FencedOut(fence.project, fence.term, term)

    # -- leases ---------------------------------------------------------------------------
    async def acquire_lease(self, project: str, holder: str, ttl: float) -> int | None:
        self._check()
        now = float(self._clock())
        term = lease_term(self._leases.get(project), holder, now)
        if term is not None:
            self._leases[project] = (holder, term, now + ttl)
        return term

    async def release_lease(self, project: str, holder: str) -> None:
        self._check()
        current = self._leases.get(project)
        if current is not None and current[0] == holder:
            # The row (and its term) stays, so the next holder's term is a bigger one.
            self._leases[project] = (holder, current[1], min(current[2], self._clock()))

    async def heartbeat(self, replica: str, ttl: float) -> list[str]:
        self._check()
        now = float(self._clock())
        self._replicas[replica] = now + ttl
        return sorted(name for name, until in self._replicas.items() if until > now)

    async def leases(self) -> list[Lease]:
        self._check()
        return [Lease(p, *self._leases[p]) for p in sorted(self._leases)]

    # -- alerts and the tick's outcome ----------------------------------------------------
    async def load_alerts(self, project: str | None = None) -> list[AlertState]:
        self._check()
        return [
            alert_from_dict(json.loads(text))
            for fp, (owner, text) in sorted(self._alerts.items())
            if project is None or owner == project
        ]

    async def commit(
        self,
        *,
        fence: Fence,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        self._check()
        # Serialise and check everything before touching state: a value that cannot be
        # stored, or a stale term, fails the whole commit and leaves the store as it was.
        rows = alert_rows(fence, upserts, deletes)
        items = [dump_outgoing(item) for item in outbox]
        history, resolved = history_rows(outbox)
        self._fenced(fence)
        for fp, project, _rule, _job, _phase, text in rows:
            self._alerts[fp] = (project, text)
        for fp in deletes:
            self._alerts.pop(fp, None)
        self._append(items, fence.project, now)
        for row in history:
            self._record(row)
        for incident_id in resolved:
            self._acks.pop(incident_id, None)

    def _record(self, row: IncidentRow) -> None:
        """Upsert a history row as the SQL stores do: the fire time and the first
        acknowledgement stay, a resolve time once set stays."""
        old = self._incidents.get(row[0])
        if old is not None:
            resolved = row[8] if row[8] is not None else old[8]
            acked_at, acked_by = (old[9], old[10]) if old[9] is not None else (row[9], row[10])
            row = (*row[:7], old[7], resolved, acked_at, acked_by)
        self._incidents[row[0]] = row

    async def enqueue(self, items: Sequence[Outgoing], *, project: str, now: float) -> None:
        self._check()
        self._append([dump_outgoing(item) for item in items], project, now)

    async def enqueue_once(
        self, key: str, items: Sequence[Outgoing], *, project: str, fence: Fence, now: float
    ) -> bool:
        self._check()
        texts = [dump_outgoing(item) for item in items]
        self._fenced(fence)
        if key in self._marks:
            return False
        self._marks[key] = float(now)
        self._append(texts, project, now)
        return True

    def _append(self, items: Sequence[str], project: str, now: float) -> None:
        for text in items:
            self._last_outbox_id += 1
            self._outbox[self._last_outbox_id] = _OutboxRow(
                item=text,
                project=project,
                attempts=0,
                next_attempt=float(now),
                created_at=float(now),
            )

    # -- outbox ---------------------------------------------------------------------------
    async def outbox_due(
        self, now: float, limit: int = 500, projects: Collection[str] | None = None
    ) -> list[OutboxRecord]:
        self._check()
        due: list[OutboxRecord] = []
        if limit <= 0:  # SQLite would read a negative LIMIT as "no limit"; both say none
            return due
        for item_id, row in self._outbox.items():
            if len(due) >= limit:
                break
            if row.dead or row.next_attempt > now:
                continue
            if projects is not None and row.project not in projects:
                continue
            due.append(
                OutboxRecord(
                    id=item_id,
                    item=load_outgoing(row.item),
                    attempts=row.attempts,
                    next_attempt=row.next_attempt,
                    created_at=row.created_at,
                    project=row.project,
                    maybe_sent=row.maybe_sent,
                )
            )
        return due

    async def outbox_start(self, item_ids: Sequence[int], fence: Fence) -> list[int]:
        self._check()
        self._fenced(fence)
        terms = {project: lease[1] for project, lease in self._leases.items()}
        claimed: list[int] = []
        for item_id in sorted(set(item_ids)):
            row = self._outbox.get(item_id)
            if row is None or row.dead or row.project not in (fence.project, ""):
                continue
            if not claimable(row.claim, terms):
                continue
            row.maybe_sent = True
            row.claim = (fence.project, fence.term)
            claimed.append(item_id)
        return claimed

    async def outbox_done(
        self, item_id: int, fence: Fence, messages: Mapping[str, MessageRef] = {}
    ) -> None:
        self._check()
        rows = message_rows(messages)
        self._fenced(fence)
        self._outbox.pop(item_id, None)
        self._messages.update((row[0], row) for row in rows)

    async def outbox_retry(
        self, item_id: int, next_attempt: float, error: str, *, maybe_sent: bool = False
    ) -> None:
        self._check()
        row = self._outbox.get(item_id)
        if row is not None:
            row.attempts += 1
            row.next_attempt = float(next_attempt)
            row.error = error
            row.maybe_sent = maybe_sent
            row.claim = None

    async def outbox_dead(self, item_id: int, error: str) -> None:
        self._check()
        row = self._outbox.get(item_id)
        if row is not None:
            row.dead = True
            row.error = error
            row.claim = None

    async def outbox_size(self, projects: Collection[str] | None = None) -> int:
        self._check()
        return sum(
            1
            for row in self._outbox.values()
            if not row.dead and (projects is None or row.project in projects)
        )

    # -- Slack messages of incidents ------------------------------------------------------
    async def get_message(self, key: str) -> MessageRef | None:
        self._check()
        row = self._messages.get(key)
        if row is None:
            return None
        _, channel, ts, kind, data = row
        return MessageRef(channel=channel, ts=ts, kind=kind, data=json.loads(data))

    async def save_messages(self, messages: Mapping[str, MessageRef], fence: Fence) -> None:
        self._check()
        rows = message_rows(messages)
        self._fenced(fence)
        self._messages.update((row[0], row) for row in rows)

    # -- silences -------------------------------------------------------------------------
    async def add_silence(self, silence: Silence) -> None:
        self._check()
        # Times as floats, as SQLite's REAL columns return them.
        self._silences[silence.id] = replace(
            silence, until=float(silence.until), created_at=float(silence.created_at)
        )

    async def remove_silence(self, silence_id: str) -> bool:
        self._check()
        return self._silences.pop(silence_id, None) is not None

    async def list_silences(self) -> list[Silence]:
        self._check()
        return sorted(self._silences.values(), key=lambda s: (s.created_at, s.id))

    # -- acknowledgements and the incident history ---------------------------------------
    async def add_ack(self, ack: Ack) -> None:
        self._check()
        self._acks[ack.incident_id] = replace(ack, at=float(ack.at))
        row = self._incidents.get(ack.incident_id)
        if row is not None and row[9] is None:
            self._incidents[ack.incident_id] = (*row[:9], float(ack.at), ack.user)

    async def remove_ack(self, incident_id: str) -> bool:
        self._check()
        row = self._incidents.get(incident_id)
        if row is not None:
            self._incidents[incident_id] = (*row[:9], None, None)
        return self._acks.pop(incident_id, None) is not None

    async def list_acks(self, project: str | None = None) -> list[Ack]:
        self._check()
        return [
            self._acks[iid]
            for iid in sorted(self._acks)
            if project is None or self._acks[iid].project == project
        ]

    async def list_incidents(self, since: float) -> list[Incident]:
        self._check()
        found = [incident_from_row((*row[:2], *row[3:])) for row in self._incidents.values()]
        chosen = [i for i in found if open_or_since(i, since)]
        return sorted(chosen, key=lambda i: (i.fired_at, i.incident_id))

    async def prune_history(self, project: str, before: float) -> None:
        self._check()
        live = set(self._alerts)
        for iid, row in list(self._incidents.items()):
            if row[1] != project:
                continue
            resolved = row[8]
            if (resolved is not None and resolved < before) or (
                resolved is None and row[7] < before and row[2] not in live
            ):
                del self._incidents[iid]
        for iid, ack in list(self._acks.items()):
            if ack.project == project and ack.at < before and ack.fingerprint not in live:
                del self._acks[iid]
        for key, at in list(self._marks.items()):
            if at < before:
                del self._marks[key]

    # -- sample history -------------------------------------------------------------------
    async def append_samples(self, project: str, rows: Sequence[SampleRow]) -> None:
        self._check()
        # float() as SQLite's REAL columns do, so an int timestamp reads back as a float;
        # NaN dropped as SqliteStore drops it (SQLite would store it as NULL).
        self._samples.setdefault(project, []).extend(
            (job, metric, float(t), float(v))
            for job, metric, t, v in rows
            if not (math.isnan(t) or math.isnan(v))
        )

    async def load_samples(
        self, project: str, since: float, until: float | None = None
    ) -> list[SampleRow]:
        self._check()
        end = math.inf if until is None else until
        rows = [row for row in self._samples.get(project, ()) if since <= row[2] < end]
        # Stable sort: exact duplicates keep insertion order, as SQLite's rowid tie-break.
        rows.sort(key=lambda row: (row[2], row[0], row[1]))
        return rows

    async def prune_samples(
        self, project: str, before: float, gone_jobs: Sequence[str] = ()
    ) -> None:
        self._check()
        gone = set(gone_jobs)
        if project in self._samples:
            self._samples[project] = [
                row for row in self._samples[project] if row[2] >= before and row[0] not in gone
            ]

    # -- small values ---------------------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        self._check()
        return self._meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self._check()
        self._meta[key] = value

    async def claim_once(self, key: str, until: float) -> bool:
        self._check()
        now = self._clock()
        for old_key in [k for k, end in self._claims.items() if end <= now]:
            del self._claims[old_key]
        if key in self._claims:
            return False
        self._claims[key] = until
        return True
