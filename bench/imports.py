"""Imports: what each command loads, and the resident set that costs.

Every command of the CLI runs in a fresh process through :mod:`bench.imports_child`,
which reports the command's peak resident set (``VmHWM``: imports plus the little work
each does here) and which notable packages it loaded. ``run`` is the real bot against
the simulator (an empty project) and the Slack stand-in, in HTTP mode (bot token and
signing secret, SQLite state: the usual production set-up), without Slack (alerts to the
terminal) and in Socket Mode; its resident set is read once it has ticked, and it is
then stopped with SIGTERM. ``check`` and ``test-rules`` read the example files; ``jobs``
(the operator CLI) lists the simulator's jobs.

Targets: no command loads the dev tools; ``check`` and ``test-rules`` load no HTTP client
and no Slack SDK; ``run`` loads Socket Mode only with ``SLACK_APP_TOKEN`` and the
PostgreSQL driver never with a SQLite state. The resident sets are for information: they
are the floor under the memory figure (:mod:`bench.memory`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.botproc import BotProcess, by_project
from bench.harness import BOT_TOKEN, CHANNEL, HEALTH_RULE
from bench.report import Figure, Options, announce, say
from bench.simproc import SimProcess
from watchdog.devtools.slack_standin.server import SlackStandIn, serve

NAME = "imports"
TITLE = "Imports"
REPO = Path(__file__).resolve().parent.parent
_TIMEOUT = 60.0


@dataclass(frozen=True)
class Loaded:
    command: str
    hwm_mb: float
    rss_mb: float  # run: while serving; the others: at exit
    modules: int
    loaded: tuple[str, ...]

    def has(self, package: str) -> bool:
        return package in self.loaded


def _child_env(workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WATCHDOG_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return {**env, "WATCHDOG_LOG_FORMAT": "json", **extra}


def _launcher(out: Path) -> list[str]:
    return [sys.executable, "-m", "bench.imports_child", str(out)]


def _read(out: Path, command: str, rss: float | None = None) -> Loaded:
    data: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return Loaded(
        command,
        float(data["hwm_mb"]),
        float(rss if rss is not None else data["rss_mb"]),
        int(data["modules"]),
        tuple(data["loaded"]),
    )


async def _short(workdir: Path, command: str, args: list[str], env: dict[str, str]) -> Loaded:
    """A command that ends by itself, in a fresh process."""
    out = workdir / f"{command.split()[0]}.json"
    proc = await asyncio.create_subprocess_exec(
        *_launcher(out),
        *args,
        env=_child_env(workdir, env),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), _TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{command} exited {proc.returncode}: {err.decode()[-1000:]}")
    return _read(out, command)


async def _run(
    workdir: Path, sim: SimProcess, api_url: str, command: str, env: dict[str, str]
) -> Loaded:
    """``run`` until it has ticked, then SIGTERM; its RSS while serving."""
    name = command.replace(" ", "-").replace(",", "")
    out = workdir / f"{name}.json"
    bot = BotProcess(
        workdir,
        sim,
        api_url,
        HEALTH_RULE,
        interval="1s",
        name=name,
        launcher=_launcher(out),
        env={"PYTHONPATH": _child_env(workdir, {})["PYTHONPATH"], **env},
    )
    async with bot:
        deadline = time.monotonic() + _TIMEOUT
        while not by_project(await bot.scrape(), "watchdog_ticks_total"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command}: no tick within {_TIMEOUT:g} s")
            await asyncio.sleep(0.1)
        rss = bot.rss_mb()
    return _read(out, command, rss)


async def run(options: Options) -> list[Figure]:
    results: list[Loaded] = []
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as tmp:
        workdir = Path(tmp)
        standin = SlackStandIn(bot_token=BOT_TOKEN, channels={CHANNEL})
        standin_runner = await serve(standin, "127.0.0.1", 0)
        try:
            async with SimProcess("healthy", 10, workdir=workdir) as sim:
                polaris = {
                    "POLARIS_API_URL": sim.url,
                    "POLARIS_PROJECT_ID": sim.project_id,
                    "POLARIS_API_KEY": sim.api_key.get_secret_value(),
                }
                runs = [
                    ("run (HTTP mode)", {}),
                    (
                        "run (no Slack: terminal)",
                        {"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": ""},
                    ),
                    ("run (Socket Mode)", {"SLACK_APP_TOKEN": standin.app_token}),
                ]
                for command, env in runs:
                    results.append(await _run(workdir, sim, standin.api_url, command, env))
                results.append(
                    await _short(workdir, "jobs", ["jobs"], polaris),
                )
            results.append(
                await _short(
                    workdir, "check", ["check", "--rules", str(REPO / "rules.example.toml")], {}
                )
            )
            results.append(
                await _short(
                    workdir,
                    "test-rules",
                    ["test-rules", str(REPO / "rules.example.test.toml")],
                    {},
                )
            )
        finally:
            await standin_runner.cleanup()
    for r in results:
        say(
            f"    {r.command:<26} RSS {r.rss_mb:6.1f} MB, peak {r.hwm_mb:6.1f} MB, "
            f"{r.modules:4d} modules: {', '.join(r.loaded)}"
        )
    figures = [
        announce(
            Figure(
                TITLE,
                f"resident set of `{r.command}`"
                + (" while serving (peak)" if r.command.startswith("run") else " (peak)"),
                f"{r.rss_mb:.1f} MB ({r.hwm_mb:.1f} MB); {r.modules} modules",
                "for information",
                None,
            )
        )
        for r in results
    ]
    by_command = {r.command: r for r in results}
    devtools = [r.command for r in results if r.has("watchdog.devtools")]
    figures.append(
        announce(
            Figure(
                TITLE,
                "commands that load the dev tools",
                ", ".join(devtools) or "none",
                "none",
                not devtools,
            )
        )
    )
    light = [by_command["check"], by_command["test-rules"]]
    heavy = [
        f"{r.command}: {p}"
        for r in light
        for p in ("aiohttp", "slack_sdk", "watchdog.polaris.client")
        if r.has(p)
    ]
    figures.append(
        announce(
            Figure(
                TITLE,
                "`check` and `test-rules` load no HTTP client and no Slack SDK",
                "; ".join(heavy) or "neither loads aiohttp, slack_sdk or the Polaris client",
                "none of them",
                not heavy,
            )
        )
    )
    socket = [r.command for r in results if r.has("slack_sdk.socket_mode")]
    postgres = [r.command for r in results if r.has("psycopg")]
    figures.append(
        announce(
            Figure(
                TITLE,
                "`run` loads Socket Mode only with SLACK_APP_TOKEN, psycopg only for postgresql://",
                f"Socket Mode in: {', '.join(socket) or 'none'}; psycopg in: "
                f"{', '.join(postgres) or 'none'}",
                "Socket Mode in run (Socket Mode) only; psycopg in none",
                socket == ["run (Socket Mode)"] and not postgres,
            )
        )
    )
    return figures
