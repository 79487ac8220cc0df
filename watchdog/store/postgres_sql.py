"""SQL the PostgreSQL store's methods share: the statements, the fence check, the outbox read.

Each function takes a cursor inside a transaction the caller opened
(:meth:`watchdog.store.postgres_pool.Database.tx`).
"""

from __future__ import annotations

import structlog

from watchdog.domain.outgoing import load_outgoing
from watchdog.store import Fence, FencedOut, OutboxRecord
from watchdog.store.postgres_pool import Cursor

log = structlog.get_logger(__name__)

UPSERT_ALERT = """INSERT INTO alerts (fingerprint, project, rule, job_id, phase, state)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (fingerprint) DO UPDATE SET project = EXCLUDED.project, rule = EXCLUDED.rule,
        job_id = EXCLUDED.job_id, phase = EXCLUDED.phase, state = EXCLUDED.state"""
UPSERT_MESSAGE = """INSERT INTO messages (key, channel, ts, kind, data) VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (key) DO UPDATE SET channel = EXCLUDED.channel, ts = EXCLUDED.ts,
        kind = EXCLUDED.kind, data = EXCLUDED.data"""
INSERT_ITEM = """INSERT INTO outbox (project, item, next_attempt, created_at)
    VALUES (%s, %s, %s, %s)"""
MARK_DEAD = """UPDATE outbox SET dead = true, error = %s, claim_project = NULL,
    claim_term = NULL WHERE id = %s"""


async def check_fence(cur: Cursor, fence: Fence) -> None:
    """The project's lease term, share-locked until the transaction ends: a takeover
    (which updates the row) waits for our write, or our check sees its new term."""
    await cur.execute("SELECT term FROM leases WHERE project = %s FOR SHARE", (fence.project,))
    row = await cur.fetchone()
    current = None if row is None else int(row[0])
    if current != fence.term:
        raise FencedOut(fence.project, fence.term, current)


async def read_due(
    cur: Cursor, now: float, limit: int, projects: list[str] | None
) -> tuple[list[OutboxRecord], list[tuple[str, int]]]:
    """Due items (oldest first), and the (error, id) of the ones that no longer load."""
    due: list[OutboxRecord] = []
    unreadable: list[tuple[str, int]] = []
    after = 0
    while len(due) < limit:
        want = limit - len(due)
        await cur.execute(
            """SELECT id, item, attempts, next_attempt, created_at, project, maybe_sent
               FROM outbox WHERE NOT dead AND next_attempt <= %(now)s AND id > %(after)s
                 AND (%(projects)s::text[] IS NULL OR project = ANY(%(projects)s))
               ORDER BY id LIMIT %(want)s""",
            {"now": now, "after": after, "projects": projects, "want": want},
        )
        rows = await cur.fetchall()
        for item_id, text, attempts, next_attempt, created_at, project, maybe in rows:
            after = item_id
            try:
                item = load_outgoing(text)
            except ValueError as exc:
                log.error("outbox item unreadable, marked dead", id=item_id, error=str(exc))
                unreadable.append((f"unreadable item: {exc}", item_id))
                continue
            due.append(
                OutboxRecord(
                    int(item_id),
                    item,
                    int(attempts),
                    float(next_attempt),
                    float(created_at),
                    str(project),
                    bool(maybe),
                )
            )
        if len(rows) < want:
            break
    return due, unreadable
