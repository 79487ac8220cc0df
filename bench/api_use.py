"""Efficiency of API use: what the listing tick and one sweep pass ask Polaris.

A real Watcher (as in :mod:`bench.sweep`) runs against the simulator's large scenario
(5,000 jobs: streaming and batch, 3 % in error) with the health rule and metric rules
that match ``type = streaming``. The simulator's request log of one listing tick and of
one pass of the metrics sweep shows the requests by endpoint, that the health rule's
listing is filtered server-side with ``healthStatus=error`` (no unfiltered listing), that
the tick fetches no metrics, and that a sweep pass fetches metrics once for every
streaming job and never for a batch job, which no metric rule watches. Per interval that
is the tick's listings plus what the sweep manages at ``max_rate``: ``min(targets,
max_rate × interval)`` metrics requests.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bench.harness import STREAMING_RULES, ruleset, watcher_against
from bench.report import Figure, Options, announce, say
from bench.simproc import SimProcess

NAME = "api"
TITLE = "API use"
#: The defaults of [watch]: what a bot sized by nobody asks per interval.
INTERVAL = 30.0
DEFAULT_RATE = 50.0


def _listing_filters(query: str) -> str:
    """``healthStatus=error`` of a listing's query (pagination left out)."""
    pairs = [(k, v) for k, v in parse_qsl(query) if not k.startswith("pagination")]
    return "&".join(f"{k}={v}" for k, v in pairs) or "(no filter)"


def _checked_log(stats: dict[str, Any]) -> list[Any]:
    log: list[Any] = stats["request_log"]
    if len(log) != stats["requests"]:
        raise RuntimeError("the simulator's request log did not keep every request")
    return log


async def run(options: Options) -> list[Figure]:
    rules = ruleset(STREAMING_RULES, concurrency=16, max_rate=2000.0, page_size=1000)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        async with (
            SimProcess("large", options.jobs, workdir=workdir) as sim,
            watcher_against(sim, rules, workdir) as watcher,
        ):
            # The first tick and pass; the second ones are the steady state.
            await watcher.tick(time.time())
            await watcher.sweep.sweep_once()
            await sim.reset_stats()
            report = await watcher.tick(time.time())
            tick_stats = await sim.stats(log=20_000)
            await sim.reset_stats()
            swept = await watcher.sweep.sweep_once()
            pass_stats = await sim.stats(log=20_000)
            jobs = {j["id"]: j for j in await sim.jobs_summary()}
    tick_log, pass_log = _checked_log(tick_stats), _checked_log(pass_stats)
    tick_endpoints = Counter(tick_stats["by_endpoint"])
    pass_endpoints = Counter(pass_stats["by_endpoint"])
    listings = Counter(_listing_filters(q) for _, _, path, q in tick_log if path.endswith("/jobs"))
    fetched = [path.split("/")[-2] for _, _, path, _ in pass_log if path.endswith("/metrics")]
    fetched_types = Counter(jobs[job_id]["type"] for job_id in fetched)
    streaming = [
        j for j in jobs.values() if j["type"] == "streaming" and j["executionStatus"] != "canceled"
    ]
    batch = sum(1 for j in jobs.values() if j["type"] == "batch")
    per_tick = ", ".join(f"{n:,} {kind}" for kind, n in sorted(tick_endpoints.items()))
    per_pass = ", ".join(f"{n:,} {kind}" for kind, n in sorted(pass_endpoints.items()))
    metrics_per_interval = min(len(fetched), int(DEFAULT_RATE * INTERVAL))
    say(f"  one listing tick: {tick_stats['requests']:,} requests: {per_tick}")
    for filters, pages in sorted(listings.items()):
        say(f"    listing {filters}: {pages} page(s)")
    say(
        f"  one sweep pass: {pass_stats['requests']:,} requests: {per_pass}; "
        f"{fetched_types.get('streaming', 0):,} of {len(streaming):,} streaming jobs, "
        f"{fetched_types.get('batch', 0)} of {batch:,} batch jobs; "
        f"{len(fetched) - len(set(fetched))} fetched twice; {report.evaluations:,} evaluations "
        f"in the tick; {swept.attempted:,} targets"
    )
    health_filtered = "healthStatus=error" in listings and "(no filter)" not in listings
    only_watched = fetched_types.get("batch", 0) == 0 and set(fetched) == {
        j["id"] for j in streaming
    }
    once = len(fetched) == len(set(fetched))
    return [
        announce(
            Figure(
                TITLE,
                f"requests per interval by endpoint ({options.jobs:,} jobs; interval "
                f"{INTERVAL:g} s, max_rate {DEFAULT_RATE:g}/s)",
                f"listing tick: {per_tick or 'nothing'}; sweep: {metrics_per_interval:,} "
                f"metrics (a pass is {len(fetched):,}, every "
                f"{max(INTERVAL, len(fetched) / DEFAULT_RATE):.0f} s)",
                "for information",
                None,
            )
        ),
        announce(
            Figure(
                TITLE,
                "listings of the tick: the health rule's filtered server-side; no metrics",
                "; ".join(f"{f}: {n} page{'s' if n > 1 else ''}" for f, n in listings.items())
                + f"; {tick_endpoints.get('metrics', 0)} metrics requests",
                "healthStatus=error, no unfiltered listing, no metrics in the tick",
                health_filtered and not tick_endpoints.get("metrics", 0),
            )
        ),
        announce(
            Figure(
                TITLE,
                "a sweep pass: metrics only for jobs a metric rule watches, once each",
                f"{len(fetched):,} = every streaming job; {fetched_types.get('batch', 0)} of "
                f"{batch:,} batch jobs; {len(fetched) - len(set(fetched))} twice",
                "no batch job, no job twice",
                only_watched and once,
            )
        ),
    ]
