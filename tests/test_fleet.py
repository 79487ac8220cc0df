"""Several replicas over one store: each project watched by exactly one, shared out, taken
over when a replica dies, handed over at once when one stops, never written to by a
replica that lost its lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from harness import FakeClock, alert, holder, job_id, serve_polaris

from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.polaris.client import PolarisClient
from watchdog.rules.holder import RulesHolder
from watchdog.store import Fence, FencedOut, Store, StoreError
from watchdog.store.memory import MemoryStore
from watchdog.watch.fleet import Fleet
from watchdog.watch.loop import LeaseLost, Watcher

PROJECTS = ("alpha", "beta", "gamma")
RULES = (
    """
[watch]
interval = "30s"

[ha]
lease = "15s"

[slack]
channel = "C0ALERTS"
"""
    + "".join(
        f"""
[[projects]]
name = "{name}"
url = "https://org.example.com"
id = "{name}-project"
api_key_env = "KEY_{name.upper()}"
"""
        for name in PROJECTS
    )
    + """
[[rules]]
name = "job-unhealthy"
kind = "health"
"""
)


async def parked(delay: float) -> None:
    """A watcher's sleep that never returns: each leads with one tick, then waits."""
    await asyncio.Event().wait()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock) -> AsyncIterator[MemoryStore]:
    store = MemoryStore(clock=clock)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[PolarisClient]:
    sim = Simulator(clock=clock)
    sim.add_job(type="streaming", table="clicks", job_id=job_id(1))
    async with serve_polaris(sim) as client:
        yield client


class Replicas:
    """Fleets over one store, as replicas on one database would be."""

    def __init__(self, store: Store, client: PolarisClient, clock: FakeClock) -> None:
        self.store, self.client, self.clock = store, client, clock
        self.rules: RulesHolder = holder(RULES)
        self.fleets: dict[str, Fleet] = {}

    def add(self, name: str) -> Fleet:
        watchers = {
            project: Watcher(
                project=project,
                client=self.client,
                store=self.store,
                rules=self.rules,
                clock=self.clock,
                sleep=parked,
            )
            for project in PROJECTS
        }
        fleet = Fleet(watchers, self.store, self.rules, replica=name, clock=self.clock)
        self.fleets[name] = fleet
        return fleet

    async def rounds(self, *names: str, times: int = 1) -> None:
        for _ in range(times):
            for name in names or list(self.fleets):
                await self.fleets[name].round()

    def leads(self) -> dict[str, list[str]]:
        return {name: fleet.leads() for name, fleet in self.fleets.items()}

    async def close(self) -> None:
        for fleet in self.fleets.values():
            for name in fleet.leads():
                fleet._lose(name, "test over")  # cancel watcher tasks
        await asyncio.sleep(0)


@pytest.fixture
async def replicas(
    store: MemoryStore, client: PolarisClient, clock: FakeClock
) -> AsyncIterator[Replicas]:
    rig = Replicas(store, client, clock)
    yield rig
    await rig.close()


async def test_a_lone_replica_watches_every_project(replicas: Replicas) -> None:
    """With nobody else alive, one replica holds all three leases (term 1 each)."""
    fleet = replicas.add("a")
    await replicas.rounds()
    assert fleet.leads() == list(PROJECTS)
    assert {f.term for f in fleet.fences().values()} == {1}
    assert fleet.fences()[""] == fleet.fences()["alpha"]  # the coordinator's items


async def test_projects_spread_over_the_live_replicas(replicas: Replicas) -> None:
    """A second and third replica each end up with one project: a replica over its share
    releases one, a replica under it takes it."""
    replicas.add("a")
    await replicas.rounds()
    replicas.add("b")
    replicas.add("c")
    await replicas.rounds(times=4)
    assert sorted(len(projects) for projects in replicas.leads().values()) == [1, 1, 1]
    held = [p for projects in replicas.leads().values() for p in projects]
    assert sorted(held) == list(PROJECTS)


async def test_a_dead_replicas_projects_are_taken_over_after_the_lease(
    replicas: Replicas, clock: FakeClock, store: MemoryStore
) -> None:
    """Replica a stops renewing (SIGKILL): within the lease its projects stay put; after
    it, b takes them with a bigger term — and a, if it ever wakes, steps down."""
    a, b = replicas.add("a"), replicas.add("b")
    await replicas.rounds(times=3)
    mine = a.leads()
    assert mine and b.leads()
    terms = {name: a.watchers[name].term for name in mine}
    clock.advance(10)
    await replicas.rounds("b")
    assert set(b.leads()).isdisjoint(mine), "a's leases are still live"
    clock.advance(6)  # 16 s since a's last renewal: past the 15 s lease
    await replicas.rounds("b")
    assert sorted(b.leads()) == list(PROJECTS)
    for name in mine:
        term = b.watchers[name].term
        assert term is not None and term > (terms[name] or 0)
    await replicas.rounds("a")  # a wakes up (SIGCONT): its renewals fail
    assert a.leads() == []
    with pytest.raises(FencedOut):
        stale = Fence(mine[0], terms[mine[0]] or 0)
        late = replace(alert(job_id(1)), project=mine[0])
        await store.commit(fence=stale, upserts=[late], now=clock())


async def test_a_lease_is_relied_on_only_while_the_replicas_clock_says_it_holds(
    replicas: Replicas, clock: FakeClock
) -> None:
    """Paused past its lease (no round ran), a replica on waking hands delivery no fence
    at all — though it has not seen the lease go yet — so it posts nothing; its next
    round renews the lease (nobody took it) and delivery has its fences back."""
    a = replicas.add("a")
    await replicas.rounds()
    everything = {"", *PROJECTS}
    assert set(a.fences()) == everything
    clock.advance(a.valid_for - 0.5)
    assert set(a.fences()) == everything, "still sure: renewed less than a lease ago"
    clock.advance(1.0)
    assert a.fences() == {} and a.leads() == list(PROJECTS)
    await replicas.rounds()
    assert set(a.fences()) == everything


async def test_a_standby_comes_round_just_after_a_dead_replicas_lease_ends(
    replicas: Replicas, clock: FakeClock
) -> None:
    """While the other replica renews, a standby's rounds come every lease / 3; once it
    stops (a SIGKILL), the standby's next round is right after that lease ends, so the
    takeover does not wait for a further period."""
    replicas.add("a")
    b = replicas.add("b")
    await replicas.rounds(times=3)
    assert b.next_round_in() == b.renew_every
    clock.advance(12)  # a died 12 s into its 15 s lease: 3 s left
    await replicas.rounds("b")
    assert b.next_round_in() == pytest.approx(3.05)
    clock.advance(b.next_round_in())
    await replicas.rounds("b")
    assert sorted(b.leads()) == list(PROJECTS)


async def test_a_stopping_replica_hands_over_at_once(replicas: Replicas) -> None:
    """SIGTERM releases the leases and leaves: the other replica takes every project at
    its next round, without waiting for any lease or heartbeat to lapse."""
    a, b = replicas.add("a"), replicas.add("b")
    await replicas.rounds(times=3)
    assert a.leads() and b.leads()
    await a.stop(within=1.0)
    await replicas.rounds("b")
    assert sorted(b.leads()) == list(PROJECTS)


async def test_a_store_outage_is_reported_and_the_next_round_recovers(
    replicas: Replicas, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round that cannot reach the store reports it (the replica is not watching for
    sure) and keeps going; the next good round clears the problem."""
    fleet = replicas.add("a")
    await replicas.rounds()

    async def down(replica: str, ttl: float) -> list[str]:
        raise StoreError("database unreachable")

    monkeypatch.setattr(store, "heartbeat", down)
    await replicas.rounds()
    assert "cannot reach the state store" in fleet.health.problems["store"].message
    monkeypatch.undo()
    await replicas.rounds()
    assert fleet.health.ok and fleet.leads() == list(PROJECTS)


async def test_a_new_holder_reloads_what_the_previous_one_left(
    replicas: Replicas, clock: FakeClock, store: MemoryStore
) -> None:
    """Taking a project over adopts the alerts the previous holder stored (so they are
    not posted again from a stale view)."""
    a = replicas.add("a")
    await replicas.rounds()
    fence = a.fences()["beta"]
    announced = replace(alert(job_id(1)), project="beta", posted=True)
    await store.commit(fence=fence, upserts=[announced], now=clock())
    await a.stop(within=1.0)
    b = replicas.add("b")
    await replicas.rounds("b")
    assert announced.fingerprint in b.watchers["beta"].alerts


async def test_a_tick_under_a_lost_lease_writes_nothing_and_steps_down(
    replicas: Replicas, clock: FakeClock, store: MemoryStore
) -> None:
    """When another replica took the lease meanwhile, the tick's commit is refused: the
    watcher stops speaking for the project at once."""
    a = replicas.add("a")
    await replicas.rounds()
    watcher = a.watchers["gamma"]
    clock.advance(20)  # a's lease lapses, and b takes it
    b = replicas.add("b")
    await replicas.rounds("b")
    assert "gamma" in b.leads()
    with pytest.raises(LeaseLost):
        await watcher.tick(clock())
    assert watcher.term is None


async def test_a_tick_under_a_lost_lease_stores_no_samples(
    replicas: Replicas, clock: FakeClock, store: MemoryStore
) -> None:
    """Samples swept before the lease was lost are not appended either: the fenced commit
    goes first, so the successor's history gets nothing from a stale replica."""
    a = replicas.add("a")
    await replicas.rounds()
    watcher = a.watchers["alpha"]
    watcher.sweep.set_targets({job_id(1): ("numRowsProcessed",)}, clock())
    report = await watcher.sweep.sweep_once()
    assert report.attempted == 1
    clock.advance(20)
    replicas.add("b")
    await replicas.rounds("b")
    with pytest.raises(LeaseLost):
        await watcher.tick(clock())
    assert await store.load_samples("alpha", 0.0) == []
