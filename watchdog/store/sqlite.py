"""The SQLite :class:`~watchdog.store.Store`: the bot's state file (``WATCHDOG_STATE``).

``sqlite3`` blocks, so it never runs on the event loop: one connection lives on one
worker thread (a single-thread executor) and every method is one job on it, hence also
one transaction, run strictly in call order. The schema is versioned with ``PRAGMA
user_version`` and migrated on :meth:`SqliteStore.open` (:mod:`watchdog.store.sqlite_schema`).
Two processes may share the file: writes take the write lock up front (``BEGIN
IMMEDIATE``), which is what makes :meth:`SqliteStore.acquire_lease` safe between them.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, cast

import structlog

from watchdog.domain.alerts import AlertState, alert_from_dict, alert_to_dict
from watchdog.domain.outgoing import Outgoing, dump_outgoing, load_outgoing
from watchdog.store import MessageRef, OutboxRecord, SampleRow, Silence
from watchdog.store.sqlite_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    StateFileError,
    connect,
    transaction,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteStore", "StateFileError"]

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_LEASE = "leader"


class SqliteStore:
    """The :class:`~watchdog.store.Store` protocol on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        if str(path) == ":memory:":
            raise ValueError("SqliteStore needs a file; use MemoryStore for ':memory:'")
        self._path = Path(path)
        # One thread owns the connection, so calls are serialised in order and the
        # connection is never used from two threads at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watchdog-store")
        self._conn: sqlite3.Connection | None = None  # set and cleared on the worker only
        self._closed = False

    async def open(self) -> None:
        """Create the file and schema, or migrate it. Idempotent; not after :meth:`close`."""
        if self._closed:
            raise RuntimeError(f"the state store {self._path} is closed; it cannot be reopened")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._connect)

    async def close(self) -> None:
        """Close the connection, then stop the worker thread. Idempotent."""
        if self._closed:
            return
        self._closed = True  # from here on no new job is queued behind the disconnect
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._disconnect)
        finally:
            self._executor.shutdown(wait=True)

    def _connect(self) -> None:
        if self._conn is None:
            self._conn = connect(self._path)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` on the worker thread."""
        if self._closed:
            raise RuntimeError(f"the state store {self._path} is closed")

        def job() -> T:
            if self._conn is None:
                raise RuntimeError(
                    f"the state store {self._path} is not open: call `await store.open()` first"
                )
            return fn(self._conn, *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    # -- alerts and the tick's outcome ---------------------------------------------------
    async def load_alerts(self) -> list[AlertState]:
        rows = await self._call(_fetch, "SELECT fingerprint, state FROM alerts ORDER BY 1")
        states: list[AlertState] = []
        for fp, text in rows:
            try:
                states.append(alert_from_dict(json.loads(text)))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # Forgetting one alert's state beats a bot that cannot start: the rule
                # re-evaluates the job on the next tick and the next commit replaces the row.
                log.error("alert state unreadable, skipped", fingerprint=fp, error=str(exc))
        return states

    async def commit(
        self,
        *,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        alerts = [
            (s.fingerprint, s.rule, s.job_id, s.phase.value, json.dumps(alert_to_dict(s)))
            for s in upserts
        ]
        # executemany runs in list order, so AUTOINCREMENT ids follow the given order.
        items = [(dump_outgoing(item), now, now) for item in outbox]
        await self._call(
            _write_many,
            (_UPSERT_ALERT, alerts),
            ("DELETE FROM alerts WHERE fingerprint = ?", [(fp,) for fp in deletes]),
            ("INSERT INTO outbox (item, next_attempt, created_at) VALUES (?, ?, ?)", items),
        )

    # -- outbox ---------------------------------------------------------------------------
    async def outbox_due(self, now: float, limit: int = 500) -> list[OutboxRecord]:
        return await self._call(_outbox_due, now, limit)

    async def outbox_done(self, item_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        await self._call(
            _write_many,
            ("DELETE FROM outbox WHERE id = ?", [(item_id,)]),
            (_UPSERT_MESSAGE, _message_rows(messages)),
        )

    async def outbox_retry(self, item_id: int, next_attempt: float, error: str) -> None:
        await self._call(
            _write,
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, error = ? WHERE id = ?",
            (next_attempt, error, item_id),
        )

    async def outbox_dead(self, item_id: int, error: str) -> None:
        await self._call(_write, _MARK_DEAD, (error, item_id))

    async def outbox_size(self) -> int:
        [(count,)] = await self._call(_fetch, "SELECT count(*) FROM outbox WHERE dead = 0")
        return int(count)

    # -- Slack messages of incidents ------------------------------------------------------
    async def get_message(self, key: str) -> MessageRef | None:
        rows = await self._call(
            _fetch, "SELECT channel, ts, kind, data FROM messages WHERE key = ?", (key,)
        )
        if not rows:
            return None
        channel, ts, kind, data = rows[0]
        return MessageRef(channel=channel, ts=ts, kind=kind, data=json.loads(data))

    async def save_messages(self, messages: Mapping[str, MessageRef]) -> None:
        await self._call(_write_many, (_UPSERT_MESSAGE, _message_rows(messages)))

    # -- silences -------------------------------------------------------------------------
    async def add_silence(self, silence: Silence) -> None:
        s = silence
        await self._call(
            _write,
            f"INSERT OR REPLACE INTO silences ({_SILENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (s.id, s.target_kind, s.target, s.until, s.created_by, s.created_at, s.reason),
        )

    async def remove_silence(self, silence_id: str) -> bool:
        return await self._call(_write, "DELETE FROM silences WHERE id = ?", (silence_id,)) > 0

    async def list_silences(self) -> list[Silence]:
        rows = await self._call(
            _fetch, f"SELECT {_SILENCE_COLUMNS} FROM silences ORDER BY created_at, id"
        )
        return [
            Silence(sid, cast(Literal["rule", "job", "alert"], kind), target, until, by, at, reason)
            for sid, kind, target, until, by, at, reason in rows
        ]

    # -- sample history -------------------------------------------------------------------
    async def append_samples(self, rows: Sequence[SampleRow]) -> None:
        # SQLite stores NaN as NULL, which the NOT NULL columns refuse and which would read
        # back as None; a NaN is no sample, so it is dropped (MemoryStore does the same).
        finite = [row for row in rows if not (math.isnan(row[2]) or math.isnan(row[3]))]
        await self._call(
            _write_many, ("INSERT INTO samples (job_id, metric, t, v) VALUES (?, ?, ?, ?)", finite)
        )

    async def load_samples(self, since: float, until: float | None = None) -> list[SampleRow]:
        rows = await self._call(
            _fetch,
            "SELECT job_id, metric, t, v FROM samples WHERE t >= ? AND t < ?"
            " ORDER BY t, job_id, metric, rowid",
            (since, math.inf if until is None else until),
        )
        return cast(list[SampleRow], rows)  # sqlite3 rows are plain tuples

    async def prune_samples(self, before: float, gone_jobs: Sequence[str] = ()) -> None:
        await self._call(
            _write_many,
            ("DELETE FROM samples WHERE t < ?", [(before,)]),
            ("DELETE FROM samples WHERE job_id = ?", [(job,) for job in gone_jobs]),
        )

    # -- small values and leadership ------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        rows = await self._call(_fetch, "SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._call(_write, "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    async def acquire_lease(self, holder: str, now: float, ttl: float) -> bool:
        return await self._call(_acquire_lease, holder, now, ttl)

    async def release_lease(self, holder: str) -> None:
        await self._call(
            _write, "DELETE FROM lease WHERE name = ? AND holder = ?", (_LEASE, holder)
        )


# REPLACE is an upsert here: every column is given, and no table has triggers or keys
# pointing at it that a delete-and-insert could disturb.
_UPSERT_ALERT = """INSERT OR REPLACE INTO alerts (fingerprint, rule, job_id, phase, state)
    VALUES (?, ?, ?, ?, ?)"""
_UPSERT_MESSAGE = """INSERT OR REPLACE INTO messages (key, channel, ts, kind, data)
    VALUES (?, ?, ?, ?, ?)"""
_MARK_DEAD = "UPDATE outbox SET dead = 1, error = ? WHERE id = ?"
_SILENCE_COLUMNS = "id, target_kind, target, until, created_by, created_at, reason"


def _message_rows(messages: Mapping[str, MessageRef]) -> list[tuple[str, ...]]:
    return [
        (key, ref.channel, ref.ts, ref.kind, json.dumps(dict(ref.data)))
        for key, ref in messages.items()
    ]


# -- worker-side functions: each is one transaction on the store's connection -------------


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> list[Any]:
    with transaction(conn, write=False):
        return conn.execute(sql, params).fetchall()


def _write(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> int:
    """One statement; returns how many rows it changed."""
    with transaction(conn, write=True):
        return conn.execute(sql, params).rowcount


def _write_many(conn: sqlite3.Connection, *batches: tuple[str, Iterable[Sequence[object]]]) -> None:
    """Each (statement, rows) as one executemany, all in one transaction."""
    with transaction(conn, write=True):
        for sql, rows in batches:
            conn.executemany(sql, rows)


def _outbox_due(conn: sqlite3.Connection, now: float, limit: int) -> list[OutboxRecord]:
    due: list[OutboxRecord] = []
    if limit <= 0:  # a negative LIMIT would mean "no limit" to SQLite
        return due
    # A write transaction: an item that no longer loads is marked dead on the way, and
    # the next batch is read so that one bad row does not shorten the answer.
    with transaction(conn, write=True):
        after = 0
        while len(due) < limit:
            want = limit - len(due)
            rows = conn.execute(
                """SELECT id, item, attempts, next_attempt, created_at FROM outbox
                   WHERE dead = 0 AND next_attempt <= ? AND id > ? ORDER BY id LIMIT ?""",
                (now, after, want),
            ).fetchall()
            for item_id, text, attempts, next_attempt, created_at in rows:
                after = item_id
                try:
                    item = load_outgoing(text)
                except ValueError as exc:
                    log.error("outbox item unreadable, marked dead", id=item_id, error=str(exc))
                    conn.execute(_MARK_DEAD, (f"unreadable item: {exc}", item_id))
                    continue
                due.append(OutboxRecord(item_id, item, attempts, next_attempt, created_at))
            if len(rows) < want:
                break
    return due


def _acquire_lease(conn: sqlite3.Connection, holder: str, now: float, ttl: float) -> bool:
    # Read and write under one IMMEDIATE transaction: two processes cannot both see the
    # lease free and both take it.
    with transaction(conn, write=True):
        row = conn.execute("SELECT holder, expires FROM lease WHERE name = ?", (_LEASE,)).fetchone()
        if row is not None and row[0] != holder and row[1] > now:
            return False
        conn.execute("INSERT OR REPLACE INTO lease VALUES (?, ?, ?)", (_LEASE, holder, now + ttl))
        return True
