"""A PostgreSQL server of one's own, for tests and benchmarks that stop and restart it.

The shared server of ``tests/conftest.py`` (``WATCHDOG_TEST_PG``) cannot be restarted under
other people's test runs, so the multi-replica chaos test and the HA benchmarks make their
own: ``initdb`` in a temporary directory and ``postgres`` on a free loopback port, with
durability switched off (``fsync=off``: a throw-away cluster). PostgreSQL refuses to run
as root, so when the tests run as root the server runs as the ``postgres`` user (or
``nobody``), which then owns the temporary directory.

The binaries are looked up in ``WATCHDOG_TEST_PG_BIN``, then the newest
``/usr/lib/postgresql/*/bin`` (Debian, Ubuntu), then ``initdb`` on the ``PATH``;
:func:`find_bin_dir` says why none fit, for a skip message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0


def find_bin_dir() -> tuple[Path | None, str]:
    """The directory holding ``initdb`` and ``postgres``, or None and why there is none."""
    candidates: list[Path] = []
    if os.environ.get("WATCHDOG_TEST_PG_BIN"):
        candidates.append(Path(os.environ["WATCHDOG_TEST_PG_BIN"]))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += debian
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory, ""
    return None, (
        "no PostgreSQL server binaries (initdb, postgres) in WATCHDOG_TEST_PG_BIN, "
        "/usr/lib/postgresql/*/bin or on the PATH"
    )


def _unprivileged_user() -> str | None:
    """Whom to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and there is no postgres or nobody user to run as")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """``initdb`` once, then :meth:`start`, :meth:`stop` and :meth:`restart` at will.

    Async context manager: the cluster is made and started on entry, stopped and deleted
    on exit. :attr:`url` names its ``postgres`` database.
    """

    def __init__(self, bin_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="wd-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",  # TCP only: no socket directory to own
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            **(settings or {}),
        }
        self._proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, application_name: str) -> str:
        """:attr:`url` whose connections say ``application_name`` (who wrote what)."""
        return f"{self.url}?application_name={application_name}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def __aenter__(self) -> Self:
        try:
            await self.init()
            await self.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    async def _run(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            user=self.user,
            cwd=self.root,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {out.decode()[-2000:]}")

    async def init(self) -> None:
        """Make the cluster (a second or two)."""
        if self.user is not None:
            os.chown(self.root, pwd.getpwnam(self.user).pw_uid, pwd.getpwnam(self.user).pw_gid)
        await self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    async def start(self) -> None:
        """Start the server and return once it accepts connections."""
        if self.running:
            return
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for key, value in self._settings.items():
            args += ["-c", f"{key}={value}"]
        # Opened by us (root), handed to the child: it needs no right to the file itself.
        with self.log.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *args, stdout=log, stderr=log, user=self.user, cwd=self.root
            )
        self.starts += 1
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._proc.returncode is not None:
                raise RuntimeError(f"postgres exited {self._proc.returncode}: {self.log_tail()}")
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=2)
                await conn.close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {self.log_tail()}") from None
                # Polling another process for readiness: there is nothing to await.
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are cut, no waiting for clients), as a
        database restart or failover does to the replicas."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port."""
        await self.stop()
        if down_for > 0:
            await asyncio.sleep(down_for)  # the outage itself
        await self.start()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
