"""``python -m bench.chaos [--scale N]``: the chaos scenario, longer, with its figures.

Runs the scenario of ``tests/test_chaos.py`` — the real bot as a subprocess against the
Polaris simulator and the Slack stand-in while Polaris answers 503 for a stretch, 429s,
hangs and malformed bodies, Slack is down or rate-limits, and the bot is SIGKILLed and
SIGTERMed — with every fault ``--scale`` times longer, and prints the figures as a
Markdown table for the README, then anything that went wrong. Exit 0 when nothing did
(no incident lost, duplicated or unresolved, nothing spurious, no crash or traceback).

``--ha`` runs the three-replica scenario of ``tests/test_chaos_ha.py`` instead (three
bot processes on a private PostgreSQL server; its own timeline, not scaled).

``run(scale, workdir)`` is the same for other benchmark scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The rig lives with the tests (pytest imports it as a top-level module from tests/);
# importing it under the same names keeps one copy of the scenario for both.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chaos_accounting import ChaosReport
from chaos_ha_accounting import HaReport
from chaos_ha_scenario import run_ha_chaos
from chaos_scenario import Timing, run_chaos
from pg_private import PrivatePostgres, find_bin_dir

from watchdog.logs import configure_logging


def run(scale: float, workdir: Path, *, patience: float = 30.0) -> ChaosReport:
    """One chaos run with faults ``scale`` times the test's; logs and state in ``workdir``."""
    # Waiting for a condition may take longer when the faults do.
    timing = Timing(scale=scale, patience=max(patience, patience * scale))
    return asyncio.run(run_chaos(workdir, timing, grace=30.0 * max(scale, 1.0)))


def run_ha(workdir: Path) -> HaReport:
    """One three-replica run (lease 2 s, interval 1 s, as the test); logs in ``workdir``."""
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        raise SystemExit(f"cannot run the three-replica scenario: {why}")

    async def go() -> HaReport:
        async with PrivatePostgres(bin_dir) as pg:
            return await run_ha_chaos(workdir, pg, lease=2.0, interval=1.0)

    return asyncio.run(go())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="The chaos scenario of tests/test_chaos.py, longer; figures as Markdown.",
    )
    parser.add_argument(
        "--scale", type=float, default=3.0, help="faults last this many times the test's (3)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep state and bot logs here (a temp dir)"
    )
    parser.add_argument(
        "--ha", action="store_true", help="three replicas on PostgreSQL (tests/test_chaos_ha.py)"
    )
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    # The simulator and stand-in log in this process: keep stdout for the table.
    configure_logging("console", level="warning", stream=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="polaris-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: ChaosReport | HaReport
    if args.ha:
        print(f"three-replica chaos run; bot logs in {workdir}", file=sys.stderr)
        report = run_ha(workdir)
        print("### Chaos run, three replicas on PostgreSQL\n")
    else:
        print(f"chaos run at scale {args.scale:g}; bot logs in {workdir}", file=sys.stderr)
        report = run(args.scale, workdir)
        print(f"### Chaos run (scale {args.scale:g})\n")
    print(report.markdown())
    problems = report.problems()
    if problems:
        print("\nWhat went wrong:\n")
        print("\n".join(f"- {line}" for line in problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
