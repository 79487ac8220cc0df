"""Which store ``WATCHDOG_STATE`` names: the one place the backend is chosen.

``:memory:`` keeps state in the process only, a ``postgresql://`` (or ``postgres://``)
URL is a database shared by several replicas, anything else is a SQLite file path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from watchdog.store import Store
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(spec: str) -> bool:
    return spec.lower().startswith(_POSTGRES_SCHEMES)


def describe_store(spec: str) -> str:
    """``spec`` fit for a log line: a URL's password masked."""
    if is_postgres(spec):
        from watchdog.store.postgres_url import mask_url

        return mask_url(spec)
    return spec


def open_store(spec: str, clock: Callable[[], float] = time.time) -> Store:
    """The (not yet opened) store ``spec`` names. ``clock`` is the store's clock for
    lease times; PostgreSQL ignores it and uses the database's ``now()``."""
    if spec == ":memory:":
        return MemoryStore(clock=clock)
    if is_postgres(spec):
        # Imported here: psycopg loads libpq, which single-file set-ups never need.
        from watchdog.store.postgres import PostgresStore

        return PostgresStore(spec)
    return SqliteStore(spec, clock=clock)
