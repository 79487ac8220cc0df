"""Figure 3 — memory: RSS with 5,000 jobs and an hour of samples, flat over 1,000 ticks.

A fresh subprocess (:mod:`bench.memory_child`) runs a real Watcher and SqliteStore over
the in-process fake Polaris: 5,000 streaming jobs, rules reading two metrics with a
one-hour window at a 30 s interval, so every one of the 10,000 series holds an hour of
points once the rings are full. It ticks 1,000 times in simulated time and reports its
VmRSS; the figure is RSS at tick 120 (an hour of ticks: the window is full), at tick
1,000 and the growth between them. A second child runs the real thing — PolarisClient
over HTTP against the simulator in a third process — for a few ticks.

Memory is close to deterministic, so this figure is one run, not a median.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.report import Figure, Options, announce, say
from bench.simproc import SimProcess
from watchdog.domain.samples import capacity_for

NAME = "memory"
TITLE = "Memory"
TICKS = 1000
FULL_TICK = 120  # an hour of 30 s ticks
REAL_TICKS = 5
TARGET_MB = 120.0
TARGET_GROWTH = 0.05


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
                f"{event['series']:,} series"
                + (f", {event['seconds']:.0f} s" if "seconds" in event else "")
            )
    errors = (await proc.stderr.read()).decode(errors="replace")
    if await proc.wait() != 0:
        raise RuntimeError(f"memory child failed: {errors[-2000:]}")
    return lines


async def run(options: Options) -> list[Figure]:
    capacity = capacity_for(3600.0, 30.0)  # the child's rules: a 1 h window, 30 s ticks
    checkpoints = sorted({1, 60, FULL_TICK, capacity, 250, 500, 750, TICKS})
    say(
        f"  fake Polaris, {options.jobs:,} streaming jobs, two metrics with an hour of 30 s "
        f"samples, {TICKS:,} ticks in a fresh process"
    )
    # The state file goes to tmpfs when there is one: only for speed (a tick writes 10,000
    # sample rows). SQLite reads through its own small page cache, so where the file lives
    # does not change the process's RSS.
    shm = ["--state-dir", "/dev/shm"] if Path("/dev/shm").is_dir() else []
    events = await _child(
        "fake",
        "--jobs",
        str(options.jobs),
        "--ticks",
        str(TICKS),
        "--checkpoints",
        ",".join(map(str, checkpoints)),
        *shm,
    )
    start = next(e for e in events if e["event"] == "start")
    ticks = {e["tick"]: e for e in events if e["event"] == "tick"}
    full, last = ticks[FULL_TICK]["rss_mb"], ticks[TICKS]["rss_mb"]
    peak = max(e["rss_mb"] for e in ticks.values())
    growth = (last - full) / full
    # The rings hold a little more than the window (a baseline point and 10 % slack), so
    # they stop growing a few ticks after tick 120: from there on RSS must not move.
    capacity = start["capacity"]
    ringed = ticks[capacity]["rss_mb"]
    flat = (last - ringed) / ringed
    say(
        f"  interpreter alone {start['baseline_mb']:.1f} MB, after imports "
        f"{start['rss_mb']:.1f} MB, ring capacity {start['capacity']} points"
    )
    figures = [
        announce(
            Figure(
                TITLE,
                f"RSS, {options.jobs:,} jobs, 1 h of 30 s samples × 2 metrics (1 run)",
                f"{last:.1f} MB at tick {TICKS:,} (peak {peak:.1f} MB)",
                f"≤ {TARGET_MB:g} MB",
                peak <= TARGET_MB,
            )
        ),
        announce(
            Figure(
                TITLE,
                f"RSS growth, tick {FULL_TICK} (window full) → tick {TICKS:,}",
                f"{growth * 100:+.1f} % ({full:.1f} → {last:.1f} MB); {flat * 100:+.1f} % "
                f"from tick {capacity}, when the rings are full",
                f"≤ {TARGET_GROWTH * 100:g} %",
                growth <= TARGET_GROWTH,
            )
        ),
    ]
    say(f"  real HTTP: PolarisClient against the simulator (large, {options.jobs:,} jobs)")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        async with SimProcess("large", options.jobs, workdir=Path(tmp)) as sim:
            real = await _child(
                "real",
                "--url",
                sim.url,
                "--project",
                sim.project_id,
                "--key",
                sim.api_key.get_secret_value(),
                "--ticks",
                str(REAL_TICKS),
            )
    real_rss = max(e["rss_mb"] for e in real if e["event"] == "tick")
    figures.append(
        announce(
            Figure(
                TITLE,
                f"RSS of the real thing after {REAL_TICKS} HTTP ticks, {options.jobs:,} jobs",
                f"{real_rss:.1f} MB",
                f"≤ {TARGET_MB:g} MB",
                real_rss <= TARGET_MB,
            )
        )
    )
    return figures
