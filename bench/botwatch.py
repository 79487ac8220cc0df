"""The real bot on a bad day, as a child process watched from outside.

What the reliability figures and the bad-day tests need to see of the bot is what an
operator sees: its ``/healthz`` and ``/metrics``, the JSON lines it logs, its memory (RSS
and peak RSS from ``/proc``), how it exits on a signal. The disk can be made to refuse
writes under it without privileges: :meth:`WatchedBot.limit_file_size` lowers the
process's ``RLIMIT_FSIZE`` (``prlimit``), after which every write that would grow a file
fails with ``EFBIG`` — a full disk, as far as SQLite can tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

_START_TIMEOUT = 30.0
DEVNULL = asyncio.subprocess.DEVNULL


def free_port() -> int:
    """A TCP port free on loopback right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_env(
    *,
    polaris_url: str,
    project_id: str,
    api_key: str,
    state: str,
    slack_url: str | None = None,
    signing_secret: str | None = None,
) -> dict[str, str]:
    """The environment of a bot watching one project (Slack optional)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POLARIS_", "SLACK_", "WATCHDOG_"))
    }
    env.update(
        POLARIS_API_URL=polaris_url,
        POLARIS_PROJECT_ID=project_id,
        POLARIS_API_KEY=api_key,
        WATCHDOG_STATE=state,
        WATCHDOG_LOG_FORMAT="json",
        SLACK_BOT_TOKEN="xoxb-standin" if slack_url else "",
        SLACK_API_URL=slack_url or "https://slack.com/api/",
        SLACK_SIGNING_SECRET=signing_secret or "",
        SLACK_APP_TOKEN="",
    )
    return env


class WatchedBot:
    """One ``python -m watchdog run`` on a free port, logging JSON lines to a file."""

    def __init__(
        self, workdir: Path, rules: Path, env: Mapping[str, str], *, own_log: bool = False
    ) -> None:
        self.workdir = workdir
        #: the bot writes its log file itself (so a full disk takes its logs too), instead
        #: of through a pipe copied here
        self.own_log = own_log
        self.rules = rules
        self.env = dict(env)
        self.port = free_port()
        self.log = workdir / f"bot-{self.port}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._copying: asyncio.Task[None] | None = None
        self.exit_code: int | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the bot is not started"
        return self.proc.pid

    async def __aenter__(self) -> WatchedBot:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the bot and return once it answers ``/livez``."""
        env = {**self.env, "WATCHDOG_LISTEN": f"127.0.0.1:{self.port}"}
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        command = [sys.executable, "-m", "watchdog", "run", "--rules", str(self.rules)]
        if self.own_log:
            with self.log.open("wb") as out:
                self.proc = await asyncio.create_subprocess_exec(
                    *command, cwd=self.workdir, env=env, stdin=DEVNULL, stdout=out, stderr=out
                )
        else:
            # A pipe, copied to the log file from here: a file the child wrote itself
            # would fall under the file-size limit that plays a full disk.
            self.proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=self.workdir,  # no stray .env from the repository
                env=env,
                stdin=DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            self._copying = asyncio.create_task(self._copy(self.proc.stdout))
        deadline = time.monotonic() + _START_TIMEOUT
        while await self.get("/livez") is None:
            if self.proc.returncode is not None:
                raise RuntimeError(f"the bot exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start:\n{self.log_tail()}")
            await asyncio.sleep(0.05)  # polling another process: nothing to await

    async def _copy(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        with self.log.open("ab") as out:
            while chunk := await stream.read(65536):
                out.write(chunk)
                out.flush()

    async def close(self) -> None:
        """Stop the bot if it still runs (SIGTERM, then SIGKILL) and close the session."""
        if self.proc is not None and self.proc.returncode is None:
            await self.stop(grace=10.0)
        if self._copying is not None:
            await self._copying
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def stop(self, grace: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM; the exit code (None: killed after ``grace``) and the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            code = None
        self.exit_code = code
        if self._copying is not None:
            await self._copying  # every line the bot wrote is in the log now
        return code, time.monotonic() - started

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    # ---- what an operator sees -----------------------------------------------------------

    async def get(self, path: str) -> tuple[int, Any] | None:
        """``GET path``: the status and the JSON (or text) body; None when no answer."""
        assert self._session is not None
        try:
            async with self._session.get(self.url + path) as resp:
                text = await resp.text()
                try:
                    return resp.status, json.loads(text)
                except ValueError:
                    return resp.status, text
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def healthz(self) -> tuple[int, dict[str, Any]] | None:
        got = await self.get("/healthz")
        if got is None or not isinstance(got[1], dict):
            return None
        return got[0], got[1]

    async def metric(self, name: str) -> float | None:
        """One sample of ``/metrics``: ``name`` with its labels sorted by name, e.g.
        ``watchdog_ticks_total{outcome="ok",project="default"}``; None when absent."""
        got = await self.get("/metrics")
        if got is None or not isinstance(got[1], str):
            return None
        for family in text_string_to_metric_families(got[1]):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                if (f"{sample.name}{{{labels}}}" if labels else sample.name) == name:
                    return float(sample.value)
        return None

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines logged so far."""
        out: list[dict[str, Any]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _status_kb(self, field: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
        raise RuntimeError(f"no {field} in /proc/{self.pid}/status")

    def rss_mib(self) -> float:
        """Resident memory now, in MiB."""
        return self._status_kb("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """The most resident memory the process has had (VmHWM), in MiB."""
        return self._status_kb("VmHWM") / 1024

    def limit_file_size(self, size: int) -> None:
        """Make every write past ``size`` bytes of any file fail (``EFBIG``): a disk that
        refuses writes. Python ignores SIGXFSZ, so the write fails instead of killing it."""
        # Only the soft limit: lowering the hard one could not be undone without privileges.
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    def lift_file_size_limit(self) -> None:
        """The disk takes writes again."""
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))

    async def until(self, check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
        """Seconds until ``check()`` holds; AssertionError naming ``what`` after ``timeout``."""
        started = time.monotonic()
        while not await check():
            if not self.running:
                raise AssertionError(f"the bot exited waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"no {what} within {timeout:g}s:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def healthz_status(self) -> int | None:
        got = await self.healthz()
        return None if got is None else got[0]
