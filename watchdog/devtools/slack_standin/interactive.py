"""The interactive side of the Slack stand-in: response URLs and Socket Mode.

Slash commands and button clicks reach an app over HTTP or over Socket Mode, and the app
answers through the request's ``response_url``. :class:`ResponseUrls` takes those answers
as Slack does (JSON, at most five per URL, blocks held to the limits) and records them.

slack-sdk's aiohttp ``SocketModeClient`` gets a URL from ``apps.connections.open``,
connects, pings (and counts a socket without pongs as stale), reads ``hello`` and
envelopes, acks each envelope with ``{envelope_id, payload?}``, and on a ``disconnect``
message asks for a new URL and reconnects. This hub does the server half of that: it
issues single-connection tickets, greets each client with ``hello``, pushes envelopes to
the newest connection, records acks, and can ask clients to reconnect.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from watchdog.devtools.slack_standin.blockcheck import check_message, render_message

log = structlog.get_logger(__name__)

MAX_RESPONSES = 5  # Slack takes up to 5 posts per response_url


class ResponseUrls:
    def __init__(self, printer: Callable[[str], None] | None = None) -> None:
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.printer = printer

    def accept(self, token: str, body: object) -> web.Response:
        """Answer a post to ``/response/{token}`` as Slack does: ``ok`` or an error word."""
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        if len(self.responses.get(token, [])) >= MAX_RESPONSES:
            return web.Response(status=404, text="used_url")
        deleting = bool(body.get("delete_original"))
        if not deleting:
            problem = check_message(body.get("text"), body.get("blocks"))
            if problem is not None:
                return web.Response(status=400, text=problem.error)
        self.responses.setdefault(token, []).append(body)
        if self.printer:
            title = f"[response {token}] ({body.get('response_type', 'ephemeral')})"
            if deleting:
                self.printer(title + " deletes the original\n")
            else:
                if body.get("replace_original"):
                    title += " replaces the original"
                self.printer(render_message(title, body.get("text") or "", body.get("blocks")))
        return web.Response(text="ok")


class SocketModeHub:
    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()

    def issue_url(self, socket_url: str) -> str:
        """A URL for one connection, as ``apps.connections.open`` hands out."""
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{socket_url}?ticket={ticket}"

    @property
    def connections(self) -> int:
        return len(self._sockets)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)  # a URL is good for one connection
        # autoping answers the pings slack-sdk's client uses to tell a stale socket.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self._connected.set()
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "standin", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0STANDIN"},
            }
        )
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_text(frame.data)
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._connected.clear()
        return ws

    def _on_text(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            log.warning("socket_mode_garbage", data=data[:200])
            return
        if not isinstance(ack, dict) or "envelope_id" not in ack:
            return
        self.acks.append(ack)
        waiter = self._ack_waiters.get(str(ack["envelope_id"]))
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def send_envelope(self, type: str, payload: dict[str, Any]) -> str:
        live = [ws for ws in self._sockets if not ws.closed]
        if not live:
            raise RuntimeError("no Socket Mode client is connected")
        envelope_id = str(uuid.uuid4())
        self._ack_waiters[envelope_id] = asyncio.get_running_loop().create_future()
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": True,
        }
        await live[-1].send_json(envelope)
        return envelope_id

    async def wait_ack(self, envelope_id: str) -> dict[str, Any]:
        return await self._ack_waiters[envelope_id]

    async def ask_reconnect(self) -> None:
        message = {"type": "disconnect", "reason": "refresh_requested", "debug_info": {}}
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_json(message)

    async def close_all(self, app: web.Application | None = None) -> None:
        """Close every connection (an ``on_shutdown`` hook: open sockets would hold it up)."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutdown")
