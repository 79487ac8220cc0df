"""The buttons' side of Slack: the cancel confirmation, and a message after a click.

Only a click on the danger button of :func:`cancel_confirmation` cancels a job. After a
click the message gets an outcome line ("⏸ Paused by @ann") and the buttons that still
make sense — a paused job offers Resume, a canceled one no job buttons, a failed click
keeps them all:

- an alert is redrawn from its incident's *stored* state (:func:`redrawn_alert`), not
  from the copy the click carried: a resolve edit that landed meanwhile must not be
  painted over with the FIRING message. An incident that resolved or is gone is not
  redrawn at all; only the clicker is told (:func:`gone_note`);
- a message that stands for no stored incident (the ephemeral cancel confirmation, which
  nothing else edits) is redrawn from the copy the click carried (:func:`clicked_message`).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    SectionBlock,
)

from watchdog.domain.alerts import AlertState
from watchdog.polaris.models import Job
from watchdog.rules.model import Rule
from watchdog.slack import text as tx
from watchdog.slack.actions import Action, ButtonValue, encode_value
from watchdog.slack.alerts.messages import OUTCOME_BLOCK
from watchdog.slack.alerts.oncall import live_message
from watchdog.slack.alerts.parts import user as mention
from watchdog.slack.commands.replies import Reply
from watchdog.slack.text import code, esc
from watchdog.slack.text import date_token as when

__all__ = [
    "OUTCOME_BLOCK",
    "cancel_confirmation",
    "click_line",
    "clicked_message",
    "gone_note",
    "redrawn_alert",
]

#: action → (icon, what was done, what was tried)
_DONE = {
    Action.PAUSE: ("⏸", "Paused", "pause"),
    Action.RESUME: ("▶️", "Resumed", "resume"),
    Action.CANCEL: ("🛑", "Canceled", "cancel"),
    Action.SILENCE: ("🔕", "Silenced for 1h", "silence"),
    Action.ACK: ("👀", "Acknowledged", "acknowledge"),
    Action.UNACK: ("↩️", "Acknowledgement withdrawn", "withdraw the acknowledgement"),
}


def cancel_confirmation(job: Job, project: str, shown: str | None = None) -> Reply:
    """The danger button that actually cancels (only a click on it does); it names the
    job's ``project``, so the click goes there. ``shown``: the project to name in the text
    (None when there is only one)."""
    facts = ", ".join(esc(f or "?", 60) for f in (job.table, job.type, job.execution_status))
    where = f" in project {code(shown, 60)}" if shown else ""
    what = f"{code(job.id, 60)} ({facts}){where}"
    button = ButtonElement(
        text=tx.plain("Cancel job", tx.MAX_BUTTON_TEXT),
        action_id=Action.CANCEL.value,
        value=encode_value(ButtonValue(job_id=job.id, project=project)),
        style="danger",
        confirm=ConfirmObject(
            title=tx.plain("Cancel this job?", tx.MAX_CONFIRM_TITLE),
            text=tx.plain(
                f"Job {tx.clip(job.id, 8)} ({tx.clip(job.table or 'no table', 40)})"
                + (f" of {tx.clip(shown, 40)}" if shown else "")
                + " will be canceled. This cannot be undone.",
                tx.MAX_CONFIRM_TEXT,
            ),
            confirm=tx.plain("Cancel job", tx.MAX_CONFIRM_BUTTON),
            deny=tx.plain("Keep it running", tx.MAX_CONFIRM_BUTTON),
            style="danger",
        ),
    )
    blocks = [
        SectionBlock(text=tx.mrkdwn(f"Cancel job {what}? Canceling cannot be undone.")),
        ActionsBlock(elements=[button]),
    ]
    return Reply(f"Cancel job {tx.clip(job.id, 60)}? Use the button to confirm.", blocks=blocks)


def click_line(action: Action, user_id: str, at: float, error: str | None = None) -> str:
    icon, done, verb = _DONE[action]
    if error is None:
        return f"{icon} {done} by {mention(user_id)} · {when(at)}"
    return f"⚠️ {mention(user_id)} tried to {verb}, but it failed: {esc(error, 1500)} · {when(at)}"


def redrawn_alert(
    alert: AlertState, rule: Rule | None, line: str, done: Action | None, *, now: float
) -> Reply:
    """The alert message of a live incident with the click's outcome ``line``; ``done``
    is the action that succeeded (None when it failed), ``rule`` its rule if it still
    exists (a rule reloaded away leaves what the alert itself knows)."""
    message = live_message(alert, rule, now=now, outcome=line, after=done)
    return Reply(message.text, message.blocks, ephemeral=False, replace_original=True)


def gone_note(line: str) -> Reply:
    """The answer to a click on an incident that resolved or is gone: to the clicker
    only, leaving the message (its resolved edit) as it is."""
    note = "_The alert has resolved or is gone since: its message is left as it is._"
    return Reply(f"{line}\n{note}", ephemeral=True)


def _is_ours(block: dict[str, Any]) -> bool:
    """An actions block carrying at least one of the bot's buttons."""
    if block.get("type") != "actions":
        return False
    elements = block.get("elements")
    ours = {a.value for a in Action}
    return isinstance(elements, list) and any(
        isinstance(e, dict) and e.get("action_id") in ours for e in elements
    )


#: After a successful click, which of the bot's buttons turn into which (None: removed).
_AFTER_CLICK: dict[Action, dict[str, tuple[Action, str] | None]] = {
    Action.PAUSE: {Action.PAUSE.value: (Action.RESUME, "Resume")},
    Action.RESUME: {Action.RESUME.value: (Action.PAUSE, "Pause")},
    Action.CANCEL: {a.value: None for a in (Action.PAUSE, Action.RESUME, Action.CANCEL)},
    Action.SILENCE: {Action.SILENCE.value: None},
    Action.ACK: {Action.ACK.value: (Action.UNACK, "Unacknowledge")},
    Action.UNACK: {Action.UNACK.value: (Action.ACK, "Acknowledge")},
}


def _buttons_after(block: dict[str, Any], action: Action) -> dict[str, Any] | None:
    """The actions block once ``action`` is done: a paused job offers Resume, a canceled
    one no job buttons, a silenced alert no second Silence. None when nothing is left."""
    changes = _AFTER_CLICK[action]
    elements: list[Any] = []
    for element in block.get("elements") or []:
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if action_id not in changes:
            elements.append(element)
            continue
        swap = changes[action_id]
        if swap is not None:
            new, label = swap
            turned = {k: v for k, v in element.items() if k not in ("style", "confirm")}
            turned["action_id"] = new.value
            turned["text"] = tx.plain(label, tx.MAX_BUTTON_TEXT).to_dict()
            elements.append(turned)
    return {**block, "elements": elements} if elements else None


def clicked_message(
    message: dict[str, Any] | None,
    ephemeral: bool,
    line: str,
    succeeded: bool,
    action: Action | None = None,
) -> Reply:
    """The clicked message again, with the outcome line. On success the buttons follow
    what was done (``action``); on failure they stay as they were."""
    context = ContextBlock(block_id=OUTCOME_BLOCK, elements=[tx.mrkdwn(line)]).to_dict()
    raw_blocks = message.get("blocks") if message else None
    if not isinstance(raw_blocks, list) or not raw_blocks:
        return Reply(line, ephemeral=ephemeral, replace_original=True)
    blocks: list[dict[str, Any]] = [
        b for b in raw_blocks if isinstance(b, dict) and b.get("block_id") != OUTCOME_BLOCK
    ]
    updated: list[dict[str, Any]] = []
    placed = False
    for block in blocks:
        if _is_ours(block):
            if not succeeded:
                updated.append(block)
            elif action is not None and (kept := _buttons_after(block, action)) is not None:
                updated.append(kept)
            if not placed:
                updated.append(context)
                placed = True
        else:
            updated.append(block)
    if not placed:
        updated.append(context)
    if len(updated) > tx.MAX_BLOCKS:
        updated = [*[b for b in updated if b is not context][: tx.MAX_BLOCKS - 1], context]
    text = message.get("text") if message else None
    return Reply(
        text if isinstance(text, str) and text else line,
        blocks=updated,
        ephemeral=ephemeral,
        replace_original=True,
    )
