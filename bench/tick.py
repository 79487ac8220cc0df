"""Figure 1 — tick efficiency: one 5,000-job tick against the ideal, and the limits held.

A real Watcher (real PolarisClient, SqliteStore in a temporary directory, nothing
delivering the outbox) runs in this process against the simulator in another, which
adds 20 ms to every Polaris request. The rules are a health rule and metric rules that
watch every streaming job. A tick at concurrency C cannot beat
``(pages + ceil(metrics requests / C)) × latency``; the figure is the measured tick over
that ideal (target ≤ 1.25). The simulator's statistics show the bot never had more than C
requests in flight, and a second configuration where ``max_rate`` binds shows no 1-second
window of the simulator's request log held more than the rate (+1 for the window edge).
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.harness import STREAMING_RULES, ruleset, watcher_against
from bench.report import Figure, Options, announce, max_in_window, median, say
from bench.simproc import SimProcess

NAME = "tick"
TITLE = "Tick efficiency"
LATENCY = 0.020
CONCURRENCY = 16
MAX_RATE = 2000.0
TARGET_RATIO = 1.25
RATE_BOUND = 200.0
RATE_JOBS = 600


@dataclass(frozen=True)
class TickRun:
    seconds: float
    floor: float  # the bare client's seconds for the metrics requests (0: not measured)
    pages: int
    metrics: int
    requests: int
    max_in_flight: int
    arrivals: tuple[float, ...]

    def ideal(self, concurrency: int, latency: float) -> float:
        return (self.pages + math.ceil(self.metrics / concurrency)) * latency


async def _bare_floor(sim: SimProcess, job_ids: list[str]) -> float:
    """Seconds a bare aiohttp client takes for the tick's metrics requests at the same C.

    No bot code at all: every request behind a semaphore of C. What this takes over its
    ideal is the simulator's, the loopback's and the event loop's share (timer
    resolution), not the bot's.
    """
    base = f"{sim.url}/v1/projects/{sim.project_id}"
    headers = {"Authorization": f"Basic {sim.api_key.get_secret_value()}"}
    slots = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def get(url: str) -> object:
            async with slots, session.get(url, headers=headers) as resp:
                return json.loads(await resp.text())

        started = time.perf_counter()
        await asyncio.gather(*(get(f"{base}/jobs/{job_id}/metrics") for job_id in job_ids))
        return time.perf_counter() - started


async def _measure(
    sim: SimProcess, workdir: Path, runs: int, *, max_rate: float, floor: bool
) -> list[TickRun]:
    rules = ruleset(
        STREAMING_RULES, concurrency=CONCURRENCY, max_rate=max_rate, page_size=1000, interval="30s"
    )
    results: list[TickRun] = []
    async with watcher_against(sim, rules, workdir) as watcher:
        await sim.faults()
        # Warm-up: connections opened, first samples recorded (later ticks evaluate windows).
        await watcher.tick(time.time())
        watched = sorted(watcher.book.jobs())
        await sim.faults(latency=LATENCY)
        for run in range(runs):
            bare = 0.0
            if floor:
                bare = await _bare_floor(sim, watched)
            await sim.reset_stats()
            started = time.perf_counter()
            report = await watcher.tick(time.time())
            seconds = time.perf_counter() - started
            stats = await sim.stats(log=20_000)
            by_endpoint = stats["by_endpoint"]
            tick = TickRun(
                seconds=seconds,
                floor=bare,
                pages=int(by_endpoint.get("list", 0)),
                metrics=int(by_endpoint.get("metrics", 0)),
                requests=int(stats["requests"]),
                max_in_flight=int(stats["max_in_flight"]),
                arrivals=tuple(float(entry[0]) for entry in stats["request_log"]),
            )
            if report.listings_failed or report.metrics_failed:
                raise RuntimeError(f"tick had failures: {report}")
            results.append(tick)
            ideal = tick.ideal(CONCURRENCY, LATENCY)
            if floor:
                compare = f"ideal {ideal:.3f} s ({seconds / ideal:.3f}×), bare client {bare:.3f} s"
            else:
                at_rate = tick.requests / max_rate
                compare = f"{at_rate:.3f} s at the rate ({seconds / at_rate:.3f}×)"
            say(
                f"    run {run + 1}: {seconds:.3f} s, {compare}; {tick.requests} requests "
                f"({tick.pages} pages, {tick.metrics} metrics), max in flight "
                f"{tick.max_in_flight}, max in 1 s {max_in_window(tick.arrivals)}"
            )
        await sim.faults()
    return results


async def run(options: Options) -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp:
        workdir = Path(tmp)
        say(
            f"  {options.jobs:,} jobs (large scenario), {LATENCY * 1000:.0f} ms per request, "
            f"C = {CONCURRENCY}, max_rate = {MAX_RATE:g}/s, page size 1,000"
        )
        async with SimProcess("large", options.jobs, workdir=workdir) as sim:
            ticks = await _measure(sim, workdir, options.runs, max_rate=MAX_RATE, floor=True)
        say(f"  rate-bound: {RATE_JOBS:,} jobs, max_rate = {RATE_BOUND:g}/s, same latency and C")
        async with SimProcess("large", RATE_JOBS, workdir=workdir) as sim:
            bound = await _measure(sim, workdir, options.runs, max_rate=RATE_BOUND, floor=False)

    ratios = [t.seconds / t.ideal(CONCURRENCY, LATENCY) for t in ticks]
    ratio = median(ratios)
    seconds = median([t.seconds for t in ticks])
    ideal = median([t.ideal(CONCURRENCY, LATENCY) for t in ticks])
    last = ticks[-1]
    figures.append(
        announce(
            Figure(
                TITLE,
                f"tick, {options.jobs:,} jobs, 20 ms/request, C = {CONCURRENCY}",
                f"{ratio:.2f}× ideal ({seconds:.2f} s vs {ideal:.2f} s; {last.requests:,} "
                f"requests/tick = {last.pages} pages + {last.metrics:,} metrics)",
                f"≤ {TARGET_RATIO}× ideal",
                ratio <= TARGET_RATIO,
            )
        )
    )
    floor_ratio = median([t.floor / (math.ceil(t.metrics / CONCURRENCY) * LATENCY) for t in ticks])
    bot_share = median([(t.seconds - t.floor) / t.ideal(CONCURRENCY, LATENCY) for t in ticks])
    figures.append(
        announce(
            Figure(
                TITLE,
                "bare aiohttp client, same metrics requests and C (the environment's floor)",
                f"{floor_ratio:.2f}× its ideal; the tick spends {bot_share:.2f}× ideal more",
                "for information",
                None,
            )
        )
    )
    in_flight = max(t.max_in_flight for t in [*ticks, *bound])
    figures.append(
        announce(
            Figure(
                TITLE,
                "requests in flight, both configurations (max)",
                f"{in_flight}",
                f"≤ C = {CONCURRENCY}",
                in_flight <= CONCURRENCY,
            )
        )
    )
    window = max(max_in_window(t.arrivals) for t in bound)
    bound_seconds = median([t.seconds for t in bound])
    at_rate = median([t.requests / RATE_BOUND for t in bound])
    figures.append(
        announce(
            Figure(
                TITLE,
                f"requests in any 1 s window, max_rate = {RATE_BOUND:g}/s (max)",
                f"{window} (tick {bound_seconds:.2f} s for {bound[-1].requests} requests, "
                f"{bound[-1].requests / bound_seconds:.0f}/s; {at_rate:.2f} s at the rate)",
                f"≤ {RATE_BOUND + 1:g}",
                window <= RATE_BOUND + 1,
            )
        )
    )
    return figures
