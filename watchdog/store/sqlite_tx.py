"""The SQLite store's transactions: the SQL each method runs on the store's worker thread.

Every function here takes the store's connection and is one transaction (see
:func:`watchdog.store.sqlite_schema.transaction`); :class:`~watchdog.store.sqlite.SqliteStore`
runs them on its single worker thread, in call order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import structlog

from watchdog.domain.outgoing import load_outgoing
from watchdog.store import (
    Fence,
    FencedOut,
    OutboxRecord,
)
from watchdog.store.rows import claimable, lease_term
from watchdog.store.sqlite_schema import transaction

log = structlog.get_logger(__name__)


UPSERT_ALERT = """INSERT OR REPLACE INTO alerts (fingerprint, project, rule, job_id, phase, state)
    VALUES (?, ?, ?, ?, ?, ?)"""
UPSERT_MESSAGE = """INSERT OR REPLACE INTO messages (key, channel, ts, kind, data)
    VALUES (?, ?, ?, ?, ?)"""
INSERT_ITEM = "INSERT INTO outbox (project, item, next_attempt, created_at) VALUES (?, ?, ?, ?)"
MARK_DEAD = """UPDATE outbox SET dead = 1, error = ?, claim_project = NULL, claim_term = NULL
    WHERE id = ?"""
SILENCE_COLUMNS = "id, target_kind, target, until, created_by, created_at, reason"


def in_projects(projects: Collection[str] | None) -> tuple[str, tuple[str, ...]]:
    """An ``AND project IN (...)`` clause and its parameters (none when not filtering)."""
    if projects is None:
        return "", ()
    chosen = tuple(sorted(set(projects)))
    if not chosen:
        return " AND 0", ()
    return f" AND project IN ({', '.join('?' * len(chosen))})", chosen


# -- worker-side functions: each is one transaction on the store's connection -------------


def fetch(conn: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> list[Any]:
    with transaction(conn, write=False):
        return conn.execute(sql, params).fetchall()


def execute(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> int:
    """One statement; returns how many rows it changed."""
    with transaction(conn, write=True):
        return conn.execute(sql, params).rowcount


def write_many(conn: sqlite3.Connection, *batches: tuple[str, Iterable[Sequence[object]]]) -> None:
    """Each (statement, rows) as one executemany, all in one transaction."""
    with transaction(conn, write=True):
        for sql, rows in batches:
            conn.executemany(sql, rows)


def check_fence(conn: sqlite3.Connection, fence: Fence) -> None:
    """Inside a write transaction: the lease row cannot change before we commit."""
    row = conn.execute("SELECT term FROM leases WHERE project = ?", (fence.project,)).fetchone()
    current = None if row is None else int(row[0])
    if current != fence.term:
        raise FencedOut(fence.project, fence.term, current)


def fenced_many(
    conn: sqlite3.Connection, fence: Fence, *batches: tuple[str, Iterable[Sequence[object]]]
) -> None:
    """:func:`write_many` under ``fence``: nothing is written when the term is stale."""
    with transaction(conn, write=True):
        check_fence(conn, fence)
        for sql, rows in batches:
            conn.executemany(sql, rows)


def outbox_due(
    conn: sqlite3.Connection, now: float, limit: int, projects: Collection[str] | None
) -> tuple[list[OutboxRecord], list[tuple[str, int]]]:
    """The due records, and (error, id) of items that no longer load (to mark dead)."""
    due: list[OutboxRecord] = []
    unreadable: list[tuple[str, int]] = []
    if limit <= 0:  # a negative LIMIT would mean "no limit" to SQLite
        return due, unreadable
    where, params = in_projects(projects)
    with transaction(conn, write=False):
        after = 0
        while len(due) < limit:
            want = limit - len(due)
            rows = conn.execute(
                f"""SELECT id, item, attempts, next_attempt, created_at, project, maybe_sent
                    FROM outbox WHERE dead = 0 AND next_attempt <= ? AND id > ?{where}
                    ORDER BY id LIMIT ?""",
                (now, after, *params, want),
            ).fetchall()
            for item_id, text, attempts, next_attempt, created_at, project, maybe in rows:
                after = item_id
                try:
                    item = load_outgoing(text)
                except ValueError as exc:
                    # Skipped here and marked dead after, so that one bad row does not
                    # shorten the answer: the next rows are read in its place.
                    log.error("outbox item unreadable, marked dead", id=item_id, error=str(exc))
                    unreadable.append((f"unreadable item: {exc}", item_id))
                    continue
                due.append(
                    OutboxRecord(
                        item_id, item, attempts, next_attempt, created_at, project, bool(maybe)
                    )
                )
            if len(rows) < want:
                break
    return due, unreadable


def outbox_start(conn: sqlite3.Connection, item_ids: Sequence[int], fence: Fence) -> list[int]:
    claimed: list[int] = []
    with transaction(conn, write=True):
        check_fence(conn, fence)
        terms = dict(conn.execute("SELECT project, term FROM leases").fetchall())
        for item_id in item_ids:
            row = conn.execute(
                "SELECT claim_project, claim_term FROM outbox"
                " WHERE id = ? AND dead = 0 AND project IN (?, '')",
                (item_id, fence.project),
            ).fetchone()
            if row is None:
                continue
            claim = None if row[1] is None else (str(row[0]), int(row[1]))
            if claimable(claim, terms):
                conn.execute(
                    "UPDATE outbox SET maybe_sent = 1, claim_project = ?, claim_term = ?"
                    " WHERE id = ?",
                    (fence.project, fence.term, item_id),
                )
                claimed.append(item_id)
    return claimed


def heartbeat(conn: sqlite3.Connection, replica: str, now: float, ttl: float) -> list[str]:
    with transaction(conn, write=True):
        conn.execute("INSERT OR REPLACE INTO replicas VALUES (?, ?)", (replica, now + ttl))
        rows = conn.execute(
            "SELECT name FROM replicas WHERE expires > ? ORDER BY name", (now,)
        ).fetchall()
        return [str(name) for (name,) in rows]


def acquire_lease(
    conn: sqlite3.Connection, project: str, holder: str, now: float, ttl: float
) -> int | None:
    # Read and write under one IMMEDIATE transaction: two processes cannot both see the
    # lease free and both take it.
    with transaction(conn, write=True):
        row = conn.execute(
            "SELECT holder, term, expires FROM leases WHERE project = ?", (project,)
        ).fetchone()
        term = lease_term(None if row is None else (row[0], int(row[1]), row[2]), holder, now)
        if term is not None:
            conn.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
                (project, holder, term, now + ttl),
            )
        return term


def claim_once(conn: sqlite3.Connection, key: str, until: float, now: float) -> bool:
    with transaction(conn, write=True):
        conn.execute("DELETE FROM claimed_keys WHERE until <= ?", (now,))
        inserted = conn.execute(
            "INSERT OR IGNORE INTO claimed_keys (key, until) VALUES (?, ?)", (key, until)
        )
        return inserted.rowcount == 1
