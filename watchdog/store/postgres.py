"""The PostgreSQL :class:`~watchdog.store.Store`: one database shared by several replicas.

Every method is one transaction on a pooled connection of a migrated database, bounded in
time (:mod:`watchdog.store.postgres_pool`): an outage makes calls fail fast with
:class:`StoreError`, and the pool heals by itself when the server is back.

Leases are timed by the database's ``now()``, never a replica's clock. A fenced write
first takes a share lock on its project's lease row (``FOR SHARE``) and compares the
term, so a takeover cannot slip in between the check and the write; outbox items are
claimed row by row with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

import structlog

from watchdog.domain.alerts import AlertState, alert_from_dict
from watchdog.domain.outgoing import Outgoing, dump_outgoing
from watchdog.domain.samples import SampleRow
from watchdog.store import (
    Fence,
    Lease,
    MessageRef,
    OutboxRecord,
    Silence,
    StoreError,
)
from watchdog.store.postgres_oncall import PostgresOnCall, write_history
from watchdog.store.postgres_pool import Cursor, Database
from watchdog.store.postgres_schema import SCHEMA_VERSION
from watchdog.store.postgres_sql import (
    INSERT_ITEM,
    MARK_DEAD,
    UPSERT_ALERT,
    UPSERT_MESSAGE,
    check_fence,
    read_due,
)
from watchdog.store.postgres_url import mask_url
from watchdog.store.rows import alert_rows, history_rows, message_rows

__all__ = ["SCHEMA_VERSION", "PostgresStore", "mask_url"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

_NOW = "extract(epoch from now())::float8"


class PostgresStore(PostgresOnCall):
    """The :class:`~watchdog.store.Store` protocol on one PostgreSQL database (the on-call
    tables' methods are :class:`~watchdog.store.postgres_oncall.PostgresOnCall`'s)."""

    def __init__(self, url: str, *, max_size: int = 4, timeout: float = 5.0) -> None:
        self._db = Database(url, max_size=max_size, timeout=timeout)

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.where!r})"

    async def open(self) -> None:
        """Migrate the schema and start the pool; :class:`StoreError` in one line (the
        password masked) when the URL is malformed or the database cannot be used."""
        await self._db.open()

    async def close(self) -> None:
        """Close the pool. Idempotent."""
        await self._db.close()

    async def _tx(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        return await self._db.tx(work)

    # -- leases ---------------------------------------------------------------------------
    async def acquire_lease(self, project: str, holder: str, ttl: float) -> int | None:
        async def work(cur: Cursor) -> int | None:
            await cur.execute(
                f"""INSERT INTO leases AS l (project, holder, term, expires)
                    VALUES (%(p)s, %(h)s, 1, {_NOW} + %(ttl)s)
                    ON CONFLICT (project) DO UPDATE SET
                        term = CASE WHEN l.expires > {_NOW} AND l.holder = EXCLUDED.holder
                                    THEN l.term ELSE l.term + 1 END,
                        holder = EXCLUDED.holder, expires = EXCLUDED.expires
                    WHERE l.expires <= {_NOW} OR l.holder = EXCLUDED.holder
                    RETURNING term""",
                {"p": project, "h": holder, "ttl": float(ttl)},
            )
            row = await cur.fetchone()
            return None if row is None else int(row[0])

        return await self._tx(work)

    async def release_lease(self, project: str, holder: str) -> None:
        async def work(cur: Cursor) -> None:
            # The row (and its term) stays, so the next holder's term is a bigger one.
            await cur.execute(
                f"""UPDATE leases SET expires = LEAST(expires, {_NOW})
                    WHERE project = %s AND holder = %s""",
                (project, holder),
            )

        await self._tx(work)

    async def heartbeat(self, replica: str, ttl: float) -> list[str]:
        async def work(cur: Cursor) -> list[str]:
            await cur.execute(
                f"""INSERT INTO replicas (name, expires) VALUES (%s, {_NOW} + %s)
                    ON CONFLICT (name) DO UPDATE SET expires = EXCLUDED.expires""",
                (replica, float(ttl)),
            )
            await cur.execute(f"SELECT name FROM replicas WHERE expires > {_NOW} ORDER BY name")
            return [str(name) for (name,) in await cur.fetchall()]

        return await self._tx(work)

    async def leases(self) -> list[Lease]:
        async def work(cur: Cursor) -> list[Lease]:
            await cur.execute("SELECT project, holder, term, expires FROM leases ORDER BY project")
            return [Lease(p, h, int(t), float(e)) for p, h, t, e in await cur.fetchall()]

        return await self._tx(work)

    # -- alerts and the tick's outcome ----------------------------------------------------
    async def load_alerts(self, project: str | None = None) -> list[AlertState]:
        async def work(cur: Cursor) -> list[tuple[str, str]]:
            await cur.execute(
                "SELECT fingerprint, state FROM alerts"
                " WHERE %(p)s::text IS NULL OR project = %(p)s ORDER BY fingerprint",
                {"p": project},
            )
            return [(str(fp), str(text)) for fp, text in await cur.fetchall()]

        states: list[AlertState] = []
        for fp, text in await self._tx(work):
            try:
                states.append(alert_from_dict(json.loads(text)))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.error("alert state unreadable, skipped", fingerprint=fp, error=str(exc))
        return states

    async def commit(
        self,
        *,
        fence: Fence,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        alerts = alert_rows(fence, upserts, deletes)
        items = [(fence.project, dump_outgoing(item), now, now) for item in outbox]
        history, resolved = history_rows(outbox)

        async def work(cur: Cursor) -> None:
            await check_fence(cur, fence)
            if alerts:
                await cur.executemany(UPSERT_ALERT, alerts)
            if deletes:
                await cur.execute(
                    "DELETE FROM alerts WHERE fingerprint = ANY(%s)", (list(deletes),)
                )
            if items:
                await cur.executemany(INSERT_ITEM, items)
            await write_history(cur, history, resolved)

        await self._tx(work)

    async def enqueue(self, items: Sequence[Outgoing], *, project: str, now: float) -> None:
        rows = [(project, dump_outgoing(item), now, now) for item in items]

        async def work(cur: Cursor) -> None:
            if rows:
                await cur.executemany(INSERT_ITEM, rows)

        await self._tx(work)

    # -- outbox ---------------------------------------------------------------------------
    async def outbox_due(
        self, now: float, limit: int = 500, projects: Collection[str] | None = None
    ) -> list[OutboxRecord]:
        if limit <= 0:
            return []
        chosen = None if projects is None else sorted(set(projects))

        async def work(cur: Cursor) -> tuple[list[OutboxRecord], list[tuple[str, int]]]:
            return await read_due(cur, now, limit, chosen)

        due, unreadable = await self._tx(work)
        if unreadable:

            async def mark(cur: Cursor) -> None:
                await cur.executemany(MARK_DEAD, unreadable)

            try:
                await self._tx(mark)
            except StoreError as exc:
                log.error("outbox unreadable items not marked dead", error=str(exc))
        return due

    async def outbox_start(self, item_ids: Sequence[int], fence: Fence) -> list[int]:
        ids = sorted(set(item_ids))

        async def work(cur: Cursor) -> list[int]:
            await check_fence(cur, fence)
            # Rows another deliverer is claiming right now are skipped, not waited for;
            # rows claimed under a term that is still current stay with their claimer.
            await cur.execute(
                """SELECT o.id FROM outbox o
                   WHERE o.id = ANY(%(ids)s) AND NOT o.dead AND o.project IN (%(p)s, '')
                     AND (o.claim_term IS NULL OR o.claim_term IS DISTINCT FROM
                          (SELECT l.term FROM leases l WHERE l.project = o.claim_project))
                   ORDER BY o.id FOR UPDATE OF o SKIP LOCKED""",
                {"ids": ids, "p": fence.project},
            )
            claimed = [int(row[0]) for row in await cur.fetchall()]
            if claimed:
                await cur.execute(
                    """UPDATE outbox SET maybe_sent = true, claim_project = %s, claim_term = %s
                       WHERE id = ANY(%s)""",
                    (fence.project, fence.term, claimed),
                )
            return claimed

        return await self._tx(work) if ids else []

    async def outbox_done(
        self, item_id: int, fence: Fence, messages: Mapping[str, MessageRef] = {}
    ) -> None:
        rows = message_rows(messages)

        async def work(cur: Cursor) -> None:
            await check_fence(cur, fence)
            await cur.execute("DELETE FROM outbox WHERE id = %s", (item_id,))
            if rows:
                await cur.executemany(UPSERT_MESSAGE, rows)

        await self._tx(work)

    async def outbox_retry(
        self, item_id: int, next_attempt: float, error: str, *, maybe_sent: bool = False
    ) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(
                """UPDATE outbox SET attempts = attempts + 1, next_attempt = %s, error = %s,
                       maybe_sent = %s, claim_project = NULL, claim_term = NULL
                   WHERE id = %s""",
                (next_attempt, error, maybe_sent, item_id),
            )

        await self._tx(work)

    async def outbox_dead(self, item_id: int, error: str) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(MARK_DEAD, (error, item_id))

        await self._tx(work)

    async def outbox_size(self, projects: Collection[str] | None = None) -> int:
        chosen = None if projects is None else sorted(set(projects))

        async def work(cur: Cursor) -> int:
            await cur.execute(
                """SELECT count(*) FROM outbox WHERE NOT dead
                     AND (%(projects)s::text[] IS NULL OR project = ANY(%(projects)s))""",
                {"projects": chosen},
            )
            row = await cur.fetchone()
            return 0 if row is None else int(row[0])

        return await self._tx(work)

    # -- Slack messages of incidents ------------------------------------------------------
    async def get_message(self, key: str) -> MessageRef | None:
        async def work(cur: Cursor) -> tuple[Any, ...] | None:
            await cur.execute("SELECT channel, ts, kind, data FROM messages WHERE key = %s", (key,))
            return await cur.fetchone()

        row = await self._tx(work)
        if row is None:
            return None
        channel, ts, kind, data = row
        return MessageRef(channel=channel, ts=ts, kind=kind, data=json.loads(data))

    async def save_messages(self, messages: Mapping[str, MessageRef], fence: Fence) -> None:
        rows = message_rows(messages)

        async def work(cur: Cursor) -> None:
            await check_fence(cur, fence)
            if rows:
                await cur.executemany(UPSERT_MESSAGE, rows)

        await self._tx(work)

    # -- silences -------------------------------------------------------------------------
    async def add_silence(self, silence: Silence) -> None:
        s = silence

        async def work(cur: Cursor) -> None:
            await cur.execute(
                """INSERT INTO silences (id, target_kind, target, until, created_by,
                       created_at, reason) VALUES (%s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET target_kind = EXCLUDED.target_kind,
                       target = EXCLUDED.target, until = EXCLUDED.until,
                       created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at,
                       reason = EXCLUDED.reason""",
                (
                    s.id,
                    s.target_kind,
                    s.target,
                    float(s.until),
                    s.created_by,
                    float(s.created_at),
                    s.reason,
                ),
            )

        await self._tx(work)

    async def remove_silence(self, silence_id: str) -> bool:
        async def work(cur: Cursor) -> bool:
            await cur.execute("DELETE FROM silences WHERE id = %s", (silence_id,))
            return cur.rowcount > 0

        return await self._tx(work)

    async def list_silences(self) -> list[Silence]:
        async def work(cur: Cursor) -> list[tuple[Any, ...]]:
            await cur.execute(
                """SELECT id, target_kind, target, until, created_by, created_at, reason
                   FROM silences ORDER BY created_at, id"""
            )
            return await cur.fetchall()

        return [
            Silence(sid, cast(Literal["rule", "job", "alert"], kind), target, until, by, at, reason)
            for sid, kind, target, until, by, at, reason in await self._tx(work)
        ]

    # -- sample history -------------------------------------------------------------------
    async def append_samples(self, project: str, rows: Sequence[SampleRow]) -> None:
        # NaN is no sample (SQLite cannot keep it): dropped here too, so backends agree.
        finite = [
            (project, job, metric, float(t), float(v))
            for job, metric, t, v in rows
            if not (math.isnan(t) or math.isnan(v))
        ]

        async def work(cur: Cursor) -> None:
            async with cur.copy("COPY samples (project, job_id, metric, t, v) FROM STDIN") as copy:
                for row in finite:
                    await copy.write_row(row)

        if finite:
            await self._tx(work)

    async def load_samples(
        self, project: str, since: float, until: float | None = None
    ) -> list[SampleRow]:
        async def work(cur: Cursor) -> list[SampleRow]:
            await cur.execute(
                """SELECT job_id, metric, t, v FROM samples
                   WHERE project = %s AND t >= %s AND t < %s
                   ORDER BY t, job_id, metric, seq""",
                (project, since, math.inf if until is None else until),
            )
            return [(str(j), str(m), float(t), float(v)) for j, m, t, v in await cur.fetchall()]

        return await self._tx(work)

    async def prune_samples(
        self, project: str, before: float, gone_jobs: Sequence[str] = ()
    ) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(
                "DELETE FROM samples WHERE project = %s AND (t < %s OR job_id = ANY(%s))",
                (project, before, list(gone_jobs)),
            )

        await self._tx(work)

    # -- small values ---------------------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        async def work(cur: Cursor) -> str | None:
            await cur.execute("SELECT value FROM meta WHERE key = %s", (key,))
            row = await cur.fetchone()
            return None if row is None else str(row[0])

        return await self._tx(work)

    async def set_meta(self, key: str, value: str) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(
                """INSERT INTO meta (key, value) VALUES (%s, %s)
                   ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value""",
                (key, value),
            )

        await self._tx(work)

    async def claim_once(self, key: str, until: float) -> bool:
        async def work(cur: Cursor) -> bool:
            await cur.execute(f"DELETE FROM claimed_keys WHERE until <= {_NOW}")
            # Two replicas claiming one key at once: the second waits on the first's
            # uncommitted row, then finds the conflict.
            await cur.execute(
                """INSERT INTO claimed_keys (key, until) VALUES (%s, %s)
                    ON CONFLICT (key) DO NOTHING RETURNING key""",
                (key, float(until)),
            )
            return await cur.fetchone() is not None

        return await self._tx(work)
