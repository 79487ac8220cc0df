"""The SQLite store's share of the on-call workflow: acknowledgements, the incident
history, and what must happen once.

:class:`SqliteOnCall` holds the :class:`~watchdog.store.Store` methods of these tables;
:class:`~watchdog.store.sqlite.SqliteStore` inherits them and runs each on its worker
thread as one transaction, like the rest (see :mod:`watchdog.store.sqlite_tx`). The
history rows of a commit are written by ``SqliteStore.commit`` with
:data:`UPSERT_INCIDENT` and :data:`DROP_ACK`, in the commit's own transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from watchdog.domain.oncall import Ack, Incident
from watchdog.domain.outgoing import Outgoing, dump_outgoing
from watchdog.store import Fence
from watchdog.store.rows import incident_from_row
from watchdog.store.sqlite_schema import transaction
from watchdog.store.sqlite_tx import INSERT_ITEM, check_fence, fetch, write_many

P = ParamSpec("P")
T = TypeVar("T")

#: The fire time and the first acknowledgement stay; a resolve time, once given, stays.
#: (On the right of SET, columns are the row as it was.)
UPSERT_INCIDENT = """INSERT INTO incidents (incident_id, project, fingerprint, rule, job_id,
        table_name, severity, fired_at, resolved_at, acked_at, acked_by)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (incident_id) DO UPDATE SET
        table_name = excluded.table_name, severity = excluded.severity,
        resolved_at = coalesce(excluded.resolved_at, incidents.resolved_at),
        acked_by = CASE WHEN incidents.acked_at IS NULL THEN excluded.acked_by
                        ELSE incidents.acked_by END,
        acked_at = coalesce(incidents.acked_at, excluded.acked_at)"""
DROP_ACK = "DELETE FROM acks WHERE incident_id = ?"
_ACK_COLUMNS = "incident_id, project, rule, job_id, user_id, at"
_INCIDENT_COLUMNS = """incident_id, project, rule, job_id, table_name, severity, fired_at,
    resolved_at, acked_at, acked_by"""


def _remove_ack(conn: sqlite3.Connection, incident_id: str) -> bool:
    with transaction(conn, write=True):
        gone = conn.execute(DROP_ACK, (incident_id,)).rowcount > 0
        conn.execute(
            "UPDATE incidents SET acked_at = NULL, acked_by = NULL WHERE incident_id = ?",
            (incident_id,),
        )
        return gone


def _enqueue_once(
    conn: sqlite3.Connection,
    key: str,
    rows: Sequence[tuple[str, str, float, float]],
    fence: Fence,
    now: float,
) -> bool:
    with transaction(conn, write=True):
        check_fence(conn, fence)
        if conn.execute("INSERT OR IGNORE INTO marks VALUES (?, ?)", (key, now)).rowcount == 0:
            return False
        conn.executemany(INSERT_ITEM, rows)
        return True


class SqliteOnCall:
    """The on-call methods of :class:`~watchdog.store.sqlite.SqliteStore`."""

    async def _read(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *a: P.args, **k: P.kwargs
    ) -> T:
        raise NotImplementedError  # SqliteStore's

    async def _write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *a: P.args, **k: P.kwargs
    ) -> T:
        raise NotImplementedError  # SqliteStore's

    async def enqueue_once(
        self, key: str, items: Sequence[Outgoing], *, project: str, fence: Fence, now: float
    ) -> bool:
        rows = [(project, dump_outgoing(item), now, now) for item in items]
        return await self._write(_enqueue_once, key, rows, fence, now)

    async def add_ack(self, ack: Ack) -> None:
        await self._write(
            write_many,
            (
                f"INSERT OR REPLACE INTO acks (fingerprint, {_ACK_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        ack.fingerprint,
                        ack.incident_id,
                        ack.project,
                        ack.rule,
                        ack.job_id,
                        ack.user,
                        ack.at,
                    )
                ],
            ),
            (
                "UPDATE incidents SET acked_at = ?, acked_by = ?"
                " WHERE incident_id = ? AND acked_at IS NULL",
                [(float(ack.at), ack.user, ack.incident_id)],
            ),
        )

    async def remove_ack(self, incident_id: str) -> bool:
        return await self._write(_remove_ack, incident_id)

    async def list_acks(self, project: str | None = None) -> list[Ack]:
        rows = await self._read(
            fetch,
            f"SELECT {_ACK_COLUMNS} FROM acks WHERE ?1 IS NULL OR project = ?1"
            " ORDER BY incident_id",
            (project,),
        )
        return [Ack(iid, p, rule, job, user, float(at)) for iid, p, rule, job, user, at in rows]

    async def list_incidents(self, since: float) -> list[Incident]:
        rows = await self._read(
            fetch,
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents"
            " WHERE resolved_at IS NULL OR resolved_at >= ? ORDER BY fired_at, incident_id",
            (since,),
        )
        return [incident_from_row(row) for row in rows]

    async def prune_history(self, project: str, before: float) -> None:
        gone = "fingerprint NOT IN (SELECT fingerprint FROM alerts)"
        await self._write(
            write_many,
            (
                "DELETE FROM incidents WHERE project = ?1 AND ((resolved_at IS NOT NULL"
                f" AND resolved_at < ?2) OR (resolved_at IS NULL AND fired_at < ?2 AND {gone}))",
                [(project, before)],
            ),
            (f"DELETE FROM acks WHERE project = ? AND at < ? AND {gone}", [(project, before)]),
            ("DELETE FROM marks WHERE at < ?", [(before,)]),
        )
