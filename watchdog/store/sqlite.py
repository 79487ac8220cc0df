"""The SQLite :class:`~watchdog.store.Store`: the bot's state file (``WATCHDOG_STATE``).

``sqlite3`` blocks, so it never runs on the event loop: one connection lives on one
worker thread (a single-thread executor) and every method is one job on it, hence also
one transaction, run strictly in call order. The schema is versioned with ``PRAGMA
user_version`` and migrated on :meth:`SqliteStore.open` (:mod:`watchdog.store.sqlite_schema`).
Two processes may share the file: writes take the write lock up front (``BEGIN
IMMEDIATE``), which is what makes leases and fencing safe between them. Lease times come
from the store's clock, read on the event loop and handed to the worker.

The store never runs blind: each write first checks that the path still names the file
it opened (a deleted or replaced state file would otherwise swallow every write), and a
disk that refuses writes is reported as :class:`StateFileUnwritable`, naming the file and
the reason, while reads go on working.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, Literal, ParamSpec, TypeVar, cast

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
from watchdog.store.rows import alert_rows, history_rows, message_rows
from watchdog.store.sqlite_oncall import DROP_ACK, UPSERT_INCIDENT, SqliteOnCall
from watchdog.store.sqlite_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    StateFileError,
    StateFileGone,
    StateFileUnwritable,
    connect,
    gone,
    refusal,
    unwritable,
)
from watchdog.store.sqlite_tx import (
    INSERT_ITEM,
    MARK_DEAD,
    SILENCE_COLUMNS,
    UPSERT_ALERT,
    UPSERT_MESSAGE,
    acquire_lease,
    claim_once,
    execute,
    fenced_many,
    fetch,
    heartbeat,
    in_projects,
    outbox_due,
    outbox_start,
    write_many,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SqliteStore",
    "StateFileError",
    "StateFileGone",
    "StateFileUnwritable",
]

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class SqliteStore(SqliteOnCall):
    """The :class:`~watchdog.store.Store` protocol on one SQLite file (the on-call
    tables' methods are :class:`~watchdog.store.sqlite_oncall.SqliteOnCall`'s)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        if str(path) == ":memory:":
            raise ValueError("SqliteStore needs a file; use MemoryStore for ':memory:'")
        self._path = Path(path)
        self._clock = clock
        # One thread owns the connection, so calls are serialised in order and the
        # connection is never used from two threads at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watchdog-store")
        self._conn: sqlite3.Connection | None = None  # set and cleared on the worker only
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened
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
            stat = os.stat(self._path)
            self._identity = (stat.st_dev, stat.st_ino)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _check_file(self) -> None:
        """The path still names the file we opened: one stat() per write."""
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            raise gone(self._path) from None
        except OSError as exc:
            raise StateFileError(
                f"state file {self._path} cannot be checked: {exc.strerror or exc}"
            ) from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise gone(self._path)

    async def _run(
        self,
        write: bool,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` on the worker thread; sqlite3 errors become StoreErrors."""
        if self._closed:
            raise RuntimeError(f"the state store {self._path} is closed")

        def job() -> T:
            if self._conn is None:
                raise RuntimeError(
                    f"the state store {self._path} is not open: call `await store.open()` first"
                )
            if write:
                self._check_file()
            try:
                return fn(self._conn, *args, **kwargs)
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_DBMOVED":
                    raise gone(self._path) from exc
                reason = refusal(exc)
                if reason is not None:
                    raise unwritable(self._path, reason) from exc
                raise StateFileError(f"state file {self._path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def _read(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *a: P.args, **k: P.kwargs
    ) -> T:
        return await self._run(False, fn, *a, **k)

    async def _write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *a: P.args, **k: P.kwargs
    ) -> T:
        return await self._run(True, fn, *a, **k)

    # -- leases ---------------------------------------------------------------------------
    async def acquire_lease(self, project: str, holder: str, ttl: float) -> int | None:
        return await self._write(acquire_lease, project, holder, float(self._clock()), ttl)

    async def release_lease(self, project: str, holder: str) -> None:
        # The row (and its term) stays, so the next holder's term is a bigger one.
        await self._write(
            execute,
            "UPDATE leases SET expires = min(expires, ?) WHERE project = ? AND holder = ?",
            (float(self._clock()), project, holder),
        )

    async def heartbeat(self, replica: str, ttl: float) -> list[str]:
        return await self._write(heartbeat, replica, float(self._clock()), ttl)

    async def leases(self) -> list[Lease]:
        rows = await self._read(
            fetch, "SELECT project, holder, term, expires FROM leases ORDER BY project"
        )
        return [Lease(*row) for row in rows]

    # -- alerts and the tick's outcome ----------------------------------------------------
    async def load_alerts(self, project: str | None = None) -> list[AlertState]:
        if project is None:
            rows = await self._read(fetch, "SELECT fingerprint, state FROM alerts ORDER BY 1")
        else:
            rows = await self._read(
                fetch,
                "SELECT fingerprint, state FROM alerts WHERE project = ? ORDER BY 1",
                (project,),
            )
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
        fence: Fence,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        alerts = alert_rows(fence, upserts, deletes)
        # executemany runs in list order, so AUTOINCREMENT ids follow the given order.
        items = [(fence.project, dump_outgoing(item), now, now) for item in outbox]
        history, resolved = history_rows(outbox)
        await self._write(
            fenced_many,
            fence,
            (UPSERT_ALERT, alerts),
            ("DELETE FROM alerts WHERE fingerprint = ?", [(fp,) for fp in deletes]),
            (INSERT_ITEM, items),
            (UPSERT_INCIDENT, history),
            (DROP_ACK, [(incident,) for incident in resolved]),
        )

    async def enqueue(self, items: Sequence[Outgoing], *, project: str, now: float) -> None:
        rows = [(project, dump_outgoing(item), now, now) for item in items]
        await self._write(write_many, (INSERT_ITEM, rows))

    # -- outbox ---------------------------------------------------------------------------
    async def outbox_due(
        self, now: float, limit: int = 500, projects: Collection[str] | None = None
    ) -> list[OutboxRecord]:
        due, unreadable = await self._read(outbox_due, now, limit, projects)
        if unreadable:
            try:
                await self._write(write_many, (MARK_DEAD, unreadable))
            except StoreError as exc:  # a read-only disk: they are skipped again next time
                log.error("outbox unreadable items not marked dead", error=str(exc))
        return due

    async def outbox_start(self, item_ids: Sequence[int], fence: Fence) -> list[int]:
        return await self._write(outbox_start, sorted(set(item_ids)), fence)

    async def outbox_done(
        self, item_id: int, fence: Fence, messages: Mapping[str, MessageRef] = {}
    ) -> None:
        await self._write(
            fenced_many,
            fence,
            ("DELETE FROM outbox WHERE id = ?", [(item_id,)]),
            (UPSERT_MESSAGE, message_rows(messages)),
        )

    async def outbox_retry(
        self, item_id: int, next_attempt: float, error: str, *, maybe_sent: bool = False
    ) -> None:
        await self._write(
            execute,
            """UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, error = ?,
                   maybe_sent = ?, claim_project = NULL, claim_term = NULL WHERE id = ?""",
            (next_attempt, error, int(maybe_sent), item_id),
        )

    async def outbox_dead(self, item_id: int, error: str) -> None:
        await self._write(execute, MARK_DEAD, (error, item_id))

    async def outbox_size(self, projects: Collection[str] | None = None) -> int:
        where, params = in_projects(projects)
        [(count,)] = await self._read(
            fetch, f"SELECT count(*) FROM outbox WHERE dead = 0{where}", params
        )
        return int(count)

    # -- Slack messages of incidents ------------------------------------------------------
    async def get_message(self, key: str) -> MessageRef | None:
        rows = await self._read(
            fetch, "SELECT channel, ts, kind, data FROM messages WHERE key = ?", (key,)
        )
        if not rows:
            return None
        channel, ts, kind, data = rows[0]
        return MessageRef(channel=channel, ts=ts, kind=kind, data=json.loads(data))

    async def save_messages(self, messages: Mapping[str, MessageRef], fence: Fence) -> None:
        await self._write(fenced_many, fence, (UPSERT_MESSAGE, message_rows(messages)))

    # -- silences -------------------------------------------------------------------------
    async def add_silence(self, silence: Silence) -> None:
        s = silence
        await self._write(
            execute,
            f"INSERT OR REPLACE INTO silences ({SILENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (s.id, s.target_kind, s.target, s.until, s.created_by, s.created_at, s.reason),
        )

    async def remove_silence(self, silence_id: str) -> bool:
        return await self._write(execute, "DELETE FROM silences WHERE id = ?", (silence_id,)) > 0

    async def list_silences(self) -> list[Silence]:
        rows = await self._read(
            fetch, f"SELECT {SILENCE_COLUMNS} FROM silences ORDER BY created_at, id"
        )
        return [
            Silence(sid, cast(Literal["rule", "job", "alert"], kind), target, until, by, at, reason)
            for sid, kind, target, until, by, at, reason in rows
        ]

    # -- sample history -------------------------------------------------------------------
    async def append_samples(self, project: str, rows: Sequence[SampleRow]) -> None:
        # SQLite stores NaN as NULL, which the NOT NULL columns refuse and which would read
        # back as None; a NaN is no sample, so it is dropped (MemoryStore does the same).
        finite = [(project, *row) for row in rows if not (math.isnan(row[2]) or math.isnan(row[3]))]
        await self._write(
            write_many,
            ("INSERT INTO samples (project, job_id, metric, t, v) VALUES (?, ?, ?, ?, ?)", finite),
        )

    async def load_samples(
        self, project: str, since: float, until: float | None = None
    ) -> list[SampleRow]:
        rows = await self._read(
            fetch,
            "SELECT job_id, metric, t, v FROM samples WHERE project = ? AND t >= ? AND t < ?"
            " ORDER BY t, job_id, metric, rowid",
            (project, since, math.inf if until is None else until),
        )
        return cast(list[SampleRow], rows)  # sqlite3 rows are plain tuples

    async def prune_samples(
        self, project: str, before: float, gone_jobs: Sequence[str] = ()
    ) -> None:
        await self._write(
            write_many,
            ("DELETE FROM samples WHERE project = ? AND t < ?", [(project, before)]),
            (
                "DELETE FROM samples WHERE project = ? AND job_id = ?",
                [(project, job) for job in gone_jobs],
            ),
        )

    # -- small values ---------------------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        rows = await self._read(fetch, "SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(execute, "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    async def claim_once(self, key: str, until: float) -> bool:
        return await self._write(claim_once, key, float(until), float(self._clock()))


# REPLACE is an upsert here: every column is given, and no table has triggers or keys
# pointing at it that a delete-and-insert could disturb.
