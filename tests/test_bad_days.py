"""The real bot process (``python -m watchdog run``) on bad days: it watches, or it says
that it cannot — in ``/healthz`` (503 with the reason), in a meta-alert when it can post
one, and in a log line — and SIGTERM still ends it with exit 0 and no traceback.

The Polaris simulator and the Slack stand-in run in the test process; the bot is a child
process watched from outside (:mod:`bench.botwatch`), so its memory, exit code and logs are
its own. A disk that refuses writes is played without privileges by lowering the bot's
``RLIMIT_FSIZE`` (every write that grows a file fails with ``EFBIG``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bench.botwatch import WatchedBot, bot_env
from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.slack_standin.server import SlackStandIn

pytestmark = pytest.mark.slow

RULES = """
[watch]
interval = "1s"
no_data_after = "3s"
page_size = 500
[slack]
channel = "C0ALERTS"
operators = ["U0OPS"]
[[rules]]
name = "job-unhealthy"
kind = "health"
[[rules]]
name = "job-failed"
kind = "execution"
status = ["failed"]
"""
FALSE_LEASE_LOSS = "another replica holds the lease"


@dataclass
class Day:
    bot: WatchedBot
    sim: Simulator
    standin: SlackStandIn
    state: Path

    async def healthy(self) -> bool:
        got = await self.bot.healthz()
        return got is not None and got[0] == 200 and got[1].get("detail") == "ok"

    async def problem(self, kind: str) -> str | None:
        """The /healthz problem of ``kind`` while /healthz answers 503, else None."""
        got = await self.bot.healthz()
        if got is None or got[0] != 503:
            return None
        return next((p["problem"] for p in got[1]["problems"] if p["kind"] == kind), None)

    def posted(self, fragment: str) -> bool:
        return any(fragment in m.text for m in self.standin.messages.values())

    async def stop_cleanly(self) -> None:
        """SIGTERM: exit 0 within 10 s, no traceback, no false lease loss in the logs."""
        code, seconds = await self.bot.stop(grace=15.0)
        log = self.bot.log_text()
        assert code == 0, f"exit {code}:\n{self.bot.log_tail()}"
        assert seconds < 10
        assert "Traceback" not in log
        assert FALSE_LEASE_LOSS not in log


@asynccontextmanager
async def bad_day(
    tmp_path: Path, rules: str = RULES, *, own_log: bool = False, state: str = "state/w.db"
) -> AsyncIterator[Day]:
    """The bot watching a simulated project (one job in error) and posting to the stand-in,
    healthy and with its first alert posted before the test breaks something."""
    sim = Simulator()
    sim.add_job(table="payments", behaviour="static_error")
    sim.add_job(table="orders")
    standin = SlackStandIn()
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(rules)
    state_path = tmp_path / state
    state_path.parent.mkdir(parents=True, exist_ok=True)
    async with TestServer(sim.app()) as polaris, TestServer(standin.app()) as slack:
        standin.bind(str(slack.make_url("")))
        env = bot_env(
            polaris_url=str(polaris.make_url("")),
            project_id=sim.project_id,
            api_key=sim.api_key,
            state=str(state_path),
            slack_url=standin.api_url,
        )
        async with WatchedBot(tmp_path, rules_file, env, own_log=own_log) as bot:
            day = Day(bot, sim, standin, state_path)
            await bot.until(day.healthy, 30, "a healthy bot")

            async def first_alert() -> bool:
                return day.posted("job-unhealthy")

            await bot.until(first_alert, 15, "the first alert")
            yield day


@pytest.mark.parametrize("own_log", [False, True], ids=["logs-elsewhere", "logs-on-that-disk"])
async def test_a_disk_that_refuses_writes_is_said_in_healthz_and_a_log_line(
    tmp_path: Path, own_log: bool
) -> None:
    """The state disk fills up (writes fail): /healthz answers 503 naming the state file,
    an error line says so once, no "another replica holds the lease" line appears, and
    SIGTERM exits 0 — also when the log file is on that disk (logging then loses lines
    instead of stopping the watch loop, which made SIGTERM exit 1)."""
    async with bad_day(tmp_path, own_log=own_log) as day:
        day.bot.limit_file_size(1)

        async def store_problem() -> bool:
            said = await day.problem("store")
            return said is not None and f"state file {day.state} refuses writes" in said

        await day.bot.until(store_problem, 10, "/healthz naming the state file")
        await asyncio.sleep(2)  # a few more ticks and lease rounds on the broken disk
        assert await store_problem()
        await day.stop_cleanly()
        if not own_log:
            said = [e for e in day.bot.named("watch.cannot_watch") if e["kind"] == "store"]
            assert said and all(e["level"] == "error" for e in said)
            assert "refuses writes" in said[0]["problem"]


def _chattr_works(path: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        return False
    probe = path / "probe"
    probe.write_text("x")
    try:
        return subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        probe.unlink()


async def test_a_state_file_turned_read_only_is_said_and_shutdown_stays_clean(
    tmp_path: Path,
) -> None:
    """The state file and its journal refuse writes (immutable, as root can make them):
    /healthz 503 naming the file, and a clean SIGTERM."""
    if not _chattr_works(tmp_path):
        pytest.skip("needs root and a file system with chattr +i")
    async with bad_day(tmp_path) as day:
        files = [day.state, day.state.with_name(day.state.name + "-wal")]
        try:
            for file in files:
                subprocess.run(["chattr", "+i", str(file)], check=True)

            async def store_problem() -> bool:
                said = await day.problem("store")
                return said is not None and "refuses writes" in said

            await day.bot.until(store_problem, 10, "/healthz naming the state file")
            await day.stop_cleanly()
        finally:
            for file in files:
                subprocess.run(["chattr", "-i", str(file)], check=False)


async def test_a_state_file_deleted_while_running_is_said_not_run_on(tmp_path: Path) -> None:
    """Someone deletes the state file: the bot does not go on writing into the void or a
    fresh file; /healthz says so (503, "deleted or replaced") and a log line too."""
    async with bad_day(tmp_path) as day:
        day.state.unlink()

        async def gone() -> bool:
            said = await day.problem("store")
            return said is not None and "was deleted or replaced" in said

        await day.bot.until(gone, 10, "/healthz saying the state file is gone")
        await asyncio.sleep(1.5)
        assert not day.state.exists()
        await day.stop_cleanly()
        assert any(
            "deleted or replaced" in e["problem"] for e in day.bot.named("watch.cannot_watch")
        )


async def test_an_endless_listing_ends_the_tick_within_bounds_and_is_posted(
    tmp_path: Path,
) -> None:
    """Polaris lists new jobs on every page, for ever: each tick stops at its share of
    max_jobs (or the deadline), /healthz says "listing", the meta-alert is posted after
    no_data_after, and memory stays bounded."""
    async with bad_day(
        tmp_path, RULES.replace("no_data_after", "max_jobs = 4000\nno_data_after")
    ) as day:
        day.sim.faults.configure({"endless": "new"})

        async def listing() -> bool:
            return await day.problem("listing") is not None

        await day.bot.until(listing, 15, "/healthz saying listings are incomplete")

        async def meta_alert() -> bool:
            return day.posted("job listings could not be read")

        await day.bot.until(meta_alert, 15, "the meta-alert about the listings")
        assert day.bot.peak_rss_mib() < 200
        await day.stop_cleanly()


async def test_a_200_mb_listing_is_refused_at_the_cap_with_memory_to_spare(
    tmp_path: Path,
) -> None:
    """A listing page of 200 MB is refused once its cap is passed: the bot's memory stays
    far below a 256 MiB container limit, and it says Polaris cannot be read."""
    async with bad_day(tmp_path) as day:
        day.sim.faults.configure({"huge_mb": 200, "endpoints": ["list"]})

        async def refused() -> bool:
            said = await day.problem("polaris")
            return said is not None and "answer larger than" in said

        await day.bot.until(refused, 20, "/healthz saying the answer was too large")
        await asyncio.sleep(2)  # a few more refusals: memory must not creep up
        assert day.bot.peak_rss_mib() < 160
        await day.stop_cleanly()


async def test_an_emptied_rules_file_on_sighup_is_refused_and_the_watch_goes_on(
    tmp_path: Path,
) -> None:
    """SIGHUP with an emptied rules file: refused at error with FILE:LINE, and the bot
    keeps watching with the old rules (a new failed job is still posted)."""
    async with bad_day(tmp_path) as day:
        (tmp_path / "rules.toml").write_text("")
        day.bot.signal(signal.SIGHUP)

        async def refused() -> bool:
            return bool(day.bot.named("rules.reload_refused"))

        await day.bot.until(refused, 10, "the reload refused")
        [said] = day.bot.named("rules.reload_refused")
        assert said["level"] == "error"
        assert any(p.startswith(f"{tmp_path / 'rules.toml'}:1: ") for p in said["problems"])
        job = day.sim.add_job(type="batch", table="backfill")
        day.sim.set_execution(job.id, "failed")

        async def still_watching() -> bool:
            return day.posted("job-failed")

        await day.bot.until(still_watching, 10, "an alert under the old rules")
        assert await day.healthy()
        await day.stop_cleanly()
