"""Figure 4 — alert latency: a job turning unhealthy is in Slack within one interval + 1 s.

The real bot (:func:`watchdog.app.build_app`, SqliteStore, SlackNotifier) runs in this
process against the simulator in another and posts to the Slack stand-in. At random
moments a healthy streaming job is flipped to health error over the simulator's admin
API; the latency is from just before that request to the moment the stand-in received
the top-level post naming the job (``posts_by_time``). The job is then flipped back and
the resolve (the edit of that post) awaited before the next flip. The figure is the p95
over 20 flips, against ``interval + 1 s``.
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from pathlib import Path

from bench.harness import (
    STREAMING_RULES,
    RunningBot,
    bot_in_process,
    outbox_drained,
    ruleset,
    wait_until,
)
from bench.report import Figure, Options, announce, median, percentile, say
from bench.simproc import SimProcess
from watchdog.devtools.slack_standin.server import TimedPost

NAME = "latency"
TITLE = "Alert latency"
INTERVAL = 2.0
FLIPS = 20
#: The simulator's large scenario: 450 streaming jobs whose metrics are fetched every tick.
#: A health alert is committed once its tick has the listings, before the metrics: its
#: latency is the wait for the next tick (0 to one interval) plus the listing requests,
#: whatever the metrics cost (~450 requests a tick here).
JOBS = 500
SLACK = 1.0


def _post_naming(running: RunningBot, job_id: str, since: int) -> TimedPost | None:
    """The first top-level post after index ``since`` whose text names ``job_id``."""
    standin = running.standin
    for post in standin.posts_by_time[since:]:
        message = standin.messages.get(post.ts)
        if (
            post.method == "chat.postMessage"
            and message is not None
            and message.thread_ts is None
            and job_id in message.text
        ):
            return post
    return None


def _edited(running: RunningBot, ts: str, since: int) -> bool:
    return any(
        p.method == "chat.update" and p.ts == ts for p in running.standin.posts_by_time[since:]
    )


async def _flip(running: RunningBot, sim: SimProcess, job_id: str) -> tuple[float, float | None]:
    """Flip ``job_id`` to error and back; (seconds until its post, the tick's duration)."""
    mark = len(running.standin.posts_by_time)
    flipped = time.monotonic()
    await sim.change_job(job_id, health="error")
    timeout = 4 * INTERVAL + 10
    await wait_until(
        lambda: _post_naming(running, job_id, mark) is not None,
        timeout=timeout,
        what=f"the alert of {job_id}",
    )
    post = _post_naming(running, job_id, mark)
    assert post is not None
    after = len(running.standin.posts_by_time)
    await sim.change_job(job_id, health="ok")
    await wait_until(
        lambda: _edited(running, post.ts, after), timeout=timeout, what=f"the resolve of {job_id}"
    )
    # Read after the resolve: health alerts are posted mid-tick (listing rules commit
    # first), so the tick that saw the flip may not have ended when its post arrived.
    ticks = [t for t in running.ticks if t.started >= flipped]
    tick_seconds = ticks[0].ended - ticks[0].started if ticks else None
    return post.at - flipped, tick_seconds


async def run(options: Options) -> list[Figure]:
    rng = random.Random(options.seed)
    rules = ruleset(STREAMING_RULES, interval=f"{INTERVAL:g}s")
    latencies: list[float] = []
    tick_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        async with (
            SimProcess("large", JOBS, workdir=workdir) as sim,
            bot_in_process(sim, rules, workdir) as running,
        ):
            say(
                f"  in-process bot, interval {INTERVAL:g} s, simulator large scenario with "
                f"{JOBS:,} jobs (health rule + metric rules on streaming jobs)"
            )
            # Let the first ticks post what is already failing, so flips start on a quiet bot.
            await wait_until(lambda: len(running.ticks) >= 2, timeout=30, what="two ticks")
            assert running.bot.store is not None
            store = running.bot.store
            healthy = [
                j["id"]
                for j in await sim.jobs_summary()
                if j["type"] == "streaming" and j["health"]["status"] == "ok"
            ]
            for flip, job_id in enumerate(rng.sample(healthy, FLIPS), start=1):
                # Earlier posts must not queue ahead of this one; then a random moment
                # within the poll period, so flips land anywhere between two ticks.
                await outbox_drained(store, timeout=30)
                await asyncio.sleep(rng.uniform(0.0, INTERVAL))
                latency, tick_seconds = await _flip(running, sim, job_id)
                latencies.append(latency)
                tick_times += [tick_seconds] if tick_seconds is not None else []
                note = f", tick took {tick_seconds:.2f} s" if tick_seconds is not None else ""
                say(f"    flip {flip:>2}: posted after {latency:.2f} s{note}")
    p95 = percentile(latencies, 95)
    target = INTERVAL + SLACK
    return [
        announce(
            Figure(
                TITLE,
                f"unhealthy → Slack post, p95 over {FLIPS} flips, interval {INTERVAL:g} s (1 run)",
                f"{p95:.2f} s (median {median(latencies):.2f} s, max {max(latencies):.2f} s; "
                f"a tick of {JOBS:,} jobs takes {median(tick_times or [math.nan]):.2f} s)",
                f"≤ {target:g} s (interval + 1 s)",
                p95 <= target,
            )
        )
    ]
