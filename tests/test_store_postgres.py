"""What only the PostgreSQL store does: several replicas on one database, a lease timed
by the database, migrations under an advisory lock, and outages that fail fast and heal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from storekit import PROJECT, make_audit

from watchdog.store import Fence, StoreError
from watchdog.store.postgres import SCHEMA_VERSION, PostgresStore
from watchdog.store.postgres_schema import SchemaTooNew

pytestmark = pytest.mark.postgres

T = TypeVar("T")


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two replicas' stores on one database."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await asyncio.gather(a.open(), b.open())
    yield a, b
    await asyncio.gather(a.close(), b.close())


async def scalar(url: str, sql: str) -> object:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(sql.encode())
        row = await cur.fetchone()
        return None if row is None else row[0]


async def blocked_while_locked(url: str, lock: str, calls: list[Awaitable[T]]) -> list[T]:
    """Run ``calls`` while another session holds ``lock`` on the leases table, until all
    of them wait for it, then let go: they are inside their transactions together."""
    async with await psycopg.AsyncConnection.connect(url) as holder:
        await holder.execute(f"LOCK TABLE leases IN {lock} MODE".encode())
        tasks = [asyncio.ensure_future(call) for call in calls]
        deadline = time.monotonic() + 10
        while True:
            waiting = await scalar(
                url,
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            if waiting == len(calls):
                break
            assert time.monotonic() < deadline, f"only {waiting} calls are waiting"
            await asyncio.sleep(0.01)
        await holder.rollback()
    return list(await asyncio.gather(*tasks))


async def test_postgres_replicas_racing_for_a_lease_exactly_one_wins(
    pg_url: str, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    """Both replicas ask for a free lease at the same moment: one gets term 1, the
    other None, and the lease row names the winner."""
    a, b = stores
    won = await blocked_while_locked(
        pg_url,
        "EXCLUSIVE",
        [a.acquire_lease(PROJECT, "a", 30.0), b.acquire_lease(PROJECT, "b", 30.0)],
    )
    assert sorted(won, key=str) == [1, None]
    [row] = await a.leases()
    assert row.holder == ("a" if won[0] == 1 else "b")


async def test_postgres_concurrent_claims_take_each_item_once(
    pg_url: str, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    """Two deliverers claiming the same 40 items at the same moment: every item is
    claimed by exactly one of them (row locks, SKIP LOCKED), none twice."""
    a, b = stores
    term = await a.acquire_lease(PROJECT, "a", 30.0)
    assert term is not None
    fence = Fence(PROJECT, term)
    await a.enqueue([make_audit(f"j{n}") for n in range(40)], project=PROJECT, now=1.0)
    ids = [r.id for r in await a.outbox_due(now=1.0)]
    first, second = await blocked_while_locked(
        pg_url,
        "EXCLUSIVE",
        [a.outbox_start(ids, fence), b.outbox_start(list(reversed(ids)), fence)],
    )
    assert sorted(first + second) == ids
    assert not set(first) & set(second)
    assert await b.outbox_start(ids, fence) == []


async def test_postgres_lease_times_come_from_the_database_clock(
    pg_url: str, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    """A lease expires ttl seconds after the database's now(), whatever the replica's clock."""
    a, _ = stores
    await a.acquire_lease(PROJECT, "a", 30.0)
    db_now = await scalar(pg_url, "SELECT extract(epoch from now())::float8")
    [row] = await a.leases()
    assert isinstance(db_now, float)
    assert abs(row.expires - (db_now + 30.0)) < 5.0


async def test_postgres_three_replicas_starting_at_once_migrate_once(pg_url: str) -> None:
    """Replicas opening a fresh database together all start; the schema is migrated once."""
    replicas = [PostgresStore(pg_url) for _ in range(3)]
    await asyncio.gather(*(r.open() for r in replicas))
    try:
        assert await scalar(pg_url, "SELECT version FROM watchdog_schema") == SCHEMA_VERSION
        assert await scalar(pg_url, "SELECT count(*) FROM watchdog_schema") == 1
        await replicas[0].set_meta("k", "v")
        assert await replicas[2].get_meta("k") == "v"
    finally:
        await asyncio.gather(*(r.close() for r in replicas))


async def test_postgres_refuses_a_newer_schema_and_leaves_it(pg_url: str) -> None:
    """A database migrated by a newer release is refused at open, never migrated down."""
    first = PostgresStore(pg_url)
    await first.open()
    await first.close()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("UPDATE watchdog_schema SET version = %s", (SCHEMA_VERSION + 1,))
    store = PostgresStore(pg_url)
    with pytest.raises(SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await store.open()
    await store.close()
    assert await scalar(pg_url, "SELECT version FROM watchdog_schema") == SCHEMA_VERSION + 1


async def test_postgres_unreachable_server_fails_open_fast_with_the_password_masked() -> None:
    """Nothing listening: open() fails within its bound, in one line, password masked."""
    store = PostgresStore("postgresql://watchdog:hunter2@127.0.0.1:1/watchdog", timeout=2.0)
    started = time.monotonic()
    with pytest.raises(StoreError) as refused:
        await store.open()
    await store.close()
    message = str(refused.value)
    assert time.monotonic() - started < 6.0
    assert message.startswith(
        "cannot use PostgreSQL state at postgresql://watchdog:***@127.0.0.1:1/watchdog: "
    )
    assert "hunter2" not in message and "\n" not in message


async def test_postgres_malformed_url_is_one_line_with_the_password_masked() -> None:
    """A URL libpq cannot read is refused at open, naming it without its password."""
    store = PostgresStore("postgresql://watchdog:s3cr%40t@db:5432/watchdog?sslmod=require")
    with pytest.raises(StoreError) as refused:
        await store.open()
    await store.close()
    message = str(refused.value)
    assert "postgresql://watchdog:***@db:5432/watchdog?sslmod=require" in message
    assert "s3cr" not in message and "sslmod" in message


async def test_postgres_calls_fail_fast_instead_of_hanging(pg_url: str) -> None:
    """A statement that cannot proceed (its table locked by someone else) fails within the
    store's timeout with StoreError: a tick is never held up by the store."""
    store = PostgresStore(pg_url, timeout=1.0)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(pg_url) as holder:
            await holder.execute("LOCK TABLE leases IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"PostgreSQL state at .*timeout"):
                await store.acquire_lease(PROJECT, "a", 30.0)
            assert time.monotonic() - started < 3.0
        assert await store.acquire_lease(PROJECT, "a", 30.0) == 1  # and it works again
    finally:
        await store.close()


async def test_postgres_dropped_connections_fail_or_heal_never_hang(pg_url: str) -> None:
    """The server drops every connection (a restart, a failover): the next call fails with
    StoreError or already succeeds on a new connection, and the pool heals by itself."""
    store = PostgresStore(pg_url, timeout=2.0)
    await store.open()
    try:
        await store.set_meta("k", "before")
        for _ in range(3):
            killed = await scalar(
                pg_url,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            assert isinstance(killed, int) and killed >= 1
            try:
                await asyncio.wait_for(store.get_meta("k"), 10.0)
            except StoreError:
                pass  # failed fast: the caller retries on its next round
            assert await asyncio.wait_for(store.get_meta("k"), 10.0) == "before"
        await store.set_meta("k", "after")
        assert await store.get_meta("k") == "after"
    finally:
        await store.close()


def test_run_with_a_bad_postgres_url_is_one_line_without_the_password(tmp_path: Path) -> None:
    """`polaris-watchdog run` with an unusable WATCHDOG_STATE URL exits with one line
    that names the database, password masked, and no traceback."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "x"\nkind = "health"\nstatus = ["error"]\n')
    env = {
        **os.environ,
        "POLARIS_API_URL": "http://127.0.0.1:1",
        "POLARIS_PROJECT_ID": "p",
        "POLARIS_API_KEY": "k",
        "WATCHDOG_STATE": "postgresql://watchdog:hunter2@127.0.0.1:1/watchdog",
        "WATCHDOG_LISTEN": "127.0.0.1:0",
        "SLACK_BOT_TOKEN": "",
        "SLACK_SIGNING_SECRET": "",
        "SLACK_APP_TOKEN": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "--rules", str(rules)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "hunter2" not in output and "Traceback" not in output
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("polaris-watchdog:")]
    assert line.startswith(
        "polaris-watchdog: cannot use PostgreSQL state at "
        "postgresql://watchdog:***@127.0.0.1:1/watchdog: "
    )
