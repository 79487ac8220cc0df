"""``python -m bench [NAME ...] [--runs N] [--jobs N]``: run benchmarks, print a summary.

Without names every benchmark runs, in the order below. Each prints its figures as it
measures them; the run ends with a Markdown table (machine, date, figures, targets,
PASS/FAIL) and exits 1 when any target failed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bench.report import Figure, Options, Timing, load, say, summary
from watchdog.logs import configure_logging

#: Benchmark name → module (each has NAME, TITLE and ``async def run(Options)``).
BENCHMARKS: dict[str, str] = {
    "latency": "bench.alert_latency",
    "sweep": "bench.sweep",
    "projects": "bench.projects",
    "memory": "bench.memory",
    "imports": "bench.imports",
    "evaluation": "bench.evaluation",
    "ack": "bench.command_ack",
    "storm": "bench.storm",
    "api": "bench.api_use",
    "failover": "bench.failover",
    "commit": "bench.commit",
    "reliability": "bench.reliability",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median; >= 3)")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs in the large scenarios")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random choices")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; valid: {', '.join(BENCHMARKS)}")
        return 2
    if args.runs < 1 or args.jobs < 1:
        print("--runs and --jobs must be positive")
        return 2
    options = Options(runs=args.runs, jobs=args.jobs, seed=args.seed)
    # The bot's own log lines would bury the figures; warnings and errors still show.
    configure_logging("console", level="warning")
    started, load_at_start = time.monotonic(), load()
    figures: list[Figure] = []
    timings: list[Timing] = []
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        title: str = module.TITLE
        bench: Callable[[Options], Coroutine[Any, Any, list[Figure]]] = module.run
        say(f"\n== {title} ({name}) ==")
        begun, load_before = time.monotonic(), load()
        try:
            figures += asyncio.run(bench(options))
        except Exception as exc:
            traceback.print_exc()
            figures.append(
                Figure(title, "benchmark crashed", f"{type(exc).__name__}: {exc}", "-", False)
            )
        timing = Timing(name, time.monotonic() - begun, max(load_before, load()))
        timings.append(timing)
        say(f"  ({timing.seconds:.0f} s, load average up to {timing.load:.2f})")
    say()
    seconds = time.monotonic() - started
    say(summary(figures, options, seconds, (load_at_start, load()), timings))
    return 1 if any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
