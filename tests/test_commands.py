"""Slash commands and button clicks end to end: signed HTTP requests to the bot's routes, a
real PolarisClient against the simulator, response URLs posted to the Slack stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.domain.alerts import AlertState, Condition, JobFacts, Phase, Reason, RuleFacts
from watchdog.domain.outgoing import AuditEntry, Notification
from watchdog.metrics import BotMetrics
from watchdog.polaris.client import PolarisClient, RetryPolicy
from watchdog.rules.load import parse_ruleset
from watchdog.rules.ruleset import RuleSet
from watchdog.slack.actions import Action, ButtonValue, encode_value
from watchdog.slack.alerts.messages import alert_message
from watchdog.slack.commands.replay import ReplayGuard
from watchdog.slack.commands.replies import REPLY_BUDGET
from watchdog.slack.commands.response_urls import trusted_response_urls
from watchdog.slack.commands.server import SlackEndpoints, add_routes
from watchdog.slack.commands.service import CommandService
from watchdog.slack.commands.verify import RequestVerifier
from watchdog.store import Fence, Silence
from watchdog.store.memory import MemoryStore

SECRET = "test-signing-secret"
OPERATOR = "U0OPERATOR"
OTHER_OPERATOR = "U0SECONDOP"
STRANGER = "U0STRANGER"
START = 1_700_000_000.0
STREAM = "aaaaaa01-0000-4000-8000-000000000001"
STREAM2 = "aaaaaa02-0000-4000-8000-000000000002"
BATCH = "bbbbbb01-0000-4000-8000-000000000003"
RULES = f"""
[slack]
channel = "C0ALERTS"
operators = ["{OPERATOR}", "{OTHER_OPERATOR}"]

[[rules]]
name = "job-unhealthy"
kind = "health"
status = ["error"]
severity = "critical"
"""


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Gate:
    """The simulator's sleep: latency lasts until the test opens the gate (no real waiting)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, delay: float) -> None:
        await self.open.wait()


@dataclass
class Rig:
    """The bot's Slack routes wired to a simulated Polaris and the Slack stand-in."""

    client: TestClient[Any, Any]
    sim: Simulator
    standin: SlackStandIn
    store: MemoryStore
    service: CommandService
    metrics: BotMetrics
    clock: FakeClock
    gate: Gate
    rules: RuleSet
    audit: list[AuditEntry] = field(default_factory=list)
    tokens: int = 0
    #: what ``rules()`` returns: tests may swap it
    rules_now: list[Any] = field(default_factory=list)
    #: set by the one test that drives the handler's catch-all on purpose
    expect_crash: bool = False

    def response_url(self) -> tuple[str, str]:
        self.tokens += 1
        token = f"t{self.tokens}"
        return token, self.standin.response_url(token)

    def signed(self, body: bytes, *, at: float | None = None) -> dict[str, str]:
        timestamp = str(int(self.clock() if at is None else at))
        base = b"v0:" + timestamp.encode() + b":" + body
        digest = hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
        return {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": "v0=" + digest,
            "Content-Type": "application/x-www-form-urlencoded",
        }

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.client.post(path, data=body, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def slash(self, text: str, user: str = OPERATOR, url: str | None = None) -> Answer:
        """Send `/polaris text` signed, as Slack would; the ack and the response URL token."""
        token, response_url = self.response_url()
        form = {
            "token": "deprecated",
            "team_id": "T0TEAM",
            "channel_id": "C0ALERTS",
            "user_id": user,
            "user_name": "someone",
            "command": "/polaris",
            "text": text,
            "response_url": url or response_url,
            "trigger_id": "1.2.3",
        }
        body = urlencode(form).encode()
        status, ack = await self.post("/slack/commands", body, self.signed(body))
        return Answer(status, ack, token, self)

    async def click(
        self,
        action: Action,
        job_id: str,
        user: str = OPERATOR,
        message: dict[str, Any] | None = None,
        *,
        ephemeral: bool = False,
        rule: str | None = None,
        incident: str | None = None,
    ) -> Answer:
        """Click one of the bot's buttons, signed, as Slack would post it."""
        token, response_url = self.response_url()
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T0TEAM"},
            "channel": {"id": "C0ALERTS"},
            "container": {"type": "message", "message_ts": "1.1", "is_ephemeral": ephemeral},
            "response_url": response_url,
            "actions": [
                {
                    "action_id": action.value,
                    "block_id": "wd_alert_actions",
                    "value": encode_value(ButtonValue(job_id, rule, incident)),
                }
            ],
        }
        if message is not None:
            payload["message"] = message
        body = urlencode({"payload": json.dumps(payload)}).encode()
        status, ack = await self.post("/slack/interactions", body, self.signed(body))
        return Answer(status, ack, token, self)

    async def save_alerts(self, *alerts: AlertState) -> None:
        """Store alert states as the watching replica does: under its project's lease."""
        term = await self.store.acquire_lease("default", "watching-replica", 3600.0)
        assert term is not None
        await self.store.commit(fence=Fence("default", term), upserts=alerts, now=self.clock())

    async def firing(self, alert: AlertState) -> dict[str, Any]:
        """Store ``alert`` as a live incident; its message as a click payload carries it."""
        await self.save_alerts(alert)
        return alert_post(alert)

    async def click_alert(self, action: Action, alert: AlertState, **kwargs: Any) -> Answer:
        """Click a button of ``alert``'s message (stored as live first)."""
        post = await self.firing(alert)
        return await self.click(
            action,
            alert.job_id,
            message=post,
            rule=alert.rule,
            incident=alert.incident_id,
            **kwargs,
        )

    def polaris_paths(self) -> list[str]:
        return [path for _, _, path, _ in self.sim.stats.request_log]

    def count(self, command: str, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "watchdog_commands_total", {"command": command, "outcome": outcome}
        )
        return value or 0.0


@dataclass
class Answer:
    status: int
    ack: Any
    token: str
    rig: Rig

    @property
    def responses(self) -> list[dict[str, Any]]:
        return self.rig.standin.responses.get(self.token, [])

    async def final(self) -> dict[str, Any]:
        """The one message posted to the response URL once the background work is done."""
        await self.rig.service.drain()
        assert len(self.responses) == 1, self.responses
        return self.responses[0]


@asynccontextmanager
async def running_rig(
    *,
    polaris_middleware: Any = None,
    rules_text: str = RULES,
    service_class: type[CommandService] = CommandService,
) -> AsyncIterator[Rig]:
    """The whole rig, served; shared with test_slack_server, test_socket and
    test_oncall_commands (which serves the app's OnCallService and its own rules).

    ``polaris_middleware`` wraps the simulated Polaris (outermost), to change its answers."""
    clock, gate = FakeClock(), Gate()
    sim = Simulator(clock=clock, sleep=gate)
    sim.add_job(type="streaming", table="clicks", job_id=STREAM)
    sim.add_job(type="streaming", table="views", job_id=STREAM2)
    sim.add_job(type="batch", table="backfill", behaviour="healthy", job_id=BATCH)
    standin = SlackStandIn(clock=clock)
    store = MemoryStore(clock=clock)
    await store.open()
    rules = parse_ruleset(rules_text, "rules.toml")
    metrics = BotMetrics()
    audit: list[AuditEntry] = []

    async def record(entry: AuditEntry) -> None:
        audit.append(entry)

    sim_app = sim.app()
    if polaris_middleware is not None:
        sim_app.middlewares.insert(0, polaris_middleware)
    async with (
        TestServer(sim_app) as sim_server,
        TestServer(standin.app()) as slack_server,
        aiohttp.ClientSession() as session,
    ):
        standin.bind(str(slack_server.make_url("")))
        polaris = PolarisClient(
            session,
            str(sim_server.make_url("")),
            sim.project_id,
            SecretStr(sim.api_key),
            max_rate=None,
            retry=RetryPolicy(attempts=1),
        )
        rules_now: list[Any] = [rules]
        service = service_class(
            {"default": polaris},
            store,
            lambda: rules_now[0],
            record,
            session,
            metrics,
            clock,
            (standin.response_url(""),),
        )
        app = web.Application()
        endpoints = SlackEndpoints(
            service,
            RequestVerifier(SecretStr(SECRET), clock=clock),
            ReplayGuard(store.claim_once, clock=clock),
            metrics,
        )
        add_routes(app, lambda: endpoints)
        async with TestClient(TestServer(app)) as client:
            rig = Rig(client, sim, standin, store, service, metrics, clock, gate, rules, audit)
            rig.rules_now = rules_now
            yield rig
            await service.close()
        if not rig.expect_crash:
            for endpoint in ("commands", "interactions"):
                assert not rig.count(endpoint, "crashed"), "a normal path hit the catch-all"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_rig() as running:
        yield running


def alert_for(
    job_id: str, table: str, execution: str = "running", job_type: str = "streaming"
) -> AlertState:
    job = JobFacts(
        job_id=job_id,
        table=table,
        type=job_type,
        execution_status=execution,
        health_status="error",
        health_code="ingestion_error",
        health_message="Kafka topic is gone",
    )
    return AlertState(
        rule="job-unhealthy",
        job_id=job_id,
        phase=Phase.FIRING,
        severity="critical",
        since=START - 600,
        last_active=START,
        last_eval=START,
        job=job,
        condition=Condition(active=True, summary="health is error"),
        fired_at=START - 500,
        posted=True,
    )


def alert_post(alert: AlertState) -> dict[str, Any]:
    """The alert message as Slack hands it back in a click payload."""
    rule = RuleFacts(name=alert.rule, kind="health", severity=alert.severity)
    message = alert_message(Notification(Reason.NEW, alert, rule), now=START)
    return {"type": "message", "ts": "1.1", **message.as_kwargs()}


# ---- help and usage ---------------------------------------------------------------------


async def test_help_is_answered_at_once_without_polaris(rig: Rig) -> None:
    """`help` is answered in the ack itself, ephemeral, and touches nothing."""
    answer = await rig.slash("help")
    assert answer.status == 200
    assert answer.ack["response_type"] == "ephemeral"
    assert "pause JOB" in answer.ack["text"]
    await rig.service.drain()
    assert answer.responses == [] and rig.polaris_paths() == []


async def test_usage_error_gives_the_reason_and_the_usage(rig: Rig) -> None:
    """A typo is answered directly with what is wrong and how to write it."""
    answer = await rig.slash("pase 1a2b3c")
    assert answer.status == 200
    assert "unknown command 'pase'" in answer.ack["text"]
    assert "*Usage:*" in answer.ack["text"]
    assert rig.count("invalid", "usage_error") == 1


# ---- reading ----------------------------------------------------------------------------


async def test_jobs_lists_every_job_compactly(rig: Rig) -> None:
    """`jobs` acks at once and then posts one line per job through the response URL."""
    answer = await rig.slash("jobs")
    assert answer.ack["text"].startswith("⏳")
    text = (await answer.final())["text"]
    assert "*3 jobs*" in text
    for table in ("clicks", "views", "backfill"):
        assert table in text
    assert "`aaaaaa01`" in text
    assert rig.count("jobs", "ok") == 1


async def test_jobs_filters_go_to_polaris(rig: Rig) -> None:
    """`jobs health=error type=streaming` asks Polaris for exactly those jobs."""
    rig.sim.set_health(STREAM2, "error", "ingestion_error", "broken")
    answer = await rig.slash("jobs health=error type=streaming")
    text = (await answer.final())["text"]
    assert "*1 job*" in text and "views" in text and "clicks" not in text
    assert "🔴 error `ingestion_error`" in text


async def test_jobs_list_is_capped_at_twenty_lines(rig: Rig) -> None:
    """Many jobs give 20 lines and an 'and N more' line."""
    for n in range(25):
        rig.sim.add_job(type="streaming", table=f"t{n}")
    text = (await (await rig.slash("jobs")).final())["text"]
    assert "and 8 more" in text
    assert len(text.splitlines()) == 22


async def test_status_shows_health_code_and_message(rig: Rig) -> None:
    """`status JOB` shows the job's facts, including Polaris' health code and message."""
    rig.sim.set_health(STREAM, "error", "ingestion_error", "Topic <clicks> & more is gone")
    text = (await (await rig.slash(f"status {STREAM}")).final())["text"]
    assert STREAM in text and "clicks" in text and "streaming" in text
    assert "`ingestion_error`" in text
    assert "Topic &lt;clicks&gt; &amp; more is gone" in text


async def test_metrics_shows_the_totals(rig: Rig) -> None:
    """`metrics JOB` lists the job's counters."""
    rig.sim.set_totals(STREAM, {"numRowsProcessed": 1234567, "numRowsSkippedByError": 5})
    text = (await (await rig.slash("metrics aaaaaa01")).final())["text"]
    assert "numRowsProcessed: 1,234,567" in text
    assert "numRowsSkippedByError: 5" in text


async def test_unknown_job_is_explained(rig: Rig) -> None:
    """A full id Polaris does not know is 'not found', in plain words."""
    missing = "cccccccc-0000-4000-8000-000000000000"
    text = (await (await rig.slash(f"status {missing}")).final())["text"]
    assert text == f"⚠️ job `{missing}` not found"
    assert rig.count("status", "error") == 1


async def test_polaris_outage_is_explained(rig: Rig) -> None:
    """A Polaris 503 becomes 'not answering right now', never a traceback."""
    rig.sim.faults.configure({"error_status": 503})
    text = (await (await rig.slash(f"status {STREAM}")).final())["text"]
    assert text == "⚠️ Polaris is not answering right now, try again"


# ---- job references ---------------------------------------------------------------------


async def test_unique_prefix_resolves_against_all_jobs(rig: Rig) -> None:
    """A prefix that fits one job acts on that job."""
    answer = await rig.slash("pause aaaaaa01")
    assert "Paused" in (await answer.final())["text"]
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]


async def test_ambiguous_prefix_lists_candidates_and_changes_nothing(rig: Rig) -> None:
    """A prefix of several jobs names them all and pauses none."""
    text = (await (await rig.slash("pause aaaaaa")).final())["text"]
    assert "ambiguous: 2 jobs start with `aaaaaa`" in text
    assert f"`{STREAM}` (clicks)" in text and f"`{STREAM2}` (views)" in text
    assert rig.sim.stats.status_changes == []
    assert [(e.action, e.target, e.ok) for e in rig.audit] == [("pause", "aaaaaa", False)]


async def test_a_single_project_set_up_takes_default_slash_job(rig: Rig) -> None:
    """Without [[projects]] the project is `default`: `pause default/aaaaaa01` pauses the
    job, the reply names no project, and the audit line carries `default`."""
    text = (await (await rig.slash("pause default/aaaaaa01")).final())["text"]
    assert text.startswith("⏸ Paused by") and "default" not in text
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    assert [(e.target, e.project) for e in rig.audit] == [(STREAM, "default")]
    answer = await rig.slash("status prod/aaaaaa01")
    assert "unknown project 'prod'; projects: default" in answer.ack["text"]


async def test_prefix_without_match_says_so(rig: Rig) -> None:
    """A prefix that fits no job says which prefix failed."""
    text = (await (await rig.slash("status dddddd")).final())["text"]
    assert text == "⚠️ no job starts with `dddddd`"


async def test_job_list_is_cached_for_thirty_seconds(rig: Rig) -> None:
    """Prefix lookups within 30 s share one listing; after that the list is fetched again."""
    listings = lambda: sum(p.endswith("/jobs") for p in rig.polaris_paths())  # noqa: E731
    await (await rig.slash("status aaaaaa01")).final()
    await (await rig.slash("status aaaaaa02")).final()
    assert listings() == 1
    rig.clock.now += 31
    await (await rig.slash("status aaaaaa02")).final()
    assert listings() == 2


async def test_job_newer_than_the_cache_is_still_found(rig: Rig) -> None:
    """A miss in a cached list triggers one fresh listing before saying 'no job'."""
    await (await rig.slash("status aaaaaa01")).final()
    rig.sim.add_job(type="streaming", table="fresh", job_id="eeeeee01-0000-4000-8000-0000000000ee")
    text = (await (await rig.slash("status eeeeee")).final())["text"]
    assert "fresh" in text


# ---- changing jobs ----------------------------------------------------------------------


async def test_pause_suspends_the_job_and_is_audited(rig: Rig) -> None:
    """`pause JOB` by an operator suspends it in Polaris and audits it once."""
    answer = await rig.slash(f"pause {STREAM}")
    assert answer.ack == {"response_type": "ephemeral", "text": f"⏳ Pausing `{STREAM}`…"}
    text = (await answer.final())["text"]
    assert text.startswith(f"⏸ Paused by <@{OPERATOR}>")
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    assert rig.sim.job(STREAM).view(rig.clock()).execution_status == "suspended"
    [entry] = rig.audit
    assert (entry.user, entry.action, entry.target, entry.result) == (
        OPERATOR,
        "pause",
        STREAM,
        "ok",
    )
    assert entry.table == "clicks" and entry.channel == "C0ALERTS" and entry.at == START


async def test_resume_runs_a_suspended_job(rig: Rig) -> None:
    """`resume JOB` asks Polaris for `running`."""
    await (await rig.slash(f"pause {STREAM}")).final()
    text = (await (await rig.slash(f"resume {STREAM}")).final())["text"]
    assert text.startswith("▶️ Resumed")
    assert rig.sim.stats.status_changes == [(STREAM, "suspended"), (STREAM, "running")]
    assert [e.action for e in rig.audit] == ["pause", "resume"]


async def test_pausing_a_batch_job_explains_polaris_refusal(rig: Rig) -> None:
    """Polaris' own reason reaches the user, and the failed attempt is audited."""
    text = (await (await rig.slash(f"pause {BATCH}")).final())["text"]
    assert text == (
        f"⚠️ could not pause `{BATCH}`: Polaris refused: Only streaming jobs can be suspended"
    )
    [entry] = rig.audit
    assert entry.result == "Polaris refused: Only streaming jobs can be suspended"
    assert rig.count("pause", "error") == 1


async def test_read_only_key_is_explained(rig: Rig) -> None:
    """A key without ManageIngestionJobs is named as the problem."""
    rig.sim.readonly_keys = (rig.sim.api_key,)
    rig.sim.api_key = "another-key"
    text = (await (await rig.slash(f"pause {STREAM}")).final())["text"]
    assert "the bot's API key lacks permission (ManageIngestionJobs)" in text
    assert "sim-key" not in text


async def test_cancel_only_asks_for_confirmation(rig: Rig) -> None:
    """`cancel JOB` answers with a danger button behind a confirm dialog and cancels nothing."""
    reply = await (await rig.slash("cancel aaaaaa01")).final()
    assert rig.sim.stats.status_changes == [] and rig.audit == []
    [button] = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"]
    assert button["action_id"] == Action.CANCEL.value
    assert button["style"] == "danger" and button["confirm"]["style"] == "danger"
    assert json.loads(button["value"]) == {"j": STREAM, "p": "default"}
    assert reply["response_type"] == "ephemeral"


async def test_cancel_happens_on_the_confirmation_click(rig: Rig) -> None:
    """Clicking the confirmed danger button cancels the job and replaces the prompt."""
    prompt = await (await rig.slash(f"cancel {STREAM}")).final()
    message = {"type": "message", "text": prompt["text"], "blocks": prompt["blocks"]}
    answer = await rig.click(Action.CANCEL, STREAM, message=message, ephemeral=True)
    assert answer.status == 200 and answer.ack is None
    updated = await answer.final()
    assert rig.sim.stats.status_changes == [(STREAM, "canceled")]
    assert updated["replace_original"] is True and updated["response_type"] == "ephemeral"
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]
    assert f"🛑 Canceled by <@{OPERATOR}>" in json.dumps(updated["blocks"], ensure_ascii=False)
    assert [(e.action, e.target, e.result) for e in rig.audit] == [("cancel", STREAM, "ok")]


async def test_cancel_of_a_finished_job_is_refused_politely(rig: Rig) -> None:
    """There is no button for a job that is already canceled."""
    rig.sim.set_execution(STREAM, "canceled")
    reply = await (await rig.slash(f"cancel {STREAM}")).final()
    assert "already canceled: nothing to cancel" in reply["text"]
    assert "blocks" not in reply


async def test_outlandish_table_name_stays_escaped_and_within_limits(rig: Rig) -> None:
    """A huge table name full of mrkdwn still gives a confirmation Slack accepts."""
    rig.sim.add_job(table="<!channel> & " * 400, job_id="ffffff01-0000-4000-8000-0000000000ff")
    reply = await (await rig.slash("cancel ffffff01")).final()  # the stand-in checks limits
    parsed = mrkdwn_texts(reply["blocks"])
    assert "<!channel>" not in parsed and "&lt;!channel&gt; &amp;" in parsed
    # The confirm dialog shows its text as written (plain_text): nothing in it can ping.
    [button] = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"]
    assert button["confirm"]["text"]["type"] == "plain_text"
    text = (await (await rig.slash("jobs")).final())["text"]
    assert "<!channel>" not in text and len(text) < 4000


# ---- operators only ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [f"pause {STREAM}", f"resume {STREAM}", f"cancel {STREAM}", "silence job-unhealthy 1h"]
)
async def test_non_operator_is_refused_and_nothing_changes(rig: Rig, text: str) -> None:
    """Someone not in `operators` gets a polite refusal naming who can; nothing changes."""
    answer = await rig.slash(text, user=STRANGER)
    assert answer.status == 200
    assert answer.ack["response_type"] == "ephemeral"
    assert f"<@{OPERATOR}>, <@{OTHER_OPERATOR}>" in answer.ack["text"]
    assert "Nothing was changed" in answer.ack["text"]
    await rig.service.drain()
    assert rig.sim.stats.status_changes == []
    assert rig.polaris_paths() == []
    assert await rig.store.list_silences() == []
    assert rig.audit == [] and answer.responses == []


async def test_non_operator_may_read(rig: Rig) -> None:
    """Reading commands are open to everyone in the workspace."""
    text = (await (await rig.slash(f"status {STREAM}", user=STRANGER)).final())["text"]
    assert "clicks" in text


async def test_non_operator_click_is_refused_and_nothing_changes(rig: Rig) -> None:
    """A stranger's click on Pause leaves the job and the message alone."""
    alert = alert_for(STREAM, "clicks")
    answer = await rig.click(
        Action.PAUSE, STREAM, STRANGER, alert_post(alert), rule="job-unhealthy"
    )
    reply = await answer.final()
    assert "cannot pause here" in reply["text"]
    assert reply["response_type"] == "ephemeral" and "replace_original" not in reply
    assert rig.sim.stats.status_changes == [] and rig.audit == []
    assert rig.count("button_pause", "forbidden") == 1


async def test_response_url_outside_slack_is_never_posted_to(rig: Rig) -> None:
    """A signed request whose response_url is not Slack's gets no background work."""
    answer = await rig.slash("jobs", url="http://169.254.169.254/latest/meta-data")
    assert "not Slack's" in answer.ack["text"]
    await rig.service.drain()
    assert rig.polaris_paths() == [] and rig.standin.responses == {}


# ---- buttons on alert messages ----------------------------------------------------------


async def test_pause_button_suspends_and_replaces_the_buttons(rig: Rig) -> None:
    """Pause on an alert suspends the job; the message keeps its content, and its Pause
    button becomes Resume (Acknowledge, Cancel and Silence stay)."""
    alert = alert_for(STREAM, "clicks")
    post = alert_post(alert)
    answer = await rig.click_alert(Action.PAUSE, alert)
    updated = await answer.final()
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    assert updated["replace_original"] is True and updated["response_type"] == "in_channel"
    assert updated["text"] == post["text"]
    assert [b["type"] for b in updated["blocks"] if b["type"] != "context"] == [
        b["type"] for b in post["blocks"] if b["type"] != "context"
    ]
    assert button_ids(updated) == [Action.ACK, Action.RESUME, Action.CANCEL, Action.SILENCE]
    outcome = [b for b in updated["blocks"] if b.get("block_id") == "wd_outcome"]
    assert outcome[0]["elements"][0]["text"].startswith(f"⏸ Paused by <@{OPERATOR}> · <!date^")
    [entry] = rig.audit
    assert (entry.action, entry.target, entry.incident_id, entry.table) == (
        "pause",
        STREAM,
        alert.incident_id,
        "clicks",
    )


def mrkdwn_texts(node: Any) -> str:
    """Every mrkdwn text in ``node`` (what Slack parses for mentions), one per line."""
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return "\n".join(own + [mrkdwn_texts(v) for v in node.values()])
    if isinstance(node, list):
        return "\n".join(mrkdwn_texts(item) for item in node)
    return ""


def button_ids(message: dict[str, Any]) -> list[str]:
    return [
        element["action_id"]
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


@pytest.mark.parametrize(
    ("action", "left"),
    [
        # a canceled job has nothing left to pause
        (Action.CANCEL, [Action.ACK, Action.SILENCE]),
        (Action.SILENCE, [Action.ACK, Action.PAUSE, Action.CANCEL]),
    ],
)
async def test_buttons_left_after_a_click_follow_what_was_done(
    rig: Rig, action: Action, left: list[Action]
) -> None:
    """After Cancel only Acknowledge and Silence are left; after Silence no second
    Silence."""
    answer = await rig.click_alert(action, alert_for(STREAM, "clicks"))
    updated = await answer.final()
    assert button_ids(updated) == left


async def test_failed_button_keeps_the_buttons_and_says_why(rig: Rig) -> None:
    """Pause on a batch job fails: the buttons stay and the reason is added."""
    post = alert_post(alert_for(BATCH, "backfill", job_type="batch"))
    post["blocks"].insert(2, {"type": "actions", "elements": [
        {"type": "button", "action_id": Action.PAUSE.value, "value": json.dumps({"j": BATCH}),
         "text": {"type": "plain_text", "text": "Pause"}}]})  # fmt: skip
    answer = await rig.click(Action.PAUSE, BATCH, message=post)
    updated = await answer.final()
    assert [b for b in updated["blocks"] if b["type"] == "actions"]
    outcome = [b for b in updated["blocks"] if b.get("block_id") == "wd_outcome"]
    text = outcome[0]["elements"][0]["text"]
    assert "tried to pause, but it failed: Polaris refused: Only streaming jobs" in text
    assert rig.audit[0].result.startswith("Polaris refused")
    # A second failed click replaces the reason instead of stacking another one.
    again = await (await rig.click(Action.PAUSE, BATCH, message=updated)).final()
    assert len([b for b in again["blocks"] if b.get("block_id") == "wd_outcome"]) == 1


async def test_silence_button_silences_that_alert_for_an_hour(rig: Rig) -> None:
    """Silence 1h mutes the alert's rule on that job (not the whole job) for an hour, audited."""
    post = alert_post(alert_for(STREAM, "clicks"))
    await (await rig.click(Action.SILENCE, STREAM, message=post, rule="job-unhealthy")).final()
    [silence] = await rig.store.list_silences()
    assert (silence.target_kind, silence.target, silence.until) == (
        "alert", f"default/job-unhealthy/{STREAM}", START + 3600)  # fmt: skip
    assert silence.matches("default", "job-unhealthy", STREAM)
    assert not silence.matches("default", "other-rule", STREAM)
    assert silence.created_by == OPERATOR and "job-unhealthy" in silence.reason
    assert rig.polaris_paths() == []
    [entry] = rig.audit
    assert entry.action == "silence" and entry.extra["silence_id"] == silence.id


async def test_silence_button_of_a_removed_rule_silences_the_job(rig: Rig) -> None:
    """When the button's rule is no longer in the rules file, the job itself is muted."""
    post = alert_post(alert_for(STREAM, "clicks"))
    await (await rig.click(Action.SILENCE, STREAM, message=post, rule="gone-rule")).final()
    [silence] = await rig.store.list_silences()
    assert (silence.target_kind, silence.target) == ("job", STREAM)


# ---- alerts and silences ----------------------------------------------------------------


async def test_alerts_lists_firing_alerts_by_rule_and_silences(rig: Rig) -> None:
    """`alerts` groups firing alerts by rule and lists active silences."""
    pending = replace(alert_for(STREAM2, "views"), phase=Phase.PENDING)
    term = await rig.store.acquire_lease("default", "watching-replica", 60.0)
    assert term is not None
    fence = Fence("default", term)
    await rig.store.commit(fence=fence, upserts=[alert_for(STREAM, "clicks"), pending], now=START)
    await rig.store.add_silence(
        Silence("s-abcdef", "rule", "job-unhealthy", START + 60, OPERATOR, START, "<!channel>")
    )
    await rig.store.add_silence(Silence("s-000000", "job", STREAM, START - 1, OPERATOR, START - 9))
    text = (await (await rig.slash("alerts")).final())["text"]
    assert "*job-unhealthy* (critical) — 1 firing: `aaaaaa01` clicks" in text
    assert "`s-abcdef`" in text and "&lt;!channel&gt;" in text
    assert "s-000000" not in text  # expired
    assert "views" not in text  # pending, not firing


async def test_alerts_when_all_is_quiet(rig: Rig) -> None:
    """With nothing firing, `alerts` says so."""
    assert (await (await rig.slash("alerts")).final())["text"] == "✅ No alerts firing."


async def test_silence_a_rule_then_list_and_end_it(rig: Rig) -> None:
    """`silence RULE 2h reason` stores a rule silence; `silences` shows it; `unsilence` ends it."""
    reply = await (await rig.slash("silence job-unhealthy 2h deploy in progress")).final()
    [silence] = await rig.store.list_silences()
    assert (silence.target_kind, silence.target) == ("rule", "job-unhealthy")
    assert silence.until == START + 7200 and silence.reason == "deploy in progress"
    assert silence.id.startswith("s-") and len(silence.id) == 8
    assert f"`{silence.id}`" in reply["text"] and reply["response_type"] == "ephemeral"
    listed = (await (await rig.slash("silences", user=STRANGER)).final())["text"]
    assert silence.id in listed and "deploy in progress" in listed
    ended = (await (await rig.slash(f"unsilence {silence.id}")).final())["text"]
    assert "ended" in ended and await rig.store.list_silences() == []
    assert [(e.action, e.target, e.result) for e in rig.audit] == [
        ("silence", "job-unhealthy", "ok"),
        ("unsilence", silence.id, "ok"),
    ]


async def test_silence_a_job_by_prefix(rig: Rig) -> None:
    """A silence target that is not a rule is resolved as a job reference."""
    await (await rig.slash("silence aaaaaa02 30m")).final()
    [silence] = await rig.store.list_silences()
    assert (silence.target_kind, silence.target) == ("job", STREAM2)


async def test_silence_of_an_unknown_rule_is_explained_and_audited(rig: Rig) -> None:
    """A target that is neither a rule nor a job reference stores nothing."""
    text = (await (await rig.slash("silence no-such-rule 1h")).final())["text"]
    assert "there is no rule called `no-such-rule`" in text
    assert await rig.store.list_silences() == []
    assert [(e.action, e.ok) for e in rig.audit] == [("silence", False)]


async def test_unsilence_of_an_unknown_id_is_explained(rig: Rig) -> None:
    """Ending a silence that does not exist says so (and the attempt is audited)."""
    text = (await (await rig.slash("unsilence s-ffffff")).final())["text"]
    assert "there is no such silence" in text
    assert [(e.action, e.result) for e in rig.audit] == [("unsilence", text.split(": ", 1)[1])]


# ---- lifecycle --------------------------------------------------------------------------


async def test_close_waits_for_work_in_flight(rig: Rig) -> None:
    """Shutdown lets a running pause finish (and answer) before it returns."""
    rig.gate.open.clear()
    rig.sim.faults.configure({"latency": 5.0})
    answer = await rig.slash(f"pause {STREAM}")
    rig.gate.open.set()
    await rig.service.close(grace=5.0)
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    assert len(answer.responses) == 1
    late = await rig.slash("jobs")
    assert "restarting" in late.ack["text"]


async def test_close_cancels_work_past_the_grace_period(rig: Rig) -> None:
    """Work stuck longer than the grace period is cancelled, so shutdown is bounded."""
    rig.gate.open.clear()
    rig.sim.faults.configure({"latency": 5.0})
    await rig.slash(f"status {STREAM}")
    await rig.service.close(grace=0.01)
    rig.gate.open.set()
    await rig.service.drain()
    assert rig.standin.responses == {}


async def test_a_change_cut_short_by_shutdown_is_still_audited(rig: Rig) -> None:
    """A pause cancelled by shutdown (it may have reached Polaris) leaves an audit line
    saying the outcome is unknown, instead of no trace at all."""
    rig.gate.open.clear()
    rig.sim.faults.configure({"latency": 5.0})
    await rig.slash(f"pause {STREAM}")
    await rig.service.close(grace=0.01)
    rig.gate.open.set()
    await rig.service.drain()
    [entry] = rig.audit
    assert entry.action == "pause" and "interrupted" in entry.result


# ---- a click redraws from the stored incident --------------------------------------------


async def test_click_redraws_the_alert_from_its_stored_state(rig: Rig) -> None:
    """The message after a click shows the incident as stored now, not the copy the click
    carried (which may be older)."""
    old = alert_for(STREAM, "clicks")
    post = alert_post(old)
    newer = replace(old, job=replace(old.job, health_message="Kafka is back but lagging"))
    await rig.save_alerts(newer)
    answer = await rig.click(
        Action.PAUSE, STREAM, message=post, rule=old.rule, incident=old.incident_id
    )
    updated = await answer.final()
    shown = json.dumps(updated["blocks"])
    assert "Kafka is back but lagging" in shown and "Kafka topic is gone" not in shown
    assert updated["replace_original"] is True and "Paused by" in shown


async def test_resolve_between_click_and_reply_is_not_painted_over(rig: Rig) -> None:
    """The incident resolves (and its message is edited) while the click's Polaris call is
    in flight: the reply leaves the message alone and tells only the clicker."""
    alert = alert_for(STREAM, "clicks")
    post = await rig.firing(alert)
    rig.gate.open.clear()
    rig.sim.faults.configure({"latency": 5.0})
    answer = await rig.click(
        Action.PAUSE, STREAM, message=post, rule=alert.rule, incident=alert.incident_id
    )
    resolved = replace(alert, phase=Phase.RESOLVED, resolved_at=START + 1)
    await rig.save_alerts(resolved)
    rig.gate.open.set()
    reply = await answer.final()
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    assert "replace_original" not in reply and reply["response_type"] == "ephemeral"
    assert "blocks" not in reply and "FIRING" not in reply["text"]
    assert reply["text"].startswith(f"⏸ Paused by <@{OPERATOR}>")
    assert "resolved or is gone since" in reply["text"]
    assert [e.result for e in rig.audit] == ["ok"]


async def test_click_on_an_incident_that_is_gone_answers_only_the_clicker(rig: Rig) -> None:
    """A newer incident of the same alert replaced the clicked one: no redraw."""
    alert = alert_for(STREAM, "clicks")
    post = alert_post(alert)
    await rig.save_alerts(replace(alert, fired_at=START))
    reply = await (
        await rig.click(
            Action.SILENCE, STREAM, message=post, rule=alert.rule, incident=alert.incident_id
        )
    ).final()
    assert reply["response_type"] == "ephemeral" and "replace_original" not in reply
    assert "Silenced for 1h" in reply["text"]


# ---- response URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://hooks.slack.com/commands/T1/2/x", True),
        ("https://hooks.slack-gov.com/actions/T1/2/x", True),
        ("https://slack.example.com/response/abc", True),  # the origin of SLACK_API_URL
        ("https://hooks.slack.com.evil.example/x", False),
        ("https://hooks.slack.com@evil.example/x", False),
        ("https://user:pw@hooks.slack.com/x", False),
        ("http://hooks.slack.com/x", False),
        ("https://hooks.slack.com:8443/x", False),
        ("https://slack.example.com:444/response/abc", False),
        ("/relative/path", False),
        ("not a url at all", False),
    ],
)
def test_response_urls_are_trusted_on_slack_hosts_and_the_api_origin(
    url: str, trusted: bool
) -> None:
    """Slack's hooks hosts (also GovSlack's) and the origin of SLACK_API_URL, nothing else."""
    prefixes = trusted_response_urls("https://slack.example.com/api/")
    service = CommandService.__new__(CommandService)
    service._prefixes = prefixes
    assert service._allowed_url(url) is trusted
    assert trusted_response_urls(None) == (
        "https://hooks.slack.com/",
        "https://hooks.slack-gov.com/",
    )


# ---- odd input ---------------------------------------------------------------------------


async def test_help_escapes_its_angle_brackets(rig: Rig) -> None:
    """`<command>` in the usage would be read by Slack as markup: it is escaped."""
    text = (await rig.slash("help")).ack["text"]
    assert "<command>" not in text and "`/polaris &lt;command&gt;`" in text
    usage = (await rig.slash("frobnicate")).ack["text"]
    assert "<command>" not in usage


HUGE = 12_000


async def test_jobs_reply_with_huge_polaris_strings_stays_within_slack_limits(rig: Rig) -> None:
    """Twenty jobs with 12,000-character tables and health codes: the reply is clipped
    (the stand-in would refuse anything past Slack's limits) and says what it left out."""
    for n in range(25):
        job = rig.sim.add_job(type="streaming", table=f"t{n}" + "x" * HUGE)
        rig.sim.set_health(job.id, "error", "c" * HUGE, "m" * HUGE)
    reply = await (await rig.slash("jobs")).final()
    text = reply["text"]
    assert len(text) <= REPLY_BUDGET + 1000 and "*28 jobs*" in text
    assert "more not shown" in text or "and 8 more" in text


async def test_alerts_and_silences_replies_are_clipped_and_count_what_is_left_out(
    rig: Rig,
) -> None:
    """300 firing rules with huge names and tables, and silences with huge reasons: one
    reply within Slack's limits, naming how many it did not show."""
    alerts = [
        replace(alert_for(job_id_n(n), "t" * HUGE), rule=f"rule-{n:03d}-" + "r" * 2000)
        for n in range(300)
    ]
    await rig.save_alerts(*alerts)
    for n in range(30):
        await rig.store.add_silence(
            Silence(f"s-{n:06d}", "rule", "x" * HUGE, START + 60, OPERATOR, START, "<y>" * HUGE)
        )
    text = (await (await rig.slash("alerts")).final())["text"]
    assert len(text) <= REPLY_BUDGET + 1000
    assert "more rules not shown" in text and "*Active silences*" in text
    listed = (await (await rig.slash("silences")).final())["text"]
    assert len(listed) <= REPLY_BUDGET + 1000 and "and 10 more" in listed


async def test_ambiguous_prefix_with_huge_ids_and_tables_is_clipped(rig: Rig) -> None:
    """Candidates of an ambiguous prefix are listed within limits, however long the ids
    and tables Polaris lists are."""
    for n in range(12):
        rig.sim.add_job(table="<t>" * HUGE, job_id=f"dddddd{n:02d}" + "-x" * HUGE)
    text = (await (await rig.slash("status dddddd")).final())["text"]
    assert "ambiguous: 12 jobs start with `dddddd`" in text
    assert "and 2 more" in text and len(text) < 3000


async def test_finished_job_shows_no_desired_state(rig: Rig) -> None:
    """Polaris keeps desiredExecutionStatus=running on a completed job: not shown."""
    rig.sim.set_execution(BATCH, "completed")
    text = (await (await rig.slash(f"status {BATCH}")).final())["text"]
    assert "• execution: completed" in text and "→" not in text


async def test_running_job_shows_a_pending_change_of_state(rig: Rig) -> None:
    """A running job Polaris is suspending shows where it is going."""
    await (await rig.slash(f"pause {STREAM}")).final()
    text = (await (await rig.slash(f"status {STREAM}")).final())["text"]
    assert "(→ suspended)" in text or "• execution: suspended" in text


@web.middleware
async def polaris_with_details(request: web.Request, handler: Any) -> web.StreamResponse:
    """Polaris as it answers in production: error bodies carry ``details``."""
    response = await handler(request)
    if isinstance(response, web.Response) and response.status >= 400 and response.text:
        body = json.loads(response.text)
        body["details"] = [
            {"code": "InvalidValue", "target": "desiredExecutionStatus", "message": "batch jobs "
             "cannot be suspended; cancel the job instead"},
            "see https://docs.imply.io/polaris/jobs",
        ]  # fmt: skip
        return web.json_response(body, status=response.status)
    return response


async def test_polaris_error_details_reach_the_reply_and_the_audit_line() -> None:
    """The reason Polaris gives in `details` is shown to the user and in the audit entry."""
    async with running_rig(polaris_middleware=polaris_with_details) as rig:
        text = (await (await rig.slash(f"pause {BATCH}")).final())["text"]
        assert "desiredExecutionStatus: batch jobs cannot be suspended" in text
        assert "see https://docs.imply.io/polaris/jobs" in text
        [entry] = rig.audit
        assert "batch jobs cannot be suspended; cancel the job instead" in entry.result


def job_id_n(n: int) -> str:
    return f"eeeeee{n:02x}-0000-4000-8000-{n:012x}"


async def test_control_characters_from_polaris_never_reach_a_reply(rig: Rig) -> None:
    """Terminal escapes, bidi overrides and NULs in what Polaris lists are dropped from
    command replies too."""
    hostile = "evil\x1b[2J\x00\u202egnp.exe\u2066"
    job = rig.sim.add_job(
        type="streaming", table=hostile, job_id="ffffff02-0000-4000-8000-0000000000f2"
    )
    rig.sim.set_health(job.id, "error", "bad\x07code", "row\x00 <\u202e> broken")
    for command in (f"status {job.id}", "jobs"):
        text = (await (await rig.slash(command)).final())["text"]
        assert not set(text) & set("\x1b\x00\x07\u202e\u2066"), text
        assert "evil[2Jgnp.exe" in text
