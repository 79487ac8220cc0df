"""Evaluation cost: CPU per (job, rule) per tick, 5,000 jobs × 6 rules.

The work measured is what the watcher does for every (rule, job) pair of a tick:
:func:`watchdog.watch.verdicts.verdict_for` (match, then the rule's evaluator over the sample
windows) and :func:`watchdog.watch.lifecycle.evolve` (the lifecycle step), with the states kept
between ticks as the watcher keeps them. Every series holds a full window (the ring is at
capacity) and gets a fresh point each tick, so every metric rule reads real windows.
``time.process_time`` is read around the evaluation only; recording samples is outside.

For context the figure is followed by the whole tick's CPU per pair, taken from a real
:class:`~watchdog.watch.loop.Watcher` (SqliteStore, in-process fake Polaris): that adds the
listing bookkeeping and the SQLite commit to the evaluation. The sweep's pass over the
metrics, which records the samples, is timed apart: per watched job.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.fakes import FakePolaris
from bench.harness import leading_watcher, ruleset
from bench.report import Figure, Options, announce, median, say
from watchdog.domain.alerts import AlertState
from watchdog.domain.samples import SampleBook, capacity_for
from watchdog.polaris.models import Job
from watchdog.rules.model import Rule
from watchdog.rules.ruleset import RuleSet
from watchdog.store.sqlite import SqliteStore
from watchdog.watch.lifecycle import Timing, evolve
from watchdog.watch.verdicts import verdict_for

NAME = "evaluation"
TITLE = "Evaluation cost"
INTERVAL = 30.0
TARGET_US = 20.0
SIX_RULES = """
[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"

[[rules]]
name = "job-failed"
kind = "execution"
status = ["failed"]

[[rules]]
name = "skipped-rows-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "10m"

[[rules]]
name = "filtered-rows-fast"
kind = "rate"
metric = "numRowsSkippedByFilter"
above = 10000
within = "5m"

[[rules]]
name = "parse-error-ratio"
kind = "ratio"
above = 0.01
within = "15m"
min_denominator = 1000

[[rules]]
name = "parse-error-budget"
kind = "budget"
percent = 80
"""


class Evaluation:
    """The per-pair work of the watcher's tick, with states kept across ticks."""

    def __init__(self, rules: RuleSet, jobs: list[Job], book: SampleBook) -> None:
        self.rules = rules.rules
        self.jobs = jobs
        self.book = book
        self.timings = {rule.name: Timing.of(rule) for rule in self.rules}
        self.states: dict[str, dict[str, AlertState]] = defaultdict(dict)
        self.sampled: dict[str, float] = {}  # when each job's metrics were fetched
        self.by_kind: dict[str, float] = defaultdict(float)

    def _rule(self, rule: Rule, now: float) -> None:
        states, timing = self.states[rule.name], self.timings[rule.name]
        book, sampled = self.book, self.sampled
        for job in self.jobs:
            prev = states.get(job.id)
            verdict = verdict_for(rule, job, prev, book, now, sampled)
            if verdict is None:
                continue
            step = evolve(
                prev, verdict, rule=rule.name, severity=rule.severity, timing=timing, now=now
            )
            if step.state is None:
                states.pop(job.id, None)
            else:
                states[job.id] = step.state

    def tick(self, now: float) -> float:
        """CPU seconds of one tick's evaluation of every (rule, job) pair; every job's
        metrics were fetched at ``now``."""
        self.sampled = dict.fromkeys((job.id for job in self.jobs), now)
        total = 0.0
        for rule in self.rules:
            started = time.process_time()
            self._rule(rule, now)
            spent = time.process_time() - started
            self.by_kind[rule.kind] += spent
            total += spent
        return total


def _record(fake: FakePolaris, book: SampleBook, metrics: tuple[str, ...], now: float) -> None:
    for job in fake.jobs:
        totals = fake.totals(job.id, now)
        for metric in metrics:
            book.record(job.id, metric, now, totals[metric])


async def _whole_tick(options: Options, rules: RuleSet) -> tuple[list[float], list[float]]:
    """CPU seconds per pair of real listing ticks, and per job of real sweep passes (fake
    Polaris, real SqliteStore)."""
    born = 1_700_000_000.0
    fake = FakePolaris(options.jobs, born=born, seed=options.seed)
    per_pair: list[float] = []
    per_job: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        await store.open()
        try:
            watcher = await leading_watcher(fake.client(), store, rules, clock=lambda: fake.now)
            metrics = tuple(sorted({m for rule in rules.rules for m in rule.metrics}))
            now = born
            # Fill the rings as a restart restoring the sample history would.
            for _ in range(watcher.book.capacity):
                now += INTERVAL
                _record(fake, watcher.book, metrics, now)
            watcher.sweep.resume_from_book()
            for tick in range(1 + options.runs):
                now += INTERVAL
                fake.now = now
                started = time.process_time()
                swept = await watcher.sweep.sweep_once()
                sweeping = time.process_time() - started
                report = await watcher.tick(now)
                spent = time.process_time() - started - sweeping
                if tick:  # the first tick creates the alert states: not the steady state
                    per_pair.append(spent / max(report.evaluations, 1))
                    per_job.append(sweeping / max(swept.attempted, 1))
        finally:
            await store.close()
    return per_pair, per_job


async def run(options: Options) -> list[Figure]:
    rules = ruleset(SIX_RULES, interval="30s")
    born = 1_700_000_000.0
    fake = FakePolaris(options.jobs, born=born, seed=options.seed)
    metrics = tuple(sorted({m for rule in rules.rules for m in rule.metrics}))
    book = SampleBook(capacity_for(rules.max_window, INTERVAL))
    now = born
    for _ in range(book.capacity):  # fill every ring to capacity: full windows
        now += INTERVAL
        _record(fake, book, metrics, now)
    evaluation = Evaluation(rules, fake.jobs, book)
    evaluation.tick(now)  # warm-up: states of the conditions that hold are created
    evaluation.by_kind.clear()
    pairs = len(rules.rules) * len(fake.jobs)
    say(
        f"  {len(fake.jobs):,} jobs × {len(rules.rules)} rules = {pairs:,} pairs, "
        f"{len(book):,} series of {book.capacity} points (full), interval {INTERVAL:g} s"
    )
    per_pair: list[float] = []
    for run_index in range(options.runs):
        now += INTERVAL
        _record(fake, book, metrics, now)
        gc.collect()  # a collection left over from recording must not land in the timing
        spent = evaluation.tick(now)
        per_pair.append(spent / pairs)
        firing = sum(len(s) for s in evaluation.states.values())
        say(
            f"    run {run_index + 1}: {spent * 1000:.0f} ms CPU, "
            f"{spent / pairs * 1e6:.2f} µs per pair ({firing} alert states)"
        )
    cost = median(per_pair) * 1e6
    runs = options.runs
    kinds = ", ".join(
        f"{kind} {seconds / runs / len(fake.jobs) * 1e6:.1f}"
        for kind, seconds in evaluation.by_kind.items()
    )
    say(f"  µs per pair by rule kind: {kinds}")
    figures = [
        announce(
            Figure(
                TITLE,
                f"CPU per (job, rule) per tick, {options.jobs:,} jobs × 6 rules, full windows",
                f"{cost:.1f} µs ({kinds})",
                f"≤ {TARGET_US:g} µs",
                cost <= TARGET_US,
            )
        )
    ]
    per_pair, per_job = await _whole_tick(options, rules)
    figures.append(
        announce(
            Figure(
                TITLE,
                "whole listing tick CPU per evaluated pair (listing, SQLite commit included)",
                f"{median(per_pair) * 1e6:.1f} µs",
                "for information",
                None,
            )
        )
    )
    figures.append(
        announce(
            Figure(
                TITLE,
                "sweep CPU per watched job and pass (fetch from a fake Polaris, record samples)",
                f"{median(per_job) * 1e6:.1f} µs",
                "for information",
                None,
            )
        )
    )
    return figures
