"""Reliability — the bad days of issue "Never silently blind", each against the real bot.

Every case starts ``python -m watchdog run`` afresh (:mod:`bench.botwatch`) on a SQLite
state file, against the Polaris simulator and the Slack stand-in (served from this
process), breaks one thing, and reads what an operator would read: ``/healthz``,
``/metrics``, the bot's JSON log lines, its memory from ``/proc``, its exit code. One
figure (or a few) per case, each with its target. The principle held: the bot either
watches or says that it cannot — in ``/healthz``, in a meta-alert when it can post one,
and in a log line.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from aiohttp.test_utils import TestServer

from bench.botwatch import WatchedBot, bot_env
from bench.report import Figure, Options, announce, say
from watchdog.devtools.demo import sign
from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.slack_standin.server import SlackStandIn

NAME = "reliability"
TITLE = "Reliability"
SECRET = "reliability-signing-secret"
TEN_SECONDS = aiohttp.ClientTimeout(total=10)
META = "Polaris API problem"  # the meta-alert's title: the bot saying it cannot watch
OPERATOR = "U0OPS"
RULES = f"""
[watch]
interval = "{{interval}}"
no_data_after = "{{no_data}}"
[slack]
channel = "C0ALERTS"
operators = ["{OPERATOR}"]
[[rules]]
name = "job-unhealthy"
kind = "health"
[[rules]]
name = "job-failed"
kind = "execution"
status = ["failed"]
"""
PARTIAL_TICKS = 'watchdog_ticks_total{outcome="partial",project="default"}'
TICK_SECONDS = 'watchdog_tick_duration_seconds_sum{project="default"}'
TICK_COUNT = 'watchdog_tick_duration_seconds_count{project="default"}'
REPLAYED = 'watchdog_commands_total{command="commands",outcome="replayed"}'
METRIC_RULES = """
[[rules]]
name = "skips-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 10
within = "1m"
[[rules]]
name = "budget"
kind = "budget"
percent = 50
"""


@dataclass
class Case:
    bot: WatchedBot
    sim: Simulator
    standin: SlackStandIn
    state: Path
    rules: Path

    async def problem(self, kind: str) -> str | None:
        got = await self.bot.healthz()
        if got is None or got[0] != 503:
            return None
        return next((p["problem"] for p in got[1]["problems"] if p["kind"] == kind), None)

    async def seconds_until(
        self, check: Callable[[], Awaitable[bool]], timeout: float, what: str
    ) -> float:
        return await self.bot.until(check, timeout, what)

    def posted(self, fragment: str) -> int:
        return sum(fragment in m.text for m in self.standin.messages.values())

    async def slash(self, http: aiohttp.ClientSession, text: str) -> tuple[int, float]:
        body = urlencode(
            {
                "user_id": OPERATOR,
                "channel_id": "C0ALERTS",
                "command": "/polaris",
                "text": text,
                "response_url": self.standin.response_url(f"r{time.monotonic_ns()}"),
            }
        )
        started = time.perf_counter()
        async with http.post(
            f"{self.bot.url}/slack/commands", data=body, headers=sign(body, SECRET)
        ) as resp:
            await resp.read()
            return resp.status, time.perf_counter() - started


@asynccontextmanager
async def case(
    workdir: Path,
    *,
    interval: float = 1.0,
    no_data: float = 3.0,
    extra: str = "",
    jobs: int = 0,
    own_log: bool = False,
) -> AsyncIterator[Case]:
    """A healthy bot whose first alert (one job in error) is posted."""
    sim = Simulator()
    sim.add_job(table="payments", behaviour="static_error")
    sim.add_job(table="orders")
    for n in range(jobs):
        sim.add_job(table=f"t{n}", type="streaming")
    standin = SlackStandIn()
    rules = workdir / "rules.toml"
    rules.write_text(RULES.format(interval=f"{interval}s", no_data=f"{no_data}s") + extra)
    state = workdir / "state" / "watchdog.db"
    state.parent.mkdir(parents=True, exist_ok=True)
    async with TestServer(sim.app()) as polaris, TestServer(standin.app()) as slack:
        standin.bind(str(slack.make_url("")))
        env = bot_env(
            polaris_url=str(polaris.make_url("")),
            project_id=sim.project_id,
            api_key=sim.api_key,
            state=str(state),
            slack_url=standin.api_url,
            signing_secret=SECRET,
        )
        async with WatchedBot(workdir, rules, env, own_log=own_log) as bot:
            running = Case(bot, sim, standin, state, rules)

            async def started() -> bool:
                got = await bot.healthz()
                return got is not None and got[0] == 200 and running.posted("job-unhealthy") > 0

            await bot.until(started, 30, "a healthy bot with its first alert posted")
            yield running


def figure(name: str, measured: str, target: str, passed: bool | None) -> Figure:
    return announce(Figure(TITLE, name, measured, target, passed))


async def _stop(c: Case) -> tuple[int | None, float, bool]:
    """SIGTERM: exit code, seconds, and whether the log is free of tracebacks and of
    false "another replica holds the lease" lines."""
    code, seconds = await c.bot.stop(grace=15.0)
    log = c.bot.log_text()
    return code, seconds, "Traceback" not in log and "another replica holds the lease" not in log


# ---- the cases -------------------------------------------------------------------------


async def endless_listing(work: Path) -> list[Figure]:
    interval, no_data = 5.0, 12.0
    async with case(work, interval=interval, no_data=no_data) as c:
        before = c.bot.rss_mib()
        c.sim.faults.configure({"endless": "new"})
        faulted = time.monotonic()
        said = await c.seconds_until(lambda: _has(c.problem("listing")), 30, "listing problem")
        await asyncio.sleep(3 * interval)
        # Each listing of a tick starts at offset 0: pages per listing, over several ticks.
        queries = [q for _, _, path, q in c.sim.stats.request_log if path.endswith("/jobs")]
        starts = sum("paginationOffset=0" in q for q in queries)
        pages = len(queries) / max(starts, 1)
        ticks = await c.bot.metric(PARTIAL_TICKS) or 0
        seconds = await c.bot.metric(TICK_SECONDS) or 0.0
        count = await c.bot.metric(TICK_COUNT) or 1.0

        async def meta() -> bool:
            return c.posted("job listings could not be read") > 0

        await c.seconds_until(meta, 30, "the meta-alert")
        posted = time.monotonic() - faulted
        peak = c.bot.peak_rss_mib()
        code, _, clean = await _stop(c)
    return [
        figure(
            "endless listing: pages read per listing (2 listings a tick, page_size 500)",
            f"{pages:.1f} over {starts} listings ({ticks:.0f} ticks, {seconds / count:.1f} s "
            "a tick)",
            "≤ 20 (max_jobs 20,000 / 2 listings / 500); tick ≤ deadline 10 s",
            pages <= 20.5 and seconds / count <= 10.5,
        ),
        figure(
            "endless listing: /healthz 503 'listing' after / meta-alert posted after",
            f"{said:.1f} s / {posted:.1f} s",
            f"≤ deadline {2 * interval:g} s + interval / ≤ no_data_after {no_data:g} s "
            "+ 2 intervals",
            said <= 3 * interval + 1 and posted <= no_data + 2 * interval + 2,
        ),
        figure(
            "endless listing: peak RSS",
            f"{peak:.0f} MiB (from {before:.0f} MiB)",
            "≤ 200 MiB",
            peak <= 200,
        ),
        figure(
            "endless listing: SIGTERM", f"exit {code}", "exit 0, no traceback", code == 0 and clean
        ),
    ]


async def huge_listing(work: Path) -> list[Figure]:
    async with case(work) as c:
        c.sim.faults.configure({"huge_mb": 200, "endpoints": ["list"]})

        async def refused() -> bool:
            said = await c.problem("polaris")
            return said is not None and "answer larger than" in said

        said = await c.seconds_until(refused, 30, "the refusal")
        await asyncio.sleep(5)
        peak, now = c.bot.peak_rss_mib(), c.bot.rss_mib()
        code, _, clean = await _stop(c)
    return [
        figure(
            "200 MB listing: refused at the page cap (31.25 MiB); /healthz 503 after",
            f"{said:.1f} s; peak RSS {peak:.0f} MiB, {now:.0f} MiB after 5 s more",
            "peak RSS ≤ 128 MiB (far below 256)",
            peak <= 128 and code == 0 and clean,
        )
    ]


async def many_rules(work: Path) -> list[Figure]:
    lines = []
    for n in range(10_000):
        lines.append(f'[[rules]]\nname = "r{n}"\nkind = "health"\nmatch = {{ table = ["t{n}"] }}\n')
    async with case(work) as c, aiohttp.ClientSession(timeout=TEN_SECONDS) as http:
        c.rules.write_text(c.rules.read_text() + "".join(lines))
        acks: list[float] = []
        c.bot.signal(signal.SIGHUP)
        started = time.monotonic()
        # Commands every 20 ms until the new rules are planned (30 s at most): their acks
        # are turns of the bot's event loop, so the slowest is its longest stall.
        while len(c.bot.named("watch.planned")) < 2 and time.monotonic() - started < 30:
            try:
                status, seconds = await c.slash(http, "help")
                acks.append(seconds if status == 200 else 10.0)
            except TimeoutError:
                acks.append(10.0)  # the client gave up: stalled at least that long
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
        planned = c.bot.named("watch.planned")[1:]
        code, _, clean = await _stop(c)
    ms = planned[-1]["ms"] if planned else None
    shown = (
        f"{ms:.0f} ms, {planned[-1]['listings']} listing(s); SIGHUP to planned {took:.1f} s"
        if ms is not None
        else f"not planned within {took:.0f} s"
    )
    return [
        figure(
            "10,000 rules (each naming its own table): planning",
            shown,
            "≤ 1,000 ms",
            ms is not None and ms <= 1000,
        ),
        figure(
            "10,000 rules: slash-command acks during the reload (max event-loop stall)",
            f"max {max(acks) * 1000:.0f} ms over {len(acks)} commands",
            "≤ 500 ms (parsed on the loop: the whole reload)",
            max(acks) <= 0.5 and code == 0 and clean,
        ),
    ]


async def sighup_burst(work: Path) -> list[Figure]:
    async with case(work) as c:
        before = len(c.bot.named("watch.planned"))
        c.rules.write_text(c.rules.read_text() + "\n# edited\n")
        for _ in range(100):
            c.bot.signal(signal.SIGHUP)
        await asyncio.sleep(3)
        parsed = len(c.bot.named("rules.reloaded")) + len(c.bot.named("rules.reload_refused"))
        unchanged = len(c.bot.named("rules.unchanged"))
        replans = len(c.bot.named("watch.planned")) - before
        code, _, clean = await _stop(c)
    return [
        figure(
            "100 SIGHUPs in a burst: files parsed / re-plans",
            f"{parsed} / {replans} ({unchanged} more found the file unchanged)",
            "≤ 2 / ≤ 2",
            parsed <= 2 and replans <= 2 and code == 0 and clean,
        )
    ]


async def replay(work: Path) -> list[Figure]:
    async with case(work) as c, aiohttp.ClientSession(timeout=TEN_SECONDS) as http:
        job = c.sim.add_job(table="clicks", type="streaming")
        body = urlencode(
            {
                "user_id": OPERATOR,
                "channel_id": "C0ALERTS",
                "command": "/polaris",
                "text": f"pause {job.id}",
                "response_url": c.standin.response_url("replayed"),
            }
        )
        headers = sign(body, SECRET)
        for _ in range(3):
            async with http.post(f"{c.bot.url}/slack/commands", data=body, headers=headers) as resp:
                await resp.read()
        await asyncio.sleep(1.5)
        executed = sum(1 for j, _ in c.sim.stats.status_changes if j == job.id)
        counted = await c.bot.metric(REPLAYED)
        code, _, clean = await _stop(c)
    return [
        figure(
            "replayed signed `pause` (3 posts within 5 min): executions",
            f"{executed} of 3 ({counted or 0:.0f} counted as replayed)",
            "1 of 3",
            executed == 1 and code == 0 and clean,
        )
    ]


async def full_disk(work: Path, *, own_log: bool) -> list[Figure]:
    async with case(work, own_log=own_log) as c:
        c.bot.limit_file_size(1)

        async def said() -> bool:
            problem = await c.problem("store")
            return problem is not None and "refuses writes" in problem

        seconds = await c.seconds_until(said, 30, "/healthz naming the state file")
        await asyncio.sleep(5)
        still = await said()
        lines = [e for e in c.bot.named("watch.cannot_watch") if e["kind"] == "store"]
        code, stop_s, clean = await _stop(c)
    where = "log file on the same disk" if own_log else "logs elsewhere"
    return [
        figure(
            f"state disk refuses writes ({where}): /healthz",
            f"503 naming the file after {seconds:.1f} s (still after 5 s: {still})"
            + ("" if own_log else f"; {len(lines)} error line(s)"),
            "503 within 2 intervals, one log line",
            seconds <= 2.5 and still and (own_log or len(lines) >= 1),
        ),
        figure(
            f"state disk refuses writes ({where}): SIGTERM",
            f"exit {code} in {stop_s:.2f} s; traceback or false lease loss: {not clean}",
            "exit 0, none",
            code == 0 and clean,
        ),
    ]


async def read_only_state(work: Path) -> list[Figure]:
    """The state file and its journal made immutable (root, a file system with chattr):
    every write to them fails with EPERM, as on a read-only disk."""
    probe = work / "probe"
    probe.write_text("x")
    can = shutil.which("chattr") and subprocess.run(["chattr", "+i", str(probe)]).returncode == 0
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
    if not can:
        return [figure("read-only state file", "not measured: needs root and chattr", "-", None)]
    async with case(work) as c:
        files = [c.state, c.state.with_name(c.state.name + "-wal")]
        try:
            for file in files:
                subprocess.run(["chattr", "+i", str(file)], check=True)

            async def said() -> bool:
                problem = await c.problem("store")
                return problem is not None and "refuses writes" in problem

            seconds = await c.seconds_until(said, 30, "/healthz naming the state file")
            code, stop_s, clean = await _stop(c)
        finally:
            for file in files:
                subprocess.run(["chattr", "-i", str(file)], capture_output=True)
    return [
        figure(
            "read-only state file: /healthz / SIGTERM",
            f"503 naming the file after {seconds:.1f} s / exit {code} in {stop_s:.2f} s",
            "503 within 2 intervals / exit 0, no traceback",
            seconds <= 2.5 and code == 0 and clean,
        )
    ]


async def deleted_state(work: Path) -> list[Figure]:
    async with case(work) as c:
        c.state.unlink()

        async def said() -> bool:
            problem = await c.problem("store")
            return problem is not None and "deleted or replaced" in problem

        seconds = await c.seconds_until(said, 30, "/healthz saying the file is gone")
        recreated = c.state.exists()
        code, _, clean = await _stop(c)
    return [
        figure(
            "state file deleted while running: /healthz 503 'deleted or replaced' after",
            f"{seconds:.1f} s; file silently recreated: {recreated}",
            "≤ 2 intervals; no",
            seconds <= 2.5 and not recreated and code == 0 and clean,
        )
    ]


async def emptied_rules(work: Path) -> list[Figure]:
    async with case(work) as c:
        c.rules.write_text("")
        c.bot.signal(signal.SIGHUP)
        await c.seconds_until(
            lambda: _true(bool(c.bot.named("rules.reload_refused"))), 10, "refusal"
        )
        job = c.sim.add_job(type="batch", table="backfill")
        c.sim.set_execution(job.id, "failed")
        seconds = await c.seconds_until(lambda: _true(c.posted("job-failed") > 0), 10, "an alert")
        code, _, clean = await _stop(c)
    return [
        figure(
            "emptied rules file on SIGHUP",
            f"refused (FILE:1 at error); a new failure still posted after {seconds:.1f} s",
            "refused, old rules stay",
            code == 0 and clean,
        )
    ]


async def hostile_data(work: Path) -> list[Figure]:
    modes = ("negative", "nan", "infinity", "huge", "missing", "strings", "null")
    async with case(work, extra=METRIC_RULES, jobs=len(modes), no_data=3.0) as c:
        streams = [j for j in c.sim.jobs if j.table.startswith("t")]
        failed = [c.sim.add_job(type="batch", table=f"old{n}") for n in range(5)]
        for job in failed:
            c.sim.set_execution(job.id, "failed")
        c.sim.faults.configure(
            {
                "hostile_metrics": {job.id: mode for job, mode in zip(streams, modes, strict=True)},
                "bad_timestamps": {job.id: "garbage" for job in failed},
            }
        )
        await asyncio.sleep(12)
        hostile = {job.id for job in streams} | {job.id for job in failed}
        alerts = [m.text for m in c.standin.messages.values() if META not in m.text]
        # By job id, or by rule for a grouped post ("FIRING job-failed · 5 jobs"): only
        # the hostile jobs can fail or have metric alerts here.
        alerted = sum(
            any(h in text for h in hostile)
            or "job-failed" in text
            or (" jobs" in text and ("skips-rising" in text or "budget" in text))
            for text in alerts
        )
        meta = sum(
            META in m.text and "no counter can have" in m.text for m in c.standin.messages.values()
        )
        bad_lines = len(c.bot.named("watch.bad_metrics"))
        age_lines = len(c.bot.named("watch.job_age_unknown"))
        code, _, clean = await _stop(c)
    return [
        figure(
            f"impossible counters ({len(modes)} jobs) and unreadable ages (5 failed jobs), 12 s",
            f"{alerted} alerts; {bad_lines} + {age_lines} log lines; meta-alert naming the "
            f"bad data: {meta}",
            f"0 alerts; one line per job ({len(modes)} + 5); 1",
            alerted == 0
            and bad_lines == len(modes)
            and age_lines == 5
            and meta == 1
            and code == 0
            and clean,
        )
    ]


async def slack_hangs(work: Path) -> list[Figure]:
    async with case(work) as c:
        c.standin.hold(1000, methods=["chat.postMessage"])
        for n in range(3):
            job = c.sim.add_job(table=f"broken{n}", behaviour="static_error")
            assert job
        await asyncio.sleep(4)
        gauge = await c.bot.metric("watchdog_outbox_size")

        async def timed_out() -> bool:
            return bool(c.bot.named("slack.call_timed_out"))

        seconds = await c.seconds_until(timed_out, 40, "the timeout line")
        c.standin.release()
        code, _, clean = await _stop(c)
    return [
        figure(
            "Slack hangs: outbox gauge 4 s in / timeout logged after",
            f"{gauge:.0f} items / {seconds + 4:.0f} s",
            "> 0 (was 0) / ≤ 20 s Slack timeout + 5 s",
            (gauge or 0) > 0 and seconds + 4 <= 25 and code == 0 and clean,
        )
    ]


async def _has(problem: Awaitable[str | None]) -> bool:
    return await problem is not None


async def _true(value: bool) -> bool:
    return value


CASES: list[tuple[str, Callable[[Path], Awaitable[list[Figure]]]]] = [
    ("endless listing", endless_listing),
    ("200 MB listing", huge_listing),
    ("10,000 rules", many_rules),
    ("100 SIGHUPs", sighup_burst),
    ("replayed request", replay),
    ("full state disk", lambda w: full_disk(w, own_log=False)),
    ("full state disk, logs on it", lambda w: full_disk(w, own_log=True)),
    ("read-only state file", read_only_state),
    ("state file deleted", deleted_state),
    ("emptied rules file", emptied_rules),
    ("hostile data", hostile_data),
    ("Slack hangs", slack_hangs),
]


async def run(options: Options) -> list[Figure]:
    figures: list[Figure] = []
    for title, bench in CASES:
        say(f"  -- {title}")
        with tempfile.TemporaryDirectory(prefix="wd-reliability-") as work:
            try:
                figures += await bench(Path(work))
            except Exception as exc:  # one broken case must not hide the others' figures
                figures.append(
                    figure(title, f"failed: {type(exc).__name__}: {exc}"[:300], "-", False)
                )
    return figures
