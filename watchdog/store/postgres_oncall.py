"""The PostgreSQL store's share of the on-call workflow: acknowledgements, the incident
history, and what must happen once.

:class:`PostgresOnCall` holds the :class:`~watchdog.store.Store` methods of these
tables; :class:`~watchdog.store.postgres.PostgresStore` inherits them and runs each as one
transaction on a pooled connection, like the rest. The history rows of a commit are
written by ``PostgresStore.commit`` (:func:`write_history`), in the commit's own
transaction. The SQL says what the SQLite store's does
(:mod:`watchdog.store.sqlite_oncall`), in PostgreSQL's words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from watchdog.domain.oncall import Ack, Incident
from watchdog.domain.outgoing import Outgoing, dump_outgoing
from watchdog.store import Fence
from watchdog.store.postgres_pool import Cursor
from watchdog.store.postgres_sql import INSERT_ITEM, check_fence
from watchdog.store.rows import IncidentRow, incident_from_row

T = TypeVar("T")

#: The fire time and the first acknowledgement stay; a resolve time, once given, stays.
UPSERT_INCIDENT = """INSERT INTO incidents AS i (incident_id, project, fingerprint, rule,
        job_id, table_name, severity, fired_at, resolved_at, acked_at, acked_by)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (incident_id) DO UPDATE SET
        table_name = EXCLUDED.table_name, severity = EXCLUDED.severity,
        resolved_at = coalesce(EXCLUDED.resolved_at, i.resolved_at),
        acked_by = CASE WHEN i.acked_at IS NULL THEN EXCLUDED.acked_by ELSE i.acked_by END,
        acked_at = coalesce(i.acked_at, EXCLUDED.acked_at)"""
_ACK_COLUMNS = "incident_id, project, rule, job_id, user_id, at"
_INCIDENT_COLUMNS = """incident_id, project, rule, job_id, table_name, severity, fired_at,
    resolved_at, acked_at, acked_by"""
_GONE = "fingerprint NOT IN (SELECT fingerprint FROM alerts)"


async def write_history(cur: Cursor, rows: Sequence[IncidentRow], resolved: Sequence[str]) -> None:
    """Inside a commit's transaction: record its incidents, end the resolved ones' acks."""
    if rows:
        await cur.executemany(UPSERT_INCIDENT, rows)
    if resolved:
        await cur.execute("DELETE FROM acks WHERE incident_id = ANY(%s)", (list(resolved),))


def _ack_row(ack: Ack) -> tuple[str, str, str, str, str, str, float]:
    return (ack.fingerprint, ack.incident_id, ack.project, ack.rule, ack.job_id, ack.user, ack.at)


class PostgresOnCall:
    """The on-call methods of :class:`~watchdog.store.postgres.PostgresStore`."""

    async def _tx(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        raise NotImplementedError  # PostgresStore's

    async def enqueue_once(
        self, key: str, items: Sequence[Outgoing], *, project: str, fence: Fence, now: float
    ) -> bool:
        rows = [(project, dump_outgoing(item), now, now) for item in items]

        async def work(cur: Cursor) -> bool:
            await check_fence(cur, fence)
            await cur.execute(
                "INSERT INTO marks (key, at) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                (key, float(now)),
            )
            if cur.rowcount == 0:
                return False
            if rows:
                await cur.executemany(INSERT_ITEM, rows)
            return True

        return await self._tx(work)

    async def add_ack(self, ack: Ack) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(
                f"""INSERT INTO acks (fingerprint, {_ACK_COLUMNS})
                    VALUES (%s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (incident_id) DO UPDATE SET user_id = EXCLUDED.user_id,
                        at = EXCLUDED.at""",
                (*_ack_row(ack),),
            )
            await cur.execute(
                """UPDATE incidents SET acked_at = %s, acked_by = %s
                   WHERE incident_id = %s AND acked_at IS NULL""",
                (float(ack.at), ack.user, ack.incident_id),
            )

        await self._tx(work)

    async def remove_ack(self, incident_id: str) -> bool:
        async def work(cur: Cursor) -> bool:
            await cur.execute("DELETE FROM acks WHERE incident_id = %s", (incident_id,))
            gone = cur.rowcount > 0
            await cur.execute(
                "UPDATE incidents SET acked_at = NULL, acked_by = NULL WHERE incident_id = %s",
                (incident_id,),
            )
            return gone

        return await self._tx(work)

    async def list_acks(self, project: str | None = None) -> list[Ack]:
        async def work(cur: Cursor) -> list[Ack]:
            await cur.execute(
                f"""SELECT {_ACK_COLUMNS} FROM acks
                    WHERE %(p)s::text IS NULL OR project = %(p)s ORDER BY incident_id""",
                {"p": project},
            )
            return [
                Ack(str(i), str(p), str(r), str(j), str(u), float(at))
                for i, p, r, j, u, at in await cur.fetchall()
            ]

        return await self._tx(work)

    async def list_incidents(self, since: float) -> list[Incident]:
        async def work(cur: Cursor) -> list[Incident]:
            await cur.execute(
                f"""SELECT {_INCIDENT_COLUMNS} FROM incidents
                    WHERE resolved_at IS NULL OR resolved_at >= %s
                    ORDER BY fired_at, incident_id""",
                (float(since),),
            )
            return [incident_from_row(row) for row in await cur.fetchall()]

        return await self._tx(work)

    async def prune_history(self, project: str, before: float) -> None:
        async def work(cur: Cursor) -> None:
            params = {"p": project, "before": float(before)}
            await cur.execute(
                f"""DELETE FROM incidents WHERE project = %(p)s AND (
                        (resolved_at IS NOT NULL AND resolved_at < %(before)s)
                        OR (resolved_at IS NULL AND fired_at < %(before)s AND {_GONE}))""",
                params,
            )
            await cur.execute(
                f"DELETE FROM acks WHERE project = %(p)s AND at < %(before)s AND {_GONE}",
                params,
            )
            await cur.execute("DELETE FROM marks WHERE at < %(before)s", params)

        await self._tx(work)
