"""The PostgreSQL store's connection side: a small pool, migrations at open, bounded calls.

psycopg 3 (async) with a small connection pool. Every call is one transaction on a pooled
connection, and bounded — connecting, waiting for a pooled connection and each statement
time out (``timeout``, 5 s by default), and a whole call is abandoned after twice that —
so an outage makes calls fail fast with :class:`~watchdog.store.StoreError` instead of
hanging a tick. The pool checks a connection before lending it out, so dropped
connections, a restarted server or a failover to a new primary are replaced by new
connections on the next call, without a restart. No error or log line carries the URL's
password.

Pool size (``max_size``, default 4): a replica uses at most about one connection for its
watch loops' commits, one for delivery and one or two for commands at any moment; size
the database's ``max_connections`` for replicas × ``max_size`` plus what else connects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from watchdog.store import StoreError
from watchdog.store.postgres_schema import SCHEMA_VERSION, migrate
from watchdog.store.postgres_url import make_conninfo_for, mask_url, secrets_in

log = structlog.get_logger(__name__)

T = TypeVar("T")
Cursor = psycopg.AsyncCursor[tuple[Any, ...]]
Conn = psycopg.AsyncConnection[tuple[Any, ...]]


class Database:
    """A migrated PostgreSQL database behind a pool; :meth:`tx` runs one transaction."""

    def __init__(self, url: str, *, max_size: int = 4, timeout: float = 5.0) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._url = url
        self.where = mask_url(url)
        self._max_size = max_size
        self._timeout = timeout
        self._secrets = secrets_in(url)
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        """Migrate the schema and start the pool; :class:`StoreError` in one line (the
        password masked) when the URL is malformed or the database cannot be used."""
        if self._closed:
            raise RuntimeError(f"the state store {self.where} is closed; it cannot be reopened")
        if self._pool is not None:
            return
        try:
            conninfo = make_conninfo_for(self._url, self._timeout)
            # One direct connection first: its error says what is wrong (refused, bad
            # password, no such database), where a pool would only time out.
            async with asyncio.timeout(2 * self._timeout):
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with conn:
                    was = await migrate(conn, self.where)
        except StoreError:
            raise
        except (psycopg.Error, OSError, TimeoutError) as exc:
            # from None: the cause's traceback is not ours to vouch for (no secret in logs)
            raise StoreError(
                f"cannot use PostgreSQL state at {self.where}: {self._why(exc)}"
            ) from None
        if was is not None:
            log.info("state schema migrated", where=self.where, from_version=was,
                     to=SCHEMA_VERSION)  # fmt: skip
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=self._max_size,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
            timeout=self._timeout,
            name="watchdog-store",
            open=False,
        )
        await self._pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool. Idempotent."""
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close(timeout=self._timeout)

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, PoolTimeout):
            text = f"no connection to the database within {self._timeout:g}s"
        elif isinstance(exc, TimeoutError):
            text = f"no answer within {2 * self._timeout:g}s"
        else:
            text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def tx(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction on a pooled connection, bounded in time."""
        if self._closed:
            raise RuntimeError(f"the state store {self.where} is closed")
        if self._pool is None:
            raise RuntimeError(
                f"the state store {self.where} is not open: call `await store.open()` first"
            )
        try:
            async with asyncio.timeout(2 * self._timeout):
                async with self._pool.connection() as conn:
                    async with conn.transaction(), conn.cursor() as cur:
                        return await work(cur)
        except StoreError:
            raise  # FencedOut, said by work()
        except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
            raise StoreError(f"PostgreSQL state at {self.where}: {self._why(exc)}") from None
