"""The HTTP gate in front of the commands: size limit, signature, parsing, fast acks."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs
from test_commands import OPERATOR, RULES, SECRET, STREAM, Rig, running_rig

from watchdog import app as app_module
from watchdog.rules.holder import RulesHolder
from watchdog.rules.load import parse_ruleset
from watchdog.settings import Settings
from watchdog.slack.actions import Action
from watchdog.slack.commands.replay import ReplayGuard
from watchdog.slack.commands.server import HEADER_TIMEOUT, SlackEndpoints, add_routes
from watchdog.slack.commands.verify import RequestVerifier

TWO_MB = 2 * 1024 * 1024


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_rig() as running:
        yield running


def slash_body(text: str, user: str = OPERATOR, url: str = "") -> bytes:
    form = {"user_id": user, "channel_id": "C0ALERTS", "command": "/polaris", "text": text}
    form["response_url"] = url
    return urlencode(form).encode()


async def nothing_changed(rig: Rig) -> None:
    await rig.service.drain()
    assert rig.sim.stats.status_changes == []
    assert rig.polaris_paths() == []
    assert rig.standin.responses == {}
    assert rig.audit == []
    assert await rig.store.list_silences() == []


async def test_signed_command_is_acked_with_explicit_json(rig: Rig) -> None:
    """A good request gets 200 application/json with response_type set."""
    body = slash_body("help", url=rig.response_url()[1])
    async with rig.client.post("/slack/commands", data=body, headers=rig.signed(body)) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert (await resp.json())["response_type"] == "ephemeral"
    assert rig.metrics.registry.get_sample_value("watchdog_command_ack_seconds_count") == 1


async def test_forged_signature_is_rejected_and_nothing_happens(rig: Rig) -> None:
    """A request signed with another secret gets 401 and never reaches the service."""
    body = slash_body(f"pause {STREAM}", url=rig.response_url()[1])
    headers = rig.signed(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    status, text = await rig.post("/slack/commands", body, headers)
    assert (status, text) == (401, "invalid request signature")
    await nothing_changed(rig)
    assert rig.count("commands", "http_401") == 1


async def test_signature_over_a_different_body_is_rejected(rig: Rig) -> None:
    """Swapping the body under a valid signature (a stranger becomes an operator) fails."""
    signed_for = slash_body(f"status {STREAM}", user="U0STRANGER", url=rig.response_url()[1])
    sent = slash_body(f"pause {STREAM}", url=rig.response_url()[1])
    status, _ = await rig.post("/slack/commands", sent, rig.signed(signed_for))
    assert status == 401
    await nothing_changed(rig)


async def test_stale_timestamp_is_rejected(rig: Rig) -> None:
    """A correctly signed request from six minutes ago is a replay: 401."""
    body = slash_body(f"pause {STREAM}", url=rig.response_url()[1])
    status, _ = await rig.post("/slack/commands", body, rig.signed(body, at=rig.clock() - 360))
    assert status == 401
    await nothing_changed(rig)


async def test_a_captured_pause_posted_three_times_pauses_once(rig: Rig) -> None:
    """A signed `pause` replayed twice within Slack's five minutes is served once: the
    copies get an empty 200, Polaris sees one status change, the channel one audit line,
    and the metrics count two replays."""
    body = slash_body(f"pause {STREAM}", url=rig.response_url()[1])
    headers = rig.signed(body)
    first = await rig.post("/slack/commands", body, headers)
    await rig.service.drain()
    rig.clock.now += 120  # still inside the window: the signature verifies
    copies = [await rig.post("/slack/commands", body, headers) for _ in range(2)]
    await rig.service.drain()
    assert first[0] == 200 and first[1]["response_type"] == "ephemeral"
    assert copies == [(200, None), (200, None)]
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    assert len(rig.audit) == 1
    assert rig.count("commands", "replayed") == 2


async def test_a_replayed_cancel_click_cancels_once(rig: Rig) -> None:
    """The confirmed Cancel click posted again is not a second cancel."""
    payload = {
        "type": "block_actions",
        "user": {"id": OPERATOR},
        "container": {"type": "message", "message_ts": "1.1", "is_ephemeral": True},
        "response_url": rig.response_url()[1],
        "actions": [{"action_id": Action.CANCEL.value, "value": json.dumps({"j": STREAM})}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = rig.signed(body)
    assert (await rig.post("/slack/interactions", body, headers))[0] == 200
    await rig.service.drain()
    assert await rig.post("/slack/interactions", body, headers) == (200, None)
    await rig.service.drain()
    assert rig.sim.stats.status_changes == [(STREAM, "canceled")]
    assert rig.count("interactions", "replayed") == 1


async def test_the_same_command_sent_again_is_served_again(rig: Rig) -> None:
    """Typing the same command twice makes two requests Slack signs apart (another
    timestamp, another trigger): both are served."""
    body = slash_body(f"status {STREAM}", url=rig.response_url()[1])
    assert (await rig.post("/slack/commands", body, rig.signed(body)))[0] == 200
    rig.clock.now += 1
    status, ack = await rig.post("/slack/commands", body, rig.signed(body))
    assert status == 200 and ack is not None
    assert rig.count("commands", "replayed") == 0


async def test_unsigned_click_is_rejected(rig: Rig) -> None:
    """An interaction without the signing headers gets 401."""
    payload = {"type": "block_actions", "user": {"id": OPERATOR}}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    status, _ = await rig.post("/slack/interactions", body, {})
    assert status == 401
    await nothing_changed(rig)


async def test_two_megabyte_body_is_refused_before_it_is_read(rig: Rig) -> None:
    """A 2 MB body with a Content-Length gets 413 without being buffered or verified."""
    body = slash_body(f"pause {STREAM}" + " " * TWO_MB, url=rig.response_url()[1])
    data = io.BytesIO(body)  # a file-like payload still sends its Content-Length
    async with rig.client.post("/slack/commands", data=data, headers=rig.signed(body)) as resp:
        assert (resp.status, await resp.text()) == (413, "request body too large")
    await nothing_changed(rig)


async def test_chunked_body_without_length_is_bounded_too(rig: Rig) -> None:
    """A chunked 2 MB body (no Content-Length) is cut off at the limit with 413."""
    body = slash_body("x" * TWO_MB, url=rig.response_url()[1])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    headers = rig.signed(body)
    async with rig.client.post("/slack/interactions", data=chunks(), headers=headers) as resp:
        assert resp.status == 413
        assert resp.headers.get("Content-Length") != str(len(body))
    await nothing_changed(rig)


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/slack/commands", b'{"user_id": "U1", "text": "jobs"}', "without user_id"),
        ("/slack/commands", b"text=jobs&response_url=https%3A%2F%2Fhooks.slack.com%2Fx", "user_id"),
        ("/slack/commands", b"user_id=U1&text=jobs", "response_url"),
        ("/slack/commands", b"&".join(b"f%d=1" % n for n in range(100)), "not a form"),
        ("/slack/interactions", b"", "payload is not JSON"),
        ("/slack/interactions", b"payload=%7Bnot+json", "payload is not JSON"),
        ("/slack/interactions", b"payload=" + quote('{"type":"view_submission"}').encode(), "type"),
        (
            "/slack/interactions",
            b"payload="
            + quote(
                json.dumps(
                    {
                        "type": "block_actions",
                        "user": {"id": OPERATOR},
                        "response_url": "https://hooks.slack.com/a",
                        "actions": [{"action_id": "evil", "value": json.dumps({"j": STREAM})}],
                    }
                )
            ).encode(),
            "unknown action",
        ),
    ],
)
async def test_malformed_requests_get_400_not_500(
    rig: Rig, path: str, body: bytes, reason: str
) -> None:
    """A signed request that is not a slash command or one of our clicks gets 400."""
    status, text = await rig.post(path, body, rig.signed(body))
    assert status == 400
    assert reason in text
    await nothing_changed(rig)


@pytest.mark.parametrize("command", ["status", "metrics", "pause", "resume", "cancel"])
@pytest.mark.parametrize(
    "job", ["../../jobs", "%2e%2e", "abcdef/status", "..%2F..%2Fjobs", "aaaaaa01?x=1", "aaaaaa01#"]
)
async def test_path_like_job_id_never_reaches_polaris(rig: Rig, command: str, job: str) -> None:
    """Whatever is typed as JOB, nothing but a UUID (prefix) can become part of a URL."""
    answer = await rig.slash(f"{command} {job}")
    assert answer.status == 200
    assert "not a job id" in answer.ack["text"]
    await nothing_changed(rig)


async def test_path_like_job_id_in_a_button_value_never_reaches_polaris(rig: Rig) -> None:
    """A click whose button value carries a non-UUID job id is refused with 400."""
    status, text = 0, ""
    for job in ("../../jobs", "aaaaaa01-0000-4000-8000-000000000001/../x"):
        payload = {
            "type": "block_actions",
            "user": {"id": OPERATOR},
            "response_url": rig.response_url()[1],
            "actions": [{"action_id": Action.CANCEL.value, "value": json.dumps({"j": job})}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        status, text = await rig.post("/slack/interactions", body, rig.signed(body))
        assert (status, text) == (400, "bad interaction: button value has a bad job id")
    await nothing_changed(rig)


async def test_ack_is_fast_while_polaris_is_slow(rig: Rig) -> None:
    """With Polaris stalled, the slash command is still acked well under 100 ms."""
    rig.gate.open.clear()  # every Polaris request now hangs until the gate opens
    rig.sim.faults.configure({"latency": 30.0})
    started = time.perf_counter()
    answer = await rig.slash(f"pause {STREAM}")
    elapsed = time.perf_counter() - started
    assert answer.status == 200 and answer.ack["text"].startswith("⏳")
    assert elapsed < 0.1, f"ack took {elapsed * 1000:.0f} ms"
    assert rig.sim.stats.status_changes == []  # the work is still waiting on Polaris
    rig.gate.open.set()
    reply = await answer.final()
    assert reply["text"].startswith("⏸ Paused")
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]


async def test_unexpected_failure_is_a_polite_200(rig: Rig) -> None:
    """If the service blows up (here: broken rules), Slack gets an ephemeral 200, not a 500."""
    rig.expect_crash = True
    rig.rules_now[0] = None  # rules().slack raises AttributeError
    answer = await rig.slash(f"pause {STREAM}")
    assert answer.status == 200
    assert answer.ack["response_type"] == "ephemeral"
    assert "Something went wrong" in answer.ack["text"]
    assert "Traceback" not in answer.ack["text"]
    assert rig.count("commands", "crashed") == 1
    await nothing_changed(rig)


# ---- clients that drop out or dawdle -----------------------------------------------------


def logged_event(name: str, seen: asyncio.Event) -> Any:
    """A structlog processor that sets ``seen`` when event ``name`` is logged."""

    def processor(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("event") == name:
            seen.set()
        return event

    return processor


def request_head(length: int, path: str = "/slack/commands") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bot\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@asynccontextmanager
async def endpoints_served(rig: Rig, **server: Any) -> AsyncIterator[tuple[str, int]]:
    """The rig's service behind the real routes, served as `run` serves them (aiohttp's
    AppRunner: a dropped client does not cancel the handler, unlike aiohttp's TestServer),
    with a short body timeout and the given server settings; yields (host, port)."""
    app = web.Application()
    verifier = RequestVerifier(SecretStr(SECRET), clock=rig.clock)
    replays = ReplayGuard(rig.store.claim_once, clock=rig.clock)
    endpoints = SlackEndpoints(rig.service, verifier, replays, rig.metrics, body_timeout=0.2)
    add_routes(app, lambda: endpoints)
    runner = web.AppRunner(app, **server)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield host, port
    finally:
        await runner.cleanup()


async def test_client_dropping_mid_body_is_one_quiet_line_not_a_crash(rig: Rig) -> None:
    """A client that sends half a body and hangs up is logged once, at info, with no
    traceback; nothing reaches the service and the catch-all is not hit."""
    dropped = asyncio.Event()
    with capture_logs(processors=[logged_event("slack.request_dropped", dropped)]) as logs:
        async with endpoints_served(rig) as (host, port):
            _, writer = await asyncio.open_connection(host, port)
            writer.write(request_head(1000) + b"user_id=U0OPERATOR&te")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(dropped.wait(), 10)
    [line] = [e for e in logs if e["event"] == "slack.request_dropped"]
    assert line["log_level"] == "info" and "exc_info" not in line
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert rig.count("commands", "dropped") == 1
    await nothing_changed(rig)


async def test_body_that_trickles_in_is_cut_off_with_408(rig: Rig) -> None:
    """Headers, then a body that stops coming: answered 408 after the body timeout."""
    async with endpoints_served(rig) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request_head(1000) + b"user_id=U0OPERATOR&text=")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 408")
        writer.close()
        await writer.wait_closed()
    assert rig.count("commands", "http_408") == 1
    await nothing_changed(rig)


async def test_connection_that_never_finishes_its_headers_is_closed(rig: Rig) -> None:
    """A client trickling header bytes is cut off by the server's header timeout (here
    0.3 s; HEADER_TIMEOUT in production), not held open as long as it likes."""
    async with endpoints_served(rig, keepalive_timeout=0.3) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        started = asyncio.get_running_loop().time()

        async def trickle() -> None:
            writer.write(b"POST /slack/commands HTTP/1.1\r\n")
            for n in range(100):
                writer.write(b"X-Slow-%d: 1\r\n" % n)
                await writer.drain()
                await asyncio.sleep(0.05)  # the slow client's own pace

        slow = asyncio.create_task(trickle())
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        assert asyncio.get_running_loop().time() - started < 3
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
        writer.close()
    await nothing_changed(rig)


def test_run_bounds_the_time_to_a_complete_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` serves with the header timeout (aiohttp's keep-alive timeout, which it also
    applies from the moment a connection opens)."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(app_module.web, "run_app", lambda app, **kwargs: seen.update(kwargs))
    settings = Settings(SLACK_SIGNING_SECRET=SecretStr(SECRET), WATCHDOG_LISTEN="127.0.0.1:0")
    app_module.run(settings, RulesHolder(parse_ruleset(RULES, "rules.toml")))
    assert seen["keepalive_timeout"] == HEADER_TIMEOUT <= 15


async def test_routes_answer_503_until_the_endpoints_exist() -> None:
    """Routes added before start-up (as the app must) answer 503 while there is no handler."""
    app = web.Application()
    add_routes(app, lambda: None)
    async with TestClient(TestServer(app)) as client:
        async with client.post("/slack/commands", data=b"x") as resp:
            assert resp.status == 503


def test_the_app_trusts_the_origin_of_slack_api_url_only_when_it_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SLACK_API_URL set (a gateway, GovSlack's API, a stand-in): response URLs on its
    origin are trusted too; left at its default, only Slack's hooks hosts are."""
    monkeypatch.delenv("SLACK_API_URL", raising=False)
    custom = Settings(SLACK_API_URL="http://127.0.0.1:8999/api/")
    trusted = app_module.response_urls(custom, app_module.Options())
    assert trusted == (
        "https://hooks.slack.com/",
        "https://hooks.slack-gov.com/",
        "http://127.0.0.1:8999/",
    )
    default = app_module.response_urls(Settings(), app_module.Options())
    assert default == ("https://hooks.slack.com/", "https://hooks.slack-gov.com/")
