"""The benchmarks stay runnable: every module imports, and the smallest runs at tiny size.

The benchmarks themselves are not part of ``make test`` (``make bench`` runs them: they
take minutes and want a quiet machine); this only keeps them from rotting while the code
they measure changes under them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a directory of the repository, not installed
    sys.path.insert(0, str(ROOT))

from bench.__main__ import BENCHMARKS  # noqa: E402
from bench.report import Figure, Options, Timing, summary  # noqa: E402

MODULES = sorted(
    {*BENCHMARKS.values(), "bench.botproc", "bench.fakes", "bench.harness", "bench.simproc"}
    | {"bench.imports_child", "bench.memory_child", "bench.report"}
)


@pytest.mark.parametrize("name", MODULES)
def test_every_bench_module_imports(name: str) -> None:
    """Each benchmark module imports against today's code."""
    module = importlib.import_module(name)
    if name in BENCHMARKS.values():
        assert module.TITLE and callable(module.run)


async def test_the_evaluation_benchmark_runs_at_tiny_size() -> None:
    """The evaluation benchmark runs end to end on 20 jobs and reports every figure."""
    evaluation = importlib.import_module("bench.evaluation")
    figures: list[Figure] = await evaluation.run(Options(runs=1, jobs=20))
    assert [f.benchmark for f in figures] == [evaluation.TITLE] * 3
    assert figures[0].passed is not None and "µs" in figures[0].measured
    table = summary(figures, Options(runs=1, jobs=20), 1.0, (0.1, 0.1), [Timing("x", 1.0, 0.1)])
    assert table.count("| Evaluation cost |") == 3 and "Wall time: x 1 s" in table
