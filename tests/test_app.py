"""The assembled bot: start-up, /healthz, /metrics, Slack routes, reload and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from harness import FakeClock, holder
from pydantic import SecretStr

from watchdog.app import BOT, Options, build_app
from watchdog.devtools.demo import sign
from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.settings import Settings
from watchdog.store.memory import MemoryStore

RULES = """
[watch]
interval = "30s"
[slack]
channel = "C0ALERTS"
operators = ["UOPS1"]
[[rules]]
name = "job-unhealthy"
kind = "health"
severity = "critical"
"""
SECRET = "app-test-signing-secret"


@dataclass
class Running:
    sim: Simulator
    standin: SlackStandIn
    bot: TestServer
    clock: FakeClock


async def _forever(_: float) -> None:
    """A sleep that never ends: the loop ticks once and then waits to be cancelled."""
    await asyncio.Event().wait()


@asynccontextmanager
async def running_bot(
    *,
    slack: bool = True,
    bot_token: str = "xoxb-standin",
    standin: SlackStandIn | None = None,
    rules: str = RULES,
) -> AsyncIterator[Running]:
    clock = FakeClock()
    sim = Simulator(clock=clock)
    sim.add_job(table="payments", behaviour="static_error")
    sim.add_job(table="orders")
    standin = standin or SlackStandIn()
    standin.clock = clock
    async with TestServer(sim.app()) as polaris, TestServer(standin.app()) as slack_server:
        standin.bind(str(slack_server.make_url("")))
        settings = Settings(
            POLARIS_API_URL=str(polaris.make_url("")),
            POLARIS_PROJECT_ID=sim.project_id,
            POLARIS_API_KEY=SecretStr(sim.api_key),
            SLACK_BOT_TOKEN=SecretStr(bot_token) if slack else None,
            SLACK_SIGNING_SECRET=SecretStr(SECRET),
            SLACK_APP_TOKEN=None,
            SLACK_API_URL=standin.api_url,
            WATCHDOG_STATE=":memory:",
        )
        options = Options(
            clock=clock,
            sleep=_forever,
            store=MemoryStore(clock=clock),
            terminal_write=lambda line: None,
            response_url_prefixes=(standin.response_url(""),),
        )
        app = build_app(settings, holder(rules), options)
        async with TestServer(app) as bot:
            yield Running(sim, standin, bot, clock)


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_first_tick_posts_the_alert_and_healthz_says_ok() -> None:
    """On start the loop ticks at once: the unhealthy job is posted and /healthz is 200."""
    async with running_bot() as run, aiohttp.ClientSession() as http:
        await _until(lambda: len(run.standin.top_level()) == 1)
        assert "payments" in run.standin.top_level()[0].text
        async with http.get(run.bot.make_url("/healthz")) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"


async def test_healthz_is_503_when_the_loop_has_not_ticked_for_three_intervals() -> None:
    """A loop stuck for more than three intervals makes /healthz and /livez answer 503."""
    async with running_bot() as run, aiohttp.ClientSession() as http:
        bot = run.bot.app[BOT]
        watcher = bot.watchers["default"]
        await _until(lambda: watcher.last_tick_at is not None)
        async with http.get(run.bot.make_url("/livez")) as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "alive"
        run.clock.advance(3 * 30 + 1)
        async with http.get(run.bot.make_url("/healthz")) as resp:
            assert resp.status == 503
            body = await resp.json()
            assert "has not ticked" in body["detail"]
            assert body["leads"] == ["default"] and body["replica"]
        async with http.get(run.bot.make_url("/livez")) as resp:
            assert resp.status == 503 and "has not ticked" in (await resp.json())["detail"]


async def test_a_loop_slowed_by_an_outage_is_alive_for_a_minute() -> None:
    """With a short interval, a loop that has not come round for three intervals (each
    store call may take 10 s in a database outage) is still alive; only a minute without
    progress makes /livez say it is stuck (a restart cures a stuck loop, not an outage)."""
    short = RULES.replace('interval = "30s"', 'interval = "5s"')
    async with running_bot(rules=short) as run, aiohttp.ClientSession() as http:
        watcher = run.bot.app[BOT].watchers["default"]
        await _until(lambda: watcher.last_tick_at is not None)
        run.clock.advance(30)
        async with http.get(run.bot.make_url("/livez")) as resp:
            assert resp.status == 200, await resp.text()
        run.clock.advance(31)
        async with http.get(run.bot.make_url("/livez")) as resp:
            assert resp.status == 503 and "has not ticked" in (await resp.json())["detail"]


async def test_metrics_expose_ticks_polaris_requests_and_firing_alerts() -> None:
    """/metrics is Prometheus text with the bot's own counters after a tick."""
    async with running_bot() as run, aiohttp.ClientSession() as http:
        await _until(lambda: len(run.standin.top_level()) == 1)
        async with http.get(run.bot.make_url("/metrics")) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
    assert 'watchdog_ticks_total{outcome="ok",project="default"} 1.0' in text
    assert (
        'watchdog_polaris_requests_total{endpoint="list_jobs",outcome="200",project="default"}'
        in text
    )
    assert 'watchdog_alerts_firing{project="default",rule="job-unhealthy"} 1.0' in text
    assert 'watchdog_leader{project="default"} 1.0' in text
    assert 'watchdog_last_tick_timestamp_seconds{project="default"} 1.7' in text
    assert 'watchdog_slack_calls_total{method="chat_postMessage"} 1.0' in text


async def test_signed_slash_command_reaches_the_command_service_through_the_app() -> None:
    """POST /slack/commands is routed, verified and answered by the running bot."""
    async with running_bot() as run, aiohttp.ClientSession() as http:
        body = urlencode(
            {
                "user_id": "UOPS1",
                "channel_id": "C0ALERTS",
                "command": "/polaris",
                "text": "help",
                "team_id": "T1",
                "trigger_id": "t",
                "response_url": run.standin.response_url("r1"),
            }
        )
        async with http.post(
            run.bot.make_url("/slack/commands"), data=body, headers=sign(body, SECRET)
        ) as resp:
            assert resp.status == 200
            assert "Usage" in (await resp.json())["text"]
        forged = sign(body, "not-the-secret")
        async with http.post(
            run.bot.make_url("/slack/commands"), data=body, headers=forged
        ) as resp:
            assert resp.status == 401


async def test_a_replayed_signed_request_is_not_served_again_by_the_app() -> None:
    """The app remembers served requests in its store: the same signed request posted
    again gets an empty 200 and is counted as replayed."""
    async with running_bot() as run, aiohttp.ClientSession() as http:
        body = urlencode(
            {
                "user_id": "UOPS1",
                "channel_id": "C0ALERTS",
                "command": "/polaris",
                "text": "help",
                "response_url": run.standin.response_url("r1"),
            }
        )
        headers = sign(body, SECRET)
        answers = []
        for _ in range(3):
            async with http.post(
                run.bot.make_url("/slack/commands"), data=body, headers=headers
            ) as resp:
                answers.append((resp.status, await resp.text()))
        assert answers[0][0] == 200 and "Usage" in answers[0][1]
        assert answers[1:] == [(200, ""), (200, "")]
        metrics = run.bot.app[BOT].metrics.registry
        replayed = {"command": "commands", "outcome": "replayed"}
        assert metrics.get_sample_value("watchdog_commands_total", replayed) == 2


async def test_without_a_bot_token_alerts_go_to_the_terminal() -> None:
    """No SLACK_BOT_TOKEN: the terminal notifier prints FIRING lines instead."""
    lines: list[str] = []
    clock = FakeClock()
    sim = Simulator(clock=clock)
    sim.add_job(table="payments", behaviour="static_error")
    async with TestServer(sim.app()) as polaris:
        settings = Settings(
            POLARIS_API_URL=str(polaris.make_url("")),
            POLARIS_PROJECT_ID=sim.project_id,
            POLARIS_API_KEY=SecretStr(sim.api_key),
            SLACK_BOT_TOKEN=None,
            SLACK_SIGNING_SECRET=None,
            SLACK_APP_TOKEN=None,
            WATCHDOG_STATE=":memory:",
        )
        options = Options(
            clock=clock, sleep=_forever, store=MemoryStore(clock=clock), terminal_write=lines.append
        )
        app = build_app(settings, holder(RULES), options)
        async with TestServer(app):
            await _until(lambda: any("FIRING" in line for line in lines))
    assert any("job-unhealthy" in line and "payments" in line for line in lines)


async def test_a_bad_slack_token_stops_start_up_with_a_clear_error() -> None:
    """auth.test failing at start-up raises SlackAuthError naming SLACK_BOT_TOKEN."""
    from watchdog.slack.alerts.notifier import SlackAuthError

    with pytest.raises(SlackAuthError, match="SLACK_BOT_TOKEN"):
        async with running_bot(bot_token="xoxb-wrong"):
            pass


async def test_slack_down_at_start_up_does_not_stop_the_watch() -> None:
    """Slack answering 503 at start-up: the bot starts, watches, and queues the alert;
    it is posted once Slack is back."""
    async with AsyncExitStack() as stack:
        standin = SlackStandIn()
        standin.down()
        run = await stack.enter_async_context(running_bot(standin=standin))
        bot = run.bot.app[BOT]
        watcher = bot.watchers["default"]
        await _until(lambda: watcher.last_tick_at is not None)
        assert bot.store is not None
        assert bot.dispatcher is not None
        # The alert was committed and Slack refused it: the dispatcher backs off, the
        # alert waits in the outbox.
        await _until(lambda: bot.dispatcher is not None and bot.dispatcher.blocked_until > 0, 20)
        assert await bot.store.outbox_size() == 1
        standin.up()
        # The loop is parked in its backoff (this rig's sleeps never end): deliver now,
        # as it would once the backoff is over.
        assert await bot.dispatcher.deliver_once()
        assert len(standin.top_level()) == 1
        assert await bot.store.outbox_size() == 0


# ---- the real process: signals ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
async def test_process_reloads_on_sighup_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    """`polaris-watchdog run`: SIGHUP reloads (a broken file is refused with FILE:LINE),
    SIGTERM drains and exits 0 well within 10 s."""
    sim = Simulator()
    sim.add_job(table="payments", behaviour="static_error")
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.replace('"30s"', '"1s"'))
    port = _free_port()
    async with TestServer(sim.app()) as polaris, aiohttp.ClientSession() as http:
        env = {
            **os.environ,
            "POLARIS_API_URL": str(polaris.make_url("")),
            "POLARIS_PROJECT_ID": sim.project_id,
            "POLARIS_API_KEY": sim.api_key,
            "WATCHDOG_STATE": str(tmp_path / "state.db"),
            "WATCHDOG_LISTEN": f"127.0.0.1:{port}",
            "WATCHDOG_LOG_FORMAT": "json",
            "SLACK_BOT_TOKEN": "",
            "SLACK_SIGNING_SECRET": "",
            "SLACK_APP_TOKEN": "",
        }
        log = (tmp_path / "bot.log").open("w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "--rules", str(rules)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            async def healthy() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            deadline = time.monotonic() + 30
            while not await healthy():
                assert proc.poll() is None, (tmp_path / "bot.log").read_text()
                assert time.monotonic() < deadline, "bot did not become healthy"
                await asyncio.sleep(0.1)

            def events() -> list[dict[str, object]]:
                out = []
                for line in (tmp_path / "bot.log").read_text().splitlines():
                    if line.startswith("{"):
                        out.append(json.loads(line))
                return out

            rules.write_text(
                RULES + '\n[[rules]]\nname = "failed"\nkind = "execution"\nstatus = ["failed"]\n'
            )
            proc.send_signal(signal.SIGHUP)
            await _until(lambda: any(e["event"] == "rules.reloaded" for e in events()), 10)
            broken = RULES + "\n[[rules]]\nname = 'x'\nkind = 'risng'\n"
            bad_line = broken.splitlines().index("kind = 'risng'") + 1
            rules.write_text(broken)
            proc.send_signal(signal.SIGHUP)
            await _until(lambda: any(e["event"] == "rules.reload_refused" for e in events()), 10)
            refused = next(e for e in events() if e["event"] == "rules.reload_refused")
            assert f"{rules}:{bad_line}: " in str(refused["problems"])

            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 15)
            assert code == 0
            assert time.monotonic() - started < 10
            assert "Traceback" not in (tmp_path / "bot.log").read_text()
            assert sim.api_key not in (tmp_path / "bot.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
