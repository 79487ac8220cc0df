"""The grammar of what Slack sends: slash-command text, slash-command forms, button clicks.

Everything here is pure and total: any input gives a value or a clear error
(:class:`UsageError` for what a user typed, ``ValueError`` for a malformed request),
never another exception. A job reference is checked to be a UUID or a UUID prefix right
here, so no string a user typed can ever reach a URL path.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watchdog.domain.names import RULE_NAME
from watchdog.errors import InputError
from watchdog.polaris.errors import is_job_id
from watchdog.polaris.models import HEALTH_STATUSES, JOB_TYPES
from watchdog.rules.durations import format_duration, parse_duration
from watchdog.slack.actions import MAX_VALUE, Action, ButtonValue, decode_value

MIN_PREFIX = 6
MAX_SILENCE = 30 * 86_400.0
MAX_REASON = 200
MAX_TEXT = 4000  # Slack caps slash-command text far below this; longer is not ours

USAGE = """\
*Usage:* `/polaris <command>`
• `help` — this text
• `jobs [health=error] [type=streaming]` — list jobs (filters repeat: `health=error,warn`)
• `status JOB` — a job's state and health
• `metrics JOB` — a job's counters
• `pause JOB` · `resume JOB` — suspend or resume a streaming job (operators)
• `cancel JOB` — cancel a job, after a confirmation (operators)
• `alerts` — firing alerts and active silences
• `silence RULE|JOB DURATION [reason]` — mute a rule or a job (operators): `silence 1a2b3c 2h`
• `silences` — active silences
• `unsilence ID` — end a silence (operators)
`JOB` is a job id or a unique prefix of one (at least 6 characters)."""

# Positions of the dashes in a UUID: 8-4-4-4-12.
_DASHES = frozenset({8, 13, 18, 23})
_HEX = frozenset("0123456789abcdef")
_SILENCE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class UsageError(InputError):
    """What the user typed is not a command; ``message`` is a short reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class JobRef:
    """A full job id or a prefix of one (lowercase, UUID-shaped so far)."""

    text: str

    @property
    def is_full(self) -> bool:
        return is_job_id(self.text)


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class ListJobs:
    health: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Status:
    job: JobRef


@dataclass(frozen=True, slots=True)
class Metrics:
    job: JobRef


@dataclass(frozen=True, slots=True)
class Pause:
    job: JobRef


@dataclass(frozen=True, slots=True)
class Resume:
    job: JobRef


@dataclass(frozen=True, slots=True)
class Cancel:
    job: JobRef


@dataclass(frozen=True, slots=True)
class Alerts:
    pass


@dataclass(frozen=True, slots=True)
class Silence:
    """``target`` is a rule name or a job reference: which one is decided against the rules."""

    target: str
    duration: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Silences:
    pass


@dataclass(frozen=True, slots=True)
class Unsilence:
    id: str


JobCommand = Status | Metrics | Pause | Resume | Cancel
Command = Help | ListJobs | JobCommand | Alerts | Silence | Silences | Unsilence

#: The name each command is typed, counted and logged under.
COMMAND_NAMES: dict[type, str] = {ListJobs: "jobs"} | {
    cls: cls.__name__.lower()
    for cls in (Help, Status, Metrics, Pause, Resume, Cancel, Alerts, Silence, Silences, Unsilence)
}
_JOB_COMMANDS: dict[str, type[JobCommand]] = {
    COMMAND_NAMES[cls]: cls for cls in (Status, Metrics, Pause, Resume, Cancel)
}


def _shown(text: str, limit: int = 40) -> str:
    """User text quoted in an error, cut short so a reply never balloons."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def is_job_prefix(text: str) -> bool:
    """True for a lowercase string of 6..36 characters laid out like the start of a UUID."""
    if not MIN_PREFIX <= len(text) <= 36:
        return False
    for position, char in enumerate(text):
        if position in _DASHES:
            if char != "-":
                return False
        elif char not in _HEX:
            return False
    return True


def parse_job_ref(text: str) -> JobRef:
    """A :class:`JobRef`, or :class:`UsageError` for anything that is not a UUID (prefix)."""
    lowered = text.lower()
    if is_job_prefix(lowered):
        return JobRef(lowered)
    if len(lowered) < MIN_PREFIX and all(c in _HEX or c == "-" for c in lowered):
        raise UsageError(f"job prefix {_shown(text)} is too short: give at least {MIN_PREFIX}")
    raise UsageError(f"{_shown(text)} is not a job id (job ids look like 1a2b3c4d-…)")


def _one_job(verb: str, args: list[str]) -> JobRef:
    if len(args) != 1:
        raise UsageError(f"`{verb}` takes exactly one job id or prefix")
    return parse_job_ref(args[0])


def _no_args(verb: str, args: list[str]) -> None:
    if args:
        raise UsageError(f"`{verb}` takes no arguments")


def _list_jobs(args: list[str]) -> ListJobs:
    health: list[str] = []
    types: list[str] = []
    for arg in args:
        key, sep, values = arg.partition("=")
        key = key.lower()
        if not sep or key not in ("health", "type"):
            raise UsageError(f"unknown filter {_shown(arg)}: use health=… or type=…")
        allowed, chosen = (HEALTH_STATUSES, health) if key == "health" else (JOB_TYPES, types)
        for value in values.lower().split(","):
            if value not in allowed:
                raise UsageError(f"unknown {key} {_shown(value)}: one of {', '.join(allowed)}")
            if value not in chosen:
                chosen.append(value)
    return ListJobs(health=tuple(health), types=tuple(types))


def _silence(args: list[str]) -> Silence:
    if len(args) < 2:
        raise UsageError("`silence` needs a rule or job and a duration, e.g. `silence my-rule 2h`")
    target, duration_text, *reason_words = args
    target = target.lower()  # rule names are lowercase; job ids are case-insensitive
    if not RULE_NAME.fullmatch(target):
        # Not a rule name: it must then be a job reference (raises a UsageError if not).
        target = parse_job_ref(target).text
    try:
        if len(duration_text) > 20:  # keeps the error (which quotes it) short
            raise ValueError(f"bad duration {_shown(duration_text)}: use e.g. 30m, 2h or 1d")
        duration = parse_duration(duration_text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 0 < duration <= MAX_SILENCE or not math.isfinite(duration):
        raise UsageError(f"a silence lasts more than 0s and at most {format_duration(MAX_SILENCE)}")
    reason = " ".join(reason_words)
    if len(reason) > MAX_REASON:
        raise UsageError(f"the reason is too long (at most {MAX_REASON} characters)")
    return Silence(target=target, duration=duration, reason=reason)


def _unsilence(args: list[str]) -> Unsilence:
    if len(args) != 1:
        raise UsageError("`unsilence` takes one silence id (see `silences`)")
    silence_id = args[0].lower()
    if not _SILENCE_ID.fullmatch(silence_id):
        raise UsageError(f"{_shown(args[0])} is not a silence id (see `silences`)")
    return Unsilence(silence_id)


def parse_command(text: str) -> Command:
    """Parse the text after the slash command; :class:`UsageError` says what is wrong."""
    if not isinstance(text, str):
        raise UsageError("no command text")
    if len(text) > MAX_TEXT:
        raise UsageError("the command is too long")
    words = text.split()
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    if verb in ("help", "?"):
        return Help()
    if verb == "jobs":
        return _list_jobs(args)
    if verb in _JOB_COMMANDS:
        return _JOB_COMMANDS[verb](_one_job(verb, args))
    if verb == "alerts":
        _no_args(verb, args)
        return Alerts()
    if verb == "silence":
        return _silence(args)
    if verb == "silences":
        _no_args(verb, args)
        return Silences()
    if verb == "unsilence":
        return _unsilence(args)
    raise UsageError(f"unknown command {_shown(words[0])}")


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
