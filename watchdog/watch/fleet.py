"""The projects one replica watches: leases taken, renewed, shared and given back.

Every replica runs a :class:`Fleet` over every configured project. Each project is
watched by exactly one replica at a time, the holder of its lease in the store; the
others stand by. Every ``lease / 3`` seconds the fleet says it is alive (a heartbeat in
the store), renews the leases it holds, and balances: with N projects and R live replicas
a replica holds at most ``ceil(N / R)`` of them, releasing one when it holds more, and
takes over any project whose lease is free or whose holder stopped beating. A replica
that dies is replaced within the lease (default 15 s): a standby runs its next round
just after the soonest lease of another replica runs out, not a whole period later.
SIGTERM releases every lease, so a rolling update hands over at the next round.

A lease renewed under a new term (it lapsed and was taken again) means someone else may
have written meanwhile: the watcher reloads. A lease lost to another replica stops the
watcher at once; its writes are fenced anyway (:mod:`watchdog.store`). After each round
the fleet asks the daily digest whether it is due (:mod:`watchdog.watch.daily`): only the
coordinator posts it.

Slack is not fenced by the database, so delivery asks :meth:`Fleet.fences` right before
each call, and that counts a lease as held only while this replica's own clock says the
lease cannot have run out since the store last confirmed it. A replica that was paused
(SIGSTOP, a long GC, a frozen VM) past its lease therefore posts nothing on waking, even
before its next round finds the lease gone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from watchdog.rules.holder import RulesHolder
from watchdog.store import Fence, Lease, Store, StoreError
from watchdog.watch.daily import DailyDigest
from watchdog.watch.health import Health
from watchdog.watch.loop import Watcher

log = structlog.get_logger(__name__)

#: Seconds after another replica's lease ends that a standby's round comes.
_AFTER_EXPIRY = 0.05


class Fleet:
    def __init__(
        self,
        watchers: Mapping[str, Watcher],
        store: Store,
        rules: RulesHolder,
        *,
        replica: str,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_change: Callable[[], None] = lambda: None,
        daily: DailyDigest | None = None,
    ) -> None:
        self.watchers = dict(sorted(watchers.items()))
        self._store = store
        self._rules = rules
        self.replica = replica
        self._clock = clock
        self._sleep = sleep
        self._on_change = on_change  # the set of leases changed (wake delivery)
        self._daily = daily
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: when (our clock) the store last confirmed each lease we hold: the start of the
        #: call that took or renewed it, so that the lease ran from no earlier than that
        self._confirmed: dict[str, float] = {}
        self.health = Health("")  # the replica's own problems (the store, the leases)
        self.last_round_at: float | None = None
        self._expiries: list[float] = []  # others' leases, as the last round saw them
        self._stopping = False

    # ---- what others read ----------------------------------------------------------

    @property
    def lease_seconds(self) -> float:
        return self._rules.current.ha.lease

    @property
    def renew_every(self) -> float:
        return max(self.lease_seconds / 3, 0.1)

    def leads(self) -> list[str]:
        """The projects this replica watches now."""
        return [name for name, w in self.watchers.items() if w.term is not None]

    @property
    def coordinator(self) -> str:
        """The project whose lease holder also delivers items of no project."""
        return min(self.watchers)

    @property
    def valid_for(self) -> float:
        """How long after the store confirmed a lease this replica relies on it: the lease,
        less an allowance for the clocks of replica and database drifting apart."""
        return self.lease_seconds - min(1.0, self.lease_seconds / 10)

    def fences(self) -> dict[str, Fence]:
        """The leases held now and sure to be ours by our own clock, by project; ""
        (items of no project) goes with the coordinator project's."""
        now = self._clock()
        held = {
            name: fence
            for name, w in self.watchers.items()
            if (fence := w.fence) and now - self._confirmed.get(name, -math.inf) < self.valid_for
        }
        if self.coordinator in held:
            held[""] = held[self.coordinator]
        return held

    # ---- the lease loop -------------------------------------------------------------

    async def run(self) -> None:
        """Heartbeat, renew, balance and take over, every ``lease / 3`` seconds."""
        while not self._stopping:
            await self.round()
            await self._sleep(self.next_round_in())

    def next_round_in(self) -> float:
        """Seconds to the next round: ``lease / 3``, or less when another replica's lease
        runs out sooner (its holder stopped renewing it: it may be dead), so that the
        takeover follows the lease's end closely. Lease times are the store's clock;
        clocks apart by some seconds only make this early (a wasted round) or late (by
        at most the period)."""
        now = self._clock()
        soonest = min((t for t in self._expiries if t > now), default=math.inf)
        return min(self.renew_every, max(soonest - now + _AFTER_EXPIRY, _AFTER_EXPIRY))

    async def round(self) -> None:
        """One heartbeat-renew-balance round (tests call it directly)."""
        now = self._clock()
        try:
            live = set(await self._store.heartbeat(self.replica, self.lease_seconds))
            leases = {lease.project: lease for lease in await self._store.leases()}
            self._expiries = [
                lease.expires
                for lease in leases.values()
                if lease.holder != self.replica and lease.project in self.watchers
            ]
            await self._renew()
            await self._balance(live, leases)
            if self._daily is not None and await self._daily.check(self.fences()):
                self._on_change()  # the digest is queued: deliver it
        except StoreError as exc:
            self.health.report("store", f"cannot reach the state store: {exc}", now)
        else:
            self.health.report("store", None, now)
        self.last_round_at = self._clock()

    async def _acquire(self, name: str) -> int | None:
        asked = self._clock()
        term = await self._store.acquire_lease(name, self.replica, self.lease_seconds)
        if term is not None:
            self._confirmed[name] = asked
        return term

    async def _renew(self) -> None:
        for name in self.leads():
            watcher = self.watchers[name]
            term = await self._acquire(name)
            if term is None:
                self._lose(name, "another replica holds the lease now")
            elif term != watcher.term:
                # It lapsed and we took it again: someone may have written in between.
                self._lose(name, f"the lease lapsed (term {watcher.term} → {term})")
                await self._start(name, term)

    async def _balance(self, live: set[str], leases: Mapping[str, Lease]) -> None:
        share = math.ceil(len(self.watchers) / max(1, len(live | {self.replica})))
        mine = self.leads()
        if len(mine) > share:
            # More than our share: give the last one back; a replica with room takes it.
            name = mine[-1]
            self._lose(name, f"rebalancing: {len(mine)} projects, share {share}")
            await self._store.release_lease(name, self.replica)
            return
        for name in self.watchers:
            if name in mine:
                continue
            lease = leases.get(name)
            orphaned = lease is None or lease.holder not in live
            if len(mine) >= share and not orphaned:
                continue
            term = await self._acquire(name)
            if term is not None:
                await self._start(name, term)
                mine.append(name)

    async def _start(self, name: str, term: int) -> None:
        watcher = self.watchers[name]
        await watcher.lead(term)
        log.info("fleet.lease_taken", project=name, term=term, replica=self.replica)
        self._tasks[name] = asyncio.create_task(watcher.run(), name=f"watch:{name}")
        self._on_change()

    def _lose(self, name: str, reason: str) -> None:
        watcher = self.watchers[name]
        watcher.step_down(reason)
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
        self._on_change()

    # ---- stopping -------------------------------------------------------------------

    async def stop(self, within: float) -> None:
        """Graceful stop: let ticks in flight finish (bounded), stop every watcher, and
        release every lease so another replica takes over at once."""
        self._stopping = True
        leading = self.leads()
        busy = [w.idle.wait() for w in self.watchers.values() if not w.idle.is_set()]
        if busy:
            try:
                await asyncio.wait_for(asyncio.gather(*busy), within)
            except TimeoutError:
                log.warning("fleet.tick_interrupted", waited=within)
        tasks = list(self._tasks.values())
        for name in leading:
            self._lose(name, "shutting down")
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            for name in leading:
                await self._store.release_lease(name, self.replica)
            # Gone from the live replicas at once: the others share the projects out
            # among themselves without waiting for our heartbeat to lapse.
            await self._store.heartbeat(self.replica, 0.0)
        except StoreError as exc:
            log.warning("fleet.release_failed", projects=leading, error=str(exc))
        log.info("fleet.released", projects=leading, replica=self.replica)
