"""Memory: RSS with 5,000 jobs and an hour of samples, flat over the hours that follow.

Two processes are measured, each fresh, so the resident set is the bot's alone:

- :mod:`bench.memory_child` imports what ``polaris-watchdog run`` imports, then runs a
  real Watcher and SqliteStore over the in-process fake Polaris: 5,000 streaming jobs,
  rules reading two metrics with a one-hour window at a 30 s interval, so every one of
  the 10,000 series holds an hour of points once the rings are full. Each tick lists,
  sweeps every job's metrics once and judges, in simulated time. The figures are RSS at
  tick 120 (an hour of ticks: the window is full), at the last tick, and the growth
  between them.
- the real thing: ``polaris-watchdog run`` against the simulator (5,000 streaming jobs),
  with a state file already holding the last hour of samples of every series, as after a
  restart of a bot that ran for an hour. It restores them, ticks and sweeps; its RSS is
  read from ``/proc`` once it has ticked twice and swept every job.

Memory is close to deterministic, so these figures are one run each, not medians.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.botproc import BotProcess, by_project
from bench.harness import BOT_TOKEN, CHANNEL
from bench.memory_child import HOUR_RULES, INTERVAL
from bench.report import Figure, Options, announce, say
from bench.simproc import SimProcess
from watchdog.devtools.slack_standin.server import SlackStandIn, serve
from watchdog.domain.alerts import DEFAULT_PROJECT
from watchdog.domain.samples import SampleRow, capacity_for
from watchdog.store.sqlite import SqliteStore

NAME = "memory"
TITLE = "Memory"
TICKS = 300  # 2.5 hours of 30 s ticks: the rings fill at tick 133
FULL_TICK = 120  # an hour of 30 s ticks
TARGET_MB = 100.0
TARGET_GROWTH = 0.05
METRICS = ("numRowsProcessed", "numRowsSkippedByError")
_REAL_TIMEOUT = 180.0


async def _child(*args: str) -> list[dict[str, Any]]:
    """Run ``python -m bench.memory_child ARGS``; its JSON lines, echoed as they come."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.memory_child",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[dict[str, Any]] = []
    while line := await proc.stdout.readline():
        event = json.loads(line)
        lines.append(event)
        if event.get("event") == "tick":
            say(
                f"    tick {event['tick']:>5}: RSS {event['rss_mb']:.1f} MB, "
                f"{event['series']:,} series, {event['seconds']:.0f} s"
            )
    errors = (await proc.stderr.read()).decode(errors="replace")
    if await proc.wait() != 0:
        raise RuntimeError(f"memory child failed: {errors[-2000:]}")
    return lines


async def _simulated(options: Options) -> list[Figure]:
    capacity = capacity_for(3600.0, INTERVAL)  # the child's rules: a 1 h window, 30 s ticks
    ticks = max(TICKS, capacity + 1)
    checkpoints = sorted({1, 60, FULL_TICK, capacity, 200, ticks})
    say(
        f"  fake Polaris, {options.jobs:,} streaming jobs, two metrics with an hour of 30 s "
        f"samples, {ticks:,} ticks in a fresh process that imported what `run` imports"
    )
    # The state file goes to tmpfs when there is one: only for speed (a tick writes 10,000
    # sample rows). SQLite reads through its own small page cache, so where the file lives
    # does not change the process's RSS.
    shm = ["--state-dir", "/dev/shm"] if Path("/dev/shm").is_dir() else []
    events = await _child(
        "--jobs",
        str(options.jobs),
        "--ticks",
        str(ticks),
        "--checkpoints",
        ",".join(map(str, checkpoints)),
        *shm,
    )
    start = next(e for e in events if e["event"] == "start")
    by_tick = {e["tick"]: e for e in events if e["event"] == "tick"}
    full, last = by_tick[FULL_TICK]["rss_mb"], by_tick[ticks]["rss_mb"]
    peak = max(e["rss_mb"] for e in by_tick.values())
    growth = (last - full) / full
    # The rings hold a little more than the window (a baseline point and 10 % slack), so
    # they stop growing a few ticks after tick 120: from there on RSS must not move.
    ringed = by_tick[capacity]["rss_mb"]
    flat = (last - ringed) / ringed
    say(
        f"  interpreter alone {start['baseline_mb']:.1f} MB, after `run`'s imports "
        f"{start['imports_mb']:.1f} MB, with the fake Polaris and the watcher "
        f"{start['rss_mb']:.1f} MB; ring capacity {start['capacity']} points"
    )
    return [
        announce(
            Figure(
                TITLE,
                f"RSS, {options.jobs:,} jobs, 1 h of 30 s samples × 2 metrics, simulated "
                f"time (1 run; `run`'s imports {start['imports_mb']:.0f} MB)",
                f"{last:.1f} MB at tick {ticks:,} (peak {peak:.1f} MB)",
                f"≤ {TARGET_MB:g} MB",
                peak <= TARGET_MB,
            )
        ),
        announce(
            Figure(
                TITLE,
                f"RSS growth, tick {FULL_TICK} (window full) → tick {ticks:,}",
                f"{growth * 100:+.1f} % ({full:.1f} → {last:.1f} MB); {flat * 100:+.1f} % "
                f"from tick {capacity}, when the rings are full",
                f"≤ {TARGET_GROWTH * 100:g} %",
                growth <= TARGET_GROWTH,
            )
        ),
    ]


async def _seed(state: Path, jobs: list[dict[str, Any]], now: float) -> int:
    """An hour of samples of every job's two metrics, ending now, in the state file."""
    store = SqliteStore(state)
    await store.open()
    points = int(3600 / INTERVAL) + 1
    start = now - (points - 1) * INTERVAL
    rows: list[SampleRow] = []
    written = 0
    try:
        for k in range(points):
            t = start + k * INTERVAL
            share = (k + 1) / (points + 1)  # counters grow towards today's value
            for job in jobs:
                processed = float(job["totals"].get("numRowsProcessed", 0)) * share
                rows.append((job["id"], "numRowsProcessed", t, processed))
                rows.append((job["id"], "numRowsSkippedByError", t, 0.0))
            if len(rows) >= 100_000 or k == points - 1:
                await store.append_samples(DEFAULT_PROJECT, rows)
                written += len(rows)
                rows = []
    finally:
        await store.close()
    return written


async def _real(options: Options) -> Figure:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workdir = Path(tmp)
        standin = SlackStandIn(bot_token=BOT_TOKEN, channels={CHANNEL})
        standin_runner = await serve(standin, "127.0.0.1", 0)
        try:
            async with SimProcess("healthy", options.jobs, workdir=workdir) as sim:
                state = workdir / "state.db"
                began = time.monotonic()
                rows = await _seed(state, await sim.jobs_summary(), time.time())
                say(
                    f"  real: `polaris-watchdog run`, {options.jobs:,} streaming jobs, the state "
                    f"file holding the last hour: {rows:,} samples (written in "
                    f"{time.monotonic() - began:.0f} s)"
                )
                bot = BotProcess(
                    workdir,
                    sim,
                    standin.api_url,
                    HOUR_RULES,
                    interval=f"{INTERVAL:g}s",
                    state=state,
                )
                began = time.monotonic()
                async with bot:
                    started = time.monotonic() - began
                    seen = [bot.rss_mb()]
                    deadline = time.monotonic() + _REAL_TIMEOUT
                    while True:
                        samples = await bot.scrape()
                        seen.append(bot.rss_mb())
                        ticks = sum(by_project(samples, "watchdog_ticks_total").values())
                        swept = by_project(samples, "watchdog_sweep_period_seconds")
                        if ticks >= 2 and swept:
                            break
                        if time.monotonic() > deadline:
                            raise TimeoutError("the bot did not tick twice and sweep")
                        await asyncio.sleep(0.5)
                    rss = bot.rss_mb()
        finally:
            await standin_runner.cleanup()
    say(
        f"    serving after {started:.1f} s (the hour restored) at {seen[0]:.1f} MB; "
        f"after 2 ticks and a sweep {rss:.1f} MB (max seen {max(seen):.1f} MB)"
    )
    return announce(
        Figure(
            TITLE,
            f"RSS of `polaris-watchdog run`, {options.jobs:,} jobs, the last hour of samples "
            "restored from the state file, after 2 ticks and a sweep (1 run)",
            f"{rss:.1f} MB (max seen {max(seen):.1f} MB; serving after {started:.0f} s)",
            f"≤ {TARGET_MB:g} MB",
            max(seen) <= TARGET_MB,
        )
    )


async def run(options: Options) -> list[Figure]:
    figures = await _simulated(options)
    figures.append(await _real(options))
    return figures
