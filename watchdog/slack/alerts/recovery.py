"""Finding the bot's own earlier posts again: the crash window of "exactly once".

``chat.postMessage`` has no idempotency key. A post Slack accepted but whose answer the
bot never recorded (killed while Slack was slow to answer, or a call that timed out on
our side) would be posted a second time after a restart. Every top-level alert and storm
post therefore carries message metadata naming its incident (or storm key,
:data:`~watchdog.slack.alerts.messages.INCIDENT_EVENT`); before posting for an outbox
record that *may have been sent* the notifier asks :class:`PostFinder`, which reads the
channel's recent history once per delivery batch (``conversations.history`` with
``include_all_metadata``, from the oldest such record's creation minus a margin, a few
pages at most) and answers from that scan.

When the history cannot be read (a missing ``channels:history`` scope, Slack down) it
says so once per channel and finds nothing: a duplicate beats a lost alert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from watchdog.errors import WatchdogError
from watchdog.slack.alerts.messages import INCIDENT_EVENT
from watchdog.store import MessageRef

log = structlog.get_logger(__name__)

#: Seconds before a record's creation the scan starts: clocks differ, and an item may
#: wait in the outbox a little before its first attempt.
MARGIN = 300.0
#: Pages of history read at most per channel and batch (Slack's Tier 3 allows 50+ a
#: minute; a storm of posts after an outage still fits in a few).
MAX_PAGES = 5
PAGE_SIZE = 200

#: ``conversations.history`` through the notifier (its pacing and error handling);
#: raises :class:`HistoryUnavailable` when Slack does not answer with a page.
History = Callable[..., Awaitable[Mapping[str, Any]]]


class HistoryUnavailable(WatchdogError):
    """The channel's history cannot be read now (the message says why)."""


class PostFinder:
    """The bot's top-level posts by incident, one history scan per channel, found lazily."""

    def __init__(self, history: History, since: float) -> None:
        self._history = history
        self._oldest = since - MARGIN
        self._seen: dict[str, dict[str, str]] = {}  # channel -> incident -> ts

    async def find(self, channel: str, incident: str) -> MessageRef | None:
        """The post of ``incident`` in ``channel`` if the bot made one since ``since``."""
        if channel not in self._seen:
            self._seen[channel] = await self._scan(channel)
        ts = self._seen[channel].get(incident)
        if ts is None:
            return None
        log.info("slack.post_recovered", channel=channel, incident=incident, ts=ts)
        return MessageRef(channel=channel, ts=ts)

    async def _scan(self, channel: str) -> dict[str, str]:
        found: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            kwargs: dict[str, Any] = {
                "channel": channel,
                "oldest": f"{max(self._oldest, 0.0):.6f}",
                "include_all_metadata": True,
                "limit": PAGE_SIZE,
            }
            if cursor:
                kwargs["cursor"] = cursor
            try:
                page = await self._history(**kwargs)
            except HistoryUnavailable as exc:
                # Whatever the reason (missing scope, Slack down, a timeout), posting
                # again is the lesser harm; the post itself reports Slack being down.
                log.warning(
                    "slack.history_unavailable",
                    channel=channel,
                    error=str(exc),
                    consequence="posting without looking for an earlier post",
                )
                return found
            for message in page.get("messages") or []:
                incident = _incident_of(message)
                if incident is not None and isinstance(message.get("ts"), str):
                    found.setdefault(incident, message["ts"])
            meta = page.get("response_metadata") or {}
            cursor = meta.get("next_cursor") if isinstance(meta, Mapping) else None
            if not page.get("has_more") or not cursor:
                break
        return found


def _incident_of(message: object) -> str | None:
    if not isinstance(message, Mapping) or message.get("thread_ts") not in (
        None,
        message.get("ts"),
    ):
        return None  # a thread reply is never an incident's post
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != INCIDENT_EVENT:
        return None
    payload = metadata.get("event_payload")
    incident = payload.get("incident") if isinstance(payload, Mapping) else None
    return incident if isinstance(incident, str) else None
