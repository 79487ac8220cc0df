"""Executes slash commands and button clicks for a Slack user.

:class:`CommandService` is what both transports (the signed HTTP endpoints of
:mod:`watchdog.slack.commands.server` and Socket Mode in :mod:`watchdog.slack.commands.socket`)
call. Its two
entry points answer at once — usage errors, ``help`` and refusals directly, everything
else with a short "⏳" ack — because Slack gives up after 3 seconds; the work that needs
Polaris or the store runs in a tracked background task that reports through the
request's ``response_url`` (only ever Slack's: :mod:`~watchdog.slack.commands.response_urls`).
Only operators named in the rules file may change anything, and every change they attempt
is announced through the ``audit`` callback exactly once, whether it worked or not. After
a click, an alert is redrawn from its stored incident (:mod:`~watchdog.slack.commands.clicks`).

The service holds every project's client (name → :class:`~watchdog.polaris.api.PolarisApi`):
a job is found in its project (:mod:`~watchdog.slack.commands.jobrefs`) and every call about
it goes to that project with that project's key only; its audit line carries the project,
so the replica that leads the project delivers it. A button names its project (none:
``default``); one that is not configured here is refused.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Literal, TypeVar

import aiohttp
import structlog
from structlog.contextvars import bound_contextvars

from watchdog.domain.alerts import DEFAULT_PROJECT, AlertState, Phase, fingerprint
from watchdog.domain.outgoing import AuditEntry
from watchdog.metrics import BotMetrics
from watchdog.polaris.api import PolarisApi
from watchdog.polaris.errors import InvalidJobIdError, PolarisError, check_job_id
from watchdog.polaris.models import Job
from watchdog.rules.ruleset import RuleSet
from watchdog.slack import text as tx
from watchdog.slack.actions import Action, ButtonValue
from watchdog.slack.commands import clicks, parse, replies
from watchdog.slack.commands.changes import Auditor, Change, CommandFailed
from watchdog.slack.commands.jobrefs import FoundJob, JobDirectory, JobRefError
from watchdog.slack.commands.parse import (
    COMMAND_NAMES,
    Command,
    JobRef,
    UsageError,
    parse_command,
    parse_job_ref,
)
from watchdog.slack.commands.payloads import Click, SlashRequest
from watchdog.slack.commands.replies import Reply
from watchdog.slack.commands.response_urls import SLACK_RESPONSE_URLS, is_trusted
from watchdog.store import Silence, Store

log = structlog.get_logger(__name__)
T = TypeVar("T")

CLICK_SILENCE = 3600.0  # the alert button's silence: long enough to fix, short enough to forget
_MUTATING = (parse.Pause, parse.Resume, parse.Cancel, parse.Silence, parse.Unsilence)
_DESIRED = {Action.PAUSE: "suspended", Action.RESUME: "running", Action.CANCEL: "canceled"}
_VERB = {Action.PAUSE: "pause", Action.RESUME: "resume", Action.CANCEL: "cancel"}
_VERB |= {Action.SILENCE: "silence"}


class CommandService:
    """Runs commands for Slack users against Polaris and the store."""

    def __init__(
        self,
        polaris: Mapping[str, PolarisApi],
        store: Store,
        rules: Callable[[], RuleSet],
        audit: Callable[[AuditEntry], Awaitable[None]],
        session: aiohttp.ClientSession,
        metrics: BotMetrics,
        clock: Callable[[], float],
        response_url_prefixes: tuple[str, ...] = SLACK_RESPONSE_URLS,
        *,
        job_cache_ttl: float = 30.0,
        response_timeout: float = 10.0,
    ) -> None:
        self._store = store
        self._rules = rules
        self._session = session
        self._metrics = metrics
        self._clock = clock
        self._auditor = Auditor(audit, clock)
        self._prefixes = response_url_prefixes
        self._response_timeout = aiohttp.ClientTimeout(total=response_timeout)
        self._jobs = JobDirectory(polaris, clock, job_cache_ttl)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # ---- entry points ----------------------------------------------------------------

    async def handle_slash(self, req: SlashRequest) -> Reply:
        """Answer a slash command at once; slow work continues in the background."""
        try:
            command = parse_command(req.text, self._jobs.projects)
        except UsageError as exc:
            self._count("invalid", "usage_error")
            return replies.usage_reply(exc.message)
        name = COMMAND_NAMES[type(command)]
        with bound_contextvars(user=req.user_id, command=name):
            if isinstance(command, parse.Help):
                self._count(name, "ok")
                return replies.HELP
            mutating = isinstance(command, _MUTATING)
            refused = self._gate(name, req.response_url, req.user_id, mutating)
            if refused is not None:
                return refused
            log.info("slack.command", channel=req.channel_id)
            self._spawn(self._run_slash(command, name, req))
            return replies.ack(command)

    async def handle_click(self, click: Click) -> Reply | None:
        """Start a button's action. Slack ignores what a ``block_actions`` ack carries, so
        every answer, a refusal included, goes through the click's ``response_url``."""
        self._start_click(click, f"button_{_VERB[click.action]}", self._run_click)
        return None

    def _start_click(
        self, click: Click, name: str, run: Callable[[Click, str], Coroutine[Any, Any, None]]
    ) -> None:
        """Gate a click (operators only, a trusted response URL), then ``run`` it in the
        background; a refusal goes to the click's response URL."""
        with bound_contextvars(user=click.user_id, command=name, job_id=click.value.job_id):
            refused = self._gate(name, click.response_url, click.user_id, True)
            if refused is not None:
                if self._allowed_url(click.response_url):
                    self._spawn(self._respond(click.response_url, refused))
                return
            log.info("slack.click", channel=click.channel_id)
            self._spawn(run(click, name))

    async def drain(self) -> None:
        """Wait until every background task (including ones they start) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        """Refuse new work, give the work in flight ``grace`` seconds, cancel the rest."""
        self._closing = True
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("slack.commands_cancelled_at_shutdown", count=len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    # ---- gatekeeping -----------------------------------------------------------------

    def _gate(self, name: str, response_url: str, user: str, mutating: bool) -> Reply | None:
        """The reply that stops a request here, or ``None`` when it may proceed."""
        if self._closing:
            self._count(name, "shutting_down")
            return replies.UNAVAILABLE
        if not self._allowed_url(response_url):
            # A signed request is still input: never POST to an arbitrary URL from it.
            self._count(name, "bad_response_url")
            log.warning("slack.response_url_refused")
            return replies.BAD_RESPONSE_URL
        if mutating:
            operators = self._rules().slack.operators
            if user not in operators:
                self._count(name, "forbidden")
                log.warning("slack.not_an_operator")
                return replies.refusal(name.removeprefix("button_"), operators)
        return None

    def _allowed_url(self, url: str) -> bool:
        return is_trusted(url, self._prefixes)

    # ---- background work -------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_slash(self, command: Command, name: str, req: SlashRequest) -> None:
        await self._answer(self._execute(command, req), name, req.response_url)

    async def _answer(self, work: Awaitable[Reply], name: str, response_url: str) -> None:
        """Await a command's answer, count how it went, and send it to ``response_url``;
        a failure becomes its reason, a crash a polite line (and a logged traceback)."""
        try:
            reply, outcome = await work, "ok"
        except CommandFailed as exc:
            reply, outcome = Reply(f"⚠️ {tx.esc(exc.text, 3000)}"), "error"
        except Exception:
            log.exception("slack.command_crashed")
            reply, outcome = replies.CRASHED, "crashed"
        self._count(name, outcome)
        await self._respond(response_url, reply)

    async def _execute(self, command: Command, req: SlashRequest) -> Reply:
        """The answer to a command; raises :class:`CommandFailed` when it cannot be given."""
        change = Change(req.user_id, COMMAND_NAMES[type(command)], "", req.channel_id or None)
        match command:
            case parse.ListJobs(health=health, types=types, projects=projects):
                listing = await self._call(
                    self._jobs.list_jobs(projects, health=health, types=types)
                )
                named = self._jobs.several and len(projects) != 1
                listed = [(p if named else None, job) for p, job in listing.jobs]
                filters = " ".join(
                    [f"project={','.join(projects)}"] * bool(projects)
                    + [f"health={h}" for h in health]
                    + [f"type={t}" for t in types]
                )
                return replies.jobs_reply(listed, listing.unreadable, filters, listing.failed)
            case parse.Status(job=ref):
                found = await self._resolve(ref)
                job = await self._call(self._api(found).get_job(found.job_id), found.job_id)
                return replies.status_reply(job, self._named(found))
            case parse.Metrics(job=ref):
                found = await self._resolve(ref)
                metrics = await self._call(self._api(found).get_metrics(found.job_id), found.job_id)
                return replies.metrics_reply(found.job_id, metrics, self._named(found))
            case parse.Cancel(job=ref):
                # Only the confirmation's button cancels: this just shows it.
                found = await self._resolve(ref)
                job = await self._call(self._api(found).get_job(found.job_id), found.job_id)
                if job.is_terminal:
                    raise CommandFailed(replies.already_over(job))
                return clicks.cancel_confirmation(job, found.project, self._named(found))
            case parse.Pause(job=ref) | parse.Resume(job=ref):
                action = Action.PAUSE if isinstance(command, parse.Pause) else Action.RESUME
                change.target = ref.shown
                job = await self._auditor.audited(change, self._set_status(change, action, ref))
                line = clicks.click_line(action, req.user_id, self._clock())
                shown = tx.code(change.project or "", 60)
                where = f" in project {shown}" if self._jobs.several else ""
                table = tx.esc(job.table or "", 200)
                return Reply(f"{line} — {tx.code(job.id, 60)} ({table}){where}")
            case parse.Alerts():
                alerts = await self._store.load_alerts()
                firing = [a for a in alerts if a.phase is Phase.FIRING]
                silences = await self._active_silences()
                return replies.alerts_reply(firing, silences, with_projects=self._jobs.several)
            case parse.Silence(target=target, duration=duration, reason=reason):
                change.target = target
                silence = await self._auditor.audited(
                    change, self._silence(change, duration, reason)
                )
                return replies.silenced_reply(silence)
            case parse.Silences():
                return replies.silences_reply(await self._active_silences())
            case parse.Unsilence(id=silence_id):
                change.target = silence_id
                await self._auditor.audited(change, self._unsilence(silence_id))
                return Reply(f"🔔 Silence {tx.code(silence_id, 60)} ended.")
        return replies.HELP  # Help is answered before any task is started

    async def _run_click(self, click: Click, name: str) -> None:
        value = click.value
        change = Change(click.user_id, _VERB[click.action], value.job_id, click.channel_id)
        change.incident_id = value.incident_id
        error: str | None = None
        try:
            # A button names its project; one posted before projects existed means default.
            project = value.project or DEFAULT_PROJECT
            if project not in self._jobs.projects:
                # Audited (by the coordinator: no replica leads an unknown project).
                reason = f"project {replies.quoted(project, 40)} is not configured here"
                await self._auditor.audited(change, _refuse(reason))
            elif click.action is Action.SILENCE:
                await self._auditor.audited(change, self._silence_click(change, value, project))
            else:
                ref = JobRef(value.job_id, project)
                await self._auditor.audited(change, self._set_status(change, click.action, ref))
        except CommandFailed as exc:
            error = exc.reason
        self._count(name, "ok" if error is None else "error")
        line = clicks.click_line(click.action, click.user_id, self._clock(), error)
        done = click.action if error is None else None
        if value.incident_id:
            reply = await self._redrawn(value.incident_id, line, done)
        else:
            # Not an alert (the ephemeral cancel confirmation): nothing else edits it, so
            # the copy the click carried is current.
            ephemeral = bool(click.container and click.container.get("is_ephemeral"))
            reply = clicks.clicked_message(click.message, ephemeral, line, done is not None, done)
        await self._respond(click.response_url, reply)

    async def _redrawn(self, incident_id: str, line: str, done: Action | None) -> Reply:
        """The alert message of ``incident_id`` drawn from its stored state with the
        click's outcome ``line``; only a note to the clicker when it is no longer live."""
        alert = await self._live_alert(incident_id)
        if alert is None:
            return clicks.gone_note(line)
        rule = self._rules().rule(alert.rule)
        return clicks.redrawn_alert(alert, rule, line, done, now=self._clock())

    async def _live_alert(self, incident_id: str) -> AlertState | None:
        """The firing alert of ``incident_id`` as stored now, or None when it resolved or
        another incident has replaced it."""
        for alert in await self._store.load_alerts():
            if alert.incident_id == incident_id and alert.phase is Phase.FIRING:
                return alert
        return None

    # ---- the changes -----------------------------------------------------------------

    async def _set_status(self, change: Change, action: Action, ref: JobRef) -> Job:
        found = await self._resolve(ref)
        change.target, change.project = found.job_id, found.project
        job = await self._api(found).set_status(found.job_id, _DESIRED[action])
        change.table = job.table
        return job

    async def _silence(self, change: Change, duration: float, reason: str) -> Silence:
        if self._rules().rule(change.target) is not None:
            return await self._add_silence(change, "rule", duration, reason)
        try:
            ref = parse_job_ref(change.target, self._jobs.projects)
        except UsageError:
            raise CommandFailed(
                f"there is no rule called {replies.quoted(change.target)}"
            ) from None
        found = await self._resolve(ref)
        change.target, change.project = found.job_id, found.project
        return await self._add_silence(change, "job", duration, reason)

    async def _silence_click(self, change: Change, value: ButtonValue, project: str) -> Silence:
        """An alert's Silence button mutes that rule on that job, nothing broader."""
        try:
            job = check_job_id(value.job_id)  # a click is input like any other
        except InvalidJobIdError:
            raise CommandFailed("the button does not name a job") from None
        change.project = project
        rule = value.rule if value.rule and self._rules().rule(value.rule) else None
        if rule is None:  # the rule is gone (reloaded away): mute the job instead
            change.target = job
            return await self._add_silence(change, "job", CLICK_SILENCE, "from an alert")
        change.target = fingerprint(project, rule, job)
        return await self._add_silence(change, "alert", CLICK_SILENCE, f"from alert {rule}")

    async def _add_silence(
        self, change: Change, kind: Literal["rule", "job", "alert"], duration: float, reason: str
    ) -> Silence:
        now, taken = self._clock(), {s.id for s in await self._store.list_silences()}
        silence_id = _new_silence_id(taken)
        silence = Silence(silence_id, kind, change.target, now + duration, change.user, now, reason)
        await self._store.add_silence(silence)
        change.extra = replies.silence_extra(silence)
        return silence

    async def _unsilence(self, silence_id: str) -> None:
        if not await self._store.remove_silence(silence_id):
            raise CommandFailed("there is no such silence (see `silences`)")

    async def _active_silences(self) -> list[Silence]:
        now = self._clock()
        active = [s for s in await self._store.list_silences() if s.active(now)]
        return sorted(active, key=lambda s: s.until)

    # ---- Polaris and job references --------------------------------------------------

    async def _call(self, call: Awaitable[T], job_id: str | None = None) -> T:
        """Await a Polaris call, turning its errors into a :class:`CommandFailed` in plain words."""
        try:
            return await call
        except PolarisError as exc:
            log.warning("slack.polaris_failed", error=type(exc).__name__, status=exc.status)
            raise CommandFailed(replies.explain(exc, job_id)) from None

    async def _resolve(self, ref: JobRef) -> FoundJob:
        """The job ``ref`` stands for: its project and full id (see :class:`JobDirectory`)."""
        try:
            return await self._call(self._jobs.resolve(ref))
        except JobRefError as exc:
            raise CommandFailed(str(exc)) from None

    def _api(self, found: FoundJob) -> PolarisApi:
        return self._jobs.client(found.project)

    def _named(self, found: FoundJob) -> str | None:
        """The project to name in a reply: only when there are several."""
        return found.project if self._jobs.several else None

    # ---- outputs ---------------------------------------------------------------------

    async def _respond(self, url: str, reply: Reply) -> None:
        """POST a reply to a ``response_url``; failures are logged, never raised."""
        try:
            async with self._session.post(
                url, json=reply.to_json(), timeout=self._response_timeout
            ) as resp:
                if resp.status != 200:
                    body = (await resp.text())[:100]
                    log.warning("slack.response_url_failed", status=resp.status, body=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.response_url_unreachable", error=type(exc).__name__)

    def _count(self, command: str, outcome: str) -> None:
        self._metrics.commands.labels(command, outcome).inc()


async def _refuse(reason: str) -> None:
    raise CommandFailed(reason)


def _new_silence_id(taken: set[str]) -> str:
    while True:
        candidate = "s-" + secrets.token_hex(3)
        if candidate not in taken:
            return candidate
