"""Figure 7 — efficiency of API use: what one tick asks Polaris, request by request.

A real Watcher (as in :mod:`bench.tick`) ticks against the simulator's large scenario
(5,000 jobs: streaming and batch, 3 % in error) with the health rule and metric rules
that match ``type = streaming``. The simulator's request log of one tick shows the
requests by endpoint, that the health rule's listing filtered server-side with
``healthStatus=error`` (no unfiltered listing), and that metrics were fetched once for
every streaming job and never for a batch job, which no metric rule watches.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl

from bench.harness import STREAMING_RULES, ruleset, watcher_against
from bench.report import Figure, Options, announce, say
from bench.simproc import SimProcess

NAME = "api"
TITLE = "API use"


def _listing_filters(query: str) -> str:
    """``healthStatus=error`` of a listing's query (pagination left out)."""
    pairs = [(k, v) for k, v in parse_qsl(query) if not k.startswith("pagination")]
    return "&".join(f"{k}={v}" for k, v in pairs) or "(no filter)"


async def run(options: Options) -> list[Figure]:
    rules = ruleset(STREAMING_RULES, concurrency=16, max_rate=2000.0, page_size=1000)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        async with (
            SimProcess("large", options.jobs, workdir=workdir) as sim,
            watcher_against(sim, rules, workdir) as watcher,
        ):
            await watcher.tick(time.time())  # the first tick; the second is the steady state
            await sim.reset_stats()
            report = await watcher.tick(time.time())
            stats = await sim.stats(log=20_000)
            jobs = {j["id"]: j for j in await sim.jobs_summary()}
    log = stats["request_log"]
    if len(log) != stats["requests"]:
        raise RuntimeError("the simulator's request log did not keep every request of the tick")
    by_endpoint = Counter(stats["by_endpoint"])
    listings = Counter(_listing_filters(q) for _, _, path, q in log if path.endswith("/jobs"))
    fetched = [path.split("/")[-2] for _, _, path, _ in log if path.endswith("/metrics")]
    fetched_types = Counter(jobs[job_id]["type"] for job_id in fetched)
    streaming = [
        j for j in jobs.values() if j["type"] == "streaming" and j["executionStatus"] != "canceled"
    ]
    batch = sum(1 for j in jobs.values() if j["type"] == "batch")
    per_endpoint = ", ".join(f"{n:,} {kind}" for kind, n in sorted(by_endpoint.items()))
    say(f"  one tick: {stats['requests']:,} requests: {per_endpoint}")
    for filters, pages in sorted(listings.items()):
        say(f"    listing {filters}: {pages} page(s)")
    say(
        f"    metrics: {fetched_types.get('streaming', 0):,} of {len(streaming):,} streaming jobs, "
        f"{fetched_types.get('batch', 0)} of {batch:,} batch jobs; "
        f"{len(fetched) - len(set(fetched))} fetched twice; {report.evaluations:,} evaluations"
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
                f"requests per tick by endpoint ({options.jobs:,} jobs)",
                per_endpoint,
                "for information",
                None,
            )
        ),
        announce(
            Figure(
                TITLE,
                "listings of the tick: the health rule's filtered server-side",
                "; ".join(f"{f}: {n} page{'s' if n > 1 else ''}" for f, n in listings.items()),
                "healthStatus=error, no unfiltered listing",
                health_filtered,
            )
        ),
        announce(
            Figure(
                TITLE,
                "metrics fetched only for jobs a metric rule watches, once each",
                f"{len(fetched):,} = every streaming job; {fetched_types.get('batch', 0)} of "
                f"{batch:,} batch jobs",
                "no batch job, no job twice",
                only_watched and once,
            )
        ),
    ]
