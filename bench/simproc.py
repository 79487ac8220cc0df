"""The Polaris simulator in a child process, driven over its ``/_sim/`` admin API.

The simulator runs as ``polaris-watchdog simulate`` in its own process so that its CPU
is never charged to the bot being measured; faults (latency) are set, request
statistics read and jobs flipped over HTTP, exactly as an operator would. One simulator
may serve several projects of one organisation (``projects``): every admin call then
names the project it is about (its id; none: the first).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr

PROJECT_ID = "demo-project"  # the simulator's defaults
API_KEY = "sim-key"
_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port free on loopback right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli() -> list[str]:
    """How to start ``polaris-watchdog``: the console script of this venv, else ``-m``."""
    script = Path(sys.executable).with_name("polaris-watchdog")
    if script.exists():
        return [str(script)]
    found = shutil.which("polaris-watchdog")
    return [found] if found else [sys.executable, "-m", "watchdog"]


async def stop_process(proc: asyncio.subprocess.Process, *, grace: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return int(proc.returncode or 0)


class SimProcess:
    """``polaris-watchdog simulate --scenario S --jobs N`` on a free loopback port; with
    ``projects`` > 1, that many projects each holding scenario S with N jobs."""

    def __init__(
        self, scenario: str, jobs: int | None, *, workdir: Path, projects: int = 1
    ) -> None:
        self.scenario = scenario
        self.jobs = jobs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.project_id = PROJECT_ID
        self.api_key = SecretStr(API_KEY)
        self.project_count = projects
        #: (id, API key) of every project, the first (default) one first; read at start.
        self.projects: list[tuple[str, SecretStr]] = [(PROJECT_ID, self.api_key)]
        self._log_path = workdir / f"sim-{scenario}-{self.port}.log"
        self._workdir = workdir
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SimProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def start(self) -> None:
        args = ["simulate", "--host", "127.0.0.1", "--port", str(self.port)]
        for _ in range(self.project_count):
            args += ["--scenario", self.scenario]
        if self.project_count > 1:
            args += ["--projects", str(self.project_count)]
        if self.jobs is not None:
            args += ["--jobs", str(self.jobs)]
        with self._log_path.open("wb") as log:
            # The child keeps its own copy of the descriptor: its log lines never fill a
            # pipe nobody reads.
            self._proc = await asyncio.create_subprocess_exec(
                *cli(), *args, stdout=log, stderr=log, cwd=self._workdir
            )
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._proc.returncode is not None:
                raise RuntimeError(f"simulator exited: {self._log_tail()}")
            try:
                await self.faults()
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"simulator did not start: {self._log_tail()}") from None
                await asyncio.sleep(0.1)  # polling a child process: nothing to await
        listed = await self._json("GET", "/_sim/projects")
        self.projects = [(p["id"], SecretStr(p["api_key"])) for p in listed]

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._proc is not None:
            await stop_process(self._proc, grace=5.0)
            self._proc = None

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    # ---- the admin API -----------------------------------------------------------------

    async def _json(
        self, method: str, path: str, body: Any = None, *, project: str | None = None
    ) -> Any:
        assert self._session is not None, "the simulator is not started"
        if project is not None:
            path += ("&" if "?" in path else "?") + f"project={quote(project, safe='')}"
        async with self._session.request(method, self.url + path, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def faults(self, *, project: str | None = None, **faults: Any) -> dict[str, Any]:
        """Replace the injected faults (none given: clear them all)."""
        result: dict[str, Any] = await self._json("POST", "/_sim/faults", faults, project=project)
        return result

    async def all_faults(self, **faults: Any) -> None:
        """The same faults in every project."""
        for project, _ in self.projects:
            await self.faults(project=project, **faults)

    async def stats(self, log: int = 0, *, project: str | None = None) -> dict[str, Any]:
        """Request counts, in-flight maximum, and the last ``log`` request-log entries."""
        result: dict[str, Any] = await self._json("GET", f"/_sim/stats?log={log}", project=project)
        return result

    async def reset_stats(self, *, project: str | None = None) -> None:
        await self._json("POST", "/_sim/stats/reset", project=project)

    async def jobs_summary(self, *, project: str | None = None) -> list[dict[str, Any]]:
        """Every job with its type, behaviour, status and health."""
        result: list[dict[str, Any]] = await self._json("GET", "/_sim/jobs", project=project)
        return result

    async def change_job(self, job_id: str, *, project: str | None = None, **change: Any) -> None:
        """Pin a job's health, execution status or totals (``POST /_sim/jobs/{id}``)."""
        await self._json("POST", f"/_sim/jobs/{job_id}", change, project=project)
