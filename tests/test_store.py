"""The state store: one behaviour suite over every backend (memory, SQLite, PostgreSQL).

What only one backend can do is in test_store_sqlite.py and test_store_postgres.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from storekit import (
    BACKENDS,
    PROJECT,
    Backend,
    lease,
    make_alert,
    make_audit,
    make_backend,
    make_notification,
    make_silence,
    targets,
)

from watchdog.domain.alerts import Phase, Reason
from watchdog.domain.digest import summarize
from watchdog.domain.oncall import Ack, Incident
from watchdog.domain.outgoing import AuditEntry, DigestPost, Notification, Outgoing, Redraw
from watchdog.store import Fence, FencedOut, Lease, MessageRef, Store
from watchdog.store.memory import MemoryStore
from watchdog.store.open import describe_store, open_store
from watchdog.store.postgres import PostgresStore
from watchdog.store.sqlite import SqliteStore

# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """An opened store of each backend, and its clock."""
    made = make_backend(request.param, request, tmp_path)
    await made.store.open()
    yield made
    await made.store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


@pytest.fixture
async def fence(store: Store) -> Fence:
    """The lease of project "default", held by replica-a."""
    return await lease(store)


@pytest.fixture(params=BACKENDS)
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store of each backend that has not been opened."""
    return make_backend(request.param, request, tmp_path).store


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


# -- leases ----------------------------------------------------------------------------------


async def test_first_lease_has_term_1_and_renewing_keeps_it(store: Store) -> None:
    """The holder renews its live lease as often as it likes under the same term."""
    assert await store.acquire_lease("p", "a", 30.0) == 1
    assert await store.acquire_lease("p", "a", 30.0) == 1
    assert await store.acquire_lease("p", "a", 30.0) == 1


async def test_lease_is_exclusive_until_it_expires_on_the_store_clock(backend: Backend) -> None:
    """Another holder gets None while the lease is live, and the lease with a bigger
    term once the store's clock passed its expiry; the old holder is then refused."""
    store = backend.store
    assert await store.acquire_lease("p", "a", 30.0) == 1
    await backend.advance(29.0)
    assert await store.acquire_lease("p", "b", 30.0) is None
    await backend.advance(2.0)
    assert await store.acquire_lease("p", "b", 30.0) == 2
    assert await store.acquire_lease("p", "a", 30.0) is None
    assert await store.acquire_lease("p", "b", 30.0) == 2


async def test_a_lapsed_lease_taken_back_by_its_holder_gets_a_new_term(backend: Backend) -> None:
    """Taking an expired lease bumps the term even for the same holder: what it staged
    before its lease lapsed may have been overtaken."""
    assert await backend.store.acquire_lease("p", "a", 10.0) == 1
    await backend.advance(11.0)
    assert await backend.store.acquire_lease("p", "a", 10.0) == 2


async def test_release_lets_another_take_over_at_once_with_a_bigger_term(store: Store) -> None:
    """release_lease ends our lease early; releasing someone else's does nothing."""
    assert await store.acquire_lease("p", "a", 30.0) == 1
    await store.release_lease("p", "b")
    assert await store.acquire_lease("p", "b", 30.0) is None
    await store.release_lease("p", "a")
    assert await store.acquire_lease("p", "b", 30.0) == 2
    await store.release_lease("nothing-here", "b")


async def test_leases_are_per_project_and_listed_by_project(store: Store) -> None:
    """Each project has its own lease and term; leases() lists every row, by project."""
    assert await store.acquire_lease("prod", "a", 30.0) == 1
    assert await store.acquire_lease("dev", "b", 30.0) == 1
    await store.release_lease("dev", "b")
    assert await store.acquire_lease("dev", "a", 30.0) == 2
    listed = await store.leases()
    assert [(x.project, x.holder, x.term) for x in listed] == [("dev", "a", 2), ("prod", "a", 1)]
    assert all(isinstance(x, Lease) and x.expires > 0 for x in listed)


# -- fencing ---------------------------------------------------------------------------------


async def taken_over(backend: Backend) -> tuple[Fence, Fence]:
    """Replica a held the lease; it lapsed and replica b took it: (a's fence, b's fence)."""
    old = await lease(backend.store, holder="replica-a")
    await backend.advance(61.0)
    new = await lease(backend.store, holder="replica-b")
    assert new.term == old.term + 1
    return old, new


async def test_a_stale_commit_is_fenced_out_and_changes_nothing(backend: Backend) -> None:
    """After a takeover, the old holder's commit writes no alert, delete or item."""
    store = backend.store
    old, new = await taken_over(backend)
    kept = make_alert(job_id="kept")
    await store.commit(fence=new, upserts=[kept], now=1.0)
    with pytest.raises(FencedOut) as refused:
        await store.commit(
            fence=old,
            upserts=[make_alert(job_id="stale")],
            deletes=[kept.fingerprint],
            outbox=[make_audit()],
            now=2.0,
        )
    assert (refused.value.project, refused.value.term, refused.value.current) == (
        PROJECT,
        old.term,
        new.term,
    )
    assert await store.load_alerts() == [kept]
    assert await store.outbox_size() == 0


async def test_a_commit_without_any_lease_is_fenced_out(store: Store) -> None:
    """No lease row at all: nothing may be written for the project."""
    with pytest.raises(FencedOut, match="no lease"):
        await store.commit(fence=Fence(PROJECT, 1), upserts=[make_alert()], now=1.0)
    assert await store.load_alerts() == []


async def test_commit_refuses_alerts_of_another_project(store: Store, fence: Fence) -> None:
    """A project's lease covers its own alerts only: bad input changes nothing."""
    with pytest.raises(ValueError, match="not of project"):
        await store.commit(fence=fence, upserts=[make_alert(project="other")], now=1.0)
    with pytest.raises(ValueError, match="not of project"):
        await store.commit(fence=fence, deletes=["other/lag/job-1"], now=1.0)
    assert await store.load_alerts() == []


async def test_stale_outbox_start_and_done_are_fenced_out(backend: Backend) -> None:
    """The old holder can neither claim an item nor settle one (its message unrecorded)."""
    store = backend.store
    old, new = await taken_over(backend)
    await store.enqueue([make_notification()], project=PROJECT, now=1.0)
    [record] = await store.outbox_due(now=1.0)
    with pytest.raises(FencedOut):
        await store.outbox_start([record.id], old)
    with pytest.raises(FencedOut):
        await store.outbox_done(record.id, old, {"m": MessageRef("C1", "1.1")})
    [still] = await store.outbox_due(now=1.0)
    assert (still.id, still.maybe_sent) == (record.id, False)
    assert await store.get_message("m") is None
    assert await store.outbox_start([record.id], new) == [record.id]


async def test_stale_save_messages_is_fenced_out(backend: Backend) -> None:
    """Storm progress written under a lost lease is refused; the current one's stays."""
    store = backend.store
    old, new = await taken_over(backend)
    await store.save_messages({"storm/default/lag/1": MessageRef("C1", "1.1", "storm")}, new)
    with pytest.raises(FencedOut):
        await store.save_messages({"storm/default/lag/1": MessageRef("C1", "9.9", "storm")}, old)
    assert await store.get_message("storm/default/lag/1") == MessageRef("C1", "1.1", "storm")


# -- alerts and commit ------------------------------------------------------------------------


async def test_commit_upserts_alerts_by_fingerprint(store: Store, fence: Fence) -> None:
    """Alert states round-trip whole, and a second upsert of a fingerprint replaces the first."""
    first = make_alert(job_id="job-1")
    other = make_alert(rule="health", job_id="job-2", phase=Phase.PENDING, fired_at=None)
    await store.commit(fence=fence, upserts=[first, other], now=1.0)
    resolved = replace(first, phase=Phase.RESOLVED, resolved_at=300.0, resolve_reason="ok")
    await store.commit(fence=fence, upserts=[resolved], now=2.0)
    assert sorted(await store.load_alerts(), key=lambda s: s.fingerprint) == [other, resolved]


async def test_load_alerts_of_one_project(store: Store) -> None:
    """load_alerts(project) returns that project's alerts; without one, every project's."""
    prod, dev = await lease(store, "prod"), await lease(store, "dev")
    mine = make_alert(project="prod")
    theirs = make_alert(project="dev")
    await store.commit(fence=prod, upserts=[mine], now=1.0)
    await store.commit(fence=dev, upserts=[theirs], now=1.0)
    assert await store.load_alerts("prod") == [mine]
    assert await store.load_alerts("dev") == [theirs]
    assert await store.load_alerts("none") == []
    assert await store.load_alerts() == [theirs, mine]  # by fingerprint


async def test_commit_deletes_fingerprints_after_upserts(store: Store, fence: Fence) -> None:
    """Deletes remove states (unknown ones silently) and win over an upsert in the same commit."""
    a, b = make_alert(job_id="a"), make_alert(job_id="b")
    await store.commit(fence=fence, upserts=[a, b], now=1.0)
    await store.commit(
        fence=fence, upserts=[b], deletes=[a.fingerprint, b.fingerprint, "default/x/y"], now=2.0
    )
    assert await store.load_alerts() == []


async def test_commit_is_all_or_nothing(store: Store, fence: Fence) -> None:
    """An outbox item JSON cannot hold fails the whole commit: no alert, no item is saved."""
    bad = make_audit(extra={"x": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        await store.commit(fence=fence, upserts=[make_alert()], outbox=[make_audit(), bad], now=1.0)
    assert await store.load_alerts() == []
    assert await store.outbox_size() == 0


async def test_commit_enqueues_outbox_items_in_order(store: Store, fence: Fence) -> None:
    """Items get increasing ids in the given order, zero attempts, now as due and created,
    and the fence's project."""
    items: list[Outgoing] = [make_notification("j1"), make_audit("j2"), make_notification("j3")]
    await store.commit(fence=fence, outbox=items, now=50.0)
    due = await store.outbox_due(now=50.0)
    assert [r.item for r in due] == items
    assert [r.id for r in due] == sorted(r.id for r in due)
    assert len({r.id for r in due}) == 3
    assert {(r.attempts, r.next_attempt, r.created_at) for r in due} == {(0, 50.0, 50.0)}
    assert {(r.project, r.maybe_sent) for r in due} == {(PROJECT, False)}


# -- outbox -----------------------------------------------------------------------------------


async def test_enqueue_needs_no_lease(store: Store) -> None:
    """Audit lines are queued by any replica serving Slack, with the project given."""
    await store.enqueue([make_audit("a")], project="", now=5.0)
    await store.enqueue([make_audit("b")], project="prod", now=5.0)
    due = await store.outbox_due(now=5.0)
    assert [(r.project, r.item) for r in due] == [("", make_audit("a")), ("prod", make_audit("b"))]


async def test_outbox_due_and_size_filter_by_project(store: Store) -> None:
    """projects picks whose items are due or counted; "" selects coordinator items."""
    await store.enqueue([make_audit("coordinator")], project="", now=1.0)
    await store.enqueue([make_audit("prod")], project="prod", now=1.0)
    await store.enqueue([make_audit("dev")], project="dev", now=1.0)
    assert targets(await store.outbox_due(now=1.0, projects=["prod"])) == ["prod"]
    assert targets(await store.outbox_due(now=1.0, projects={"", "dev"})) == ["coordinator", "dev"]
    assert await store.outbox_due(now=1.0, projects=[]) == []
    assert len(await store.outbox_due(now=1.0)) == 3
    assert await store.outbox_size(["prod", ""]) == 2
    assert await store.outbox_size([]) == 0
    assert await store.outbox_size() == 3


async def test_outbox_due_returns_only_due_live_items_up_to_limit(store: Store) -> None:
    """Not yet due and dead items are left out; limit caps the oldest-first list."""
    await store.enqueue([make_audit("a"), make_audit("b"), make_audit("c")], project="", now=10.0)
    await store.enqueue([make_audit("later")], project="", now=20.0)
    a, b, c = await store.outbox_due(now=10.0)
    await store.outbox_dead(b.id, "channel_not_found")
    assert targets(await store.outbox_due(now=15.0)) == ["a", "c"]
    assert [r.id for r in await store.outbox_due(now=20.0, limit=2)] == [a.id, c.id]
    assert await store.outbox_due(now=20.0, limit=0) == []
    assert await store.outbox_due(now=9.9) == []


async def test_outbox_done_deletes_item_and_saves_messages(store: Store, fence: Fence) -> None:
    """Delivery removes the item and records its message in the same call."""
    await store.commit(fence=fence, outbox=[make_notification()], now=1.0)
    [record] = await store.outbox_due(now=1.0)
    assert await store.outbox_start([record.id], fence) == [record.id]
    ref = MessageRef(channel="C1", ts="1700.0001", kind="single", data={"n": 1})
    await store.outbox_done(record.id, fence, {"default/lag/job-1@130000": ref})
    assert await store.outbox_due(now=1.0) == []
    assert await store.outbox_size() == 0
    assert await store.get_message("default/lag/job-1@130000") == ref


async def test_outbox_done_of_unknown_id_still_saves_messages(store: Store, fence: Fence) -> None:
    """An id already gone is no error; the messages Slack created are still recorded."""
    ref = MessageRef(channel="C1", ts="1.2")
    await store.outbox_done(12345, fence, {"k": ref})
    await store.outbox_done(12345, fence)
    assert await store.get_message("k") == ref


async def test_outbox_start_claims_an_item_once_per_term(store: Store, fence: Fence) -> None:
    """A claimed item is not claimed again while its claim's term is current; dead,
    gone and other projects' items are left out; coordinator items may be claimed."""
    await store.enqueue([make_audit("a"), make_audit("b")], project=PROJECT, now=1.0)
    await store.enqueue([make_audit("coordinator")], project="", now=1.0)
    await store.enqueue([make_audit("other")], project="other", now=1.0)
    a, b, coordinator, other = await store.outbox_due(now=1.0)
    await store.outbox_dead(b.id, "refused")
    wanted = [a.id, b.id, coordinator.id, other.id, 999_999]
    assert await store.outbox_start(wanted, fence) == [a.id, coordinator.id]
    assert await store.outbox_start(wanted, fence) == []
    assert await store.outbox_start([], fence) == []


async def test_an_item_started_and_never_settled_reads_back_maybe_sent(
    store: Store, fence: Fence
) -> None:
    """A claim marks the item in flight: if its deliverer dies, it may have been sent."""
    await store.enqueue(
        [make_notification("j1"), make_notification("j2")], project=PROJECT, now=1.0
    )
    first, second = await store.outbox_due(now=1.0)
    await store.outbox_start([first.id], fence)
    again = await store.outbox_due(now=1.0)
    assert [(r.id, r.maybe_sent) for r in again] == [(first.id, True), (second.id, False)]


async def test_retry_clears_maybe_sent_or_keeps_it_and_frees_the_claim(
    store: Store, fence: Fence
) -> None:
    """A refusal (maybe_sent=False) clears the mark, a timeout keeps it; either way the
    item may be claimed again for the next attempt, which is counted."""
    await store.enqueue([make_audit("refused"), make_audit("timed-out")], project=PROJECT, now=1.0)
    refused, timed_out = await store.outbox_due(now=1.0)
    assert await store.outbox_start([refused.id, timed_out.id], fence) == [refused.id, timed_out.id]
    await store.outbox_retry(refused.id, 5.0, "HTTP 503", maybe_sent=False)
    await store.outbox_retry(timed_out.id, 5.0, "TimeoutError", maybe_sent=True)
    assert [(r.id, r.maybe_sent, r.attempts) for r in await store.outbox_due(now=5.0)] == [
        (refused.id, False, 1),
        (timed_out.id, True, 1),
    ]
    assert await store.outbox_start([refused.id, timed_out.id], fence) == [refused.id, timed_out.id]


async def test_claims_of_a_lost_lease_pass_to_the_successor(backend: Backend) -> None:
    """Items the old holder claimed and never settled are claimable under the new term,
    marked maybe sent."""
    store = backend.store
    await store.enqueue([make_notification()], project=PROJECT, now=1.0)
    [record] = await store.outbox_due(now=1.0)
    old = await lease(store, holder="replica-a")
    assert await store.outbox_start([record.id], old) == [record.id]
    await backend.advance(61.0)  # replica a died mid-post
    new = await lease(store, holder="replica-b")
    [inherited] = await store.outbox_due(now=1.0)
    assert inherited.maybe_sent
    assert await store.outbox_start([record.id], new) == [record.id]


async def test_outbox_retry_counts_attempts_and_reschedules(store: Store) -> None:
    """A retry bumps attempts and moves the next attempt; unknown ids are ignored."""
    await store.enqueue([make_audit()], project="", now=1.0)
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
    await store.enqueue([make_audit("a"), make_audit("b")], project="", now=1.0)
    assert await store.outbox_size() == 2
    first, _ = await store.outbox_due(now=1.0)
    await store.outbox_dead(first.id, "invalid_blocks")
    assert await store.outbox_size() == 1
    assert targets(await store.outbox_due(now=100.0)) == ["b"]


async def test_outbox_ids_are_never_reused(store: Store, fence: Fence) -> None:
    """An item enqueued after the newest was delivered still gets a larger id."""
    await store.enqueue([make_audit("a")], project=PROJECT, now=1.0)
    [first] = await store.outbox_due(now=1.0)
    await store.outbox_done(first.id, fence)
    await store.enqueue([make_audit("b")], project=PROJECT, now=2.0)
    [second] = await store.outbox_due(now=2.0)
    assert second.id > first.id


# -- messages ---------------------------------------------------------------------------------


async def test_messages_upsert_by_key(store: Store, fence: Fence) -> None:
    """save_messages replaces a key's ref; unknown keys read as None."""
    await store.save_messages({"a": MessageRef("C1", "1.1"), "b": MessageRef("C1", "2.2")}, fence)
    storm = MessageRef("C2", "3.3", kind="storm", data={"members": ["x/1", "y/2"], "n": 2})
    await store.save_messages({"a": storm}, fence)
    assert await store.get_message("a") == storm
    assert await store.get_message("b") == MessageRef("C1", "2.2", kind="single", data={})
    assert await store.get_message("missing") is None


async def test_callers_cannot_mutate_stored_values(store: Store, fence: Fence) -> None:
    """Changing a dict passed in or handed out does not change what the store holds."""
    data: dict[str, Any] = {"members": ["x/1"]}
    await store.save_messages({"k": MessageRef("C1", "1.1", data=data)}, fence)
    data["members"].append("leak")
    got = await store.get_message("k")
    assert got is not None
    got.data["members"].append("leak")  # type: ignore[index]
    entry = make_audit()
    await store.enqueue([entry], project="", now=1.0)
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
        PROJECT, [("j2", "lag", 20.0, 5.0), ("j1", "rows", 20.0, 7.0), ("j1", "lag", 20, 6)]
    )
    await store.append_samples(PROJECT, [("j1", "lag", 10.0, 1.0), ("j3", "lag", 30.0, 2.5)])
    rows = await store.load_samples(PROJECT, since=20.0)
    assert rows == [
        ("j1", "lag", 20.0, 6.0),
        ("j1", "rows", 20.0, 7.0),
        ("j2", "lag", 20.0, 5.0),
        ("j3", "lag", 30.0, 2.5),
    ]
    assert all(isinstance(row[2], float) and isinstance(row[3], float) for row in rows)
    assert await store.load_samples(PROJECT, since=10.0, until=20.0) == [("j1", "lag", 10.0, 1.0)]


async def test_samples_are_kept_per_project(store: Store) -> None:
    """Each project reads and prunes only its own rows, also for a job id both share."""
    await store.append_samples("prod", [("j1", "lag", 10.0, 1.0)])
    await store.append_samples("dev", [("j1", "lag", 10.0, 2.0), ("j2", "lag", 10.0, 3.0)])
    assert await store.load_samples("prod", since=0.0) == [("j1", "lag", 10.0, 1.0)]
    await store.prune_samples("dev", before=0.0, gone_jobs=["j1"])
    await store.prune_samples("prod", before=100.0)
    assert await store.load_samples("dev", since=0.0) == [("j2", "lag", 10.0, 3.0)]
    assert await store.load_samples("prod", since=0.0) == []


async def test_nan_samples_are_dropped(store: Store) -> None:
    """A NaN value is no sample (SQLite cannot keep it), in every backend alike."""
    await store.append_samples(PROJECT, [("j1", "lag", 1.0, float("nan")), ("j1", "lag", 2.0, 1.0)])
    assert await store.load_samples(PROJECT, since=0.0) == [("j1", "lag", 2.0, 1.0)]


async def test_prune_drops_old_rows_and_gone_jobs(store: Store) -> None:
    """Rows before the cut-off and every row of a gone job are removed."""
    await store.append_samples(
        PROJECT, [("j1", "lag", 5.0, 1.0), ("j1", "lag", 10.0, 2.0), ("j2", "lag", 50.0, 3.0)]
    )
    await store.append_samples(PROJECT, [("j3", "lag", 60.0, 4.0)])
    await store.prune_samples(PROJECT, before=10.0, gone_jobs=["j2"])
    assert await store.load_samples(PROJECT, since=0.0) == [
        ("j1", "lag", 10.0, 2.0),
        ("j3", "lag", 60.0, 4.0),
    ]
    await store.prune_samples(PROJECT, before=0.0)
    assert len(await store.load_samples(PROJECT, since=0.0)) == 2


# -- acknowledgements and the incident history -----------------------------------------------


def announced(job_id: str = "job-1", reason: Reason = Reason.NEW, **changes: Any) -> Notification:
    """A notification of ``job_id``'s incident (fired at 130) for ``reason``."""
    alert = make_alert(job_id=job_id, **changes)
    if reason is Reason.RESOLVED:
        alert = replace(alert, phase=Phase.RESOLVED, resolved_at=400.0, resolve_reason="ok")
    return replace(make_notification(job_id), reason=reason, alert=alert)


async def test_acks_are_kept_by_incident_and_listed_per_project(store: Store) -> None:
    """add_ack needs no lease; a second ack of an incident replaces the first; list_acks
    filters by project; remove_ack says whether there was one."""
    first = Ack("default/lag/job-1@130000", PROJECT, "lag", "job-1", "U1", 200.0)
    other = Ack("prod/lag/job-9@5000", "prod", "lag", "job-9", "U2", 210.0)
    await store.add_ack(first)
    await store.add_ack(other)
    await store.add_ack(replace(first, user="U3", at=220.0))
    assert await store.list_acks(PROJECT) == [replace(first, user="U3", at=220.0)]
    assert await store.list_acks() == [replace(first, user="U3", at=220.0), other]
    assert await store.remove_ack(first.incident_id) is True
    assert await store.remove_ack(first.incident_id) is False
    assert await store.list_acks() == [other]


async def test_commit_records_announced_incidents_and_their_resolve(
    store: Store, fence: Fence
) -> None:
    """A NEW notification starts a history line in the same commit; a RESOLVED one closes
    it and ends the incident's acknowledgement; audit lines add nothing."""
    await store.commit(fence=fence, outbox=[announced("job-1"), make_audit()], now=130.0)
    [line] = await store.list_incidents(0.0)
    assert line == Incident(
        incident_id=make_alert(job_id="job-1").incident_id,
        project=PROJECT,
        rule="lag",
        job_id="job-1",
        table="events",
        severity="critical",
        fired_at=130.0,
    )
    await store.add_ack(Ack.of(make_alert(job_id="job-1"), "U1", 190.0))
    await store.commit(fence=fence, outbox=[announced("job-1", Reason.RESOLVED)], now=400.0)
    [closed] = await store.list_incidents(0.0)
    assert (closed.acked_at, closed.acked_by, closed.resolved_at) == (190.0, "U1", 400.0)
    assert await store.list_acks() == []


async def test_the_first_acknowledgement_is_the_one_the_history_keeps(
    store: Store, fence: Fence
) -> None:
    """Time to acknowledge counts from the first ack; a withdrawn one is forgotten, and a
    notification that carries no ack leaves the line's alone."""
    incident = make_alert(job_id="job-1").incident_id
    await store.commit(fence=fence, outbox=[announced("job-1")], now=130.0)
    await store.add_ack(Ack.of(make_alert(job_id="job-1"), "U1", 150.0))
    await store.add_ack(Ack.of(make_alert(job_id="job-1"), "U2", 170.0))
    await store.commit(fence=fence, outbox=[announced("job-1", Reason.REPEAT)], now=180.0)
    [line] = await store.list_incidents(0.0)
    assert (line.incident_id, line.acked_at, line.acked_by) == (incident, 150.0, "U1")
    await store.remove_ack(incident)
    [line] = await store.list_incidents(0.0)
    assert (line.acked_at, line.acked_by) == (None, None)
    acked = announced("job-1", Reason.CHANGED, acked_by="U4", acked_at=190.0)
    await store.commit(fence=fence, outbox=[acked], now=190.0)
    [line] = await store.list_incidents(0.0)
    assert (line.acked_at, line.acked_by) == (190.0, "U4")


async def test_list_incidents_since_keeps_open_and_recent_ones(store: Store, fence: Fence) -> None:
    """Incidents resolved before ``since`` are left out; open ones are listed whenever
    they fired, in fire-time order."""
    await store.commit(
        fence=fence,
        outbox=[
            announced("old", fired_at=10.0, since=10.0),
            announced("open", fired_at=20.0, since=20.0),
            announced("late", fired_at=500.0, since=500.0),
        ],
        now=500.0,
    )
    gone = announced("old", Reason.RESOLVED, fired_at=10.0, since=10.0)
    gone = replace(gone, alert=replace(gone.alert, resolved_at=50.0))
    await store.commit(fence=fence, outbox=[gone], now=50.0)
    assert [i.job_id for i in await store.list_incidents(0.0)] == ["old", "open", "late"]
    assert [i.job_id for i in await store.list_incidents(100.0)] == ["open", "late"]


async def test_prune_history_drops_what_is_old_and_over(store: Store, fence: Fence) -> None:
    """Resolved lines older than the cut go; an old open line stays while its alert lives
    and goes once it is gone; old acks of gone alerts go; old once-marks go."""
    live = make_alert(job_id="live", fired_at=10.0, since=10.0)
    await store.commit(
        fence=fence,
        upserts=[live],
        outbox=[
            announced("done", fired_at=10.0, since=10.0),
            announced("live", fired_at=10.0, since=10.0),
            announced("orphan", fired_at=10.0, since=10.0),
            announced("recent", fired_at=1100.0, since=1100.0),
        ],
        now=10.0,
    )
    done = announced("done", Reason.RESOLVED, fired_at=10.0, since=10.0)
    await store.commit(fence=fence, outbox=[done], now=400.0)
    await store.add_ack(Ack.of(live, "U1", 20.0))
    await store.add_ack(Ack("default/lag/gone@1", PROJECT, "lag", "gone", "U1", 20.0))
    assert await store.enqueue_once("old-mark", [], project="", fence=fence, now=20.0)
    await store.prune_history("other-project", 1000.0)
    assert len(await store.list_incidents(0.0)) == 4
    await store.prune_history(PROJECT, 1000.0)
    assert [i.job_id for i in await store.list_incidents(0.0)] == ["live", "recent"]
    assert [a.job_id for a in await store.list_acks()] == ["live"]
    assert await store.enqueue_once("old-mark", [], project="", fence=fence, now=1000.0)


async def test_enqueue_once_enqueues_a_key_once(store: Store, fence: Fence) -> None:
    """The first call enqueues its items (as the given project's) and marks the key; any
    later call with that key writes nothing and says so."""
    key = "digest/2026-11-28"
    assert await store.enqueue_once(key, [make_audit("a")], project="", fence=fence, now=5.0)
    assert not await store.enqueue_once(key, [make_audit("b")], project="", fence=fence, now=6.0)
    due = await store.outbox_due(now=10.0)
    assert [(r.project, r.item) for r in due] == [("", make_audit("a"))]


async def test_enqueue_once_under_a_lost_lease_writes_nothing(backend: Backend) -> None:
    """A replica that lost the coordinator's lease cannot mark the day or enqueue; the
    new holder still can."""
    store = backend.store
    old, new = await taken_over(backend)
    with pytest.raises(FencedOut):
        await store.enqueue_once("digest/x", [make_audit()], project="", fence=old, now=1.0)
    assert await store.outbox_size() == 0
    assert await store.enqueue_once("digest/x", [make_audit()], project="", fence=new, now=1.0)
    assert await store.outbox_size() == 1


async def test_redraws_and_digests_round_trip_through_the_outbox(store: Store) -> None:
    """The on-call outbox items come back whole, also in SQL backends."""
    digest = summarize(await store.list_incidents(0.0), 0.0, 86_400.0)
    items: list[Outgoing] = [
        Redraw("default/lag/job-1@130000", PROJECT, "acknowledged by U1", 5.0),
        DigestPost(replace(digest, by_rule=(("lag", 2),)), "C0DIGEST", "Europe/Berlin"),
        replace(announced(), reason=Reason.ESCALATE, escalate_channel="C0LEADS"),
    ]
    await store.enqueue(items, project="", now=5.0)
    assert [r.item for r in await store.outbox_due(now=5.0)] == items


# -- meta -------------------------------------------------------------------------------------


async def test_meta_set_replaces_value(store: Store) -> None:
    """set_meta upserts; an unknown key reads as None."""
    assert await store.get_meta("rules_hash") is None
    await store.set_meta("rules_hash", "abc")
    await store.set_meta("rules_hash", "def")
    assert await store.get_meta("rules_hash") == "def"


# -- things done once ------------------------------------------------------------------------


async def test_a_key_is_claimed_once_while_it_is_remembered(backend: Backend) -> None:
    """claim_once: True the first time, False for the same key until it expires; other
    keys are independent."""
    until = backend.now() + 300
    assert await backend.store.claim_once("v0=aaa", until) is True
    assert await backend.store.claim_once("v0=aaa", until) is False
    assert await backend.store.claim_once("v0=bbb", until) is True
    assert await backend.store.claim_once("v0=aaa", until + 60) is False


async def test_an_expired_key_is_forgotten(backend: Backend) -> None:
    """Past its `until` on the store's clock a key is pruned: claiming it again is new."""
    until = backend.now() + 300
    assert await backend.store.claim_once("v0=old", until)
    await backend.advance(301)
    assert await backend.store.claim_once("v0=new", backend.now() + 300)
    assert await backend.store.claim_once("v0=old", backend.now() + 300) is True
    assert await backend.store.claim_once("v0=new", backend.now() + 300) is False


# -- choosing the backend ---------------------------------------------------------------------


def test_watchdog_state_picks_the_backend(tmp_path: Path) -> None:
    """:memory: is memory, a postgresql:// or postgres:// URL is PostgreSQL, else a file."""
    assert isinstance(open_store(":memory:"), MemoryStore)
    assert isinstance(open_store(str(tmp_path / "state.db")), SqliteStore)
    assert isinstance(open_store("postgresql://u:pw@db:5432/wd"), PostgresStore)
    assert isinstance(open_store("postgres://u:pw@db/wd"), PostgresStore)
    assert isinstance(open_store("POSTGRESQL://db/wd"), PostgresStore)


def test_the_state_url_is_described_without_its_password() -> None:
    """What the bot logs about WATCHDOG_STATE never holds the password."""
    shown = describe_store("postgresql://watchdog:s3cr%40t@db:5432/watchdog")
    assert shown == "postgresql://watchdog:***@db:5432/watchdog"
    assert describe_store("/data/watchdog.db") == "/data/watchdog.db"
    assert "hunter2" not in repr(PostgresStore("postgresql://u:hunter2@db/wd"))
