"""The real bot in a child process: ``polaris-watchdog run``, configured as an operator would.

:class:`BotProcess` writes a rules file, sets the environment (one project from
``POLARIS_*``, or ``[[projects]]`` with each key in a variable of its own), starts
``polaris-watchdog run`` and waits for it to serve. The benchmarks then read it only from
outside: ``GET /metrics`` (:meth:`BotProcess.scrape`), its resident set
(``/proc/PID/status``), and what it posts to the Slack stand-in served by the benchmark.
Its CPU is its own: neither the simulator nor the benchmark runs in its process.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import BOT_TOKEN, SIGNING_SECRET, rules_text
from bench.simproc import SimProcess, cli, free_port, stop_process

#: A sample of ``/metrics``: (metric name, sorted label pairs) → value.
Sample = tuple[str, tuple[tuple[str, str], ...]]


def project_blocks(sim: SimProcess) -> tuple[str, dict[str, str]]:
    """``[[projects]]`` for every project of ``sim`` (named ``p1``, ``p2``, …) and the
    environment variables holding their keys."""
    blocks, env = [], {}
    for index, (project_id, key) in enumerate(sim.projects, start=1):
        variable = f"BENCH_POLARIS_KEY_P{index}"
        blocks.append(
            f'[[projects]]\nname = "p{index}"\nurl = "{sim.url}"\nid = "{project_id}"\n'
            f'api_key_env = "{variable}"\n'
        )
        env[variable] = key.get_secret_value()
    return "\n".join(blocks), env


def project_names(sim: SimProcess) -> dict[str, str]:
    """Project name in the bot (as :func:`project_blocks` names them) → simulator id."""
    return {f"p{index}": project_id for index, (project_id, _) in enumerate(sim.projects, 1)}


class BotProcess:
    """``polaris-watchdog run`` with its configuration in environment variables."""

    def __init__(
        self,
        workdir: Path,
        sim: SimProcess,
        slack_api_url: str,
        body: str,
        *,
        interval: str,
        concurrency: int = 16,
        max_rate: float = 2000.0,
        page_size: int = 1000,
        several: bool = False,
        state: Path | None = None,
        name: str = "bot",
        launcher: list[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        projects, keys = project_blocks(sim) if several else ("", {})
        rules = workdir / f"{name}-rules.toml"
        rules.write_text(
            rules_text(
                body,
                interval=interval,
                concurrency=concurrency,
                max_rate=max_rate,
                page_size=page_size,
                projects=projects,
            ),
            "utf-8",
        )
        self.state = state or workdir / f"{name}-state.db"
        # One project: POLARIS_*. Several: [[projects]], each key in a variable of its own.
        polaris = {
            "POLARIS_API_URL": sim.url,
            "POLARIS_PROJECT_ID": sim.project_id,
            "POLARIS_API_KEY": sim.api_key.get_secret_value(),
        }
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "WATCHDOG_", "POLARIS_"))
            },
            **(keys if several else polaris),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_api_url,
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_LISTEN": f"127.0.0.1:{self.port}",
            "WATCHDOG_STATE": str(self.state),
            "WATCHDOG_LOG_FORMAT": "json",
            "WATCHDOG_REPLICA": name,
            **(env or {}),
        }
        #: How to start ``polaris-watchdog`` (its arguments follow): the console script.
        self.launcher = launcher or cli()
        self.log = workdir / f"{name}.log"
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BotProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the bot is not started"
        return self.proc.pid

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the bot is not started"
        return self._session

    async def start(self, *, timeout: float = 120.0) -> None:
        """Start the bot and wait until it serves ``/livez`` (it has taken its leases)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200), timeout=aiohttp.ClientTimeout(total=30)
        )
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.launcher, "run", env=self.env, cwd=self.workdir, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"bot exited: {self.log_tail()}")
            try:
                async with self.session.get(self.url + "/livez") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start within {timeout:g} s")
            await asyncio.sleep(0.1)  # polling a child process: nothing to await

    async def stop(self) -> int:
        code = await stop_process(self.proc) if self.proc is not None else 0
        if self._session is not None:
            await self._session.close()
            self._session = None
        return code

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def rss_mb(self) -> float:
        """The bot process's resident set (VmRSS) in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS for the bot")

    async def scrape(self) -> dict[Sample, float]:
        """Every sample of ``GET /metrics``."""
        async with self.session.get(self.url + "/metrics") as resp:
            text = await resp.text()
        samples: dict[Sample, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


def by_project(samples: Mapping[Sample, float], name: str, **labels: str) -> dict[str, float]:
    """The values of metric ``name`` by their ``project`` label (other labels as given)."""
    found: dict[str, float] = {}
    for (metric, pairs), value in samples.items():
        if metric != name:
            continue
        got = dict(pairs)
        if all(got.get(k) == v for k, v in labels.items()) and "project" in got:
            found[got["project"]] = found.get(got["project"], 0.0) + value
    return found
