"""Building the parts under test: rule sets, an in-process watcher, an in-process bot.

Everything is the real thing, wired the way :mod:`watchdog.app` wires it: one aiohttp
session, one :class:`~watchdog.polaris.client.PolarisClient` with the rules' concurrency and
rate, one :class:`~watchdog.store.sqlite.SqliteStore` in a temporary directory, a
:class:`~watchdog.watch.loop.Watcher` holding its project's lease. The in-process bot is
:func:`watchdog.app.build_app` served on loopback, posting to a
:class:`~watchdog.devtools.slack_standin.server.SlackStandIn`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bench.simproc import SimProcess
from watchdog.app import BOT, Bot, Options, build_app
from watchdog.devtools.slack_standin.server import SlackStandIn, serve
from watchdog.domain.alerts import DEFAULT_PROJECT
from watchdog.polaris.api import PolarisApi
from watchdog.polaris.client import PolarisClient
from watchdog.rules.holder import RulesHolder
from watchdog.rules.load import parse_ruleset
from watchdog.rules.ruleset import RuleSet
from watchdog.settings import Settings
from watchdog.store import Store
from watchdog.store.sqlite import SqliteStore
from watchdog.watch.loop import Watcher
from watchdog.watch.tick import TickReport

CHANNEL = "C0BENCH"
BOT_TOKEN = "xoxb-bench"
SIGNING_SECRET = "bench-signing-secret"
#: How long the bench's watchers hold their lease: longer than any benchmark runs.
LEASE = 24 * 3600.0

#: A health rule and metric rules that watch every streaming job.
STREAMING_RULES = """
[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"

[[rules]]
name = "skipped-rows-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "10m"
match = { type = "streaming" }

[[rules]]
name = "parse-error-ratio"
kind = "ratio"
above = 0.01
within = "15m"
match = { type = "streaming" }

[[rules]]
name = "stream-stalled"
kind = "stalled"
within = "10m"
match = { type = "streaming" }
"""

#: The issue's load: a health rule, and a ``rising`` rule on every streaming job, so the
#: sweep has one target per streaming job.
RISING_RULES = """
[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"

[[rules]]
name = "skipped-rows-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "10m"
match = { type = "streaming" }
"""

HEALTH_RULE = """
[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"
"""


def rules_text(
    body: str,
    *,
    interval: str = "30s",
    concurrency: int = 16,
    max_rate: float = 2000.0,
    page_size: int = 1000,
    timeout: str = "30s",
    projects: str = "",
) -> str:
    """A whole rules file: ``[watch]``, ``[slack]``, ``projects`` and the rules of ``body``."""
    return f"""
[watch]
interval = "{interval}"
concurrency = {concurrency}
max_rate = {max_rate!r}
page_size = {page_size}
timeout = "{timeout}"
no_data_after = "10m"

[slack]
channel = "{CHANNEL}"
operators = ["UBENCHOPS"]
{projects}
{body}"""


def ruleset(
    body: str,
    *,
    interval: str = "30s",
    concurrency: int = 16,
    max_rate: float = 2000.0,
    page_size: int = 1000,
    timeout: str = "30s",
) -> RuleSet:
    """:func:`rules_text` parsed and validated, as the bot would load it."""
    text = rules_text(
        body,
        interval=interval,
        concurrency=concurrency,
        max_rate=max_rate,
        page_size=page_size,
        timeout=timeout,
    )
    return parse_ruleset(text, "<bench>")


async def leading_watcher(
    api: PolarisApi,
    store: Store,
    rules: RuleSet,
    *,
    clock: Callable[[], float] = time.time,
) -> Watcher:
    """A Watcher of the default project holding its lease in ``store`` (nothing delivers
    its outbox: the null notifier of these figures)."""
    watcher = Watcher(
        project=DEFAULT_PROJECT, client=api, store=store, rules=RulesHolder(rules), clock=clock
    )
    term = await store.acquire_lease(DEFAULT_PROJECT, "bench", LEASE)
    if term is None:
        raise RuntimeError("the bench's store has another lease holder")
    await watcher.lead(term)
    return watcher


@asynccontextmanager
async def watcher_against(sim: SimProcess, rules: RuleSet, workdir: Path) -> AsyncIterator[Watcher]:
    """A real Watcher + PolarisClient + SqliteStore against ``sim``; nothing delivers.

    The watcher's loop is not started: a benchmark calls ``tick`` (the listings and the
    judgement) and ``sweep.sweep_once`` (one pass of the metrics) itself."""
    watch = rules.watch
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(100, watch.concurrency * 2)),
        headers={"User-Agent": "polaris-watchdog-bench"},
    )
    client = PolarisClient(
        session,
        sim.url,
        sim.project_id,
        sim.api_key,
        concurrency=watch.concurrency,
        max_rate=watch.max_rate,
        timeout=watch.timeout,
    )
    store = SqliteStore(workdir / f"state-{time.monotonic_ns()}.db")
    await store.open()
    try:
        yield await leading_watcher(client, store, rules)
    finally:
        await store.close()
        await session.close()


@dataclass
class TimedTick:
    project: str
    started: float  # time.monotonic()
    ended: float
    report: TickReport


@dataclass
class RunningBot:
    bot: Bot
    standin: SlackStandIn
    url: str
    ticks: list[TimedTick]

    @property
    def watcher(self) -> Watcher:
        """The watcher of the one project (single-project benchmarks)."""
        return self.bot.watchers[DEFAULT_PROJECT]


def _time_ticks(watcher: Watcher, ticks: list[TimedTick]) -> None:
    """Record when every tick ran: the loop looks ``tick`` up on the instance each time."""
    original: Callable[..., Awaitable[TickReport]] = watcher.tick

    async def timed(now: float, **kwargs: object) -> TickReport:
        started = time.monotonic()
        report = await original(now, **kwargs)
        ticks.append(TimedTick(watcher.project, started, time.monotonic(), report))
        return report

    watcher.tick = timed  # type: ignore[method-assign]


@asynccontextmanager
async def bot_in_process(
    sim: SimProcess, rules: RuleSet, workdir: Path
) -> AsyncIterator[RunningBot]:
    """``build_app`` served on loopback with a SqliteStore, posting to a Slack stand-in."""
    standin = SlackStandIn(bot_token=BOT_TOKEN, channels={CHANNEL})
    standin_runner = await serve(standin, "127.0.0.1", 0)
    assert standin.base_url is not None
    settings = Settings(
        POLARIS_API_URL=sim.url,
        POLARIS_PROJECT_ID=sim.project_id,
        POLARIS_API_KEY=sim.api_key,
        SLACK_BOT_TOKEN=SecretStr(BOT_TOKEN),
        SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
        SLACK_APP_TOKEN=None,
        SLACK_API_URL=standin.api_url,
        WATCHDOG_STATE=workdir / f"bot-{time.monotonic_ns()}.db",
        WATCHDOG_REPLICA="bench",
    )
    options = Options(response_url_prefixes=(standin.base_url,))
    app = build_app(settings, RulesHolder(rules), options)
    runner = web.AppRunner(app, access_log=None)
    # The watchers are built (and their first leases taken) during start-up; their loops
    # start ticking right after. Wrap ``tick`` before the first one runs.
    ticks: list[TimedTick] = []

    async def timing(app: web.Application) -> AsyncIterator[None]:
        for watcher in app[BOT].watchers.values():
            _time_ticks(watcher, ticks)
        yield

    app.cleanup_ctx.append(timing)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield RunningBot(app[BOT], standin, f"http://{host}:{port}", ticks)
    finally:
        await runner.cleanup()
        await standin_runner.cleanup()


async def wait_until(
    condition: Callable[[], bool], *, timeout: float, poll: float = 0.005, what: str = "condition"
) -> None:
    """Poll ``condition`` (state of another component, which offers no event) until true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(poll)


async def outbox_drained(store: Store, *, timeout: float, poll: float = 0.02) -> None:
    """Poll until the bot's outbox is empty (everything due was handed to Slack)."""
    deadline = time.monotonic() + timeout
    while await store.outbox_size():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the outbox did not drain within {timeout:g}s")
        await asyncio.sleep(poll)
