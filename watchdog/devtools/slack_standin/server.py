"""A Slack Web API stand-in: an aiohttp app the demo prints from and the tests post to.

It answers the methods the bot uses at ``/api/<method>`` the way Slack does, so the real
``AsyncWebClient`` (its retries and its errors included) runs against it: tokens are
checked, blocks are held to Slack's limits
(:func:`watchdog.devtools.slack_standin.blockcheck.check_message`),
unknown channels, threads and messages are refused. It records every call and keeps the
current state of every message, with its message metadata; ``conversations.history``
reads them back as Slack documents it (:mod:`watchdog.devtools.slack_standin.records`).
Failures can be switched on at run time (:mod:`watchdog.devtools.slack_standin.faults`):
429, 5xx, an outage, latency, an error answer for a method, and a call that is carried
out but whose answer is held back (until :meth:`SlackStandIn.release`, or for ever) —
Slack accepting a post whose answer the bot never gets. It also takes
``response_url`` posts and serves a Socket Mode websocket that pushes envelopes and
records acks, as slack-sdk's ``SocketModeClient`` expects.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from typing import Any, ClassVar

import structlog
from aiohttp import web

from watchdog.devtools.slack_standin.blockcheck import check_message, render_message
from watchdog.devtools.slack_standin.faults import Faults
from watchdog.devtools.slack_standin.interactive import ResponseUrls, SocketModeHub
from watchdog.devtools.slack_standin.records import (
    Answer,
    Params,
    StoredMessage,
    TimedPost,
    as_api,
    history_page,
    metadata_ok,
    truthy,
)

__all__ = ["SlackStandIn", "StoredMessage", "TimedPost", "serve"]

log = structlog.get_logger(__name__)
#: Who the bot is, as auth.test tells it.
_IDENTITY = dict(team="Stand-in", team_id="T0STANDIN", user="watchdog", user_id="U0WATCHDOG")
RESPONSE_URL_METHOD = "response_url"  # the method name faults use for response URL posts


class SlackStandIn:
    """Slack's Web API, response URLs and Socket Mode, recorded, on one aiohttp app."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-standin",
        app_token: str = "xapp-standin",
        channels: Collection[str] | None = None,
        printer: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.channels = set(channels) if channels is not None else None  # None: all exist
        self.printer = printer
        self.clock = clock  # the epoch clock message timestamps are made from
        self.latency = 0.0  # seconds every API call is held before it is answered
        self.base_url: str | None = None  # where it is served; set by serve() or bind()

        self.calls: list[tuple[str, Params]] = []
        self.messages: dict[str, StoredMessage] = {}
        self.ephemerals: list[Params] = []
        self.posts_by_time: list[TimedPost] = []
        self.response_urls = ResponseUrls(printer)
        self.responses = self.response_urls.responses  # token → JSON bodies posted to it
        self.socket = SocketModeHub()
        self.acks = self.socket.acks  # {envelope_id, payload?} as clients sent them

        self.faults = Faults()
        self._last_ts = 0

    # --- wiring -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack-sdk GETs the reading methods
        app.router.add_post("/response/{token}", self._response)
        app.router.add_get("/socket", self.socket.handle)
        app.on_shutdown.append(self.socket.close_all)
        app.on_shutdown.append(self._release_on_shutdown)
        return app

    def bind(self, base_url: str) -> None:
        """Tell the stand-in where it is served (for response URLs)."""
        self.base_url = base_url.rstrip("/")

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``AsyncWebClient`` (with the trailing slash it needs)."""
        return f"{self._base()}/api/"

    def response_url(self, token: str) -> str:
        return f"{self._base()}/response/{token}"

    def _base(self) -> str:
        if self.base_url is None:
            raise RuntimeError("the stand-in is not served yet: call serve() or bind()")
        return self.base_url

    # --- failure modes ------------------------------------------------------------------

    def rate_limit(
        self, n: int, retry_after: int = 1, *, methods: Collection[str] | None = None
    ) -> None:
        """The next ``n`` calls (of ``methods``, or any) get HTTP 429 with Retry-After."""
        self.faults.add(n, 429, retry_after=retry_after, methods=methods)

    def fail(self, n: int, status: int = 503, *, methods: Collection[str] | None = None) -> None:
        """The next ``n`` calls (of ``methods``, or any) get HTTP ``status``."""
        self.faults.add(n, status, methods=methods)

    def refuse(self, n: int, error: str, *, methods: Collection[str] | None = None) -> None:
        """The next ``n`` calls (of ``methods``, or any) are answered ``ok: false`` with
        ``error`` (e.g. ``missing_scope``), as Slack answers a refusal: HTTP 200."""
        self.faults.add(n, 200, error=error, methods=methods)

    def hold(self, n: int = 1, *, methods: Collection[str] | None = None) -> None:
        """The next ``n`` calls (of ``methods``, or any) are carried out — a post is
        stored and shows in the history — but their answer is held back until
        :meth:`release` (never, if it is not called: the client times out)."""
        self.faults.hold(n, methods)

    def release(self) -> None:
        """Send the answers :meth:`hold` held back."""
        self.faults.release()

    async def wait_held(self) -> None:
        """Return once a call is carried out and its answer held back."""
        await self.faults.wait_held()

    @property
    def held(self) -> int:
        """Calls carried out whose answer is being held back."""
        return self.faults.held

    async def _release_on_shutdown(self, app: web.Application) -> None:
        self.release()

    def down(self) -> None:
        """Every call gets 503 until :meth:`up`."""
        self.faults.down()

    def up(self) -> None:
        self.faults.up()

    # --- reading the record -------------------------------------------------------------

    def top_level(self, channel: str | None = None) -> list[StoredMessage]:
        """Messages not in a thread, oldest first, optionally of one channel."""
        return [
            message
            for message in sorted(self.messages.values(), key=lambda m: m.ts)
            if message.thread_ts is None and (channel is None or message.channel == channel)
        ]

    def replies(self, ts: str) -> list[StoredMessage]:
        """The thread under ``ts``, oldest first."""
        return sorted((m for m in self.messages.values() if m.thread_ts == ts), key=lambda m: m.ts)

    def calls_of(self, method: str) -> list[Params]:
        return [params for name, params in self.calls if name == method]

    # --- the Web API ----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except ValueError:
            return _json(200, {"ok": False, "error": "invalid_json"})
        self.calls.append((method, params))
        if self.latency > 0:
            await asyncio.sleep(self.latency)  # an injected delay, not a wait for an event
        fault = self.faults.answer(method)
        if fault is not None:
            return fault
        handler = self._METHODS.get(method)
        if handler is None:
            return _json(404, {"ok": False, "error": "unknown_method"})
        token = _token(request, params)
        if token is None:
            return _json(200, {"ok": False, "error": "not_authed"})
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != wanted:
            other = self.bot_token if wanted == self.app_token else self.app_token
            error = "not_allowed_token_type" if token == other else "invalid_auth"
            return _json(200, {"ok": False, "error": error})
        status, body = handler(self, request, params)
        await self.faults.hold_answer(method)
        return _json(status, body)

    def _auth_test(self, request: web.Request, params: Params) -> Answer:
        url = "https://standin.slack.invalid/"
        return 200, {"ok": True, "url": url, "bot_id": "B0WATCHDOG", **_IDENTITY}

    def _post_message(self, request: web.Request, params: Params) -> Answer:
        channel = str(params.get("channel") or "")
        if not self._channel_ok(channel):
            return 200, {"ok": False, "error": "channel_not_found"}
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            parent = self.messages.get(str(thread_ts))
            if parent is None or parent.channel != channel:
                return 200, {"ok": False, "error": "thread_not_found"}
            thread_ts = parent.thread_ts or parent.ts  # a reply to a reply joins the thread
        text, blocks = str(params.get("text") or ""), params.get("blocks")
        problem = check_message(text, blocks)
        if problem is not None:
            return 200, _refusal(problem.error, problem.detail)
        metadata = params.get("metadata")
        if metadata is not None and not metadata_ok(metadata):
            return 200, {"ok": False, "error": "invalid_metadata_format"}
        ts = self._next_ts()
        message = StoredMessage(
            channel=channel,
            ts=ts,
            text=text,
            blocks=list(blocks or []),
            thread_ts=thread_ts,
            reply_broadcast=truthy(params.get("reply_broadcast")),
            metadata=metadata,
        )
        self.messages[ts] = message
        self.posts_by_time.append(TimedPost(time.monotonic(), "chat.postMessage", channel, ts))
        self._print("posted", message)
        return 200, {"ok": True, "channel": channel, "ts": ts, "message": as_api(message)}

    def _update(self, request: web.Request, params: Params) -> Answer:
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        if not self._channel_ok(channel):
            return 200, {"ok": False, "error": "channel_not_found"}
        message = self.messages.get(ts)
        if message is None or message.channel != channel:
            return 200, {"ok": False, "error": "message_not_found"}
        # Slack keeps what an update leaves out.
        text = str(params["text"]) if "text" in params else message.text
        blocks = params["blocks"] if "blocks" in params else message.blocks
        problem = check_message(text, blocks)
        if problem is not None:
            return 200, _refusal(problem.error, problem.detail)
        message.text, message.blocks = text, list(blocks or [])
        message.edited += 1
        self.posts_by_time.append(TimedPost(time.monotonic(), "chat.update", channel, ts))
        self._print("updated", message)
        answer = {"ok": True, "channel": channel, "ts": ts, "text": text}
        return 200, {**answer, "message": as_api(message)}

    def _post_ephemeral(self, request: web.Request, params: Params) -> Answer:
        channel, user = str(params.get("channel") or ""), str(params.get("user") or "")
        if not self._channel_ok(channel):
            return 200, {"ok": False, "error": "channel_not_found"}
        if not user:
            return 200, {"ok": False, "error": "user_not_found"}
        text, blocks = str(params.get("text") or ""), params.get("blocks")
        problem = check_message(text, blocks)
        if problem is not None:
            return 200, _refusal(problem.error, problem.detail)
        ts = self._next_ts()
        record = {"channel": channel, "user": user, "text": text, "blocks": blocks or []}
        self.ephemerals.append({**record, "message_ts": ts})
        self.posts_by_time.append(TimedPost(time.monotonic(), "chat.postEphemeral", channel, ts))
        if self.printer:
            self.printer(render_message(f"[{channel}] (only {user} sees this)", text, blocks or []))
        return 200, {"ok": True, "message_ts": ts}

    def _history(self, request: web.Request, params: Params) -> Answer:
        channel = str(params.get("channel") or "")
        if not self._channel_ok(channel):
            return 200, {"ok": False, "error": "channel_not_found"}
        return history_page(self.top_level(channel), params)

    def _permalink(self, request: web.Request, params: Params) -> Answer:
        channel, ts = str(params.get("channel") or ""), str(params.get("message_ts") or "")
        message = self.messages.get(ts)
        if not self._channel_ok(channel) or message is None or message.channel != channel:
            return 200, {"ok": False, "error": "message_not_found"}
        link = f"https://standin.slack.invalid/archives/{channel}/p{ts.replace('.', '')}"
        return 200, {"ok": True, "channel": channel, "permalink": link}

    def _connections_open(self, request: web.Request, params: Params) -> Answer:
        return 200, {"ok": True, "url": self.socket.issue_url(f"ws://{request.host}/socket")}

    _METHODS: ClassVar[dict[str, Callable[[SlackStandIn, web.Request, Params], Answer]]] = {
        "auth.test": _auth_test,
        "chat.postMessage": _post_message,
        "chat.update": _update,
        "chat.postEphemeral": _post_ephemeral,
        "conversations.history": _history,
        "chat.getPermalink": _permalink,
        "apps.connections.open": _connections_open,
    }

    def _channel_ok(self, channel: str) -> bool:
        return bool(channel) and (self.channels is None or channel in self.channels)

    def _next_ts(self) -> str:
        # Slack's ts is epoch seconds with microseconds, unique and increasing per channel.
        micros = max(int(self.clock() * 1_000_000), self._last_ts + 100)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _print(self, verb: str, message: StoredMessage) -> None:
        if self.printer is None:
            return
        where = f"[{message.channel}]"
        if message.thread_ts:
            where += f" ↳ thread {message.thread_ts}"
        title = f"{where} {verb} {message.ts}" + (" (edited)" if verb == "updated" else "")
        self.printer(render_message(title, message.text, message.blocks))

    # --- response URLs and Socket Mode (see watchdog.devtools.slack_standin.interactive) --------

    async def _response(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        self.calls.append((RESPONSE_URL_METHOD, {"token": token, "body": body}))
        return self.faults.answer(RESPONSE_URL_METHOD) or self.response_urls.accept(token, body)

    @property
    def connections(self) -> int:
        return self.socket.connections

    async def wait_connected(self) -> None:
        """Return once a Socket Mode client is connected."""
        await self.socket.wait_connected()

    async def send_envelope(self, type: str, payload: dict[str, Any]) -> str:
        """Push an envelope to the newest connected client; returns its ``envelope_id``."""
        return await self.socket.send_envelope(type, payload)

    async def wait_ack(self, envelope_id: str) -> dict[str, Any]:
        """The ack of an envelope sent by :meth:`send_envelope`, once it arrives."""
        return await self.socket.wait_ack(envelope_id)

    async def ask_reconnect(self) -> None:
        """Ask every connected client to reconnect, as Slack does every few hours."""
        await self.socket.ask_reconnect()


async def serve(standin: SlackStandIn, host: str, port: int) -> web.AppRunner:
    """Run the stand-in on ``host:port`` (0: any free port); clean up with ``runner.cleanup()``."""
    runner = web.AppRunner(standin.app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    standin.bind(f"http://{bound_host}:{bound_port}")
    log.info("slack_standin_started", url=standin.api_url)
    return runner


# --- helpers ---------------------------------------------------------------------------


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _refusal(error: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "response_metadata": {"messages": [f"[ERROR] {detail}"]}}


async def _read_params(request: web.Request) -> Params:
    """Query, form or JSON parameters, as slack-sdk sends each method differently."""
    params: Params = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    for key in ("blocks", "attachments", "metadata"):
        if isinstance(params.get(key), str):
            # Form posts carry blocks as a JSON string; garbage is left for the check.
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                pass
    return params


def _token(request: web.Request, params: Params) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip()
    token = params.pop("token", None)
    return str(token) if token else None
