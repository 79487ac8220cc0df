"""The request gate of one Polaris organisation: concurrency, rate, and who goes first.

Every request to Polaris passes the gate: at most ``concurrency`` in flight, and starts
spaced at least ``1 / max_rate`` seconds apart (a leaky bucket of capacity one, so no
burst ever exceeds the rate). Waiters are served by :class:`Priority`, then in arrival
order: a job listing or a Slack user's command never queues behind the thousands of
metrics requests of a sweep — it takes the next free slot and the next rate token.

Time is the event loop's clock; nothing here sleeps in a loop: a waiter is woken by the
request that frees a slot, or by one timer set for the moment the rate allows the next.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum


class Priority(IntEnum):
    """Lower goes first."""

    LISTING = 0  # listings, job lookups, commands: what alerts and people wait for
    METRICS = 1  # the background sweep of metrics


class RequestGate:
    def __init__(self, concurrency: int, max_rate: float | None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_rate is not None and max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.concurrency = concurrency
        self._free = concurrency
        self._spacing = 1.0 / max_rate if max_rate else 0.0
        self._next_start = 0.0  # loop time before which no request may start
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        return self.concurrency - self._free

    def waiting(self, priority: Priority | None = None) -> int:
        """Requests queued at the gate (of one priority, or all)."""
        return sum(
            1 for p, _, f in self._waiting if not f.done() and (priority is None or p == priority)
        )

    @asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        """Hold a request slot, granted by priority and rate, for the ``with`` body."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiting, (int(priority), next(self._order), future))
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted just as we were cancelled: hand the slot on
            raise

    def _release(self) -> None:
        self._free += 1
        self._dispatch()

    def _dispatch(self) -> None:
        """Grant slots to the best waiters while slots are free and the rate allows."""
        loop = asyncio.get_running_loop()
        while self._waiting and self._free > 0:
            if self._waiting[0][2].done():  # cancelled while waiting
                heapq.heappop(self._waiting)
                continue
            now = loop.time()
            if now < self._next_start:
                if self._timer is None:
                    self._timer = loop.call_at(self._next_start, self._on_timer)
                return
            _, _, future = heapq.heappop(self._waiting)
            self._free -= 1
            self._next_start = max(now, self._next_start) + self._spacing
            future.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()
