"""The bot under chaos as a subprocess: its rules file, its start, the signals it gets,
and what its ``/healthz`` and ``/metrics`` say.

``python -m watchdog run`` is started with the environment the rig hands over, in a work
directory (so no stray ``.env`` is read), on a fresh port, with everything it prints going
to a log file of its own per start (``bot-1.log``, ``bot-2.log``, …) for diagnosis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

#: Alerts of job i go to ALERT_CHANNELS[i % 3]: the notifier paces posts per channel
#: (about one a second), so three channels keep the compressed run from queueing behind it.
ALERT_CHANNELS = ("C0CHAOSA", "C0CHAOSB", "C0CHAOSC")
META_CHANNEL = "C0CHAOSMETA"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rules_toml(jobs: list[str], *, interval: float, timeout: float, no_data_after: float) -> str:
    """One health rule (``for`` = 0) per alert channel, each matching its share of ``jobs``."""
    lines = [
        "[watch]",
        f'interval = "{round(interval * 1000)}ms"',
        f'timeout = "{round(timeout * 1000)}ms"',
        f'no_data_after = "{round(no_data_after * 1000)}ms"',
        "max_rate = 500.0",
        "",
        "[slack]",
        f'channel = "{META_CHANNEL}"',
        "group_threshold = 50  # storms are tested elsewhere",
    ]
    for i, channel in enumerate(ALERT_CHANNELS):
        ids = ", ".join(f'"{j}"' for j in jobs[i :: len(ALERT_CHANNELS)])
        lines += [
            "",
            "[[rules]]",
            f'name = "chaos-unhealthy-{"abc"[i]}"',
            'kind = "health"',
            'status = ["error"]',
            'severity = "critical"',
            f'channel = "{channel}"',
            f"match = {{ job_id = [{ids}] }}",
        ]
    return "\n".join(lines) + "\n"


class BotProcess:
    """One ``python -m watchdog run`` at a time; each start logs to its own file."""

    def __init__(
        self, workdir: Path, rules: Path, env: dict[str, str], session: aiohttp.ClientSession
    ) -> None:
        self._workdir = workdir
        self._rules = rules
        self._env = env
        self._session = session  # for the bot's /healthz and /metrics
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.starts = 0
        self.log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.starts += 1
        self.port = free_port()
        self.log = self._workdir / f"bot-{self.starts}.log"
        env = {**self._env, "WATCHDOG_LISTEN": f"127.0.0.1:{self.port}"}
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "watchdog",
                "run",
                "--rules",
                str(self._rules),
                cwd=self._workdir,  # no stray .env from the repository
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def signal(self, sig: signal.Signals, wait: float) -> tuple[int | None, float]:
        """Send ``sig``; the exit code (None if still running after ``wait``) and seconds."""
        assert self.proc is not None
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            code: int | None = await asyncio.wait_for(self.proc.wait(), wait)
        except TimeoutError:
            code = None
        return code, time.monotonic() - started

    async def _get(self, path: str) -> tuple[int, str] | None:
        try:
            async with self._session.get(self.url + path) as resp:
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return None  # the bot is down or restarting: no answer is an answer

    async def is_healthy(self) -> bool:
        """``/healthz`` answers 200 and says the poll loop has ticked."""
        got = await self._get("/healthz")
        if got is None or got[0] != 200:
            return False
        try:
            body: Any = json.loads(got[1])
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("detail") == "ok"

    async def health(self) -> tuple[int, dict[str, Any]] | None:
        """``/healthz``: its status and JSON body; None while the bot does not answer."""
        got = await self._get("/healthz")
        if got is None:
            return None
        try:
            body: Any = json.loads(got[1])
        except ValueError:
            return None
        return got[0], body if isinstance(body, dict) else {}

    async def live(self) -> int | None:
        """``/livez``'s status; None while the bot does not answer."""
        got = await self._get("/livez")
        return None if got is None else got[0]

    async def metrics(self) -> dict[str, float] | None:
        """``/metrics`` parsed by :func:`read_metrics`; None while the bot does not answer."""
        got = await self._get("/metrics")
        return read_metrics(got[1]) if got is not None and got[0] == 200 else None


def read_metrics(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{k="v"}': value}`` (labels sorted), plain names alone."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
