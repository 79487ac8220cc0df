"""PostgreSQL for the tests that need one: a fresh database per test session.

The server is ``WATCHDOG_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Other people's test runs share it, so each session creates its own database
``wd_<random>`` and drops it at the end, and each test gets a schema of its own in it
(through ``search_path``), so no test sees another's tables.

Without a reachable server the ``postgres`` tests skip, saying why. With ``CI=true``
they must run: a skipped ``postgres`` test fails the session.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from watchdog.store.postgres import mask_url

DEFAULT_TEST_PG = "postgresql://postgres@127.0.0.1:5432/test"

_skipped_postgres: list[str] = []


def admin_url() -> str:
    return os.environ.get("WATCHDOG_TEST_PG") or DEFAULT_TEST_PG


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def with_schema(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (created by the caller) first."""
    parts = urlsplit(url)
    option = f"options=-csearch_path%3D{schema}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{option}" if parts.query else option))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of this session's own database, dropped at the end."""
    url = admin_url()
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        pytest.skip(f"no PostgreSQL at {mask_url(url)} (set WATCHDOG_TEST_PG): {reason}")
    name = f"wd_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        try:
            yield with_database(url, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A URL whose tables live in a fresh schema of their own."""
    schema = f"t_{secrets.token_hex(5)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    return with_schema(pg_database, schema)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "postgres" in report.keywords:
        _skipped_postgres.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_postgres and os.environ.get("CI") == "true":
        terminalreporter.write_line(
            f"CI=true but {len(_skipped_postgres)} PostgreSQL tests did not run "
            f"(no server at {mask_url(admin_url())}): failing the run",
            red=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_postgres and os.environ.get("CI") == "true":
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
