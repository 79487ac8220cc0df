"""The Slack stand-in's record of messages, and how Slack hands them back.

:class:`StoredMessage` is a message as it stands now (edits applied, with its message
metadata); :func:`as_api` is its JSON as Slack's methods answer it; :func:`history_page`
answers ``conversations.history`` as Slack documents it: top-level messages newest
first, between ``oldest`` and ``latest`` (exclusive unless ``inclusive``), ``limit`` at a
time with an opaque ``next_cursor``, and metadata only with ``include_all_metadata``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]
Answer = tuple[int, dict[str, Any]]  # HTTP status and JSON body


@dataclass
class StoredMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edited: int = 0
    reply_broadcast: bool = False
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TimedPost:
    """When (``time.monotonic()``) a message was received, for latency measurements."""

    at: float
    method: str
    channel: str
    ts: str


def truthy(value: object) -> bool:
    """A boolean parameter as slack-sdk sends it (JSON true, or "1"/"true" in a form)."""
    return value is True or str(value).lower() in ("1", "true")


def as_api(message: StoredMessage, with_metadata: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "message", "user": "U0WATCHDOG", "bot_id": "B0WATCHDOG"}
    body.update(text=message.text, blocks=message.blocks, ts=message.ts)
    if message.thread_ts:
        body["thread_ts"] = message.thread_ts
    if with_metadata and message.metadata is not None:
        body["metadata"] = message.metadata
    return body


def metadata_ok(metadata: object) -> bool:
    """Slack's shape of message metadata: an event type and an object payload."""
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and bool(metadata["event_type"])
        and isinstance(metadata.get("event_payload"), dict)
    )


def history_page(top_level: Sequence[StoredMessage], params: Params) -> Answer:
    """``conversations.history`` over a channel's ``top_level`` messages (oldest first)."""
    try:
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        limit = int(params.get("limit") or 100)
    except ValueError:
        return 200, {"ok": False, "error": "invalid_arguments"}
    inclusive = truthy(params.get("inclusive"))
    in_range = [
        m
        for m in reversed(top_level)  # newest first, as Slack answers
        if (oldest <= float(m.ts) <= latest if inclusive else oldest < float(m.ts) < latest)
    ]
    cursor = params.get("cursor")
    if cursor:
        start = _cursor_ts(str(cursor))
        if start is None:
            return 200, {"ok": False, "error": "invalid_cursor"}
        in_range = [m for m in in_range if _ts_key(m.ts) <= _ts_key(start)]
    limit = min(max(limit, 1), 999)
    page, rest = in_range[:limit], in_range[limit:]
    with_metadata = truthy(params.get("include_all_metadata"))
    body: dict[str, Any] = {
        "ok": True,
        "messages": [as_api(m, with_metadata) for m in page],
        "has_more": bool(rest),
        "pin_count": 0,
    }
    if rest:
        body["response_metadata"] = {"next_cursor": _cursor_for(rest[0].ts)}
    return 200, body


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _cursor_for(ts: str) -> str:
    # Opaque to clients, as Slack's are: the ts of the next message to answer with.
    return base64.urlsafe_b64encode(f"next_ts:{ts}".encode()).decode()


def _cursor_ts(cursor: str) -> str | None:
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    kind, _, ts = decoded.partition(":")
    try:
        _ts_key(ts)
    except ValueError:
        return None
    return ts if kind == "next_ts" else None
