"""The in-memory :class:`~watchdog.store.Store`: for tests and ``WATCHDOG_STATE=:memory:``.

It keeps what the SQLite store keeps, in the same serialised form (alert states, outbox
items and message data as JSON text), so that both backends behave alike down to the
details: a caller can never mutate stored state through an object it passed in or got
back, values that JSON cannot hold fail here too, and what comes out of the store is the
same round-tripped value SQLite would return. Nothing survives the process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from watchdog.domain.alerts import AlertState, alert_from_dict, alert_to_dict
from watchdog.domain.outgoing import Outgoing, dump_outgoing, load_outgoing
from watchdog.store import MessageRef, OutboxRecord, SampleRow, Silence


@dataclass(slots=True)
class _OutboxRow:
    item: str  # dump_outgoing() JSON, as in the outbox table
    attempts: int
    next_attempt: float
    created_at: float
    dead: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _MessageRow:
    channel: str
    ts: str
    kind: str
    data: str  # JSON text


class MemoryStore:
    """Dicts and lists behind the :class:`~watchdog.store.Store` protocol."""

    def __init__(self) -> None:
        self._state = "new"  # new -> open -> closed; closed is final, as for SqliteStore
        self._alerts: dict[str, str] = {}  # fingerprint -> alert JSON
        self._outbox: dict[int, _OutboxRow] = {}  # insertion order is id order
        self._last_outbox_id = 0  # ids are never reused, like AUTOINCREMENT
        self._messages: dict[str, _MessageRow] = {}
        self._silences: dict[str, Silence] = {}
        self._samples: list[SampleRow] = []
        self._meta: dict[str, str] = {}
        self._lease: tuple[str, float] | None = None  # (holder, expires)

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

    # -- alerts and the tick's outcome ---------------------------------------------------
    async def load_alerts(self) -> list[AlertState]:
        self._check()
        return [alert_from_dict(json.loads(self._alerts[fp])) for fp in sorted(self._alerts)]

    async def commit(
        self,
        *,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        self._check()
        # Serialise everything before touching state: a value that cannot be stored
        # fails the whole commit and leaves the store as it was.
        alerts = [(state.fingerprint, json.dumps(alert_to_dict(state))) for state in upserts]
        items = [dump_outgoing(item) for item in outbox]
        for fp, text in alerts:
            self._alerts[fp] = text
        for fp in deletes:
            self._alerts.pop(fp, None)
        for text in items:
            self._last_outbox_id += 1
            self._outbox[self._last_outbox_id] = _OutboxRow(
                item=text, attempts=0, next_attempt=float(now), created_at=float(now)
            )

    # -- outbox ---------------------------------------------------------------------------
    async def outbox_due(self, now: float, limit: int = 500) -> list[OutboxRecord]:
        self._check()
        due: list[OutboxRecord] = []
        if limit <= 0:  # SQLite would read a negative LIMIT as "no limit"; both say none
            return due
        for item_id, row in self._outbox.items():
            if len(due) >= limit:
                break
            if not row.dead and row.next_attempt <= now:
                due.append(
                    OutboxRecord(
                        id=item_id,
                        item=load_outgoing(row.item),
                        attempts=row.attempts,
                        next_attempt=row.next_attempt,
                        created_at=row.created_at,
                    )
                )
        return due

    async def outbox_done(self, item_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        self._check()
        rows = _message_rows(messages)
        self._outbox.pop(item_id, None)
        self._messages.update(rows)

    async def outbox_retry(self, item_id: int, next_attempt: float, error: str) -> None:
        self._check()
        row = self._outbox.get(item_id)
        if row is not None:
            row.attempts += 1
            row.next_attempt = float(next_attempt)
            row.error = error

    async def outbox_dead(self, item_id: int, error: str) -> None:
        self._check()
        row = self._outbox.get(item_id)
        if row is not None:
            row.dead = True
            row.error = error

    async def outbox_size(self) -> int:
        self._check()
        return sum(1 for row in self._outbox.values() if not row.dead)

    # -- Slack messages of incidents ------------------------------------------------------
    async def get_message(self, key: str) -> MessageRef | None:
        self._check()
        row = self._messages.get(key)
        if row is None:
            return None
        return MessageRef(channel=row.channel, ts=row.ts, kind=row.kind, data=json.loads(row.data))

    async def save_messages(self, messages: Mapping[str, MessageRef]) -> None:
        self._check()
        self._messages.update(_message_rows(messages))

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

    # -- sample history -------------------------------------------------------------------
    async def append_samples(self, rows: Sequence[SampleRow]) -> None:
        self._check()
        # float() as SQLite's REAL columns do, so an int timestamp reads back as a float;
        # NaN dropped as SqliteStore drops it (SQLite would store it as NULL).
        self._samples.extend(
            (job, metric, float(t), float(v))
            for job, metric, t, v in rows
            if not (math.isnan(t) or math.isnan(v))
        )

    async def load_samples(self, since: float, until: float | None = None) -> list[SampleRow]:
        self._check()
        end = math.inf if until is None else until
        rows = [row for row in self._samples if since <= row[2] < end]
        # Stable sort: exact duplicates keep insertion order, as SQLite's rowid tie-break.
        rows.sort(key=lambda row: (row[2], row[0], row[1]))
        return rows

    async def prune_samples(self, before: float, gone_jobs: Sequence[str] = ()) -> None:
        self._check()
        gone = set(gone_jobs)
        self._samples = [row for row in self._samples if row[2] >= before and row[0] not in gone]

    # -- small values and leadership ------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        self._check()
        return self._meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self._check()
        self._meta[key] = value

    async def acquire_lease(self, holder: str, now: float, ttl: float) -> bool:
        self._check()
        if self._lease is not None:
            current, expires = self._lease
            if current != holder and expires > now:
                return False
        self._lease = (holder, float(now + ttl))
        return True

    async def release_lease(self, holder: str) -> None:
        self._check()
        if self._lease is not None and self._lease[0] == holder:
            self._lease = None


def _message_rows(messages: Mapping[str, MessageRef]) -> dict[str, _MessageRow]:
    return {
        key: _MessageRow(ref.channel, ref.ts, ref.kind, json.dumps(dict(ref.data)))
        for key, ref in messages.items()
    }
