"""The process whose memory the memory figure reads: a real Watcher ticking and sweeping.

Run by :mod:`bench.memory` as a fresh subprocess so that the resident set is the bot's
alone (no simulator, no benchmark harness state). It imports what ``polaris-watchdog run``
imports (:mod:`watchdog.app`), so the figure holds the imports of the real bot, then runs
a real Watcher and SqliteStore over the in-process :class:`~bench.fakes.FakePolaris` for
N ticks of simulated time (no sleeping): each tick lists and judges, with one pass of the
metrics sweep over every watched job before it judges, as a bot whose sweep keeps up
with its interval does. RSS is printed at checkpoints, each line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import rss_mb

BASELINE_MB = rss_mb()  # before any library is imported: the interpreter alone

import watchdog.app  # noqa: E402, F401  (what `run` loads; imported after the baseline)
from bench.fakes import FakePolaris  # noqa: E402
from bench.harness import leading_watcher, ruleset  # noqa: E402
from watchdog.store.sqlite import SqliteStore  # noqa: E402

IMPORTS_MB = rss_mb()

INTERVAL = 30.0
#: Two metrics per job, every series keeping an hour of points: the ring capacity (and the
#: SQLite retention) follows the longest window of any rule, here the hourly rule. That
#: rule matches one table only, so most evaluations read short windows and 1,000 ticks fit
#: in the bench's time; the CPU cost of long windows is figure 2's subject, not this one's.
HOUR_RULES = """
[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"

[[rules]]
name = "skipped-rows-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "5m"

[[rules]]
name = "stream-stalled"
kind = "stalled"
metric = "numRowsProcessed"
within = "5m"

[[rules]]
name = "skipped-rows-hourly"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 10000
within = "1h"
match = { table = ["table_000"] }
"""


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def fake_ticks(jobs: int, ticks: int, checkpoints: set[int], state_dir: str | None) -> None:
    rules = ruleset(HOUR_RULES, interval="30s")
    born = 1_700_000_000.0
    fake = FakePolaris(jobs, born=born)
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=state_dir) as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        await store.open()
        try:
            watcher = await leading_watcher(fake.client(), store, rules, clock=lambda: fake.now)
            emit(
                event="start",
                baseline_mb=BASELINE_MB,
                imports_mb=IMPORTS_MB,
                rss_mb=rss_mb(),
                capacity=watcher.book.capacity,
            )
            now, started = born, time.monotonic()
            for tick in range(1, ticks + 1):
                now += INTERVAL
                fake.now = now
                report = await watcher.tick(now, before_judging=watcher.sweep.sweep_once)
                if tick in checkpoints:
                    emit(
                        event="tick",
                        tick=tick,
                        rss_mb=rss_mb(),
                        series=len(watcher.book),
                        alerts=len(watcher.alerts),
                        evaluations=report.evaluations,
                        seconds=round(time.monotonic() - started, 2),
                    )
        finally:
            await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_child")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=1000)
    parser.add_argument("--checkpoints", default="1,120,1000")
    parser.add_argument("--state-dir", default=None, help="where the SQLite file goes")
    args = parser.parse_args(argv)
    from watchdog.logs import configure_logging

    configure_logging("json", level="warning")
    points = {int(p) for p in args.checkpoints.split(",") if p}
    asyncio.run(fake_ticks(args.jobs, args.ticks, points, args.state_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
