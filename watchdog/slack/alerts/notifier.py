"""Delivers outbox items to Slack: one message per incident, threads, edits, storms.

- A NEW incident is one top-level post; repeats and changes are replies in its thread;
  a resolve edits the original post (``chat.update``) and replies in the thread.
- Which items go together is the grouping stage's decision
  (:func:`watchdog.deliver.group.group`): a storm of NEW alerts of one rule becomes ONE
  grouped post with the full list in its thread, and its members' later repeats and
  resolves update that grouped post instead of touching one message per job.
- An escalation is a mention in the incident's thread (and a link in the escalation
  channel); a redraw edits an incident's message after an acknowledgement; the digest is
  one post (:mod:`watchdog.slack.alerts.oncall`).
- Every top-level post carries message metadata naming its incident (or storm). Before
  posting one for an outbox record that may already have been sent (an earlier attempt
  started and never settled), the bot looks for its own post in the channel's history
  (:mod:`watchdog.slack.alerts.recovery`) and, when it finds it, carries on as if Slack's
  answer had come.
- Posts are paced per channel (Slack allows about one message a second per channel with
  short bursts); 429s, 5xx and connection errors are reported as
  :class:`~watchdog.deliver.notifier.DeliveryUnavailable` so the outbox keeps the item and
  retries it later (the bot gives its notifier a client without slack-sdk's own retries:
  an outbox retry claims the item afresh under the project's lease, a retry inside the
  SDK would not, and could land long after the lease moved to another replica).
- Right before each post or edit the notifier asks the receipts to confirm this replica
  still holds the project's lease (:meth:`~watchdog.deliver.notifier.Receipts.confirm`):
  a replica paused mid-delivery past its lease sends nothing when it wakes.
- Errors Slack will always give for an item (archived channel, blocks it rejects) get
  one fallback, then the item is dead-lettered rather than block the queue.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
import structlog
from aiolimiter import AsyncLimiter
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from watchdog.deliver.group import SendUnit, group
from watchdog.deliver.notifier import DeliveryUnavailable, Receipts
from watchdog.domain.alerts import META_RULE, Reason
from watchdog.domain.outgoing import AuditEntry, DigestPost, Notification, Redraw
from watchdog.errors import WatchdogError
from watchdog.metrics import BotMetrics
from watchdog.rules.holder import RulesHolder
from watchdog.slack.alerts import messages, oncall, storms
from watchdog.slack.alerts.messages import SlackMessage
from watchdog.slack.alerts.recovery import HistoryUnavailable, PostFinder
from watchdog.store import MessageRef, OutboxRecord, Store

log = structlog.get_logger(__name__)

#: Token problems: nothing will get through until someone fixes the token, but the queue
#: must survive until then.
_AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
    }
)
_BAD_CONTENT = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "invalid_attachments",
        "too_many_attachments",
    }
)
_BAD_CHANNEL = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "cannot_reply_to_message",
    }
)
#: Errors Slack reports in the body of an answer (even an HTTP 200) that say "not now":
#: retried like a 5xx, never dead-lettered.
_TRANSIENT = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
#: The calls that change what the channel shows (the ones a lease must cover).
_WRITES = frozenset({"chat_postMessage", "chat_update"})
_GONE_MESSAGE = frozenset(
    {"message_not_found", "cant_update_message", "edit_window_closed", "thread_not_found"}
)


def slack_is_down(status: int, error: object) -> bool:
    """Whether a failed Slack call means "Slack cannot take it now" (retry later), as
    opposed to a refusal of this request or of the token."""
    return status == 429 or status >= 500 or error in _TRANSIENT


class SlackAuthError(WatchdogError):
    """The bot token is wrong: raised at start-up with a message that says what to fix."""


class SlackUnreachableError(WatchdogError):
    """Slack did not answer ``auth.test`` (an outage): the token may well be fine."""


class _Permanent(WatchdogError):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class SlackNotifier:
    def __init__(
        self,
        web: AsyncWebClient,
        store: Store,
        rules: RulesHolder,
        *,
        clock: Callable[[], float] = time.time,
        metrics: BotMetrics | None = None,
        pace: tuple[int, float] | None = (4, 4.0),
    ) -> None:
        self._web = web
        self._store = store
        self._rules = rules
        self._clock = clock
        self._metrics = metrics
        self._pace = pace
        self._limiters: dict[str, AsyncLimiter] = {}
        #: set while a send unit is delivered: raises unless its lease is still ours
        self._confirm: Callable[[], None] | None = None

    async def check_auth(self) -> str:
        """``auth.test`` at start-up: the bot's user id.

        :class:`SlackAuthError` when Slack refuses the token (nothing will work until it is
        fixed); :class:`SlackUnreachableError` when Slack is down (the bot can still watch
        and queue its alerts)."""
        try:
            resp = await self._web.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            status = exc.response.status_code if exc.response is not None else 0
            # An outage (or Slack's own trouble) says nothing about the token.
            if slack_is_down(status, error):
                where = f"auth.test at {self._web.base_url}"
                raise SlackUnreachableError(
                    f"Slack is unavailable (HTTP {status} from {where})"
                ) from None
            raise SlackAuthError(
                f"Slack rejected SLACK_BOT_TOKEN ({error or status}): check "
                "the token is the app's Bot User OAuth Token (xoxb-…) and the app is installed"
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SlackUnreachableError(
                f"cannot reach Slack at {self._web.base_url}: {exc}"
            ) from None
        return str(resp.get("user_id", ""))

    # ---- Slack calls -------------------------------------------------------------------

    async def _call(self, method: str, channel: str, **kwargs: Any) -> dict[str, Any]:
        if self._pace is not None:
            limiter = self._limiters.get(channel)
            if limiter is None:
                limiter = self._limiters[channel] = AsyncLimiter(*self._pace)
            await limiter.acquire()
        if method in _WRITES and self._confirm is not None:
            self._confirm()  # as late as can be: waiting for the pace took time too
        try:
            resp = await getattr(self._web, method)(channel=channel, **kwargs)
        except SlackApiError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            error = (
                str(exc.response.get("error") or status) if exc.response is not None else "unknown"
            )
            self._count_error(method, error)
            if slack_is_down(status, error):
                retry = (
                    exc.response.headers.get("Retry-After") if exc.response is not None else None
                )
                raise DeliveryUnavailable(
                    f"Slack {method}: HTTP {status} {error}", float(retry) if retry else None
                ) from None
            if error in _AUTH_ERRORS:
                raise DeliveryUnavailable(
                    f"Slack {method}: {error} (fix SLACK_BOT_TOKEN)", 300.0
                ) from None
            raise _Permanent(error) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._count_error(method, type(exc).__name__)
            # No connection at all: the request never left. A timeout or a connection
            # lost mid-way: Slack may have taken it (the outbox marks it maybe sent).
            sent = not isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError)
            raise DeliveryUnavailable(
                f"Slack {method}: {type(exc).__name__}", maybe_sent=sent
            ) from None
        if self._metrics is not None:
            self._metrics.slack_calls.labels(method).inc()
        return dict(resp.data) if isinstance(resp.data, dict) else {}

    def _count_error(self, method: str, error: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_errors.labels(method, error).inc()

    async def post(
        self, channel: str, message: SlackMessage, *, thread_ts: str | None = None
    ) -> MessageRef:
        """Post, falling back to plain text when Slack refuses the blocks, and to the
        default channel when a rule's own channel is gone or closed to the bot."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        if message.metadata is not None:
            extra["metadata"] = dict(message.metadata)
        try:
            resp = await self._call(
                "chat_postMessage",
                channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                **extra,
            )
        except _Permanent as exc:
            if exc.error in _GONE_MESSAGE and thread_ts:
                return await self.post(channel, message)  # the thread is gone: top level
            default = self._rules.current.slack.channel
            if exc.error in _BAD_CHANNEL and not thread_ts and default and channel != default:
                log.error("slack.channel_refused", channel=channel, error=exc.error,
                          fallback=default)  # fmt: skip
                return await self.post(default, message)
            if exc.error not in _BAD_CONTENT:
                raise
            log.warning("slack.blocks_refused", error=exc.error, channel=channel)
            resp = await self._call("chat_postMessage", channel, text=message.text[:3900], **extra)
        return MessageRef(channel=str(resp.get("channel") or channel), ts=str(resp["ts"]))

    async def update(self, ref: MessageRef, message: SlackMessage) -> bool:
        """Edit a message; False when it is gone (the caller posts instead)."""
        try:
            await self._call(
                "chat_update", ref.channel, ts=ref.ts, text=message.text, blocks=message.blocks
            )
        except _Permanent as exc:
            if exc.error in _GONE_MESSAGE:
                return False
            if exc.error not in _BAD_CONTENT:
                raise
            # Without blocks=[] Slack would keep the old blocks (the FIRING ones) under the
            # new text.
            await self._call(
                "chat_update", ref.channel, ts=ref.ts, text=message.text[:3900], blocks=[]
            )
        return True

    async def permalink(self, ref: MessageRef) -> str:
        return await oncall.permalink(self._web, ref)

    # ---- delivery ----------------------------------------------------------------------

    def channel_for(self, wanted: str | None, audit: bool = False) -> str:
        """An alert's channel: its rule's, else the default. Audit lines always go to the
        audit channel (else the default): a change typed in a DM must still be seen by the
        team; where it was typed is used only when no channel is configured at all."""
        slack = self._rules.current.slack
        if audit:
            channel = slack.audit_channel or slack.channel or wanted
        else:
            channel = wanted or slack.channel
        if not channel:
            raise _Permanent("no Slack channel configured ([slack] channel in the rules file)")
        return channel

    async def deliver(self, records: Sequence[OutboxRecord], receipts: Receipts) -> None:
        # Which incidents already have a message (a storm member's is its storm): the
        # grouping stage routes follow-ups by it, single items reuse it.
        known: dict[str, MessageRef] = {}
        for record in records:
            item = record.item
            if isinstance(item, Notification) and item.reason is not Reason.NEW:
                ref = await self._store.get_message(item.incident_id)
                if ref is not None:
                    known[item.incident_id] = ref
        units = group(
            records,
            threshold=self._rules.current.slack.group_threshold,
            storm_of=lambda incident: _storm_of(known.get(incident)),
        )
        maybe_sent = [r.created_at for r in records if r.maybe_sent]
        finder = PostFinder(self._history, min(maybe_sent)) if maybe_sent else None
        for unit in units:
            if receipts.out_of_time():
                return
            claimed = set(await receipts.start([r.id for r in unit.records]))
            mine = tuple(r for r in unit.records if r.id in claimed)
            if not mine:
                continue  # another deliverer has them, or they are gone
            unit = dataclasses.replace(unit, records=mine)
            find = finder.find if finder is not None and _maybe_sent(unit) else None
            self._confirm = functools.partial(receipts.confirm, unit.records[0].project)
            try:
                created = await self._send(unit, receipts, known, find)
            except _Permanent as exc:
                log.error(
                    "slack.undeliverable", error=exc.error, kind=unit.kind, items=len(unit.records)
                )
                for record in unit.records:
                    await receipts.dead(record.id, exc.error)
                continue
            finally:
                self._confirm = None
            for i, record in enumerate(unit.records):
                await receipts.done(record.id, created if i == 0 else {})

    async def _history(self, **kwargs: Any) -> Mapping[str, Any]:
        """``conversations.history`` of a channel, for :class:`PostFinder`."""
        try:
            return await self._call("conversations_history", kwargs.pop("channel"), **kwargs)
        except (DeliveryUnavailable, _Permanent) as exc:
            raise HistoryUnavailable(str(exc)) from None

    async def _send(
        self,
        unit: SendUnit,
        receipts: Receipts,
        known: Mapping[str, MessageRef],
        find: storms.Finder | None,
    ) -> dict[str, MessageRef]:
        now = self._clock()
        item = unit.records[0].item
        if isinstance(item, AuditEntry):
            channel = self.channel_for(item.channel, audit=True)
            await self.post(channel, messages.audit_message(item))
            return {}
        if isinstance(item, Redraw):
            await oncall.redraw(self, self._store, self._rules.current, item, now)
            return {}
        if isinstance(item, DigestPost):
            await oncall.post_digest(self, item)
            return {}
        items = unit.notifications
        if unit.kind != "single":
            assert unit.storm is not None
            # Storm progress is this delivery's own write: under the project's lease.
            fence = receipts.fence(items[0].alert.project)
            if unit.kind == "storm":
                return await storms.send_storm(
                    self, self._store, fence, unit.storm, items, now, find
                )
            # The step names this unit's replies in the storm's progress: a retry of the
            # same outbox records resumes them, a later follow-up starts afresh.
            step = f"{unit.kind}:{unit.records[0].id}"
            await storms.storm_follow_up(
                self, self._store, fence, unit.storm, unit.kind, items, step, now
            )
            return {}
        [n] = items
        ref = known.get(n.incident_id)
        if ref is None and n.reason is not Reason.NEW:
            # Its first post may have been made earlier in this batch.
            ref = await self._store.get_message(n.incident_id)
        if n.reason is Reason.ESCALATE:
            await oncall.escalate(self, n, ref, now)
            return {}
        if n.reason is Reason.NEW or ref is None:
            return await self._post_incident(n, now, find)
        if n.reason is Reason.RESOLVED:
            if not await self.update(ref, messages.resolved_message(n, now=now)):
                await self.post(ref.channel, messages.resolved_message(n, now=now))
                return {}
        await self.post(ref.channel, messages.thread_reply(n, now=now), thread_ts=ref.ts)
        return {}

    async def _post_incident(
        self, n: Notification, now: float, find: storms.Finder | None
    ) -> dict[str, MessageRef]:
        """The top-level post of an incident, tagged with its id; found again instead of
        posted when an earlier attempt may have made it."""
        channel = self.channel_for(n.channel)
        if n.reason is Reason.RESOLVED:
            # Its first post never made it (dead-lettered): post the resolved alert in
            # full, so the top-level line still names the rule, the job and the table.
            message = messages.resolved_message(n, now=now)
        elif n.alert.rule == META_RULE:
            message = messages.meta_message(n, now=now)
        else:
            message = messages.alert_message(n, now=now)
        alert = n.alert
        message = message.tagged(
            n.incident_id, kind="alert", project=alert.project, rule=alert.rule, job=alert.job_id
        )
        posted = await find(channel, n.incident_id) if find is not None else None
        if posted is None:
            posted = await self.post(channel, message)
        return {} if n.reason is Reason.RESOLVED else {n.incident_id: posted}


def _storm_of(ref: MessageRef | None) -> str | None:
    """The storm key a storm member's message points to."""
    if ref is None or ref.kind != "storm-member":
        return None
    return str(ref.data.get("storm"))


def _maybe_sent(unit: SendUnit) -> bool:
    """An earlier attempt at this unit may have reached Slack."""
    return any(record.maybe_sent for record in unit.records)
