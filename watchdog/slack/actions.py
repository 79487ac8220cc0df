"""The contract between the buttons a message carries and the handler of their clicks.

Messages put an ``action_id`` from :class:`Action` and a compact JSON ``value`` made by
:func:`encode_value` on each button; the interaction handler reads them back with
:func:`decode_value`, which refuses anything that is not such a value. The job id inside
is checked again before it is used: a click is user input like any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

MAX_VALUE = 2000  # Slack's limit on a button value


class Action(StrEnum):
    PAUSE = "wd_pause"
    RESUME = "wd_resume"
    CANCEL = "wd_cancel"  # carries a confirm dialog; the click itself is the confirmation
    SILENCE = "wd_silence"  # silence the alert's rule for this job for 1h
    ACK = "wd_ack"  # acknowledge the incident: its repeats and escalation stop
    UNACK = "wd_unack"  # withdraw the acknowledgement


@dataclass(frozen=True, slots=True)
class ButtonValue:
    job_id: str
    rule: str | None = None
    incident_id: str | None = None
    #: the job's project; buttons posted before projects existed carry none (``default``)
    project: str | None = None


def encode_value(value: ButtonValue) -> str:
    raw = {"j": value.job_id}
    if value.rule:
        raw["r"] = value.rule
    if value.incident_id:
        raw["i"] = value.incident_id
    if value.project:
        raw["p"] = value.project
    text = json.dumps(raw, separators=(",", ":"))
    if len(text) > MAX_VALUE:
        # Incident ids and rule names are short by construction; drop the optional parts
        # rather than send a button Slack would reject.
        text = json.dumps({"j": value.job_id}, separators=(",", ":"))
    return text


def decode_value(text: str) -> ButtonValue:
    """Parse a button value; ``ValueError`` when it is not one of ours."""
    try:
        raw = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError("button value is not JSON") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("j"), str):
        raise ValueError("button value has no job id")
    rule = raw.get("r")
    incident = raw.get("i")
    if rule is not None and not isinstance(rule, str):
        raise ValueError("button value has a bad rule")
    if incident is not None and not isinstance(incident, str):
        raise ValueError("button value has a bad incident id")
    project = raw.get("p")
    if project is not None and not isinstance(project, str):
        raise ValueError("button value has a bad project")
    return ButtonValue(job_id=raw["j"], rule=rule, incident_id=incident, project=project)
