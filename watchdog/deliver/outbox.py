"""Delivers the durable outbox to a notifier, in order, once.

The watch loop commits alert states and the notifications they owe in one transaction;
this dispatcher then hands due items to the notifier. An item leaves the outbox only when
the notifier reports it accepted (and the message it created is recorded in the same
transaction), so a crash at any point either re-sends an item Slack never saw or — in the
few milliseconds between Slack's answer and that commit — sends it a second time. While
the destination is down the dispatcher backs off (capped, jittered, honouring a
``Retry-After``) and keeps everything queued, also across restarts.

Only items of projects whose lease this replica holds are delivered, each claimed just
before it is sent and settled under that lease's term (see :mod:`watchdog.store`): once
another replica took a project over, nothing more is sent or recorded for it here. An
item that was claimed and not settled reads back as *maybe sent*.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

import structlog

from watchdog.deliver.notifier import DeliveryUnavailable, Notifier
from watchdog.metrics import BotMetrics
from watchdog.store import Fence, FencedOut, MessageRef, OutboxRecord, Store, StoreError

log = structlog.get_logger(__name__)

#: Crashes of the notifier on the same head item before that item is dead-lettered.
MAX_CRASHES = 3
#: Longest Retry-After honoured as given (a longer hint is treated as this long).
MAX_RETRY_AFTER = 900.0


#: The leases this replica holds now, by project ("" maps to the coordinator's fence).
Fences = Callable[[], Mapping[str, Fence]]


class _Receipts:
    """One batch's receipts, under the fences held when the batch was read."""

    def __init__(
        self,
        store: Store,
        fences: Mapping[str, Fence],
        records: Sequence[OutboxRecord],
        out_of_time: Callable[[], bool],
        held: Fences,
    ) -> None:
        self._store = store
        self._fences = fences
        self._held = held  # the leases held now (the fences above may have gone since)
        self._projects = {record.id: record.project for record in records}
        self.started: set[int] = set()
        self.settled: set[int] = set()
        self.out_of_time = out_of_time

    def project_of(self, record_id: int) -> str:
        return self._projects[record_id]

    def fence(self, project: str) -> Fence:
        fence = self._fences.get(project)
        if fence is None:  # not ours (outbox_due was asked for our projects only)
            raise FencedOut(project, 0, None)
        return fence

    def confirm(self, project: str) -> None:
        fence = self.fence(project)
        now = self._held().get(project)
        if now != fence:
            raise FencedOut(fence.project, fence.term, now.term if now is not None else None)

    async def start(self, record_ids: Sequence[int]) -> list[int]:
        by_project: dict[str, list[int]] = {}
        for record_id in record_ids:
            by_project.setdefault(self._projects[record_id], []).append(record_id)
        claimed: list[int] = []
        for project, ids in by_project.items():
            claimed += await self._store.outbox_start(ids, self.fence(project))
        self.started.update(claimed)
        return claimed

    async def done(self, record_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        fence = self.fence(self._projects[record_id])
        await self._store.outbox_done(record_id, fence, messages)
        self.settled.add(record_id)

    async def dead(self, record_id: int, error: str) -> None:
        log.error("outbox.dead_letter", record_id=record_id, error=error)
        await self._store.outbox_dead(record_id, error)
        self.settled.add(record_id)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: BotMetrics | None = None,
        batch: int = 10_000,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        rng: random.Random | None = None,
        fences: Fences,
        poll: float | None = None,
    ) -> None:
        self._store = store
        # Only items of projects whose lease we hold are delivered; ``poll`` also picks
        # up items another process committed (a standby's slash command audit lines),
        # which wake no one here.
        self._fences = fences
        self._poll = poll
        self._notifier = notifier
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        # A whole tick's notifications must arrive in one batch so storms group.
        self._batch = batch
        self._base = base_backoff
        self._max = max_backoff
        self._rng = rng or random.Random()
        self._wakeup = asyncio.Event()
        self._failures = 0
        self._crashes: dict[int, int] = {}  # outbox id -> notifier crashes on it
        # Items claimed but neither settled nor handed back (the store failed, or the
        # lease was in doubt, at the time), with the project and lease they were claimed
        # under: handed back once that lease is sure to be ours again, or they would stay
        # claimed all term; left to the next holder when the lease moved on.
        self._unreleased: dict[int, tuple[str, Fence]] = {}
        self._backlog = False  # the last batch was full: more may be due
        self._deadline: float | None = None  # event-loop time a graceful stop ends at
        self._delivering = False
        self._store_down = False
        self.blocked_until = 0.0
        self.delivered = 0

    def wake(self) -> None:
        """New items were committed: deliver them soon."""
        self._wakeup.set()

    async def deliver_once(self) -> bool:
        """Deliver the due items (one batch). False when the destination is unavailable
        or the notifier crashed; :attr:`blocked_until` then says when to try again."""
        now = self._clock()
        await self._release(now)
        fences = dict(self._fences())
        if not fences:
            self._backlog = False
            return True
        records = await self._store.outbox_due(now, self._batch, fences.keys())
        self._backlog = len(records) >= self._batch
        # Before the batch too: a destination that hangs must not leave the gauge at what
        # it was before these items were due (it stayed 0 while Slack hung).
        await self._report_size()
        if not records:
            return True
        receipts = _Receipts(self._store, fences, records, self._out_of_time, self._fences)
        try:
            await self._notifier.deliver(records, receipts)
        except FencedOut as exc:
            # Another replica took the project over (or may have: our lease is in doubt):
            # what we claimed is its to settle, unless the lease turns out to be ours.
            log.warning("outbox.lease_lost", project=exc.project, error=str(exc))
            self.delivered += len(receipts.settled)
            self._keep_claims(receipts, receipts.started - receipts.settled)
            self._back_off(None)
            return False
        except DeliveryUnavailable as exc:
            pending = [r for r in records if r.id not in receipts.settled]
            self.delivered += len(receipts.settled)
            delay = self._back_off(exc.retry_after)
            if self._failures == 1:
                log.warning(
                    "outbox.destination_unavailable",
                    error=str(exc),
                    waiting=len(pending),
                    retry_in=round(delay, 2),
                )
            # Count the attempt on the items in flight (else the head item) only: the
            # rest keep their place. An item an earlier attempt may have delivered stays
            # maybe sent whatever this attempt's answer was.
            tried = [r for r in pending if r.id in receipts.started] or pending[:1]
            for record in tried:
                maybe = record.maybe_sent or (exc.maybe_sent and record.id in receipts.started)
                await self._hand_back(record, receipts, now, str(exc)[:500], maybe)
            await self._report_size()
            return False
        except StoreError:
            # The store failed, not the notifier: no item is to blame (run() backs off).
            self.delivered += len(receipts.settled)
            self._keep_claims(receipts, receipts.started - receipts.settled)
            raise
        except Exception as exc:
            # A bug rendering or sending one item must not hold back every later alert:
            # the item it crashed on (the first unsettled one) is set aside after a few tries.
            log.exception("outbox.deliver_failed")
            pending = [r for r in records if r.id not in receipts.settled]
            self.delivered += len(receipts.settled)
            self._back_off(None)
            # In flight when it crashed: it may have been sent.
            self._keep_claims(receipts, {r.id for r in pending if r.id in receipts.started})
            if pending:
                head = pending[0].id
                self._crashes[head] = self._crashes.get(head, 0) + 1
                if self._crashes[head] >= MAX_CRASHES:
                    del self._crashes[head]
                    await receipts.dead(head, f"notifier crashed: {exc!r}"[:500])
                    self._unreleased.pop(head, None)
            await self._report_size()
            return False
        self.delivered += len(receipts.settled)
        # Claimed but not settled, and no error: the notifier stopped for the deadline.
        self._keep_claims(receipts, receipts.started - receipts.settled)
        if self._failures:
            log.info("outbox.destination_back", after_failures=self._failures)
        self._failures = 0
        self.blocked_until = 0.0
        await self._report_size()
        return True

    async def _hand_back(
        self, record: OutboxRecord, receipts: _Receipts, now: float, error: str, maybe_sent: bool
    ) -> None:
        """Return a claimed item to the queue for a later attempt — only while its lease
        is still ours: after a takeover the item is the new holder's (who may have
        claimed it already), and it already reads back as maybe sent."""
        claim = (record.project, receipts.fence(record.project))
        if self._fences().get(record.project) != claim[1]:
            self._unreleased[record.id] = claim
            return
        try:
            await self._store.outbox_retry(record.id, now, error, maybe_sent=maybe_sent)
        except Exception:
            self._unreleased[record.id] = claim
            raise

    def _keep_claims(self, receipts: _Receipts, record_ids: Collection[int]) -> None:
        """Claims to hand back later (see :meth:`_release`)."""
        for record_id in record_ids:
            project = receipts.project_of(record_id)
            self._unreleased[record_id] = (project, receipts.fence(project))

    async def _release(self, now: float) -> None:
        """Hand back the claims kept earlier whose lease is ours for sure again; forget
        those whose project we now hold under another term (claimable by that term)."""
        held = self._fences()
        for record_id, (project, fence) in sorted(self._unreleased.items()):
            current = held.get(project)
            if current == fence:
                await self._store.outbox_retry(record_id, now, "interrupted", maybe_sent=True)
            elif current is None:
                continue  # not ours for sure now: ask again next time
            del self._unreleased[record_id]

    def _back_off(self, retry_after: float | None) -> float:
        """Block delivery for the next (capped, jittered) backoff; returns the delay."""
        self._failures += 1
        backoff = min(self._max, self._base * 2 ** (self._failures - 1))
        delay = self._rng.uniform(backoff / 2, backoff)
        if retry_after is not None:
            # The destination's own hint wins over our cap (within reason).
            delay = min(max(delay, retry_after), MAX_RETRY_AFTER)
        self.blocked_until = self._clock() + delay
        return delay

    def _out_of_time(self) -> bool:
        if self._deadline is None:
            return False
        return asyncio.get_running_loop().time() >= self._deadline

    async def run(self) -> None:
        """Deliver forever: on wake-ups, and after backoff while the destination is down.

        After :meth:`stop` it delivers what is due until the deadline, then returns."""
        while True:
            wait = self.blocked_until - self._clock()
            if wait > 0:
                if self._deadline is not None:
                    return  # stopping while the destination is down: leave it queued
                await self._sleep(wait)
                continue
            if not self._fences():
                if self._deadline is not None:
                    return
                self._wakeup.clear()
                await self._idle()
                continue
            self._wakeup.clear()
            self._delivering = True
            try:
                ok = await self.deliver_once()
            except StoreError as exc:
                # The store failed (the notifier's failures are handled in deliver_once):
                # an outage, said once (the replica's health says it too), then its end.
                if not self._store_down:
                    log.warning("outbox.store_unavailable", error=str(exc))
                self._store_down = True
                ok = False
                self._back_off(None)
            except Exception:
                log.exception("outbox.store_failed")
                ok = False
                self._back_off(None)
            else:
                if self._store_down:
                    log.info("outbox.store_back")
                self._store_down = False
            finally:
                self._delivering = False
            if self._deadline is not None:
                if not ok or self._out_of_time() or not await self._due():
                    return
            elif ok and not self._backlog:
                await self._idle()

    async def _idle(self) -> None:
        """Wait for a wake-up (or the poll period, when there is one)."""
        if self._poll is None:
            await self._wakeup.wait()
            return
        try:
            await asyncio.wait_for(self._wakeup.wait(), self._poll)
        except TimeoutError:
            pass

    async def _due(self) -> bool:
        fences = self._fences()
        return bool(fences) and bool(await self._store.outbox_due(self._clock(), 1, fences.keys()))

    async def stop(self, task: asyncio.Task[None], within: float) -> int:
        """End :meth:`run` gracefully (SIGTERM) within ``within`` seconds; returns how many
        items stay queued (they are sent after the next start)."""
        if not self._delivering and self.blocked_until > self._clock():
            task.cancel()  # backing off: nothing in flight, and the destination is down
        return await self._finish(task, within)

    async def flush(self, within: float) -> int:
        """Deliver what is due for up to ``within`` seconds without a running :meth:`run`;
        returns what is left."""

        async def drain() -> None:
            while not self._out_of_time() and await self.deliver_once():
                if not await self._due():
                    return

        return await self._finish(asyncio.create_task(drain()), within)

    async def _finish(self, task: asyncio.Task[None], within: float) -> int:
        """Let ``task`` deliver until a soft deadline, then wait for it until ``within``.

        The call in flight is not cancelled while there is time: Slack may already have
        accepted a post whose answer we would then drop, and send it again after the
        restart. No new message is started after the soft deadline (the notifier checks
        between messages), which leaves the last one up to two seconds to finish; only a
        call still hanging at ``within`` is cancelled.
        """
        self._deadline = asyncio.get_running_loop().time() + within - min(2.0, within / 2)
        self._wakeup.set()
        try:
            done, _ = await asyncio.wait({task}, timeout=within)
            if not done:
                log.warning("outbox.stop_timeout", within=within)
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            self._deadline = None
        return await self._store.outbox_size()

    async def _report_size(self) -> None:
        if self._metrics is not None:
            self._metrics.outbox_size.set(await self._store.outbox_size())
