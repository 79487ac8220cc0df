"""The SQLite state file's schema, its migrations, and how a connection is opened.

The schema is versioned with ``PRAGMA user_version`` and migrated on open by the steps
in :data:`MIGRATIONS`, all pending steps in one transaction, so a file is always at one
known version. Connections are WAL-mode with a busy timeout, which lets two processes
share the file (the leases rely on it).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from watchdog.store import StoreError

log = structlog.get_logger(__name__)

#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 5000

#: A step of a migration: an SQL statement, or a function for what SQL alone cannot do
#: (rewriting keys inside JSON), run on the migrating connection inside its transaction.
Statement = str | Callable[[sqlite3.Connection], None]

#: The project a state file written before projects existed belongs to.
V1_PROJECT = "default"


def _v2_project_keys(conn: sqlite3.Connection) -> None:
    """Rewrite a single-project (v1) file's keys to project ``default``: fingerprints
    ``rule/job`` → ``default/rule/job`` (and ``"project"`` in the state), incident ids
    inside message keys, storm data, alert silences and audit entries, storm keys
    ``storm/rule/N`` → ``storm/default/rule/N``. Keys already of the new form (written
    by a release that knew projects but not yet this schema) are kept, and where both
    forms of one key exist the new form's row wins."""
    _rekey(conn, "alerts", ("fingerprint", "project", "rule", "job_id", "phase", "state"), _alert)
    _rekey(conn, "messages", ("key", "channel", "ts", "kind", "data"), _message)
    for item_id, text in conn.execute("SELECT id, item FROM outbox").fetchall():
        rewritten = _json(text, _outbox_item)
        if rewritten != text:
            conn.execute("UPDATE outbox SET item = ? WHERE id = ?", (rewritten, item_id))
    conn.execute(
        "UPDATE silences SET target = ? || '/' || target"
        " WHERE target_kind = 'alert' AND target NOT LIKE '%/%/%'",
        (V1_PROJECT,),
    )


def _rekey(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rewrite: Callable[[tuple[Any, ...]], tuple[Any, ...]],
) -> None:
    names, marks = ", ".join(columns), ", ".join("?" * len(columns))
    for row in conn.execute(f"SELECT {names} FROM {table}").fetchall():
        new = rewrite(tuple(row))
        if new != tuple(row):
            conn.execute(f"DELETE FROM {table} WHERE {columns[0]} = ?", (row[0],))
            # OR IGNORE: a row already under the new key was written later; it wins.
            conn.execute(f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})", new)


def _fingerprint(fp: str) -> str:
    return f"{V1_PROJECT}/{fp}" if fp.count("/") == 1 else fp


def _incident(incident: str) -> str:
    fp, at, millis = incident.rpartition("@")
    return f"{_fingerprint(fp)}@{millis}" if at else incident


def _storm_key(key: str) -> str:
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "storm":
        return f"storm/{V1_PROJECT}/{parts[1]}/{parts[2]}"
    return key


def _json(text: str, change: Callable[[dict[str, Any]], None]) -> str:
    """``text`` with ``change`` applied to its object; unreadable JSON is left alone
    (the store skips or dead-letters it when it is read)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return text
    if not isinstance(raw, dict):
        return text
    before = json.dumps(raw, sort_keys=True)
    change(raw)
    # Unchanged JSON keeps its exact text (dumps may space it differently).
    return text if json.dumps(raw, sort_keys=True) == before else json.dumps(raw)


def _alert_json(raw: dict[str, Any]) -> None:
    raw.setdefault("project", V1_PROJECT)


def _alert(row: tuple[Any, ...]) -> tuple[Any, ...]:
    fp, _project, rule, job_id, phase, state = row
    new_fp = _fingerprint(fp)
    if new_fp == fp:
        return row
    return (new_fp, V1_PROJECT, rule, job_id, phase, _json(state, _alert_json))


def _message(row: tuple[Any, ...]) -> tuple[Any, ...]:
    key, channel, ts, kind, data = row
    if "@" in key:
        key = _incident(key)
    elif key.startswith("storm/"):
        key = _storm_key(key)

    def change(raw: dict[str, Any]) -> None:
        if kind == "storm":
            members = raw.get("members")
            if isinstance(members, dict):
                raw["members"] = {_incident(k): v for k, v in members.items()}
                for member in raw["members"].values():
                    if isinstance(member, dict):
                        _alert_json(member)
            if isinstance(raw.get("resolved"), list):
                raw["resolved"] = [_incident(str(i)) for i in raw["resolved"]]
        elif kind == "storm-member" and isinstance(raw.get("storm"), str):
            raw["storm"] = _storm_key(raw["storm"])

    new_data = _json(data, change)
    return row if key == row[0] and new_data == data else (key, channel, ts, kind, new_data)


def _outbox_item(raw: dict[str, Any]) -> None:
    if raw.get("type") == "notification" and isinstance(raw.get("alert"), dict):
        _alert_json(raw["alert"])
    elif raw.get("type") == "audit" and isinstance(raw.get("incident_id"), str):
        raw["incident_id"] = _incident(raw["incident_id"])


#: Step ``i`` takes the schema from version ``i`` to ``i + 1``, all statements of all
#: pending steps in one transaction. Never edit a released step: append a new one.
MIGRATIONS: tuple[tuple[Statement, ...], ...] = (
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
    # v2: several Polaris projects, several replicas, exactly-once delivery. Everything
    # a v1 file holds belongs to project "default".
    (
        "ALTER TABLE alerts ADD COLUMN project TEXT NOT NULL DEFAULT 'default'",
        "CREATE INDEX alerts_project ON alerts (project)",
        # "" is the coordinator's (items of no project); in-flight claims live as long
        # as the lease term they were made under.
        "ALTER TABLE outbox ADD COLUMN project TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outbox ADD COLUMN maybe_sent INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox ADD COLUMN claim_project TEXT",
        "ALTER TABLE outbox ADD COLUMN claim_term INTEGER",
        # v1 retried an item only after a failed attempt, and a timed-out one may have
        # reached Slack: such items are looked for before they are posted again.
        "UPDATE outbox SET project = 'default', maybe_sent = (attempts > 0)",
        "ALTER TABLE samples ADD COLUMN project TEXT NOT NULL DEFAULT 'default'",
        "DROP INDEX samples_t",
        "DROP INDEX samples_job",
        "CREATE INDEX samples_project_t ON samples (project, t)",
        "CREATE INDEX samples_project_job ON samples (project, job_id)",
        """CREATE TABLE leases (
            project TEXT PRIMARY KEY, holder TEXT NOT NULL, term INTEGER NOT NULL,
            expires REAL NOT NULL)""",
        # The running v1 leader keeps its lease: a successor still waits it out.
        "INSERT INTO leases SELECT 'default', holder, 1, expires FROM lease WHERE name = 'leader'",
        "DROP TABLE lease",
        # Replicas say they are alive here, so projects are shared out among them.
        "CREATE TABLE replicas (name TEXT PRIMARY KEY, expires REAL NOT NULL)",
        _v2_project_keys,
        # The on-call workflow: acknowledgements by incident, the incident history the
        # digest reads, and the marks of what must happen once (a day's digest).
        """CREATE TABLE acks (
            incident_id TEXT PRIMARY KEY, project TEXT NOT NULL, fingerprint TEXT NOT NULL,
            rule TEXT NOT NULL, job_id TEXT NOT NULL, user_id TEXT NOT NULL,
            at REAL NOT NULL)""",
        "CREATE INDEX acks_project ON acks (project)",
        """CREATE TABLE incidents (
            incident_id TEXT PRIMARY KEY, project TEXT NOT NULL, fingerprint TEXT NOT NULL,
            rule TEXT NOT NULL, job_id TEXT NOT NULL, table_name TEXT, severity TEXT NOT NULL,
            fired_at REAL NOT NULL, resolved_at REAL, acked_at REAL, acked_by TEXT)""",
        "CREATE INDEX incidents_fired ON incidents (fired_at)",
        "CREATE INDEX incidents_project ON incidents (project)",
        "CREATE TABLE marks (key TEXT PRIMARY KEY, at REAL NOT NULL)",
        # Keys claimed once (signatures of Slack requests served), forgotten after `until`.
        "CREATE TABLE claimed_keys (key TEXT PRIMARY KEY, until REAL NOT NULL)",
        "CREATE INDEX claimed_keys_until ON claimed_keys (until)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class StateFileError(StoreError):
    """The state file cannot be used: not a database, a newer schema, a failed migration."""


class StateFileUnwritable(StateFileError):
    """The disk refuses writes to the state file: read-only, full, or failing."""


class StateFileGone(StateFileError):
    """The state file was deleted or replaced while the bot had it open."""


def refusal(exc: sqlite3.Error) -> str | None:
    """Why the disk refused a write, in plain words; None when ``exc`` is no refusal."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name == "SQLITE_READONLY_DIRECTORY":
        return "its directory is read-only"
    if name.startswith("SQLITE_READONLY"):
        return "the file is read-only"
    if name == "SQLITE_FULL":
        return "the disk is full"
    if name.startswith("SQLITE_IOERR"):
        return f"disk I/O error ({name})"
    if name.startswith("SQLITE_CANTOPEN"):
        return "it cannot be opened (is its directory read-only or missing?)"
    return None


def unwritable(path: Path, reason: str) -> StateFileUnwritable:
    return StateFileUnwritable(
        f"state file {path} refuses writes: {reason}; the bot cannot keep its state "
        "until it can write there (or WATCHDOG_STATE names another file)"
    )


def gone(path: Path) -> StateFileGone:
    return StateFileGone(
        f"state file {path} was deleted or replaced while running; restart the bot to "
        "start a new one"
    )


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it if needed) and migrate the state file; :class:`StateFileError`
    when it cannot be used."""
    if path.is_dir():
        raise StateFileError(
            f"state file {path} is a directory; WATCHDOG_STATE must name a file in it, "
            f"e.g. {path / 'watchdog.db'}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateFileError(
            f"cannot create the directory of state file {path}: {exc.strerror or exc}"
        ) from None
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
            reason = refusal(exc)
            if reason is not None:
                raise unwritable(path, reason) from exc
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
                    if isinstance(statement, str):
                        conn.execute(statement)
                    else:
                        statement(conn)
                conn.execute(f"PRAGMA user_version = {target}")
            # Written even when nothing changed: a file the bot cannot write is found
            # now, with one clear line, not at the first tick's commit.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            reason = refusal(exc)
            if reason is not None:
                raise unwritable(path, reason) from exc
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
