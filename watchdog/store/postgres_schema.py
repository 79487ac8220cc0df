"""The PostgreSQL schema, its versioned migrations, and how a database is migrated.

Several replicas may start at once against one database: the migration runs in one
transaction under an advisory lock, so the first replica migrates and the others then
find the schema current. The version lives in ``watchdog_schema``; a database whose
version is newer than this release knows is refused, never migrated down.

Text columns that are ordered on are ``COLLATE "C"``, byte order, as SQLite and the
in-memory store order them; JSON is kept as text, in the same serialised form.
"""

from __future__ import annotations

import psycopg

from watchdog.store import StoreError

#: ``pg_advisory_xact_lock`` key serialising migrations ("wdog" in ASCII).
MIGRATION_LOCK = 0x77646F67

#: Step ``i`` takes the schema from version ``i`` to ``i + 1``; all pending steps run in
#: one transaction. Never edit a released step: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE alerts (
            fingerprint text COLLATE "C" PRIMARY KEY, project text NOT NULL,
            rule text NOT NULL, job_id text NOT NULL, phase text NOT NULL,
            state text NOT NULL)""",
        "CREATE INDEX alerts_project ON alerts (project)",
        """CREATE TABLE outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, project text NOT NULL,
            item text NOT NULL, attempts integer NOT NULL DEFAULT 0,
            next_attempt double precision NOT NULL, created_at double precision NOT NULL,
            dead boolean NOT NULL DEFAULT false, error text,
            maybe_sent boolean NOT NULL DEFAULT false,
            claim_project text, claim_term bigint)""",
        "CREATE INDEX outbox_due ON outbox (next_attempt) WHERE NOT dead",
        """CREATE TABLE messages (
            key text PRIMARY KEY, channel text NOT NULL, ts text NOT NULL,
            kind text NOT NULL, data text NOT NULL)""",
        """CREATE TABLE silences (
            id text COLLATE "C" PRIMARY KEY, target_kind text NOT NULL, target text NOT NULL,
            until double precision NOT NULL, created_by text NOT NULL,
            created_at double precision NOT NULL, reason text NOT NULL DEFAULT '')""",
        """CREATE TABLE samples (
            seq bigint GENERATED ALWAYS AS IDENTITY, project text NOT NULL,
            job_id text COLLATE "C" NOT NULL, metric text COLLATE "C" NOT NULL,
            t double precision NOT NULL, v double precision NOT NULL)""",
        "CREATE INDEX samples_project_t ON samples (project, t)",
        "CREATE INDEX samples_project_job ON samples (project, job_id)",
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE leases (
            project text COLLATE "C" PRIMARY KEY, holder text NOT NULL,
            term bigint NOT NULL, expires double precision NOT NULL)""",
        # Replicas say they are alive here, so projects are shared out among them.
        """CREATE TABLE replicas (
            name text COLLATE "C" PRIMARY KEY, expires double precision NOT NULL)""",
        # The on-call workflow: acknowledgements by incident, the incident history the
        # digest reads, and the marks of what must happen once (a day's digest).
        """CREATE TABLE acks (
            incident_id text COLLATE "C" PRIMARY KEY, project text NOT NULL,
            fingerprint text NOT NULL, rule text NOT NULL, job_id text NOT NULL,
            user_id text NOT NULL, at double precision NOT NULL)""",
        "CREATE INDEX acks_project ON acks (project)",
        """CREATE TABLE incidents (
            incident_id text COLLATE "C" PRIMARY KEY, project text NOT NULL,
            fingerprint text NOT NULL, rule text NOT NULL, job_id text NOT NULL,
            table_name text, severity text NOT NULL, fired_at double precision NOT NULL,
            resolved_at double precision, acked_at double precision, acked_by text)""",
        "CREATE INDEX incidents_fired ON incidents (fired_at)",
        "CREATE INDEX incidents_project ON incidents (project)",
        """CREATE TABLE marks (
            key text PRIMARY KEY, at double precision NOT NULL)""",
        # Keys claimed once (signatures of Slack requests served), forgotten after `until`.
        """CREATE TABLE claimed_keys (
            key text PRIMARY KEY, until double precision NOT NULL)""",
        "CREATE INDEX claimed_keys_until ON claimed_keys (until)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(StoreError):
    """The database was migrated by a newer release than this one."""


async def migrate(conn: psycopg.AsyncConnection[tuple[object, ...]], where: str) -> int | None:
    """Bring the schema to :data:`SCHEMA_VERSION`; the version migrated from, or None
    when it was current. ``where`` names the database (password masked) in errors."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS watchdog_schema (version integer NOT NULL)")
        cur = await conn.execute("SELECT version FROM watchdog_schema")
        row = await cur.fetchone()
        version = 0 if row is None else int(str(row[0]))
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"PostgreSQL state at {where} has schema version {version}, newer than this "
                f"polaris-watchdog understands ({SCHEMA_VERSION}); upgrade polaris-watchdog "
                "(it never migrates a database down)"
            )
        if version == SCHEMA_VERSION:
            return None
        for step in MIGRATIONS[version:]:
            for statement in step:
                await conn.execute(statement.encode())
        if row is None:
            await conn.execute("INSERT INTO watchdog_schema VALUES (%s)", (SCHEMA_VERSION,))
        else:
            await conn.execute("UPDATE watchdog_schema SET version = %s", (SCHEMA_VERSION,))
        return version
