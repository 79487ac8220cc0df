"""The state store: one behaviour suite over both backends, plus what only SQLite can do."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from watchdog.domain.alerts import AlertState, Condition, JobFacts, Phase, Reason, RuleFacts
from watchdog.domain.outgoing import AuditEntry, Notification, Outgoing
from watchdog.store import MessageRef, OutboxRecord, Silence, Store
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SCHEMA_VERSION, SqliteStore, StateFileError

# -- builders --------------------------------------------------------------------------------


def make_alert(rule: str = "lag", job_id: str = "job-1", **changes: Any) -> AlertState:
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
    )
    return replace(state, **changes)


def make_notification(job_id: str = "job-1") -> Notification:
    return Notification(
        reason=Reason.NEW,
        alert=make_alert(job_id=job_id),
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


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened store of each backend."""
    backend: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture(params=["memory", "sqlite"])
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store of each backend that has not been opened."""
    return MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")


# -- lifecycle -------------------------------------------------------------------------------


async def test_open_twice_keeps_the_data(store: Store) -> None:
    """A second open() is a no-op, not a reset."""
    await store.set_meta("k", "v")
    await store.open()
    assert await store.get_meta("k") == "v"


async def test_store_used_before_open_raises_clear_error(fresh_store: Store) -> None:
    """Any call before open() is a RuntimeError that says to open the store."""
    with pytest.raises(RuntimeError, match="not open"):
        await fresh_store.get_meta("k")
    await fresh_store.close()


async def test_closed_store_refuses_calls_and_reopening(fresh_store: Store) -> None:
    """After close() every call and open() raise a RuntimeError; close() again is fine."""
    await fresh_store.open()
    await fresh_store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await fresh_store.load_alerts()
    with pytest.raises(RuntimeError, match="closed"):
        await fresh_store.open()
    await fresh_store.close()


# -- alerts and commit ------------------------------------------------------------------------


async def test_commit_upserts_alerts_by_fingerprint(store: Store) -> None:
    """Alert states round-trip whole, and a second upsert of a fingerprint replaces the first."""
    first = make_alert(job_id="job-1")
    other = make_alert(rule="health", job_id="job-2", phase=Phase.PENDING, fired_at=None)
    await store.commit(upserts=[first, other], now=1.0)
    resolved = replace(first, phase=Phase.RESOLVED, resolved_at=300.0, resolve_reason="ok")
    await store.commit(upserts=[resolved], now=2.0)
    assert sorted(await store.load_alerts(), key=lambda s: s.fingerprint) == [other, resolved]


async def test_commit_deletes_fingerprints_after_upserts(store: Store) -> None:
    """Deletes remove states (unknown ones silently) and win over an upsert in the same commit."""
    a, b = make_alert(job_id="a"), make_alert(job_id="b")
    await store.commit(upserts=[a, b], now=1.0)
    await store.commit(upserts=[b], deletes=[a.fingerprint, b.fingerprint, "nope/x"], now=2.0)
    assert await store.load_alerts() == []


async def test_commit_is_all_or_nothing(store: Store) -> None:
    """An outbox item JSON cannot hold fails the whole commit: no alert, no item is saved."""
    bad = make_audit(extra={"x": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        await store.commit(upserts=[make_alert()], outbox=[make_audit(), bad], now=1.0)
    assert await store.load_alerts() == []
    assert await store.outbox_size() == 0


async def test_commit_enqueues_outbox_items_in_order(store: Store) -> None:
    """Items get increasing ids in the given order, zero attempts and now as due and created."""
    items: list[Outgoing] = [make_notification("j1"), make_audit("j2"), make_notification("j3")]
    await store.commit(outbox=items, now=50.0)
    due = await store.outbox_due(now=50.0)
    assert [r.item for r in due] == items
    assert [r.id for r in due] == sorted(r.id for r in due)
    assert len({r.id for r in due}) == 3
    assert {(r.attempts, r.next_attempt, r.created_at) for r in due} == {(0, 50.0, 50.0)}


# -- outbox -----------------------------------------------------------------------------------


async def test_outbox_due_returns_only_due_live_items_up_to_limit(store: Store) -> None:
    """Not yet due and dead items are left out; limit caps the oldest-first list."""
    await store.commit(outbox=[make_audit("a"), make_audit("b"), make_audit("c")], now=10.0)
    await store.commit(outbox=[make_audit("later")], now=20.0)
    a, b, c = await store.outbox_due(now=10.0)
    await store.outbox_dead(b.id, "channel_not_found")
    assert targets(await store.outbox_due(now=15.0)) == ["a", "c"]
    assert [r.id for r in await store.outbox_due(now=20.0, limit=2)] == [a.id, c.id]
    assert await store.outbox_due(now=20.0, limit=0) == []
    assert await store.outbox_due(now=9.9) == []


async def test_outbox_done_deletes_item_and_saves_messages(store: Store) -> None:
    """Delivery removes the item and records its message in the same call."""
    await store.commit(outbox=[make_notification()], now=1.0)
    [record] = await store.outbox_due(now=1.0)
    ref = MessageRef(channel="C1", ts="1700.0001", kind="single", data={"n": 1})
    await store.outbox_done(record.id, {"lag/job-1@130000": ref})
    assert await store.outbox_due(now=1.0) == []
    assert await store.outbox_size() == 0
    assert await store.get_message("lag/job-1@130000") == ref


async def test_outbox_done_of_unknown_id_still_saves_messages(store: Store) -> None:
    """An id already gone is no error; the messages Slack created are still recorded."""
    ref = MessageRef(channel="C1", ts="1.2")
    await store.outbox_done(12345, {"k": ref})
    await store.outbox_done(12345)
    assert await store.get_message("k") == ref


async def test_outbox_retry_counts_attempts_and_reschedules(store: Store) -> None:
    """A retry bumps attempts and moves the next attempt; unknown ids are ignored."""
    await store.commit(outbox=[make_audit()], now=1.0)
    [record] = await store.outbox_due(now=1.0)
    await store.outbox_retry(record.id, next_attempt=31.0, error="ratelimited")
    assert await store.outbox_due(now=30.0) == []
    await store.outbox_retry(record.id, next_attempt=61.0, error="timeout")
    [again] = await store.outbox_due(now=61.0)
    assert (again.id, again.attempts, again.next_attempt, again.created_at) == (
        record.id,
        2,
        61.0,
        1.0,
    )
    await store.outbox_retry(999, next_attempt=1.0, error="x")
    await store.outbox_dead(999, "x")
    assert await store.outbox_size() == 1


async def test_dead_items_are_not_due_and_not_counted(store: Store) -> None:
    """outbox_size counts live items only."""
    await store.commit(outbox=[make_audit("a"), make_audit("b")], now=1.0)
    assert await store.outbox_size() == 2
    first, _ = await store.outbox_due(now=1.0)
    await store.outbox_dead(first.id, "invalid_blocks")
    assert await store.outbox_size() == 1
    assert targets(await store.outbox_due(now=100.0)) == ["b"]


async def test_outbox_ids_are_never_reused(store: Store) -> None:
    """An item enqueued after the newest was delivered still gets a larger id."""
    await store.commit(outbox=[make_audit("a")], now=1.0)
    [first] = await store.outbox_due(now=1.0)
    await store.outbox_done(first.id)
    await store.commit(outbox=[make_audit("b")], now=2.0)
    [second] = await store.outbox_due(now=2.0)
    assert second.id > first.id


# -- messages ---------------------------------------------------------------------------------


async def test_messages_upsert_by_key(store: Store) -> None:
    """save_messages replaces a key's ref; unknown keys read as None."""
    await store.save_messages({"a": MessageRef("C1", "1.1"), "b": MessageRef("C1", "2.2")})
    storm = MessageRef("C2", "3.3", kind="storm", data={"members": ["x/1", "y/2"], "n": 2})
    await store.save_messages({"a": storm})
    assert await store.get_message("a") == storm
    assert await store.get_message("b") == MessageRef("C1", "2.2", kind="single", data={})
    assert await store.get_message("missing") is None


async def test_callers_cannot_mutate_stored_values(store: Store) -> None:
    """Changing a dict passed in or handed out does not change what the store holds."""
    data: dict[str, Any] = {"members": ["x/1"]}
    await store.save_messages({"k": MessageRef("C1", "1.1", data=data)})
    data["members"].append("leak")
    got = await store.get_message("k")
    assert got is not None
    got.data["members"].append("leak")  # type: ignore[index]
    entry = make_audit()
    await store.commit(outbox=[entry], now=1.0)
    entry.extra["via"] = "leak"
    again = await store.get_message("k")
    assert again is not None and again.data == {"members": ["x/1"]}
    [record] = await store.outbox_due(now=1.0)
    assert isinstance(record.item, AuditEntry) and record.item.extra == {"via": "button"}


# -- silences ---------------------------------------------------------------------------------


async def test_silences_are_listed_by_creation_including_expired(store: Store) -> None:
    """list_silences returns every silence, oldest first; adding an id again replaces it."""
    expired = make_silence("old", created_at=1.0, until=2.0)
    await store.add_silence(make_silence("s2", created_at=30.0, target_kind="job", target="j1"))
    await store.add_silence(make_silence("s1", created_at=20.0))
    await store.add_silence(expired)
    replaced = make_silence("s1", created_at=20.0, until=5000.0, reason="longer")
    await store.add_silence(replaced)
    listed = await store.list_silences()
    assert [s.id for s in listed] == ["old", "s1", "s2"]
    assert listed[0] == expired and listed[1] == replaced
    assert listed[2].target_kind == "job"


async def test_remove_silence_reports_whether_it_existed(store: Store) -> None:
    """True for a silence that was there, False otherwise."""
    await store.add_silence(make_silence("s1"))
    assert await store.remove_silence("s1") is True
    assert await store.remove_silence("s1") is False
    assert await store.list_silences() == []


# -- samples ----------------------------------------------------------------------------------


async def test_samples_load_since_ordered_by_time_job_metric(store: Store) -> None:
    """load_samples returns rows with t >= since, by t then job and metric, as floats."""
    await store.append_samples(
        [("j2", "lag", 20.0, 5.0), ("j1", "rows", 20.0, 7.0), ("j1", "lag", 20, 6)]
    )
    await store.append_samples([("j1", "lag", 10.0, 1.0), ("j3", "lag", 30.0, 2.5)])
    rows = await store.load_samples(since=20.0)
    assert rows == [
        ("j1", "lag", 20.0, 6.0),
        ("j1", "rows", 20.0, 7.0),
        ("j2", "lag", 20.0, 5.0),
        ("j3", "lag", 30.0, 2.5),
    ]
    assert all(isinstance(row[2], float) and isinstance(row[3], float) for row in rows)


async def test_nan_samples_are_dropped(store: Store) -> None:
    """A NaN value is no sample (SQLite cannot keep it), in both backends alike."""
    await store.append_samples([("j1", "lag", 1.0, float("nan")), ("j1", "lag", 2.0, 1.0)])
    assert await store.load_samples(since=0.0) == [("j1", "lag", 2.0, 1.0)]


async def test_prune_drops_old_rows_and_gone_jobs(store: Store) -> None:
    """Rows before the cut-off and every row of a gone job are removed."""
    await store.append_samples(
        [("j1", "lag", 5.0, 1.0), ("j1", "lag", 10.0, 2.0), ("j2", "lag", 50.0, 3.0)]
    )
    await store.append_samples([("j3", "lag", 60.0, 4.0)])
    await store.prune_samples(before=10.0, gone_jobs=["j2"])
    assert await store.load_samples(since=0.0) == [
        ("j1", "lag", 10.0, 2.0),
        ("j3", "lag", 60.0, 4.0),
    ]
    await store.prune_samples(before=0.0)
    assert len(await store.load_samples(since=0.0)) == 2


# -- meta and lease ---------------------------------------------------------------------------


async def test_meta_set_replaces_value(store: Store) -> None:
    """set_meta upserts; an unknown key reads as None."""
    assert await store.get_meta("rules_hash") is None
    await store.set_meta("rules_hash", "abc")
    await store.set_meta("rules_hash", "def")
    assert await store.get_meta("rules_hash") == "def"


async def test_released_lease_is_free_for_the_next_holder_at_once(store: Store) -> None:
    """release_lease ends our lease early; releasing someone else's does nothing."""
    assert await store.acquire_lease("a", now=0.0, ttl=30.0)
    await store.release_lease("b")
    assert await store.acquire_lease("b", now=1.0, ttl=30.0) is False
    await store.release_lease("a")
    assert await store.acquire_lease("b", now=1.0, ttl=30.0) is True


async def test_lease_is_exclusive_until_it_expires(store: Store) -> None:
    """The holder renews; another holder waits until expires <= now, then takes over."""
    assert await store.acquire_lease("a", now=0.0, ttl=30.0) is True
    assert await store.acquire_lease("b", now=29.9, ttl=30.0) is False
    assert await store.acquire_lease("a", now=20.0, ttl=30.0) is True  # renewed to 50
    assert await store.acquire_lease("b", now=49.9, ttl=30.0) is False
    assert await store.acquire_lease("b", now=50.0, ttl=30.0) is True
    assert await store.acquire_lease("a", now=51.0, ttl=30.0) is False


# -- SQLite only ------------------------------------------------------------------------------


async def fill(store: Store) -> None:
    """One of everything, for the persistence tests."""
    await store.commit(
        upserts=[make_alert(job_id="j1"), make_alert(job_id="j2")],
        outbox=[make_audit("first"), make_notification("j1"), make_audit("third")],
        now=10.0,
    )
    await store.save_messages({"m": MessageRef("C1", "1.1", kind="storm", data={"n": 3})})
    await store.add_silence(make_silence("s1"))
    await store.append_samples([("j1", "lag", 1.0, 2.0), ("j2", "lag", 3.0, 4.0)])
    await store.set_meta("k", "v")
    assert await store.acquire_lease("holder-1", now=10.0, ttl=60.0)


async def check_filled(store: Store) -> None:
    assert await store.load_alerts() == [make_alert(job_id="j1"), make_alert(job_id="j2")]
    due = await store.outbox_due(now=10.0)
    assert [r.item for r in due] == [
        make_audit("first"),
        make_notification("j1"),
        make_audit("third"),
    ]
    assert await store.get_message("m") == MessageRef("C1", "1.1", kind="storm", data={"n": 3})
    assert await store.list_silences() == [make_silence("s1")]
    assert await store.load_samples(since=0.0) == [("j1", "lag", 1.0, 2.0), ("j2", "lag", 3.0, 4.0)]
    assert await store.get_meta("k") == "v"
    assert await store.acquire_lease("holder-2", now=20.0, ttl=60.0) is False


async def test_sqlite_data_survives_close_and_reopen(tmp_path: Path) -> None:
    """Everything written is there after a restart, in a directory open() had to create."""
    path = tmp_path / "new" / "dir" / "state.db"
    first = SqliteStore(path)
    await first.open()
    await fill(first)
    await first.close()
    second = SqliteStore(path)
    await second.open()
    await check_filled(second)
    await second.close()


async def test_sqlite_committed_data_survives_without_close(tmp_path: Path) -> None:
    """A store that never closes (its process died) leaves committed data for the next one."""
    path = tmp_path / "state.db"
    crashed = SqliteStore(path)
    await crashed.open()
    await fill(crashed)
    successor = SqliteStore(path)
    await successor.open()
    await check_filled(successor)
    await successor.close()
    await crashed.close()


async def test_sqlite_committed_data_survives_sigkill(tmp_path: Path) -> None:
    """A process killed with SIGKILL right after commit() returned loses nothing."""
    path = tmp_path / "state.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from watchdog.domain.outgoing import AuditEntry
        from watchdog.store.sqlite import SqliteStore

        async def main():
            store = SqliteStore({str(path)!r})
            await store.open()
            await store.commit(outbox=[AuditEntry("U1", "pause", "j1", "ok", 5.0)], now=5.0)
            await store.set_meta("k", "v")
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await proc.wait() == -9
    store = SqliteStore(path)
    await store.open()
    [record] = await store.outbox_due(now=5.0)
    assert record.item == AuditEntry("U1", "pause", "j1", "ok", 5.0)
    assert await store.get_meta("k") == "v"
    await store.close()


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


async def test_sqlite_migrates_an_empty_file_in_wal_mode(tmp_path: Path) -> None:
    """A zero-byte file gets the current schema version, every table, and WAL journaling."""
    path = tmp_path / "state.db"
    path.touch()
    store = SqliteStore(path)
    await store.open()
    await store.close()
    assert user_version(path) == SCHEMA_VERSION
    expected = {"alerts", "outbox", "messages", "silences", "samples", "meta", "lease"}
    assert tables(path) >= expected
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_migrates_a_version_0_file_and_keeps_leftover_tables(tmp_path: Path) -> None:
    """A version-0 file holding an unrelated table is migrated and the table left alone."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
    store = SqliteStore(path)
    await store.open()
    await store.set_meta("k", "v")
    await store.close()
    assert user_version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT x FROM notes").fetchall() == [("kept",)]


async def test_sqlite_failed_migration_leaves_the_file_unchanged(tmp_path: Path) -> None:
    """A leftover table that clashes with the schema fails open() clearly and rolls back."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alerts (something_else TEXT)")
    store = SqliteStore(path)
    with pytest.raises(StateFileError, match=r"cannot migrate .* from schema version 0"):
        await store.open()
    await store.close()
    assert user_version(path) == 0
    assert tables(path) == {"alerts"}


async def test_sqlite_refuses_a_newer_schema_version(tmp_path: Path) -> None:
    """A file written by a newer release is not touched by this one."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(path)
    with pytest.raises(StateFileError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await store.open()
    await store.close()
    assert user_version(path) == SCHEMA_VERSION + 1


async def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """WATCHDOG_STATE pointing at some other file is a clear error naming the file."""
    path = tmp_path / "rules.toml"
    path.write_text("[watch]\n" * 200)
    store = SqliteStore(path)
    with pytest.raises(StateFileError, match=r"rules\.toml"):
        await store.open()
    await store.close()


def test_sqlite_store_refuses_memory_path() -> None:
    """':memory:' belongs to MemoryStore."""
    with pytest.raises(ValueError, match="MemoryStore"):
        SqliteStore(":memory:")


async def test_sqlite_unreadable_outbox_row_is_marked_dead(tmp_path: Path) -> None:
    """outbox_due skips a row that no longer loads, marks it dead and still fills the limit."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    await store.commit(outbox=[make_audit("a"), make_audit("b"), make_audit("c")], now=1.0)
    with sqlite3.connect(path) as conn:
        conn.execute('UPDATE outbox SET item = \'{"type": "fax"}\' WHERE id = 1')
    assert targets(await store.outbox_due(now=1.0, limit=2)) == ["b", "c"]
    assert await store.outbox_size() == 2
    with sqlite3.connect(path) as conn:
        dead, error = conn.execute("SELECT dead, error FROM outbox WHERE id = 1").fetchone()
    assert dead == 1 and "unknown outbox item type 'fax'" in error
    await store.close()


async def test_sqlite_unreadable_alert_row_is_skipped(tmp_path: Path) -> None:
    """A state row that no longer loads is left out of load_alerts instead of failing start-up."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    good, bad = make_alert(job_id="good"), make_alert(job_id="bad")
    await store.commit(upserts=[good, bad], now=1.0)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alerts SET state = '{\"rule\": 1}' WHERE job_id = 'bad'")
    assert await store.load_alerts() == [good]
    await store.commit(upserts=[bad], now=2.0)
    assert await store.load_alerts() == [bad, good]
    await store.close()


async def test_sqlite_two_stores_on_one_file_take_turns_with_the_lease(tmp_path: Path) -> None:
    """A second store on the same file sees the first one's lease and waits for it to expire."""
    path = tmp_path / "state.db"
    a, b = SqliteStore(path), SqliteStore(path)
    await asyncio.gather(a.open(), b.open())
    assert await a.acquire_lease("a", now=0.0, ttl=10.0)
    assert not await b.acquire_lease("b", now=5.0, ttl=10.0)
    assert await b.acquire_lease("b", now=10.0, ttl=10.0)
    assert not await a.acquire_lease("a", now=15.0, ttl=10.0)
    await a.close()
    await b.close()


async def test_sqlite_racing_stores_never_both_win_the_lease(tmp_path: Path) -> None:
    """Two stores released at once onto a free lease: exactly one wins, the other sees it."""
    path = tmp_path / "state.db"
    a, b = SqliteStore(path), SqliteStore(path)
    await asyncio.gather(a.open(), b.open())
    recorders = [RecordingConnection(a._conn), RecordingConnection(b._conn)]  # type: ignore[arg-type]
    a._conn, b._conn = recorders  # type: ignore[assignment]
    # A third connection holds the write lock, so both stores are inside acquire_lease,
    # waiting, when it lets go: a lease that read-then-writes without the lock loses here.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    race = asyncio.gather(
        a.acquire_lease("a", now=100.0, ttl=10.0), b.acquire_lease("b", now=100.0, ttl=10.0)
    )
    for recorder in recorders:
        assert await asyncio.to_thread(recorder.began.wait, 5.0)
    blocker.rollback()
    blocker.close()
    assert sorted(await race) == [False, True]
    for store, recorder in zip((a, b), recorders, strict=True):
        store._conn = recorder.conn
        await store.close()


class RecordingConnection:
    """Wraps the store's sqlite3 connection to record what runs, and on which thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.calls: list[tuple[str, str, int, str]] = []
        self.began = threading.Event()  # a transaction was about to begin

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.calls.append(("execute", sql, 1, threading.current_thread().name))
        if sql.startswith("BEGIN"):
            self.began.set()
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        rows = list(rows)
        self.calls.append(("executemany", sql, len(rows), threading.current_thread().name))
        return self.conn.executemany(sql, rows)

    def __enter__(self) -> RecordingConnection:
        self.conn.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.conn.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def test_sqlite_appends_10000_samples_in_one_executemany_off_the_loop(tmp_path: Path) -> None:
    """A big batch is one statement in one transaction, run on the store's worker thread."""
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    recorder = RecordingConnection(store._conn)  # type: ignore[arg-type]
    store._conn = recorder  # type: ignore[assignment]
    rows = [(f"j{i % 7}", "lag", float(i), 1.0) for i in range(10_000)]
    await store.append_samples(rows)
    assert [(kind, sql.split()[0], n) for kind, sql, n, _ in recorder.calls] == [
        ("execute", "BEGIN", 1),
        ("executemany", "INSERT", 10_000),
    ]
    assert all(thread.startswith("watchdog-store") for *_, thread in recorder.calls)
    store._conn = recorder.conn
    assert len(await store.load_samples(since=0.0)) == 10_000
    await store.close()
