"""The chaos rig: the real bot, as a subprocess, against the Polaris simulator and the Slack
stand-in served in this process, with faults switched on and off while it runs.

The simulator and the stand-in live here, not in the bot's process, so the ground truth —
which job was unhealthy when, and every message Slack accepted — survives the bot being
killed and restarted, and faults are toggled by plain method calls. The bot runs as
``python -m watchdog run`` with its environment, a SQLite state file and a log file per
start in a work directory. A small supervisor restarts the bot when it exits on its own,
as a container runtime would, and records that as a crash.

Used by ``tests/test_chaos.py`` (compressed timescale) and ``bench/chaos.py`` (longer);
the bot process is :mod:`chaos_bot`, the timeline :mod:`chaos_scenario`, the verdict
:mod:`chaos_accounting`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web
from chaos_bot import ALERT_CHANNELS, META_CHANNEL, BotProcess, log_tail, rules_toml

from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.polaris_sim.simulator import serve as serve_polaris
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.devtools.slack_standin.server import serve as serve_slack

REPO = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-chaos-standin-token"
API_KEY = "chaos-simulator-api-key"
_POLL = 0.1  # seconds between looks at the stand-in, the simulator or the bot's endpoints


class ChaosTimeout(AssertionError):
    """A condition the scenario waits for did not come true in time."""


def chaos_job_id(n: int) -> str:
    """A readable UUID: chaos_job_id(7) ends in ...0007."""
    return f"{n:08x}-0000-4000-8000-{n:012x}"


@dataclass
class Window:
    """One stretch of a job's health being ``error``: exactly one expected incident."""

    job_id: str
    channel: str
    note: str
    opened: float  # epoch seconds, the stand-in's clock too
    closed: float | None = None


@dataclass
class Fault:
    """One injected fault, from switch-on to switch-off (epoch seconds)."""

    target: str  # "polaris" | "slack"
    kind: str
    started: float
    ended: float | None = None


@dataclass
class Stop:
    """A signal the rig sent to the bot, and how the bot took it."""

    how: str  # "SIGKILL" | "SIGTERM"
    at: float
    exit_code: int | None  # None: still running when the rig gave up waiting
    seconds: float  # from the signal to the exit
    note: str = ""
    restarted: bool = False  # the next start came up healthy
    final: bool = False  # the end of the run: nothing is restarted after it


@dataclass
class Crash:
    """The bot exited without being asked to."""

    at: float
    exit_code: int
    log: Path
    tail: str


@dataclass
class ChaosLog:
    """Everything the rig did and saw, for :mod:`chaos_accounting`."""

    windows: list[Window] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    outbox_at_end: float | None = None
    seconds: float = 0.0


class ChaosRig:
    """The simulator, the stand-in, the bot and its supervisor; async context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        jobs: int = 20,
        controls: int = 3,
        interval: float = 0.5,
        timeout: float = 1.0,
        no_data_after: float = 1.5,
        startup_timeout: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.sim = Simulator(api_key=API_KEY, project_id="chaos-project")
        ids = [chaos_job_id(n + 1) for n in range(jobs + controls)]
        self.spare = ids[:jobs]  # window jobs not used yet; each window takes a fresh one
        self.controls = ids[jobs:]  # stay healthy throughout: any post about them is spurious
        self.job_ids = ids
        self.channel_of = {j: ALERT_CHANNELS[i % len(ALERT_CHANNELS)] for i, j in enumerate(ids)}
        for job_id in ids:
            self.sim.add_job(job_id=job_id, behaviour="healthy", table=f"chaos_{job_id[-4:]}")
            self.sim.set_health(job_id, "ok")
        self.standin = SlackStandIn(bot_token=BOT_TOKEN, channels=(*ALERT_CHANNELS, META_CHANNEL))
        self.record = ChaosLog()
        self._rules_text = rules_toml(
            ids, interval=interval, timeout=timeout, no_data_after=no_data_after
        )
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self.bot: BotProcess | None = None
        self._expect_exit = False
        self._supervisor: asyncio.Task[None] | None = None
        self._ok_ticks = 0.0  # reset-aware total of the bot's ok ticks, across restarts
        self._ok_last = 0.0
        self._began = time.monotonic()

    # ---- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._runners.append(await serve_polaris(self.sim, "127.0.0.1", 0))
        self._runners.append(await serve_slack(self.standin, "127.0.0.1", 0))
        sim_host, sim_port = self._runners[0].addresses[0][:2]
        rules = self.workdir / "rules.toml"
        rules.write_text(self._rules_text)
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("POLARIS_", "SLACK_", "WATCHDOG_"))
        }
        env = {
            **inherited,
            "PYTHONPATH": str(REPO),
            "POLARIS_API_URL": f"http://{sim_host}:{sim_port}",
            "POLARIS_PROJECT_ID": self.sim.project_id,
            "POLARIS_API_KEY": API_KEY,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": "chaos-signing-secret",
            "SLACK_API_URL": self.standin.api_url,
            "WATCHDOG_STATE": str(self.workdir / "state.db"),
            "WATCHDOG_LOG_FORMAT": "json",
        }
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))
        self.bot = BotProcess(self.workdir, rules, env, self._session)
        try:
            await self.start_bot()
        except BaseException:
            await self.__aexit__(None, None, None)  # no orphaned bot, no open servers
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._expect_exit = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self.bot is not None and self.bot.running:
            stop = await self.terminate("end of run")
            stop.final = True
        if self._session is not None:
            await self._session.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self.record.seconds = time.monotonic() - self._began

    async def start_bot(self, *, healthy: bool = True) -> None:
        """Start the bot under the supervisor; with ``healthy``, wait until it has ticked."""
        assert self.bot is not None
        await self.bot.start()
        assert self.bot.log is not None
        self.record.logs.append(self.bot.log)
        self._expect_exit = False
        self._supervisor = asyncio.create_task(self._supervise(), name="chaos-supervisor")
        if healthy:
            await self.wait_healthy()

    async def _supervise(self) -> None:
        """Restart the bot when it exits on its own, with a short backoff, like a runtime."""
        assert self.bot is not None
        backoff = 0.5
        while True:
            assert self.bot.proc is not None
            code = await self.bot.proc.wait()
            if self._expect_exit:
                return
            assert self.bot.log is not None
            self.record.crashes.append(
                Crash(time.time(), code, self.bot.log, log_tail(self.bot.log))
            )
            await asyncio.sleep(backoff)  # a supervisor's restart delay, not a wait for an event
            backoff = min(backoff * 2, 4.0)
            await self.bot.start()
            self.record.logs.append(self.bot.log)

    async def is_healthy(self) -> bool:
        assert self.bot is not None
        return await self.bot.is_healthy()

    async def wait_healthy(self, timeout: float | None = None) -> None:
        await self.wait_until(
            self.is_healthy, timeout or self.startup_timeout, "the bot to be healthy"
        )
        if self.record.stops:
            self.record.stops[-1].restarted = True

    async def kill(self, note: str = "") -> Stop:
        """SIGKILL the bot (no chance to clean up). Restart with :meth:`restart`."""
        return await self._stop(signal.SIGKILL, note, wait=10.0)

    async def terminate(self, note: str = "") -> Stop:
        """SIGTERM the bot and wait (up to 15 s) for it to drain and exit."""
        return await self._stop(signal.SIGTERM, note, wait=15.0)

    async def _stop(self, sig: signal.Signals, note: str, wait: float) -> Stop:
        assert self.bot is not None
        self._expect_exit = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        at = time.time()
        code, seconds = await self.bot.signal(sig, wait)
        if code is None:  # did not exit in time: make sure it is gone before restarting
            await self.bot.signal(signal.SIGKILL, 5.0)
        stop = Stop(sig.name, at, code, seconds, note)
        self.record.stops.append(stop)
        return stop

    async def restart(self, *, healthy: bool = True) -> None:
        """Start the bot again after a stop; ``healthy=False`` returns without waiting."""
        await self.start_bot(healthy=healthy)

    # ---- ground truth ------------------------------------------------------------------

    def open_window(self, note: str) -> Window:
        """Put a fresh job into health ``error``: one expected incident."""
        job_id = self.spare.pop(0)
        window = Window(job_id, self.channel_of[job_id], note, time.time())
        self.sim.set_health(job_id, "error", "chaos_error", f"Chaos window: {note}")
        self.record.windows.append(window)
        return window

    def close_window(self, window: Window) -> None:
        self.sim.set_health(window.job_id, "ok")
        window.closed = time.time()

    # ---- faults ------------------------------------------------------------------------

    def polaris_fault(self, kind: str, **faults: Any) -> Fault:
        """Replace the simulator's faults by ``faults``; ``kind`` names it in the report."""
        self.sim.faults.configure(faults)
        fault = Fault("polaris", kind, time.time())
        self.record.faults.append(fault)
        return fault

    def polaris_clear(self, fault: Fault) -> None:
        self.sim.faults.clear()
        fault.ended = time.time()

    def slack_down(self) -> Fault:
        self.standin.down()
        fault = Fault("slack", "503 outage", time.time())
        self.record.faults.append(fault)
        return fault

    def slack_up(self, fault: Fault) -> None:
        self.standin.up()
        fault.ended = time.time()

    def slack_slow(self, seconds: float) -> Fault:
        """Hold every Slack call ``seconds`` before answering (and then doing) it."""
        self.standin.latency = seconds
        fault = Fault("slack", f"latency {seconds:g}s", time.time())
        self.record.faults.append(fault)
        return fault

    def slack_fast(self, fault: Fault) -> None:
        self.standin.latency = 0.0
        fault.ended = time.time()

    async def slack_rate_limit(self, n: int, retry_after: int, timeout: float) -> Fault:
        """The next ``n`` Slack calls get 429; returns once all ``n`` were answered so."""
        before = len(self.standin.calls)
        self.standin.rate_limit(n, retry_after)
        fault = Fault("slack", f"429 x{n}", time.time())
        self.record.faults.append(fault)
        await self.wait_until(
            lambda: len(self.standin.calls) >= before + n, timeout, f"{n} Slack calls to get 429"
        )
        fault.ended = time.time()
        return fault

    # ---- observing ---------------------------------------------------------------------

    async def metrics(self) -> dict[str, float] | None:
        assert self.bot is not None
        return await self.bot.metrics()

    async def outbox_size(self) -> float | None:
        values = await self.metrics()
        return None if values is None else values.get("watchdog_outbox_size")

    async def _count_ok_ticks(self) -> float:
        values = await self.metrics()
        if values is not None:
            now = values.get('watchdog_ticks_total{outcome="ok",project="default"}', 0.0)
            # A restart resets the counter: count what the new process did (as resets()).
            self._ok_ticks += now - self._ok_last if now >= self._ok_last else now
            self._ok_last = now
        return self._ok_ticks

    async def wait_ok_ticks(self, n: int, timeout: float) -> None:
        """Wait until the bot completed ``n`` more ticks that got data from Polaris.

        The second such tick started after this call, so it saw every change made before.
        """
        baseline = await self._count_ok_ticks()

        async def enough() -> bool:
            return await self._count_ok_ticks() >= baseline + n

        await self.wait_until(enough, timeout, f"{n} successful poll ticks")

    async def wait_until(self, condition: Callable[[], Any], timeout: float, what: str) -> None:
        """Poll ``condition`` (sync or async) until true; :class:`ChaosTimeout` if it is not
        within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise ChaosTimeout(f"timed out after {timeout:g}s waiting for {what}")
            # Polling: the bot is another process, there is nothing to await for it.
            await asyncio.sleep(_POLL)

    async def wait_in_flight(self, timeout: float) -> None:
        """Until the simulator is answering a request of the bot: a tick is under way."""
        await self.wait_until(
            lambda: self.sim.stats.in_flight > 0, timeout, "a poll tick to be in flight"
        )
