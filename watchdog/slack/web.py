"""The Slack Web API client: slack-sdk's ``AsyncWebClient`` whose every call times out.

slack-sdk applies its ``timeout`` only to a session it creates itself, per call; given a
shared ``aiohttp.ClientSession`` it uses that session's timeout, aiohttp's default of
five minutes — and one post stuck that long holds up every alert queued behind it. So
the client gets a session of its own whose ``ClientTimeout`` is the configured timeout,
for every method (posts, edits, history, ``auth.test``, ``apps.connections.open``), and
a call that times out is logged with its method.

The timeout is a total per request, which aiohttp raises as a plain ``TimeoutError``:
slack-sdk's connection-error retry handler does not retry that, which is right for a
post Slack may have accepted (the outbox looks for it before posting again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

log = structlog.get_logger(__name__)

#: Seconds a Slack call may take. Generous: a post that times out on our side may still
#: land on Slack's, and finding it again costs a history scan.
SLACK_TIMEOUT = 20.0


class SlackWebClient(AsyncWebClient):
    """``AsyncWebClient`` on its own session; :meth:`close` closes that session."""

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await super().api_call(api_method, **kwargs)
        except TimeoutError:
            log.warning("slack.call_timed_out", method=api_method, timeout=self.timeout)
            raise

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def open_web_client(
    token: str,
    base_url: str,
    *,
    timeout: float = SLACK_TIMEOUT,
    retry_handlers: Sequence[AsyncRetryHandler] = (),
) -> SlackWebClient:
    """A client whose every call gives up after ``timeout`` seconds; close it when done.

    Must be called inside the event loop (aiohttp sessions belong to one).
    """
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    return SlackWebClient(
        token=token,
        base_url=base_url,
        session=session,
        timeout=max(1, round(timeout)),
        retry_handlers=list(retry_handlers),
    )
