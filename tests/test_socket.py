"""Socket Mode: slack-sdk's real SocketModeClient against the stand-in's websocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient
from test_commands import OPERATOR, STREAM, Rig, alert_for, running_rig

from watchdog.slack.actions import Action, ButtonValue, encode_value
from watchdog.slack.alerts.notifier import SlackAuthError
from watchdog.slack.commands.socket import SocketModeReceiver


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for a condition nothing signals: the SDK's reconnect has no hook to await."""
    async with asyncio.timeout(3.0):
        while not condition():  # noqa: ASYNC110  (no event exists to wait on)
            await asyncio.sleep(0.005)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_rig() as running:
        yield running


@pytest.fixture
async def socket(rig: Rig) -> AsyncIterator[SocketModeReceiver]:
    # The rig already serves the stand-in (API, response URLs and the websocket).
    web_client = AsyncWebClient(token=rig.standin.bot_token, base_url=rig.standin.api_url)
    receiver = SocketModeReceiver(SecretStr(rig.standin.app_token), web_client, rig.service)
    await receiver.start()
    await rig.standin.wait_connected()
    yield receiver
    await receiver.close()


def slash_payload(rig: Rig, text: str) -> tuple[str, dict[str, Any]]:
    token, url = rig.response_url()
    payload = {
        "user_id": OPERATOR,
        "channel_id": "C0ALERTS",
        "command": "/polaris",
        "text": text,
        "response_url": url,
        "trigger_id": "1.2.3",
        "team_id": "T0TEAM",
    }
    return token, payload


async def test_slash_command_envelope_is_acked_and_executed(
    rig: Rig,
    socket: SocketModeReceiver,
) -> None:
    """A slash command over the socket is acked with the reply, then carried out."""
    token, payload = slash_payload(rig, f"pause {STREAM}")
    envelope_id = await rig.standin.send_envelope("slash_commands", payload)
    ack = await rig.standin.wait_ack(envelope_id)
    assert ack["payload"]["text"] == f"⏳ Pausing `{STREAM}`…"
    assert ack["payload"]["response_type"] == "ephemeral"
    await rig.service.drain()
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    assert rig.standin.responses[token][0]["text"].startswith("⏸ Paused")
    assert [e.action for e in rig.audit] == ["pause"]


async def test_interactive_envelope_is_acked_and_executed(
    rig: Rig,
    socket: SocketModeReceiver,
) -> None:
    """A button click over the socket is acked at once and updates the alert message."""
    token, url = rig.response_url()
    alert = alert_for(STREAM, "clicks")
    post = await rig.firing(alert)
    payload = {
        "type": "block_actions",
        "user": {"id": OPERATOR},
        "channel": {"id": "C0ALERTS"},
        "container": {"type": "message", "message_ts": "1.1"},
        "message": post,
        "response_url": url,
        "actions": [
            {
                "action_id": Action.PAUSE.value,
                "value": encode_value(ButtonValue(STREAM, alert.rule, alert.incident_id)),
            }
        ],
    }
    envelope_id = await rig.standin.send_envelope("interactive", payload)
    ack = await rig.standin.wait_ack(envelope_id)
    assert ack == {"envelope_id": envelope_id}
    await rig.service.drain()
    assert rig.sim.stats.status_changes == [(STREAM, "suspended")]
    [updated] = rig.standin.responses[token]
    assert updated["replace_original"] is True
    assert "Paused by" in json.dumps(updated["blocks"])


async def test_malformed_envelope_is_still_acked(
    rig: Rig,
    socket: SocketModeReceiver,
) -> None:
    """An envelope the bot cannot use is acked (so Slack does not redeliver it), not run."""
    envelope_id = await rig.standin.send_envelope("slash_commands", {"text": "pause x"})
    assert await rig.standin.wait_ack(envelope_id) == {"envelope_id": envelope_id}
    other = await rig.standin.send_envelope("events_api", {"event": {"type": "app_mention"}})
    assert await rig.standin.wait_ack(other) == {"envelope_id": other}
    await rig.service.drain()
    assert rig.polaris_paths() == [] and rig.audit == []


async def test_client_reconnects_when_asked_and_keeps_working(
    rig: Rig,
    socket: SocketModeReceiver,
) -> None:
    """After Slack's `disconnect` (refresh_requested) the SDK reconnects; commands still work."""
    client = socket.client
    assert client is not None
    first = client.current_session
    opened = len(rig.standin.calls_of("apps.connections.open"))
    await rig.standin.ask_reconnect()
    await eventually(
        lambda: (
            client.current_session is not first
            and client.current_session is not None
            and not client.current_session.closed
            and rig.standin.connections == 1
        )
    )
    assert len(rig.standin.calls_of("apps.connections.open")) == opened + 1
    _, payload = slash_payload(rig, "help")
    envelope_id = await rig.standin.send_envelope("slash_commands", payload)
    ack = await rig.standin.wait_ack(envelope_id)
    assert "*Usage:*" in ack["payload"]["text"]


async def test_a_refused_app_token_fails_start_up_at_once(rig: Rig) -> None:
    """A wrong SLACK_APP_TOKEN is a clear error now, not an endless retry in the SDK."""
    web_client = AsyncWebClient(token=rig.standin.bot_token, base_url=rig.standin.api_url)
    receiver = SocketModeReceiver(SecretStr("xapp-wrong"), web_client, rig.service)
    with pytest.raises(SlackAuthError, match="SLACK_APP_TOKEN"):
        async with asyncio.timeout(3.0):
            await receiver.start()
    await receiver.close()


async def test_slack_down_does_not_hold_start_up_and_connects_when_back(rig: Rig) -> None:
    """During a Slack outage start() returns at once; the socket connects when Slack does."""
    web_client = AsyncWebClient(
        token=rig.standin.bot_token, base_url=rig.standin.api_url, retry_handlers=[]
    )
    receiver = SocketModeReceiver(
        SecretStr(rig.standin.app_token), web_client, rig.service, ping_interval=0.05
    )
    rig.standin.down()
    async with asyncio.timeout(3.0):
        await receiver.start()
    assert rig.standin.connections == 0
    rig.standin.up()
    await eventually(lambda: rig.standin.connections == 1)
    await receiver.close()
