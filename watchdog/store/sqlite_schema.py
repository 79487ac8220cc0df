"""The SQLite state file's schema, its migrations, and how a connection is opened.

The schema is versioned with ``PRAGMA user_version`` and migrated on open by the steps
in :data:`MIGRATIONS`, all pending steps in one transaction, so a file is always at one
known version. Connections are WAL-mode with a busy timeout, which lets two processes
share the file (the leader lease relies on it).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 5000

#: Step ``i`` takes the schema from version ``i`` to ``i + 1``, all statements of all
#: pending steps in one transaction. Never edit a released step: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE alerts (
            fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, job_id TEXT NOT NULL,
            phase TEXT NOT NULL, state TEXT NOT NULL)""",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL,
            created_at REAL NOT NULL, dead INTEGER NOT NULL DEFAULT 0, error TEXT)""",
        """CREATE TABLE messages (
            key TEXT PRIMARY KEY, channel TEXT NOT NULL, ts TEXT NOT NULL,
            kind TEXT NOT NULL, data TEXT NOT NULL)""",
        """CREATE TABLE silences (
            id TEXT PRIMARY KEY, target_kind TEXT NOT NULL, target TEXT NOT NULL,
            until REAL NOT NULL, created_by TEXT NOT NULL, created_at REAL NOT NULL,
            reason TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE samples (
            job_id TEXT NOT NULL, metric TEXT NOT NULL, t REAL NOT NULL, v REAL NOT NULL)""",
        "CREATE INDEX samples_t ON samples (t)",
        "CREATE INDEX samples_job ON samples (job_id)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE lease (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL NOT NULL)""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class StateFileError(RuntimeError):
    """The state file cannot be used: not a database, a newer schema, a failed migration."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it if needed) and migrate the state file; :class:`StateFileError`
    when it cannot be used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = _enter_wal(conn)
        if mode == "wal":
            # With WAL, NORMAL syncs at checkpoints rather than at every commit. A commit
            # is in the WAL file (the OS page cache) when it returns, so it survives a
            # process crash or SIGKILL; only an OS crash or power loss can drop the last
            # few transactions, and the file stays consistent even then.
            conn.execute("PRAGMA synchronous = NORMAL")
        else:
            # Some filesystems cannot do WAL; a rollback journal needs FULL to be safe.
            log.warning("state file not in WAL mode", path=str(path), mode=mode)
            conn.execute("PRAGMA synchronous = FULL")
        _migrate(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.DatabaseError):  # "file is not a database", locked...
            raise StateFileError(f"cannot open state file {path}: {exc}") from exc
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout), so a writer
    # never fails half-way when another process wrote since its read snapshot.
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    with conn:  # commit, or roll back on any exception
        yield conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # IMMEDIATE: a second process opening the same file waits here, then sees our version.
    with transaction(conn, write=True):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateFileError(
                f"state file {path} has schema version {version}, newer than this "
                f"polaris-watchdog understands ({SCHEMA_VERSION}); upgrade polaris-watchdog "
                "or point WATCHDOG_STATE at another file"
            )
        try:
            for target, step in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in step:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
        except sqlite3.Error as exc:
            raise StateFileError(
                f"cannot migrate state file {path} from schema version {version} "
                f"to {SCHEMA_VERSION}: {exc}; the file is unchanged"
            ) from exc
    if version < SCHEMA_VERSION:
        log.info("state schema migrated", path=str(path), from_version=version, to=SCHEMA_VERSION)


def _enter_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL, waiting out another process doing the same.

    The journal-mode change needs an exclusive lock and SQLite answers "database is
    locked" at once, without the busy handler, while another connection holds one — as
    when two replicas start on a fresh file together. This runs on the store's worker
    thread, so a short blocking wait is fine.
    """
    for attempt in range(50):
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02 * (1 + attempt % 5))
    raise AssertionError("unreachable")
