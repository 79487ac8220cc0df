"""The multi-replica chaos rig: three real bot processes on one private PostgreSQL, several
Polaris projects, and a record of who did what.

Everything of :mod:`chaos_harness` (the simulator and the Slack stand-in in this process,
the bots as ``python -m watchdog run`` subprocesses), times three, plus what tells the
replicas apart:

- each replica reaches Slack through a URL of its own (``/bot-a/api/…``) on one stand-in,
  so every call is recorded with the replica that made it (:class:`SlackCall`), and
  Slack can be made to fail for one replica only;
- each replica connects to PostgreSQL under an ``application_name`` of its own, and
  triggers the rig installs record every write to the project-scoped tables (alerts,
  outbox, messages, samples) with the writer and the project, and every change of a
  lease's holder or term, in one sequence — so the verdict can check that no replica
  ever wrote for a project whose lease it did not hold;
- the PostgreSQL server is the rig's own (:mod:`pg_private`), so it can be restarted.

The timeline is :mod:`chaos_ha_scenario`; the verdict :mod:`chaos_ha_accounting`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import psycopg
from aiohttp import web
from chaos_bot import BotProcess, log_tail
from chaos_harness import REPO, ChaosLog, ChaosTimeout, Crash, Stop, Window, chaos_job_id
from pg_private import PrivatePostgres

from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.polaris_sim.simulator import serve as serve_polaris
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.store.postgres import PostgresStore

BOT_TOKEN = "xoxb-chaos-ha-token"
REPLICAS = ("bot-a", "bot-b", "bot-c")
PROJECTS = ("p1", "p2", "p3")
CHANNELS = {"p1": "C0HAONE", "p2": "C0HATWO", "p3": "C0HATHREE"}
META_CHANNEL = "C0HAMETA"
RULE = "chaos-unhealthy"
_POLL = 0.1  # seconds between looks at another process

#: Who wrote what, and who held which lease when: filled by triggers, in one sequence.
AUDIT_SQL = """
CREATE SEQUENCE chaos_seq;
CREATE TABLE chaos_writes (
    seq bigint PRIMARY KEY DEFAULT nextval('chaos_seq'), app text NOT NULL,
    tbl text NOT NULL, op text NOT NULL, project text NOT NULL,
    at float8 NOT NULL DEFAULT extract(epoch from clock_timestamp()));
CREATE TABLE chaos_leases (
    seq bigint PRIMARY KEY DEFAULT nextval('chaos_seq'), project text NOT NULL,
    holder text NOT NULL, term bigint NOT NULL,
    at float8 NOT NULL DEFAULT extract(epoch from clock_timestamp()));
CREATE FUNCTION chaos_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    p text;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'messages' THEN
        p := split_part(r.key, '/', 1);
    ELSE
        p := r.project;
    END IF;
    INSERT INTO chaos_writes (app, tbl, op, project)
        VALUES (current_setting('application_name'), TG_TABLE_NAME, TG_OP, p);
    RETURN NULL;
END $$;
CREATE FUNCTION chaos_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.holder IS DISTINCT FROM NEW.holder
            OR OLD.term IS DISTINCT FROM NEW.term THEN
        INSERT INTO chaos_leases (project, holder, term)
            VALUES (NEW.project, NEW.holder, NEW.term);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_alerts AFTER INSERT OR UPDATE OR DELETE ON alerts
    FOR EACH ROW EXECUTE FUNCTION chaos_write();
CREATE TRIGGER chaos_outbox AFTER INSERT OR UPDATE OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION chaos_write();
CREATE TRIGGER chaos_messages AFTER INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION chaos_write();
CREATE TRIGGER chaos_samples AFTER INSERT OR DELETE ON samples
    FOR EACH ROW EXECUTE FUNCTION chaos_write();
CREATE TRIGGER chaos_lease AFTER INSERT OR UPDATE ON leases
    FOR EACH ROW EXECUTE FUNCTION chaos_lease();
"""


def app_name(replica: str) -> str:
    """The ``application_name`` a replica's database sessions carry."""
    return f"chaos-{replica}"


@dataclass(frozen=True)
class SlackCall:
    """One Web API call, by the replica that made it."""

    replica: str
    method: str
    began: float  # epoch seconds when it arrived
    at: float  # epoch seconds when it was answered
    ok: bool
    channel: str = ""
    ts: str = ""  # the message posted or edited


@dataclass
class Replica:
    """One bot process and its supervision."""

    name: str
    bot: BotProcess
    supervisor: asyncio.Task[None] | None = None
    expect_exit: bool = True
    paused: bool = False  # SIGSTOPped
    crashes: list[Crash] = field(default_factory=list)


@dataclass
class HaLog(ChaosLog):
    """The single-replica record (windows, stops, logs), plus what several replicas add."""

    slack_calls: list[SlackCall] = field(default_factory=list)
    pauses: list[tuple[str, float, float]] = field(default_factory=list)  # replica, stop, cont
    writes: list[tuple[int, str, str, str, str, float]] = field(default_factory=list)
    leases: list[tuple[int, str, str, int, float]] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # measured during the run
    notes: list[str] = field(default_factory=list)  # what the scenario checked and saw


def rules_toml(
    sim_url: str,
    project_ids: dict[str, str],
    *,
    interval: float,
    timeout: float,
    lease: float,
    no_data_after: float,
) -> str:
    """One health rule over every project; each project alerts in its own channel."""
    lines = [
        "[watch]",
        f'interval = "{round(interval * 1000)}ms"',
        f'timeout = "{round(timeout * 1000)}ms"',
        f'no_data_after = "{round(no_data_after * 1000)}ms"',
        "max_rate = 500.0",
        "",
        "[ha]",
        f'lease = "{round(lease * 1000)}ms"',
        "",
        "[slack]",
        f'channel = "{META_CHANNEL}"',
        "group_threshold = 50  # storms are tested elsewhere",
    ]
    for name in PROJECTS:
        lines += [
            "",
            "[[projects]]",
            f'name = "{name}"',
            f'url = "{sim_url}"',
            f'id = "{project_ids[name]}"',
            f'api_key_env = "CHAOS_KEY_{name.upper()}"',
            f'channel = "{CHANNELS[name]}"',
        ]
    lines += [
        "",
        "[[rules]]",
        f'name = "{RULE}"',
        'kind = "health"',
        'status = ["error"]',
        'severity = "critical"',
        "",
        "# Never fires: it makes every leader sweep metrics and store samples.",
        "[[rules]]",
        'name = "chaos-samples"',
        'kind = "rising"',
        'metric = "numRowsSkippedByError"',
        "increase = 1000000000",
        'within = "1m"',
    ]
    return "\n".join(lines) + "\n"


class HaRig:
    """PostgreSQL, the simulator (three projects), the stand-in and three replicas."""

    def __init__(
        self,
        workdir: Path,
        pg: PrivatePostgres,
        *,
        jobs: int = 8,
        interval: float = 1.0,
        lease: float = 2.0,
        timeout: float = 1.0,
        no_data_after: float = 10.0,
        startup_timeout: float = 45.0,
    ) -> None:
        self.workdir = workdir
        self.pg = pg
        self.interval = interval
        self.lease = lease
        self.startup_timeout = startup_timeout
        self.project_ids = {name: f"chaos-{name}" for name in PROJECTS}
        self.sim = Simulator(api_key="key-p1", project_id=self.project_ids["p1"])
        for name in PROJECTS[1:]:
            self.sim.add_project(project_id=self.project_ids[name], api_key=f"key-{name}")
        self.spare: dict[str, list[str]] = {}
        self.controls: list[str] = []
        self.project_of: dict[str, str] = {}
        for p, name in enumerate(PROJECTS):
            ids = [chaos_job_id(100 * (p + 1) + n) for n in range(1, jobs + 2)]
            project = self.sim.project(self.project_ids[name])
            for job_id in ids:
                project.add_job(job_id=job_id, behaviour="healthy", table=f"{name}_{job_id[-4:]}")
                project.set_health(job_id, "ok")
                self.project_of[job_id] = name
            self.spare[name], control = ids[:-1], ids[-1]
            self.controls.append(control)
        self.standin = SlackStandIn(
            bot_token=BOT_TOKEN, channels=(*CHANNELS.values(), META_CHANNEL)
        )
        self.slack_blocked: set[str] = set()  # replicas whose Slack calls get 503
        self.record = HaLog()
        self.replicas: dict[str, Replica] = {}
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._rules = {"interval": interval, "timeout": timeout, "lease": lease}
        self._no_data_after = no_data_after
        self._began = time.monotonic()

    # ---- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            await self._prepare_database()
            self._runners.append(await serve_polaris(self.sim, "127.0.0.1", 0))
            slack_url = await self._serve_slack()
            sim_host, sim_port = self._runners[0].addresses[0][:2]
            rules = self.workdir / "rules.toml"
            rules.write_text(
                rules_toml(
                    f"http://{sim_host}:{sim_port}",
                    self.project_ids,
                    no_data_after=self._no_data_after,
                    **self._rules,
                )
            )
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))
            inherited = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("POLARIS_", "SLACK_", "WATCHDOG_", "CHAOS_"))
            }
            for name in REPLICAS:
                env = {
                    **inherited,
                    "PYTHONPATH": str(REPO),
                    **{f"CHAOS_KEY_{p.upper()}": f"key-{p}" for p in PROJECTS},
                    "SLACK_BOT_TOKEN": BOT_TOKEN,
                    "SLACK_SIGNING_SECRET": "chaos-signing-secret",
                    "SLACK_API_URL": f"{slack_url}/{name}/api/",
                    "WATCHDOG_STATE": self.pg.url_for(app_name(name)),
                    "WATCHDOG_REPLICA": name,
                    "WATCHDOG_LOG_FORMAT": "json",
                }
                home = self.workdir / name
                home.mkdir(exist_ok=True)
                self.replicas[name] = Replica(name, BotProcess(home, rules, env, self._session))
            await asyncio.gather(*(self.start(name) for name in REPLICAS))
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
        for replica in self.replicas.values():
            if replica.paused:
                self.resume(replica.name)
        stopping = [
            self.terminate(r.name, "end of run", final=True)
            for r in self.replicas.values()
            if r.bot.running
        ]
        await asyncio.gather(*stopping, return_exceptions=True)
        for replica in self.replicas.values():
            if replica.supervisor is not None:
                replica.supervisor.cancel()
                await asyncio.gather(replica.supervisor, return_exceptions=True)
        if self.pg.running:
            with contextlib.suppress(psycopg.Error):
                await self._read_audit()
        if self._session is not None:
            await self._session.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self.record.seconds = time.monotonic() - self._began

    async def _prepare_database(self) -> None:
        """Migrate once (as the first replica would), then install the audit triggers."""
        store = PostgresStore(self.pg.url)
        await store.open()
        await store.close()
        async with await psycopg.AsyncConnection.connect(self.pg.url, autocommit=True) as conn:
            await conn.execute(AUDIT_SQL.encode())

    async def _read_audit(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.pg.url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT seq, app, tbl, op, project, at FROM chaos_writes ORDER BY seq"
            )
            self.record.writes = [tuple(row) for row in await cur.fetchall()]  # type: ignore[misc]
            cur = await conn.execute(
                "SELECT seq, project, holder, term, at FROM chaos_leases ORDER BY seq"
            )
            self.record.leases = [tuple(row) for row in await cur.fetchall()]  # type: ignore[misc]

    async def _serve_slack(self) -> str:
        """One stand-in, reached by each replica under a path of its own."""
        root = web.Application(middlewares=[self._attribute])
        for name in REPLICAS:
            root.add_subapp(f"/{name}/", self.standin.app())
        runner = web.AppRunner(root)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        self.standin.bind(url)
        return url

    @web.middleware
    async def _attribute(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        began = time.time()
        replica, _, rest = request.path.lstrip("/").partition("/")
        method = rest.removeprefix("api/")
        if replica in self.slack_blocked:
            self.record.slack_calls.append(SlackCall(replica, method, began, began, False))
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        response = await handler(request)
        body: Any = {}
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            with contextlib.suppress(ValueError):
                body = json.loads(response.body)
        ok = isinstance(body, dict) and body.get("ok") is True
        channel = str(body.get("channel") or "") if isinstance(body, dict) else ""
        ts = str(body.get("ts") or "") if isinstance(body, dict) else ""
        call = SlackCall(replica, method, began, time.time(), ok, channel, ts)
        self.record.slack_calls.append(call)
        return response

    # ---- the replicas ------------------------------------------------------------------

    async def start(self, name: str, *, healthy: bool = True) -> None:
        replica = self.replicas[name]
        await replica.bot.start()
        assert replica.bot.log is not None
        self.record.logs.append(replica.bot.log)
        replica.expect_exit = False
        replica.supervisor = asyncio.create_task(self._supervise(replica), name=f"sup:{name}")
        if healthy:
            await self.wait_until(
                lambda: self.replicas[name].bot.is_healthy(),
                self.startup_timeout,
                f"{name} to be healthy",
            )

    async def _supervise(self, replica: Replica) -> None:
        """Restart a replica that exits on its own, as a container runtime would."""
        backoff = 0.5
        while True:
            assert replica.bot.proc is not None
            code = await replica.bot.proc.wait()
            if replica.expect_exit:
                return
            assert replica.bot.log is not None
            crash = Crash(time.time(), code, replica.bot.log, log_tail(replica.bot.log))
            replica.crashes.append(crash)
            self.record.crashes.append(crash)
            await asyncio.sleep(backoff)  # a supervisor's restart delay
            backoff = min(backoff * 2, 4.0)
            await replica.bot.start()
            assert replica.bot.log is not None
            self.record.logs.append(replica.bot.log)

    async def _stop(self, name: str, sig: signal.Signals, note: str, wait: float) -> Stop:
        replica = self.replicas[name]
        replica.expect_exit = True
        if replica.supervisor is not None:
            replica.supervisor.cancel()
            await asyncio.gather(replica.supervisor, return_exceptions=True)
        at = time.time()
        code, seconds = await replica.bot.signal(sig, wait)
        if code is None:
            await replica.bot.signal(signal.SIGKILL, 5.0)
        stop = Stop(sig.name, at, code, seconds, f"{name}: {note}")
        self.record.stops.append(stop)
        return stop

    async def kill(self, name: str, note: str = "") -> Stop:
        return await self._stop(name, signal.SIGKILL, note, wait=10.0)

    async def terminate(self, name: str, note: str = "", *, final: bool = False) -> Stop:
        stop = await self._stop(name, signal.SIGTERM, note, wait=15.0)
        stop.final = final
        return stop

    async def restart(self, name: str) -> None:
        await self.start(name)
        self.record.stops[-1].restarted = True

    def pause(self, name: str) -> float:
        """SIGSTOP: the process freezes mid-whatever, its leases run out."""
        replica = self.replicas[name]
        assert replica.bot.proc is not None
        replica.bot.proc.send_signal(signal.SIGSTOP)
        replica.paused = True
        at = time.time()
        self.record.pauses.append((name, at, 0.0))
        return at

    def resume(self, name: str) -> float:
        replica = self.replicas[name]
        assert replica.bot.proc is not None
        replica.bot.proc.send_signal(signal.SIGCONT)
        replica.paused = False
        at = time.time()
        who, stopped, _ = self.record.pauses[-1]
        self.record.pauses[-1] = (who, stopped, at)
        return at

    # ---- what the replicas say ---------------------------------------------------------

    async def healthz(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """``/healthz`` of a replica: (status, body), None when it does not answer."""
        replica = self.replicas[name]
        if replica.paused or not replica.bot.running:
            return None
        return await replica.bot.health()

    async def livez(self, name: str) -> int | None:
        replica = self.replicas[name]
        if replica.paused or not replica.bot.running:
            return None
        return await replica.bot.live()

    async def leaders(self) -> dict[str, list[str]]:
        """project → the replicas whose /healthz says they lead it (running ones only)."""
        found: dict[str, list[str]] = {p: [] for p in PROJECTS}
        answers = await asyncio.gather(*(self.healthz(name) for name in REPLICAS))
        for name, got in zip(REPLICAS, answers, strict=True):
            if got is not None:
                for project in got[1].get("leads", []):
                    found.setdefault(project, []).append(name)
        return found

    async def leader_of(self, project: str, *, besides: str | None = None) -> str | None:
        """The one replica leading ``project`` (other than ``besides``), else None."""
        names = [n for n in (await self.leaders())[project] if n != besides]
        return names[0] if len(names) == 1 else None

    async def balanced(self) -> bool:
        """Every project led by exactly one replica, every running replica leading one."""
        leaders = await self.leaders()
        if any(len(names) != 1 for names in leaders.values()):
            return False
        running = [n for n, r in self.replicas.items() if r.bot.running and not r.paused]
        counts = [sum(n in names for names in leaders.values()) for n in running]
        return len(running) < len(PROJECTS) or all(c == 1 for c in counts)

    async def outbox_size(self) -> float | None:
        """Undelivered items of every project (the gauge counts the whole outbox)."""
        for name in REPLICAS:
            replica = self.replicas[name]
            if replica.paused or not replica.bot.running:
                continue
            values = await replica.bot.metrics()
            if values is not None and "watchdog_outbox_size" in values:
                return values["watchdog_outbox_size"]
        return None

    async def outbox_empty(self) -> bool:
        return await self.outbox_size() == 0

    # ---- ground truth ------------------------------------------------------------------

    def open_window(self, project: str, note: str) -> Window:
        job_id = self.spare[project].pop(0)
        window = Window(job_id, CHANNELS[project], note, time.time())
        self.sim.project(self.project_ids[project]).set_health(
            job_id, "error", "chaos_error", f"Chaos window: {note}"
        )
        self.record.windows.append(window)
        return window

    def close_window(self, window: Window) -> None:
        project = self.project_of[window.job_id]
        self.sim.project(self.project_ids[project]).set_health(window.job_id, "ok")
        window.closed = time.time()

    def post_of(self, window: Window) -> list[str]:
        """The ts of every top-level post naming the window's job."""
        return [m.ts for m in self.standin.top_level() if window.job_id in m.text]

    def posted(self, window: Window) -> bool:
        return bool(self.post_of(window))

    def resolved(self, window: Window) -> bool:
        return any(
            window.job_id in m.text and m.edited >= 1 and "RESOLVED" in m.text
            for m in self.standin.top_level()
        )

    def listings_since(self, project: str, monotonic: float) -> list[float]:
        """When the simulator got requests for ``project`` after ``monotonic``."""
        stats = self.sim.project(self.project_ids[project]).stats
        return [at for at, *_ in stats.request_log if at > monotonic]

    # ---- waiting -----------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], Any], timeout: float, what: str) -> None:
        """Poll ``condition`` (sync or async) until true; :class:`ChaosTimeout` if not."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise ChaosTimeout(f"timed out after {timeout:g}s waiting for {what}")
            await asyncio.sleep(_POLL)  # the replicas are other processes: poll them
