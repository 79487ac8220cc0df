"""What Slack accepts, and what a person reads: the check of a message against Block Kit's
limits, and a plain-text rendering of a message for terminals.

:func:`check_message` is deliberately independent of the bot's message code
(:mod:`watchdog.slack.text` and slack-sdk's models): it walks whatever blocks it is given,
the way Slack would, so the Slack stand-in can answer with it and the tests can hold every
produced message to it. It knows the block types this bot sends (header, section, fields,
context, divider, actions with buttons) and refuses others rather than wave them through
unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

# Slack's documented limits, written out here rather than imported from the bot's own
# message code: this check must not share a mistake with what it checks.
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

Block = dict[str, Any]


def length(text: str) -> int:
    """Length as Slack counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class LimitProblem(NamedTuple):
    """Why Slack would refuse a message: its error code and a readable detail."""

    error: str
    detail: str


class _Invalid(Exception):
    pass


def check_message(text: str | None, blocks: object) -> LimitProblem | None:
    """What Slack would answer to ``chat.postMessage(text=..., blocks=...)``: ``None`` if ok.

    Total text (fallback plus every text in the blocks) is held to the 40,000 limit too:
    Slack documents no separate total for blocks, so the check errs on the strict side.
    """
    text = text or ""
    if blocks is None:
        blocks = []
    if not isinstance(blocks, list):
        return LimitProblem("invalid_blocks_format", "blocks must be a JSON array")
    if not text.strip() and not blocks:
        return LimitProblem("no_text", "neither text nor blocks")
    if len(blocks) > MAX_BLOCKS:
        return LimitProblem("invalid_blocks", f"{len(blocks)} blocks, over {MAX_BLOCKS}")
    seen_blocks: set[str] = set()
    seen_actions: set[str] = set()
    total = length(text)
    try:
        for index, block in enumerate(blocks):
            total += _check_block(block, index, seen_blocks, seen_actions)
    except _Invalid as exc:
        return LimitProblem("invalid_blocks", str(exc))
    if length(text) > MAX_MESSAGE_TEXT or total > MAX_MESSAGE_TEXT:
        return LimitProblem("msg_too_long", f"{total} characters of text")
    return None


def _text_object(obj: object, where: str, limit: int, *, plain_only: bool = False) -> int:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        raise _Invalid(f"{where}: not a text object")
    if plain_only and obj["type"] != "plain_text":
        raise _Invalid(f"{where}: must be plain_text")
    value = obj.get("text")
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{where}: text must be a non-empty string")
    if length(value) > limit:
        raise _Invalid(f"{where}: {length(value)} characters, over {limit}")
    return length(value)


def _check_block(block: object, index: int, block_ids: set[str], action_ids: set[str]) -> int:
    where = f"blocks[{index}]"
    if not isinstance(block, dict):
        raise _Invalid(f"{where}: not an object")
    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str) or not block_id or len(block_id) > MAX_BLOCK_ID:
            raise _Invalid(f"{where}.block_id: must be 1..{MAX_BLOCK_ID} characters")
        if block_id in block_ids:
            raise _Invalid(f"{where}.block_id: duplicate {block_id!r}")
        block_ids.add(block_id)
    kind = block.get("type")
    if kind == "header":
        return _text_object(block.get("text"), where + ".text", MAX_HEADER_TEXT, plain_only=True)
    if kind == "divider":
        return 0
    if kind == "section":
        return _check_section(block, where, action_ids)
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
            raise _Invalid(f"{where}.elements: must be 1..{MAX_CONTEXT_ELEMENTS} items")
        return sum(
            _text_object(element, f"{where}.elements[{i}]", MAX_CONTEXT_TEXT)
            for i, element in enumerate(elements)
        )
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
            raise _Invalid(f"{where}.elements: must be 1..{MAX_ACTIONS_ELEMENTS} items")
        return sum(
            _check_button(element, f"{where}.elements[{i}]", action_ids)
            for i, element in enumerate(elements)
        )
    raise _Invalid(f"{where}: unsupported block type {kind!r}")


def _check_section(block: dict[str, Any], where: str, action_ids: set[str]) -> int:
    total = 0
    if "text" not in block and "fields" not in block:
        raise _Invalid(f"{where}: a section needs text or fields")
    if "text" in block:
        total += _text_object(block["text"], where + ".text", MAX_SECTION_TEXT)
    if "fields" in block:
        items = block["fields"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_FIELDS:
            raise _Invalid(f"{where}.fields: must be 1..{MAX_FIELDS} items")
        for i, item in enumerate(items):
            total += _text_object(item, f"{where}.fields[{i}]", MAX_FIELD_TEXT)
    if "accessory" in block:
        total += _check_button(block["accessory"], where + ".accessory", action_ids)
    return total


def _check_button(element: object, where: str, action_ids: set[str]) -> int:
    if not isinstance(element, dict) or element.get("type") != "button":
        raise _Invalid(f"{where}: only buttons are supported")
    total = _text_object(element.get("text"), where + ".text", MAX_BUTTON_TEXT, plain_only=True)
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or not action_id or len(action_id) > MAX_ACTION_ID:
            raise _Invalid(f"{where}.action_id: must be 1..{MAX_ACTION_ID} characters")
        if action_id in action_ids:
            raise _Invalid(f"{where}.action_id: duplicate {action_id!r}")
        action_ids.add(action_id)
    for key, limit in (("value", MAX_BUTTON_VALUE), ("url", MAX_BUTTON_URL)):
        value = element.get(key)
        if value is not None and (not isinstance(value, str) or length(value) > limit):
            raise _Invalid(f"{where}.{key}: must be a string of at most {limit} characters")
    if element.get("style") not in (None, "primary", "danger"):
        raise _Invalid(f"{where}.style: must be primary or danger")
    dialog = element.get("confirm")
    if dialog is not None:
        if not isinstance(dialog, dict):
            raise _Invalid(f"{where}.confirm: not an object")
        parts = (
            ("title", MAX_CONFIRM_TITLE),
            ("text", MAX_CONFIRM_TEXT),
            ("confirm", MAX_CONFIRM_BUTTON),
            ("deny", MAX_CONFIRM_BUTTON),
        )
        for key, limit in parts:
            total += _text_object(
                dialog.get(key), f"{where}.confirm.{key}", limit, plain_only=key != "text"
            )
    return total


# --- terminal rendering ----------------------------------------------------------------

_TOKEN = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def to_plain(text: str) -> str:
    """mrkdwn as a terminal shows it: date tokens by their fallback, links as label (url)."""

    def token(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("!date^"):
            return label or target
        if target.startswith("!subteam^"):
            return "@" + (label or target.split("^", 1)[1]).lstrip("@")
        if target.startswith("!"):
            return "@" + target[1:]
        if target.startswith(("@", "#")):
            return target
        return f"{label} ({target})" if label else target

    rendered = _TOKEN.sub(token, text)
    return rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_text(text: str, blocks: Iterable[Block]) -> list[str]:
    """The lines a person would read in Slack: header, sections, fields, context, buttons."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append("▌ " + block["text"]["text"])
        elif kind == "section":
            if "text" in block:
                lines.extend(to_plain(block["text"]["text"]).splitlines())
            if "fields" in block:
                cells = [to_plain(f["text"]).replace("*", "") for f in block["fields"]]
                lines.append(" │ ".join(cell.replace("\n", ": ", 1) for cell in cells))
        elif kind == "context":
            lines.append("  " + " · ".join(to_plain(e.get("text", "")) for e in block["elements"]))
        elif kind == "actions":
            lines.append(" ".join(f"[{e['text']['text']}]" for e in block["elements"]))
        elif kind == "divider":
            lines.append("─" * 40)
    return lines or to_plain(text).splitlines()


def render_message(title: str, text: str, blocks: object) -> str:
    """A titled, indented rendering of a message for a terminal; ``blocks`` must pass the check."""
    body = render_text(text, blocks if isinstance(blocks, list) else [])
    return "\n".join([title, *("  " + line for line in body), ""])
