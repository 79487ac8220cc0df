"""Storm: 1,000 jobs failing in one tick → at most 3 top-level Slack posts,
all within 5 s of the tick.

The real bot runs in this process (``build_app``, SqliteStore, SlackNotifier) against the
simulator's ``healthy`` scenario with 1,000 streaming jobs, posting to the Slack
stand-in. Right after a tick ends, all 1,000 jobs are flipped to health error over the
admin API (well inside the 2 s interval), so the next tick sees them all at once. The
figure counts the top-level messages posted after the flip and the time from the start
of the tick that saw the failures to the last of them. Then every job is flipped back
and the resolve (an edit of the grouped post) awaited before the next run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.harness import (
    CHANNEL,
    HEALTH_RULE,
    RunningBot,
    TimedTick,
    bot_in_process,
    outbox_drained,
    ruleset,
    wait_until,
)
from bench.report import Figure, Options, announce, median, say
from bench.simproc import SimProcess

NAME = "storm"
TITLE = "Storm"
JOBS = 1000
INTERVAL = 2.0
MAX_POSTS = 3
WITHIN = 5.0
_FLIP_CONCURRENCY = 32


async def _flip_all(sim: SimProcess, job_ids: list[str], health: str) -> None:
    """Pin every job's health, ``_FLIP_CONCURRENCY`` admin requests at a time."""
    slots = asyncio.Semaphore(_FLIP_CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def flip(job_id: str) -> None:
            async with (
                slots,
                session.post(f"{sim.url}/_sim/jobs/{job_id}", json={"health": health}) as resp,
            ):
                resp.raise_for_status()

        await asyncio.gather(*(flip(job_id) for job_id in job_ids))


def _top_level_after(running: RunningBot, mark: int) -> list[float]:
    """Arrival times of top-level posts received after index ``mark``."""
    standin = running.standin
    times = []
    for post in standin.posts_by_time[mark:]:
        message = standin.messages.get(post.ts)
        if post.method == "chat.postMessage" and message is not None and not message.thread_ts:
            times.append(post.at)
    return times


async def _one_storm(
    running: RunningBot, sim: SimProcess, job_ids: list[str], run: int
) -> tuple[int, float, int]:
    """(top-level posts, seconds from the tick's start to the last one, ticks that saw it)."""
    assert running.bot.store is not None
    done = len(running.ticks)
    await wait_until(lambda: len(running.ticks) > done, timeout=10, what="the end of a tick")
    mark = len(running.standin.posts_by_time)
    flipped_from = time.monotonic()
    await _flip_all(sim, job_ids, "error")
    flip_seconds = time.monotonic() - flipped_from

    def new_alerts() -> int:
        return sum(t.report.notifications["new"] for t in running.ticks if t.started > flipped_from)

    await wait_until(lambda: new_alerts() >= len(job_ids), timeout=30, what="all new alerts")
    saw: list[TimedTick] = [
        t for t in running.ticks if t.started > flipped_from and t.report.notifications["new"]
    ]
    await outbox_drained(running.bot.store, timeout=60)
    posts = _top_level_after(running, mark)
    last = max(posts) - saw[0].started if posts else float("inf")
    say(
        f"    run {run}: flipped {len(job_ids):,} jobs in {flip_seconds:.2f} s; "
        f"{len(saw)} tick(s) saw them (tick {saw[0].ended - saw[0].started:.2f} s); "
        f"{len(posts)} top-level post(s), last {last:.2f} s after the tick started"
    )
    # Recover, and wait for the grouped post's resolve before the next storm.
    resolved_mark = len(running.standin.posts_by_time)
    await _flip_all(sim, job_ids, "ok")
    await wait_until(
        lambda: any(
            p.method == "chat.update" for p in running.standin.posts_by_time[resolved_mark:]
        ),
        timeout=30,
        what="the storm's resolve",
    )
    await wait_until(lambda: not running.watcher.alerts, timeout=30, what="every alert resolved")
    await outbox_drained(running.bot.store, timeout=60)
    return len(posts), last, len(saw)


async def run(options: Options) -> list[Figure]:
    rules = ruleset(HEALTH_RULE, interval=f"{INTERVAL:g}s")
    results: list[tuple[int, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        workdir = Path(tmp)
        async with (
            SimProcess("healthy", JOBS, workdir=workdir) as sim,
            bot_in_process(sim, rules, workdir) as running,
        ):
            say(
                f"  in-process bot, interval {INTERVAL:g} s, health rule, {JOBS:,} streaming "
                f"jobs flipped to error between two ticks; Slack channel {CHANNEL}"
            )
            job_ids = [j["id"] for j in await sim.jobs_summary()]
            for run_index in range(options.runs):
                results.append(await _one_storm(running, sim, job_ids, run_index + 1))
    posts = max(r[0] for r in results)
    seconds = median([r[1] for r in results])
    worst = max(r[1] for r in results)
    split = max(r[2] for r in results)
    return [
        announce(
            Figure(
                TITLE,
                f"{JOBS:,} jobs failing in one tick: top-level Slack posts (max over runs)",
                f"{posts} ({split} tick(s) saw the failures)",
                f"≤ {MAX_POSTS}",
                posts <= MAX_POSTS,
            )
        ),
        announce(
            Figure(
                TITLE,
                "tick start → last top-level post",
                f"{seconds:.2f} s (max {worst:.2f} s)",
                f"≤ {WITHIN:g} s",
                seconds <= WITHIN,
            )
        ),
    ]
