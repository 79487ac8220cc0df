"""Socket Mode: slash commands and button clicks over Slack's websocket, no public URL.

With an app-level token (``SLACK_APP_TOKEN``) Slack delivers commands and interactions as
envelopes on a websocket instead of signed HTTP requests. slack-sdk's aiohttp
``SocketModeClient`` owns the connection (``apps.connections.open``, pings, and the
reconnects Slack asks for with ``disconnect``); this module turns each envelope into the
same :class:`SlashRequest` / :class:`Click` the HTTP endpoints make, hands it to the
:class:`CommandService`, and acks the envelope with the service's reply as its payload.
No signature check: the socket itself is authenticated by the app token.
"""

from __future__ import annotations

import asyncio
import json
import logging

import structlog
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from watchdog.slack.alerts.notifier import SlackAuthError, slack_is_down
from watchdog.slack.commands import replies
from watchdog.slack.commands.payloads import parse_interaction, parse_slash_form
from watchdog.slack.commands.replies import Reply
from watchdog.slack.commands.service import CommandService

log = structlog.get_logger(__name__)


class SocketModeReceiver:
    """Feeds Socket Mode envelopes to the :class:`CommandService`."""

    def __init__(
        self,
        app_token: SecretStr,
        web_client: AsyncWebClient,
        service: CommandService,
        *,
        ping_interval: float = 5.0,
    ) -> None:
        self._app_token = app_token
        self._web_client = web_client
        self._service = service
        self._ping_interval = ping_interval
        self._client: SocketModeClient | None = None
        self._connecting: asyncio.Task[None] | None = None

    @property
    def client(self) -> SocketModeClient | None:
        """The SDK client while started (for health checks and tests)."""
        return self._client

    async def start(self) -> None:
        """Check the app token, then open the websocket in the background; the SDK keeps
        it open (and reopens it) until :meth:`close`.

        A token Slack refuses is :class:`SlackAuthError` at once (the SDK would retry it
        for ever); a Slack outage is only logged: the connection comes when Slack does,
        and nothing else the bot does waits for it.
        """
        if self._client is not None:
            raise RuntimeError("Socket Mode is already started")
        await self._check_token()
        # The SDK creates its aiohttp session and tasks in its constructor, which therefore
        # has to run inside the event loop: here, not in __init__.
        client = SocketModeClient(
            app_token=self._app_token.get_secret_value(),
            web_client=self._web_client,
            ping_interval=self._ping_interval,
            logger=logging.getLogger("watchdog.slack.commands.socket.sdk"),
        )
        client.socket_mode_request_listeners.append(self._on_request)
        self._client = client
        self._connecting = asyncio.create_task(self._connect(client), name="socket-mode")

    async def _check_token(self) -> None:
        try:
            await self._web_client.apps_connections_open(
                app_token=self._app_token.get_secret_value()
            )
        except SlackApiError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            error = exc.response.get("error") if exc.response is not None else None
            if slack_is_down(status, error):
                log.warning("slack.socket_mode_unavailable", status=status)
                return
            raise SlackAuthError(
                f"Slack refused SLACK_APP_TOKEN ({error or status}): it must be the app-level "
                "token (xapp-…) with the connections:write scope"
            ) from None
        except (OSError, TimeoutError) as exc:  # aiohttp's connection errors are OSErrors
            log.warning("slack.socket_mode_unavailable", error=type(exc).__name__)

    @staticmethod
    async def _connect(client: SocketModeClient) -> None:
        # slack-sdk leaves connect/close untyped; both are coroutines.
        await client.connect()  # type: ignore[no-untyped-call]  # retries until Slack answers
        log.info("slack.socket_mode_connected")

    async def close(self) -> None:
        client, self._client = self._client, None
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]
            log.info("slack.socket_mode_closed")

    async def _on_request(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        reply: Reply | None = None
        try:
            reply = await self._dispatch(req)
        except Exception:
            # Always ack: an envelope left unacked is redelivered by Slack.
            log.exception("slack.socket_envelope_crashed", type=req.type)
            reply = replies.CRASHED
        payload = reply.to_json() if reply is not None else None
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload=payload)
        )

    async def _dispatch(self, req: SocketModeRequest) -> Reply | None:
        if req.type == "slash_commands":
            try:
                slash = parse_slash_form(req.payload)
            except ValueError as exc:
                log.warning("slack.socket_bad_envelope", type=req.type, reason=str(exc))
                return None
            return await self._service.handle_slash(slash)
        if req.type == "interactive":
            try:
                click = parse_interaction(json.dumps(req.payload))
            except ValueError as exc:
                log.warning("slack.socket_bad_envelope", type=req.type, reason=str(exc))
                return None
            return await self._service.handle_click(click)
        log.debug("slack.socket_envelope_ignored", type=req.type)
        return None
