"""What slack-sdk's Block Kit models do not do for us: untrusted text made safe, and the
limits of a whole message.

Every message and reply is built from :mod:`slack_sdk.models.blocks`, which checks each
block's own limits when it is turned into JSON (and raises past them). It neither cleans
nor shortens anything, and it does not check the limits of a message as a whole. This
module is the one place for both, used by the alert messages, the command replies and
the button clicks alike:

- :func:`clean` drops what no message should carry (NUL, BEL, ESC and other control
  characters, bidi overrides that reorder what a reader sees, lone surrogates that are
  not text at all); :func:`esc`, :func:`clip` and :func:`code` clean what they are given.
- :func:`esc` escapes untrusted text for mrkdwn, so ``<!channel>`` in a table name is
  shown, never acted on; :func:`clip` shortens to a limit without splitting an entity or
  a ``<…>`` token; :func:`code` makes an inline code span of untrusted text.
- :func:`finish` turns a message's blocks into the JSON Slack is sent and holds the
  message to what slack-sdk does not check: 50 blocks, 2,000 characters per field and
  40,000 characters of text in total.

Lengths are counted in UTF-16 code units (an emoji outside the BMP counts twice), which
is how Slack counts; that is never looser than slack-sdk's count of code points.
:func:`watchdog.devtools.slack_standin.blockcheck.check_message` is the independent check
the tests hold every message to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, PlainTextObject

MAX_BLOCKS = 50
MAX_MESSAGE_TEXT = 40_000
MAX_FIELD_TEXT = 2000
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 3000
MAX_BUTTON_TEXT = 75
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
#: The plain ``text`` of a message that has blocks: notifications and screen readers
#: read it, Slack's own advice is to keep it under 4,000.
MAX_FALLBACK = 3900
#: What :func:`finish` keeps of the text in total, a margin under Slack's 40,000.
TEXT_BUDGET = MAX_MESSAGE_TEXT - 1000

ELLIPSIS = "…"
Json = dict[str, Any]

# Control characters but tab and newline; DEL and the C1 controls; the bidi embeddings,
# overrides, isolates and marks (a U+202E in a table name reverses what follows it).
_DROPPED = (
    [c for c in range(0x20) if c not in (0x09, 0x0A)]
    + list(range(0x7F, 0xA0))
    + [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
_CLEAN = {c: None for c in _DROPPED} | {c: "\ufffd" for c in range(0xD800, 0xE000)}
_UNSAFE = re.compile("[" + "".join(map(chr, _DROPPED)) + "\ud800-\udfff]")
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
_OPEN_TOKEN = re.compile(r"<[^<>]*$")


def length(text: str) -> int:
    """Length as Slack counts it: UTF-16 code units."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def clean(text: object) -> str:
    """``text`` as a string without control characters, bidi controls or lone surrogates."""
    value = str(text)
    return value.translate(_CLEAN) if _UNSAFE.search(value) else value


def clip(text: object, limit: int) -> str:
    """Cleaned ``text`` if it fits in ``limit``, else its start and "…" in ``limit`` or less.

    The cut never leaves half an entity (``&am``) or half a ``<…>`` token (a mention, a
    link, a date) behind, so clipping escaped mrkdwn keeps it valid.
    """
    value = clean(text)
    if length(value) <= limit:
        return value
    kept: list[str] = []
    used = 0
    for char in value:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > limit - 1:
            break
        kept.append(char)
        used += width
    cut = _OPEN_TOKEN.sub("", _PARTIAL_ENTITY.sub("", "".join(kept)))
    return cut.rstrip() + ELLIPSIS


def esc(text: object, limit: int | None = None) -> str:
    """Untrusted text made fit for mrkdwn: cleaned, ``& < >`` escaped, then clipped.

    After this, ``<!channel>`` or ``<@U123>`` in a table name is shown, not acted on.
    """
    escaped = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped if limit is None else clip(escaped, limit)


def code(text: object, limit: int = 200) -> str:
    """Untrusted text as an inline code span of at most ``limit``.

    A backtick inside would end the span early and a newline would break it.
    """
    inner = clean(text).replace("`", "ˋ").replace("\n", " ")
    return f"`{esc(inner, max(limit - 2, 1)) or ' '}`"


def date_token(epoch: float) -> str:
    """A Slack date token, shown in each reader's time zone, with a UTC fallback."""
    if not math.isfinite(epoch):
        return "an unknown time"
    try:
        fallback = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "an unknown time"
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{fallback}>"


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> MarkdownTextObject:
    """A mrkdwn text object of at most ``limit``; ``text`` must be escaped where it holds
    untrusted parts (:func:`esc`, :func:`code`)."""
    return MarkdownTextObject(text=clip(text, limit) or " ")


def plain(text: str, limit: int) -> PlainTextObject:
    """A plain_text object of at most ``limit``: shown as written (no mentions, no
    links), so it is cleaned and clipped, not escaped."""
    return PlainTextObject(text=clip(text, limit) or " ", emoji=True)


def fit_lines(lines: Sequence[str], budget: int, more: str = "{n} more not shown") -> str:
    """``lines`` joined by newlines within ``budget``; the lines that did not fit are
    counted in a last line made from ``more`` (``{n}`` is the count)."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index - 1
        tail = length(more.format(n=len(lines))) + 3 if rest else 0
        if used + length(line) + 1 + tail > budget:
            kept.append("… " + more.format(n=len(lines) - index))
            break
        kept.append(line)
        used += length(line) + 1
    return "\n".join(kept)


# --- whole messages --------------------------------------------------------------------


def finish(text: str, blocks: Sequence[Block | Json] | None = None) -> tuple[str, list[Json]]:
    """The ``text`` and JSON ``blocks`` to send, held to a message's limits.

    slack-sdk checks each block as it is turned into JSON; this adds what it leaves out:
    every string cleaned, fields cut to 2,000, at most 50 blocks and at most
    :data:`TEXT_BUDGET` of text in total. The builders budget for these limits; when a
    message still goes past one, the blocks that do not fit are left out and a last
    context line says how many.
    """
    dumped = [_scrub(b.to_dict() if isinstance(b, Block) else b) for b in blocks or []]
    text = clip(text, MAX_FALLBACK if dumped else TEXT_BUDGET) or " "
    for block in dumped:
        for field in block.get("fields") or []:
            if isinstance(field, dict) and isinstance(field.get("text"), str):
                field["text"] = clip(field["text"], MAX_FIELD_TEXT) or " "
    budget = TEXT_BUDGET - length(text)
    kept: list[Json] = []
    used = 0
    for index, block in enumerate(dumped):
        size = sum(length(t) for t in _texts(block))
        crowded = len(kept) >= MAX_BLOCKS - 1 and index < len(dumped) - 1
        if crowded or used + size > budget - 100:
            left = len(dumped) - index
            note = ContextBlock(
                elements=[MarkdownTextObject(text=f"… {left} more part(s) left out (too long)")]
            )
            kept.append(note.to_dict())
            break
        kept.append(block)
        used += size
    return text, kept


def _scrub(node: Any) -> Any:
    """A copy of JSON ``node`` with every string cleaned."""
    if isinstance(node, str):
        return clean(node)
    if isinstance(node, dict):
        return {key: _scrub(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_scrub(item) for item in node]
    return node


def _texts(node: Any) -> Iterator[str]:
    """Every text of the text objects in JSON ``node`` (what Slack counts)."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def total_length(text: str, blocks: Sequence[Json]) -> int:
    """The text a message carries in total, as :func:`finish` counts it."""
    return length(text) + sum(length(t) for b in blocks for t in _texts(b))
