"""Sweep efficiency: one metrics sweep over 5,000 watched jobs against the floor, and the
limits held; the listing tick beside it.

A real Watcher (real PolarisClient, SqliteStore in a temporary directory, nothing
delivering the outbox) runs in this process against the simulator in another, which
adds 20 ms to every Polaris request. The rules are a health rule and a ``rising`` rule on
every streaming job, so each of the 5,000 streaming jobs is a target of the sweep. With
the limits lifted (``max_rate`` far above what C requests of 20 ms can do) a pass of the
sweep cannot beat ``ceil(targets / C) × latency``; what the environment itself costs on
top of that (timers, loopback, the simulator) is measured in the same run by a bare
aiohttp client sending the same requests at the same C. The figure is the efficiency:
the bare client's time over the sweep's (target ≥ 0.9). The simulator's statistics show
the sweep never had more than C requests in flight, and a second configuration where
``max_rate`` binds shows no 1-second window of the simulator's request log held more than
the rate (+1 for the window edge). The listing tick (every interval) is timed too: it
lists and judges, and sends no metrics request at all.
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

from bench.harness import RISING_RULES, ruleset, watcher_against
from bench.report import Figure, Options, announce, max_in_window, median, say
from bench.simproc import SimProcess
from watchdog.watch.loop import Watcher

NAME = "sweep"
TITLE = "Sweep efficiency"
LATENCY = 0.020
CONCURRENCY = 16
MAX_RATE = 2000.0
TARGET_EFFICIENCY = 0.9
RATE_BOUND = 200.0
RATE_JOBS = 600


@dataclass(frozen=True)
class PassRun:
    seconds: float
    floor: float  # the bare client's seconds for the same requests (0: not measured)
    cpu: float  # this process's CPU seconds for the pass
    floor_cpu: float  # and for the bare client's
    metrics: int
    requests: int
    max_in_flight: int
    arrivals: tuple[float, ...]

    def ideal(self, concurrency: int, latency: float) -> float:
        return math.ceil(self.metrics / concurrency) * latency


async def bare_floor(
    url: str, project_id: str, api_key: str, job_ids: list[str], concurrency: int
) -> float:
    """Seconds a bare aiohttp client takes for the metrics requests of ``job_ids`` at C."""
    return (await bare_client(url, project_id, api_key, job_ids, concurrency))[0]


async def bare_client(
    url: str, project_id: str, api_key: str, job_ids: list[str], concurrency: int
) -> tuple[float, float]:
    """Seconds and CPU seconds a bare aiohttp client takes for the metrics requests of
    ``job_ids`` at C.

    No bot code at all: every request behind a semaphore of C. What this takes over its
    ideal is the simulator's, the loopback's and the event loop's share (timer
    resolution), not the bot's.
    """
    base = f"{url}/v1/projects/{project_id}"
    headers = {"Authorization": f"Basic {api_key}"}
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def get(job_id: str) -> object:
            async with slots, session.get(f"{base}/jobs/{job_id}/metrics", headers=headers) as r:
                return json.loads(await r.text())

        # Connections opened first, as the sweep's are by the warm-up pass.
        await asyncio.gather(*(get(job_id) for job_id in job_ids[:concurrency]))
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(get(job_id) for job_id in job_ids))
        return time.perf_counter() - started, time.process_time() - cpu


async def _pass(sim: SimProcess, watcher: Watcher, floor: bool) -> PassRun:
    targets = sorted(watcher.sweep.targets)
    bare, bare_cpu = 0.0, 0.0
    if floor:
        key = sim.api_key.get_secret_value()
        bare, bare_cpu = await bare_client(sim.url, sim.project_id, key, targets, CONCURRENCY)
    await sim.reset_stats()
    started, cpu = time.perf_counter(), time.process_time()
    report = await watcher.sweep.sweep_once()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = await sim.stats(log=20_000)
    if report.failed or report.bad:
        raise RuntimeError(f"the sweep had failures: {report}")
    return PassRun(
        seconds=seconds,
        floor=bare,
        cpu=cpu,
        floor_cpu=bare_cpu,
        metrics=int(stats["by_endpoint"].get("metrics", 0)),
        requests=int(stats["requests"]),
        max_in_flight=int(stats["max_in_flight"]),
        arrivals=tuple(float(entry[0]) for entry in stats["request_log"]),
    )


async def _measure(
    sim: SimProcess, workdir: Path, runs: int, *, max_rate: float, floor: bool
) -> tuple[list[PassRun], list[tuple[float, int, int]]]:
    """``runs`` sweep passes (and listing ticks: seconds, pages, metrics requests)."""
    rules = ruleset(
        RISING_RULES, concurrency=CONCURRENCY, max_rate=max_rate, page_size=1000, interval="30s"
    )
    passes: list[PassRun] = []
    ticks: list[tuple[float, int, int]] = []
    async with watcher_against(sim, rules, workdir) as watcher:
        await sim.faults()
        # Warm-up: the targets handed over, connections opened, first samples recorded.
        await watcher.tick(time.time())
        await watcher.sweep.sweep_once()
        await sim.faults(latency=LATENCY)
        for run in range(runs):
            await sim.reset_stats()
            started = time.perf_counter()
            await watcher.tick(time.time())
            tick_seconds = time.perf_counter() - started
            by_endpoint = (await sim.stats())["by_endpoint"]
            ticks.append((tick_seconds, by_endpoint.get("list", 0), by_endpoint.get("metrics", 0)))
            sweep = await _pass(sim, watcher, floor)
            passes.append(sweep)
            ideal = sweep.ideal(CONCURRENCY, LATENCY)
            if floor:
                compare = (
                    f"ideal {ideal:.3f} s ({sweep.seconds / ideal:.3f}×), bare client "
                    f"{sweep.floor:.3f} s (efficiency {sweep.floor / sweep.seconds:.3f})"
                )
            else:
                at_rate = sweep.requests / max_rate
                compare = f"{at_rate:.3f} s at the rate ({sweep.seconds / at_rate:.3f}×)"
            say(
                f"    run {run + 1}: listing tick {tick_seconds:.3f} s ({ticks[-1][1]} pages); "
                f"sweep {sweep.seconds:.3f} s, {compare}; {sweep.metrics} metrics requests, "
                f"max in flight {sweep.max_in_flight}, max in 1 s {max_in_window(sweep.arrivals)}"
            )
        await sim.faults()
    return passes, ticks


async def run(options: Options) -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        workdir = Path(tmp)
        say(
            f"  {options.jobs:,} streaming jobs (healthy scenario), a rising rule on each, "
            f"{LATENCY * 1000:.0f} ms per request, C = {CONCURRENCY}, max_rate = {MAX_RATE:g}/s"
        )
        async with SimProcess("healthy", options.jobs, workdir=workdir) as sim:
            passes, ticks = await _measure(
                sim, workdir, options.runs, max_rate=MAX_RATE, floor=True
            )
        jobs = min(RATE_JOBS, options.jobs)
        say(f"  rate-bound: {jobs:,} jobs, max_rate = {RATE_BOUND:g}/s, same latency and C")
        async with SimProcess("healthy", jobs, workdir=workdir) as sim:
            bound, _ = await _measure(sim, workdir, options.runs, max_rate=RATE_BOUND, floor=False)

    efficiency = median([p.floor / p.seconds for p in passes])
    seconds = median([p.seconds for p in passes])
    floor = median([p.floor for p in passes])
    ideal = median([p.ideal(CONCURRENCY, LATENCY) for p in passes])
    figures.append(
        announce(
            Figure(
                TITLE,
                f"sweep pass, {passes[-1].metrics:,} watched jobs, 20 ms/request, C = "
                f"{CONCURRENCY}, limits lifted: efficiency = bare client ÷ sweep",
                f"{efficiency:.2f} (sweep {seconds:.2f} s, bare client {floor:.2f} s)",
                f"≥ {TARGET_EFFICIENCY}",
                efficiency >= TARGET_EFFICIENCY,
            )
        )
    )
    figures.append(
        announce(
            Figure(
                TITLE,
                "sweep pass against the ideal ceil(jobs / C) × latency",
                f"{seconds / ideal:.2f}× ideal ({ideal:.2f} s); the bare client "
                f"{floor / ideal:.2f}×",
                "for information",
                None,
            )
        )
    )
    cpu = median([p.cpu / p.metrics for p in passes]) * 1e6
    floor_cpu = median([p.floor_cpu / p.metrics for p in passes]) * 1e6
    figures.append(
        announce(
            Figure(
                TITLE,
                "CPU per metrics request in the bot's process: the sweep (client, gate, "
                "retry, model, samples) and the bare client",
                f"{cpu:.0f} µs and {floor_cpu:.0f} µs: one process sweeps at most "
                f"~{1e6 / cpu:,.0f} requests/s with nothing else to do",
                "for information",
                None,
            )
        )
    )
    in_flight = max(p.max_in_flight for p in [*passes, *bound])
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
    window = max(max_in_window(p.arrivals) for p in bound)
    bound_seconds = median([p.seconds for p in bound])
    at_rate = median([p.requests / RATE_BOUND for p in bound])
    figures.append(
        announce(
            Figure(
                TITLE,
                f"requests in any 1 s window, max_rate = {RATE_BOUND:g}/s (max)",
                f"{window} (pass {bound_seconds:.2f} s for {bound[-1].requests} requests, "
                f"{bound[-1].requests / bound_seconds:.0f}/s; {at_rate:.2f} s at the rate)",
                f"≤ {RATE_BOUND + 1:g}",
                window <= RATE_BOUND + 1,
            )
        )
    )
    tick_seconds = median([t[0] for t in ticks])
    metrics_in_ticks = sum(t[2] for t in ticks)
    figures.append(
        announce(
            Figure(
                TITLE,
                f"listing tick, {options.jobs:,} jobs: lists and judges, fetches no metrics",
                f"{tick_seconds:.2f} s, {ticks[-1][1]} listing pages, {metrics_in_ticks} "
                "metrics requests",
                "0 metrics requests",
                metrics_in_ticks == 0,
            )
        )
    )
    return figures
