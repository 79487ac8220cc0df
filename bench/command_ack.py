"""Command ack: p99 < 100 ms for 50 concurrent slash commands while the bot is busy.

The bot runs as ``polaris-watchdog run`` in a subprocess (:class:`bench.botproc.BotProcess`),
configured by environment variables to watch the simulator (another subprocess, 5,000
jobs, metric rules on every streaming job, limits lifted so the metrics sweep runs flat
out) and post to a Slack stand-in served here. Bursts of 50 signed ``/polaris help``
commands are fired at once at ``/slack/commands`` and each request's time to its HTTP
answer (the ack) is measured from this side, in three phases:

- *listing*: as soon as the simulator sees a listing request (a tick started);
- *judging*: once the tick's listing requests stopped (it parses and judges 5,000 jobs,
  then commits), while the tick has not ended;
- *sweeping*: between two ticks, while only the sweep's metrics requests run.

A burst inside a tick counts only when the tick had not ended (``watchdog_ticks_total``
unchanged) by the time its last answer arrived.

``help`` is answered inline; every other command spawns background work that answers on
the ``response_url``, which ``run`` only accepts from Slack's hosts and ``SLACK_API_URL``'s
origin — a benchmark must not reach the internet, and the ack path (signature, parsing,
gate, reply) is the same for all of them.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bench.botproc import BotProcess, by_project
from bench.harness import BOT_TOKEN, CHANNEL, SIGNING_SECRET, STREAMING_RULES
from bench.report import Figure, Options, announce, median, percentile, say
from bench.simproc import SimProcess
from watchdog.devtools.demo import sign
from watchdog.devtools.slack_standin.server import SlackStandIn, serve

NAME = "ack"
TITLE = "Command ack"
BURST = 50
INTERVAL = "6s"
TARGET_MS = 100.0
_TIMEOUT = 300.0


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


async def _ticks(bot: BotProcess) -> float:
    return sum(by_project(await bot.scrape(), "watchdog_ticks_total").values())


async def _listings(sim: SimProcess) -> int:
    return int((await sim.stats())["by_endpoint"].get("list", 0))


async def _listing_stopped(sim: SimProcess, deadline: float) -> None:
    """Return once no listing request arrived for 50 ms: the tick parses and judges."""
    before = await _listings(sim)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = await _listings(sim)
        if now == before:
            return
        before = now


async def _bursts_while_busy(
    bot: BotProcess, sim: SimProcess, standin: SlackStandIn, wanted: int
) -> list[tuple[str, list[float]]]:
    """Bursts in each phase of a busy bot, ``wanted`` of them in all."""
    bursts: list[tuple[str, list[float]]] = []
    connector = aiohttp.TCPConnector(limit=2 * BURST)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + _TIMEOUT
        listings = await _listings(sim)
        while len(bursts) < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(bursts)} bursts landed where they should")
            await asyncio.sleep(0.01)
            now_listings = await _listings(sim)
            started, listings = now_listings > listings, now_listings
            if not started:
                continue
            tick_count = await _ticks(bot)
            for phase in ("listing", "judging"):
                if phase == "judging":
                    await _listing_stopped(sim, deadline)
                latencies = await _burst(session, bot.url, standin)
                inside = await _ticks(bot) == tick_count
                say(
                    f"    burst while {phase}: p50 {median(latencies) * 1000:.1f} ms, "
                    f"max {max(latencies) * 1000:.1f} ms"
                    + ("" if inside else " (the tick ended first: not counted)")
                )
                if not inside:
                    break
                bursts.append((phase, latencies))
            while await _ticks(bot) == tick_count:  # let this tick end first
                if time.monotonic() > deadline:
                    raise TimeoutError("a tick did not end")
                await asyncio.sleep(0.05)
            # Halfway to the next tick only the sweep runs.
            await asyncio.sleep(2.0)
            before = await sim.stats()
            latencies = await _burst(session, bot.url, standin)
            after = await sim.stats()
            sweeping = after["by_endpoint"].get("metrics", 0) > before["by_endpoint"].get(
                "metrics", 0
            ) and after["by_endpoint"].get("list", 0) == before["by_endpoint"].get("list", 0)
            say(
                f"    burst while sweeping: p50 {median(latencies) * 1000:.1f} ms, "
                f"max {max(latencies) * 1000:.1f} ms"
                + ("" if sweeping else " (not during the sweep alone: not counted)")
            )
            if sweeping:
                bursts.append(("sweeping", latencies))
            listings = await _listings(sim)
    return bursts


async def run(options: Options) -> list[Figure]:
    wanted = max(6, 3 * options.runs)
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        workdir = Path(tmp)
        standin = SlackStandIn(bot_token=BOT_TOKEN, channels={CHANNEL})
        standin_runner = await serve(standin, "127.0.0.1", 0)
        try:
            async with SimProcess("large", options.jobs, workdir=workdir) as sim:
                await sim.faults(latency=0.020)
                bot = BotProcess(workdir, sim, standin.api_url, STREAMING_RULES, interval=INTERVAL)
                say(
                    f"  `polaris-watchdog run` subprocess, {options.jobs:,} jobs, interval "
                    f"{INTERVAL}, limits lifted (the sweep runs flat out); {wanted} bursts of "
                    f"{BURST} signed commands"
                )
                async with bot:
                    bursts = await _bursts_while_busy(bot, sim, standin, wanted)
        finally:
            await standin_runner.cleanup()
    every = [latency * 1000 for _, burst in bursts for latency in burst]
    phases = Counter(phase for phase, _ in bursts)
    p50, p99, worst = percentile(every, 50), percentile(every, 99), max(every)
    return [
        announce(
            Figure(
                TITLE,
                f"ack of {BURST} concurrent slash commands, {options.jobs:,} jobs, during the "
                f"listing tick and the sweep ({phases['listing']} bursts while listing, "
                f"{phases['judging']} while judging, {phases['sweeping']} while only sweeping)",
                f"p99 {p99:.0f} ms (p50 {p50:.0f} ms, max {worst:.0f} ms)",
                f"p99 < {TARGET_MS:g} ms",
                p99 < TARGET_MS,
            )
        )
    ]
