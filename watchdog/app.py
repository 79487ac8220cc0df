"""Wiring and lifecycle of the long-lived bot (``polaris-watchdog run``).

Every dependency is created once here, in order, and passed down: one store, one aiohttp
``ClientSession``, one Polaris client per project (each with its own key and its
organisation's quota), one Slack ``AsyncWebClient``. The running parts form a
:class:`Bot`, built whole at start-up inside aiohttp's ``cleanup_ctx`` and torn down in
reverse; ``web.run_app`` owns the signals. On SIGTERM the replica stops ticking after the
ticks in flight (bounded), releases its leases so another replica takes over at once, lets
the commands in flight finish, flushes the outbox as far as Slack allows, and closes the
store — all within :data:`SHUTDOWN_BUDGET` seconds, then exits 0. SIGHUP reloads the
rules file.

``/healthz`` says whether the replica watches everything it should (503 with the reasons
when it cannot); ``/livez`` only whether it is alive (for a liveness probe, which must not
restart a bot for a Polaris or database outage it is reporting).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from watchdog.deliver.notifier import Notifier
from watchdog.deliver.outbox import Dispatcher
from watchdog.deliver.terminal import TerminalNotifier
from watchdog.domain.outgoing import AuditEntry
from watchdog.metrics import CONTENT_TYPE, BotMetrics
from watchdog.polaris.client import PolarisClient
from watchdog.rules.holder import RulesHolder
from watchdog.rules.tables import STALL_AFTER
from watchdog.settings import ProjectConfig, Settings
from watchdog.slack.alerts.notifier import SlackNotifier, SlackUnreachableError
from watchdog.slack.commands.oncall import OnCallService
from watchdog.slack.commands.replay import ReplayGuard
from watchdog.slack.commands.response_urls import trusted_response_urls
from watchdog.slack.commands.server import HEADER_TIMEOUT, SlackEndpoints, add_routes
from watchdog.slack.commands.service import CommandService
from watchdog.slack.commands.verify import RequestVerifier
from watchdog.slack.web import SLACK_TIMEOUT, SlackWebClient, open_web_client
from watchdog.store import Store
from watchdog.store.open import describe_store, open_store
from watchdog.watch.daily import DailyDigest
from watchdog.watch.fleet import Fleet
from watchdog.watch.loop import Watcher

log = structlog.get_logger(__name__)

SHUTDOWN_BUDGET = 8.0  # seconds; the container gives 10 before SIGKILL
BOT: web.AppKey[Bot] = web.AppKey("bot")


@dataclass(frozen=True)
class Options:
    """What tests, benchmarks and the demo inject instead of the real thing."""

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: real time for request signatures, whatever clock drives the watch
    wall_clock: Callable[[], float] = time.time
    store: Store | None = None
    terminal_write: Callable[[str], None] | None = None
    #: where a response_url may point (None: Slack's hosts, and the origin of
    #: SLACK_API_URL when it is set)
    response_url_prefixes: tuple[str, ...] | None = None
    environ: Mapping[str, str] | None = None  # the projects' keys (None: the process's)


@dataclass
class Bot:
    """The running parts, reachable from handlers and tests via ``app[BOT]``."""

    settings: Settings
    rules: RulesHolder
    options: Options
    metrics: BotMetrics
    store: Store
    session: aiohttp.ClientSession
    projects: dict[str, PolarisClient]
    notifier: Notifier
    dispatcher: Dispatcher
    fleet: Fleet
    commands: CommandService
    endpoints: SlackEndpoints | None
    started_at: float

    @property
    def clock(self) -> Callable[[], float]:
        return self.options.clock

    @property
    def watchers(self) -> dict[str, Watcher]:
        return self.fleet.watchers

    def liveness(self) -> str | None:
        """Why the replica looks stuck (None: alive): a watch loop it runs, or its lease
        loop, has not made progress for three of its periods (and at least
        :data:`~watchdog.rules.tables.STALL_AFTER`: an outage makes single rounds slow,
        not stuck; for a watch loop that is ``[watch]``'s health window)."""
        now = self.clock()
        window = self.rules.current.watch.health_window
        for name in self.fleet.leads():
            watcher = self.watchers[name]
            seen = (watcher.last_tick_at, watcher.last_progress_at)
            last = max((t for t in seen if t is not None), default=self.started_at)
            if now - last > window:
                return f"project {name}: the watch loop has not ticked for {now - last:.0f}s"
        last_round = self.fleet.last_round_at or self.started_at
        if now - last_round > max(3 * self.fleet.renew_every + 5, STALL_AFTER):
            return f"the lease loop has not run for {now - last_round:.0f}s"
        return None

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: 200 while the replica watches everything it leads, else 503 with
        every reason."""
        leads = self.fleet.leads()
        problems = [
            {"project": None, "kind": p.kind, "problem": p.message, "since": _iso(p.since)}
            for p in self.fleet.health.problems.values()
        ]
        for name in leads:
            problems += [
                {"project": name, "kind": p.kind, "problem": p.message, "since": _iso(p.since)}
                for p in self.watchers[name].health.problems.values()
            ]
        stuck = self.liveness()
        if stuck is not None:
            problems.insert(0, {"project": None, "kind": "stalled", "problem": stuck})
        if problems:
            status, detail = "degraded", str(problems[0]["problem"])
        else:
            ticked = any(self.watchers[n].last_tick_at is not None for n in leads)
            status, detail = "ok", ("ok" if ticked or not leads else "starting")
        self.metrics.healthy.set(0 if problems else 1)
        body = {
            "status": status,
            "detail": detail,
            "replica": self.settings.replica,
            "leads": leads,
            "problems": problems,
        }
        return (200 if not problems else 503), body


def response_urls(settings: Settings, options: Options) -> tuple[str, ...]:
    if options.response_url_prefixes is not None:
        return options.response_url_prefixes
    explicit = "slack_api_url" in settings.model_fields_set
    return trusted_response_urls(settings.slack_api_url if explicit else None)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


# ---- start-up, in order ---------------------------------------------------------------


def _polaris(
    session: aiohttp.ClientSession, project: ProjectConfig, bot_rules: RulesHolder, m: BotMetrics
) -> PolarisClient:
    watch = bot_rules.current.watch
    return PolarisClient(
        session,
        project.api_url,
        project.project_id,
        project.api_key,
        concurrency=project.concurrency or watch.concurrency,
        max_rate=project.max_rate or watch.max_rate,
        timeout=watch.timeout,
        observer=m.polaris_observer(project.name),
    )


async def _notifier(
    settings: Settings,
    rules: RulesHolder,
    options: Options,
    store: Store,
    metrics: BotMetrics,
    stack: contextlib.AsyncExitStack,
) -> tuple[Notifier, SlackWebClient | None]:
    if settings.slack_bot_token is None:
        log.info("slack.disabled", reason="SLACK_BOT_TOKEN is not set: alerts go to the terminal")
        terminal = TerminalNotifier(
            write=options.terminal_write,
            group_threshold=lambda: rules.current.slack.group_threshold,
        )
        return terminal, None
    # Its own session: slack-sdk's timeout does not apply to a shared one. No retries
    # inside slack-sdk: the outbox retries (429, 5xx, connection errors) with its own
    # backoff, claiming the item afresh under the project's lease each time, where an SDK
    # retry could post after the lease moved on, or re-post what a dropped connection
    # had delivered without looking first.
    web_client = open_web_client(
        settings.slack_bot_token.get_secret_value(), settings.slack_api_url, timeout=SLACK_TIMEOUT
    )
    stack.push_async_callback(web_client.close)
    notifier = SlackNotifier(web_client, store, rules, clock=options.clock, metrics=metrics)
    try:
        user = await notifier.check_auth()
        log.info("slack.connected", bot_user=user)
    except SlackUnreachableError as exc:
        # Refusing to start would turn a Slack outage into a watch outage (and a
        # crash loop): watch anyway and let the outbox hold alerts until Slack is back.
        log.warning("slack.unreachable_at_start", error=str(exc))
    return notifier, web_client


async def _audit(
    store: Store, dispatcher: Dispatcher, clock: Callable[[], float], entry: AuditEntry
) -> None:
    """Queue an audit line durably and wake delivery (the commands' audit sink).

    Unfenced: any replica serving Slack may write one. A line about a job goes with the
    job's project; one about no job (a silence) with the coordinator ("")."""
    await store.enqueue([entry], project=entry.project or "", now=clock())
    dispatcher.wake()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Build every part in order, run, and take everything down in reverse."""
    settings: Settings = app[_SETTINGS]
    rules: RulesHolder = app[_RULES]
    options: Options = app[_OPTIONS]
    metrics = BotMetrics()
    async with contextlib.AsyncExitStack() as stack:
        projects = settings.projects(rules.current, options.environ)
        store = options.store or open_store(settings.watchdog_state, clock=options.clock)
        log.info("store.opening", state=describe_store(settings.watchdog_state))
        await store.open()
        stack.push_async_callback(store.close)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(100, rules.current.watch.concurrency * 2)),
            headers={"User-Agent": "polaris-watchdog"},
        )
        stack.push_async_callback(session.close)
        clients = {p.name: _polaris(session, p, rules, metrics) for p in projects}
        notifier, web_client = await _notifier(settings, rules, options, store, metrics, stack)
        fleet: Fleet | None = None
        dispatcher = Dispatcher(
            store,
            notifier,
            clock=options.clock,
            sleep=options.sleep,
            metrics=metrics,
            fences=lambda: fleet.fences() if fleet is not None else {},
            poll=rules.current.watch.interval,
        )
        watchers = {
            p.name: Watcher(
                project=p.name,
                client=clients[p.name],
                store=store,
                rules=rules,
                on_commit=dispatcher.wake,
                clock=options.clock,
                sleep=options.sleep,
                metrics=metrics,
                channel=p.channel,
            )
            for p in projects
        }
        fleet = Fleet(
            watchers,
            store,
            rules,
            replica=settings.replica,
            clock=options.clock,
            sleep=options.sleep,
            on_change=dispatcher.wake,
            daily=DailyDigest(store, rules, options.clock),
        )
        commands = OnCallService(
            polaris=clients,
            store=store,
            rules=lambda: rules.current,
            audit=functools.partial(_audit, store, dispatcher, options.clock),
            session=session,
            metrics=metrics,
            clock=options.clock,
            response_url_prefixes=response_urls(settings, options),
        )
        endpoints = None
        if settings.slack_signing_secret is not None:
            verifier = RequestVerifier(settings.slack_signing_secret, clock=options.wall_clock)
            replays = ReplayGuard(store.claim_once, clock=options.wall_clock)
            endpoints = SlackEndpoints(commands, verifier, replays, metrics)
        if settings.slack_app_token is not None and web_client is not None:
            # Loaded only in Socket Mode: every other set-up runs without it.
            from watchdog.slack.commands.socket import SocketModeReceiver

            receiver = SocketModeReceiver(settings.slack_app_token, web_client, commands)
            await receiver.start()
            stack.push_async_callback(receiver.close)
            log.info("slack.socket_mode", state="starting")
        bot = Bot(
            settings=settings,
            rules=rules,
            options=options,
            metrics=metrics,
            store=store,
            session=session,
            projects=clients,
            notifier=notifier,
            dispatcher=dispatcher,
            fleet=fleet,
            commands=commands,
            endpoints=endpoints,
            started_at=options.clock(),
        )
        app[BOT] = bot
        await fleet.round()  # take the leases before serving: no idle first period
        # Everything built so far lives as long as the process: move it out of the cyclic
        # GC's sight, so the full collections that do happen are short (they were most of
        # the slash-command ack p99 in the benchmark).
        gc.collect()
        gc.freeze()
        leasing = asyncio.create_task(fleet.run(), name="leases")
        delivering = asyncio.create_task(dispatcher.run(), name="deliver")
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # Not in the main thread (tests), or Windows: no SIGHUP.
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, rules.reload_soon)
        log.info(
            "watch.started",
            replica=settings.replica,
            projects=sorted(clients),
            leads=fleet.leads(),
            rules=len(rules.current.rules),
            interval=rules.current.watch.interval,
        )
        yield
        await _shutdown(bot, leasing, delivering)


async def _shutdown(bot: Bot, leasing: asyncio.Task[None], delivering: asyncio.Task[None]) -> None:
    started = time.monotonic()
    leasing.cancel()
    await asyncio.gather(leasing, return_exceptions=True)
    await bot.fleet.stop(within=3.0)
    await bot.commands.close(grace=2.0)
    left = SHUTDOWN_BUDGET - (time.monotonic() - started)
    # The leases are released: what is left waits for whoever leads next, and this
    # replica delivers nothing more for projects it no longer holds.
    remaining = await bot.dispatcher.stop(delivering, within=max(left - 0.5, 0.5))
    log.info("watch.stopped", outbox_left=remaining, seconds=round(time.monotonic() - started, 2))


# ---- HTTP ---------------------------------------------------------------------------


async def _healthz(request: web.Request) -> web.Response:
    status, body = request.app[BOT].health()
    return web.json_response(body, status=status)


async def _livez(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    stuck = bot.liveness()
    body = {"status": "alive" if stuck is None else "stalled", "replica": bot.settings.replica}
    if stuck is not None:
        body["detail"] = stuck
    return web.json_response(body, status=200 if stuck is None else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[BOT].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


_SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
_RULES: web.AppKey[RulesHolder] = web.AppKey("rules")
_OPTIONS: web.AppKey[Options] = web.AppKey("options")


def build_app(
    settings: Settings, rules: RulesHolder, options: Options | None = None
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[_SETTINGS] = settings
    app[_RULES] = rules
    app[_OPTIONS] = options or Options()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/livez", _livez)
    app.router.add_get("/metrics", _metrics)
    if settings.slack_signing_secret is not None:
        # Routes must exist before start-up freezes the router; the handlers behind
        # them are built during start-up.
        add_routes(app, lambda: app[BOT].endpoints if BOT in app else None)
    app.cleanup_ctx.append(_lifecycle)
    return app


def run(settings: Settings, rules: RulesHolder) -> None:
    host, port = settings.listen_host_port
    app = build_app(settings, rules)
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        shutdown_timeout=2.0,
        access_log=None,
        handle_signals=True,
        # Also bounds how long a new connection may take to send its request's headers.
        keepalive_timeout=HEADER_TIMEOUT,
    )
