"""The Slack stand-in, driven by the real slack-sdk clients: posts, threads, updates, the
errors and limits Slack enforces, injected failures and retries, response URLs, Socket Mode."""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from watchdog.devtools.slack_standin.server import SlackStandIn, serve
from watchdog.domain.alerts import AlertState, Condition, JobFacts, Phase, Reason, RuleFacts
from watchdog.domain.outgoing import Notification
from watchdog.slack.alerts import messages

CHANNEL = "C0ALERTS"


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    fake = SlackStandIn(channels={CHANNEL, "C0OTHER"}, clock=lambda: 1_700_000_000.0)
    runner = await serve(fake, "127.0.0.1", 0)
    yield fake
    await runner.cleanup()


@pytest.fixture
def client(standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=standin.bot_token, base_url=standin.api_url, retry_handlers=[])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


# --- the Web API -----------------------------------------------------------------------


async def test_post_message_returns_unique_increasing_ts_and_records_it(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """Each post gets a new, larger ts (even with a frozen clock) and is kept as sent."""
    first = await client.chat_postMessage(channel=CHANNEL, text="one", blocks=[section("*one*")])
    second = await client.chat_postMessage(channel=CHANNEL, text="two")
    assert first["ts"] == "1700000000.000000" and second["ts"] == "1700000000.000100"
    assert first["channel"] == CHANNEL and first["message"]["blocks"] == [section("*one*")]
    assert [m.text for m in standin.top_level(CHANNEL)] == ["one", "two"]
    assert standin.messages[first["ts"]].blocks == [section("*one*")]
    assert [p.method for p in standin.posts_by_time] == ["chat.postMessage"] * 2
    assert standin.calls_of("chat.postMessage")[1] == {"channel": CHANNEL, "text": "two"}


async def test_reply_goes_into_the_thread(standin: SlackStandIn, client: AsyncWebClient) -> None:
    """A post with thread_ts is a reply: listed under its parent, not at the top level."""
    parent = await client.chat_postMessage(channel=CHANNEL, text="alert")
    reply = await client.chat_postMessage(channel=CHANNEL, text="still", thread_ts=parent["ts"])
    nested = await client.chat_postMessage(channel=CHANNEL, text="again", thread_ts=reply["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    assert [m.ts for m in standin.replies(parent["ts"])] == [reply["ts"], nested["ts"]]
    assert [m.text for m in standin.top_level()] == ["alert"]


async def test_reply_to_an_unknown_thread_is_refused(client: AsyncWebClient) -> None:
    """thread_ts of a message that does not exist (here) answers thread_not_found."""
    error = await slack_error(client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="1.2"))
    assert error.response["error"] == "thread_not_found"


async def test_update_edits_the_message_and_keeps_what_it_leaves_out(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """chat.update replaces text and blocks, counts the edit, and keeps omitted parts."""
    posted = await client.chat_postMessage(channel=CHANNEL, text="firing", blocks=[section("a")])
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="resolved")
    message = standin.messages[posted["ts"]]
    assert (message.text, message.blocks, message.edited) == ("resolved", [section("a")], 1)
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="r", blocks=[section("b")])
    assert (message.blocks, message.edited) == ([section("b")], 2)


async def test_update_of_an_unknown_message_is_refused(client: AsyncWebClient) -> None:
    """Updating a ts the channel does not have answers message_not_found."""
    posted = await client.chat_postMessage(channel=CHANNEL, text="x")
    for channel, ts in ((CHANNEL, "1.000001"), ("C0OTHER", posted["ts"])):
        error = await slack_error(client.chat_update(channel=channel, ts=ts, text="y"))
        assert error.response["error"] == "message_not_found"


async def test_ephemeral_message_is_recorded_for_its_user(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """chat.postEphemeral records who sees what, and answers a message_ts."""
    answer = await client.chat_postEphemeral(channel=CHANNEL, user="U0ME", text="only you")
    assert answer["message_ts"]
    assert standin.ephemerals == [
        {
            "channel": CHANNEL,
            "user": "U0ME",
            "text": "only you",
            "blocks": [],
            "message_ts": answer["message_ts"],
        }
    ]
    assert standin.top_level() == []


def event(n: int) -> dict[str, Any]:
    return {"event_type": "test_event", "event_payload": {"n": n}}


async def test_metadata_is_kept_and_read_back_only_when_asked_for(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """A post's metadata is stored with it; conversations.history returns it only with
    include_all_metadata, and refuses metadata of the wrong shape."""
    posted = await client.chat_postMessage(channel=CHANNEL, text="x", metadata=event(1))
    assert standin.messages[posted["ts"]].metadata == event(1)
    plain = await client.conversations_history(channel=CHANNEL)
    assert "metadata" not in plain["messages"][0]
    full = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert full["messages"][0]["metadata"] == event(1)
    bad = {"event_type": "", "event_payload": {}}
    error = await slack_error(client.chat_postMessage(channel=CHANNEL, text="x", metadata=bad))
    assert error.response["error"] == "invalid_metadata_format"


async def test_history_is_newest_first_paged_by_cursor_and_bounded_by_oldest_and_latest(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """History lists top-level messages newest first (no thread replies), in pages of
    `limit` joined by next_cursor, between oldest and latest (exclusive unless inclusive)."""
    posted = [
        (await client.chat_postMessage(channel=CHANNEL, text=f"m{n}"))["ts"] for n in range(5)
    ]
    await client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=posted[0])
    await client.chat_postMessage(channel="C0OTHER", text="elsewhere")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
        pages += 1
        seen += [m["text"] for m in page["messages"]]
        if not page["has_more"]:
            break
        cursor = page["response_metadata"]["next_cursor"]
    assert seen == ["m4", "m3", "m2", "m1", "m0"] and pages == 3
    between = await client.conversations_history(
        channel=CHANNEL, oldest=posted[1], latest=posted[4]
    )
    assert [m["text"] for m in between["messages"]] == ["m3", "m2"]
    inclusive = await client.conversations_history(
        channel=CHANNEL, oldest=posted[1], latest=posted[4], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m4", "m3", "m2", "m1"]
    error = await slack_error(client.conversations_history(channel=CHANNEL, cursor="garbage!"))
    assert error.response["error"] == "invalid_cursor"


async def test_held_call_is_carried_out_but_answered_only_on_release(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """hold(): the post is stored (and listed) at once, its answer waits for release()."""
    standin.hold(1, methods=["chat.postMessage"])
    call = asyncio.create_task(client.chat_postMessage(channel=CHANNEL, text="slow"))
    await standin.wait_held()
    [stored] = standin.top_level(CHANNEL)
    assert stored.text == "slow" and not call.done()
    assert (await client.auth_test())["ok"]  # other calls are not held
    standin.release()
    assert (await call)["ts"] == stored.ts
    assert (await client.chat_postMessage(channel=CHANNEL, text="fast"))["ok"]


async def test_refuse_answers_a_slack_error_for_one_method(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """refuse(): a 200 with ok=false and the given error, e.g. a missing scope."""
    standin.refuse(1, "missing_scope", methods=["conversations.history"])
    error = await slack_error(client.conversations_history(channel=CHANNEL))
    assert (error.response.status_code, error.response["error"]) == (200, "missing_scope")
    assert (await client.conversations_history(channel=CHANNEL))["ok"]


async def test_unknown_channel_is_refused(client: AsyncWebClient) -> None:
    """A channel outside the configured set answers channel_not_found."""
    error = await slack_error(client.chat_postMessage(channel="C0NOPE", text="x"))
    assert error.response["error"] == "channel_not_found"


@pytest.mark.parametrize(
    ("text", "blocks", "error"),
    [
        ("x", [section("b")] * 51, "invalid_blocks"),
        ("x", [section("b" * 3001)], "invalid_blocks"),
        (
            "x",
            [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            "invalid_blocks",
        ),
        (
            "x",
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
            "invalid_blocks",
        ),
        (
            "x",
            [
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}
                    ],
                }
            ],
            "invalid_blocks",
        ),
        ("t" * 40_001, None, "msg_too_long"),
        ("", None, "no_text"),
    ],
    ids=["51-blocks", "long-section", "long-header", "long-field", "long-button", "long", "empty"],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_messages_slack_would_reject_are_refused(
    standin: SlackStandIn, client: AsyncWebClient, text: str, blocks: Any, error: str
) -> None:
    """Over-limit blocks and text get Slack's error, and nothing is stored."""
    failure = await slack_error(client.chat_postMessage(channel=CHANNEL, text=text, blocks=blocks))
    assert failure.response["error"] == error
    assert standin.messages == {}


async def test_form_encoded_post_with_token_in_body_is_accepted(standin: SlackStandIn) -> None:
    """Form posts (blocks as a JSON string, token as a field) work as on Slack."""
    form = {
        "token": standin.bot_token,
        "channel": CHANNEL,
        "text": "x",
        "blocks": '[{"type":"divider"}]',
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(standin.api_url + "chat.postMessage", data=form) as answer:
            body = await answer.json()
    assert body["ok"] is True
    assert standin.messages[body["ts"]].blocks == [{"type": "divider"}]
    assert "token" not in standin.calls_of("chat.postMessage")[0]


async def test_wrong_or_missing_token_is_refused(standin: SlackStandIn) -> None:
    """A wrong token is invalid_auth, none is not_authed, the app token is the wrong type."""
    for token, error in (("xoxb-wrong", "invalid_auth"), (None, "not_authed")):
        wrong = AsyncWebClient(token=token, base_url=standin.api_url)
        assert (await slack_error(wrong.auth_test())).response["error"] == error
    app = AsyncWebClient(token=standin.app_token, base_url=standin.api_url)
    failure = await slack_error(app.chat_postMessage(channel=CHANNEL, text="x"))
    assert failure.response["error"] == "not_allowed_token_type"


async def test_auth_test_tells_who_the_bot_is(client: AsyncWebClient) -> None:
    """auth.test answers the bot's ids."""
    answer = await client.auth_test()
    assert (answer["user_id"], answer["bot_id"], answer["team_id"]) == (
        "U0WATCHDOG",
        "B0WATCHDOG",
        "T0STANDIN",
    )


def firing(job_id: str, table: str = "<!channel>") -> AlertState:
    job = JobFacts(job_id, table, "streaming", "running", "error", "internal_error", "x" * 10_000)
    return AlertState(
        rule="job-unhealthy",
        job_id=job_id,
        phase=Phase.FIRING,
        severity="critical",
        since=1_699_999_000.0,
        last_active=1_700_000_000.0,
        last_eval=1_700_000_000.0,
        job=job,
        condition=Condition(active=True, summary="Job is in error"),
        fired_at=1_699_999_100.0,
    )


async def test_alert_messages_go_through_the_real_client(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """An incident's post, thread reply and resolving update, and a 1,000-job storm, all land."""
    rule = RuleFacts(name="job-unhealthy", kind="health", severity="critical")
    n = Notification(Reason.NEW, firing("0191-job"), rule, mention="@here")
    now = 1_700_000_000.0
    post = await client.chat_postMessage(
        channel=CHANNEL, **messages.alert_message(n, now=now).as_kwargs()
    )
    repeat = messages.thread_reply(Notification(Reason.REPEAT, n.alert, rule), now=now)
    await client.chat_postMessage(channel=CHANNEL, thread_ts=post["ts"], **repeat.as_kwargs())
    gone = Notification(Reason.RESOLVED, n.alert, rule)
    await client.chat_update(
        channel=CHANNEL, ts=post["ts"], **messages.resolved_message(gone, now=now).as_kwargs()
    )
    assert standin.messages[post["ts"]].text.startswith("✅ RESOLVED [default] job-unhealthy")
    assert [m.text for m in standin.replies(post["ts"])] == [repeat.text]

    alerts = [firing(f"job-{i:04d}", f"table_{i % 9}") for i in range(1000)]
    head = messages.storm_message(rule, alerts, resolved=0, total=1000, now=now, mention=None)
    storm = await client.chat_postMessage(channel=CHANNEL, **head.as_kwargs())
    for reply in messages.storm_list_replies(alerts, heading="All 1000 jobs"):
        await client.chat_postMessage(channel=CHANNEL, thread_ts=storm["ts"], **reply.as_kwargs())
    assert 1 < len(standin.replies(storm["ts"])) <= 4


# --- failures and slack-sdk's retries ---------------------------------------------------


async def test_rate_limited_call_is_retried_after_retry_after(
    standin: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """429 with Retry-After: slack-sdk's handler waits that long, retries, and succeeds."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)  # record the wait instead of spending it

    monkeypatch.setattr(builtin_async_handlers, "asyncio", types.SimpleNamespace(sleep=sleep))
    client = AsyncWebClient(
        token=standin.bot_token,
        base_url=standin.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    standin.rate_limit(2, retry_after=3)
    answer = await client.chat_postMessage(channel=CHANNEL, text="x")
    assert answer["ok"] and len(standin.calls_of("chat.postMessage")) == 3
    assert len(slept) == 2 and all(3 <= s < 4 for s in slept)


async def test_rate_limit_without_retries_raises_ratelimited(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """Without a retry handler the 429 surfaces with its error and Retry-After header."""
    standin.rate_limit(1, retry_after=7)
    failure = await slack_error(client.chat_postMessage(channel=CHANNEL, text="x"))
    assert failure.response.status_code == 429 and failure.response["error"] == "ratelimited"
    assert failure.response.headers["Retry-After"] == "7"
    assert (await client.chat_postMessage(channel=CHANNEL, text="x"))["ok"]


async def test_server_errors_are_retried_then_succeed(standin: SlackStandIn) -> None:
    """fail(2, 503): slack-sdk's server-error handler retries past both."""
    client = AsyncWebClient(
        token=standin.bot_token,
        base_url=standin.api_url,
        retry_handlers=[
            AsyncServerErrorRetryHandler(
                max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.0)
            )
        ],
    )
    standin.fail(2, status=503)
    assert (await client.chat_postMessage(channel=CHANNEL, text="x"))["ok"]
    assert len(standin.calls_of("chat.postMessage")) == 3


async def test_failures_can_target_one_method(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """fail(methods=...) hits only those methods; other calls pass."""
    standin.fail(1, status=500, methods={"chat.update"})
    posted = await client.chat_postMessage(channel=CHANNEL, text="x")
    failure = await slack_error(client.chat_update(channel=CHANNEL, ts=posted["ts"], text="y"))
    assert failure.response.status_code == 500
    assert (await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="y"))["ok"]


async def test_down_fails_everything_until_up(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    """down(): every call is a 503 until up()."""
    standin.down()
    for _ in range(2):
        assert (await slack_error(client.auth_test())).response.status_code == 503
    standin.up()
    assert (await client.auth_test())["ok"]


async def test_latency_holds_each_answer(standin: SlackStandIn, client: AsyncWebClient) -> None:
    """With latency set, an answer takes at least that long."""
    standin.latency = 0.05
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.05


# --- response URLs ---------------------------------------------------------------------


async def test_response_url_records_replies_up_to_five(standin: SlackStandIn) -> None:
    """Posts to a response URL are kept per token; the sixth is refused as Slack does."""
    hook = AsyncWebhookClient(standin.response_url("tok1"))
    first = await hook.send(text="Pausing job…", response_type="ephemeral")
    assert (first.status_code, first.body) == (200, "ok")
    for _ in range(4):
        await hook.send(text="more", replace_original=True)
    sixth = await hook.send(text="too many")
    assert (sixth.status_code, sixth.body) == (404, "used_url")
    assert standin.responses["tok1"][0] == {"text": "Pausing job…", "response_type": "ephemeral"}
    assert len(standin.responses["tok1"]) == 5


async def test_response_url_refuses_invalid_blocks(standin: SlackStandIn) -> None:
    """A reply whose blocks break the limits is refused and not recorded."""
    hook = AsyncWebhookClient(standin.response_url("tok2"))
    answer = await hook.send(text="x", blocks=[section("b" * 3001)])
    assert (answer.status_code, answer.body) == (400, "invalid_blocks")
    assert "tok2" not in standin.responses


# --- Socket Mode -----------------------------------------------------------------------


async def open_socket_url(standin: SlackStandIn, token: str) -> str:
    app_client = AsyncWebClient(token=token, base_url=standin.api_url)
    return str((await app_client.apps_connections_open(app_token=token))["url"])


async def test_connections_open_needs_an_app_token(standin: SlackStandIn) -> None:
    """apps.connections.open refuses a bot token."""
    failure = await slack_error(open_socket_url(standin, standin.bot_token))
    assert failure.response["error"] == "not_allowed_token_type"


async def test_envelope_and_ack_round_trip_over_a_websocket(standin: SlackStandIn) -> None:
    """A client gets hello, then the envelope; its ack is recorded and awaited."""
    url = await open_socket_url(standin, standin.app_token)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive_json()
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        envelope_id = await standin.send_envelope("slash_commands", {"text": "jobs"})
        envelope = await ws.receive_json()
        assert envelope == {
            "envelope_id": envelope_id,
            "type": "slash_commands",
            "payload": {"text": "jobs"},
            "accepts_response_payload": True,
        }
        await ws.send_json({"envelope_id": envelope_id, "payload": {"text": "ok"}})
        ack = await standin.wait_ack(envelope_id)
        assert ack == {"envelope_id": envelope_id, "payload": {"text": "ok"}}
        assert standin.acks == [ack]
        await standin.ask_reconnect()
        disconnect = await ws.receive_json()
        assert disconnect["type"] == "disconnect" and disconnect["reason"] == "refresh_requested"


async def test_socket_url_is_good_for_one_connection(standin: SlackStandIn) -> None:
    """A used or made-up ticket is refused."""
    url = await open_socket_url(standin, standin.app_token)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url):
            pass
        for bad in (url, url.split("?")[0] + "?ticket=nope"):
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(bad)


async def test_slack_sdk_socket_mode_client_receives_and_acks(standin: SlackStandIn) -> None:
    """slack-sdk's own SocketModeClient connects, gets an envelope and acks it."""
    web = AsyncWebClient(token=standin.bot_token, base_url=standin.api_url)
    sdk = SocketModeClient(app_token=standin.app_token, web_client=web)

    async def listener(client: Any, request: SocketModeRequest) -> None:
        response = SocketModeResponse(request.envelope_id, payload={"seen": request.type})
        await client.send_socket_mode_response(response)

    sdk.socket_mode_request_listeners.append(listener)
    await sdk.connect()
    try:
        await asyncio.wait_for(standin.wait_connected(), 5)
        envelope_id = await standin.send_envelope("interactive", {"type": "block_actions"})
        ack = await asyncio.wait_for(standin.wait_ack(envelope_id), 5)
        assert ack == {"envelope_id": envelope_id, "payload": {"seen": "interactive"}}
    finally:
        await sdk.close()


async def test_envelope_without_a_client_is_an_error(standin: SlackStandIn) -> None:
    """Pushing with no client connected raises instead of silently dropping."""
    with pytest.raises(RuntimeError, match="no Socket Mode client"):
        await standin.send_envelope("slash_commands", {})


# --- printing --------------------------------------------------------------------------


async def test_printer_shows_messages_as_a_person_would_read_them() -> None:
    """With a printer, posts, replies and updates print as text with buttons in brackets."""
    printed: list[str] = []
    fake = SlackStandIn(printer=printed.append, clock=lambda: 1_700_000_000.0)
    runner = await serve(fake, "127.0.0.1", 0)
    try:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        button = {"type": "button", "text": {"type": "plain_text", "text": "Pause"}}
        blocks = [
            {"type": "header", "text": {"type": "plain_text", "text": "🔴 job-unhealthy"}},
            section("Table &lt;!channel&gt; on <!date^1700000000^{time}|22:13 UTC>"),
            {
                "type": "actions",
                "elements": [button, {**button, "text": {"type": "plain_text", "text": "Cancel"}}],
            },
        ]
        posted = await client.chat_postMessage(channel=CHANNEL, text="x", blocks=blocks)
        await client.chat_postMessage(channel=CHANNEL, text="Still firing", thread_ts=posted["ts"])
        await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="✅ resolved", blocks=[])
    finally:
        await runner.cleanup()
    assert printed[0].splitlines() == [
        f"[{CHANNEL}] posted {posted['ts']}",
        "  ▌ 🔴 job-unhealthy",
        "  Table <!channel> on 22:13 UTC",
        "  [Pause] [Cancel]",
    ]
    assert printed[1].startswith(f"[{CHANNEL}] ↳ thread {posted['ts']} posted")
    assert "Still firing" in printed[1]
    assert printed[2].splitlines()[1:] == ["  ✅ resolved"]


async def test_printer_shows_text_only_replies_with_dates_resolved(standin: SlackStandIn) -> None:
    """A response without blocks prints its text, date tokens shown by their fallback."""
    printed: list[str] = []
    standin.response_urls.printer = printed.append
    hook = AsyncWebhookClient(standin.response_url("tok3"))
    await hook.send(text="⏸ Paused by <@U1> · <!date^1700000000^{time}|22:13 UTC>")
    assert printed == ["[response tok3] (ephemeral)\n  ⏸ Paused by @U1 · 22:13 UTC\n"]
