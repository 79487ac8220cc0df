"""The HTTP face of the commands: ``POST /slack/commands`` and ``POST /slack/interactions``.

Each request goes through the same narrow gate before the :class:`CommandService` sees
it: a bounded body (413 before anything large is buffered) read within a bounded time
(408), Slack's signature over the raw bytes (401), not a replay of a request already
served (an empty 200, :mod:`watchdog.slack.commands.replay`), a well-formed form or
payload (400), and only then the service, whose reply is the 200 body. Slack shows a 500 as an ugly
"dispatch failed", so anything that goes wrong past the gate is logged and answered as a
polite ephemeral 200.

Slow or vanishing clients are ordinary on the internet and cost nothing to produce: a
client that drops its request half-way is logged once, at info, without a traceback; a
body that trickles in is cut off after :data:`BODY_TIMEOUT`. The headers are bounded by
the server: aiohttp closes a connection that has not sent a complete request within its
keep-alive timeout, from the moment it opens, so ``run`` sets that to
:data:`HEADER_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import structlog
from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from watchdog.errors import WatchdogError
from watchdog.metrics import BotMetrics
from watchdog.slack.commands import replies
from watchdog.slack.commands.payloads import parse_interaction, parse_slash_form
from watchdog.slack.commands.replay import ReplayGuard
from watchdog.slack.commands.replies import Reply
from watchdog.slack.commands.service import CommandService
from watchdog.slack.commands.verify import RequestVerifier, VerificationError

log = structlog.get_logger(__name__)

COMMANDS_PATH = "/slack/commands"
INTERACTIONS_PATH = "/slack/interactions"
MAX_FIELDS = 64  # a slash command has about a dozen; more is not Slack
#: Seconds a request's body may take to arrive: Slack sends a few kilobytes at once.
BODY_TIMEOUT = 10.0
#: Seconds a connection may take to send a complete request's headers (also the idle
#: time between two requests on one connection).
HEADER_TIMEOUT = 10.0


class _Refused(WatchdogError):
    """The request stops at the gate with this status and short plain text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Dropped(WatchdogError):
    """The client went away before its request was complete."""


def add_routes(app: web.Application, endpoints: Callable[[], SlackEndpoints | None]) -> None:
    """Serve the Slack routes on ``app`` through whatever ``endpoints()`` returns.

    The router freezes when the app starts, before its start-up hooks have built the
    endpoints: until then (or without a signing secret) the routes answer 503.
    """

    async def commands(request: web.Request) -> web.StreamResponse:
        live = endpoints()
        return await live.commands(request) if live else _not_ready()

    async def interactions(request: web.Request) -> web.StreamResponse:
        live = endpoints()
        return await live.interactions(request) if live else _not_ready()

    app.router.add_post(COMMANDS_PATH, commands)
    app.router.add_post(INTERACTIONS_PATH, interactions)


def _not_ready() -> web.Response:
    return web.Response(status=503, text="not ready")


class SlackEndpoints:
    """aiohttp handlers for Slack's slash commands and button clicks."""

    def __init__(
        self,
        service: CommandService,
        verifier: RequestVerifier,
        replays: ReplayGuard,
        metrics: BotMetrics,
        max_body: int = 64 * 1024,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self._service = service
        self._verifier = verifier
        self._replays = replays
        self._metrics = metrics
        self._max_body = max_body
        self._body_timeout = body_timeout

    async def commands(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "commands", self._slash)

    async def interactions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "interactions", self._click)

    async def _slash(self, fields: dict[str, str]) -> Reply | None:
        try:
            req = parse_slash_form(fields)
        except ValueError as exc:
            raise _Refused(400, f"bad slash command: {exc}") from None
        return await self._service.handle_slash(req)

    async def _click(self, fields: dict[str, str]) -> Reply | None:
        try:
            click = parse_interaction(fields.get("payload", ""))
        except ValueError as exc:
            raise _Refused(400, f"bad interaction: {exc}") from None
        return await self._service.handle_click(click)

    async def _handle(
        self,
        request: web.Request,
        endpoint: str,
        serve: Callable[[dict[str, str]], Awaitable[Reply | None]],
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            body = await self._read_body(request)
            try:
                signed = self._verifier.verify(body, request.headers)
            except VerificationError as exc:
                log.warning("slack.request_rejected", endpoint=endpoint, reason=exc.reason)
                raise _Refused(401, "invalid request signature") from None
            if not await self._replays.first_time(signed):
                # Slack never sends one signed request twice: this is a copy. It gets
                # what a served request gets, an empty 200, and nothing is done.
                log.warning("slack.request_replayed", endpoint=endpoint)
                self._metrics.commands.labels(endpoint, "replayed").inc()
                return web.Response(status=200)
            reply = await serve(_form(body))
        except _Refused as refused:
            self._metrics.commands.labels(endpoint, f"http_{refused.status}").inc()
            return web.Response(status=refused.status, text=refused.text)
        except _Dropped as exc:
            # Anyone can do this, as often as they like: one quiet line, no traceback.
            log.info("slack.request_dropped", endpoint=endpoint, reason=str(exc))
            self._metrics.commands.labels(endpoint, "dropped").inc()
            return web.Response(status=400, text="incomplete request")
        except Exception:
            log.exception("slack.handler_crashed", endpoint=endpoint)
            self._metrics.commands.labels(endpoint, "crashed").inc()
            return web.json_response(replies.CRASHED.to_json())
        finally:
            self._metrics.command_ack_seconds.observe(loop.time() - started)
        if reply is None:
            return web.Response(status=200)
        return web.json_response(reply.to_json())

    async def _read_body(self, request: web.Request) -> bytes:
        """The raw body, refused with 413 as soon as it is known to be too large, and
        with 408 when it takes longer than the body timeout to arrive.

        A declared Content-Length is checked before a byte is read; a chunked body has
        none, so it is read piece by piece and refused the moment it passes the limit.
        """
        declared = request.content_length
        if declared is not None and declared > self._max_body:
            raise _Refused(413, "request body too large")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._body_timeout):
                while True:
                    chunk = await request.content.read(min(16 * 1024, self._max_body + 1))
                    if not chunk:
                        return b"".join(chunks)
                    size += len(chunk)
                    if size > self._max_body:
                        raise _Refused(413, "request body too large")
                    chunks.append(chunk)
        except TimeoutError:
            log.info("slack.request_body_timeout", received=size, within=self._body_timeout)
            raise _Refused(408, "request body took too long") from None
        except (OSError, ClientPayloadError, HttpProcessingError) as exc:
            # ConnectionResetError when the peer goes away, a payload error when the body
            # ends short of its Content-Length or its chunked framing.
            raise _Dropped(type(exc).__name__) from None


def _form(body: bytes) -> dict[str, str]:
    """The form fields of a verified body; 400 when it is not a form."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:  # UnicodeDecodeError is one, and so is "too many fields"
        raise _Refused(400, "body is not a form") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        # A repeated field is not something Slack sends: keep the first, ignore the rest.
        fields.setdefault(key, value)
    return fields
