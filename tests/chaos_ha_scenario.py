"""The multi-replica chaos timeline: three replicas, three projects, one database, and
trouble for one replica (or the database) at a time.

Phases, in order: the projects spread one per replica; a clean round; the leader of a
project is SIGKILLed (another takes over within the lease plus one interval, posts what
opened meanwhile and resolves what closed, editing the dead leader's post); the leader
of another project is SIGSTOPped with a post queued (Slack refuses that replica), past
its lease, and SIGCONTed once another replica took over and delivered (the woken
replica must post, edit and write nothing for that project); the leader of the third
project is SIGTERMed (handed over at once) and started again; PostgreSQL is restarted
after an outage longer than the lease (every replica says it cannot watch, nothing is
posted that cannot be recorded, and afterwards what changed meanwhile is delivered once).
Every phase opens error windows (one expected incident each) and waits for what it needs
to see, so the run adapts to a slow machine instead of racing it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from chaos_ha_accounting import HaReport, account_ha
from chaos_ha_rig import PROJECTS, REPLICAS, HaRig
from chaos_harness import ChaosTimeout, Window
from pg_private import PrivatePostgres

#: Seconds after a window closed in which its post may still arrive.
GRACE = 30.0
PATIENCE = 30.0  # seconds to wait for any one condition
_POSTING = ("chat.postMessage", "chat.update")


async def _hold(seconds: float) -> None:
    # The fault's duration itself: the point is to let time pass with the fault on.
    await asyncio.sleep(seconds)


async def wait_posted(rig: HaRig, *windows: Window) -> None:
    for window in windows:
        await rig.wait_until(lambda w=window: rig.posted(w), PATIENCE, f"a post: {window.note}")


async def wait_resolved(rig: HaRig, *windows: Window) -> None:
    for window in windows:
        await rig.wait_until(
            lambda w=window: rig.resolved(w), PATIENCE, f"a resolve: {window.note}"
        )


async def wait_leader(rig: HaRig, project: str, *, besides: str | None = None) -> str:
    """The replica that leads ``project`` (other than ``besides``), once there is one."""
    found: list[str] = []

    async def one() -> bool:
        leader = await rig.leader_of(project, besides=besides)
        found[:] = [leader] if leader else []
        return bool(found)

    await rig.wait_until(
        one, PATIENCE, f"a leader of {project}" + (f" besides {besides}" if besides else "")
    )
    return found[0]


def _first_post_at(rig: HaRig, window: Window, after: float) -> float | None:
    """When Slack accepted the first post of ``window`` made after ``after``."""
    posts = set(rig.post_of(window))
    times = [
        c.at
        for c in rig.record.slack_calls
        if c.method == "chat.postMessage" and c.ok and c.ts in posts and c.at >= after
    ]
    return min(times, default=None)


async def spread(rig: HaRig) -> None:
    """The projects spread over the replicas: one each."""
    await rig.wait_until(rig.balanced, PATIENCE, "one project per replica")
    leaders = await rig.leaders()
    rig.record.notes.append(
        "spread: " + ", ".join(f"{p} → {names[0]}" for p, names in sorted(leaders.items()))
    )


async def clean(rig: HaRig) -> None:
    windows = [rig.open_window(p, f"{p}: no fault") for p in PROJECTS]
    await wait_posted(rig, *windows)
    for window in windows:
        rig.close_window(window)


async def sigkill_leader(rig: HaRig) -> None:
    """SIGKILL p1's leader: another replica takes p1 over within the lease + one interval,
    posts what opened meanwhile, and resolves what closed by editing the dead one's post."""
    project = "p1"
    leader = await wait_leader(rig, project)
    before = rig.open_window(project, "fires, then its leader is SIGKILLed; resolves after")
    await wait_posted(rig, before)
    await rig.wait_until(rig.outbox_empty, PATIENCE, "the outbox to empty")
    died = time.monotonic()
    stop = await rig.kill(leader, f"leader of {project}")
    rig.close_window(before)
    during = rig.open_window(project, "opens while the leader of its project is dead")
    successor = await wait_leader(rig, project, besides=leader)
    await wait_posted(rig, during)
    listings = rig.listings_since(project, died)
    rig.record.figures["sigkill: first listing by the new leader"] = min(listings) - died
    posted_at = _first_post_at(rig, during, stop.at)
    if posted_at is not None:
        rig.record.figures["sigkill: alert posted by the new leader"] = posted_at - stop.at
    await wait_resolved(rig, before)
    rig.record.notes.append(f"sigkill: {leader} led {project}; {successor} took it over")
    rig.close_window(during)
    await rig.restart(leader)
    await rig.wait_until(rig.balanced, PATIENCE, "one project per replica after the restart")


async def sigstop_leader(rig: HaRig) -> None:
    """SIGSTOP p2's leader with a post queued (Slack refuses it), past its lease; another
    replica takes over and delivers; SIGCONT: the woken replica must do nothing for p2."""
    project = "p2"
    leader = await wait_leader(rig, project)
    rig.slack_blocked.add(leader)
    opened = time.time()
    queued = rig.open_window(project, "queued by a leader Slack refuses, then SIGSTOPped")

    def refused() -> bool:
        return any(
            c.replica == leader and c.method == "chat.postMessage" and c.began >= opened
            for c in rig.record.slack_calls
        )

    await rig.wait_until(refused, PATIENCE, f"{leader} to try posting")
    stopped = rig.pause(leader)
    rig.slack_blocked.discard(leader)  # were it to post after waking, Slack would take it
    fresh = rig.open_window(project, "opens while the leader of its project is paused")
    successor = await wait_leader(rig, project, besides=leader)
    rig.record.figures["sigstop: takeover seen"] = time.time() - stopped
    await wait_posted(rig, queued, fresh)
    rig.close_window(queued)
    await wait_resolved(rig, queued)
    rig.resume(leader)
    # Awake with a stale view: a tick due, a post in its backoff, a resolve to make. Let it
    # run until it took part in the sharing again, and some intervals more.
    await rig.wait_until(rig.balanced, PATIENCE, "one project per replica after SIGCONT")
    await _hold(3 * rig.interval)
    rig.record.notes.append(f"sigstop: {leader} led {project}; {successor} took it over")
    rig.close_window(fresh)


async def sigterm_leader(rig: HaRig) -> None:
    """SIGTERM p3's leader (a rolling update): it releases its lease, another takes over
    at once; then it starts again and the projects spread out once more."""
    project = "p3"
    leader = await wait_leader(rig, project)
    window = rig.open_window(project, "fires, then its leader is SIGTERMed; resolves after")
    await wait_posted(rig, window)
    died = time.monotonic()
    await rig.terminate(leader, f"leader of {project}")
    rig.close_window(window)
    await wait_leader(rig, project, besides=leader)
    await rig.wait_until(
        lambda: rig.listings_since(project, died), PATIENCE, f"a listing of {project}"
    )
    listings = rig.listings_since(project, died)
    rig.record.figures["sigterm: first listing by the new leader"] = min(listings) - died
    await wait_resolved(rig, window)
    await rig.restart(leader)
    await rig.wait_until(rig.balanced, PATIENCE, "one project per replica after the restart")


async def database_restart(rig: HaRig) -> None:
    """PostgreSQL goes away for longer than the lease and comes back."""
    fired = rig.open_window("p3", "fires, then the database goes down; resolves during it")
    await wait_posted(rig, fired)
    await rig.wait_until(rig.outbox_empty, PATIENCE, "the outbox to empty")
    await rig.pg.stop()
    down = time.time()
    rig.close_window(fired)
    opened = rig.open_window("p1", "opens while the database is down")
    degraded: dict[str, float] = {}
    live: dict[str, list[int | None]] = {name: [] for name in REPLICAS}

    async def all_degraded() -> bool:
        for name in REPLICAS:
            got = await rig.healthz(name)
            live[name].append(await rig.livez(name))
            store = got is not None and any(
                p.get("kind") == "store" for p in got[1].get("problems", [])
            )
            if name not in degraded and got is not None and got[0] == 503 and store:
                degraded[name] = time.time() - down
        return len(degraded) == len(REPLICAS)

    try:
        await rig.wait_until(all_degraded, PATIENCE, "every replica to report the store")
    except ChaosTimeout:
        pass  # the verdict reports who did not
    # Down past the lease: every lease lapses, as in a long failover of the database.
    await _hold(max(0.0, down + rig.lease + rig.interval - time.time()))
    await rig.pg.start()
    up = time.time()
    rig.record.figures["database: seconds down"] = up - down
    for name in REPLICAS:
        rig.record.figures[f"database: {name} said so after"] = degraded.get(name, -1.0)
        rig.record.figures[f"database: {name} /livez not 200"] = sum(
            1 for status in live[name] if status != 200
        )
    rig.record.figures["database: Slack posts and edits while down"] = sum(
        1 for c in rig.record.slack_calls if c.method in _POSTING and c.ok and down <= c.at <= up
    )

    async def all_healthy() -> bool:
        answers = await asyncio.gather(*(rig.healthz(name) for name in REPLICAS))
        return all(got is not None and got[0] == 200 for got in answers)

    await rig.wait_until(all_healthy, PATIENCE, "every replica to be healthy again")
    rig.record.figures["database: healthy again after"] = time.time() - up
    await wait_posted(rig, opened)
    posted_at = _first_post_at(rig, opened, up)
    if posted_at is not None:
        rig.record.figures["database: the alert opened meanwhile posted after"] = posted_at - up
    await wait_resolved(rig, fired)
    rig.close_window(opened)


PHASES = (spread, clean, sigkill_leader, sigstop_leader, sigterm_leader, database_restart)


def settled(rig: HaRig) -> bool:
    return all(w.closed is not None and rig.resolved(w) for w in rig.record.windows)


async def run_scenario(rig: HaRig) -> None:
    for phase in PHASES:
        await phase(rig)
    try:
        await rig.wait_until(lambda: settled(rig), PATIENCE, "every incident to resolve")
        await rig.wait_until(rig.outbox_empty, PATIENCE, "the outbox to empty")
    except ChaosTimeout:
        pass  # what is missing is the verdict's to report
    rig.record.outbox_at_end = await rig.outbox_size()


async def run_ha_chaos(workdir: Path, pg: PrivatePostgres, **rig_options: float) -> HaReport:
    """A whole run in ``workdir`` (one log per bot start), and its verdict."""
    async with HaRig(workdir, pg, **rig_options) as rig:
        try:
            await run_scenario(rig)
        except ChaosTimeout as exc:
            rig.record.notes.append(f"STOPPED EARLY: {exc}")
    return account_ha(rig, grace=GRACE)
