"""Builders and backends for the store tests (``from storekit import ...``).

:func:`backend` makes one store of each kind over the same fake clock where the backend
has one; PostgreSQL times leases by its own ``now()``, so there "moving the clock" moves
every lease's expiry back instead — what the lease logic sees is the same.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from watchdog.domain.alerts import AlertState, Condition, JobFacts, Phase, Reason, RuleFacts
from watchdog.domain.outgoing import AuditEntry, Notification
from watchdog.store import Fence, OutboxRecord, Silence, Store
from watchdog.store.memory import MemoryStore
from watchdog.store.postgres import PostgresStore
from watchdog.store.sqlite import SqliteStore

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PROJECT = "default"


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """A store, a way to move its clock, and what its clock reads now."""

    kind: str
    store: Store
    advance: Callable[[float], Awaitable[None]]
    now: Callable[[], float] = time.time


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An unopened store of ``kind`` (the PostgreSQL one in a schema of its own)."""
    clock = Clock()

    async def tick(seconds: float) -> None:
        clock.now += seconds

    if kind == "memory":
        return Backend(kind, MemoryStore(clock=clock), tick, clock)
    if kind == "sqlite":
        return Backend(kind, SqliteStore(tmp_path / "s.db", clock=clock), tick, clock)
    url = request.getfixturevalue("pg_url")

    async def age(seconds: float) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("UPDATE leases SET expires = expires - %s", (seconds,))
            await conn.execute("UPDATE claimed_keys SET until = until - %s", (seconds,))

    return Backend(kind, PostgresStore(url), age)


async def lease(store: Store, project: str = PROJECT, holder: str = "replica-a") -> Fence:
    """Take ``project``'s lease (a minute long) and return its fence."""
    term = await store.acquire_lease(project, holder, 60.0)
    assert term is not None, f"{project!r} is held by another holder"
    return Fence(project, term)


# -- builders --------------------------------------------------------------------------------


def make_alert(
    rule: str = "lag", job_id: str = "job-1", project: str = PROJECT, **changes: Any
) -> AlertState:
    state = AlertState(
        rule=rule,
        job_id=job_id,
        phase=Phase.FIRING,
        severity="critical",
        since=100.0,
        last_active=160.0,
        last_eval=160.0,
        job=JobFacts(
            job_id=job_id,
            table="events",
            type="streaming",
            execution_status="running",
            health_status="unhealthy",
            health_code="lag",
            health_message="consumer behind",
        ),
        condition=Condition(
            active=True,
            summary="lag 5000 > 1000",
            value=5000.0,
            threshold=1000.0,
            metric="lag",
            values=(10.0, 900.0, 5000.0),
        ),
        fired_at=130.0,
        posted=True,
        repeats=1,
        next_repeat=3730.0,
        notified_signature=("unhealthy", "lag", "running"),
        project=project,
    )
    return replace(state, **changes)


def make_notification(job_id: str = "job-1", project: str = PROJECT) -> Notification:
    return Notification(
        reason=Reason.NEW,
        alert=make_alert(job_id=job_id, project=project),
        rule=RuleFacts(name="lag", kind="metric", severity="critical", runbook="https://rb"),
        channel="C-ALERTS",
        mention="@here",
    )


def make_audit(target: str = "job-1", **changes: Any) -> AuditEntry:
    entry = AuditEntry(
        user="U1", action="pause", target=target, result="ok", at=200.0, extra={"via": "button"}
    )
    return replace(entry, **changes)


def targets(records: list[OutboxRecord]) -> list[str]:
    """The targets of audit-entry records, in order."""
    return [r.item.target for r in records if isinstance(r.item, AuditEntry)]


def make_silence(sid: str = "s1", created_at: float = 10.0, **changes: Any) -> Silence:
    silence = Silence(
        id=sid,
        target_kind="rule",
        target="lag",
        until=1000.0,
        created_by="U1",
        created_at=created_at,
        reason="maintenance",
    )
    return replace(silence, **changes)
