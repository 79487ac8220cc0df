"""Block Kit pieces that cannot break Slack's limits: the limits, text made safe for
mrkdwn, and builders that clip every text they are given.

A message assembled from these builders can only break a limit through too many blocks
or too much text in total, which the message functions budget for;
:func:`watchdog.devtools.slack_standin.blockcheck.check_message` is the independent check of the
result.

Lengths are counted in UTF-16 code units (an emoji outside the BMP counts twice), which
is how Slack's JavaScript-side limits count; that is never looser than counting code
points, as slack-sdk does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 3000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_MESSAGE_TEXT = 40_000

ELLIPSIS = "…"
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
Block = dict[str, Any]


def length(text: str) -> int:
    """Length as Slack counts it: UTF-16 code units."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit``, else its start and "…" in exactly ``limit`` or less."""
    if length(text) <= limit:
        return text
    kept: list[str] = []
    used = 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > limit - 1:
            break
        kept.append(char)
        used += width
    return "".join(kept).rstrip() + ELLIPSIS


def escape(text: str) -> str:
    """Escape the three characters mrkdwn treats as control (Slack's escaping rules).

    After this, ``<!channel>`` or ``<@U123>`` in a table name is shown, not acted on.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(text: str, limit: int) -> str:
    """Untrusted text made fit for mrkdwn: escaped, then clipped without splitting an entity."""
    escaped = escape(text)
    if length(escaped) <= limit:
        return escaped
    cut = clip(escaped, limit)[:-1]
    return _PARTIAL_ENTITY.sub("", cut).rstrip() + ELLIPSIS


def code(text: str, limit: int) -> str:
    """Untrusted text as an inline code span; a backtick inside would end the span early."""
    spanned = text.replace("`", "'")
    return f"`{safe(spanned, limit - 2)}`"


def date_token(epoch: float) -> str:
    """A Slack date token, shown in each reader's time zone, with a UTC fallback."""
    if not math.isfinite(epoch):
        return "an unknown time"
    try:
        fallback = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "an unknown time"
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{fallback}>"


# --- builders --------------------------------------------------------------------------


def plain(text: str, limit: int) -> dict[str, Any]:
    # plain_text is shown as written (no mentions, no links), so it is clipped, not escaped.
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int) -> dict[str, Any]:
    """A mrkdwn object; ``text`` must already be escaped where it holds untrusted parts."""
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text, MAX_SECTION_TEXT)}


def fields(items: Sequence[str]) -> Block:
    return {
        "type": "section",
        "fields": [mrkdwn(item, MAX_FIELD_TEXT) for item in items[:MAX_FIELDS]],
    }


def context(*texts: str) -> Block:
    elements = [mrkdwn(text, MAX_CONTEXT_TEXT) for text in texts[:MAX_CONTEXT_ELEMENTS]]
    return {"type": "context", "elements": elements}


def divider() -> Block:
    return {"type": "divider"}


def confirm(title: str, text: str, ok: str, deny: str, *, danger: bool = False) -> dict[str, Any]:
    dialog: dict[str, Any] = {
        "title": plain(title, MAX_CONFIRM_TITLE),
        "text": plain(text, MAX_CONFIRM_TEXT),
        "confirm": plain(ok, MAX_CONFIRM_BUTTON),
        "deny": plain(deny, MAX_CONFIRM_BUTTON),
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm_dialog: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if length(value) > MAX_BUTTON_VALUE:
        raise ValueError("button value over Slack's limit; leave the button out instead")
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, MAX_BUTTON_TEXT),
        "action_id": action_id[:MAX_ACTION_ID],
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm_dialog:
        element["confirm"] = confirm_dialog
    return element


def actions(block_id: str, elements: Sequence[dict[str, Any]]) -> Block:
    return {
        "type": "actions",
        "block_id": block_id[:MAX_BLOCK_ID],
        "elements": list(elements[:MAX_ACTIONS_ELEMENTS]),
    }
