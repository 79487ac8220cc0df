"""``polaris-watchdog demo``: the whole bot, no credentials, everything visible in the terminal.

Three servers on loopback: the Polaris simulator (one organisation with two projects:
``prod`` holds the ``demo`` scenario, ``staging`` a smaller one), a Slack stand-in that
prints every message the bot posts, edits or answers, and the bot itself with its real
Slack notifier, HTTP endpoints and command handling, watching both projects as
``[[projects]]`` (prod's alerts go to the ``[slack]`` channel, staging's to a channel of
its own). A short script then plays an on-call engineer: it lists unhealthy jobs (of both
projects), acknowledges a failed batch job (the alert shows who owns it; the
unacknowledged unhealthy stream escalates), pauses and resumes a stream, cancels a job
(with the confirmation click), shows that a non-operator is refused, asks about a staging
job as ``staging/<prefix>``, lists the maintenance window that holds the log tables'
alerts back, and asks for the digest of the last hour. Lines typed on stdin are sent as
``/polaris`` commands by the operator. ``--speed`` runs simulated time faster.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from watchdog.app import Options, build_app
from watchdog.devtools.polaris_sim.simulator import SimProject, Simulator, build_scenario, serve
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.logs import configure_logging
from watchdog.rules.holder import RulesHolder
from watchdog.rules.load import parse_ruleset
from watchdog.rules.ruleset import RuleSet
from watchdog.settings import Settings
from watchdog.store.memory import MemoryStore

OPERATOR = "UDEMOOPS"
VISITOR = "UDEMOGUEST"
SIGNING_SECRET = "demo-signing-secret"
CHANNEL = "C0DEMOALERTS"
STAGING_CHANNEL = "C0DEMOSTAGING"
AUDIT_CHANNEL = "C0DEMOAUDIT"  # [slack] audit_channel of demo_rules.toml
#: The demo's projects: name → (simulated project id, key, the variable that holds it,
#: its own alert channel or None for [slack] channel).
PROJECTS: dict[str, tuple[str, str, str, str | None]] = {
    "prod": ("demo-project", "sim-key", "DEMO_POLARIS_KEY_PROD", None),
    "staging": ("demo-staging", "sim-key-staging", "DEMO_POLARIS_KEY_STAGING", STAGING_CHANNEL),
}
LEADS = "C0DEMOLEADS"  # where escalations link to their alert


def demo_rules(polaris_url: str = "http://127.0.0.1:8181") -> RuleSet:
    """The packaged demo rules, with a ``[[projects]]`` entry per demo project on the
    simulator at ``polaris_url`` (known only once it is served)."""
    text = Path(__file__).with_name("demo_rules.toml").read_text("utf-8")
    for name, (project_id, _, env, channel) in PROJECTS.items():
        text += (
            f'\n[[projects]]\nname = "{name}"\nurl = "{polaris_url}"\nid = "{project_id}"\n'
            f'api_key_env = "{env}"\n'
        ) + (f'channel = "{channel}"\n' if channel else "")
    return parse_ruleset(text, "demo_rules.toml")


def demo_simulator(clock: Callable[[], float]) -> Simulator:
    """prod with the demo scenario; staging with three jobs, one of them in trouble for
    35 s of every 90 (from 10 s: a little before prod's)."""
    (prod_id, prod_key, _, _), (staging_id, staging_key, _, _) = PROJECTS.values()
    sim = build_scenario("demo", clock=clock, project_id=prod_id, api_key=prod_key)
    staging = sim.add_project(project_id=staging_id, api_key=staging_key)
    staging.add_job(table="signups")
    staging.add_job(table="search_events", behaviour="recovers", trouble=(10.0, 45.0))
    staging.add_job(table="nightly_export", type="batch")
    return sim


def scaled_clock(speed: float) -> tuple[Callable[[], float], Callable[[float], Awaitable[None]]]:
    """A clock running ``speed`` times faster than the wall clock, and its sleep."""
    origin = time.time()

    def clock() -> float:
        return origin + (time.time() - origin) * speed

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / speed)

    return clock, sleep


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


class DemoUser:
    """Sends signed slash commands and button clicks to the bot, as Slack would."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        bot_url: str,
        standin: SlackStandIn,
        say: Callable[[str], None],
    ) -> None:
        self._session = session
        self._bot = bot_url
        self._standin = standin
        self._say = say
        self._count = 0

    async def command(self, text: str, user: str = OPERATOR) -> str:
        """Run ``/polaris text`` as ``user``; returns the response-URL token."""
        self._count += 1
        token = f"cmd{self._count}"
        body = urlencode(
            {
                "team_id": "TDEMO",
                "channel_id": CHANNEL,
                "user_id": user,
                "user_name": user,
                "command": "/polaris",
                "text": text,
                "trigger_id": f"trigger{self._count}",
                "response_url": self._standin.response_url(token),
            }
        )
        self._say(f"\n» <{user}> /polaris {text}")
        async with self._session.post(
            f"{self._bot}/slack/commands", data=body, headers=sign(body)
        ) as resp:
            answer = await resp.text()
        if answer:
            try:
                self._say(f"  (ack) {json.loads(answer).get('text', '')}")
            except ValueError:
                self._say(f"  (ack) {answer}")
        return token

    async def click(self, token: str, action_id: str, user: str = OPERATOR) -> bool:
        """Click the first ``action_id`` button of the last answer sent to ``token``."""
        for reply in reversed(self._standin.responses.get(token, [])):
            for block in reply.get("blocks") or []:
                for element in block.get("elements", []) if block.get("type") == "actions" else []:
                    if element.get("action_id") == action_id:
                        return await self._send_click(element, reply, user)
        self._say(f"  (no {action_id} button to click)")
        return False

    async def _send_click(self, button: dict[str, Any], message: dict[str, Any], user: str) -> bool:
        self._count += 1
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "TDEMO"},
            "channel": {"id": CHANNEL},
            "container": {"type": "message", "is_ephemeral": True},
            "trigger_id": f"trigger{self._count}",
            "response_url": self._standin.response_url(f"click{self._count}"),
            "message": {"text": message.get("text", ""), "blocks": message.get("blocks", [])},
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": "b",
                    "value": button.get("value", ""),
                    "type": "button",
                }
            ],
        }
        label = button.get("text", {}).get("text", button["action_id"])
        self._say(f"\n» <{user}> clicks [{label}] and confirms")
        body = urlencode({"payload": json.dumps(payload)})
        async with self._session.post(
            f"{self._bot}/slack/interactions", data=body, headers=sign(body)
        ) as resp:
            await resp.read()
        return True


def _prefix(project: Simulator | SimProject, table: str) -> str:
    return next(j.id for j in project.jobs if j.table == table)[:8]


async def _script(
    user: DemoUser,
    sim: Simulator,
    sleep: Callable[[float], Awaitable[None]],
    say: Callable[[str], None],
) -> None:
    """An on-call engineer's first minutes, in simulated seconds."""
    await sleep(27)
    await user.command("jobs health=error")
    await sleep(3)
    await user.command(f"ack {_prefix(sim, 'daily_import')}")
    await sleep(3)
    stream = _prefix(sim, "billing_events")
    await user.command(f"pause {stream}")
    await sleep(6)
    await user.command(f"resume {stream}")
    await sleep(6)
    await user.command(f"pause {stream}", user=VISITOR)
    await sleep(6)
    token = await user.command(f"cancel {_prefix(sim, 'partner_feed')}")
    await sleep(4)
    await user.click(token, "wd_cancel")
    await sleep(4)
    staging = sim.project(PROJECTS["staging"][0])
    await user.command(f"status staging/{_prefix(staging, 'search_events')}")
    await sleep(4)
    await user.command("maintenance")
    await sleep(22)
    await user.command("alerts")
    await sleep(6)
    await user.command("digest 1h")
    say(
        "\n(demo script done — alerts keep firing and resolving; type commands such as "
        "`status <job>`, `jobs project=staging` or `silence job-unhealthy 10m`, "
        "Ctrl-C to stop)"
    )


async def _stdin(user: DemoUser) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if line.strip():
            await user.command(line.strip().removeprefix("/polaris").strip())


async def _site(app: web.Application | web.AppRunner) -> tuple[web.AppRunner, str]:
    runner = app if isinstance(app, web.AppRunner) else web.AppRunner(app)
    if not isinstance(app, web.AppRunner):
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def demo(*, speed: float, duration: float | None, out: TextIO, interactive: bool) -> None:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    clock, sleep = scaled_clock(speed)
    sim = demo_simulator(clock)
    sim_runner, sim_url = await _site(await serve(sim, "127.0.0.1", 0))
    channels = {CHANNEL, STAGING_CHANNEL, AUDIT_CHANNEL, LEADS}
    standin = SlackStandIn(bot_token="xoxb-demo", printer=say, channels=channels)
    standin_runner, standin_url = await _site(standin.app())
    standin.bind(standin_url)
    settings = Settings(
        SLACK_BOT_TOKEN=SecretStr("xoxb-demo"),
        SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
        SLACK_APP_TOKEN=None,
        SLACK_API_URL=standin.api_url,
        WATCHDOG_STATE=":memory:",
    )
    options = Options(
        clock=clock,
        sleep=sleep,
        store=MemoryStore(clock=clock),
        response_url_prefixes=(standin_url,),
        # The simulator's keys, as the rules' api_key_env name them: no real variable
        # of the process is read or set.
        environ={env: key for _, key, env, _ in PROJECTS.values()},
    )
    app = build_app(settings, RulesHolder(demo_rules(sim_url)), options)
    bot_runner, bot_url = await _site(app)
    say(
        f"polaris-watchdog demo — simulator {sim_url}, Slack stand-in {standin_url}, "
        f"bot {bot_url} (speed ×{speed:g})"
    )
    staging = sim.project(PROJECTS["staging"][0])
    say(
        f"Two projects: prod ({len(sim.jobs)} jobs; trouble starts ~15 s into each 90 s "
        f"cycle and clears at ~50 s; alerts in {CHANNEL}) and staging ({len(staging.jobs)} "
        f"jobs; one in trouble from ~10 s to ~45 s; alerts in {STAGING_CHANNEL}).\n"
        "Every message below is what the bot posts to Slack.\n"
    )
    tasks = []
    async with aiohttp.ClientSession() as session:
        user = DemoUser(session, bot_url, standin, say)
        tasks.append(asyncio.create_task(_script(user, sim, sleep, say)))
        if interactive and sys.stdin.isatty():
            tasks.append(asyncio.create_task(_stdin(user)))
        try:
            if duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bot_runner.cleanup()
            await standin_runner.cleanup()
            await sim_runner.cleanup()


def run_demo(
    *,
    speed: float = 1.0,
    duration: float | None = None,
    out: TextIO | None = None,
    interactive: bool = True,
) -> int:
    out = out or sys.stdout
    configure_logging("console", level="warning")
    try:
        asyncio.run(demo(speed=speed, duration=duration, out=out, interactive=interactive))
    except KeyboardInterrupt:
        print("\nbye", file=out)
    return 0
