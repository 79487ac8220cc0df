"""Several projects: 10 Polaris projects × 1,000 jobs on one bot, each within the
single-project targets.

One simulator process serves 10 projects of one organisation (``simulate --projects 10``),
each with 1,000 streaming jobs and its own project id and API key, 20 ms per request.
The real bot (``polaris-watchdog run``) has them as ``[[projects]]`` in its rules file,
each key in an environment variable of its own, and the load of
:mod:`bench.alert_latency`: a health rule and a ``rising`` rule on every streaming job,
interval 3 s, default limits (``max_rate`` 50 and concurrency 16 per project: each
project's client has its own gate). A watcher and a metrics sweep run per project.

Figures: the listing tick of every project (its duration, read from each project's
``watchdog_tick_duration_seconds`` every 0.2 s) within the slack the latency target
leaves after one interval (0.5 s); the health-alert latency over 20 flips spread over the
projects (as in :mod:`bench.alert_latency`) within ``interval + 0.5 s``; the bot's
resident set once every project has swept all its jobs; and the sweep period per project.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from bench.alert_latency import (
    CONCURRENCY,
    DEFAULT_RATE,
    INTERVAL,
    LATENCY,
    PAGE_SIZE,
    SLACK,
    Watching,
    flips,
    tick_figure,
    ticked,
    watch_metrics,
)
from bench.botproc import BotProcess, project_names
from bench.harness import BOT_TOKEN, CHANNEL, RISING_RULES, wait_until
from bench.report import Figure, Options, announce, median, percentile, say
from bench.simproc import SimProcess
from watchdog.devtools.slack_standin.server import SlackStandIn, serve

NAME = "projects"
TITLE = "Several projects"
PROJECTS = 10
JOBS_PER_PROJECT = 1000
FLIPS = 20
_POLL = 0.2


async def run(options: Options) -> list[Figure]:
    rng = random.Random(options.seed)
    jobs = min(JOBS_PER_PROJECT, options.jobs)
    seen = Watching()
    with tempfile.TemporaryDirectory(prefix="bench-projects-") as tmp:
        workdir = Path(tmp)
        standin = SlackStandIn(bot_token=BOT_TOKEN, channels={CHANNEL})
        standin_runner = await serve(standin, "127.0.0.1", 0)
        try:
            async with SimProcess("healthy", jobs, workdir=workdir, projects=PROJECTS) as sim:
                await sim.all_faults(latency=LATENCY)
                names = project_names(sim)
                ids = {project_id: name for name, project_id in names.items()}
                say(
                    f"  `polaris-watchdog run`, {PROJECTS} projects × {jobs:,} streaming jobs "
                    f"in one simulator, {LATENCY * 1000:.0f} ms per request, interval "
                    f"{INTERVAL:g} s, max_rate {DEFAULT_RATE:g}/s and C {CONCURRENCY} per project"
                )
                bot = BotProcess(
                    workdir,
                    sim,
                    standin.api_url,
                    RISING_RULES,
                    interval=f"{INTERVAL:g}s",
                    concurrency=CONCURRENCY,
                    max_rate=DEFAULT_RATE,
                    page_size=PAGE_SIZE,
                    several=True,
                    name="projects",
                )
                stop = asyncio.Event()
                async with bot:
                    poller = asyncio.create_task(watch_metrics(bot, seen, stop))
                    try:
                        await ticked(bot, 2, timeout=90)
                        healthy = {
                            project_id: [
                                j["id"]
                                for j in await sim.jobs_summary(project=project_id)
                                if j["health"]["status"] == "ok"
                            ]
                            for project_id in names.values()
                        }
                        order = list(names.values())
                        chosen: list[tuple[str | None, str]] = []
                        for number in range(FLIPS):
                            project_id = order[number % len(order)]
                            job_id = rng.choice(healthy[project_id])
                            healthy[project_id].remove(job_id)
                            chosen.append((project_id, job_id))
                        latencies = await flips(
                            standin,
                            sim,
                            chosen,
                            rng,
                            label=lambda project: f" ({ids.get(project or '', '?')})",
                        )
                        # Every project's sweep has done a whole pass (~jobs / max_rate).
                        await wait_until(
                            lambda: len(seen.passes) >= PROJECTS,
                            timeout=jobs / DEFAULT_RATE * 2 + 60,
                            poll=_POLL,
                            what="a whole sweep pass in every project",
                        )
                        rss = bot.rss_mb()
                    finally:
                        stop.set()
                        await poller
        finally:
            await standin_runner.cleanup()
    per_project = {project: percentile(ticks, 95) for project, ticks in sorted(seen.ticks.items())}
    say(
        "  listing tick p95 by project: "
        + ", ".join(f"{p} {s:.2f} s" for p, s in per_project.items())
    )
    worst = max(per_project, key=per_project.__getitem__)
    p95 = percentile(latencies, 95)
    periods = [median(p) for p in seen.passes.values()]
    return [
        tick_figure(
            seen.ticks[worst],
            f"{PROJECTS} projects × {jobs:,} jobs, the worst project ({worst})",
            title=TITLE,
        ),
        announce(
            Figure(
                TITLE,
                f"unhealthy → Slack post, p95 over {len(latencies)} flips across "
                f"{PROJECTS} projects, interval {INTERVAL:g} s",
                f"{p95:.2f} s (median {median(latencies):.2f} s, max {max(latencies):.2f} s)",
                f"≤ {INTERVAL + SLACK:g} s (interval + {SLACK:g} s)",
                p95 <= INTERVAL + SLACK,
            )
        ),
        announce(
            Figure(
                TITLE,
                f"RSS of the bot, {PROJECTS} projects × {jobs:,} jobs, after every project's "
                "first sweep",
                f"{rss:.1f} MB",
                "for information",
                None,
            )
        ),
        announce(
            Figure(
                TITLE,
                f"sweep period per project ({jobs:,} targets each, max_rate {DEFAULT_RATE:g})",
                f"{min(periods):.0f}–{max(periods):.0f} s "
                f"({jobs / DEFAULT_RATE:.0f} s at the rate)",
                "for information",
                None,
            )
        ),
    ]
