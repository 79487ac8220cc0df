"""The grammar of slash commands: the text after ``/polaris``, read into a command value.

Everything here is pure and total: any input gives a value or a clear error
(:class:`UsageError` for what a user typed), never another exception. A job reference
is checked to be a UUID or a UUID prefix right here, so no string a user typed can ever
reach a URL path; one written ``PROJECT/JOB`` must name a configured project (the caller
passes their names), so an unknown project is a usage error that lists them, answered
before anything is sent anywhere. The forms and payloads that carry the text are read by
:mod:`watchdog.slack.commands.payloads`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.domain.alerts import DEFAULT_PROJECT
from watchdog.domain.names import PROJECT_NAME, RULE_NAME
from watchdog.errors import InputError
from watchdog.polaris.errors import is_job_id
from watchdog.polaris.models import HEALTH_STATUSES, JOB_TYPES
from watchdog.rules.durations import format_duration, parse_duration
from watchdog.rules.problems import did_you_mean

MIN_PREFIX = 6
MAX_SILENCE = 30 * 86_400.0
MAX_REASON = 200
MAX_TEXT = 4000  # Slack caps slash-command text far below this; longer is not ours
MAX_NAMED = 10  # projects an error lists by name; the rest are counted

USAGE = """\
*Usage:* `/polaris <command>`
• `help` — this text
• `jobs [project=prod] [health=error] [type=streaming]` — list jobs (filters repeat: \
`health=error,warn`)
• `status JOB` — a job's state and health
• `metrics JOB` — a job's counters
• `pause JOB` · `resume JOB` — suspend or resume a streaming job (operators)
• `cancel JOB` — cancel a job, after a confirmation (operators)
• `alerts` — firing alerts and active silences
• `silence RULE|JOB DURATION [reason]` — mute a rule or a job (operators): `silence 1a2b3c 2h`
• `silences` — active silences
• `unsilence ID` — end a silence (operators)
• `ack JOB [RULE]` · `unack JOB [RULE]` — acknowledge a job's firing alerts: no more repeats \
or escalation (operators)
• `maintenance` — maintenance windows, and which are open
• `digest [DURATION]` — incidents of the last day (or DURATION) in numbers
`JOB` is a job id or a unique prefix of one (at least 6 characters), looked up in every \
project; `PROJECT/JOB` (`prod/1a2b3c`) looks in that project only."""

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
    """A full job id or a prefix of one (lowercase, UUID-shaped so far), and the project
    it was written with (``prod/1a2b3c``; None: look in every project)."""

    text: str
    project: str | None = None

    @property
    def is_full(self) -> bool:
        return is_job_id(self.text)

    @property
    def shown(self) -> str:
        """As the user wrote it (lowercased): ``PROJECT/JOB`` or ``JOB``."""
        return f"{self.project}/{self.text}" if self.project else self.text


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class ListJobs:
    health: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    #: the projects to list (empty: every project)
    projects: tuple[str, ...] = ()


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
    """``target`` is a rule name or a job reference (``JOB`` or ``PROJECT/JOB``): which one
    is decided against the rules."""

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
    """User text quoted in an error, cut short so a reply never balloons: at most
    ``limit`` characters between the quotes *as shown*, since ``repr`` writes a control
    or unprintable character as an escape of up to ten."""
    shown = repr(text)
    cut = text
    while len(shown) > limit + 2:
        cut = cut[: min(len(cut) - 1, limit - 1)]
        shown = repr(cut + "…")
    return shown


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


def known_projects(projects: Sequence[str]) -> str:
    """The configured projects, for an error: the first few by name, the rest counted."""
    named = ", ".join(projects[:MAX_NAMED])
    more = len(projects) - MAX_NAMED
    return named + (f" and {more} more" if more > 0 else "")


def check_project(name: str, projects: Sequence[str]) -> str:
    """``name`` lowercased when it is one of ``projects``; else :class:`UsageError` listing
    them."""
    lowered = name.lower()
    if lowered in projects:
        return lowered
    hint = did_you_mean(lowered[:64], projects)
    hint = f" ({hint})" if hint else ""
    raise UsageError(f"unknown project {_shown(name)}{hint}; projects: {known_projects(projects)}")


def parse_job_ref(text: str, projects: Sequence[str] = (DEFAULT_PROJECT,)) -> JobRef:
    """A :class:`JobRef` from ``JOB`` or ``PROJECT/JOB``; :class:`UsageError` for a job that
    is not a UUID (prefix) or a project not in ``projects``."""
    project_text, slash, job_text = text.rpartition("/")
    if slash and not PROJECT_NAME.fullmatch(project_text.lower()):
        raise UsageError(f"{_shown(text)} is not a job id (job ids look like 1a2b3c4d-…)")
    lowered = job_text.lower()
    if not is_job_prefix(lowered):
        if len(lowered) < MIN_PREFIX and all(c in _HEX or c == "-" for c in lowered):
            too_short = f"job prefix {_shown(job_text)} is too short: give at least {MIN_PREFIX}"
            raise UsageError(too_short)
        raise UsageError(f"{_shown(job_text)} is not a job id (job ids look like 1a2b3c4d-…)")
    return JobRef(lowered, check_project(project_text, projects) if slash else None)


def _one_job(verb: str, args: list[str], projects: Sequence[str]) -> JobRef:
    if len(args) != 1:
        raise UsageError(f"`{verb}` takes exactly one job id or prefix")
    return parse_job_ref(args[0], projects)


def _no_args(verb: str, args: list[str]) -> None:
    if args:
        raise UsageError(f"`{verb}` takes no arguments")


def _list_jobs(args: list[str], projects: Sequence[str]) -> ListJobs:
    health: list[str] = []
    types: list[str] = []
    chosen_projects: list[str] = []
    for arg in args:
        key, sep, values = arg.partition("=")
        key = key.lower()
        if not sep or key not in ("health", "type", "project"):
            raise UsageError(f"unknown filter {_shown(arg)}: use project=…, health=… or type=…")
        if key == "project":
            for value in values.split(","):
                name = check_project(value, projects)
                if name not in chosen_projects:
                    chosen_projects.append(name)
            continue
        allowed, chosen = (HEALTH_STATUSES, health) if key == "health" else (JOB_TYPES, types)
        for value in values.lower().split(","):
            if value not in allowed:
                raise UsageError(f"unknown {key} {_shown(value)}: one of {', '.join(allowed)}")
            if value not in chosen:
                chosen.append(value)
    return ListJobs(health=tuple(health), types=tuple(types), projects=tuple(chosen_projects))


def _silence(args: list[str], projects: Sequence[str]) -> Silence:
    if len(args) < 2:
        raise UsageError("`silence` needs a rule or job and a duration, e.g. `silence my-rule 2h`")
    target, duration_text, *reason_words = args
    target = target.lower()  # rule names are lowercase; job ids are case-insensitive
    if not RULE_NAME.fullmatch(target):
        # Not a rule name: it must then be a job reference (raises a UsageError if not).
        target = parse_job_ref(target, projects).shown
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


def parse_command(text: str, projects: Sequence[str] = (DEFAULT_PROJECT,)) -> Command:
    """Parse the text after the slash command; :class:`UsageError` says what is wrong.

    ``projects`` are the names a ``PROJECT/JOB`` or ``project=`` may use."""
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
        return _list_jobs(args, projects)
    if verb in _JOB_COMMANDS:
        return _JOB_COMMANDS[verb](_one_job(verb, args, projects))
    if verb == "alerts":
        _no_args(verb, args)
        return Alerts()
    if verb == "silence":
        return _silence(args, projects)
    if verb == "silences":
        _no_args(verb, args)
        return Silences()
    if verb == "unsilence":
        return _unsilence(args)
    raise UsageError(f"unknown command {_shown(words[0])}")
