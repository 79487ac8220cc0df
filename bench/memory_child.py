"""The process whose memory figure 3 reads: a real Watcher ticking, RSS reported as JSON.

Run by :mod:`bench.memory` as a fresh subprocess so that the resident set is the bot's
alone (no simulator, no benchmark harness state). Two modes:

- ``fake``: a real Watcher + SqliteStore over the in-process :class:`~bench.fakes.FakePolaris`
  for N ticks of simulated time (no sleeping), RSS printed at checkpoints;
- ``real``: a real Watcher + PolarisClient + SqliteStore against a simulator URL for a
  few real-HTTP ticks.

Each line on stdout is one JSON object.
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

import aiohttp  # noqa: E402  (imported after the baseline on purpose)
from pydantic import SecretStr  # noqa: E402

from bench.fakes import FakePolaris  # noqa: E402
from bench.harness import STREAMING_RULES, ruleset  # noqa: E402
from watchdog.polaris.client import PolarisClient  # noqa: E402
from watchdog.rules.holder import RulesHolder  # noqa: E402
from watchdog.store.sqlite import SqliteStore  # noqa: E402
from watchdog.watch.loop import Watcher  # noqa: E402

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
            watcher = Watcher(
                client=fake.client(), store=store, rules=RulesHolder(rules), holder="bench"
            )
            emit(
                event="start",
                baseline_mb=BASELINE_MB,
                rss_mb=rss_mb(),
                capacity=watcher.book.capacity,
            )
            now, started = born, time.monotonic()
            for tick in range(1, ticks + 1):
                now += INTERVAL
                fake.now = now
                report = await watcher.tick(now)
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


async def real_ticks(url: str, project: str, key: str, ticks: int) -> None:
    rules = ruleset(STREAMING_RULES, interval="30s", max_rate=2000.0, page_size=1000)
    watch = rules.watch
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(100, watch.concurrency * 2))
    ) as session:
        client = PolarisClient(
            session,
            url,
            project,
            SecretStr(key),
            concurrency=watch.concurrency,
            max_rate=watch.max_rate,
            timeout=watch.timeout,
        )
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            store = SqliteStore(Path(tmp) / "state.db")
            await store.open()
            try:
                watcher = Watcher(
                    client=client, store=store, rules=RulesHolder(rules), holder="bench"
                )
                emit(event="start", baseline_mb=BASELINE_MB, rss_mb=rss_mb())
                for tick in range(1, ticks + 1):
                    report = await watcher.tick(time.time())
                    emit(
                        event="tick",
                        tick=tick,
                        rss_mb=rss_mb(),
                        jobs=report.jobs,
                        metrics=report.metrics_fetched,
                        series=len(watcher.book),
                    )
            finally:
                await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_child")
    sub = parser.add_subparsers(dest="mode", required=True)
    fake = sub.add_parser("fake")
    fake.add_argument("--jobs", type=int, default=5000)
    fake.add_argument("--ticks", type=int, default=1000)
    fake.add_argument("--checkpoints", default="1,120,1000")
    fake.add_argument("--state-dir", default=None, help="where the SQLite file goes")
    real = sub.add_parser("real")
    real.add_argument("--url", required=True)
    real.add_argument("--project", required=True)
    real.add_argument("--key", required=True)
    real.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args(argv)
    from watchdog.logs import configure_logging

    configure_logging("json", level="warning")
    if args.mode == "fake":
        points = {int(p) for p in args.checkpoints.split(",") if p}
        asyncio.run(fake_ticks(args.jobs, args.ticks, points, args.state_dir))
    else:
        asyncio.run(real_ticks(args.url, args.project, args.key, args.ticks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
