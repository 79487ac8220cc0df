"""Wiring and lifecycle of the long-lived bot (``polaris-watchdog run``).

Every dependency is created once here and passed down: one store, one aiohttp
``ClientSession``, one Polaris client, one Slack ``AsyncWebClient``. Start-up and
shutdown live in aiohttp's ``cleanup_ctx``, in order; ``web.run_app`` owns the signals.
On SIGTERM the bot stops polling after the tick in flight (bounded), lets the commands in
flight finish, flushes the outbox as far as Slack allows, and closes the store — all
within :data:`SHUTDOWN_BUDGET` seconds, then exits 0. SIGHUP reloads the rules file.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import structlog
from aiohttp import web
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)

from watchdog.deliver.notifier import Notifier
from watchdog.deliver.outbox import Dispatcher
from watchdog.deliver.terminal import TerminalNotifier
from watchdog.domain.alerts import DEFAULT_PROJECT
from watchdog.domain.outgoing import AuditEntry
from watchdog.metrics import CONTENT_TYPE, BotMetrics
from watchdog.polaris.client import PolarisClient
from watchdog.rules.holder import RulesHolder
from watchdog.settings import POLARIS_VARS, Settings
from watchdog.slack.alerts.notifier import SlackNotifier, SlackUnreachableError
from watchdog.slack.commands.response_urls import trusted_response_urls
from watchdog.slack.commands.server import HEADER_TIMEOUT, SlackEndpoints, add_routes
from watchdog.slack.commands.service import CommandService
from watchdog.slack.commands.socket import SocketModeReceiver
from watchdog.slack.commands.verify import RequestVerifier
from watchdog.slack.web import SLACK_TIMEOUT, SlackWebClient, open_web_client
from watchdog.store import Store
from watchdog.store.open import describe_store, open_store
from watchdog.watch.loop import Watcher

log = structlog.get_logger(__name__)

SHUTDOWN_BUDGET = 8.0  # seconds; the container gives 10 before SIGKILL
BOT: web.AppKey[Bot] = web.AppKey("bot")


@dataclass
class Bot:
    """The running parts, reachable from handlers and tests via ``app[BOT]``."""

    settings: Settings
    rules: RulesHolder
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: real time for request signatures, whatever clock drives the watch
    wall_clock: Callable[[], float] = time.time
    metrics: BotMetrics = field(default_factory=BotMetrics)
    store: Store | None = None
    session: aiohttp.ClientSession | None = None
    polaris: PolarisClient | None = None
    web: SlackWebClient | None = None
    notifier: Notifier | None = None
    dispatcher: Dispatcher | None = None
    watcher: Watcher | None = None
    commands: CommandService | None = None
    endpoints: SlackEndpoints | None = None
    started_at: float = 0.0
    terminal_write: Callable[[str], None] | None = None
    response_url_prefixes: tuple[str, ...] = trusted_response_urls()

    def healthy(self) -> tuple[bool, str]:
        """Alive while the poll loop has ticked within the last three intervals."""
        interval = self.rules.current.watch.interval
        now = self.clock()
        last = None
        if self.watcher is not None:
            # A tick that is still making progress (answers from Polaris, commits) is a
            # live loop too, however long it takes.
            seen = (self.watcher.last_tick_at, self.watcher.last_progress_at)
            last = max((t for t in seen if t is not None), default=None)
        reference = last if last is not None else self.started_at
        age = now - reference
        if age > 3 * interval:
            return False, f"poll loop has not ticked for {age:.0f}s"
        return True, "ok" if last is not None else "starting"


def lease_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    bot = app[BOT]
    if bot.store is None:
        bot.store = open_store(bot.settings.watchdog_state, clock=bot.clock)
        log.info("store.opening", state=describe_store(bot.settings.watchdog_state))
    await bot.store.open()
    yield
    await bot.store.close()


async def _clients_ctx(app: web.Application) -> AsyncIterator[None]:
    bot = app[BOT]
    settings = bot.settings
    settings.require(*POLARIS_VARS)
    watch = bot.rules.current.watch
    bot.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(100, watch.concurrency * 2)),
        headers={"User-Agent": "polaris-watchdog"},
    )
    try:
        await _clients(bot)
        yield
    finally:  # also when start-up fails half-way (e.g. a refused Slack token)
        if bot.web is not None:
            await bot.web.close()
        await bot.session.close()


async def _clients(bot: Bot) -> None:
    settings = bot.settings
    watch = bot.rules.current.watch
    assert bot.session is not None
    assert settings.polaris_api_url and settings.polaris_project_id and settings.polaris_api_key
    bot.polaris = PolarisClient(
        bot.session,
        settings.polaris_api_url,
        settings.polaris_project_id,
        settings.polaris_api_key,
        concurrency=watch.concurrency,
        max_rate=watch.max_rate,
        timeout=watch.timeout,
        observer=bot.metrics.observe_polaris,
    )
    assert bot.store is not None
    if settings.slack_bot_token is not None:
        # Its own session: slack-sdk's timeout does not apply to a shared one.
        bot.web = open_web_client(
            settings.slack_bot_token.get_secret_value(),
            settings.slack_api_url,
            timeout=SLACK_TIMEOUT,
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=2),
                AsyncServerErrorRetryHandler(max_retry_count=2),
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
            ],
        )
        notifier = SlackNotifier(
            bot.web, bot.store, bot.rules, clock=bot.clock, metrics=bot.metrics
        )
        try:
            user = await notifier.check_auth()
            log.info("slack.connected", bot_user=user)
        except SlackUnreachableError as exc:
            # Refusing to start would turn a Slack outage into a watch outage (and a
            # crash loop): watch anyway and let the outbox hold alerts until Slack is back.
            log.warning("slack.unreachable_at_start", error=str(exc))
        bot.notifier = notifier
    else:
        log.info("slack.disabled", reason="SLACK_BOT_TOKEN is not set: alerts go to the terminal")
        bot.notifier = TerminalNotifier(
            write=bot.terminal_write,
            group_threshold=lambda: bot.rules.current.slack.group_threshold,
        )


async def _audit(bot: Bot, entry: AuditEntry) -> None:
    """Queue an audit line durably and wake delivery (the commands' audit sink).

    Unfenced: any replica serving Slack may write one. A line about a job goes with the
    job's project; one about no job (a silence) with the coordinator ("")."""
    assert bot.store is not None and bot.dispatcher is not None
    await bot.store.enqueue([entry], project=entry.project or "", now=bot.clock())
    bot.dispatcher.wake()


async def _commands_ctx(app: web.Application) -> AsyncIterator[None]:
    bot = app[BOT]
    settings = bot.settings
    assert bot.polaris and bot.store and bot.session and bot.notifier
    bot.dispatcher = Dispatcher(
        bot.store,
        bot.notifier,
        clock=bot.clock,
        sleep=bot.sleep,
        metrics=bot.metrics,
        fences=lambda: bot.watcher.fences() if bot.watcher is not None else {},
        poll=bot.rules.current.watch.interval,
    )

    bot.commands = CommandService(
        polaris=bot.polaris,
        store=bot.store,
        rules=lambda: bot.rules.current,
        audit=functools.partial(_audit, bot),
        session=bot.session,
        metrics=bot.metrics,
        clock=bot.clock,
        response_url_prefixes=bot.response_url_prefixes,
    )
    receiver: SocketModeReceiver | None = None
    if settings.slack_signing_secret is not None:
        verifier = RequestVerifier(settings.slack_signing_secret, clock=bot.wall_clock)
        bot.endpoints = SlackEndpoints(bot.commands, verifier, bot.metrics)
    if settings.slack_app_token is not None and bot.web is not None:
        receiver = SocketModeReceiver(settings.slack_app_token, bot.web, bot.commands)
        await receiver.start()
        log.info("slack.socket_mode", state="starting")
    yield
    if receiver is not None:
        await receiver.close()


async def _loops_ctx(app: web.Application) -> AsyncIterator[None]:
    bot = app[BOT]
    assert bot.polaris and bot.store and bot.dispatcher and bot.commands
    bot.watcher = Watcher(
        client=bot.polaris,
        store=bot.store,
        rules=bot.rules,
        on_commit=bot.dispatcher.wake,
        clock=bot.clock,
        sleep=bot.sleep,
        metrics=bot.metrics,
        holder=lease_holder(),
    )
    bot.started_at = bot.clock()
    await bot.watcher.load(bot.clock())
    # Everything built so far lives as long as the process: move it out of the cyclic
    # GC's sight, so the full collections that do happen are short (they were most of
    # the slash-command ack p99 in the benchmark).
    gc.collect()
    gc.freeze()
    watch_task = asyncio.create_task(bot.watcher.run(), name="watch")
    deliver_task = asyncio.create_task(bot.dispatcher.run(), name="deliver")
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, bot.rules.reload)
    except (NotImplementedError, RuntimeError):  # not the main thread (tests), or Windows
        pass
    log.info(
        "watch.started",
        rules=len(bot.rules.current.rules),
        interval=bot.rules.current.watch.interval,
    )
    yield
    started = time.monotonic()
    await _stop(watch_task, bot.watcher.idle, within=3.0)
    await bot.commands.close(grace=2.0)
    left = SHUTDOWN_BUDGET - (time.monotonic() - started)
    remaining = await bot.dispatcher.stop(deliver_task, within=max(left - 0.5, 0.5))
    # Released, so a standby takes over now rather than when the lease would expire.
    await bot.store.release_lease(DEFAULT_PROJECT, lease_holder())
    log.info("watch.stopped", outbox_left=remaining, seconds=round(time.monotonic() - started, 2))


async def _stop(task: asyncio.Task[None], idle: asyncio.Event, *, within: float) -> None:
    """Let the tick in flight finish (its commit is atomic either way), then cancel."""
    try:
        await asyncio.wait_for(idle.wait(), within)
    except TimeoutError:
        log.warning("watch.tick_interrupted", waited=within)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _healthz(request: web.Request) -> web.Response:
    ok, why = request.app[BOT].healthy()
    return web.json_response(
        {"status": "ok" if ok else "stalled", "detail": why}, status=200 if ok else 503
    )


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[BOT].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def build_app(
    settings: Settings,
    rules: RulesHolder,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wall_clock: Callable[[], float] = time.time,
    store: Store | None = None,
    terminal_write: Callable[[str], None] | None = None,
    response_url_prefixes: tuple[str, ...] | None = None,
) -> web.Application:
    """The bot as an aiohttp app. Response URLs are trusted on Slack's hosts and on the
    origin of ``SLACK_API_URL`` when it is set, unless ``response_url_prefixes`` says
    otherwise."""
    if response_url_prefixes is None:
        explicit = "slack_api_url" in settings.model_fields_set
        response_url_prefixes = trusted_response_urls(settings.slack_api_url if explicit else None)
    app = web.Application(client_max_size=64 * 1024)
    app[BOT] = Bot(
        settings=settings,
        rules=rules,
        clock=clock,
        sleep=sleep,
        wall_clock=wall_clock,
        store=store,
        terminal_write=terminal_write,
        response_url_prefixes=response_url_prefixes,
    )
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    if settings.slack_signing_secret is not None:
        # Routes must exist before start-up freezes the router; the handlers behind
        # them are built in the commands stage below.
        add_routes(app, lambda: app[BOT].endpoints)
    app.cleanup_ctx.extend([_store_ctx, _clients_ctx, _commands_ctx, _loops_ctx])
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
