"""Figures, the statistics behind them, and the Markdown summary the bench ends with.

The machines the bench runs on are shared and noisy, so a figure is a median over runs
(or a percentile over many samples) and, where there is an ideal, a ratio against the
ideal measured in the same run. A figure either has a target (PASS/FAIL) or is shown
for information only.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Options:
    """What the command line chose."""

    runs: int = 3
    jobs: int = 5000
    seed: int = 1


@dataclass(frozen=True)
class Figure:
    """One measured figure. ``passed`` is None for figures shown for information only."""

    benchmark: str
    name: str
    measured: str
    target: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class Timing:
    """How long one benchmark ran, and the highest load average seen around it."""

    benchmark: str
    seconds: float
    load: float


#: A 1-minute load average above this, on this many cores, means other work ran beside
#: the benchmark: its timings are then upper bounds.
BUSY_PER_CORE = 0.5


def say(line: str = "") -> None:
    """Progress output: flushed at once, so a long benchmark shows it is alive."""
    print(line, flush=True)


def announce(figure: Figure) -> Figure:
    """Print one figure as it is measured; returns it for collecting."""
    say(f"  [{figure.verdict}] {figure.name}: {figure.measured} (target {figure.target})")
    return figure


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of values at or below.

    With 20 samples p95 is the 19th smallest; with 250 samples p99 is the 248th.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def max_in_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most events in any half-open window ``[t, t + width)`` (two pointers)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    cores = os.cpu_count() or 0
    return (
        f"{cpu_model()}, {cores} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def load() -> float:
    """The 1-minute load average: how busy the (shared) machine was."""
    return os.getloadavg()[0]


def summary(
    figures: Sequence[Figure],
    options: Options,
    seconds: float,
    loads: tuple[float, float],
    timings: Sequence[Timing] = (),
) -> str:
    """The closing Markdown table, ready to paste into the README."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    busiest = max([*loads, *(t.load for t in timings)])
    cores = os.cpu_count() or 1
    busy = (
        f" **The machine was busy** (load average up to {busiest:.2f} on {cores} cores): "
        "timings are upper bounds."
        if busiest > BUSY_PER_CORE * cores
        else ""
    )
    walls = ", ".join(f"{t.benchmark} {t.seconds:.0f} s (load ≤ {t.load:.2f})" for t in timings)
    lines = [
        f"### polaris-watchdog benchmarks — {date}",
        "",
        f"Machine: {machine()}; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at "
        f"the end. Medians over {options.runs} runs unless the figure says otherwise; "
        f"{options.jobs:,} jobs; total bench time {seconds:.0f} s.{busy}",
        "",
        *([f"Wall time: {walls}.", ""] if walls else []),
        "| Benchmark | Figure | Measured | Target | Result |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        cells = [f.benchmark, f.name, f.measured, f.target, f.verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failed = sum(1 for f in figures if f.passed is False)
    passed = sum(1 for f in figures if f.passed is True)
    lines += ["", f"{passed} passed, {failed} failed."]
    return "\n".join(lines)
