"""Delivers the durable outbox to a notifier, in order, once.

The watch loop commits alert states and the notifications they owe in one transaction;
this dispatcher then hands due items to the notifier. An item leaves the outbox only when
the notifier reports it accepted (and the message it created is recorded in the same
transaction), so a crash at any point either re-sends an item Slack never saw or — in the
few milliseconds between Slack's answer and that commit — sends it a second time. While
the destination is down the dispatcher backs off (capped, jittered, honouring a
``Retry-After``) and keeps everything queued, also across restarts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from watchdog.metrics import BotMetrics
from watchdog.notify import DeliveryUnavailable, Notifier
from watchdog.store import MessageRef, Store

log = structlog.get_logger(__name__)

#: Crashes of the notifier on the same head item before that item is dead-lettered.
MAX_CRASHES = 3


class _Receipts:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.settled: set[int] = set()

    async def done(self, record_id: int, messages: Mapping[str, MessageRef] = {}) -> None:
        await self._store.outbox_done(record_id, messages)
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
    ) -> None:
        self._store = store
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
        self._backlog = False  # the last batch was full: more may be due
        self.blocked_until = 0.0
        self.delivered = 0

    def wake(self) -> None:
        """New items were committed: deliver them soon."""
        self._wakeup.set()

    async def deliver_once(self) -> bool:
        """Deliver the due items (one batch). False when the destination is unavailable
        or the notifier crashed; :attr:`blocked_until` then says when to try again."""
        now = self._clock()
        records = await self._store.outbox_due(now, self._batch)
        self._backlog = len(records) >= self._batch
        if not records:
            await self._report_size()
            return True
        receipts = _Receipts(self._store)
        try:
            await self._notifier.deliver(records, receipts)
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
            if pending:
                # Count the attempt on the head item only: the rest keep their place.
                await self._store.outbox_retry(pending[0].id, now, str(exc)[:500])
            await self._report_size()
            return False
        except Exception as exc:
            # A bug rendering or sending one item must not hold back every later alert:
            # the item it crashed on (the first unsettled one) is set aside after a few tries.
            log.exception("outbox.deliver_failed")
            pending = [r for r in records if r.id not in receipts.settled]
            self.delivered += len(receipts.settled)
            self._back_off(None)
            if pending:
                head = pending[0].id
                self._crashes[head] = self._crashes.get(head, 0) + 1
                if self._crashes[head] >= MAX_CRASHES:
                    del self._crashes[head]
                    await receipts.dead(head, f"notifier crashed: {exc!r}"[:500])
            await self._report_size()
            return False
        self.delivered += len(receipts.settled)
        if self._failures:
            log.info("outbox.destination_back", after_failures=self._failures)
        self._failures = 0
        self.blocked_until = 0.0
        await self._report_size()
        return True

    def _back_off(self, retry_after: float | None) -> float:
        """Block delivery for the next (capped, jittered) backoff; returns the delay."""
        self._failures += 1
        backoff = min(self._max, self._base * 2 ** (self._failures - 1))
        delay = self._rng.uniform(backoff / 2, backoff)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self._max)
        self.blocked_until = self._clock() + delay
        return delay

    async def run(self) -> None:
        """Deliver forever: on wake-ups, and after backoff while the destination is down."""
        while True:
            wait = self.blocked_until - self._clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            self._wakeup.clear()
            try:
                ok = await self.deliver_once()
            except Exception:
                # The store failed (the notifier's failures are handled in deliver_once).
                log.exception("outbox.store_failed")
                ok = False
                self._back_off(None)
            if ok and not self._backlog:
                await self._wakeup.wait()

    async def flush(self, within: float) -> int:
        """Deliver what is due within ``within`` seconds (shutdown). Returns what is left."""

        async def drain() -> None:
            while await self.deliver_once():
                if not await self._store.outbox_due(self._clock(), 1):
                    return

        try:
            await asyncio.wait_for(drain(), within)
        except TimeoutError:
            log.warning("outbox.flush_timeout", within=within)
        return await self._store.outbox_size()

    async def _report_size(self) -> None:
        if self._metrics is not None:
            self._metrics.outbox_size.set(await self._store.outbox_size())
