"""Figure 5 — command ack: p99 < 100 ms for 50 concurrent slash commands during a tick.

The bot runs as ``polaris-watchdog run`` in a subprocess, configured by environment
variables to watch the simulator (another subprocess, 5,000 jobs) and post to a Slack
stand-in served here. A tick is detected from the simulator's request count rising; while
it runs (until the bot's ``watchdog_ticks_total`` moves) bursts of 50 signed
``/polaris help`` commands are fired at once at ``/slack/commands``, and each request's
time to its HTTP answer (the ack) is measured from this side. Each tick gets one burst
while it fetches metrics and one once the requests stop (evaluation, commit, Slack
delivery); a burst counts only when the tick had not ended by the time its last answer
arrived.

``help`` is answered inline; every other command spawns background work that answers on
the ``response_url``, which ``run`` only accepts from ``https://hooks.slack.com/`` — a
benchmark must not reach the internet, and the ack path (signature, parsing, gate, reply)
is the same for all of them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bench.harness import BOT_TOKEN, CHANNEL, SIGNING_SECRET, STREAMING_RULES, rules_text
from bench.report import Figure, Options, announce, median, percentile, say
from bench.simproc import SimProcess, cli, free_port, stop_process
from watchdog.devtools.demo import sign
from watchdog.devtools.slack_standin.server import SlackStandIn, serve

NAME = "ack"
TITLE = "Command ack"
BURST = 50
INTERVAL = "6s"
TARGET_MS = 100.0
_TIMEOUT = 240.0


class BotProcess:
    """``polaris-watchdog run`` with its configuration in environment variables."""

    def __init__(self, workdir: Path, sim: SimProcess, slack_api_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = workdir / "rules.toml"
        rules.write_text(rules_text(STREAMING_RULES, interval=INTERVAL), "utf-8")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WATCHDOG_"))},
            "POLARIS_API_URL": sim.url,
            "POLARIS_PROJECT_ID": sim.project_id,
            "POLARIS_API_KEY": sim.api_key.get_secret_value(),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_api_url,
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_LISTEN": f"127.0.0.1:{self.port}",
            "WATCHDOG_STATE": str(workdir / "state.db"),
            "WATCHDOG_LOG_FORMAT": "json",
        }
        self.log = workdir / "bot.log"
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *cli(), "run", env=self.env, cwd=self.workdir, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"bot exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                async with session.get(self.url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the bot did not start within 60 s")
            await asyncio.sleep(0.1)  # polling a child process: nothing to await

    async def stop(self) -> int:
        return await stop_process(self.proc) if self.proc is not None else 0

    async def ticks(self, session: aiohttp.ClientSession) -> float:
        """``watchdog_ticks_total`` summed over outcomes, from ``GET /metrics``."""
        async with session.get(self.url + "/metrics") as resp:
            text = await resp.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("watchdog_ticks_total{")
        )


async def _burst(session: aiohttp.ClientSession, url: str, standin: SlackStandIn) -> list[float]:
    """50 signed ``/polaris help`` at once; each one's seconds to its answer."""

    async def one(index: int) -> float:
        body = urlencode(
            {
                "team_id": "TBENCH",
                "channel_id": CHANNEL,
                "user_id": f"UBENCH{index:03d}",
                "user_name": "bench",
                "command": "/polaris",
                "text": "help",
                "trigger_id": f"trigger{index}",
                "response_url": standin.response_url(f"ack{index}"),
            }
        )
        headers = sign(body, SIGNING_SECRET)
        started = time.perf_counter()
        async with session.post(url + "/slack/commands", data=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"command answered {resp.status}")
        return time.perf_counter() - started

    return list(await asyncio.gather(*(one(i) for i in range(BURST))))


async def _quiet_requests(sim: SimProcess, deadline: float) -> None:
    """Return once the simulator saw no new request for one poll: the fetching is over."""
    before = (await sim.stats())["requests"]
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        now = (await sim.stats())["requests"]
        if now == before:
            return
        before = now


async def _bursts_during_ticks(
    bot: BotProcess, sim: SimProcess, standin: SlackStandIn, wanted: int
) -> list[tuple[str, list[float]]]:
    """Bursts inside ticks: one while a tick fetches, one once it evaluates and commits."""
    bursts: list[tuple[str, list[float]]] = []
    connector = aiohttp.TCPConnector(limit=2 * BURST)
    async with aiohttp.ClientSession(connector=connector) as session:
        await bot.start(session)
        deadline = time.monotonic() + _TIMEOUT
        requests = (await sim.stats())["requests"]
        while len(bursts) < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(bursts)} bursts landed inside a tick")
            await asyncio.sleep(0.02)
            now_requests = (await sim.stats())["requests"]
            rising, requests = now_requests > requests, now_requests
            if not rising:
                continue
            tick_count = await bot.ticks(session)
            for phase in ("fetching", "evaluating"):
                if len(bursts) >= wanted:
                    break
                if phase == "evaluating":
                    await _quiet_requests(sim, deadline)
                latencies = await _burst(session, bot.url, standin)
                inside = await bot.ticks(session) == tick_count
                say(
                    f"    burst while {phase}: p50 {median(latencies) * 1000:.1f} ms, "
                    f"max {max(latencies) * 1000:.1f} ms"
                    + ("" if inside else " (the tick ended first: not counted)")
                )
                if not inside:
                    break
                bursts.append((phase, latencies))
            while await bot.ticks(session) == tick_count:  # let this tick end first
                if time.monotonic() > deadline:
                    raise TimeoutError("a tick did not end")
                await asyncio.sleep(0.05)
            requests = (await sim.stats())["requests"]
    return bursts


async def run(options: Options) -> list[Figure]:
    wanted = max(5, 2 * options.runs)
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        workdir = Path(tmp)
        standin = SlackStandIn(bot_token=BOT_TOKEN, channels={CHANNEL})
        standin_runner = await serve(standin, "127.0.0.1", 0)
        try:
            async with SimProcess("large", options.jobs, workdir=workdir) as sim:
                bot = BotProcess(workdir, sim, standin.api_url)
                say(
                    f"  `polaris-watchdog run` subprocess, {options.jobs:,} jobs, interval "
                    f"{INTERVAL}; {wanted} bursts of {BURST} signed commands inside ticks"
                )
                try:
                    bursts = await _bursts_during_ticks(bot, sim, standin, wanted)
                finally:
                    await bot.stop()
        finally:
            await standin_runner.cleanup()
    every = [latency * 1000 for _, burst in bursts for latency in burst]
    phases = Counter(phase for phase, _ in bursts)
    p50, p99, worst = percentile(every, 50), percentile(every, 99), max(every)
    return [
        announce(
            Figure(
                TITLE,
                f"ack of {BURST} concurrent slash commands during a {options.jobs:,}-job tick "
                f"({phases['fetching']} bursts while fetching, {phases['evaluating']} while "
                "evaluating)",
                f"p99 {p99:.0f} ms (p50 {p50:.0f} ms, max {worst:.0f} ms)",
                f"p99 < {TARGET_MS:g} ms",
                p99 < TARGET_MS,
            )
        )
    ]
