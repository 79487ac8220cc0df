"""What Slack posts to the bot, read into values: slash-command forms and button clicks.

Pure and total like the command grammar (:mod:`watchdog.slack.commands.parse`): a request
either becomes a :class:`SlashRequest` or a :class:`Click`, or ``ValueError`` says what is
malformed, never another exception. The job id a button carries is checked to be a UUID
here, so a forged value never reaches a URL path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watchdog.polaris.errors import is_job_id
from watchdog.slack.actions import MAX_VALUE, Action, ButtonValue, decode_value


def _shown(text: str, limit: int = 40) -> str:
    """Text quoted in an error, cut short so a reply never balloons."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# ---- slash-command forms --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlashRequest:
    """The fields of a slash command this bot uses (IDs, never display names)."""

    user_id: str
    channel_id: str
    text: str
    command: str
    response_url: str
    trigger_id: str = ""
    team_id: str = ""


def unescape_slack(text: str) -> str:
    """Undo the escaping Slack applies to ``&``, ``<`` and ``>`` in slash-command text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_slash_form(fields: Mapping[str, str]) -> SlashRequest:
    """A :class:`SlashRequest` from the decoded form; ``ValueError`` when it is not one."""

    def get(name: str) -> str:
        value = fields.get(name, "")
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} is not text")
        return value

    user_id, response_url = get("user_id"), get("response_url")
    if not user_id:
        raise ValueError("slash command without user_id")
    if not response_url:
        raise ValueError("slash command without response_url")
    return SlashRequest(
        user_id=user_id,
        channel_id=get("channel_id"),
        text=unescape_slack(get("text")),
        command=get("command"),
        response_url=response_url,
        trigger_id=get("trigger_id"),
        team_id=get("team_id"),
    )


# ---- button clicks --------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    """One click on one of our buttons (``block_actions``)."""

    user_id: str
    channel_id: str | None
    response_url: str
    action: Action
    value: ButtonValue
    message: dict[str, Any] | None = None
    container: dict[str, Any] | None = None
    team_id: str = ""


def _obj(raw: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{key!r} is not an object")
    return value


def _text(raw: Mapping[str, Any] | None, key: str, where: str) -> str:
    value = raw.get(key) if raw is not None else None
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {where}")
    return value


def parse_interaction(payload_json: str) -> Click:
    """A :class:`Click` from the ``payload`` field of an interaction; ``ValueError`` if not."""
    if not isinstance(payload_json, str):
        raise ValueError("payload is not text")
    try:
        raw = json.loads(payload_json)
    except (ValueError, RecursionError):
        raise ValueError("payload is not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("payload is not a JSON object")
    if raw.get("type") != "block_actions":
        raise ValueError(f"unsupported interaction type {_shown(str(raw.get('type')))}")
    user_id = _text(_obj(raw, "user"), "id", "user.id")
    channel = _obj(raw, "channel")
    channel_id = channel.get("id") if channel is not None else None
    if channel_id is not None and not isinstance(channel_id, str):
        raise ValueError("channel.id is not text")
    response_url = _text(raw, "response_url", "response_url")
    message = _obj(raw, "message")
    container = _obj(raw, "container")
    actions = raw.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise ValueError("no actions")
    first = actions[0]
    action_id = first.get("action_id")
    if not isinstance(action_id, str) or action_id not in {a.value for a in Action}:
        raise ValueError(f"unknown action {_shown(str(action_id))}")
    action = Action(action_id)
    value_text = first.get("value")
    if not isinstance(value_text, str) or len(value_text) > MAX_VALUE:
        raise ValueError("button value is missing or too long")
    try:
        value = decode_value(value_text)
    except RecursionError:
        raise ValueError("button value is not JSON") from None
    if not is_job_id(value.job_id):
        raise ValueError("button value has a bad job id")
    value = dataclasses.replace(value, job_id=value.job_id.lower())
    team = _obj(raw, "team")
    team_id = team.get("id") if team is not None else ""
    return Click(
        user_id=user_id,
        channel_id=channel_id,
        response_url=response_url,
        action=action,
        value=value,
        message=dict(message) if message is not None else None,
        container=dict(container) if container is not None else None,
        team_id=team_id if isinstance(team_id, str) else "",
    )
