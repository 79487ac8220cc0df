"""One bot, several Polaris projects in two organisations: keys, outages, alerts, commands.

The bot is built whole (``app.build_app``) from a rules file with ``[[projects]]`` and
the keys in environment variables. Two organisations are two simulators on two servers:
``prod`` and ``analytics`` in the first, ``staging`` in the second. Time is a fake clock
whose sleeps end when the test moves it, so every watch loop ticks when the test says.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from harness import FakeClock, holder, job_id
from pydantic import SecretStr

from watchdog.app import BOT, Bot, Options, build_app
from watchdog.devtools.demo import sign
from watchdog.devtools.polaris_sim.simulator import SimProject, Simulator
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.settings import Settings
from watchdog.slack.actions import Action, ButtonValue, encode_value
from watchdog.store.memory import MemoryStore

SECRET = "projects-test-signing-secret"
OPERATOR = "UOPS1"
KEYS = {
    "prod": "pok_prod-0123456789abcdef",
    "analytics": "pok_analytics-0123456789abcdef",
    "staging": "pok_staging-0123456789abcdef",
}
ENV = {name: f"POLARIS_API_KEY_{name.upper()}" for name in KEYS}
CHANNELS = {"prod": "C0PROD", "staging": "C0STAGING"}  # analytics: [slack] channel
DEFAULT_CHANNEL = "C0ALERTS"
#: Jobs with chosen ids: "aaaaaa" is a prefix in prod and in staging.
PROD_JOB = "aaaaaa01-0000-4000-8000-000000000001"
STAGING_JOB = "aaaaaa02-0000-4000-8000-000000000002"
ANALYTICS_JOB = "bbbbbb01-0000-4000-8000-000000000003"
RULES = f"""
[watch]
interval = "30s"
no_data_after = "60s"
[ha]
lease = "1h"
[slack]
channel = "{DEFAULT_CHANNEL}"
operators = ["{OPERATOR}"]
[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"
"""


class VirtualTime:
    """A fake clock and a sleep that ends once the test has moved the clock past it."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self._moved = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        until = self.clock() + max(delay, 0.0)
        await asyncio.sleep(0)
        while self.clock() < until:
            moved = self._moved
            await moved.wait()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._moved.set()
        self._moved = asyncio.Event()


class Gate:
    """The simulator's sleep for latency: requests wait until the gate opens."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.opened.set()

    async def __call__(self, delay: float) -> None:
        await self.opened.wait()


def projects_toml(urls: dict[str, str], ids: dict[str, str]) -> str:
    blocks = []
    for name in ("prod", "staging", "analytics"):
        block = (
            f'[[projects]]\nname = "{name}"\nurl = "{urls[name]}"\nid = "{ids[name]}"\n'
            f'api_key_env = "{ENV[name]}"\n'
        )
        if name in CHANNELS:
            block += f'channel = "{CHANNELS[name]}"\n'
        blocks.append(block)
    return "\n".join(blocks)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@dataclass
class Orgs:
    """The bot watching two organisations, with the Slack stand-in it posts to."""

    time: VirtualTime
    org_a: Simulator
    org_b: Simulator
    projects: dict[str, SimProject]
    standin: SlackStandIn
    server: TestServer
    http: aiohttp.ClientSession
    gate: Gate
    tokens: int = 0

    @property
    def bot(self) -> Bot:
        return self.server.app[BOT]

    def texts(self, channel: str) -> list[str]:
        return [m.text for m in self.standin.top_level(channel)]

    async def posted(self, channel: str, check: Callable[[str], bool]) -> str:
        """The first top-level post in ``channel`` that passes ``check``, once there is
        one (delivery runs in the background)."""
        await until(lambda: any(check(t) for t in self.texts(channel)))
        return next(t for t in self.texts(channel) if check(t))

    def all_texts(self) -> list[str]:
        return [m.text for m in self.standin.top_level()]

    async def tick(self) -> None:
        """Move time one interval on and wait until every project has ticked then."""
        self.time.advance(30)
        now = self.time.clock()
        watchers = self.bot.watchers.values()
        await until(lambda: all((w.last_tick_at or 0) >= now for w in watchers))
        await self.bot.dispatcher.deliver_once()

    async def slash(self, text: str, user: str = OPERATOR) -> str:
        """``/polaris text`` signed as Slack sends it; the text of the answer."""
        self.tokens += 1
        token = f"t{self.tokens}"
        body = urlencode(
            {
                "user_id": user,
                "channel_id": DEFAULT_CHANNEL,
                "command": "/polaris",
                "text": text,
                "team_id": "T1",
                "trigger_id": "t",
                "response_url": self.standin.response_url(token),
            }
        )
        url = self.server.make_url("/slack/commands")
        async with self.http.post(url, data=body, headers=sign(body, SECRET)) as resp:
            assert resp.status == 200
            ack: dict[str, Any] = await resp.json()
        await self.bot.commands.drain()
        answers = self.standin.responses.get(token, [])
        return str(answers[-1]["text"]) if answers else str(ack["text"])


@asynccontextmanager
async def two_orgs(
    monkeypatch: pytest.MonkeyPatch, *, hang_prod: bool = False
) -> AsyncIterator[Orgs]:
    """Organisation A (prod, analytics) and B (staging), one unhealthy job in each
    project, and the bot watching all three. ``hang_prod``: prod's Polaris holds every
    request until ``gate`` opens."""
    vt, gate = VirtualTime(), Gate()
    org_a = Simulator(clock=vt.clock, api_key=KEYS["prod"], project_id="proj-a1", sleep=gate)
    analytics = org_a.add_project(project_id="proj-a2", api_key=KEYS["analytics"])
    org_b = Simulator(clock=vt.clock, api_key=KEYS["staging"], project_id="proj-b1", seed=7)
    projects = {"prod": org_a.default, "analytics": analytics, "staging": org_b.default}
    projects["prod"].add_job(table="payments", behaviour="static_error", job_id=PROD_JOB)
    projects["staging"].add_job(table="orders", behaviour="static_error", job_id=STAGING_JOB)
    analytics.add_job(table="clicks", behaviour="static_error", job_id=ANALYTICS_JOB)
    if hang_prod:
        gate.opened.clear()
        projects["prod"].faults.configure({"latency": 1.0})
    standin = SlackStandIn(clock=vt.clock)
    for name, key in KEYS.items():
        monkeypatch.setenv(ENV[name], key)
    async with (
        TestServer(org_a.app()) as server_a,
        TestServer(org_b.app()) as server_b,
        TestServer(standin.app()) as slack,
        aiohttp.ClientSession() as http,
    ):
        standin.bind(str(slack.make_url("")))
        urls = {
            "prod": str(server_a.make_url("")).rstrip("/"),
            "analytics": str(server_a.make_url("")).rstrip("/"),
            "staging": str(server_b.make_url("")).rstrip("/"),
        }
        ids = {name: project.project_id for name, project in projects.items()}
        settings = Settings(
            SLACK_BOT_TOKEN=SecretStr("xoxb-standin"),
            SLACK_SIGNING_SECRET=SecretStr(SECRET),
            SLACK_API_URL=standin.api_url,
            WATCHDOG_STATE=":memory:",
        )
        options = Options(
            clock=vt.clock,
            sleep=vt.sleep,
            store=MemoryStore(clock=vt.clock),
            response_url_prefixes=(standin.response_url(""),),
        )
        rules = holder(RULES + "\n" + projects_toml(urls, ids))
        async with TestServer(build_app(settings, rules, options)) as server:
            orgs = Orgs(vt, org_a, org_b, projects, standin, server, http, gate)
            # Every project that answers has ticked and its alert is posted: from here on
            # nothing happens until the test moves time or sends a command.
            await until(lambda: len(orgs.all_texts()) == (2 if hang_prod else 3))
            try:
                yield orgs
            finally:
                gate.opened.set()


# ---- keys ---------------------------------------------------------------------------------


async def test_no_request_to_one_organisation_carries_another_organisations_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ticks, metrics sweeps and commands of every project: each simulated project saw
    its own key only, and neither organisation saw a request for a project it lacks."""
    async with two_orgs(monkeypatch) as orgs:
        await orgs.tick()
        assert "Paused" in await orgs.slash("pause staging/aaaaaa02")
        assert "clicks" in await orgs.slash(f"status {ANALYTICS_JOB}")
        assert "*3 jobs*" in await orgs.slash("jobs")
    for name, project in orgs.projects.items():
        assert set(project.stats.keys) == {KEYS[name]}, name
        assert project.stats.requests > 0
    assert orgs.org_a.strays.requests == 0 and orgs.org_b.strays.requests == 0
    assert orgs.projects["staging"].stats.status_changes == [(STAGING_JOB, "suspended")]


# ---- alerts ---------------------------------------------------------------------------------


async def test_alerts_of_every_project_name_it_and_go_to_its_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each project's alert says [project] and goes to the project's channel, else to
    [slack] channel (analytics has none of its own)."""
    async with two_orgs(monkeypatch) as orgs:
        [prod] = orgs.texts("C0PROD")
        [staging] = orgs.texts("C0STAGING")
        [analytics] = orgs.texts(DEFAULT_CHANNEL)
    assert prod.startswith("🔴 FIRING [prod] job-unhealthy") and "payments" in prod
    assert staging.startswith("🔴 FIRING [staging] job-unhealthy") and "orders" in staging
    assert analytics.startswith("🔴 FIRING [analytics] job-unhealthy") and "clicks" in analytics


async def test_an_outage_of_one_project_neither_stops_nor_delays_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While prod's Polaris hangs, staging and analytics alert at once; when it answers
    503 for a minute, prod's meta-alert names prod, and the others' new alerts still
    come on their first tick."""
    async with two_orgs(monkeypatch, hang_prod=True) as orgs:
        assert orgs.bot.watchers["prod"].last_tick_at is None  # still waiting on Polaris
        assert orgs.texts("C0PROD") == []
        assert {t.split()[2] for t in orgs.all_texts()} == {"[staging]", "[analytics]"}
        prod = orgs.projects["prod"]
        prod.faults.configure({"error_status": 503})
        orgs.gate.opened.set()
        await until(lambda: orgs.bot.watchers["prod"].last_tick_at is not None)
        fresh = orgs.projects["staging"].add_job(table="refunds", behaviour="static_error")
        await orgs.tick()
        await orgs.posted("C0STAGING", lambda t: fresh.id in t)
        assert orgs.texts("C0PROD") == []  # 30s of outage: not yet no_data_after
        await orgs.tick()
        meta = await orgs.posted("C0PROD", lambda t: "Polaris API problem" in t)
        assert meta.startswith("🔴 FIRING Polaris API problem: [prod] cannot reach Polaris")
        assert "[prod]" not in " ".join(orgs.texts("C0STAGING") + orgs.texts(DEFAULT_CHANNEL))
        prod.faults.clear()
        await orgs.tick()
        await orgs.posted("C0PROD", lambda t: t.startswith("🔴 FIRING [prod] job-unhealthy"))
        await until(lambda: orgs.standin.top_level("C0PROD")[0].edited == 1)  # meta resolved


async def test_a_revoked_key_of_one_project_is_its_meta_alert_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """analytics' key revoked (401): after no_data_after its meta-alert says the key is
    rejected, naming analytics; prod and staging keep alerting on every tick."""
    async with two_orgs(monkeypatch) as orgs:
        orgs.projects["analytics"].api_key = "pok_rotated-by-someone"
        for tick in range(3):
            new = orgs.projects["prod"].add_job(table=f"t{tick}", behaviour="static_error")
            await orgs.tick()
            await orgs.posted("C0PROD", lambda t, new_id=new.id: new_id in t)
        meta = await orgs.posted(DEFAULT_CHANNEL, lambda t: "Polaris API problem" in t)
        assert meta.startswith("🔴 FIRING Polaris API problem: [analytics] Polaris rejects")
        health = orgs.bot.health()[1]
        assert [p["project"] for p in health["problems"]] == ["analytics"]


# ---- commands -------------------------------------------------------------------------------


async def test_project_slash_job_goes_to_that_project_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`status staging/aaaaaa02` asks staging only; `status prod/aaaaaa02` finds nothing."""
    async with two_orgs(monkeypatch) as orgs:
        before = orgs.projects["prod"].stats.requests
        text = await orgs.slash("status staging/aaaaaa02")
        assert STAGING_JOB in text and "orders" in text and "project `staging`" in text
        assert orgs.projects["prod"].stats.requests == before
        assert await orgs.slash("status prod/aaaaaa02") == (
            "⚠️ no job starts with `aaaaaa02` in project prod"
        )


async def test_a_bare_prefix_is_found_in_whichever_project_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pause aaaaaa02` finds the job in staging (the second project) and pauses it there,
    with staging's key; the audit line carries staging."""
    async with two_orgs(monkeypatch) as orgs:
        text = await orgs.slash("pause aaaaaa02")
        assert text.startswith(f"⏸ Paused by <@{OPERATOR}>")
        assert text.endswith("in project `staging`")
        assert orgs.projects["staging"].stats.status_changes == [(STAGING_JOB, "suspended")]
        assert orgs.projects["prod"].stats.status_changes == []
        await orgs.bot.dispatcher.deliver_once()
        audit = [t for t in orgs.all_texts() if "paused job" in t]
        assert audit == [
            f"✅ <@{OPERATOR}> paused job `{STAGING_JOB}` (table orders) in project staging"
        ]


async def test_an_ambiguous_prefix_lists_both_projects_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pause aaaaaa` matches a job in prod and one in staging: both are listed with their
    projects, and neither is paused."""
    async with two_orgs(monkeypatch) as orgs:
        text = await orgs.slash("pause aaaaaa")
        assert "ambiguous: 2 jobs start with `aaaaaa`" in text
        assert f"`prod/{PROD_JOB}` (payments)" in text
        assert f"`staging/{STAGING_JOB}` (orders)" in text
        for project in orgs.projects.values():
            assert project.stats.status_changes == []


async def test_jobs_lists_every_project_or_the_ones_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`jobs` names each job's project; `jobs project=staging,analytics` asks those two
    only; an unknown project is a usage error listing the projects."""
    async with two_orgs(monkeypatch) as orgs:
        text = await orgs.slash("jobs")
        assert "*3 jobs*" in text
        for short in ("prod/aaaaaa01", "staging/aaaaaa02", "analytics/bbbbbb01"):
            assert f"`{short}`" in text
        before = orgs.projects["prod"].stats.requests
        text = await orgs.slash("jobs project=staging,analytics")
        assert "*2 jobs* (project=staging,analytics)" in text and "payments" not in text
        assert orgs.projects["prod"].stats.requests == before
        text = await orgs.slash("jobs project=qa")
        assert text.startswith("⚠️ unknown project 'qa'; projects: prod, staging, analytics")


async def test_jobs_of_several_projects_survive_one_project_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With staging answering 503, `jobs` still lists prod and analytics and says which
    project could not be listed; with every project down it names each, not "none match"."""
    async with two_orgs(monkeypatch) as orgs:
        orgs.projects["staging"].faults.configure({"error_status": 503})
        text = await orgs.slash("jobs")
        assert "*2 jobs*" in text and "prod/aaaaaa01" in text and "analytics/bbbbbb01" in text
        assert "⚠️ Not listed: project staging (Polaris is not answering right now" in text
        for project in orgs.projects.values():
            project.faults.configure({"error_status": 503})
        text = await orgs.slash("jobs")
        assert text.startswith("⚠️ Not listed: project prod (") and "none match" not in text
        assert "project staging (" in text and "project analytics (" in text


async def test_a_button_of_an_unconfigured_project_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Pause button naming a project this bot does not watch changes nothing anywhere."""
    async with two_orgs(monkeypatch) as orgs:
        value = encode_value(ButtonValue(job_id(1), "job-unhealthy", None, "qa"))
        payload = {
            "type": "block_actions",
            "user": {"id": OPERATOR},
            "channel": {"id": DEFAULT_CHANNEL},
            "response_url": orgs.standin.response_url("click"),
            "actions": [{"action_id": Action.PAUSE.value, "value": value}],
        }
        body = urlencode({"payload": json.dumps(payload)})
        url = orgs.server.make_url("/slack/interactions")
        async with orgs.http.post(url, data=body, headers=sign(body, SECRET)) as resp:
            assert resp.status == 200
        await orgs.bot.commands.drain()
        [answer] = orgs.standin.responses["click"]
        assert "project `qa` is not configured here" in answer["text"]
        for project in orgs.projects.values():
            assert project.stats.status_changes == []
