"""What only the SQLite store does: a file that survives restarts, its schema migrations,
two processes on one file, and never running blind on a broken disk."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import hold, holder, serve_slack
from storekit import (
    PROJECT,
    Clock,
    lease,
    make_alert,
    make_audit,
    make_notification,
    make_silence,
    targets,
)

from watchdog.deliver.outbox import Dispatcher
from watchdog.domain.alerts import Phase, Reason, RuleFacts, alert_to_dict
from watchdog.domain.outgoing import AuditEntry, Notification
from watchdog.slack.alerts.notifier import SlackNotifier
from watchdog.store import MessageRef, Store
from watchdog.store.sqlite import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SqliteStore,
    StateFileError,
    StateFileGone,
)

# -- persistence ------------------------------------------------------------------------------


async def fill(store: Store) -> None:
    """One of everything, for the persistence tests."""
    fence = await lease(store, holder="holder-1")
    await store.commit(
        fence=fence,
        upserts=[make_alert(job_id="j1"), make_alert(job_id="j2")],
        outbox=[make_audit("first"), make_notification("j1"), make_audit("third")],
        now=10.0,
    )
    await store.save_messages({"m": MessageRef("C1", "1.1", kind="storm", data={"n": 3})}, fence)
    await store.add_silence(make_silence("s1"))
    await store.append_samples(PROJECT, [("j1", "lag", 1.0, 2.0), ("j2", "lag", 3.0, 4.0)])
    await store.set_meta("k", "v")


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
    assert await store.load_samples(PROJECT, since=0.0) == [
        ("j1", "lag", 1.0, 2.0),
        ("j2", "lag", 3.0, 4.0),
    ]
    assert await store.get_meta("k") == "v"
    assert await store.acquire_lease(PROJECT, "holder-2", 60.0) is None


async def test_sqlite_data_survives_close_and_reopen(tmp_path: Path) -> None:
    """Everything written is there after a restart, in a directory open() had to create."""
    path = tmp_path / "new" / "dir" / "state.db"
    clock = Clock()
    first = SqliteStore(path, clock=clock)
    await first.open()
    await fill(first)
    await first.close()
    second = SqliteStore(path, clock=clock)
    await second.open()
    await check_filled(second)
    await second.close()


async def test_sqlite_committed_data_survives_without_close(tmp_path: Path) -> None:
    """A store that never closes (its process died) leaves committed data for the next one."""
    path = tmp_path / "state.db"
    clock = Clock()
    crashed = SqliteStore(path, clock=clock)
    await crashed.open()
    await fill(crashed)
    successor = SqliteStore(path, clock=clock)
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
        from watchdog.store import Fence
        from watchdog.store.sqlite import SqliteStore

        async def main():
            store = SqliteStore({str(path)!r})
            await store.open()
            term = await store.acquire_lease("default", "dying", 60.0)
            entry = AuditEntry("U1", "pause", "j1", "ok", 5.0)
            await store.commit(fence=Fence("default", term), outbox=[entry], now=5.0)
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


# -- the schema ------------------------------------------------------------------------------


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
    assert user_version(path) == SCHEMA_VERSION == 2
    expected = {"alerts", "outbox", "messages", "silences", "samples", "meta", "leases"}
    assert tables(path) >= expected
    assert "lease" not in tables(path)
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


async def test_sqlite_refuses_a_directory_in_one_line(tmp_path: Path) -> None:
    """WATCHDOG_STATE naming a directory says so, and what to write instead."""
    store = SqliteStore(tmp_path)
    with pytest.raises(StateFileError) as refused:
        await store.open()
    await store.close()
    assert str(refused.value) == (
        f"state file {tmp_path} is a directory; WATCHDOG_STATE must name a file in it, "
        f"e.g. {tmp_path / 'watchdog.db'}"
    )


def test_sqlite_store_refuses_memory_path() -> None:
    """':memory:' belongs to MemoryStore."""
    with pytest.raises(ValueError, match="MemoryStore"):
        SqliteStore(":memory:")


async def test_sqlite_unreadable_outbox_row_is_marked_dead(tmp_path: Path) -> None:
    """outbox_due skips a row that no longer loads, marks it dead and still fills the limit."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    await store.enqueue([make_audit("a"), make_audit("b"), make_audit("c")], project="", now=1.0)
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
    fence = await lease(store)
    good, bad = make_alert(job_id="good"), make_alert(job_id="bad")
    await store.commit(fence=fence, upserts=[good, bad], now=1.0)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alerts SET state = '{\"rule\": 1}' WHERE job_id = 'bad'")
    assert await store.load_alerts() == [good]
    await store.commit(fence=fence, upserts=[bad], now=2.0)
    assert await store.load_alerts() == [bad, good]
    await store.close()


# -- two processes on one file ----------------------------------------------------------------


async def test_sqlite_two_stores_on_one_file_take_turns_with_the_lease(tmp_path: Path) -> None:
    """A second store on the same file sees the first one's lease and waits for it to expire;
    the first one's writes are then fenced out."""
    path = tmp_path / "state.db"
    clock = Clock()
    a, b = SqliteStore(path, clock=clock), SqliteStore(path, clock=clock)
    await asyncio.gather(a.open(), b.open())
    assert await a.acquire_lease(PROJECT, "a", 10.0) == 1
    clock.now += 5
    assert await b.acquire_lease(PROJECT, "b", 10.0) is None
    clock.now += 5
    assert await b.acquire_lease(PROJECT, "b", 10.0) == 2
    assert await a.acquire_lease(PROJECT, "a", 10.0) is None
    await a.close()
    await b.close()


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
    race = asyncio.gather(a.acquire_lease(PROJECT, "a", 10.0), b.acquire_lease(PROJECT, "b", 10.0))
    for recorder in recorders:
        assert await asyncio.to_thread(recorder.began.wait, 5.0)
    blocker.rollback()
    blocker.close()
    assert sorted(await race, key=str) == [1, None]
    for store, recorder in zip((a, b), recorders, strict=True):
        store._conn = recorder.conn
        await store.close()


async def test_sqlite_appends_10000_samples_in_one_executemany_off_the_loop(tmp_path: Path) -> None:
    """A big batch is one statement in one transaction, run on the store's worker thread."""
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    recorder = RecordingConnection(store._conn)  # type: ignore[arg-type]
    store._conn = recorder  # type: ignore[assignment]
    rows = [(f"j{i % 7}", "lag", float(i), 1.0) for i in range(10_000)]
    await store.append_samples(PROJECT, rows)
    assert [(kind, sql.split()[0], n) for kind, sql, n, _ in recorder.calls] == [
        ("execute", "BEGIN", 1),
        ("executemany", "INSERT", 10_000),
    ]
    assert all(thread.startswith("watchdog-store") for *_, thread in recorder.calls)
    store._conn = recorder.conn
    assert len(await store.load_samples(PROJECT, since=0.0)) == 10_000
    await store.close()


# -- never blind --------------------------------------------------------------------------------


async def test_sqlite_a_deleted_state_file_stops_every_write(tmp_path: Path) -> None:
    """Deleting the file under a running bot is an error on the next write, not a bot
    that writes into an unlinked file for ever."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    fence = await lease(store)
    path.unlink()
    with pytest.raises(StateFileGone) as gone:
        await store.commit(fence=fence, upserts=[make_alert()], now=1.0)
    assert str(gone.value) == (
        f"state file {path} was deleted or replaced while running; restart the bot to "
        "start a new one"
    )
    with pytest.raises(StateFileGone):
        await store.set_meta("k", "v")
    await store.close()


async def test_sqlite_a_replaced_state_file_stops_every_write(tmp_path: Path) -> None:
    """A restore copying another file over the path is noticed too: the open file is no
    longer the one the path names."""
    path, other = tmp_path / "state.db", tmp_path / "backup.db"
    store = SqliteStore(path)
    await store.open()
    await store.set_meta("k", "before")
    backup = SqliteStore(other)
    await backup.open()
    await backup.close()
    os.replace(other, path)
    with pytest.raises(StateFileGone, match="deleted or replaced while running"):
        await store.set_meta("k", "after")
    await store.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="wd-store-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_store_script(body: str, *, unprivileged: bool = False) -> dict[str, Any]:
    """Run ``body`` (async code with ``SqliteStore`` and ``out``, a dict printed as JSON at
    the end) in a fresh interpreter, as user nobody when we are root and ``unprivileged``:
    root writes to read-only files, so a read-only test as root would prove nothing."""
    drop = "os.setgid(65534); os.setuid(65534)" if unprivileged and os.geteuid() == 0 else ""
    script = (
        "import asyncio, json, os, resource, signal\n"
        "from watchdog.store.sqlite import SqliteStore\n"
        f"{drop}\n"
        "out = {}\n"
        "async def main():\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\nasyncio.run(main())\nprint(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


async def state_file(path: Path) -> None:
    """A state file with one alert in it, closed."""
    store = SqliteStore(path)
    await store.open()
    await store.commit(fence=await lease(store), upserts=[make_alert()], now=1.0)
    await store.close()


async def test_sqlite_a_read_only_state_file_is_one_clear_line_at_open(shared_dir: Path) -> None:
    """A file the bot may not write fails open() naming the file and the reason."""
    path = shared_dir / "state.db"
    await state_file(path)
    path.chmod(0o444)
    out = run_store_script(
        f"""
        store = SqliteStore({str(path)!r})
        try:
            await store.open()
        except Exception as exc:
            out["error"] = [type(exc).__name__, str(exc)]
        await store.close()
        """,
        unprivileged=True,
    )
    assert out["error"] == [
        "StateFileUnwritable",
        f"state file {path} refuses writes: the file is read-only; the bot cannot keep its "
        "state until it can write there (or WATCHDOG_STATE names another file)",
    ]


async def test_sqlite_a_read_only_directory_is_one_clear_line_at_open(shared_dir: Path) -> None:
    """WAL needs files beside the state file: a directory the bot may not write says so."""
    path = shared_dir / "state.db"
    await state_file(path)
    path.chmod(0o666)
    shared_dir.chmod(0o755)
    out = run_store_script(
        f"""
        store = SqliteStore({str(path)!r})
        try:
            await store.open()
        except Exception as exc:
            out["error"] = [type(exc).__name__, str(exc)]
        await store.close()
        """,
        unprivileged=True,
    )
    assert out["error"][0] == "StateFileUnwritable"
    assert out["error"][1].startswith(
        f"state file {path} refuses writes: its directory is read-only"
    )


async def test_sqlite_a_disk_refusing_writes_names_the_file_and_reads_go_on(
    tmp_path: Path,
) -> None:
    """A write the disk refuses (here: a file-size limit, as a full disk does) raises
    StateFileUnwritable in one line; alerts and the outbox can still be read."""
    path = tmp_path / "state.db"
    await state_file(path)
    out = run_store_script(
        f"""
        from watchdog.domain.outgoing import AuditEntry
        store = SqliteStore({str(path)!r})
        await store.open()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write, not a dead process
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        try:
            await store.enqueue(
                [AuditEntry("U1", "pause", "j" * 5000, "ok", 1.0)] * 50, project="", now=1.0
            )
        except Exception as exc:
            out["error"] = [type(exc).__name__, str(exc)]
        out["alerts"] = [a.fingerprint for a in await store.load_alerts()]
        out["outbox"] = await store.outbox_size()
        await store.close()
        """
    )
    kind, message = out["error"]
    assert kind == "StateFileUnwritable"
    assert message.startswith(f"state file {path} refuses writes: disk I/O error (SQLITE_IOERR")
    assert "\n" not in message
    assert out["alerts"] == ["default/lag/job-1"]
    assert out["outbox"] == 0


# -- v1 (single project) -> v2 ------------------------------------------------------------------


def v1_alert(job: str) -> dict[str, Any]:
    """An alert state as the single-project release saved it: no project in it."""
    raw = alert_to_dict(make_alert(job_id=job))
    del raw["project"]
    return raw


def v1_file(path: Path, single_ts: str = "1700.000100", storm_ts: str = "1700.000200") -> None:
    """A state file of schema version 1, built from the v1 DDL, as the single-project bot
    left it: job-1 firing and posted on its own message, job-2 and job-3 in a storm (job-3
    resolved), an alert silence, two queued items and its leader lease."""
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0]:
            assert isinstance(statement, str)
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        for job in ("job-1", "job-2"):
            conn.execute(
                "INSERT INTO alerts VALUES (?, 'lag', ?, 'firing', ?)",
                (f"lag/{job}", job, json.dumps(v1_alert(job))),
            )
        rule = {"name": "lag", "kind": "metric", "severity": "critical"}
        storm = {
            "rule": {**rule, "description": None, "runbook": None},
            "members": {f"lag/{j}@130000": v1_alert(j) for j in ("job-2", "job-3")},
            "resolved": ["lag/job-3@130000"],
            "progress": {"list": 1},
        }
        conn.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
            [
                ("lag/job-1@130000", "C0ALERTS", single_ts, "single", "{}"),
                ("storm/lag/7", "C0ALERTS", storm_ts, "storm", json.dumps(storm)),
                ("lag/job-2@130000", "C0ALERTS", storm_ts, "storm-member",
                 json.dumps({"storm": "storm/lag/7"})),
                ("lag/job-3@130000", "C0ALERTS", storm_ts, "storm-member",
                 json.dumps({"storm": "storm/lag/7"})),
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO silences VALUES (?, ?, ?, 5000.0, 'U1', 10.0, '')",
            [("s-alert", "alert", "lag/job-1"), ("s-rule", "rule", "lag")],
        )
        queued = notification_v1("job-4")
        audit = {
            **dataclasses.asdict(make_audit("job-1", incident_id="lag/job-1@130000")),
            "type": "audit",
        }
        del audit["project"]
        conn.executemany(
            "INSERT INTO outbox (item, attempts, next_attempt, created_at) VALUES (?, ?, 1, 1)",
            [(json.dumps(queued), 0), (json.dumps(audit), 2)],
        )
        conn.execute("INSERT INTO samples VALUES ('job-1', 'lag', 100.0, 5.0)")
        conn.execute("INSERT INTO lease VALUES ('leader', 'old-bot:1', 1060.0)")


def notification_v1(job: str) -> dict[str, Any]:
    raw = {"type": "notification", **dataclasses.asdict(make_notification(job))}
    del raw["alert"]["project"]
    return dict(raw)


async def test_sqlite_migrates_a_v1_file_to_project_default(tmp_path: Path) -> None:
    """Every key and reference of a single-project file moves to project "default": the
    alert states, messages, storm bookkeeping, silences, queued items, samples and lease."""
    path = tmp_path / "state.db"
    v1_file(path)
    store = SqliteStore(path, clock=Clock(1000.0))
    await store.open()
    assert user_version(path) == SCHEMA_VERSION
    assert await store.load_alerts(PROJECT) == [
        make_alert(job_id="job-1"),
        make_alert(job_id="job-2"),
    ]
    single = await store.get_message("default/lag/job-1@130000")
    assert single == MessageRef("C0ALERTS", "1700.000100", "single", {})
    storm = await store.get_message("storm/default/lag/7")
    assert storm is not None and storm.kind == "storm"
    assert sorted(storm.data["members"]) == ["default/lag/job-2@130000", "default/lag/job-3@130000"]
    assert {m["project"] for m in storm.data["members"].values()} == {PROJECT}
    assert storm.data["resolved"] == ["default/lag/job-3@130000"]
    assert storm.data["progress"] == {"list": 1}
    member = await store.get_message("default/lag/job-2@130000")
    assert member is not None and member.data == {"storm": "storm/default/lag/7"}
    assert await store.get_message("lag/job-1@130000") is None
    assert [(s.id, s.target) for s in await store.list_silences()] == [
        ("s-alert", "default/lag/job-1"),
        ("s-rule", "lag"),
    ]
    assert (await store.list_silences())[0].matches(PROJECT, "lag", "job-1")
    queued, audit = await store.outbox_due(now=1.0)
    assert queued.item == make_notification("job-4")
    assert (queued.project, queued.maybe_sent) == (PROJECT, False)
    assert isinstance(audit.item, AuditEntry)
    assert audit.item.incident_id == "default/lag/job-1@130000"
    assert (audit.project, audit.maybe_sent, audit.attempts) == (PROJECT, True, 2)
    assert await store.load_samples(PROJECT, since=0.0) == [("job-1", "lag", 100.0, 5.0)]
    # The running v1 leader keeps its lease: a new replica waits it out.
    assert [(x.project, x.holder, x.term, x.expires) for x in await store.leases()] == [
        (PROJECT, "old-bot:1", 1, 1060.0)
    ]
    assert await store.acquire_lease(PROJECT, "new-bot:2", 30.0) is None
    await store.close()
    again = SqliteStore(path)
    await again.open()  # a second open finds nothing to migrate
    assert len(await again.load_alerts()) == 2
    await again.close()


async def test_sqlite_migration_keeps_keys_already_in_the_project_form(tmp_path: Path) -> None:
    """A v1 file written by a release that already used project keys is left as it is;
    where both forms of one key exist, the project form's row wins."""
    path = tmp_path / "state.db"
    v1_file(path)
    newer = alert_to_dict(make_alert(job_id="job-1", repeats=7))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO alerts VALUES ('default/lag/job-1', 'lag', 'job-1', 'firing', ?)",
            (json.dumps(newer),),
        )
        conn.execute(
            "INSERT INTO messages VALUES ('storm/default/lag/9', 'C0ALERTS', '1.9', 'storm',"
            ' \'{"members": {}, "resolved": []}\')'
        )
    store = SqliteStore(path)
    await store.open()
    assert await store.load_alerts() == [
        make_alert(job_id="job-1", repeats=7),
        make_alert(job_id="job-2"),
    ]
    assert await store.get_message("storm/default/lag/9") == MessageRef(
        "C0ALERTS", "1.9", "storm", {"members": {}, "resolved": []}
    )
    await store.close()


async def test_after_migration_no_alert_is_posted_twice_or_lost(tmp_path: Path) -> None:
    """The real Slack path over a migrated file: a resolve edits the original post, a storm
    member's resolve edits the storm, the queued items go out once, and nothing else is
    posted."""
    clock = Clock(1_700_000_000.0)
    async with serve_slack(clock, channels=["C0ALERTS", "C0AUDIT"]) as slack:
        # The v1 bot's messages, really posted before the upgrade.
        single = await slack.web.chat_postMessage(channel="C0ALERTS", text="lag on job-1")
        storm = await slack.web.chat_postMessage(channel="C0ALERTS", text="storm of lag")
        path = tmp_path / "state.db"
        v1_file(path, single_ts=str(single["ts"]), storm_ts=str(storm["ts"]))
        store = SqliteStore(path, clock=clock)
        await store.open()
        try:
            clock.now += 3600  # the v1 leader is gone and its lease long expired
            fences = await hold(store)
            rules = holder(
                '[slack]\nchannel = "C0ALERTS"\naudit_channel = "C0AUDIT"\n'
                '[[rules]]\nname = "lag"\nkind = "health"\nstatus = ["error"]\n'
            )
            notifier = SlackNotifier(slack.web, store, rules, clock=clock, pace=None)
            dispatcher = Dispatcher(store, notifier, fences=lambda: fences, clock=clock)
            resolved = [
                Notification(
                    reason=Reason.RESOLVED,
                    alert=dataclasses.replace(
                        state, phase=Phase.RESOLVED, resolved_at=2000.0, resolve_reason="ok"
                    ),
                    rule=RuleFacts(name="lag", kind="metric", severity="critical"),
                )
                for state in await store.load_alerts(PROJECT)
            ]
            await store.commit(fence=fences[PROJECT], outbox=resolved, now=clock())
            assert await dispatcher.flush(within=10.0) == 0
            assert await dispatcher.flush(within=10.0) == 0
        finally:
            await store.close()
        standin = slack.standin
        posts = standin.top_level("C0ALERTS")
        # the two v1 posts and the queued NEW of job-4: no second post of job-1 or job-2
        assert len(posts) == 3 and "job-4" in posts[2].text
        updated = [call["ts"] for call in standin.calls_of("chat.update")]
        assert sorted(updated) == sorted([str(single["ts"]), str(storm["ts"])])
        assert len(standin.replies(str(single["ts"]))) == 1  # "resolved" in its thread
        [audit_line] = standin.top_level("C0AUDIT")
        assert "job-1" in audit_line.text


def test_run_with_a_directory_as_state_is_one_line(tmp_path: Path) -> None:
    """`polaris-watchdog run` with WATCHDOG_STATE naming a directory exits with one line
    saying so, and no traceback."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "x"\nkind = "health"\nstatus = ["error"]\n')
    env = {
        **os.environ,
        "POLARIS_API_URL": "http://127.0.0.1:1",
        "POLARIS_PROJECT_ID": "p",
        "POLARIS_API_KEY": "k",
        "WATCHDOG_STATE": str(tmp_path),
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
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"polaris-watchdog: state file {tmp_path} is a directory; WATCHDOG_STATE must name "
        f"a file in it, e.g. {tmp_path / 'watchdog.db'}"
    )
