"""The on-call workflow's commands and buttons: ``ack``, ``unack``, ``maintenance``, ``digest``.

:class:`OnCallService` is the :class:`~watchdog.slack.commands.service.CommandService`
with the on-call workflow added, through the same gate (only operators acknowledge; a
refusal is the usual polite one), the same background work and response URLs, and the
same audit trail:

- ``/polaris ack JOB [RULE]`` and ``unack JOB [RULE]`` acknowledge the firing alerts on a
  job (of one rule, or all) — and the *Acknowledge* / *Unacknowledge* buttons the one
  alert they sit on. The acknowledgement goes to the store by incident (unfenced: any
  replica serving Slack may write it, as with silences), where the project's watch loop
  reads it on its next tick and stops the incident's repeats and escalation. A click
  redraws its message at once through the response URL; a slash command queues a
  :class:`~watchdog.domain.outgoing.Redraw` for the project, which its lease holder
  delivers by editing the alert's message.
- ``/polaris maintenance`` lists the maintenance windows, which are open, and when each
  next opens or closes.
- ``/polaris digest [DURATION]`` answers with the digest of the last day (or DURATION,
  up to the week of history kept), only to whoever asked.

``JOB`` is found as for every command (an id, a unique prefix, or ``PROJECT/JOB``), and
an acknowledgement is audited, refused and explained exactly as a pause is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from structlog.contextvars import bound_contextvars

from watchdog.domain.alerts import AlertState, Phase
from watchdog.domain.digest import summarize
from watchdog.domain.names import RULE_NAME
from watchdog.domain.oncall import HISTORY_SECONDS, Ack, with_ack
from watchdog.domain.outgoing import Redraw
from watchdog.rules.durations import format_duration, parse_duration
from watchdog.rules.maintenance import MaintenanceWindow
from watchdog.slack import text as tx
from watchdog.slack.actions import Action, ButtonValue
from watchdog.slack.alerts.digest import digest_message
from watchdog.slack.commands import clicks, replies
from watchdog.slack.commands.changes import Change, CommandFailed
from watchdog.slack.commands.parse import JobRef, UsageError, parse_job_ref
from watchdog.slack.commands.payloads import Click, SlashRequest
from watchdog.slack.commands.replies import Reply
from watchdog.slack.commands.service import CommandService
from watchdog.slack.text import code, esc
from watchdog.slack.text import date_token as when

log = structlog.get_logger(__name__)

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class AckJob:
    """``ack JOB [RULE]`` (``undo``: ``unack``)."""

    job: JobRef
    rule: str | None = None
    undo: bool = False


@dataclass(frozen=True, slots=True)
class ListMaintenance:
    pass


@dataclass(frozen=True, slots=True)
class ShowDigest:
    seconds: float = DAY


OnCallCommand = AckJob | ListMaintenance | ShowDigest


def parse_oncall(text: str, projects: Sequence[str]) -> OnCallCommand | None:
    """An on-call command, None when ``text`` is another command (or none);
    :class:`UsageError` when it is an on-call command typed wrong. ``projects`` are the
    names a ``PROJECT/JOB`` may use."""
    words = text.split() if isinstance(text, str) else []
    if not words:
        return None
    verb, args = words[0].lower(), words[1:]
    if verb in ("ack", "unack"):
        if not 1 <= len(args) <= 2:
            raise UsageError(f"`{verb}` takes a job id or prefix and, optionally, a rule name")
        rule = args[1].lower() if len(args) == 2 else None
        if rule is not None and not RULE_NAME.fullmatch(rule):
            raise UsageError(f"{tx.clip(args[1], 40)!r} is not a rule name")
        return AckJob(parse_job_ref(args[0], projects), rule, undo=verb == "unack")
    if verb == "maintenance":
        if args:
            raise UsageError("`maintenance` takes no arguments")
        return ListMaintenance()
    if verb == "digest":
        if len(args) > 1:
            raise UsageError("`digest` takes at most a duration, e.g. `digest 12h`")
        if not args:
            return ShowDigest()
        try:
            seconds = parse_duration(args[0][:20])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not 0 < seconds <= HISTORY_SECONDS - DAY:
            longest = format_duration(HISTORY_SECONDS - DAY)
            raise UsageError(f"a digest covers more than 0s and at most {longest}")
        return ShowDigest(seconds)
    return None


def _name(command: OnCallCommand) -> str:
    if isinstance(command, AckJob):
        return "unack" if command.undo else "ack"
    return "maintenance" if isinstance(command, ListMaintenance) else "digest"


class OnCallService(CommandService):
    """:class:`CommandService` with acknowledgements, maintenance windows and the digest."""

    # ---- entry points ----------------------------------------------------------------

    async def handle_slash(self, req: SlashRequest) -> Reply:
        try:
            command = parse_oncall(req.text, self._jobs.projects)
        except UsageError as exc:
            self._count("invalid", "usage_error")
            return replies.usage_reply(exc.message)
        if command is None:
            return await super().handle_slash(req)
        name = _name(command)
        with bound_contextvars(user=req.user_id, command=name):
            mutating = isinstance(command, AckJob)
            refused = self._gate(name, req.response_url, req.user_id, mutating)
            if refused is not None:
                return refused
            log.info("slack.command", channel=req.channel_id)
            self._spawn(self._answer(self._oncall(command, req), name, req.response_url))
            if isinstance(command, AckJob):
                doing = "Withdrawing the acknowledgement of" if command.undo else "Acknowledging"
                return Reply(f"⏳ {doing} {code(command.job.shown, 80)}…")
            return Reply("⏳ Working on it…")

    async def handle_click(self, click: Click) -> Reply | None:
        if click.action not in (Action.ACK, Action.UNACK):
            return await super().handle_click(click)
        name = "button_ack" if click.action is Action.ACK else "button_unack"
        self._start_click(click, name, self._run_ack_click)
        return None

    # ---- slash commands --------------------------------------------------------------

    async def _oncall(self, command: OnCallCommand, req: SlashRequest) -> Reply:
        now = self._clock()
        if isinstance(command, ListMaintenance):
            return maintenance_reply(self._rules().maintenance, now)
        if isinstance(command, ShowDigest):
            since = now - command.seconds
            digest = summarize(await self._store.list_incidents(since), since, now)
            settings = self._rules().digest
            zone = settings.timezone if settings is not None else "UTC"
            message = digest_message(digest, timezone=zone)
            return Reply(message.text, message.blocks)
        verb = "unack" if command.undo else "ack"
        change = Change(req.user_id, verb, command.job.shown, req.channel_id or None)
        done = await self._auditor.audited(change, self._ack_job(change, command))
        rules = ", ".join(sorted({code(a.rule, 80) for a in done}))
        job = code(change.target, 60)
        if command.undo:
            return Reply(f"↩️ Acknowledgement withdrawn on job {job} ({rules}).")
        return Reply(
            f"👀 Acknowledged on job {job} ({rules}): its repeats and escalation stop; "
            "changes and the resolve still show."
        )

    async def _ack_job(self, change: Change, command: AckJob) -> list[AlertState]:
        """Acknowledge (or not) the firing alerts on the job: the ones that changed."""
        found = await self._resolve(command.job)
        change.target, change.project = found.job_id, found.project
        live = [
            alert
            for alert in await self._store.load_alerts(found.project)
            if alert.job_id == found.job_id
            and alert.phase is Phase.FIRING
            and command.rule in (None, alert.rule)
        ]
        of = f"of rule {replies.quoted(command.rule)} " if command.rule else ""
        if not live:
            raise CommandFailed(f"no alert {of}fires on job {replies.quoted(change.target)}")
        acks = {ack.incident_id: ack for ack in await self._store.list_acks(found.project)}
        now = self._clock()
        changed = [a for a in live if (a.incident_id in acks) == command.undo]
        if not changed:
            if command.undo:
                raise CommandFailed(f"no alert {of}on that job is acknowledged")
            # Plain words: a failure's reason is escaped wherever it is shown.
            owners = sorted({acks[a.incident_id].user for a in live})
            raise CommandFailed(f"already acknowledged by {', '.join(owners)}")
        for alert in changed:
            if command.undo:
                await self._store.remove_ack(alert.incident_id)
            else:
                await self._store.add_ack(Ack.of(alert, change.user, now))
        change.table = changed[0].job.table
        change.extra = {"rule": ", ".join(sorted({a.rule for a in changed}))}
        await self._redraw(changed, change.user, command.undo, now)
        return changed

    async def _redraw(
        self, alerts: Sequence[AlertState], user: str, undo: bool, now: float
    ) -> None:
        """Queue a redraw of each alert's message for its project's lease holder (the
        audit line that follows wakes delivery)."""
        note = f"acknowledgement withdrawn by {user}" if undo else f"acknowledged by {user}"
        for alert in alerts:
            item = Redraw(alert.incident_id, alert.project, note, now)
            await self._store.enqueue([item], project=alert.project, now=now)

    # ---- buttons ---------------------------------------------------------------------

    async def _run_ack_click(self, click: Click, name: str) -> None:
        value, undo = click.value, click.action is Action.UNACK
        change = Change(click.user_id, "unack" if undo else "ack", value.job_id, click.channel_id)
        change.incident_id = value.incident_id
        error: str | None = None
        try:
            await self._auditor.audited(change, self._ack_click(change, value, undo))
        except CommandFailed as exc:
            error = exc.reason
        self._count(name, "ok" if error is None else "error")
        line = clicks.click_line(click.action, click.user_id, self._clock(), error)
        done = click.action if error is None else None
        if value.incident_id:
            reply = await self._redrawn(value.incident_id, line, done)
        else:
            reply = clicks.gone_note(line)
        await self._respond(click.response_url, reply)

    async def _ack_click(self, change: Change, value: ButtonValue, undo: bool) -> None:
        incident = value.incident_id
        alert = await super()._live_alert(incident) if incident else None
        if alert is None:
            raise CommandFailed("the alert has resolved or is gone")
        change.table, change.project = alert.job.table, alert.project
        change.extra = {"rule": alert.rule}
        if undo:
            if not await self._store.remove_ack(alert.incident_id):
                raise CommandFailed("the alert is not acknowledged")
            return
        owner = [a for a in await self._store.list_acks(alert.project) if a.incident_id == incident]
        if owner:
            raise CommandFailed(f"already acknowledged by {owner[0].user}")
        await self._store.add_ack(Ack.of(alert, change.user, self._clock()))

    async def _live_alert(self, incident_id: str) -> AlertState | None:
        """The live alert with its acknowledgement as stored now (what a click redraws)."""
        alert = await super()._live_alert(incident_id)
        if alert is None:
            return None
        stored = await self._store.list_acks(alert.project)
        acks = [ack for ack in stored if ack.incident_id == incident_id]
        return with_ack(alert, acks[0] if acks else None)


# ---- the maintenance listing ------------------------------------------------------------


def _window_line(window: MaintenanceWindow, now: float) -> str:
    change = window.next_change(now)
    if window.is_open(now):
        state = "🛠 *open*" + (f" until {when(change)}" if change is not None else "")
    elif change is not None:
        state = f"⏸ closed, opens {when(change)}"
    else:
        state = "⏹ over"
    rules = ", ".join(code(rule, 60) for rule in window.rules) or "every rule"
    match = window.match
    chosen = [
        f"{key} {', '.join(tx.clip(str(v), 60) for v in values)}"
        for key, values in (
            ("project", match.project),
            ("type", match.type),
            ("status", match.execution_status),
            ("table", match.table),
            ("job", match.job_id),
        )
        if values
    ]
    jobs = esc("; ".join(chosen), 400) if chosen else "every job"
    about = f" — {esc(window.description, 200)}" if window.description else ""
    return (
        f"{state} · *{esc(window.name, 64)}*{about}\n"
        f"     {esc(window.schedule(), 200)} · {rules} · {jobs}"
    )


def maintenance_reply(windows: Sequence[MaintenanceWindow], now: float) -> Reply:
    """The maintenance windows, open ones first, each with when it next opens or closes."""
    if not windows:
        return Reply("No maintenance windows (`[[maintenance]]` in the rules file).")
    ordered = sorted(windows, key=lambda w: (not w.is_open(now), w.name))
    active = sum(1 for w in windows if w.is_open(now))
    lines = [_window_line(window, now) for window in ordered]
    heading = f"*Maintenance windows* ({active} of {len(windows)} open)"
    return Reply(heading + "\n" + tx.fit_lines(lines, replies.REPLY_BUDGET))
