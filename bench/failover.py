"""Failover — how long a project goes unwatched when its leader dies, default lease.

Three real bot processes (``polaris-watchdog run``) share a PostgreSQL server of their
own (``tests/pg_private.py``) and watch three Polaris projects of the simulator, one
each, with the defaults that matter here: ``[ha] lease = "15s"`` and ``[watch] interval
= "30s"``. The rig is the three-replica chaos test's (``tests/chaos_ha_rig.py``). In each
run the leader of a project is SIGKILLed (it dies without a word: its lease has to run
out) or SIGTERMed (it gives its leases back as it exits), and at that moment a job of
that project turns unhealthy. Two figures for each way of dying, medians over the runs
(and the worst): from the signal to the first listing of the project by its new leader
(the simulator's request log), and to the unhealthy job's alert in Slack, posted by the
new leader. Target: the lease plus one interval. The signal comes at a random moment of
the leader's renewal period (a lease runs out ``lease`` after its last renewal, so a
SIGKILL right after one is the worst case).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Figure, Options, announce, median, say

# The rig lives with the tests (pytest imports it as a top-level module from tests/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chaos_ha_rig import PROJECTS, HaRig
from chaos_ha_scenario import wait_leader
from chaos_harness import Stop
from pg_private import PrivatePostgres, find_bin_dir

NAME = "failover"
TITLE = "Failover"
LEASE = 15.0  # [ha] lease's default
INTERVAL = 30.0  # [watch] interval's default
PATIENCE = 90.0


async def _one(rig: HaRig, project: str, how: str, rng: random.Random) -> tuple[float, float]:
    """Kill or stop ``project``'s leader; seconds to the new leader's first listing and
    to the alert it posts for a job that turned unhealthy at that moment."""
    leader = await wait_leader(rig, project)
    await rig.wait_until(rig.outbox_empty, PATIENCE, "the outbox to empty")
    # Anywhere in the renewal period, not just after the round that made it leader.
    await asyncio.sleep(rng.uniform(0.0, LEASE / 3))
    died = time.monotonic()
    stop: Stop = await (rig.kill if how == "SIGKILL" else rig.terminate)(leader, f"bench {how}")
    window = rig.open_window(project, f"turns unhealthy as its leader gets {how}")
    await rig.wait_until(
        lambda: rig.listings_since(project, died), PATIENCE, f"a listing of {project}"
    )
    listed = min(rig.listings_since(project, died)) - died

    def posted_by_successor() -> float | None:
        posts = set(rig.post_of(window))
        times = [
            c.at
            for c in rig.record.slack_calls
            if c.method == "chat.postMessage" and c.ok and c.ts in posts and c.replica != leader
        ]
        return min(times, default=None)

    await rig.wait_until(
        lambda: posted_by_successor() is not None, PATIENCE, "the alert of the new leader"
    )
    posted = (posted_by_successor() or 0.0) - stop.at
    successor = await wait_leader(rig, project, besides=leader)
    say(
        f"    {how} {leader} (led {project}): {successor} listed it after {listed:.1f} s, "
        f"posted the alert after {posted:.1f} s"
    )
    rig.close_window(window)  # its resolve comes with the next tick: no need to wait
    await rig.restart(leader)
    await rig.wait_until(rig.balanced, PATIENCE, "one project per replica again")
    return listed, posted


def _figures(how: str, results: list[tuple[float, float]]) -> list[Figure]:
    target = LEASE + INTERVAL
    figures = []
    for index, what in enumerate(("first listing by the new leader", "the alert in Slack")):
        values = [r[index] for r in results]
        worst = max(values)
        figures.append(
            announce(
                Figure(
                    TITLE,
                    f"{how} of a leader → {what} (lease 15 s, interval 30 s, {len(values)} runs)",
                    f"{median(values):.1f} s (worst {worst:.1f} s)",
                    f"≤ {target:g} s (lease + interval)",
                    worst <= target,
                )
            )
        )
    return figures


async def run(options: Options) -> list[Figure]:
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        say(f"  skipped: {why}")
        return [Figure(TITLE, "failover", f"not measured: {why}", "-", None)]
    results: dict[str, list[tuple[float, float]]] = {"SIGKILL": [], "SIGTERM": []}
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        async with PrivatePostgres(bin_dir) as pg:
            rig = HaRig(
                Path(tmp), pg, interval=INTERVAL, lease=LEASE, timeout=10.0, no_data_after=300.0
            )
            async with rig:
                await rig.wait_until(rig.balanced, PATIENCE, "one project per replica")
                say("  3 replicas × 3 projects on PostgreSQL; lease 15 s, interval 30 s")
                rng = random.Random(options.seed)
                for how, measured in results.items():
                    for n in range(options.runs):
                        project = PROJECTS[n % len(PROJECTS)]
                        measured.append(await _one(rig, project, how, rng))
    return _figures("SIGKILL", results["SIGKILL"]) + _figures("SIGTERM", results["SIGTERM"])
