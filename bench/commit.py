"""Commit cost — what a tick's write costs at 5,000 jobs, PostgreSQL against SQLite.

A real Watcher (real PolarisClient, the rules of the tick benchmark: a health rule and
metric rules over every streaming job) ticks against the simulator's large scenario in
another process, sweeping every job's metrics before judging. Its store is a tee: every
write of the tick (the fenced commit of alert states and notifications, then the swept
samples) goes to a SQLite file and to a PostgreSQL database of its own
(``tests/pg_private.py``), one after the other, each timed — so both backends write the
same rows in the same run. A second figure commits a storm: 5,000 alerts firing at once,
each with its notification. Targets: a tick's commit in at most 1 s (the default
interval is 30 s), a storm's in at most 5 s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import STREAMING_RULES, ruleset
from bench.report import Figure, Options, announce, median, say
from bench.simproc import SimProcess
from watchdog.domain.alerts import AlertState, Condition, JobFacts, Phase, Reason, RuleFacts
from watchdog.domain.outgoing import Notification, Outgoing
from watchdog.domain.samples import SampleRow
from watchdog.polaris.client import PolarisClient
from watchdog.rules.holder import RulesHolder
from watchdog.store import Fence, Store
from watchdog.store.postgres import PostgresStore
from watchdog.store.sqlite import SqliteStore
from watchdog.watch.loop import Watcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_private import PrivatePostgres, find_bin_dir

NAME = "commit"
TITLE = "Commit cost"
PROJECT = "default"
TICK_TARGET = 1.0
STORM_TARGET = 5.0


@dataclass
class Timed:
    """Seconds each backend spent on the writes of one tick (or one storm)."""

    seconds: dict[str, float] = field(default_factory=dict)
    alerts: int = 0
    notifications: int = 0
    samples: int = 0


class Tee:
    """The store a Watcher sees: reads from the first backend, every write to each
    backend in turn, timed per backend into :attr:`current`."""

    def __init__(self, backends: dict[str, Store]) -> None:
        self.backends = backends
        self._first = next(iter(backends.values()))
        self.current = Timed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._first, name)  # reads: load_alerts, list_silences, load_samples

    async def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for label, store in self.backends.items():
            started = time.perf_counter()
            await getattr(store, method)(*args, **kwargs)
            spent = time.perf_counter() - started
            self.current.seconds[label] = self.current.seconds.get(label, 0.0) + spent

    async def commit(
        self,
        *,
        fence: Fence,
        upserts: Sequence[AlertState] = (),
        deletes: Sequence[str] = (),
        outbox: Sequence[Outgoing] = (),
        now: float,
    ) -> None:
        self.current.alerts += len(upserts) + len(deletes)
        self.current.notifications += len(outbox)
        await self._each(
            "commit", fence=fence, upserts=upserts, deletes=deletes, outbox=outbox, now=now
        )

    async def append_samples(self, project: str, rows: Sequence[SampleRow]) -> None:
        self.current.samples += len(rows)
        await self._each("append_samples", project, rows)

    async def prune_samples(
        self, project: str, before: float, gone_jobs: Sequence[str] = ()
    ) -> None:
        await self._each("prune_samples", project, before, gone_jobs)


def _storm(n: int, at: float, run: int) -> tuple[list[AlertState], list[Notification]]:
    """``n`` alerts firing at once (as a tick finding ``n`` jobs in error makes them)."""
    states = []
    for i in range(n):
        job_id = f"{run:08x}-0000-4000-8000-{i:012x}"
        facts = JobFacts(
            job_id=job_id,
            table=f"table_{i % 250:03d}",
            type="streaming",
            execution_status="running",
            health_status="error",
            health_code="internal_error",
            health_message="An internal error occurred",
        )
        states.append(
            AlertState(
                rule="job-unhealthy",
                job_id=job_id,
                phase=Phase.FIRING,
                severity="critical",
                since=at,
                last_active=at,
                last_eval=at,
                job=facts,
                condition=Condition(True, summary="health error: internal_error"),
                fired_at=at,
                posted=True,
                project=PROJECT,
            )
        )
    facts = RuleFacts(name="job-unhealthy", kind="health", severity="critical")
    return states, [Notification(Reason.NEW, state, facts) for state in states]


async def _measure(
    sim: SimProcess, tee: Tee, runs: int, jobs: int
) -> tuple[list[Timed], list[Timed]]:
    rules = ruleset(STREAMING_RULES, concurrency=16, max_rate=2000.0, page_size=1000)
    fences = {
        label: await s.acquire_lease(PROJECT, "bench", 86_400.0)
        for label, s in tee.backends.items()
    }
    assert len(set(fences.values())) == 1, fences  # fresh databases: the same term
    term = next(iter(fences.values()))
    assert term is not None
    ticks: list[Timed] = []
    storms: list[Timed] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        client = PolarisClient(
            session, sim.url, sim.project_id, sim.api_key, concurrency=16, max_rate=2000.0
        )
        watcher = Watcher(project=PROJECT, client=client, store=tee, rules=RulesHolder(rules))  # type: ignore[arg-type]
        await watcher.lead(term)
        for run in range(runs + 1):
            tee.current = Timed()
            report = await watcher.tick(time.time(), before_judging=watcher.sweep.sweep_once)
            timed = tee.current
            label = "warm-up (first alerts)" if run == 0 else f"run {run}"
            say(
                f"    tick {label}: {report.jobs:,} jobs, {timed.alerts} alert states, "
                f"{timed.notifications} notifications, {timed.samples:,} samples; "
                + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timed.seconds.items())
            )
            if run:
                ticks.append(timed)
        for run in range(runs):
            states, notes = _storm(jobs, time.time(), run + 1)
            tee.current = Timed()
            await tee.commit(
                fence=Fence(PROJECT, term), upserts=states, outbox=notes, now=time.time()
            )
            storms.append(tee.current)
            say(
                f"    storm run {run + 1}: {len(states):,} alerts + notifications; "
                + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in tee.current.seconds.items())
            )
    return ticks, storms


def _figure(name: str, timed: list[Timed], target: float, what: str) -> Figure:
    labels = list(timed[0].seconds)
    medians = {label: median([t.seconds[label] for t in timed]) for label in labels}
    shown = ", ".join(f"{label} {seconds * 1000:.0f} ms" for label, seconds in medians.items())
    ratio = medians["PostgreSQL"] / medians["SQLite"] if medians["SQLite"] else float("nan")
    return announce(
        Figure(
            TITLE,
            f"{name} ({what})",
            f"{shown} (PostgreSQL {ratio:.1f}× SQLite)",
            f"≤ {target:g} s each",
            all(seconds <= target for seconds in medians.values()),
        )
    )


async def run(options: Options) -> list[Figure]:
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        say(f"  skipped: {why}")
        return [Figure(TITLE, "PostgreSQL against SQLite", f"not measured: {why}", "-", None)]
    with tempfile.TemporaryDirectory(prefix="bench-commit-") as tmp:
        workdir = Path(tmp)
        async with (
            PrivatePostgres(bin_dir) as pg,
            SimProcess("large", options.jobs, workdir=workdir) as sim,
        ):
            sqlite = SqliteStore(workdir / "state.db")
            postgres = PostgresStore(pg.url)
            await sqlite.open()
            await postgres.open()
            try:
                say(f"  {options.jobs:,} jobs (large scenario); a SQLite file and PostgreSQL")
                tee = Tee({"SQLite": sqlite, "PostgreSQL": postgres})
                ticks, storms = await _measure(sim, tee, options.runs, options.jobs)
            finally:
                await sqlite.close()
                await postgres.close()
    sample = ticks[-1]
    return [
        _figure(
            f"tick commit, {options.jobs:,} jobs",
            ticks,
            TICK_TARGET,
            f"{sample.samples:,} samples, {sample.alerts} alert states; median of {len(ticks)}",
        ),
        _figure(
            f"storm commit, {options.jobs:,} alerts firing at once",
            storms,
            STORM_TARGET,
            f"{options.jobs:,} alert states + notifications; median of {len(storms)}",
        ),
    ]
